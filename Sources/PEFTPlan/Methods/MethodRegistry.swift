import Foundation

/// The fine-tuning methods peft-plan plans for.
///
/// This enum and ``Method/spec`` are the registry: the only list of methods. A method is
/// its case here, its line in `spec`, its own file in this folder (a ``MethodSpec``: its
/// traits, its PEFT parameter accounting, its notes), its PEFT config in `PEFTEmit`, and its
/// options on the command line. The memory, FLOP and time models ask the traits.
public enum Method: String, CaseIterable, Sendable, Codable {
    case full, lora, qlora, adapter, prefix, prompt, ia3
    /// P-tuning (prompt tuning with an MLP prompt encoder); not part of `all`.
    case ptuning = "p-tuning"

    /// What `--method all` means: the seven methods of the planner's table.
    public static let standard: [Method] = [.full, .lora, .qlora, .adapter, .prefix, .prompt, .ia3]

    /// The method's descriptor.
    public var spec: MethodSpec {
        switch self {
        case .full: return .full
        case .lora: return .lora
        case .qlora: return .qlora
        case .adapter: return .adapter
        case .prefix: return .prefix
        case .prompt: return .prompt
        case .ia3: return .ia3
        case .ptuning: return .ptuning
        }
    }

    public var title: String { spec.title }

    /// Learned positions the method's virtual tokens take before the sequence's own: prompt
    /// tuning and P-tuning put their tokens in front of the input, and prefix tuning starts
    /// the sequence's position ids after its prefix (Transformers' GPT-2 and OPT with PEFT
    /// 0.21.2: 12 + 20 prefix tokens run on 32 positions, 13 + 20 raise IndexError).
    public func positionsTaken(_ o: MethodOptions) -> Int { spec.virtualTokens?.count(o) ?? 0 }

    /// The input that sets those tokens.
    var virtualTokensField: PlanField { spec.virtualTokens?.field ?? .promptTokens }
    var virtualTokensWords: String { spec.virtualTokens?.words ?? "virtual tokens" }
}

/// Everything the model needs to know about one method, as named traits.
public struct MethodSpec: Sendable {
    public let title: String
    /// How the base model's weights are held.
    public let base: BaseWeights
    /// How the method meets gradient checkpointing.
    public let checkpointing: CheckpointingRule
    /// The modules it wraps (picked by a target list), if any.
    public let wrapper: ModuleWrapper?
    /// The virtual tokens it adds, if any.
    public let virtualTokens: VirtualTokens?
    /// AdapterHub's bottleneck after the feed-forward block (and attention, Houlsby).
    public let insertsBottleneck: Bool
    /// P-tuning: the prompt passes through an MLP encoder every step.
    public let promptEncoderMLP: Bool
    /// The plan's assumption lines the method brings (each printed once, in a fixed order).
    public let notes: [MethodNote]
    /// A method that holds less of the GPU, for the advice when this one does not fit.
    public let leaner: (method: Method, change: PlanText)?
    /// The tensors PEFT adds and what `save_pretrained()` writes (``ParameterAccounting``).
    let account: @Sendable (Architecture, Method, MethodOptions) throws -> ParameterAccount

    /// Full fine-tuning: every base weight trains, with its gradient and optimizer state.
    public var trainsBase: Bool { base == .trained }
    /// QLoRA: the block Linear weights are stored in 4 bits and dequantised per matmul; the
    /// rest is upcast to fp32 (`prepare_model_for_kbit_training`), the residual stream too.
    public var quantisesBase: Bool { base == .quantised4bit }
    public var forcesCheckpointing: Bool { if case .forced = checkpointing { return true } else { return false } }
    public var refusesCheckpointing: Bool { checkpointing == .refused }
    /// The checkpointing settings a search may try.
    public var checkpointingChoices: [Bool] {
        switch checkpointing {
        case .optional: return [false, true]
        case .forced: return [true]
        case .refused: return [false]
        }
    }
    /// Whether the run has checkpointing when the user asked for `requested`.
    public func checkpointing(requested: Bool) -> Bool { requested || forcesCheckpointing }
}

public enum BaseWeights: Sendable, Equatable {
    /// Trained (full fine-tuning).
    case trained
    /// Frozen in the training precision.
    case frozen
    /// Frozen, block Linear weights in bitsandbytes 4-bit (QLoRA).
    case quantised4bit
}

public enum CheckpointingRule: Sendable, Equatable {
    /// The user chooses.
    case optional
    /// Always on, for the reason given (QLoRA: `prepare_model_for_kbit_training` turns it on).
    case forced(reason: String)
    /// Never: PEFT refuses gradient checkpointing with prefix tuning's past key values.
    case refused
}

/// How a method changes the modules its target list picks (PEFT's tuner layers).
public enum ModuleWrapper: Sendable, Equatable {
    /// LoRA's rank-r pair A, B beside the frozen weight, fp32 (`autocast_adapter_dtype`);
    /// PEFT also wraps embeddings and, under `all-linear`, a MoE's router and fused experts.
    case lowRank
    /// IA³'s learned vector scaling the module's output (or, for feed-forward modules, input).
    case scaling

    /// The input that lists the targets.
    public var targetsField: PlanField { self == .scaling ? .ia3Targets : .loraTargets }
}

/// Learned tokens a method adds to every sequence.
public enum VirtualTokens: Sendable, Equatable {
    /// In front of the input embeddings: they lengthen the query (prompt tuning, P-tuning).
    case input
    /// In front of every layer's keys and values (prefix tuning's past key values).
    case keysValues

    public func count(_ o: MethodOptions) -> Int { self == .keysValues ? o.prefixTokens : o.promptTokens }
    public var field: PlanField { self == .keysValues ? .prefixTokens : .promptTokens }
    public var words: String { self == .keysValues ? "prefix-tuning tokens" : "prompt-tuning tokens" }
}

/// An assumption line a method brings to a plan's notes. Methods that share one (LoRA and
/// QLoRA the LoRA line, prompt tuning and P-tuning the virtual tokens) print it once; the
/// lines are printed by `order`. Each is defined in the file of the method it belongs to.
public struct MethodNote: Sendable {
    public let order: Int
    let text: @Sendable (MethodOptions) -> PlanText
}
