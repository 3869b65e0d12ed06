import Foundation

/// The model families peft-plan reads from a Hugging Face `config.json`, by `model_type`.
///
/// This enum and ``ModelFamily/spec`` are the registry: the only list of families. A
/// family is its case here, its line in `spec`, its own file in this folder (a
/// ``FamilySpec``) and its preset configs in `Resources/models`. Everything else asks the
/// descriptor or the ``Architecture`` the descriptor builds; nothing switches over families.
public enum ModelFamily: String, CaseIterable, Sendable, Codable {
    case llama, mistral, mixtral, qwen2, qwen3, gemma, gemma2, phi3, gpt2
    case gptNeoX = "gpt_neox"
    case opt, falcon, bloom

    /// The family's descriptor.
    public var spec: FamilySpec {
        switch self {
        case .llama: return .llama
        case .mistral: return .mistral
        case .mixtral: return .mixtral
        case .qwen2: return .qwen2
        case .qwen3: return .qwen3
        case .gemma: return .gemma
        case .gemma2: return .gemma2
        case .phi3: return .phi3
        case .gpt2: return .gpt2
        case .gptNeoX: return .gptNeoX
        case .opt: return .opt
        case .falcon: return .falcon
        case .bloom: return .bloom
        }
    }
}

/// Everything peft-plan knows about one model family, in one value.
///
/// `read` turns the config's fields into an ``Architecture``: its modules (with their
/// ``ModuleRole``s, in `named_modules()` order), its ``BlockShape`` (which symbolic block the
/// memory and FLOP model plays) and its quirks as named properties. The rest is what PEFT
/// itself keys on the model type.
public struct FamilySpec: Sendable {
    /// Builds the architecture from the config's fields; `name` is the model's name.
    let read: @Sendable (ConfigReader.Fields, String) throws -> Architecture
    /// PEFT's default LoRA targets for the model type
    /// (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`, peft/utils/constants.py,
    /// PEFT 0.21.2); nil where PEFT has none and asks for explicit `target_modules`.
    public let loraTargets: [String]?
    /// PEFT's default IA³ targets and the feed-forward ones among them
    /// (`TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING` and `…_FEEDFORWARD_MODULES_MAPPING`).
    public let ia3Targets: (targets: [String], feedforward: [String])?
    /// Whether Transformers' config for this family carries `num_key_value_heads`, which
    /// makes PEFT size prefix tuning by the KV heads (`_prepare_prompt_learning_config`).
    public let configHasKVHeads: Bool
}
