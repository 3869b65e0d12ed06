import Foundation

/// The fine-tuning methods peft-plan plans for.
public enum Method: String, CaseIterable, Sendable, Codable {
    case full, lora, qlora, adapter, prefix, prompt, ia3
    /// P-tuning (prompt tuning with an MLP prompt encoder); not part of `all`.
    case ptuning = "p-tuning"

    /// What `--method all` means: the seven methods of the planner's table.
    public static let standard: [Method] = [.full, .lora, .qlora, .adapter, .prefix, .prompt, .ia3]

    public var title: String {
        switch self {
        case .full: return "full fine-tuning"
        case .lora: return "LoRA"
        case .qlora: return "QLoRA"
        case .adapter: return "bottleneck adapters"
        case .prefix: return "prefix tuning"
        case .prompt: return "prompt tuning"
        case .ia3: return "IA³"
        case .ptuning: return "P-tuning"
        }
    }

    /// Methods that add virtual tokens to every sequence (prefix tuning to the keys only).
    var addsPromptTokens: Bool { self == .prompt || self == .ptuning }

    /// Learned positions the method's virtual tokens take before the sequence's own: prompt
    /// tuning and P-tuning put their tokens in front of the input, and prefix tuning starts
    /// the sequence's position ids after its prefix (Transformers' GPT-2 and OPT with PEFT
    /// 0.21.2: 12 + 20 prefix tokens run on 32 positions, 13 + 20 raise IndexError).
    public func positionsTaken(_ o: MethodOptions) -> Int {
        switch self {
        case .prompt, .ptuning: return o.promptTokens
        case .prefix: return o.prefixTokens
        case .full, .lora, .qlora, .adapter, .ia3: return 0
        }
    }

    /// The input that sets those tokens.
    var virtualTokensField: PlanField { self == .prefix ? .prefixTokens : .promptTokens }
    var virtualTokensWords: String { self == .prefix ? "prefix-tuning tokens" : "prompt-tuning tokens" }
}

/// Which modules a LoRA or IA³ configuration wraps.
public enum TargetSpec: Equatable, Sendable {
    /// PEFT's default for the model type (`TRANSFORMERS_MODELS_TO_*_TARGET_MODULES_MAPPING`).
    case `default`
    /// Every Linear/Conv1D module except the output head (`target_modules="all-linear"`).
    case allLinear
    /// Module names, matched as PEFT does: the full name equals one or ends with ".name".
    case list([String])

    /// Parses a command-line value, refusing an empty list and `all-linear` mixed with names.
    public static func parse(_ text: String, field: PlanField) throws -> TargetSpec {
        let accepted = "default, all-linear, or module names separated by commas (such as q_proj,v_proj)"
        switch text.lowercased().trimmingCharacters(in: .whitespaces) {
        case "default": return .default
        case "all-linear", "all_linear": return .allLinear
        default:
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw PlanError.invalidSetting(field, value: text, accepted: "\(accepted)") }
            if names.contains(where: { ["all-linear", "all_linear", "default"].contains($0.lowercased()) }) {
                throw PlanError.invalidSetting(field, value: text, accepted: "all-linear and default stand alone, not in a list of module names")
            }
            return .list(names)
        }
    }

    public var text: String {
        switch self {
        case .default: return "default"
        case .allLinear: return "all-linear"
        case let .list(l): return l.joined(separator: ",")
        }
    }
}

public enum QuantType: String, CaseIterable, Sendable { case nf4, fp4 }
public enum AdapterKind: String, CaseIterable, Sendable {
    /// One bottleneck after the feed-forward block (AdapterHub `seq_bn`).
    case pfeiffer
    /// Two: after attention and after the feed-forward block (AdapterHub `double_seq_bn`).
    case houlsby
}

/// Every method's own settings, with PEFT's defaults unless the design says otherwise.
public struct MethodOptions: Equatable, Sendable {
    public var loraR = 8
    public var loraAlpha = 16
    public var loraTargets: TargetSpec = .default
    /// PEFT's default is 0 (no dropout module); above 0 each wrapped module keeps a mask.
    public var loraDropout = 0.0
    public var dora = false
    public var quant: QuantType = .nf4
    public var doubleQuant = true
    public var adapter: AdapterKind = .pfeiffer
    public var adapterReduction = 16
    public var prefixTokens = 20
    /// Hidden width of the prefix reparameterisation MLP; 0 means no projection.
    public var prefixProjection = 0
    public var promptTokens = 20
    /// P-tuning's MLP encoder width; 0 means PEFT's default (the token dimension).
    public var ptuningHidden = 0
    public var ia3Targets: TargetSpec = .default
    /// Feed-forward modules for IA³ (scaled at their input); nil means PEFT's default.
    public var ia3Feedforward: [String]?

    public init() {}
}

extension PlanError {
    /// PEFT refuses gradient checkpointing for prefix tuning (its past key values).
    static let prefixRefusesCheckpointing = PlanError.conflict(
        "prefix tuning cannot be combined with \(field: .gradCheckpointing): PEFT refuses gradient checkpointing for prefix tuning")
}
