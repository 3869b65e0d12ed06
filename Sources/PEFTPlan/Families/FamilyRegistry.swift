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
    case qwen2MoE = "qwen2_moe", qwen3MoE = "qwen3_moe", minimaxM2 = "minimax_m2", gptOss = "gpt_oss"
    case deepseekV3 = "deepseek_v3", deepseekV32 = "deepseek_v32", glmMoeDsa = "glm_moe_dsa"
    case smollm3, olmo2, exaone4, starcoder2, gemma3Text = "gemma3_text"
    case qwen3Next = "qwen3_next", qwen35 = "qwen3_5", qwen35MoE = "qwen3_5_moe", lfm2
    case olmo3, olmoe, ministral, ministral3, granite, granitemoe, granitemoeshared
    case glm4, glm4MoE = "glm4_moe", phimoe, deepseekV2 = "deepseek_v2", phi, cohere2
    case llama4Text = "llama4_text", llama4, mimoV2Flash = "mimo_v2_flash", nemotronH = "nemotron_h", granitemoehybrid, falconH1 = "falcon_h1"
    case qwen25VL = "qwen2_5_vl", qwen3VL = "qwen3_vl", qwen3VLMoE = "qwen3_vl_moe", gemma3, lfm2VL = "lfm2_vl", mistral3
    case kimiK25 = "kimi_k25", gemma4Text = "gemma4_text", gemma4, deepseekV4 = "deepseek_v4"

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
        case .qwen2MoE: return .qwen2MoE
        case .qwen3MoE: return .qwen3MoE
        case .minimaxM2: return .minimaxM2
        case .gptOss: return .gptOss
        case .deepseekV3: return .deepseekV3
        case .deepseekV32: return .deepseekV32
        case .glmMoeDsa: return .glmMoeDsa
        case .smollm3: return .smollm3
        case .olmo2: return .olmo2
        case .exaone4: return .exaone4
        case .starcoder2: return .starcoder2
        case .gemma3Text: return .gemma3Text
        case .qwen3Next: return .qwen3Next
        case .qwen35: return .qwen35
        case .qwen35MoE: return .qwen35MoE
        case .lfm2: return .lfm2
        case .olmo3: return .olmo3
        case .olmoe: return .olmoe
        case .ministral: return .ministral
        case .ministral3: return .ministral3
        case .granite: return .granite
        case .granitemoe: return .granitemoe
        case .granitemoeshared: return .granitemoeshared
        case .glm4: return .glm4
        case .glm4MoE: return .glm4MoE
        case .phimoe: return .phimoe
        case .deepseekV2: return .deepseekV2
        case .phi: return .phi
        case .cohere2: return .cohere2
        case .llama4Text: return .llama4Text
        case .llama4: return .llama4
        case .mimoV2Flash: return .mimoV2Flash
        case .nemotronH: return .nemotronH
        case .granitemoehybrid: return .granitemoehybrid
        case .falconH1: return .falconH1
        case .qwen25VL: return .qwen25VL
        case .qwen3VL: return .qwen3VL
        case .qwen3VLMoE: return .qwen3VLMoE
        case .gemma3: return .gemma3
        case .lfm2VL: return .lfm2VL
        case .mistral3: return .mistral3
        case .kimiK25: return .kimiK25
        case .gemma4Text: return .gemma4Text
        case .gemma4: return .gemma4
        case .deepseekV4: return .deepseekV4
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
    /// Reads `fields` with this family's reader, the class defaults filling missing keys.
    func build(_ fields: ConfigReader.Fields, _ name: String) throws -> Architecture {
        guard !configDefaults.isEmpty else { return try read(fields, name) }
        var dict = fields.dict
        for (k, v) in configDefaults where dict[k] == nil || dict[k] is NSNull { dict[k] = v }
        return try read(ConfigReader.Fields(dict, source: fields.source), name)
    }

    /// Builds the architecture from the config's fields; `name` is the model's name.
    let read: @Sendable (ConfigReader.Fields, String) throws -> Architecture
    /// PEFT's default LoRA targets for the model type
    /// (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`, peft/utils/constants.py,
    /// PEFT 0.21.2); nil where PEFT has none and asks for explicit `target_modules`.
    public let loraTargets: [String]?
    /// PEFT's default LoRA targets where the mapping gives a regular expression over module
    /// names rather than names (Gemma 4: its language model's q_proj and v_proj).
    public var loraTargetPattern: String? = nil
    /// PEFT's default IA³ targets and the feed-forward ones among them
    /// (`TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING` and `…_FEEDFORWARD_MODULES_MAPPING`).
    public let ia3Targets: (targets: [String], feedforward: [String])?
    /// Whether Transformers' config for this family carries `num_key_value_heads`, which
    /// makes PEFT size prefix tuning by the KV heads (`_prepare_prompt_learning_config`).
    public let configHasKVHeads: Bool
    /// How PEFT rewrites LoRA targets for the family's fused experts, if it does
    /// (Transformers' `_MODEL_TO_CONVERSION_PATTERN`, conversion_mapping.py, 5.25.0).
    public var moeConversion: MoEConversion? = nil
    /// A vision-language config whose language model AutoModelForCausalLM builds from
    /// `text_config` (the vision tower is then not part of the model).
    public var nestedTextConfig = false
    /// Module names PEFT refuses LoRA on for this model type (Mamba mixers' `out_proj` and
    /// `conv1d`: `_check_lora_target_modules_mamba`, peft/tuners/tuners_utils.py, 0.21.2).
    public var loraRefusedModules: Set<String>? = nil
    /// Module names PEFT wraps (all-linear picks them) but whose LoRA forward then fails, with
    /// what the module is: planning refuses targets that include them and plans the others.
    /// A router that is an `nn.Linear` subclass returning a tuple (PhiMoE's `PhimoeTopKRouter`,
    /// Llama 4's `Llama4Router`: the wrapped layer adds its update to a tuple); DeepSeek-V4's
    /// grouped `o_a_proj` (a batched matmul per group, whose output LoRA's update does not match).
    public var loraFailingModules: [String: String] = [:]
    /// `num_key_value_heads` when the config leaves it out: the configuration class's default
    /// (Transformers 5.25; e.g. 8 for Mistral, 4 for Qwen3-MoE); nil where the class takes
    /// `num_attention_heads`.
    public var kvHeadsDefault: Int? = nil
    /// The configuration class's defaults for keys a published config may leave out (Gemma 3's
    /// `text_config` gives no vocabulary size or heads: `Gemma3TextConfig` supplies them).
    nonisolated(unsafe) var configDefaults: [String: Any] = [:]
    /// A vision-language family: how its language model and image side are read.
    var vision: VisionLanguageReader? = nil
    /// What Liger-Kernel's layer kernels replace in this model type; nil where Liger has no
    /// patch for it.
    public var liger: LigerPatch? = nil
    /// Whether Unsloth's `FastLanguageModel` runs this model type on its hand-written kernels
    /// (unsloth @015bdef0 models/loader.py L828–890: llama, mistral, gemma, gemma2, qwen2,
    /// qwen3, for LoRA and 4-bit QLoRA; every other type, and full fine-tuning, goes through
    /// its `torch.compile`d Transformers code, whose saved tensors Inductor decides).
    public var unslothKernels = false
}

/// PEFT's rewrite of LoRA targets for MoE families whose experts Transformers v5 fused into
/// 3-D tensors (peft/utils/transformers_weight_conversion.py, `_MOE_TARGET_MODULE_MAPPING`
/// and `_MOE_FUSED_TARGETS`, PEFT 0.21.2): a target that names a v4 expert or router Linear
/// becomes a target parameter of the fused tensor, and the routers and experts are then
/// wrapped by `ParamWrapper`. With no targets the config is left with none, so PEFT refuses.
public enum MoEConversion: Sendable {
    /// Mixtral, MiniMax: `gate` → router, `w1` and `w3` → `gate_up_proj`, `w2` → `down_proj`.
    case mixtral
    /// Qwen2-MoE pattern (Qwen3-MoE, DeepSeek V2/V3, GLM, OLMoE, …): `gate` → router,
    /// `gate_proj` and `up_proj` → `gate_up_proj`, `down_proj` → `down_proj` — which also
    /// takes those names away from the dense and shared-expert MLPs.
    case qwen2MoE

    var mapping: [(old: String, new: String)] {
        switch self {
        case .mixtral: return [("gate", "gate.weight"), ("w1", "gate_up_proj"), ("w3", "gate_up_proj"), ("w2", "down_proj")]
        case .qwen2MoE: return [("gate", "gate.weight"), ("gate_proj", "gate_up_proj"), ("up_proj", "gate_up_proj"), ("down_proj", "down_proj")]
        }
    }
    var fused: [String: [String]] {
        switch self {
        case .mixtral: return ["gate_up_proj": ["w1", "w3"]]
        case .qwen2MoE: return ["gate_up_proj": ["gate_proj", "up_proj"]]
        }
    }
}
