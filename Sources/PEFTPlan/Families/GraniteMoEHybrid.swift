import Foundation

extension FamilySpec {
    /// Granite 4.0 (`GraniteMoeHybridConfig`, `modeling_granitemoehybrid.py`, Transformers
    /// 5.25): Llama's pre-norm layer whose mixer is Mamba-2 (`mamba`, the same mixer as
    /// Nemotron-H's: `mamba_expand` × hidden wide, `mamba_n_heads` heads of `mamba_d_head`,
    /// `mamba_n_groups` groups of `mamba_d_state`) or attention (`self_attn`, rotary only when
    /// `position_embedding_type` is "rope") by `layer_types`; then `num_local_experts` experts
    /// (none when 0) beside `shared_mlp` (gate and up in one `input_linear`). PEFT has no default
    /// targets and does not refuse LoRA on the Mamba `out_proj` for this type; on CUDA with
    /// mamba-ssm Transformers hands that weight to the fused kernel, so such an adapter is
    /// skipped there (the plan says so).
    static let granitemoehybrid = FamilySpec(read: readGraniteMoEHybrid, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true)

    @Sendable static func readGraniteMoEHybrid(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let (heads, kv, hd) = try ConfigReader.attentionHeads(f, family: .granitemoehybrid, hidden: h)
        let vocab = try f.dim("vocab_size")
        let positions = try f.contextLength("max_position_embeddings") ?? 2048
        let sharedWidth = try f.optionalCount("shared_intermediate_size") ?? 1024
        var a = ConfigReader.blank(name, .granitemoehybrid, h: h, layers: layers, heads: heads, kv: kv, headDim: hd,
                                   inter: max(sharedWidth, 1), vocab: vocab, positions: positions,
                                   tied: try f.bool("tie_word_embeddings", default: false))
        a.layerPrefix = "model.layers"
        a.norm = .rms
        a.rotaryDim = f.string("position_embedding_type") == "rope" ? hd : 0
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        // layer_types ("linear_attention" / "full_attention"; "mamba" / "attention" in older configs)
        var mamba: [Int] = []
        if let v = f.dict["layer_types"] ?? f.dict["layers_block_type"], !(v is NSNull) {
            guard let list = v as? [Any], list.count == layers else {
                throw PlanError.invalidDimension(field: "layer_types", value: "\(v)", reason: "must list every one of the \(layers) layers")
            }
            for (i, e) in list.enumerated() {
                guard let s = e as? String, ["linear_attention", "mamba", "full_attention", "attention"].contains(s) else {
                    throw PlanError.invalidDimension(field: "layer_types", value: "\(e)", reason: "must be linear_attention (mamba) or full_attention (attention)")
                }
                if s == "linear_attention" || s == "mamba" { mamba.append(i) }
            }
        } else {
            mamba = Array(0..<layers)
        }
        let attention = (0..<layers).filter { !mamba.contains($0) }
        func set(_ l: [Int]) -> [Int]? { l.count == layers ? nil : l }

        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        var block = GatedBlock()
        if !mamba.isEmpty {
            let expand = try f.optionalDim("mamba_expand") ?? 2
            let (width, o1) = expand.multipliedReportingOverflow(by: h)
            let ssmHeads = try f.optionalDim("mamba_n_heads") ?? 128
            guard !o1, width <= ConfigReader.dimensionLimit, width % ssmHeads == 0 else {
                throw PlanError.invalidDimension(field: "mamba_n_heads", value: "\(ssmHeads)", reason: "must divide mamba_expand × hidden_size")
            }
            let headDim = width / ssmHeads
            try ConfigReader.checkMambaHeadDim(f, "mamba_d_head", is: headDim)
            let groups = try f.optionalDim("mamba_n_groups") ?? 1
            let state = try f.optionalDim("mamba_d_state") ?? 256
            try ConfigReader.checkMambaGroups(groups: groups, heads: ssmHeads, state: state, groupsKey: "mamba_n_groups", stateKey: "mamba_d_state")
            let kernel = try ConfigReader.convolutionTaps(f, "mamba_d_conv", default: 4)
            let s = StateSpace(heads: ssmHeads, headDim: headDim, groups: groups, state: state, kernel: kernel)
            m += s.modules(prefix: "mamba", hidden: h, projectionBias: try f.bool("mamba_proj_bias", default: false),
                           convolutionBias: try f.bool("mamba_conv_bias", default: true), layers: set(mamba))
            block.stateSpace = s
        }
        if !attention.isEmpty {
            let bias = try f.bool("attention_bias", default: false)
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: a.qDim, bias: bias, layers: set(attention)),
                  ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: a.kvDim, bias: bias, layers: set(attention)),
                  ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: a.kvDim, bias: bias, layers: set(attention)),
                  ModuleSpec("self_attn.o_proj", .linear, .o, in: a.qDim, out: h, bias: bias, layers: set(attention))]
        }
        let experts = try f.optionalCount("num_local_experts") ?? 8
        if experts > 0 {
            let read = try MoEReader(prefix: "block_sparse_moe", routerName: "router", countKeys: ["num_local_experts"],
                                     expertWidthKeys: ["intermediate_size"], shared: .graniteShared,
                                     sharedWidthDefault: 1024).read(f, hidden: h, layers: nil)
            m += read.modules
            a.numExperts = read.experts
            a.expertsPerToken = read.perToken
            block.sharedExpert = read.shared
        } else {
            // no experts: the shared MLP is the layer's feed-forward block
            guard sharedWidth > 0 else {
                throw PlanError.invalidDimension(field: "shared_intermediate_size", value: "0",
                                                 reason: "leaves the layers no feed-forward block when num_local_experts is 0")
            }
            block.fusedGateUp = true
            m += [ModuleSpec("shared_mlp.input_linear", .linear, .gateUp, in: h, out: 2 * sharedWidth),
                  ModuleSpec("shared_mlp.output_linear", .linear, .down, in: sharedWidth, out: h)]
        }
        m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: h),
              ModuleSpec("model.norm", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.block = .gated(block)
        a.modules = m
        return a
    }
}
