import Foundation

extension MethodSpec {
    /// LoRA (Hu et al. 2021; PEFT `LoraConfig`): a rank-r pair beside each targeted module.
    static let lora = MethodSpec(
        title: "LoRA", base: .frozen, checkpointing: .optional, wrapper: .lowRank, virtualTokens: nil,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [.lowRank],
        leaner: (.qlora, "QLoRA instead of LoRA (\(setting: .method, "qlora"))"),
        account: ParameterAccounting.lowRank)
}

extension MethodNote {
    static let lowRank = MethodNote(order: 10) { o in
        "LoRA r=\(o.loraR) alpha=\(o.loraAlpha) targets=\(o.loraTargets.text) dropout=\(o.loraDropout)\(o.dora ? " DoRA" : ""); \(o.adapterDtype == .fp32 ? "adapters kept in fp32 (PEFT autocast_adapter_dtype)" : "adapters in the model's 16-bit dtype (autocast_adapter_dtype=False), their gradients, optimizer states and saved file too")"
    }
}

extension ParameterAccounting {
    /// LoRA's tensors on the modules its targets pick (PEFT `lora/layer.py`): lora_A (r × in)
    /// and lora_B (out × r) per Linear, lora_embedding_A/B per embedding, DoRA's magnitude
    /// vector, and a MoE's fused experts through `target_parameters`.
    @Sendable static func lowRank(_ arch: Architecture, _ method: Method, _ o: MethodOptions) throws -> ParameterAccount {
        let (targets, expertParams) = try resolveTargetsAndParameters(o.loraTargets, arch: arch, method: method,
                                                                       defaults: arch.family.spec.loraTargets)
        // PEFT refuses LoRA on Mamba mixers' out_proj and conv1d (`_check_lora_target_modules_mamba`,
        // peft/tuners/tuners_utils.py, 0.21.2)
        if let refused = arch.family.spec.loraRefusedModules,
           let hit = targets.first(where: { refused.contains(String($0.name.split(separator: ".").last ?? "")) }) {
            let name = String(hit.name.split(separator: ".").last ?? "")
            let others = arch.blockLinearNames(excluding: refused)
            throw PlanError.invalidTargets(method: method.rawValue, reason: """
                PEFT refuses LoRA on '\(name)' in Mamba-based models (model type '\(arch.family.rawValue)'; \
                it refuses \(refused.sorted().joined(separator: " and "))); give \(field: .loraTargets) without them \
                (for example \(others.joined(separator: ",")))
                """)
        }
        var tensors: [AdapterTensor] = []
        var wrapped: [WrappedModule] = []
        for m in targets {
            wrapped.append(WrappedModule(module: m, instances: arch.instances(m)))
            for layer in arch.instanceIndices(m) {
                let full = "base_model.model." + arch.fullName(m, layer: layer)
                if m.kind == .experts {
                    // Fused experts (Transformers v5 MoE) are wrapped by PEFT's ParamWrapper
                    // through `target_parameters`: gate_up_proj gets rank 2r per expert (its
                    // rank_pattern doubles r for the two fused v4 projections), down_proj
                    // rank r per expert, stacked into 2-D LoRA matrices; with both, the
                    // first wrapper is the second's base_layer.
                    let e = arch.numExperts, r = o.loraR
                    let both = expertParams.count == 2
                    if expertParams.contains("gate_up_proj") {
                        let p = both ? full + ".base_layer" : full
                        tensors += [AdapterTensor(name: p + ".lora_A.weight", shape: [2 * r * e, m.inFeatures]),
                                    AdapterTensor(name: p + ".lora_B.weight", shape: [2 * m.outFeatures, 2 * r * e])]
                    }
                    if expertParams.contains("down_proj") {
                        tensors += [AdapterTensor(name: full + ".lora_A.weight", shape: [r * e, m.outFeatures]),
                                    AdapterTensor(name: full + ".lora_B.weight", shape: [m.inFeatures, r * e])]
                    }
                    continue
                }
                if m.kind == .embedding {
                    tensors.append(AdapterTensor(name: full + ".lora_embedding_A", shape: [o.loraR, m.inFeatures]))
                    tensors.append(AdapterTensor(name: full + ".lora_embedding_B", shape: [m.outFeatures, o.loraR]))
                } else {
                    tensors.append(AdapterTensor(name: full + ".lora_A.weight", shape: [o.loraR, m.inFeatures]))
                    tensors.append(AdapterTensor(name: full + ".lora_B.weight", shape: [m.outFeatures, o.loraR]))
                }
                if o.dora {
                    tensors.append(AdapterTensor(name: full + ".lora_magnitude_vector", shape: [m.outFeatures]))
                }
            }
        }
        var account = finish(arch, method, tensors, wrapped)
        // adapters in the model's 16-bit dtype are saved in it (BF16; an F16 header is one byte
        // shorter per tensor)
        if o.adapterDtype == .model { account.adapterFileBytes = safetensorsBytes(tensors, dtype: "BF16", elementBytes: 2) }
        return account
    }
}
