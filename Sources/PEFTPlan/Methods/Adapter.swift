import Foundation

extension MethodSpec {
    /// Bottleneck adapters (AdapterHub `seq_bn`, Pfeiffer et al. 2020; `double_seq_bn`,
    /// Houlsby et al. 2019): down projection, ReLU, up projection and a residual.
    static let adapter = MethodSpec(
        title: "bottleneck adapters", base: .frozen, checkpointing: .optional, wrapper: nil, virtualTokens: nil,
        insertsBottleneck: true, promptEncoderMLP: false, notes: [.bottleneck], leaner: nil,
        account: { arch, method, o in
            let h = arch.hiddenSize
            let m = h / o.adapterReduction
            guard m >= 1 else {
                throw PlanError.invalidSetting(.adapterReduction, value: "\(o.adapterReduction)",
                                               accepted: "must leave a bottleneck of at least 1 (hidden size \(h))")
            }
            let perLayer = o.adapter == .houlsby ? 2 : 1
            var tensors: [AdapterTensor] = []
            for layer in 0..<arch.numLayers {
                for k in 0..<perLayer {
                    let name = "\(arch.layerPrefix).\(layer).adapter\(k)"
                    tensors += [AdapterTensor(name: name + ".adapter_down.0.weight", shape: [m, h]),
                                AdapterTensor(name: name + ".adapter_down.0.bias", shape: [m]),
                                AdapterTensor(name: name + ".adapter_up.weight", shape: [h, m]),
                                AdapterTensor(name: name + ".adapter_up.bias", shape: [h])]
                }
            }
            var a = ParameterAccounting.finish(arch, method, tensors, [])
            // AdapterHub writes pytorch_adapter.bin (torch.save): the fp32 data plus a small pickle.
            a.adapterFileBytes = a.trainableParams * 4
            return a
        })
}

extension MethodNote {
    static let bottleneck = MethodNote(order: 30) { o in
        "bottleneck adapters: \(o.adapter.rawValue), reduction factor \(o.adapterReduction) (AdapterHub seq_bn / double_seq_bn counts)"
    }
}
