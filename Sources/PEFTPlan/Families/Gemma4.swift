import Foundation

extension FamilySpec {
    /// Gemma 4's language model (`Gemma4TextConfig`, `modeling_gemma4.py`, Transformers 5.25):
    /// Gemma's four sandwich norms and per-head q/k norms; sliding layers of `head_dim` and
    /// full-attention layers of `global_head_dim` (the last layer always full); with
    /// `attention_k_eq_v` the full layers have no v_proj (the keys are the values) and
    /// `num_global_key_value_heads`; the last `num_kv_shared_layers` layers have no k/v
    /// projections or norms and reuse the keys and values of the last earlier layer of their
    /// type (their MLP twice as wide with `use_double_wide_mlp`); per-layer input embeddings
    /// (`hidden_size_per_layer_input`: a second embedding table of every layer's inputs, a
    /// projection of the embeddings to them, and a gate and projection per layer); and with
    /// `enable_moe_block` routed experts beside the dense MLP, with their own norms. PEFT has no
    /// default targets for `gemma4_text`.
    static let gemma4Text = FamilySpec(read: readGemma4Text, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true,
                                       kvHeadsDefault: 4,
                                       configDefaults: ["vocab_size": 262_144, "hidden_size": 2304, "intermediate_size": 9216,
                                                        "num_hidden_layers": 30, "num_attention_heads": 8, "head_dim": 256,
                                                        "max_position_embeddings": 131_072])

    /// Gemma 4 (`Gemma4ForConditionalGeneration`, what AutoModelForCausalLM builds for
    /// `gemma4`): the language model above, Gemma 4's vision encoder and, in the E2B/E4B
    /// checkpoints, its audio encoder — both frozen. PEFT's default targets for `gemma4` are
    /// the language model's q_proj and v_proj, as a regular expression
    /// (`.*language_model\..*\.(q_proj|v_proj)`, peft/utils/constants.py, 0.21.2).
    static let gemma4: FamilySpec = {
        var spec = FamilySpec(read: { try gemma4Reader.read($0, name: $1) }, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true)
        spec.vision = gemma4Reader
        spec.loraTargetPattern = #".*language_model\..*\.(q_proj|v_proj)"#
        return spec
    }()

    static let gemma4Reader = VisionLanguageReader(family: .gemma4, textTypes: [nil: .gemma4Text, "gemma4_text": .gemma4Text],
                                                   tiedByDefault: true, causalLM: true, tower: VisionLanguageReader.gemma4Towers)

    @Sendable static func readGemma4Text(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        var a = try ConfigReader.decoder(f, name, .gemma4Text, headDimDefault: 256, positions: 131_072, tiedDefault: true, norm: .gemma4)
        let (h, layers, heads, kv, hd, inter, vocab) = (a.hiddenSize, a.numLayers, a.numHeads, a.nKVHeads, a.headDim, a.intermediateSize, a.vocabSize)
        let kEqV = try f.bool("attention_k_eq_v", default: false)
        a.finalLogitSoftcapping = f.has("final_logit_softcapping")
        let bias = try f.bool("attention_bias", default: false)

        // the layer types (the last forced to full attention, as the configuration class does)
        var sliding = try Self.layerList(f, "layer_types", layers: layers, values: ["full_attention", "sliding_attention"],
                                         default: { ($0 + 1) % 6 != 0 }, pick: "sliding_attention")
        sliding.removeAll { $0 == layers - 1 }
        let full = (0..<layers).filter { !sliding.contains($0) }
        // each layer's head width and KV heads: `per_layer_config` as the configuration class
        // saves it, or the full layers' `global_head_dim` and (with K = V) `num_global_key_value_heads`
        var shape = Array(repeating: (headDim: hd, kv: kv), count: layers)
        if let perLayer = f.dict["per_layer_config"], !(perLayer is NSNull) {
            guard let overrides = perLayer as? [String: Any] else {
                throw PlanError.invalidDimension(field: "per_layer_config", value: "\(perLayer)", reason: "must be an object of layer overrides")
            }
            for (key, value) in overrides {
                guard let i = Int(key), i >= 0, i < layers, let o = value as? [String: Any] else {
                    throw PlanError.invalidDimension(field: "per_layer_config", value: key, reason: "must name a layer (0–\(layers - 1)) with its overrides")
                }
                let fields = ConfigReader.Fields(o, source: f.source)
                shape[i] = (try fields.optionalDim("head_dim") ?? hd, try fields.optionalDim("num_key_value_heads") ?? kv)
            }
        } else {
            let globalHD = try f.optionalDim("global_head_dim") ?? 512
            let globalKV = kEqV ? (try f.optionalDim("num_global_key_value_heads") ?? kv) : kv
            for i in full { shape[i] = (globalHD, globalKV) }
        }
        for (i, s) in shape.enumerated() where heads % s.kv != 0 {
            let field = sliding.contains(i) || f.dict["per_layer_config"] != nil ? "num_key_value_heads" : "num_global_key_value_heads"
            throw PlanError.invalidDimension(field: field, value: "\(s.kv)", reason: "must divide num_attention_heads \(heads)")
        }
        // KV sharing: the last num_kv_shared_layers layers reuse an earlier layer's keys and values
        let sharedCount = try f.optionalCount("num_kv_shared_layers") ?? 0
        guard sharedCount <= layers else {
            throw PlanError.invalidDimension(field: "num_kv_shared_layers", value: "\(sharedCount)", reason: "more than the \(layers) layers")
        }
        let firstShared = layers - sharedCount
        guard sharedCount < layers else {
            throw PlanError.invalidDimension(field: "num_kv_shared_layers", value: "\(sharedCount)",
                                             reason: "must leave a layer that makes the keys and values the others share")
        }
        if sharedCount > 0 {
            let producing = Set((0..<firstShared).map { sliding.contains($0) })
            guard producing == Set((0..<layers).map { sliding.contains($0) }) else {
                throw PlanError.invalidDimension(field: "num_kv_shared_layers", value: "\(sharedCount)",
                                                 reason: "the layers before the shared ones must hold every layer type that shares their keys and values")
            }
        }
        let doubleWide = try f.bool("use_double_wide_mlp", default: false)
        let ple = try f.optionalCount("hidden_size_per_layer_input") ?? 256
        let plVocab = try f.optionalDim("vocab_size_per_layer_input") ?? 262_144
        let moe = try f.bool("enable_moe_block", default: false)

        func set(_ l: [Int]) -> [Int]? { l.count == layers ? nil : l }
        func all(_ l: [Int], _ keep: (Int) -> Bool) -> [Int] { l.filter(keep) }
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        // layers of one type and shape hold the same attention modules
        var groups: [(layers: [Int], headDim: Int, kvHeads: Int, full: Bool)] = []
        for i in 0..<layers {
            let isFull = !sliding.contains(i)
            if let g = groups.firstIndex(where: { $0.headDim == shape[i].headDim && $0.kvHeads == shape[i].kv && $0.full == isFull }) {
                groups[g].layers.append(i)
            } else {
                groups.append(([i], shape[i].headDim, shape[i].kv, isFull))
            }
        }
        for (group, headDim, kvHeads, isFull) in groups {
            let q = try VisionLanguageReader.width("head_dim", heads, headDim)
            let kvWidth = try VisionLanguageReader.width("head_dim", kvHeads, headDim)
            let producers = all(group) { $0 < firstShared }
            guard !producers.isEmpty else {
                throw PlanError.invalidDimension(field: "per_layer_config", value: "layer \(group[0])",
                                                 reason: "a KV-sharing layer whose head shape no earlier layer of its type has")
            }
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: q, bias: bias, layers: set(group)),
                  ModuleSpec("self_attn.q_norm", .norm, .qNorm, ownParams: headDim, layers: set(group))]
            if !producers.isEmpty {
                m += [ModuleSpec("self_attn.k_norm", .norm, .kNorm, ownParams: headDim, layers: set(producers)),
                      ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: kvWidth, bias: bias, layers: set(producers))]
                // K = V in the full layers: no v_proj there
                if !(kEqV && isFull) {
                    m.append(ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: kvWidth, bias: bias, layers: set(producers)))
                }
            }
            m.append(ModuleSpec("self_attn.o_proj", .linear, .o, in: q, out: h, bias: bias, layers: set(group)))
        }
        let shared = Array(firstShared..<layers)
        let wide = doubleWide ? shared : []
        for (group, width) in [((0..<layers).filter { !wide.contains($0) }, inter), (wide, 2 * inter)] where !group.isEmpty {
            m += [ModuleSpec("mlp.gate_proj", .linear, .gate, in: h, out: width, layers: set(group)),
                  ModuleSpec("mlp.up_proj", .linear, .up, in: h, out: width, layers: set(group)),
                  ModuleSpec("mlp.down_proj", .linear, .down, in: width, out: h, layers: set(group))]
        }
        m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, .attentionOutputNorm, ownParams: h),
              ModuleSpec("pre_feedforward_layernorm", .norm, .feedForwardNorm, ownParams: h),
              ModuleSpec("post_feedforward_layernorm", .norm, .feedForwardOutputNorm, ownParams: h)]
        var block = GatedBlock(headNorm: .perHead, norms: .sandwich)
        block.layerHeadDims = true
        block.kvSharingLayers = Array(firstShared..<layers)
        block.keyAsValueLayers = kEqV ? full.filter { $0 < firstShared } : []
        block.valueNorm = true
        if ple > 0 {
            m += [ModuleSpec("per_layer_input_gate", .linear, .perLayerGate, in: h, out: ple),
                  ModuleSpec("per_layer_projection", .linear, .perLayerProjection, in: ple, out: h),
                  ModuleSpec("post_per_layer_input_norm", .norm, .perLayerNorm, ownParams: h)]
            block.perLayerInput = ple
        }
        if moe {
            let experts = try f.dim("num_experts")
            let k = try f.dim("top_k_experts")
            let moeI = try f.dim("moe_intermediate_size")
            guard k <= experts else {
                throw PlanError.invalidDimension(field: "top_k_experts", value: "\(k)", reason: "more than the \(experts) experts")
            }
            var scale = ModuleSpec("router", .parameters, .routerScale, ownParams: h + experts)
            scale.shapes = [[h], [experts]]
            let expertParams = experts.multipliedReportingOverflow(by: 3 * h * moeI)
            guard !expertParams.overflow else {
                throw PlanError.invalidDimension(field: "num_experts", value: "\(experts)", reason: "experts larger than any real model")
            }
            m += [scale,
                  ModuleSpec("router.proj", .linear, .router, in: h, out: experts),
                  ModuleSpec("experts", .experts, .experts, in: h, out: moeI, ownParams: expertParams.partialValue),
                  ModuleSpec("post_feedforward_layernorm_1", .norm, .mlpOutputNorm, ownParams: h),
                  ModuleSpec("post_feedforward_layernorm_2", .norm, .expertsOutputNorm, ownParams: h),
                  ModuleSpec("pre_feedforward_layernorm_2", .norm, .expertsNorm, ownParams: h)]
            a.numExperts = experts
            a.expertsPerToken = k
            block.expertsBesideMLP = true
        }
        m.append(ModuleSpec("model.norm", .norm, .finalNorm, ownParams: h, perLayer: false))
        if ple > 0 {
            let packed = try VisionLanguageReader.width("hidden_size_per_layer_input", layers, ple)
            m += [ModuleSpec("model.embed_tokens_per_layer", .embedding, .perLayerEmbed, in: plVocab, out: packed, perLayer: false),
                  ModuleSpec("model.per_layer_model_projection", .linear, .perLayerModelProjection, in: h, out: packed, perLayer: false),
                  ModuleSpec("model.per_layer_projection_norm", .norm, .perLayerProjectionNorm, ownParams: ple, perLayer: false)]
        }
        m.append(ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings))
        a.block = .gated(block)
        a.modules = m
        return a
    }
}

extension VisionLanguageReader {
    /// Gemma 4's encoders. The vision encoder (`Gemma4VisionModel`, class defaults
    /// `Gemma4VisionConfig`): a Linear patch embedding with a two-axis position table, Gemma
    /// decoder-style layers (four norms, q/k norms, gated MLP; every Linear inside a
    /// `Gemma4ClippableLinear`, so named `….linear`), patches pooled `pooling_kernel_size`² to a
    /// token, and `embed_vision.embedding_projection`. The audio encoder when the config has an
    /// `audio_config` (`Gemma4AudioModel`, class defaults `Gemma4AudioConfig`): two strided
    /// convolutions, Conformer layers (two feed-forwards, attention with a relative-position
    /// projection, a light convolution), an output projection and `embed_audio`.
    static func gemma4Towers(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower?) {
        let audio = top.dict["audio_config"] as? [String: Any]
        let audioModules = try audio.map { try gemma4Audio(ConfigReader.Fields($0, source: top.source), textHidden) } ?? []
        // Gemma4Model builds each encoder only when its config is given
        guard let vision = top.dict["vision_config"], !(vision is NSNull) else {
            return (keepLastProjection(audioModules), nil)
        }
        let layers = try dim(v, "num_hidden_layers", 16), h = try dim(v, "hidden_size", 768), i = try dim(v, "intermediate_size", 3072)
        let heads = try dim(v, "num_attention_heads", 12), kvHeads = try dim(v, "num_key_value_heads", 12), hd = try dim(v, "head_dim", 64)
        let p = try dim(v, "patch_size", 16), positions = try dim(v, "position_embedding_size", 10 * 1024)
        let pool = try dim(v, "pooling_kernel_size", 3)
        let q = try width("head_dim", heads, hd), kvw = try width("head_dim", kvHeads, hd)
        let prefix = "model.vision_tower", block = prefix + ".encoder.layers.*."
        var m: [ModuleSpec] = [linear(prefix + ".patch_embedder.input_proj", try width("patch_size", 3, p, p), h, bias: false),
                               try tensors(prefix + ".patch_embedder.position_embedding_table", [[2, positions, h]])]
        m += linears(block, [("self_attn.q_proj.linear", h, q), ("self_attn.k_proj.linear", h, kvw), ("self_attn.v_proj.linear", h, kvw),
                             ("self_attn.o_proj.linear", q, h)], bias: false, repeats: layers)
        m += [norm(block + "self_attn.q_norm", hd, bias: false, repeats: layers), norm(block + "self_attn.k_norm", hd, bias: false, repeats: layers)]
        m += linears(block, [("mlp.gate_proj.linear", h, i), ("mlp.up_proj.linear", h, i), ("mlp.down_proj.linear", i, h)], bias: false, repeats: layers)
        m += ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]
            .map { norm(block + $0, h, bias: false, repeats: layers) }
        m.append(linear("model.embed_vision.embedding_projection", h, textHidden, bias: false, .visionProjector))
        m = keepLastProjection(m + audioModules)
        let tokens = try dim(top, "vision_soft_tokens_per_image", 280)
        var tower = VisionTower(audio == nil ? "Gemma 4 vision encoder" : "Gemma 4 vision and audio encoders", layers: layers, hidden: h, heads: heads,
                                 patchesPerToken: try width("pooling_kernel_size", pool, pool),
                                 tokensPerImage: "up to \(tokens) tokens per image, each pooling \(pool)×\(pool) patches of \(p)×\(p) pixels")
        tower.prefix = prefix
        tower.projector = [.linear("model.embed_vision.embedding_projection", merged: true)]
        return (m, tower)
    }

    /// bitsandbytes leaves the module of the model's last parameter unquantised
    /// (`get_keys_to_not_convert`, quantizers/base.py, 5.25): in Gemma 4 (tied lm_head) that is
    /// the last encoder's embedding projection.
    static func keepLastProjection(_ modules: [ModuleSpec]) -> [ModuleSpec] {
        var m = modules
        if let i = m.lastIndex(where: { $0.role == .visionProjector && $0.kind == .linear }) { m[i].keep16Bit = true }
        return m
    }

    static func gemma4Audio(_ v: ConfigReader.Fields, _ textHidden: Int) throws -> [ModuleSpec] {
        let layers = try dim(v, "num_hidden_layers", 12), h = try dim(v, "hidden_size", 1024)
        let heads = try dim(v, "num_attention_heads", 8)
        guard h % heads == 0 else {
            throw PlanError.invalidDimension(field: "audio_config.num_attention_heads", value: "\(heads)", reason: "must divide hidden_size \(h)")
        }
        let channels = try intList(v, "subsampling_conv_channels", [128, 32])
        guard channels.count == 2 else {
            throw PlanError.invalidDimension(field: "subsampling_conv_channels", value: "\(channels)", reason: "must be two numbers")
        }
        let kernel = try dim(v, "conv_kernel_size", 5), out = try dim(v, "output_proj_dims", 1536)
        let hd = h / heads
        let prefix = "model.audio_tower", block = prefix + ".layers.*."
        var m: [ModuleSpec] = [
            try tensors(prefix + ".subsample_conv_projection.layer0.conv", [[channels[0], 1, 3, 3]]),
            norm(prefix + ".subsample_conv_projection.layer0.norm", channels[0], bias: false),
            try tensors(prefix + ".subsample_conv_projection.layer1.conv", [[channels[1], channels[0], 3, 3]]),
            norm(prefix + ".subsample_conv_projection.layer1.norm", channels[1], bias: false),
            linear(prefix + ".subsample_conv_projection.input_proj_linear", try width("subsampling_conv_channels", channels[0] / 4, channels[1]), h, bias: false),
        ]
        let wide = try width("audio_config.hidden_size", h, 4)
        for ff in ["feed_forward1", "feed_forward2"] {
            m += linears(block + ff + ".", [("ffw_layer_1.linear", h, wide), ("ffw_layer_2.linear", wide, h)], bias: false, repeats: layers)
            m += [norm(block + ff + ".pre_layer_norm", h, bias: false, repeats: layers), norm(block + ff + ".post_layer_norm", h, bias: false, repeats: layers)]
        }
        var scale = try tensors(block + "self_attn", [[hd]])
        scale.repeats = layers
        m.append(scale)
        m += linears(block + "self_attn.", [("q_proj.linear", h, h), ("k_proj.linear", h, h), ("v_proj.linear", h, h), ("post.linear", h, h),
                                            ("relative_k_proj", h, h)], bias: false, repeats: layers)
        m += linears(block + "lconv1d.", [("linear_start.linear", h, 2 * h), ("linear_end.linear", h, h)], bias: false, repeats: layers)
        var conv = try tensors(block + "lconv1d.depthwise_conv1d", [[h, 1, kernel]])
        conv.repeats = layers
        m.append(conv)
        m += ["lconv1d.pre_layer_norm", "lconv1d.conv_norm", "norm_pre_attn", "norm_post_attn", "norm_out"]
            .map { norm(block + $0, h, bias: false, repeats: layers) }
        m += [linear(prefix + ".output_proj", h, out, bias: true),
              linear("model.embed_audio.embedding_projection", out, textHidden, bias: false, .visionProjector)]
        return m
    }
}
