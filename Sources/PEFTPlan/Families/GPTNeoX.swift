import Foundation

extension FamilySpec {
    /// GPT-NeoX and Pythia (`GPTNeoXConfig`, `modeling_gpt_neox.py`): fused qkv, rotary on a
    /// quarter of each head (`rotary_pct` 0.25), parallel residual.
    static let gptNeoX = FamilySpec(read: readGPTNeoX,
                                    loraTargets: ["query_key_value"],
                                    ia3Targets: (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
                                    configHasKVHeads: false)

    @Sendable static func readGPTNeoX(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let inter = try f.dim("intermediate_size")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        var a = ConfigReader.blank(name, .gptNeoX, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: inter,
                                   vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: false))
        a.layerPrefix = "gpt_neox.layers"
        a.block = .parallelResidual
        a.rotaryDim = max(2, a.headDim / 4)
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let bias = try f.bool("attention_bias", default: true)
        a.modules = [
            ModuleSpec("gpt_neox.embed_in", .embedding, .embed, in: vocab, out: h, perLayer: false),
            ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: 2 * h),
            ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: 2 * h),
            ModuleSpec("attention.query_key_value", .linear, .qkv, in: h, out: 3 * h, bias: bias),
            ModuleSpec("attention.dense", .linear, .o, in: h, out: h, bias: bias),
            ModuleSpec("mlp.dense_h_to_4h", .linear, .up, in: h, out: inter, bias: true),
            ModuleSpec("mlp.dense_4h_to_h", .linear, .down, in: inter, out: h, bias: true),
            ModuleSpec("gpt_neox.final_layer_norm", .norm, .finalNorm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }
}
