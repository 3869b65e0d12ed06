import Foundation

/// The config reader shared by the Llama-style families (`modeling_llama.py` and the files
/// written from it): RMSNorm blocks, rotary embeddings, separate or fused q/k/v, a gated
/// feed-forward or a mixture of experts. Each family's file says how it differs, as the
/// fields below; the module names and shapes are Transformers v5's.
struct GatedReader {
    /// Where the q/k/v/o biases come from.
    enum AttentionBias {
        /// Fixed by the modelling code: Qwen2Attention hard-codes bias on q, k, v (not o).
        case fixed(qkv: Bool, o: Bool)
        /// The config's `attention_bias` (default false), on q, k, v and o alike.
        case fromConfig
        /// The config's `attention_bias` on q, k and v; o never (GLM-4, GLM-4.5: `o_proj` has none).
        case fromConfigQKV
        /// The config's `use_bias` on every projection of the block (Starcoder2).
        case useBias
    }

    let family: ModelFamily
    /// `tie_word_embeddings` when the config leaves it out (the config class's default).
    var tiedByDefault = false
    var attentionBias: AttentionBias = .fixed(qkv: false, o: false)
    /// `attention_bias` when the config leaves it out (GLM-4's class says true).
    var attentionBiasDefault = false
    /// LlamaConfig's `mlp_bias` (the others have none).
    var mlpBiasFromConfig = false
    /// PhiMoE: `lm_head_bias` (default false) puts a bias on the output projection.
    var headBiasFromConfig = false
    /// The rotated share of each head when the config gives no `partial_rotary_factor`
    /// (GLM-4 and GLM-4.5's classes: 0.5); the rest of the head passes through unrotated.
    var partialRotaryDefault = 1.0
    var norm: NormKind = .rms
    var block = GatedBlock()
    /// GLM-4.5: per-head q/k norms only when this config key is true (default false).
    var headNormKey: String?
    /// The mixture of experts, if the family has one.
    var moe: MoEReader?
    /// Multi-head latent attention (DeepSeek V2/V3, GLM-5) in place of q/k/v projections.
    var mla: MLAReader?
    /// gpt-oss, MiMo: a learned logit per head that joins every softmax (`self_attn.sinks`).
    var sinks = false
    /// The width of the MLP when the config's key is not `intermediate_size`.
    var intermediateKeys = ["intermediate_size"]
    /// The dense MLP's attribute (`mlp`; Llama 4: `feed_forward`).
    var mlpPrefix = "mlp"
    /// Llama 4: the parameter-free RMSNorm of q and k (`self_attn.qk_norm`) in the rotary
    /// layers when `use_qk_norm` (default true); `no_rope_layers` (1: rotary) says which,
    /// default every layer but each `no_rope_layer_interval`-th (4).
    var weightlessQKNormInRotaryLayers = false
    /// `head_dim` when the config leaves it out (the config class's default; nil: hidden / heads).
    var headDimDefault: Int?
    /// Gated DeltaNet layers between full-attention ones (Qwen3-Next, Qwen3.5).
    var linearAttention: LinearAttentionReader?
    /// gpt-oss: the experts' clamped SwiGLU.
    var clampedSwiGLU = false
    /// StarCoder2: `residual_dropout` after attention and MLP, `embedding_dropout` after the embedding.
    var readsDropouts = false
    /// Gemma 3: `final_logit_softcapping` (default null) soft-caps the logits when set.
    var logitSoftcapFromConfig = false

    func read(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        let kv = try f.optionalDim("num_key_value_heads") ?? family.spec.kvHeadsDefault ?? heads
        let explicitHeadDim = try f.optionalDim("head_dim") ?? headDimDefault
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: kv, headDimGiven: explicitHeadDim != nil || mla != nil)
        let hd = explicitHeadDim ?? h / heads
        // an MoE model with no dense layer may leave the dense width out (Qwen3.5-MoE)
        let inter = try intermediateKeys.lazy.compactMap { try f.optionalDim($0) }.first
            ?? (moe?.denseWidthDefault)
            ?? (moe != nil ? f.optionalDim("moe_intermediate_size") : nil)
            ?? { throw PlanError.invalidDimension(field: intermediateKeys[0], value: "missing", reason: "the config must give it") }()
        let vocab = try f.dim("vocab_size")
        let positions = try f.contextLength("max_position_embeddings") ?? 2048
        var a = ConfigReader.blank(name, family, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                                   vocab: vocab, positions: positions,
                                   tied: try f.bool("tie_word_embeddings", default: tiedByDefault))
        a.norm = norm
        a.rotaryDim = try ConfigReader.rotaryWidth(f, headDim: hd, default: partialRotaryDefault)
        a.layerPrefix = "model.layers"
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        if readsDropouts {
            a.hiddenDropout = try f.probability("residual_dropout", default: 0)
            a.embeddingDropout = try f.probability("embedding_dropout", default: 0)
        }
        if sinks { a.supportsSDPA = false }   // GptOssForCausalLM: _supports_sdpa = False (eager with sinks)

        let qkvBias: Bool, oBias: Bool
        switch attentionBias {
        case let .fixed(qkv, o): (qkvBias, oBias) = (qkv, o)
        case .fromConfig: qkvBias = try f.bool("attention_bias", default: attentionBiasDefault); oBias = qkvBias
        case .fromConfigQKV: qkvBias = try f.bool("attention_bias", default: attentionBiasDefault); oBias = false
        case .useBias: qkvBias = try f.bool("use_bias", default: true); oBias = qkvBias
        }
        var mlpBias = mlpBiasFromConfig ? try f.bool("mlp_bias", default: false) : false
        if case .useBias = attentionBias { mlpBias = qkvBias }
        var block = self.block
        if let key = headNormKey { block.headNorm = try f.bool(key, default: false) ? .perHead : .none }
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        if let mla {
            let read = try mla.read(f, hidden: h, heads: heads, bias: try f.bool("attention_bias", default: false))
            m += read.modules
            a.headDim = read.qkHeadDim
            a.rotaryDim = read.ropeDim
            a.nKVHeads = heads
            block.latent = read.shape
        } else if block.fusedProjections {
            m += [ModuleSpec("self_attn.o_proj", .linear, .o, in: a.qDim, out: h),
                  ModuleSpec("self_attn.qkv_proj", .linear, .qkv, in: h, out: a.qDim + 2 * a.kvDim)]
        } else {
            // Qwen3-Next / Qwen3.5: full attention only in some layers, Gated DeltaNet in the others
            var attentionLayers: [Int]? = nil
            if let linearAttention {
                let read = try linearAttention.read(f, hidden: h, layers: layers)
                m += read.modules
                attentionLayers = read.attentionLayers
                block.linearAttention = read.widths
                block.attentionOutputGate = try f.bool("attn_output_gate", default: true)
            }
            let qOut = block.attentionOutputGate ? 2 * a.qDim : a.qDim
            if sinks { m.append(ModuleSpec("self_attn.sinks", .parameters, .sinks, ownParams: heads)) }
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: qOut, bias: qkvBias, layers: attentionLayers),
                  ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: a.kvDim, bias: qkvBias, layers: attentionLayers),
                  ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: a.kvDim, bias: qkvBias, layers: attentionLayers),
                  ModuleSpec("self_attn.o_proj", .linear, .o, in: a.qDim, out: h, bias: oBias, layers: attentionLayers)]
            if try weightlessQKNormInRotaryLayers && f.bool("use_qk_norm", default: true) {
                let rotary = try Self.rotaryLayers(f, layers: layers)
                if !rotary.isEmpty {
                    m.append(ModuleSpec("self_attn.qk_norm", .norm, .qNorm, ownParams: 0, layers: rotary.count == layers ? nil : rotary))
                    block.headNorm = .weightless
                }
            }
            switch block.headNorm {
            case .none, .weightless: break
            case .perHead:
                m += [ModuleSpec("self_attn.q_norm", .norm, .qNorm, ownParams: hd, layers: attentionLayers),
                      ModuleSpec("self_attn.k_norm", .norm, .kNorm, ownParams: hd, layers: attentionLayers)]
            case .fullWidth:
                m += [ModuleSpec("self_attn.q_norm", .norm, .qNorm, ownParams: a.qDim, layers: attentionLayers),
                      ModuleSpec("self_attn.k_norm", .norm, .kNorm, ownParams: a.kvDim, layers: attentionLayers)]
            }
        }
        block.sinks = sinks
        block.clampedSwiGLU = clampedSwiGLU
        // the feed-forward block: dense everywhere, experts everywhere, or dense in some layers
        let moeLayers = try moe?.expertLayers(f, layers: layers) ?? []
        let denseLayers = (0..<layers).filter { !moeLayers.contains($0) }
        let denseSet: [Int]? = moeLayers.isEmpty ? nil : denseLayers
        if !denseLayers.isEmpty {
            if block.fusedProjections || block.fusedGateUp {
                m += [ModuleSpec("\(mlpPrefix).gate_up_proj", .linear, .gateUp, in: h, out: 2 * inter, layers: denseSet),
                      ModuleSpec("\(mlpPrefix).down_proj", .linear, .down, in: inter, out: h, layers: denseSet)]
            } else if block.plainMLP {
                m += [ModuleSpec("mlp.c_fc", .linear, .up, in: h, out: inter, bias: mlpBias, layers: denseSet),
                      ModuleSpec("mlp.c_proj", .linear, .down, in: inter, out: h, bias: mlpBias, layers: denseSet)]
            } else {
                m += [ModuleSpec("\(mlpPrefix).gate_proj", .linear, .gate, in: h, out: inter, bias: mlpBias, layers: denseSet),
                      ModuleSpec("\(mlpPrefix).up_proj", .linear, .up, in: h, out: inter, bias: mlpBias, layers: denseSet),
                      ModuleSpec("\(mlpPrefix).down_proj", .linear, .down, in: inter, out: h, bias: mlpBias, layers: denseSet)]
            }
        }
        if let moe, !moeLayers.isEmpty {
            let read = try moe.read(f, hidden: h, layers: denseLayers.isEmpty ? nil : moeLayers, sharedBias: mlpBias)
            m += read.modules
            a.numExperts = read.experts
            a.expertsPerToken = read.perToken
            block.sharedExpert = read.shared
            block.fp32Router = moe.fp32Router
        }
        switch block.norms {
        case .pre:
            m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: norm == .layer ? 2 * h : h),
                  ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: norm == .layer ? 2 * h : h)]
        case .sandwich:
            m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
                  ModuleSpec("post_attention_layernorm", .norm, .attentionOutputNorm, ownParams: h),
                  ModuleSpec("pre_feedforward_layernorm", .norm, .feedForwardNorm, ownParams: h),
                  ModuleSpec("post_feedforward_layernorm", .norm, .feedForwardOutputNorm, ownParams: h)]
        case .post:
            m += [ModuleSpec("post_attention_layernorm", .norm, .attentionOutputNorm, ownParams: h),
                  ModuleSpec("post_feedforward_layernorm", .norm, .feedForwardOutputNorm, ownParams: h)]
        case .parallel:
            m.append(ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: norm == .layer ? 2 * h : h))
        case .glm:
            // Glm4DecoderLayer: the same four norms as the sandwich, under other names
            m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
                  ModuleSpec("post_self_attn_layernorm", .norm, .attentionOutputNorm, ownParams: h),
                  ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: h),
                  ModuleSpec("post_mlp_layernorm", .norm, .feedForwardOutputNorm, ownParams: h)]
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
        if logitSoftcapFromConfig, let v = f.dict["final_logit_softcapping"], !(v is NSNull) {
            guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue.isFinite, n.doubleValue > 0 else {
                throw PlanError.invalidDimension(field: "final_logit_softcapping", value: "\(v)", reason: "must be a positive number or null")
            }
            a.finalLogitSoftcapping = true
        }
        m += [ModuleSpec("model.norm", .norm, .finalNorm, ownParams: norm == .layer ? 2 * h : h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab,
                         bias: headBiasFromConfig ? try f.bool("lm_head_bias", default: false) : false,
                         perLayer: false, tied: a.tiedEmbeddings)]
        a.block = .gated(block)
        a.modules = m
        return a
    }
}

extension GatedReader {
    /// Llama 4's rotary layers: `no_rope_layers` (1 where the layer uses rotary embeddings;
    /// null or empty: every layer but each `no_rope_layer_interval`-th, 4 by default).
    static func rotaryLayers(_ f: ConfigReader.Fields, layers: Int) throws -> [Int] {
        if let list = try ConfigReader.optionalList(f, "no_rope_layers"), !list.isEmpty {
            guard list.count == layers else {
                throw PlanError.invalidDimension(field: "no_rope_layers", value: "\(list.count) entries", reason: "must list every one of the \(layers) layers")
            }
            var rotary: [Int] = []
            for (i, v) in list.enumerated() {
                guard let n = v as? NSNumber, n.doubleValue == 0 || n.doubleValue == 1 else {
                    throw PlanError.invalidDimension(field: "no_rope_layers", value: "\(v)", reason: "must be 0 or 1 per layer")
                }
                if n.doubleValue == 1 { rotary.append(i) }
            }
            return rotary
        }
        let interval = try f.optionalDim("no_rope_layer_interval") ?? 4
        return (0..<layers).filter { ($0 + 1) % interval != 0 }
    }

    /// The same reader with a mixture of experts.
    func with(moe: MoEReader) -> GatedReader { var r = self; r.moe = moe; return r }
}

/// A mixture-of-experts feed-forward block as Transformers v5 builds it: a router, the
/// experts fused into 3-D parameters (`gate_up_proj`, `down_proj`), and for some families
/// shared experts beside them.
struct MoEReader {
    /// How the shared experts are built.
    enum Shared {
        /// Qwen2-MoE, Qwen3-Next: one `shared_expert` MLP of `shared_expert_intermediate_size`
        /// and a sigmoid gate `shared_expert_gate` (Linear h → 1).
        case gatedOne
        /// DeepSeek, GLM-4.5, GLM-5: `shared_experts`, one MLP `n_shared_experts` times as wide as an expert.
        case summed
        /// Granite MoE Shared: `shared_mlp` of `shared_intermediate_size` (none when 0), gate and
        /// up in one `input_linear`, then `output_linear`; added as it is.
        case graniteShared
        /// Llama 4: `shared_expert`, an MLP as wide as one expert, added as it is.
        case llama4
    }

    /// The attribute the block lives under (`mlp`, `block_sparse_moe`, `feed_forward`).
    var prefix = "mlp"
    /// The router's attribute (`gate`, `router`) and whether it is an `nn.Linear` (which
    /// PEFT's all-linear then wraps) and carries a bias.
    var routerName = "gate"
    var routerIsLinear = false
    var routerBias = false
    var countKeys = ["num_experts", "num_local_experts"]   // Transformers 5 saves num_local_experts
    var perTokenKeys = ["num_experts_per_tok"]
    /// The width of one expert.
    var expertWidthKeys = ["moe_intermediate_size"]
    /// gpt-oss: biases on both expert projections.
    var expertBias = false
    var shared: Shared?
    /// `n_shared_experts` when the config leaves it out (DeepseekV3Config: 1, DeepseekV2Config: 2).
    var sharedCountDefault = 1
    /// Which layers hold experts; the others a dense MLP.
    var layersRule: LayersRule = .all

    enum LayersRule {
        case all
        /// Qwen2/3-MoE: a layer is sparse unless listed in `mlp_only_layers`, and only every
        /// `decoder_sparse_step`-th layer ((i + 1) % step == 0).
        case qwenSparseStep
        /// DeepSeek, GLM: the first `first_k_dense_replace` layers are dense.
        case firstKDense
        /// Llama 4: the layers `moe_layers` lists, else every `interleave_moe_layer_step`-th
        /// from step − 1.
        case listedOrInterleaved
    }
    /// The dense layers' `intermediate_size` when the config leaves it out (the configuration
    /// class's default: DeepSeek-V3 18432, GLM-4.5 10944, …); nil where the model has no dense
    /// layer to size (Qwen3.5-MoE then takes the expert width).
    var denseWidthDefault: Int?
    /// `first_k_dense_replace` when the config leaves it out (DeepSeek-V3/V3.2 and GLM-5: 3,
    /// GLM-4.5: 1, DeepSeek-V2: 0).
    var firstKDenseDefault = 0
    /// Granite: `shared_intermediate_size` when the config leaves it out (Granite MoE Shared: 0,
    /// Granite 4.0: 1024).
    var sharedWidthDefault = 0
    /// DeepSeek, GLM-4.5, GLM-5: the router runs in fp32 (``GatedBlock/fp32Router``).
    var fp32Router = false
    /// Llama 4 (`Llama4TextExperts`): the fused tensors are stored input-major,
    /// `gate_up_proj` [E, h, 2I] and `down_proj` [E, I, h].
    var inputMajor = false

    func expertLayers(_ f: ConfigReader.Fields, layers: Int) throws -> [Int] {
        switch layersRule {
        case .all: return Array(0..<layers)
        case .qwenSparseStep:
            let step = try f.optionalDim("decoder_sparse_step") ?? 1
            var dense = Set<Int>()
            if let list = try ConfigReader.optionalList(f, "mlp_only_layers") {
                for v in list {
                    guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue == n.doubleValue.rounded(),
                          n.doubleValue >= 0, n.doubleValue < Double(ConfigReader.layerLimit) else {
                        throw PlanError.invalidDimension(field: "mlp_only_layers", value: "\(v)", reason: "must list layer numbers")
                    }
                    dense.insert(n.intValue)
                }
            }
            return (0..<layers).filter { !dense.contains($0) && ($0 + 1) % step == 0 }
        case .firstKDense:
            let k = try f.optionalCount("first_k_dense_replace") ?? firstKDenseDefault
            return Array(min(k, layers)..<layers)
        case .listedOrInterleaved:
            if let list = try ConfigReader.optionalList(f, "moe_layers") {
                var listed = Set<Int>()
                for v in list {
                    guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue == n.doubleValue.rounded(),
                          n.doubleValue >= 0, n.doubleValue < Double(ConfigReader.layerLimit) else {
                        throw PlanError.invalidDimension(field: "moe_layers", value: "\(v)", reason: "must list layer numbers")
                    }
                    listed.insert(n.intValue)
                }
                return (0..<layers).filter { listed.contains($0) }
            }
            let step = try f.optionalDim("interleave_moe_layer_step") ?? 1
            return Array(stride(from: step - 1, to: layers, by: step))
        }
    }

    /// `sharedBias`: DeepSeek-V2's `mlp_bias`, which its shared experts (a `DeepseekV2MLP`) carry too.
    func read(_ f: ConfigReader.Fields, hidden h: Int, layers: [Int]?, sharedBias: Bool = false) throws -> (modules: [ModuleSpec], experts: Int, perToken: Int, shared: SharedExpert?) {
        let count = try f.dim(countKeys[0], countKeys.dropFirst().first ?? countKeys[0])
        let perToken = try f.dim(perTokenKeys[0], perTokenKeys.dropFirst().first ?? perTokenKeys[0])
        guard perToken <= count else {
            throw PlanError.invalidDimension(field: perTokenKeys[0], value: "\(perToken)", reason: "exceeds \(countKeys[0]) \(count)")
        }
        let width = try f.dim(expertWidthKeys[0], expertWidthKeys.dropFirst().first ?? expertWidthKeys[0])
        let perExpert = (3 * h).multipliedReportingOverflow(by: width)
        guard !perExpert.overflow, !perExpert.partialValue.multipliedReportingOverflow(by: count).overflow else {
            throw PlanError.invalidDimension(field: countKeys[0], value: "\(count)", reason: "the experts are too large to count")
        }
        let biases = expertBias ? count * (2 * width + h) : 0
        var experts = ModuleSpec("\(prefix).experts", .experts, .experts, in: h, out: width,
                                 ownParams: count * 3 * h * width + biases, layers: layers)
        if expertBias {
            experts.shapes = [[count, h, 2 * width], [count, 2 * width], [count, width, h], [count, h]]
        } else if inputMajor {
            experts.shapes = [[count, h, 2 * width], [count, width, h]]
        }
        var m: [ModuleSpec] = [
            ModuleSpec("\(prefix).\(routerName)", routerIsLinear ? .linear : .router, .router, in: h, out: count,
                       bias: routerBias, ownParams: count * h + (routerBias ? count : 0), layers: layers),
            experts]
        var sharedKind: SharedExpert?
        if shared == .graniteShared {
            let sw = try f.optionalCount("shared_intermediate_size") ?? sharedWidthDefault
            if sw > 0 {
                m += [ModuleSpec("shared_mlp.input_linear", .linear, .sharedGateUp, in: h, out: 2 * sw, layers: layers),
                      ModuleSpec("shared_mlp.output_linear", .linear, .sharedDown, in: sw, out: h, layers: layers)]
                return (m, count, perToken, .fusedGateUp)
            }
            return (m, count, perToken, nil)
        }
        if let shared {
            let name: String, sw: Int
            switch shared {
            case .graniteShared: return (m, count, perToken, nil)   // handled above
            case .llama4:
                name = "shared_expert"
                sw = width
            case .gatedOne:
                name = "shared_expert"
                sw = try f.dim("shared_expert_intermediate_size")
            case .summed:
                name = "shared_experts"
                sw = width * (try f.optionalDim("n_shared_experts") ?? sharedCountDefault)
            }
            m += [ModuleSpec("\(prefix).\(name).gate_proj", .linear, .sharedGate, in: h, out: sw, bias: sharedBias, layers: layers),
                  ModuleSpec("\(prefix).\(name).up_proj", .linear, .sharedUp, in: h, out: sw, bias: sharedBias, layers: layers),
                  ModuleSpec("\(prefix).\(name).down_proj", .linear, .sharedDown, in: sw, out: h, bias: sharedBias, layers: layers)]
            if shared == .gatedOne {
                m.append(ModuleSpec("\(prefix).shared_expert_gate", .linear, .sharedExpertGate, in: h, out: 1, layers: layers))
            }
            sharedKind = shared == .gatedOne ? .gated : .plain
        }
        return (m, count, perToken, sharedKind)
    }
}

/// Multi-head latent attention (DeepSeek-V2 §2.1; `modeling_deepseek_v3.py`): queries
/// through a low-rank `q_a_proj` → norm → `q_b_proj` (or one `q_proj` when `q_lora_rank` is
/// null), keys and values through one compressed latent `kv_a_proj_with_mqa` (plus a shared
/// rotary key) → norm → `kv_b_proj`; a no-rope and a rope part per query/key head.
struct MLAReader {
    /// DeepSeek-V3.2, GLM-5: the lightning indexer of the sparse attention.
    var indexer = false
    /// `q_lora_rank` when the config leaves it out (DeepSeek V2/V3/V3.2: 1536, GLM-5: 2048);
    /// an explicit null means one `q_proj` (V2-Lite).
    var qRankDefault = 1536

    /// `bias`: the config's `attention_bias`, on `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj`
    /// (DeepseekV2Attention, DeepseekV3Attention; never on `q_proj`, `q_b_proj`, `kv_b_proj`).
    func read(_ f: ConfigReader.Fields, hidden h: Int, heads: Int, bias: Bool) throws -> (modules: [ModuleSpec], qkHeadDim: Int, ropeDim: Int, shape: LatentAttention) {
        let qRank = f.dict["q_lora_rank"] == nil ? qRankDefault : try f.optionalDim("q_lora_rank")
        let kvRank = try f.dim("kv_lora_rank")
        let nope = try f.dim("qk_nope_head_dim")
        let rope = try f.dim("qk_rope_head_dim")
        let vDim = try f.dim("v_head_dim")
        let qk = nope + rope
        var m: [ModuleSpec] = []
        if let qRank {
            m += [ModuleSpec("self_attn.q_a_proj", .linear, .qA, in: h, out: qRank, bias: bias),
                  ModuleSpec("self_attn.q_a_layernorm", .norm, .qANorm, ownParams: qRank),
                  ModuleSpec("self_attn.q_b_proj", .linear, .qB, in: qRank, out: heads * qk)]
        } else {
            m.append(ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: heads * qk))
        }
        m += [ModuleSpec("self_attn.kv_a_proj_with_mqa", .linear, .kvA, in: h, out: kvRank + rope, bias: bias),
              ModuleSpec("self_attn.kv_a_layernorm", .norm, .kvANorm, ownParams: kvRank),
              ModuleSpec("self_attn.kv_b_proj", .linear, .kvB, in: kvRank, out: heads * (nope + vDim)),
              ModuleSpec("self_attn.o_proj", .linear, .o, in: heads * vDim, out: h, bias: bias)]
        if indexer {
            let iHeads = try f.dim("index_n_heads")
            let iDim = try f.dim("index_head_dim")
            m += [ModuleSpec("self_attn.indexer.wq_b", .linear, .indexerQ, in: qRank ?? h, out: iHeads * iDim),
                  ModuleSpec("self_attn.indexer.wk", .linear, .indexerK, in: h, out: iDim),
                  ModuleSpec("self_attn.indexer.k_norm", .norm, .indexerKNorm, ownParams: 2 * iDim),   // LayerNorm: weight, bias
                  ModuleSpec("self_attn.indexer.weights_proj", .linear, .indexerWeights, in: h, out: iHeads)]
        }
        return (m, qk, rope, LatentAttention(qRank: qRank ?? 0, kvRank: kvRank, nope: nope, rope: rope, v: vDim, indexer: indexer))
    }
}

/// Gated DeltaNet layers (`Qwen3NextGatedDeltaNet`, `Qwen3_5GatedDeltaNet`, Transformers 5.25):
/// which layers are linear (`layer_types`, else every layer but each `full_attention_interval`-th),
/// and their modules: q, k, v (and z) projected together (`in_proj_qkvz`, Qwen3-Next) or apart
/// (`in_proj_qkv`, `in_proj_z`, Qwen3.5), b and a together or apart, a depthwise causal
/// `conv1d` over q, k and v (no bias), `A_log` and `dt_bias` per value head, a gated RMSNorm
/// over each value head and `out_proj`.
struct LinearAttentionReader {
    /// Qwen3-Next fuses q, k, v, z into `in_proj_qkvz` and b, a into `in_proj_ba`.
    var fused = false

    func read(_ f: ConfigReader.Fields, hidden h: Int, layers: Int)
        throws -> (modules: [ModuleSpec], attentionLayers: [Int], widths: LinearAttention) {
        var linear: [Int] = []
        if let types = try ConfigReader.optionalList(f, "layer_types") {
            guard types.count == layers else {
                throw PlanError.invalidDimension(field: "layer_types", value: "\(types.count) entries", reason: "must list every one of the \(layers) layers")
            }
            for (i, t) in types.enumerated() {
                guard let name = t as? String, ["linear_attention", "full_attention"].contains(name) else {
                    throw PlanError.invalidDimension(field: "layer_types", value: "\(t)", reason: "must be linear_attention or full_attention")
                }
                if name == "linear_attention" { linear.append(i) }
            }
        } else {
            let interval = try f.optionalDim("full_attention_interval") ?? 4
            linear = (0..<layers).filter { ($0 + 1) % interval != 0 }
        }
        let attention = (0..<layers).filter { !linear.contains($0) }
        let w = LinearAttention(keyHeads: try f.dim("linear_num_key_heads"), keyDim: try f.dim("linear_key_head_dim"),
                                valueHeads: try f.dim("linear_num_value_heads"), valueDim: try f.dim("linear_value_head_dim"),
                                kernel: try ConfigReader.convolutionTaps(f, "linear_conv_kernel_dim", default: nil), fused: fused)
        let conv = 2 * w.qk + w.v
        var m: [ModuleSpec] = []
        var params = ModuleSpec("linear_attn", .parameters, .linearParams, ownParams: 2 * w.valueHeads, layers: linear)
        params.shapes = [[w.valueHeads], [w.valueHeads]]           // dt_bias, A_log
        var convolution = ModuleSpec("linear_attn.conv1d", .parameters, .linearConv, ownParams: conv * w.kernel, layers: linear)
        convolution.shapes = [[conv, 1, w.kernel]]
        m += [params, convolution]
        if fused {
            m += [ModuleSpec("linear_attn.in_proj_qkvz", .linear, .linearQKV, in: h, out: 2 * w.qk + 2 * w.v, layers: linear),
                  ModuleSpec("linear_attn.in_proj_ba", .linear, .linearBA, in: h, out: 2 * w.valueHeads, layers: linear)]
        } else {
            m += [ModuleSpec("linear_attn.in_proj_qkv", .linear, .linearQKV, in: h, out: conv, layers: linear),
                  ModuleSpec("linear_attn.in_proj_z", .linear, .linearZ, in: h, out: w.v, layers: linear),
                  ModuleSpec("linear_attn.in_proj_b", .linear, .linearB, in: h, out: w.valueHeads, layers: linear),
                  ModuleSpec("linear_attn.in_proj_a", .linear, .linearA, in: h, out: w.valueHeads, layers: linear)]
        }
        m += [ModuleSpec("linear_attn.norm", .norm, .linearNorm, ownParams: w.valueDim, layers: linear),
              ModuleSpec("linear_attn.out_proj", .linear, .linearOut, in: w.v, out: h, layers: linear)]
        return (m, attention, w)
    }
}
