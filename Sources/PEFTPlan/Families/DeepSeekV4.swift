import Foundation

extension FamilySpec {
    /// DeepSeek-V4 (`DeepseekV4Config`, `modeling_deepseek_v4.py`, Transformers 5.25; V4-Flash,
    /// V4-Pro). Each layer: two manifold-constrained hyper-connections (`attn_hc`, `ffn_hc`:
    /// `hc_mult` residual streams), the attention of ``CompressedAttention`` — sliding-window
    /// layers, compressed sparse attention layers (a compressor at rate 4 with a lightning
    /// indexer) and heavily compressed attention layers (rate 128) as `layer_types` (or the
    /// checkpoint's `compress_ratios` 0 / 4 / 128) says — and experts with a clamped SwiGLU
    /// beside one shared expert of the same width, routed by a fixed token table in the first
    /// `num_hash_layers` (default 3) and a learned top-k after. The multi-token-prediction
    /// layer (`num_nextn_predict_layers`) is not built by Transformers and not planned; the
    /// checkpoint's FP8 weights and FP4 experts are dequantised to bf16 to train.
    ///
    /// PEFT has no default targets for the type. Its all-linear wraps `o_a_proj`, a Linear
    /// subclass whose forward reads the weight as a batched matmul per group: LoRA's update,
    /// computed as for a plain Linear, does not match that output's shape and the forward
    /// fails, so planning refuses targets that include it and plans every other Linear.
    static let deepseekV4 = FamilySpec(read: readDeepSeekV4, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true,
                                       loraFailingModules: ["o_a_proj": "DeepSeek-V4's grouped output projection, a batched matmul per group of heads"])

    /// Layer kinds as `DeepseekV4Config.__post_init__` settles them.
    enum V4LayerKind: String { case sliding = "sliding_attention", csa = "compressed_sparse_attention", hca = "heavily_compressed_attention" }

    @Sendable static func readDeepSeekV4(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        let h = try f.optionalDim("hidden_size") ?? 4096
        let layers = try f.optionalDim("num_hidden_layers") ?? 43
        let heads = try f.optionalDim("num_attention_heads") ?? 64
        // the attention has one key head whatever the config says; PEFT's prefix reads the config
        let configKV = try f.optionalDim("num_key_value_heads") ?? 1
        let hd = try f.optionalDim("head_dim") ?? 512
        let qRank = try f.optionalDim("q_lora_rank") ?? 1024
        let inter = try f.optionalDim("moe_intermediate_size", "intermediate_size") ?? 2048
        let experts = try f.optionalDim("n_routed_experts", "num_local_experts") ?? 256
        let perToken = try f.optionalDim("num_experts_per_tok") ?? 6
        guard perToken <= experts else {
            throw PlanError.invalidDimension(field: "num_experts_per_tok", value: "\(perToken)", reason: "exceeds n_routed_experts \(experts)")
        }
        let groups = try f.optionalDim("o_groups") ?? 8
        let groupRank = try f.optionalDim("o_lora_rank") ?? 1024
        guard (heads * hd) % groups == 0 else {
            throw PlanError.invalidDimension(field: "o_groups", value: "\(groups)", reason: "must divide num_attention_heads × head_dim (\(heads * hd))")
        }
        let indexHeads = try f.optionalDim("index_n_heads") ?? 64
        let indexDim = try f.optionalDim("index_head_dim") ?? 128
        let indexTopK = try f.optionalDim("index_topk") ?? 512
        let streams = try f.optionalDim("hc_mult") ?? 4
        guard streams <= 64 else {
            throw PlanError.invalidDimension(field: "hc_mult", value: "\(streams)", reason: "more residual streams than any real model (limit 64)")
        }
        let iterations = try f.optionalDim("hc_sinkhorn_iters") ?? 20
        guard iterations <= 1000 else {
            throw PlanError.invalidDimension(field: "hc_sinkhorn_iters", value: "\(iterations)", reason: "more Sinkhorn iterations than any real model (limit 1000)")
        }
        let vocab = try f.optionalDim("vocab_size") ?? 129_280
        let positions = try f.contextLength("max_position_embeddings") ?? 1_048_576
        // partial rotary: the legacy qk_rope_head_dim, else partial_rotary_factor, else 64 / 512
        let rope = try f.optionalDim("qk_rope_head_dim").map { min($0, hd) }
            ?? ConfigReader.rotaryWidth(f, headDim: hd, default: 64.0 / 512.0)
        // compression rates: compress_rates, then the legacy compress_rate_csa / _hca
        var csaRate = 4, hcaRate = 128
        if let rates = f.dict["compress_rates"], !(rates is NSNull) {
            guard let d = rates as? [String: Any] else {
                throw PlanError.invalidDimension(field: "compress_rates", value: "\(rates)", reason: "must map attention types to rates")
            }
            let r = ConfigReader.Fields(d, source: f.source)
            csaRate = try r.optionalDim(V4LayerKind.csa.rawValue) ?? 4
            hcaRate = try r.optionalDim(V4LayerKind.hca.rawValue) ?? 128
        }
        csaRate = try f.optionalDim("compress_rate_csa") ?? csaRate
        hcaRate = try f.optionalDim("compress_rate_hca") ?? hcaRate
        // layer_types, else the legacy per-layer compress_ratios, else V4-Pro's schedule
        var kinds: [V4LayerKind]
        if let list = try ConfigReader.optionalList(f, "layer_types") {
            kinds = try list.map { v in
                guard let s = v as? String, let k = V4LayerKind(rawValue: s) else {
                    throw PlanError.invalidDimension(field: "layer_types", value: "\(v)",
                                                     reason: "must be sliding_attention, compressed_sparse_attention or heavily_compressed_attention")
                }
                return k
            }
        } else if let list = try ConfigReader.optionalList(f, "compress_ratios") {
            kinds = try list.map { v in
                guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), [0.0, 4.0, 128.0].contains(n.doubleValue) else {
                    throw PlanError.invalidDimension(field: "compress_ratios", value: "\(v)", reason: "must be 0, 4 or 128")
                }
                return n.intValue == 0 ? .sliding : (n.intValue == 4 ? .csa : .hca)
            }
        } else {
            kinds = (0..<layers).map { $0 < 2 || $0 % 2 == 0 ? .hca : .csa }
        }
        // the config keeps the first num_hidden_layers entries and refuses fewer
        guard kinds.count >= layers else {
            throw PlanError.invalidDimension(field: "layer_types", value: "\(kinds.count) entries", reason: "must list every one of the \(layers) layers")
        }
        kinds = Array(kinds.prefix(layers))
        // hash-routed layers: mlp_layer_types, else the first num_hash_layers (default 3)
        var hashLayers = min(layers, try f.optionalCount("num_hash_layers") ?? 3)
        if let list = try ConfigReader.optionalList(f, "mlp_layer_types") {
            guard list.count >= layers, list.allSatisfy({ ["hash_moe", "moe"].contains($0 as? String ?? "") }) else {
                throw PlanError.invalidDimension(field: "mlp_layer_types", value: "\(list.count) entries",
                                                 reason: "must give hash_moe or moe for every one of the \(layers) layers")
            }
            hashLayers = list.prefix(layers).filter { ($0 as? String) == "hash_moe" }.count
        }
        let csa = kinds.indices.filter { kinds[$0] == .csa }, hca = kinds.indices.filter { kinds[$0] == .hca }
        let tied = try f.bool("tie_word_embeddings", default: false)
        var a = ConfigReader.blank(name, .deepseekV4, h: h, layers: layers, heads: heads, kv: 1, headDim: hd, inter: inter,
                                   vocab: vocab, positions: positions, tied: tied)
        a.layerPrefix = "model.layers"
        a.norm = .rmsWeightInFP32
        a.rotaryDim = rope
        a.supportsSDPA = false
        a.numExperts = experts
        a.expertsPerToken = perToken
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        func sized(_ m: ModuleSpec, _ shapes: [[Int]]) -> ModuleSpec { var m = m; m.shapes = shapes; return m }
        let w = (2 + streams) * streams
        func hyper(_ name: String, _ role: ModuleRole) -> ModuleSpec {
            sized(ModuleSpec(name, .parameters, role, ownParams: w * streams * h + w + 3), [[w, streams * h], [w], [3]])
        }
        var m: [ModuleSpec] = [
            ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false),
            sized(ModuleSpec("self_attn.sinks", .parameters, .sinks, ownParams: heads), [[heads]]),
            ModuleSpec("self_attn.q_a_proj", .linear, .qA, in: h, out: qRank),
            ModuleSpec("self_attn.q_a_norm", .norm, .qANorm, ownParams: qRank),
            ModuleSpec("self_attn.q_b_proj", .linear, .qB, in: qRank, out: heads * hd),
            ModuleSpec("self_attn.kv_proj", .linear, .sharedKV, in: h, out: hd),
            ModuleSpec("self_attn.kv_norm", .norm, .sharedKVNorm, ownParams: hd),
            ModuleSpec("self_attn.o_a_proj", .linear, .groupedO, in: heads * hd / groups, out: groups * groupRank),
            ModuleSpec("self_attn.o_b_proj", .linear, .groupedOMix, in: groups * groupRank, out: h)]
        // the compressors: CSA's projects to two series (2 × head_dim), HCA's to one
        for (set, series, rate) in [(csa, 2, csaRate), (hca, 1, hcaRate)] where !set.isEmpty {
            m += [sized(ModuleSpec("self_attn.compressor.position_bias", .parameters, .compressorBias, ownParams: rate * series * hd, layers: set),
                        [[rate, series * hd]]),
                  ModuleSpec("self_attn.compressor.kv_proj", .linear, .compressorKV, in: h, out: series * hd, layers: set),
                  ModuleSpec("self_attn.compressor.gate_proj", .linear, .compressorGate, in: h, out: series * hd, layers: set),
                  ModuleSpec("self_attn.compressor.kv_norm", .norm, .compressorNorm, ownParams: hd, layers: set)]
        }
        if !csa.isEmpty {
            m += [sized(ModuleSpec("self_attn.compressor.indexer.position_bias", .parameters, .indexerBias, ownParams: csaRate * 2 * indexDim, layers: csa),
                        [[csaRate, 2 * indexDim]]),
                  ModuleSpec("self_attn.compressor.indexer.kv_proj", .linear, .indexerKV, in: h, out: 2 * indexDim, layers: csa),
                  ModuleSpec("self_attn.compressor.indexer.gate_proj", .linear, .indexerGate, in: h, out: 2 * indexDim, layers: csa),
                  ModuleSpec("self_attn.compressor.indexer.kv_norm", .norm, .indexerNorm, ownParams: indexDim, layers: csa),
                  ModuleSpec("self_attn.compressor.indexer.q_b_proj", .linear, .indexerQ, in: qRank, out: indexHeads * indexDim, layers: csa),
                  ModuleSpec("self_attn.compressor.indexer.scorer.weights_proj", .linear, .indexerWeights, in: h, out: indexHeads, layers: csa)]
        }
        // experts as 3-D tensors (gate_up (E, 2I, h), down (E, h, I)); the router's weight is a
        // bare parameter (its correction bias and the hash table are buffers)
        m += [ModuleSpec("mlp.gate", .router, .router, in: h, out: experts, ownParams: experts * h),
              ModuleSpec("mlp.experts", .experts, .experts, in: h, out: inter, ownParams: experts * 3 * h * inter),
              ModuleSpec("mlp.shared_experts.gate_proj", .linear, .sharedGate, in: h, out: inter),
              ModuleSpec("mlp.shared_experts.up_proj", .linear, .sharedUp, in: h, out: inter),
              ModuleSpec("mlp.shared_experts.down_proj", .linear, .sharedDown, in: inter, out: h),
              ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: h),
              hyper("attn_hc", .attentionHyperConnection),
              hyper("ffn_hc", .feedForwardHyperConnection),
              ModuleSpec("model.norm", .norm, .finalNorm, ownParams: h, perLayer: false),
              sized(ModuleSpec("model.hc_head", .parameters, .hyperHead, ownParams: streams * streams * h + streams + 1, perLayer: false),
                    [[streams, streams * h], [streams], [1]]),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: tied)]
        var block = GatedBlock()
        block.sinks = true
        block.clampedPlainSwiGLU = true
        block.sharedExpert = .plain
        block.compressed = CompressedAttention(qRank: qRank, rope: rope, groups: groups, groupRank: groupRank,
                                               csaRate: csaRate, hcaRate: hcaRate, indexerHeads: indexHeads, indexerDim: indexDim,
                                               indexerTopK: indexTopK, csaLayers: csa, hcaLayers: hca)
        block.hyperConnections = HyperConnections(streams: streams, sinkhornIterations: iterations)
        a.block = .gated(block)
        a.modules = m
        // one training step of the real PEFT on a small V4 (PublishedConfigTests' method check)
        if !csa.isEmpty || !hca.isEmpty {
            a.failingMethods[.prefix] = "PEFT hands the model its own key-value cache, whose layers lack the compressor state DeepSeek-V4's compressed attention layers store (store_compression_weights)"
        } else if configKV != 1 {
            a.failingMethods[.prefix] = "PEFT sizes its prefix by num_key_value_heads (\(configKV)), and DeepSeek-V4's attention has one key head"
        }
        if hashLayers > 0 {
            let why = "PEFT feeds the virtual tokens as inputs_embeds, and DeepSeek-V4's \(hashLayers) hash-routed layers look their experts up by input_ids"
            a.failingMethods[.prompt] = why
            a.failingMethods[.ptuning] = why
        }
        return a
    }
}
