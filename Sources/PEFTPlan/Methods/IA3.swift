import Foundation

extension MethodSpec {
    /// IA³ (Liu et al. 2022; PEFT `IA3Config`): a learned vector scaling each targeted
    /// module's output, or its input for the feed-forward modules.
    static let ia3 = MethodSpec(
        title: "IA³", base: .frozen, checkpointing: .optional, wrapper: .scaling, virtualTokens: nil,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [.ia3], leaner: nil,
        account: { arch, method, o in
            let defaults = arch.family.spec.ia3Targets
            switch o.ia3Targets {
            case .languageModel, .pattern:
                // PEFT's IA³ then asks for feedforward_modules, which a pattern cannot name
                throw PlanError.invalidTargets(method: "ia3", reason: "IA³ takes module names (or default or all-linear), not language-model or a pattern; give \(field: .ia3Targets) and \(field: .ia3Feedforward) as names")
            default: break
            }
            let targets = try ParameterAccounting.resolveTargets(o.ia3Targets, arch: arch, method: method, defaults: defaults?.targets)
            let ff: [String]
            if let given = o.ia3Feedforward { ff = given } else if case .default = o.ia3Targets { ff = defaults?.feedforward ?? [] } else { ff = [] }
            // PEFT: "feedforward_modules should be a subset of target_modules" (for list targets).
            if case let .list(list) = o.ia3Targets, let given = o.ia3Feedforward, !given.allSatisfy(list.contains) {
                throw PlanError.invalidTargets(method: "ia3", reason: "\(field: .ia3Feedforward) must be a subset of \(field: .ia3Targets)")
            }
            var tensors: [AdapterTensor] = []
            var wrapped: [WrappedModule] = []
            for m in targets {
                let isFF = ff.contains { ParameterAccounting.matches(arch.fullName(m), $0) }
                wrapped.append(WrappedModule(module: m, instances: arch.instances(m), feedforward: isFF))
                for layer in arch.instanceIndices(m) {
                    let full = "base_model.model." + arch.fullName(m, layer: layer) + ".ia3_l"
                    tensors.append(AdapterTensor(name: full, shape: isFF ? [1, m.inFeatures] : [m.outFeatures, 1]))
                }
            }
            return ParameterAccounting.finish(arch, method, tensors, wrapped)
        })
}

extension MethodNote {
    static let ia3 = MethodNote(order: 60) { o in
        "IA³ targets=\(o.ia3Targets.text)\(o.ia3Feedforward.map { " feed-forward=" + $0.joined(separator: ",") } ?? "")"
    }
}
