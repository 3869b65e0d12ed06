import Foundation

/// The config reader shared by the Llama-style families (`modeling_llama.py` and the files
/// written from it): pre-norm RMSNorm blocks, rotary embeddings, separate or fused q/k/v, a
/// gated feed-forward or a mixture of experts. Each family's file says how it differs, as
/// the fields below; the module names are Transformers v5's.
struct GatedReader {
    /// Where the q/k/v/o biases come from.
    enum AttentionBias {
        /// Fixed by the modelling code: Qwen2Attention hard-codes bias on q, k, v (not o).
        case fixed(qkv: Bool, o: Bool)
        /// The config's `attention_bias` (default false), on q, k, v and o alike.
        case fromConfig
    }

    let family: ModelFamily
    /// `tie_word_embeddings` when the config leaves it out (the config class's default).
    var tiedByDefault = false
    var attentionBias: AttentionBias = .fixed(qkv: false, o: false)
    /// LlamaConfig's `mlp_bias` (the others have none).
    var mlpBiasFromConfig = false
    var norm: NormKind = .rms
    var block = GatedBlock()
    /// Mixtral: `num_local_experts` experts, `num_experts_per_tok` of them per token.
    var experts = false

    func read(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        let kv = try f.optionalDim("num_key_value_heads") ?? heads
        let explicitHeadDim = try f.optionalDim("head_dim")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: kv, headDimGiven: explicitHeadDim != nil)
        let hd = explicitHeadDim ?? h / heads
        let inter = try f.dim("intermediate_size")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        var a = ConfigReader.blank(name, family, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                                   vocab: vocab, positions: positions,
                                   tied: try f.bool("tie_word_embeddings", default: tiedByDefault))
        a.norm = norm
        a.block = .gated(block)
        a.rotaryDim = hd
        a.layerPrefix = "model.layers"
        a.attentionDropout = try f.probability("attention_dropout", default: 0)

        let qkvBias: Bool, oBias: Bool
        switch attentionBias {
        case let .fixed(qkv, o): (qkvBias, oBias) = (qkv, o)
        case .fromConfig: qkvBias = try f.bool("attention_bias", default: false); oBias = qkvBias
        }
        let mlpBias = mlpBiasFromConfig ? try f.bool("mlp_bias", default: false) : false
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        if block.fusedProjections {
            m += [ModuleSpec("self_attn.o_proj", .linear, .o, in: a.qDim, out: h),
                  ModuleSpec("self_attn.qkv_proj", .linear, .qkv, in: h, out: a.qDim + 2 * a.kvDim),
                  ModuleSpec("mlp.gate_up_proj", .linear, .gateUp, in: h, out: 2 * inter),
                  ModuleSpec("mlp.down_proj", .linear, .down, in: inter, out: h)]
        } else {
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: a.qDim, bias: qkvBias),
                  ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: a.kvDim, bias: qkvBias),
                  ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: a.kvDim, bias: qkvBias),
                  ModuleSpec("self_attn.o_proj", .linear, .o, in: a.qDim, out: h, bias: oBias)]
            if block.headNorms {
                m += [ModuleSpec("self_attn.q_norm", .norm, .qNorm, ownParams: hd),
                      ModuleSpec("self_attn.k_norm", .norm, .kNorm, ownParams: hd)]
            }
            if experts {
                let count = try f.dim("num_local_experts")
                let perToken = try f.dim("num_experts_per_tok")
                guard perToken <= count else {
                    throw PlanError.invalidDimension(field: "num_experts_per_tok", value: "\(perToken)",
                                                     reason: "exceeds num_local_experts \(count)")
                }
                a.numExperts = count
                a.expertsPerToken = perToken
                let perExpertRow = count.multipliedReportingOverflow(by: 3 * h)
                guard !perExpertRow.overflow, !perExpertRow.partialValue.multipliedReportingOverflow(by: inter).overflow else {
                    throw PlanError.invalidDimension(field: "num_local_experts", value: "\(count)", reason: "the experts are too large to count")
                }
                // Transformers v5 fuses the experts into 3-D tensors (gate_up_proj, down_proj):
                // they are parameters, not Linear modules, so LoRA's module targets miss them.
                m += [ModuleSpec("mlp.gate", .router, .router, in: h, out: count, ownParams: count * h),
                      ModuleSpec("mlp.experts", .experts, .experts, in: h, out: inter, ownParams: count * 3 * h * inter)]
            } else {
                m += [ModuleSpec("mlp.gate_proj", .linear, .gate, in: h, out: inter, bias: mlpBias),
                      ModuleSpec("mlp.up_proj", .linear, .up, in: h, out: inter, bias: mlpBias),
                      ModuleSpec("mlp.down_proj", .linear, .down, in: inter, out: h, bias: mlpBias)]
            }
        }
        m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, block.sandwichNorms ? .attentionOutputNorm : .feedForwardNorm, ownParams: h)]
        if block.sandwichNorms {
            m += [ModuleSpec("pre_feedforward_layernorm", .norm, .feedForwardNorm, ownParams: h),
                  ModuleSpec("post_feedforward_layernorm", .norm, .feedForwardOutputNorm, ownParams: h)]
        }
        if block.scoreSoftcap {
            // Gemma2Config's default is 30.0; only an explicit null turns it off.
            if let v = f.dict["final_logit_softcapping"], !(v is NSNull) {
                guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue.isFinite, n.doubleValue > 0 else {
                    throw PlanError.invalidDimension(field: "final_logit_softcapping", value: "\(v)", reason: "must be a positive number or null")
                }
            }
            a.finalLogitSoftcapping = !(f.dict["final_logit_softcapping"] is NSNull)
            a.supportsSDPA = false   // Gemma2ForCausalLM refuses sdpa in Transformers v5 (soft-capping)
        }
        m += [ModuleSpec("model.norm", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }
}
