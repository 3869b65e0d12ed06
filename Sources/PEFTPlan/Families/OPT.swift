import Foundation

extension FamilySpec {
    /// OPT (`OPTConfig`, `modeling_opt.py`): learned positions with an offset of 2, ReLU
    /// MLP, layer norms before or after each sub-block, and OPT-350m's projections between a
    /// narrower embedding and the hidden width.
    static let opt = FamilySpec(read: readOPT,
                                loraTargets: ["q_proj", "v_proj"],
                                ia3Targets: (["q_proj", "k_proj", "fc2"], ["fc2"]),
                                configHasKVHeads: false)

    @Sendable static func readOPT(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let ffn = try f.dim("ffn_dim")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        let proj = try f.optionalDim("word_embed_proj_dim") ?? h
        var a = ConfigReader.blank(name, .opt, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: ffn,
                                   vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "model.decoder.layers"
        a.embedDim = proj
        a.hiddenDropout = try f.probability("dropout", default: 0.1)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let bias = try f.bool("enable_bias", default: true)
        let affine = try f.bool("layer_norm_elementwise_affine", default: true)
        let normParams = affine ? 2 * h : 0
        let before = try f.bool("do_layer_norm_before", default: true)
        let removeFinal = try f.bool("_remove_final_layer_norm", default: false)
        a.block = .opt(preNorm: before)
        // OPT's learned positions carry an offset of 2 (OPTLearnedPositionalEmbedding).
        var m = [ModuleSpec("model.decoder.embed_tokens", .embedding, .embed, in: vocab, out: proj, perLayer: false),
                 ModuleSpec("model.decoder.embed_positions", .positionEmbedding, .positions, in: positions + 2, out: h, perLayer: false)]
        if proj != h {
            m += [ModuleSpec("model.decoder.project_out", .linear, .projectOut, in: h, out: proj, perLayer: false),
                  ModuleSpec("model.decoder.project_in", .linear, .projectIn, in: proj, out: h, perLayer: false)]
        }
        if before && !removeFinal {
            m.append(ModuleSpec("model.decoder.final_layer_norm", .norm, .finalNorm, ownParams: normParams, perLayer: false))
        }
        m += [ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.out_proj", .linear, .o, in: h, out: h, bias: bias),
              ModuleSpec("self_attn_layer_norm", .norm, .attentionNorm, ownParams: normParams),
              ModuleSpec("fc1", .linear, .up, in: h, out: ffn, bias: bias),
              ModuleSpec("fc2", .linear, .down, in: ffn, out: h, bias: bias),
              ModuleSpec("final_layer_norm", .norm, .feedForwardNorm, ownParams: normParams),
              ModuleSpec("lm_head", .linear, .head, in: proj, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }
}
