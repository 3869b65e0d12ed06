import Foundation

extension FamilySpec {
    /// BLOOM (`BloomConfig`, `modeling_bloom.py`): ALiBi (no positions, eager attention
    /// only), a layer norm on the embeddings, fused qkv, GELU MLP of 4 × hidden.
    static let bloom = FamilySpec(read: readBLOOM,
                                  loraTargets: ["query_key_value"],
                                  ia3Targets: (["query_key_value", "mlp.dense_4h_to_h"], ["mlp.dense_4h_to_h"]),
                                  configHasKVHeads: false)

    @Sendable static func readBLOOM(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size", "n_embed")
        let layers = try f.dim("n_layer", "num_hidden_layers")
        let heads = try f.dim("n_head", "num_attention_heads")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let vocab = try f.dim("vocab_size")
        var a = ConfigReader.blank(name, .bloom, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: 4 * h,
                                   vocab: vocab, positions: 0, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.block = .sequential(bloom: true)
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        a.supportsSDPA = false   // BloomForCausalLM refuses sdpa in Transformers v5 (ALiBi)
        a.modules = [
            ModuleSpec("transformer.word_embeddings", .embedding, .embed, in: vocab, out: h, perLayer: false),
            ModuleSpec("transformer.word_embeddings_layernorm", .norm, .embedNorm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: 2 * h),
            ModuleSpec("self_attention.query_key_value", .linear, .qkv, in: h, out: 3 * h, bias: true),
            ModuleSpec("self_attention.dense", .linear, .o, in: h, out: h, bias: true),
            ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: 2 * h),
            ModuleSpec("mlp.dense_h_to_4h", .linear, .up, in: h, out: 4 * h, bias: true),
            ModuleSpec("mlp.dense_4h_to_h", .linear, .down, in: 4 * h, out: h, bias: true),
            ModuleSpec("transformer.ln_f", .norm, .finalNorm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }
}
