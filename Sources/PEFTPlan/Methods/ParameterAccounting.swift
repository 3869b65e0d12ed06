import Foundation

/// A tensor a method adds and saves, as `save_pretrained()` names and shapes it.
public struct AdapterTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var numel: Int { shape.reduce(1, *) }
}

/// A module a method wraps, with how many instances of it there are.
public struct WrappedModule: Equatable, Sendable {
    public var module: ModuleSpec
    public var instances: Int
    /// IA³: true when the module scales its input (a feed-forward module).
    public var feedforward = false
}

/// The parameter side of one method on one architecture.
public struct ParameterAccount: Equatable, Sendable {
    public var method: Method
    /// The base model's parameters as Hugging Face counts them.
    public var baseParams: Int
    /// What PEFT's `print_trainable_parameters()` prints as "trainable params".
    public var trainableParams: Int
    /// What it prints as "all params" (base + adapter; the frozen base stays in the tree).
    public var totalParams: Int
    /// Trainable tensors added by the method (empty for full fine-tuning).
    public var adapterTensors: [AdapterTensor]
    /// Modules wrapped by LoRA/QLoRA/IA³.
    public var wrapped: [WrappedModule]
    /// Bytes `save_pretrained()` writes (adapter_model.safetensors; the model for full).
    public var adapterFileBytes: Int
}

public enum ParameterAccounting {
    /// Accounts `method` on `arch` exactly as Hugging Face PEFT would.
    public static func account(_ arch: Architecture, method: Method, options o: MethodOptions) throws -> ParameterAccount {
        let base = arch.totalParams
        switch method {
        case .full:
            return ParameterAccount(method: method, baseParams: base, trainableParams: base, totalParams: base,
                                    adapterTensors: [], wrapped: [], adapterFileBytes: 0)
        case .lora, .qlora:
            let targets = try resolveTargets(o.loraTargets, arch: arch, method: method,
                                             defaults: arch.family.spec.loraTargets)
            var tensors: [AdapterTensor] = []
            var wrapped: [WrappedModule] = []
            for m in targets {
                let n = m.perLayer ? arch.numLayers : 1
                wrapped.append(WrappedModule(module: m, instances: n))
                for layer in 0..<n {
                    let full = "base_model.model." + arch.fullName(m, layer: layer)
                    if m.kind == .experts {
                        // Fused experts (Transformers v5 MoE) are wrapped by PEFT's ParamWrapper
                        // through `target_parameters`: gate_up_proj gets rank 2r per expert,
                        // down_proj rank r per expert, stacked into 2-D LoRA matrices.
                        let e = arch.numExperts, r = o.loraR
                        tensors += [AdapterTensor(name: full + ".base_layer.lora_A.weight", shape: [2 * r * e, m.inFeatures]),
                                    AdapterTensor(name: full + ".base_layer.lora_B.weight", shape: [2 * m.outFeatures, 2 * r * e]),
                                    AdapterTensor(name: full + ".lora_A.weight", shape: [r * e, m.outFeatures]),
                                    AdapterTensor(name: full + ".lora_B.weight", shape: [m.inFeatures, r * e])]
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
            return finish(arch, method, tensors, wrapped)
        case .ia3:
            let defaults = arch.family.spec.ia3Targets
            let targets = try resolveTargets(o.ia3Targets, arch: arch, method: method, defaults: defaults?.targets)
            let ff: [String]
            if let given = o.ia3Feedforward { ff = given } else if case .default = o.ia3Targets { ff = defaults?.feedforward ?? [] } else { ff = [] }
            // PEFT: "feedforward_modules should be a subset of target_modules" (for list targets).
            if case let .list(list) = o.ia3Targets, let given = o.ia3Feedforward, !given.allSatisfy(list.contains) {
                throw PlanError.invalidTargets(method: "ia3", reason: "\(field: .ia3Feedforward) must be a subset of \(field: .ia3Targets)")
            }
            var tensors: [AdapterTensor] = []
            var wrapped: [WrappedModule] = []
            for m in targets {
                let n = m.perLayer ? arch.numLayers : 1
                let isFF = ff.contains { matches(arch.fullName(m), $0) }
                wrapped.append(WrappedModule(module: m, instances: n, feedforward: isFF))
                for layer in 0..<n {
                    let full = "base_model.model." + arch.fullName(m, layer: layer) + ".ia3_l"
                    tensors.append(AdapterTensor(name: full, shape: isFF ? [1, m.inFeatures] : [m.outFeatures, 1]))
                }
            }
            return finish(arch, method, tensors, wrapped)
        case .prefix:
            let t = o.prefixTokens
            let td = prefixTokenDim(arch)
            let perToken = arch.numLayers * 2 * td
            var trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [t, o.prefixProjection > 0 ? td : perToken])]
            if o.prefixProjection > 0 {
                let p = o.prefixProjection
                trainable += [AdapterTensor(name: "prompt_encoder.transform.0.weight", shape: [p, td]),
                              AdapterTensor(name: "prompt_encoder.transform.0.bias", shape: [p]),
                              AdapterTensor(name: "prompt_encoder.transform.2.weight", shape: [perToken, p]),
                              AdapterTensor(name: "prompt_encoder.transform.2.bias", shape: [perToken])]
            }
            // save_pretrained() stores the prefix itself (the projection's output), not the MLP.
            let saved = [AdapterTensor(name: "prompt_embeddings", shape: [t, perToken])]
            return promptLearning(arch, method, trainable, saved)
        case .prompt:
            let trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [o.promptTokens, arch.hiddenSize])]
            return promptLearning(arch, method, trainable, trainable.map { AdapterTensor(name: "prompt_embeddings", shape: $0.shape) })
        case .ptuning:
            let d = arch.hiddenSize
            let hdn = o.ptuningHidden > 0 ? o.ptuningHidden : d
            let trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [o.promptTokens, d]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.0.weight", shape: [hdn, d]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.0.bias", shape: [hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.2.weight", shape: [hdn, hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.2.bias", shape: [hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.4.weight", shape: [d, hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.4.bias", shape: [d])]
            return promptLearning(arch, method, trainable, [AdapterTensor(name: "prompt_embeddings", shape: [o.promptTokens, d])])
        case .adapter:
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
            var a = finish(arch, method, tensors, [])
            // AdapterHub writes pytorch_adapter.bin (torch.save): the fp32 data plus a small pickle.
            a.adapterFileBytes = a.trainableParams * 4
            return a
        }
    }

    /// The width PEFT gives a prefix token: under grouped-query attention (a config with
    /// `num_key_value_heads`) `head_dim × num_key_value_heads`, else the hidden size
    /// (peft/utils/other.py, `_prepare_prompt_learning_config`).
    static func prefixTokenDim(_ arch: Architecture) -> Int {
        arch.configHasKVHeads ? arch.headDim * arch.nKVHeads : arch.hiddenSize
    }

    static func finish(_ arch: Architecture, _ method: Method, _ tensors: [AdapterTensor], _ wrapped: [WrappedModule]) -> ParameterAccount {
        let trainable = tensors.reduce(0) { $0 + $1.numel }
        return ParameterAccount(method: method, baseParams: arch.totalParams, trainableParams: trainable,
                                totalParams: arch.totalParams + trainable, adapterTensors: tensors, wrapped: wrapped,
                                adapterFileBytes: safetensorsBytes(tensors))
    }

    static func promptLearning(_ arch: Architecture, _ method: Method, _ trainable: [AdapterTensor], _ saved: [AdapterTensor]) -> ParameterAccount {
        var a = finish(arch, method, trainable, [])
        a.adapterFileBytes = safetensorsBytes(saved)
        return a
    }

    /// PEFT's module-name match: the name equals the target or ends with "." + target.
    static func matches(_ fullName: String, _ target: String) -> Bool {
        fullName == target || fullName.hasSuffix("." + target)
    }

    /// The modules a LoRA/IA³ target specification selects, refusing what PEFT refuses.
    static func resolveTargets(_ spec: TargetSpec, arch: Architecture, method: Method, defaults: [String]?) throws -> [ModuleSpec] {
        let field: PlanField = method == .ia3 ? .ia3Targets : .loraTargets
        let names: [String]
        switch spec {
        case .allLinear:
            // PEFT 0.21 adds a MoE's router weight and fused expert tensors (as
            // target_parameters) to "all-linear" for LoRA.
            let moe: Set<ModuleKind> = (method == .lora || method == .qlora) ? [.router, .experts] : []
            return arch.modules.filter { ($0.kind == .linear || $0.kind == .conv1d || moe.contains($0.kind)) && $0.role != .head }
        case .default:
            guard let d = defaults else {
                throw PlanError.invalidTargets(method: method.rawValue, reason:
                    "PEFT has no default target modules for model type '\(arch.family.rawValue)'; give \(field: field) (for example all-linear, or module names such as \(exampleTargets(arch)))")
            }
            names = d
        case let .list(l):
            guard !l.isEmpty else {
                throw PlanError.invalidSetting(field, value: "", accepted: "default, all-linear or module names separated by commas")
            }
            names = l
        }
        var selected: [ModuleSpec] = []
        for m in arch.modules where names.contains(where: { matches(arch.fullName(m), $0) }) {
            let wrappable: Bool
            switch (method, m.kind) {
            case (_, .linear), (_, .conv1d): wrappable = true
            case (.lora, .embedding), (.qlora, .embedding): wrappable = true
            default: wrappable = false
            }
            guard wrappable else {
                throw PlanError.invalidTargets(method: method.rawValue, reason:
                    "target module '\(arch.fullName(m))' is a \(m.kind.rawValue) module, which PEFT cannot wrap with \(method.title)")
            }
            selected.append(m)
        }
        guard !selected.isEmpty else {
            throw PlanError.invalidTargets(method: method.rawValue, reason:
                "target modules \(names.joined(separator: ", ")) not found in \(arch.name) (its Linear modules: \(exampleTargets(arch)))")
        }
        return selected
    }

    static func exampleTargets(_ arch: Architecture) -> String {
        arch.modules.filter { ($0.kind == .linear || $0.kind == .conv1d) && $0.perLayer }
            .map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name }.joined(separator: ",")
    }

    /// Size of a safetensors file holding `tensors` as fp32, exactly: 8 bytes of header
    /// length, the JSON header (`__metadata__` {"format": "pt"} and one entry per tensor,
    /// offsets in name order), padded with spaces to a multiple of 8, then the data.
    /// (safetensors' serialisation format, as `save_pretrained()` writes it.)
    public static func safetensorsBytes(_ tensors: [AdapterTensor]) -> Int {
        guard !tensors.isEmpty else { return 0 }
        let sorted = tensors.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        var header = "{\"__metadata__\":{\"format\":\"pt\"}".utf8.count
        var offset = 0
        for t in sorted {
            let bytes = t.numel * 4
            let entry = "\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            header += 1 + entry.utf8.count
            offset += bytes
        }
        header += 1
        header += (8 - header % 8) % 8
        return 8 + header + offset
    }
}
