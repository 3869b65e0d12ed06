import Foundation

extension FamilySpec {
    /// Falcon-H1 (`FalconH1Config`, `modeling_falcon_h1.py`, Transformers 5.25): in every layer
    /// one RMSNorm feeds a Mamba-2 mixer (`mamba`, `mamba_d_ssm` wide or `mamba_expand` ×
    /// hidden; its gated RMSNorm only when `mamba_rms_norm`) and attention side by side, each on
    /// its own scaled copy of the normed input (`ssm_in_multiplier` inside `FalconH1Mixer.forward`,
    /// `attention_in_multiplier` in the decoder layer);
    /// their scaled outputs join the residual; then `pre_ff_layernorm` and a gated
    /// `feed_forward`. The µP multipliers scale tensors without adding any but those copies and
    /// the scaled logits. PEFT refuses LoRA on the Mamba `out_proj` and `conv1d` and has no
    /// default targets; with none given the plan takes every other Linear.
    static let falconH1 = FamilySpec(read: readFalconH1, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true,
                                     loraRefusedModules: ["out_proj", "conv1d"],
        kvHeadsDefault: 8,
        liger: LigerPatch())

    @Sendable static func readFalconH1(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        var a = try ConfigReader.decoder(f, name, .falconH1, positions: 8192, tiedDefault: false, norm: .rms)
        let (h, heads, kv, hd, inter, vocab) = (a.hiddenSize, a.numHeads, a.nKVHeads, a.headDim, a.intermediateSize, a.vocabSize)
        a.scaledLogits = true                                   // logits × lm_head_multiplier

        let ssmHeads = try f.optionalDim("mamba_n_heads") ?? 128
        let width: Int
        if f.dict["mamba_d_ssm"] == nil { width = 1024 }                    // FalconH1Config's default
        else if let d = try f.optionalDim("mamba_d_ssm") { width = d } else {
            let (w, o) = (try f.optionalDim("mamba_expand") ?? 2).multipliedReportingOverflow(by: h)
            guard !o, w <= ConfigReader.dimensionLimit else {
                throw PlanError.invalidDimension(field: "mamba_expand", value: "\(w)", reason: "the Mamba-2 width is larger than any real model")
            }
            width = w
        }
        guard width % ssmHeads == 0 else {
            throw PlanError.invalidDimension(field: "mamba_n_heads", value: "\(ssmHeads)", reason: "must divide the Mamba-2 width \(width)")
        }
        try ConfigReader.checkMambaHeadDim(f, "mamba_d_head", is: width / ssmHeads)
        let groups = try f.optionalDim("mamba_n_groups") ?? 1
        let state = try f.optionalDim("mamba_d_state") ?? 256
        try ConfigReader.checkMambaGroups(groups: groups, heads: ssmHeads, state: state, groupsKey: "mamba_n_groups", stateKey: "mamba_d_state")
        var ssm = StateSpace(heads: ssmHeads, headDim: width / ssmHeads, groups: groups, state: state,
                             kernel: try ConfigReader.convolutionTaps(f, "mamba_d_conv", default: 4))
        ssm.norm = try f.bool("mamba_rms_norm", default: false)
        let attentionBias = try f.bool("attention_bias", default: false)
        let mlpBias = try f.bool("mlp_bias", default: false)
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false),
                               ModuleSpec("feed_forward.gate_proj", .linear, .gate, in: h, out: inter, bias: mlpBias),
                               ModuleSpec("feed_forward.up_proj", .linear, .up, in: h, out: inter, bias: mlpBias),
                               ModuleSpec("feed_forward.down_proj", .linear, .down, in: inter, out: h, bias: mlpBias)]
        m += ssm.modules(prefix: "mamba", hidden: h, projectionBias: try f.bool("mamba_proj_bias", default: false),
                         convolutionBias: try f.bool("mamba_conv_bias", default: true), layers: nil,
                         outputBias: try f.bool("projectors_bias", default: false))
        m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: heads * hd, bias: attentionBias),
              ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: kv * hd, bias: attentionBias),
              ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: kv * hd, bias: attentionBias),
              ModuleSpec("self_attn.o_proj", .linear, .o, in: heads * hd, out: h, bias: attentionBias),
              ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("pre_ff_layernorm", .norm, .feedForwardNorm, ownParams: h),
              ModuleSpec("model.final_layernorm", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        var block = GatedBlock()
        block.stateSpace = ssm
        block.parallelStateSpace = true
        a.block = .gated(block)
        a.modules = m
        return a
    }
}
