import Foundation

extension FamilySpec {
    /// GPT-2 (`GPT2Config`, `modeling_gpt2.py`): Conv1D projections, learned positions,
    /// dropout on embeddings, residuals and attention (0.1 each by default).
    static let gpt2 = FamilySpec(read: readGPT2,
                                 loraTargets: ["c_attn"],
                                 ia3Targets: (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
                                 configHasKVHeads: false)

    @Sendable static func readGPT2(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        let h = try f.dim("n_embd", "hidden_size")
        let layers = try f.dim("n_layer", "num_hidden_layers")
        let heads = try f.dim("n_head", "num_attention_heads")
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let inter = try f.optionalDim("n_inner") ?? 4 * h
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("n_positions", "max_position_embeddings") ?? 1024
        var a = ConfigReader.blank(name, .gpt2, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: inter,
                                   vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.block = .sequential(bloom: false)
        a.hiddenDropout = try f.probability("resid_pdrop", default: 0.1)
        a.attentionDropout = try f.probability("attn_pdrop", default: 0.1)
        let embdDropout = try f.probability("embd_pdrop", default: 0.1)
        a.hiddenDropout = max(a.hiddenDropout, embdDropout)
        a.embeddingDropout = a.hiddenDropout
        a.modules = [
            ModuleSpec("transformer.wte", .embedding, .embed, in: vocab, out: h, perLayer: false),
            ModuleSpec("transformer.wpe", .positionEmbedding, .positions, in: positions, out: h, perLayer: false),
            ModuleSpec("ln_1", .norm, .attentionNorm, ownParams: 2 * h),
            ModuleSpec("attn.c_attn", .conv1d, .qkv, in: h, out: 3 * h, bias: true),
            ModuleSpec("attn.c_proj", .conv1d, .o, in: h, out: h, bias: true),
            ModuleSpec("ln_2", .norm, .feedForwardNorm, ownParams: 2 * h),
            ModuleSpec("mlp.c_fc", .conv1d, .up, in: h, out: inter, bias: true),
            ModuleSpec("mlp.c_proj", .conv1d, .down, in: inter, out: h, bias: true),
            ModuleSpec("transformer.ln_f", .norm, .finalNorm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }
}
