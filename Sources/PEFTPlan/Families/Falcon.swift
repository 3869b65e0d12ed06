import Foundation

extension FamilySpec {
    /// Falcon (`FalconConfig`, `modeling_falcon.py`): multi-query (7B) or grouped (40B,
    /// `new_decoder_architecture`) fused qkv, rotary, attention and MLP in parallel.
    static let falcon = FamilySpec(read: readFalcon,
                                   loraTargets: ["query_key_value"],
                                   ia3Targets: (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
                                   // Transformers 5.25's FalconConfig sets num_key_value_heads (1 for
                                   // Falcon-7B's multi-query attention; 5.23's had none), so PEFT
                                   // 0.21.2 sizes a prefix token as head_dim × KV heads: Falcon-7B
                                   // prefix tuning with 20 tokens trains 81,920 parameters, not 5,816,320
                                   configHasKVHeads: true)

    @Sendable static func readFalcon(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers", "n_layer")
        let heads = try f.dim("num_attention_heads", "n_head")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: 1, headDimGiven: false)
        let hd = h / heads
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        let newArch = try f.bool("new_decoder_architecture", default: false)
        let multiQuery = try f.bool("multi_query", default: true)
        let parallel = try f.bool("parallel_attn", default: true)
        let bias = try f.bool("bias", default: false)
        let kv: Int
        if newArch { kv = try f.optionalDim("num_kv_heads") ?? heads } else { kv = multiQuery ? 1 : heads }
        guard heads % kv == 0 else {
            throw PlanError.invalidDimension(field: "num_kv_heads", value: "\(kv)", reason: "does not divide num_attention_heads \(heads)")
        }
        let ffn = try f.optionalDim("ffn_hidden_size") ?? 4 * h
        var a = ConfigReader.blank(name, .falcon, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: ffn,
                                   vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.rotaryDim = hd
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let qkvOut = newArch ? (2 * kv + heads) * hd : (multiQuery ? h + 2 * hd : 3 * h)
        var m = [ModuleSpec("transformer.word_embeddings", .embedding, .embed, in: vocab, out: h, perLayer: false),
                 ModuleSpec("self_attention.query_key_value", .linear, .qkv, in: h, out: qkvOut, bias: bias),
                 ModuleSpec("self_attention.dense", .linear, .o, in: h, out: h, bias: bias),
                 ModuleSpec("mlp.dense_h_to_4h", .linear, .up, in: h, out: ffn, bias: bias),
                 ModuleSpec("mlp.dense_4h_to_h", .linear, .down, in: ffn, out: h, bias: bias)]
        let lnInParallel = try f.optionalDim("num_ln_in_parallel_attn") ?? 2
        let twoNorms = newArch && lnInParallel == 2
        if twoNorms {
            m += [ModuleSpec("ln_attn", .norm, .attentionNorm, ownParams: 2 * h),
                  ModuleSpec("ln_mlp", .norm, .feedForwardNorm, ownParams: 2 * h)]
        } else {
            m.append(ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: 2 * h))
            if !parallel { m.append(ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: 2 * h)) }
        }
        // The decoder layer runs attention and MLP side by side with two norms, or with one
        // norm when `parallel_attn`; otherwise the MLP reads the attention's residual.
        a.block = .falcon(parallel: twoNorms || parallel, twoNorms: twoNorms)
        m += [ModuleSpec("transformer.ln_f", .norm, .finalNorm, ownParams: 2 * h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }
}
