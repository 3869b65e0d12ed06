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
        try method.spec.account(arch, method, o)
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
    /// For LoRA on a family whose experts Transformers v5 fused (``MoEConversion``), PEFT
    /// moves the expert and router names to `target_parameters`: `expertParams` says which
    /// of the fused expert tensors (`gate_up_proj`, `down_proj`) are wrapped.
    static func resolveTargets(_ spec: TargetSpec, arch: Architecture, method: Method, defaults: [String]?) throws -> [ModuleSpec] {
        try resolveTargetsAndParameters(spec, arch: arch, method: method, defaults: defaults).modules
    }

    static func resolveTargetsAndParameters(_ spec: TargetSpec, arch: Architecture, method: Method, defaults: [String]?)
        throws -> (modules: [ModuleSpec], expertParams: Set<String>) {
        let field = (method.spec.wrapper ?? .lowRank).targetsField
        let conversion = method.spec.wrapper == .lowRank ? arch.family.spec.moeConversion : nil
        var names: [String]
        switch spec {
        case .allLinear, .languageModel:
            // language-model: all-linear without a vision tower and projector
            let vision = spec == .languageModel
            let linear = arch.modules.filter { ($0.kind == .linear || $0.kind == .conv1d) && $0.role != .head && !(vision && $0.isVision) }
            guard let conversion else { return (linear, []) }
            // PEFT resolves all-linear to the leaf names of the Linear modules plus the
            // names the experts and router had as Linear modules in Transformers v4
            // (peft/utils/transformers_weight_conversion.py, _resolve_string_target_modules).
            names = Array(Set(linear.map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name })).sorted()
            names += conversion.mapping.map(\.old).filter { !names.contains($0) }
        case .default where method.spec.wrapper == .lowRank && arch.family.spec.loraTargetPattern != nil:
            return try resolveTargetsAndParameters(.pattern(arch.family.spec.loraTargetPattern!), arch: arch, method: method, defaults: nil)
        case .default:
            guard let d = defaults else {
                throw PlanError.invalidTargets(method: method.rawValue, reason:
                    "PEFT has no default target modules for model type '\(arch.family.rawValue)'; give \(field: field) (for example all-linear, or module names such as \(exampleTargets(arch)))")
            }
            names = d
        case let .pattern(p):
            // PEFT: a string target is matched with re.fullmatch against each module's name
            guard let regex = try? NSRegularExpression(pattern: "^(?:" + p + ")$") else {
                throw PlanError.invalidSetting(field, value: p, accepted: "a regular expression over module names")
            }
            var selected: [ModuleSpec] = []
            for m in arch.modules {
                let name = arch.fullName(m)
                guard regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil else { continue }
                guard m.kind == .linear || m.kind == .conv1d || (m.kind == .embedding && method.spec.wrapper == .lowRank) else {
                    throw PlanError.invalidTargets(method: method.rawValue, reason:
                        "target module '\(name)' is a \(m.kind.rawValue) module, which PEFT cannot wrap with \(method.title)")
                }
                selected.append(m)
            }
            guard !selected.isEmpty else {
                throw PlanError.invalidTargets(method: method.rawValue, reason: "no module of \(arch.name) matches the pattern \(p)")
            }
            return (selected, [])
        case let .list(l):
            guard !l.isEmpty else {
                throw PlanError.invalidSetting(field, value: "", accepted: "default, all-linear or module names separated by commas")
            }
            names = l
        }
        var parameterTargets = Set<String>()
        if let conversion {
            // _convert_peft_config_moe: a name that was an expert or router Linear in v4
            // becomes a target parameter of its fused v5 tensor and leaves target_modules.
            var moduleNames: [String] = []
            var fusedSeen: [String: Set<String>] = [:]
            for n in names {
                if let hit = conversion.mapping.first(where: { n == $0.old || n.hasSuffix("." + $0.old) }) {
                    parameterTargets.insert(hit.new)
                    fusedSeen[hit.new, default: []].insert(hit.old)
                } else {
                    moduleNames.append(n)
                }
            }
            for (fused, parts) in conversion.fused {
                let seen = fusedSeen[fused] ?? []
                if !seen.isEmpty && seen.count < parts.count {
                    throw PlanError.invalidTargets(method: method.rawValue, reason:
                        "PEFT cannot target \(seen.sorted().joined(separator: ", ")) without \(Set(parts).subtracting(seen).sorted().joined(separator: ", ")): they are fused into \(fused) in Transformers v5")
                }
            }
            names = moduleNames
        }
        var selected: [ModuleSpec] = []
        for m in arch.modules where names.contains(where: { matches(arch.fullName(m), $0) }) && !(spec == .languageModel && m.isVision) {
            // PEFT wraps Linear and Conv1D modules; LoRA also embeddings
            let wrappable = m.kind == .linear || m.kind == .conv1d || (m.kind == .embedding && method.spec.wrapper == .lowRank)
            guard wrappable else {
                throw PlanError.invalidTargets(method: method.rawValue, reason:
                    "target module '\(arch.fullName(m))' is a \(m.kind.rawValue) module, which PEFT cannot wrap with \(method.title)")
            }
            selected.append(m)
        }
        // target_parameters: "gate.weight" is the router's weight, the others the fused experts'
        var expertParams = Set<String>()
        for m in arch.modules {
            if m.kind == .router, parameterTargets.contains(where: { matches(arch.fullName(m) + ".weight", $0) }) { selected.append(m) }
            if m.kind == .experts {
                let hit = parameterTargets.filter { p in ["gate_up_proj", "down_proj"].contains(p) }
                if !hit.isEmpty { selected.append(m); expertParams.formUnion(hit) }
            }
        }
        guard !selected.isEmpty else {
            if names.isEmpty && parameterTargets.isEmpty {
                throw PlanError.invalidTargets(method: method.rawValue, reason:
                    "PEFT has no default target modules for model type '\(arch.family.rawValue)'; give \(field: field) (for example all-linear, or module names such as \(exampleTargets(arch)))")
            }
            throw PlanError.invalidTargets(method: method.rawValue, reason:
                "target modules \((names + parameterTargets.sorted()).joined(separator: ", ")) not found in \(arch.name) (its Linear modules: \(exampleTargets(arch)))")
        }
        return (selected, expertParams)
    }

    static func exampleTargets(_ arch: Architecture) -> String {
        var seen = Set<String>()
        return arch.modules.filter { ($0.kind == .linear || $0.kind == .conv1d) && $0.perLayer }
            .map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name }.filter { seen.insert($0).inserted }.joined(separator: ",")
    }

    /// Size of a safetensors file holding `tensors` as fp32 (or `dtype`), exactly: 8 bytes of header
    /// length, the JSON header (`__metadata__` {"format": "pt"} and one entry per tensor,
    /// offsets in name order), padded with spaces to a multiple of 8, then the data.
    /// (safetensors' serialisation format, as `save_pretrained()` writes it.)
    public static func safetensorsBytes(_ tensors: [AdapterTensor], dtype: String = "F32", elementBytes: Int = 4) -> Int {
        guard !tensors.isEmpty else { return 0 }
        let sorted = tensors.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        var header = "{\"__metadata__\":{\"format\":\"pt\"}".utf8.count
        var offset = 0
        for t in sorted {
            let bytes = t.numel * elementBytes
            let entry = "\"\(t.name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            header += 1 + entry.utf8.count
            offset += bytes
        }
        header += 1
        header += (8 - header % 8) % 8
        return 8 + header + offset
    }
}
