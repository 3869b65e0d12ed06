import Foundation

extension FamilySpec {
    /// Phi-1, Phi-1.5, Phi-2 (`PhiConfig`, `modeling_phi.py`): one LayerNorm (with bias) feeds
    /// attention and the MLP side by side, whose outputs join the residual together; q, k, v and
    /// `dense` with biases, rotary on `partial_rotary_factor` (0.5 by default) of each head,
    /// optional per-head LayerNorms of q and k (`qk_layernorm`), a plain MLP (`fc1`, `gelu_new`,
    /// `fc2`) with biases, `resid_pdrop` on both sub-block outputs and `embd_pdrop` after the
    /// embedding, `final_layernorm`, and a bias on `lm_head`.
    static let phi = FamilySpec(read: readPhi,
                                loraTargets: ["q_proj", "v_proj", "fc1", "fc2"],
                                ia3Targets: (["q_proj", "v_proj", "fc2"], ["fc2"]),
                                configHasKVHeads: true)

    @Sendable static func readPhi(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        // head_dim: getattr(config, "head_dim", h // heads)
        var a = try ConfigReader.decoder(f, name, .phi, positions: 2048, tiedDefault: false, norm: .layer)
        let (h, hd, inter, vocab) = (a.hiddenSize, a.headDim, a.intermediateSize, a.vocabSize)
        a.rotaryDim = try ConfigReader.rotaryWidth(f, headDim: a.headDim, default: 0.5)
        a.hiddenDropout = try f.probability("resid_pdrop", default: 0)
        a.embeddingDropout = try f.probability("embd_pdrop", default: 0)
        var block = GatedBlock(plainMLP: true, norms: .parallel)
        block.tanhGELUChain = (f.string("hidden_act") ?? "gelu_new") == "gelu_new"
        var m: [ModuleSpec] = [
            ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false),
            ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: a.qDim, bias: true),
            ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: a.kvDim, bias: true),
            ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: a.kvDim, bias: true),
            ModuleSpec("self_attn.dense", .linear, .o, in: a.qDim, out: h, bias: true),
        ]
        if try f.bool("qk_layernorm", default: false) {
            // nn.LayerNorm(head_dim) over each head of q and of k, weight and bias
            m += [ModuleSpec("self_attn.q_layernorm", .norm, .qNorm, ownParams: 2 * hd),
                  ModuleSpec("self_attn.k_layernorm", .norm, .kNorm, ownParams: 2 * hd)]
            block.headNorm = .perHead
        }
        m += [ModuleSpec("mlp.fc1", .linear, .up, in: h, out: inter, bias: true),
              ModuleSpec("mlp.fc2", .linear, .down, in: inter, out: h, bias: true),
              ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: 2 * h),
              ModuleSpec("model.final_layernorm", .norm, .finalNorm, ownParams: 2 * h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, bias: true, perLayer: false, tied: a.tiedEmbeddings)]
        a.block = .gated(block)
        a.modules = m
        return a
    }
}
