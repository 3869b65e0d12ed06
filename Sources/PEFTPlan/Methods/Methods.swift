import Foundation

/// Which modules a LoRA or IA³ configuration wraps.
public enum TargetSpec: Equatable, Sendable {
    /// PEFT's default for the model type (`TRANSFORMERS_MODELS_TO_*_TARGET_MODULES_MAPPING`).
    case `default`
    /// Every Linear/Conv1D module except the output head (`target_modules="all-linear"`).
    case allLinear
    /// Module names, matched as PEFT does: the full name equals one or ends with ".name".
    case list([String])
    /// Every Linear of the language model (all-linear without a vision tower and projector):
    /// written to PEFT as ``pattern(_:)`` (``Architecture/languageModelTargetPattern``).
    case languageModel
    /// A regular expression PEFT matches against whole module names (`re.fullmatch`, when
    /// `target_modules` is a string other than "all-linear").
    case pattern(String)

    /// Parses a command-line value, refusing an empty list and `all-linear` mixed with names.
    public static func parse(_ text: String, field: PlanField) throws -> TargetSpec {
        let accepted = "default, all-linear, language-model (a vision-language model's language model only), or module names separated by commas (such as q_proj,v_proj)"
        switch text.lowercased().trimmingCharacters(in: .whitespaces) {
        case "default": return .default
        case "all-linear", "all_linear": return .allLinear
        case "language-model", "language_model": return .languageModel
        default:
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw PlanError.invalidSetting(field, value: text, accepted: "\(accepted)") }
            if names.contains(where: { ["all-linear", "all_linear", "default", "language-model", "language_model"].contains($0.lowercased()) }) {
                throw PlanError.invalidSetting(field, value: text, accepted: "all-linear, language-model and default stand alone, not in a list of module names")
            }
            return .list(names)
        }
    }

    public var text: String {
        switch self {
        case .default: return "default"
        case .allLinear: return "all-linear"
        case let .list(l): return l.joined(separator: ",")
        case .languageModel: return "language-model"
        case let .pattern(p): return p
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

/// The dtype LoRA's adapters live in.
public enum AdapterDtype: String, CaseIterable, Sendable {
    /// fp32: PEFT's default since 0.12 (`get_peft_model(..., autocast_adapter_dtype=True)`
    /// upcasts bf16/fp16 adapter weights, peft/tuners/tuners_utils.py `_cast_adapter_dtype`).
    case fp32
    /// The model's 16-bit dtype: `autocast_adapter_dtype=False`, or PEFT before 0.12, whose
    /// LoRA layers take the base weight's floating dtype (peft v0.10.0 tuners/lora/layer.py
    /// `update_layer`: `self.to(weight.device, dtype=weight.dtype)`); under QLoRA the 4-bit
    /// weights must be stored in that dtype (`bnb_4bit_quant_storage`, as FSDP-QLoRA sets it).
    case model
}

/// The dtype QLoRA's unquantised weights (embeddings, norms, lm_head, biases) train beside the
/// 4-bit block Linears in, and with them the residual stream the norms write.
public enum QLoRARest: String, CaseIterable, Sendable {
    /// fp32: PEFT's `prepare_model_for_kbit_training` casts every non-4-bit parameter to fp32
    /// (peft/utils/other.py), so the norms, the residual stream and the head run in fp32.
    case fp32
    /// The model's 16-bit dtype, as loaded: stacks that never call it — TRL 1.16's SFTTrainer
    /// (trl/trainer/sft_trainer.py: no such call; it casts the adapters to bf16 instead),
    /// Answer.AI's FSDP-QLoRA (fsdp_qlora train.py @05ed9f2a: `load_and_quantize(...,
    /// dtype=torch_dtype)` for every weight, lm_head skipped from quantisation), torchtune
    /// (its NF4 tensors beside bf16 modules) and Unsloth (casts only the trainable parameters).
    case model
}

extension Method {
    /// Bytes per element of QLoRA's unquantised weights and of the residual stream under
    /// `o` (fp32 after `prepare_model_for_kbit_training`, or the model's dtype); Unsloth's kernel
    /// stack keeps them 16-bit (unsloth-zoo @ce232d6c training_utils.py L376–422). 0 for a
    /// method that quantises nothing.
    public func quantisedRestBytes(_ o: MethodOptions, precision: Precision, kernels: KernelStack) -> Int {
        guard spec.quantisesBase else { return 0 }
        return o.qloraRest == .model || kernels == .unsloth ? precision.bytes : 4
    }

    /// Whether the method trains LoRA adapters kept in the model's 16-bit dtype under `o`.
    public func adaptersInModelDtype(_ o: MethodOptions) -> Bool {
        spec.wrapper == .lowRank && o.adapterDtype == .model
    }

    /// Bytes per element of a PEFT method's trainable tensors (and so of their gradients,
    /// torch optimizer states and the inputs PEFT casts to them): fp32, or the 16-bit model
    /// dtype for LoRA adapters kept in it.
    public func adapterElementBytes(_ o: MethodOptions, precision: Precision) -> Int {
        adaptersInModelDtype(o) ? precision.bytes : 4
    }
}

/// Every method's own settings, with PEFT's defaults unless the design says otherwise.
public struct MethodOptions: Equatable, Sendable {
    public var loraR = 8
    public var loraAlpha = 16
    public var loraTargets: TargetSpec = .default
    /// PEFT's default is 0 (no dropout module); above 0 each wrapped module keeps a mask.
    public var loraDropout = 0.0
    public var dora = false
    /// The dtype of LoRA's adapter weights (and so of their gradients and optimizer states,
    /// and of the input lora_A multiplies).
    public var adapterDtype: AdapterDtype = .fp32
    /// QLoRA's unquantised weights and residual stream: fp32 (`prepare_model_for_kbit_training`)
    /// or the model's 16-bit dtype.
    public var qloraRest: QLoRARest = .fp32
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
    /// A method whose ``CheckpointingRule`` is `.refused` asked to run with checkpointing.
    static func refusesCheckpointing(_ m: Method) -> PlanError {
        .conflict("\(m.title) cannot be combined with \(field: .gradCheckpointing): PEFT refuses gradient checkpointing for \(m.title)")
    }
}
