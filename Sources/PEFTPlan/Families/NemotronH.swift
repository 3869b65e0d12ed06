import Foundation

extension FamilySpec {
    /// Nemotron-H and Nemotron 3 (`NemotronHConfig`, `modeling_nemotron_h.py`, Transformers
    /// 5.25): each layer is one norm and one mixer — Mamba-2 (`M`), attention without rotary
    /// embeddings (`*`), a ReLU² MLP (`-`) or a mixture of ReLU² experts (`E`) with a shared
    /// expert and optional latent projections — named by `layers_block_type` or the checkpoint's
    /// `hybrid_override_pattern`. The Mamba-2 mixer: `in_proj` to z, x, B, C and dt; a depthwise
    /// causal `conv1d` (with bias) over x, B and C; `dt_bias`, `A_log`, `D` per head; a gated
    /// RMSNorm in `n_groups` groups; `out_proj`. The norms multiply their weight in fp32. The
    /// router runs in fp32 as DeepSeek-V3's. Multi-token-prediction layers are not built.
    static let nemotronH = FamilySpec(read: readNemotronH,
                                      loraTargets: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      ia3Targets: nil,
                                      configHasKVHeads: true,
                                      loraRefusedModules: ["out_proj", "conv1d"],
        kvHeadsDefault: 8)

    @Sendable static func readNemotronH(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let kinds = try Self.nemotronLayerKinds(f)
        let layers = kinds.count
        guard layers <= ConfigReader.layerLimit else {
            throw PlanError.invalidDimension(field: "layers_block_type", value: "\(layers) layers", reason: "more than any real model")
        }
        let (heads, kv, hd) = try ConfigReader.attentionHeads(f, family: .nemotronH, hidden: h, headsDefault: 32,
                                                             headDimKeys: ["head_dim", "attention_head_dim"], headDimDefault: 128)
        let inter = try f.optionalDim("intermediate_size") ?? 21504
        let vocab = try f.dim("vocab_size")
        let positions = try f.contextLength("max_position_embeddings") ?? 4096
        var a = ConfigReader.blank(name, .nemotronH, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                                   vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: false))
        a.layerPrefix = "model.layers"
        a.norm = .rmsWeightInFP32
        a.rotaryDim = 0
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        func set(_ l: [Int]) -> [Int]? { l.count == layers ? nil : l }
        func of(_ kind: String) -> [Int] { kinds.indices.filter { kinds[$0] == kind } }
        let mamba = of("linear_attention"), attention = of("full_attention"), mlp = of("mlp"), moe = of("moe")

        var m: [ModuleSpec] = [ModuleSpec("model.embeddings", .embedding, .embed, in: vocab, out: h, perLayer: false),
                               ModuleSpec("norm", .norm, .attentionNorm, ownParams: h)]
        var block = GatedBlock()
        block.singleMixer = true
        if !mamba.isEmpty {
            let ssmHeads = try f.optionalDim("mamba_num_heads") ?? 128
            let ssmHeadDim = try f.optionalDim("mamba_head_dim") ?? 64
            let groups = try f.optionalDim("n_groups", "mamba_n_groups") ?? 8
            let state = try f.optionalDim("ssm_state_size") ?? 128
            let kernel = try ConfigReader.convolutionTaps(f, "conv_kernel", default: 4)
            try ConfigReader.checkMambaGroups(groups: groups, heads: ssmHeads, state: state, groupsKey: "n_groups", stateKey: "ssm_state_size")
            let (width, o1) = ssmHeads.multipliedReportingOverflow(by: ssmHeadDim)
            guard !o1, width <= ConfigReader.dimensionLimit else {
                throw PlanError.invalidDimension(field: "mamba_num_heads", value: "\(ssmHeads)", reason: "mamba_num_heads × mamba_head_dim is larger than any real model")
            }
            let ssm = StateSpace(heads: ssmHeads, headDim: ssmHeadDim, groups: groups, state: state, kernel: kernel)
            m += ssm.modules(prefix: "mixer", hidden: h, projectionBias: try f.bool("use_bias", default: false),
                             convolutionBias: try f.bool("use_conv_bias", default: true), layers: set(mamba))
            block.stateSpace = ssm
        }
        if !attention.isEmpty {
            // NemotronHAttention builds q, k, v and o without biases whatever attention_bias says
            m += [ModuleSpec("mixer.q_proj", .linear, .q, in: h, out: heads * hd, layers: set(attention)),
                  ModuleSpec("mixer.k_proj", .linear, .k, in: h, out: kv * hd, layers: set(attention)),
                  ModuleSpec("mixer.v_proj", .linear, .v, in: h, out: kv * hd, layers: set(attention)),
                  ModuleSpec("mixer.o_proj", .linear, .o, in: heads * hd, out: h, layers: set(attention))]
        }
        let mlpBias = try f.bool("mlp_bias", default: false)
        if !mlp.isEmpty {
            m += [ModuleSpec("mixer.up_proj", .linear, .up, in: h, out: inter, bias: mlpBias, layers: set(mlp)),
                  ModuleSpec("mixer.down_proj", .linear, .down, in: inter, out: h, bias: mlpBias, layers: set(mlp))]
        }
        if !moe.isEmpty {
            let count = try f.optionalDim("n_routed_experts", "num_local_experts") ?? 8
            let perToken = try f.optionalDim("num_experts_per_tok") ?? 2
            guard perToken <= count else {
                throw PlanError.invalidDimension(field: "num_experts_per_tok", value: "\(perToken)", reason: "exceeds n_routed_experts \(count)")
            }
            let width = try f.optionalDim("moe_intermediate_size") ?? 7688
            let sharedWidth = try f.optionalDim("moe_shared_expert_intermediate_size") ?? 7688
            let latent = try f.optionalDim("moe_latent_size")
            let input = latent ?? h
            let (perExpert, o2) = (2 * input).multipliedReportingOverflow(by: width)
            guard !o2, !perExpert.multipliedReportingOverflow(by: count).overflow else {
                throw PlanError.invalidDimension(field: "n_routed_experts", value: "\(count)", reason: "the experts are too large to count")
            }
            var experts = ModuleSpec("mixer.experts", .experts, .experts, in: input, out: width, ownParams: count * perExpert, layers: set(moe))
            experts.shapes = [[count, width, input], [count, input, width]]     // up_proj, down_proj
            m += [experts,
                  ModuleSpec("mixer.gate", .router, .router, in: h, out: count, ownParams: count * h, layers: set(moe)),
                  ModuleSpec("mixer.shared_experts.up_proj", .linear, .sharedUp, in: h, out: sharedWidth, bias: mlpBias, layers: set(moe)),
                  ModuleSpec("mixer.shared_experts.down_proj", .linear, .sharedDown, in: sharedWidth, out: h, bias: mlpBias, layers: set(moe))]
            if let latent {
                m += [ModuleSpec("mixer.fc1_latent_proj", .linear, .latentIn, in: h, out: latent, bias: mlpBias, layers: set(moe)),
                      ModuleSpec("mixer.fc2_latent_proj", .linear, .latentOut, in: latent, out: h, bias: mlpBias, layers: set(moe))]
            }
            a.numExperts = count
            a.expertsPerToken = perToken
            block.sharedExpert = .plain
            block.fp32Router = true
            block.nonGatedExperts = true
        }
        m += [ModuleSpec("model.norm_f", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.block = .gated(block)
        a.modules = m
        return a
    }

    /// Each layer's mixer: `layers_block_type` (or `layer_types`), else the checkpoint's
    /// `hybrid_override_pattern` (M Mamba-2, * attention, - MLP, E experts), else the config
    /// class's four layers.
    static func nemotronLayerKinds(_ f: ConfigReader.Fields) throws -> [String] {
        let names = ["linear_attention", "full_attention", "mlp", "moe"]
        let legacy = ["mamba": "linear_attention", "attention": "full_attention"]
        if let v = f.dict["layers_block_type"] ?? f.dict["layer_types"], !(v is NSNull) {
            guard let list = v as? [Any], !list.isEmpty else {
                throw PlanError.invalidDimension(field: "layers_block_type", value: "\(v)", reason: "must list each layer's mixer")
            }
            return try list.map { e in
                guard let s = e as? String, let kind = names.contains(s) ? s : legacy[s] else {
                    throw PlanError.invalidDimension(field: "layers_block_type", value: "\(e)", reason: "must be one of \(names.joined(separator: ", "))")
                }
                return kind
            }
        }
        if let p = f.dict["hybrid_override_pattern"], !(p is NSNull) {
            let map: [Character: String] = ["M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"]
            guard let pattern = p as? String, !pattern.isEmpty, pattern.count <= ConfigReader.layerLimit else {
                throw PlanError.invalidDimension(field: "hybrid_override_pattern", value: "\(p)", reason: "must be a string of M, *, - and E")
            }
            return try pattern.map { c in
                guard let kind = map[c] else {
                    throw PlanError.invalidDimension(field: "hybrid_override_pattern", value: String(c), reason: "must be M, *, - or E")
                }
                return kind
            }
        }
        return ["linear_attention", "moe", "full_attention", "mlp"]
    }
}

extension StateSpace {
    /// A Mamba-2 mixer's modules under `prefix` (`NemotronHMamba2Mixer`,
    /// `GraniteMoeHybridMambaLayer`): dt_bias, A_log and D per head; the depthwise `conv1d` over
    /// x, B and C (bias optional); `in_proj` to z, x, B, C and dt; the gated RMSNorm; `out_proj`.
    /// `outputBias`: `out_proj`'s bias when it differs from `in_proj`'s (Falcon-H1's `projectors_bias`).
    func modules(prefix: String, hidden h: Int, projectionBias: Bool, convolutionBias: Bool, layers: [Int]?,
                 outputBias: Bool? = nil) -> [ModuleSpec] {
        var params = ModuleSpec(prefix, .parameters, .ssmParams, ownParams: 3 * heads, layers: layers)
        params.shapes = [[heads], [heads], [heads]]
        var conv = ModuleSpec("\(prefix).conv1d", .parameters, .ssmConv, ownParams: convDim * kernel + (convolutionBias ? convDim : 0), layers: layers)
        conv.shapes = convolutionBias ? [[convDim, 1, kernel], [convDim]] : [[convDim, 1, kernel]]
        var m = [params, conv,
                 ModuleSpec("\(prefix).in_proj", .linear, .ssmIn, in: h, out: width + convDim + heads, bias: projectionBias, layers: layers)]
        if norm { m.append(ModuleSpec("\(prefix).norm", .norm, .ssmNorm, ownParams: width, layers: layers)) }
        m.append(ModuleSpec("\(prefix).out_proj", .linear, .ssmOut, in: width, out: h, bias: outputBias ?? projectionBias, layers: layers))
        return m
    }
}
