import Foundation

/// Reads a vision-language config (`…ForConditionalGeneration`, what
/// `AutoModelForImageTextToText` builds, and for Gemma 3 also `AutoModelForCausalLM`): the
/// language model from `text_config` with its own family's reader, its modules renamed under
/// `model.language_model`, and the image side — vision tower and projector — from
/// `vision_config` and the top level, each module as `named_modules()` shows it
/// (Transformers 5.25; every tower below checked on the meta device by the tests).
///
/// Training, as LLaMA-Factory does by default (`freeze_vision_tower=True`,
/// `freeze_multi_modal_projector=True`, hiyouga/LLaMA-Factory
/// src/llamafactory/hparams/finetuning_args.py @00577a85): full fine-tuning trains the
/// language model and leaves the tower and projector frozen, counted in the weights.
struct VisionLanguageReader: Sendable {
    let family: ModelFamily
    /// The language model's family for each `text_config.model_type` the configuration
    /// class accepts (nil key: none given, the class's default sub-config).
    let textTypes: [String?: ModelFamily]
    /// Any other language-model type we read is accepted as the text config (Mistral 3's
    /// `AutoConfig` sub-config: Mistral, Ministral 3, …).
    var anyTextType = false
    /// Qwen2.5-VL's published configs keep the language model's keys at the top level.
    var textAtTopLevel = false
    /// Most layers (or repeated mergers) an encoder may have.
    static let towerLayerLimit = 1000
    /// The configuration class's `tie_word_embeddings` default.
    var tiedByDefault = false
    /// Whether Transformers maps the type for AutoModelForCausalLM (Gemma 3 and 4 do); the
    /// others load with AutoModelForImageTextToText only.
    var causalLM = false
    /// Builds the image side from `vision_config` (class defaults where a key is missing),
    /// the top level, and the language model's width.
    /// (No tower: Gemma 4 builds no vision encoder when `vision_config` is left out.)
    let tower: @Sendable (_ vision: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> (modules: [ModuleSpec], tower: VisionTower?)

    func read(_ f: ConfigReader.Fields, name: String) throws -> Architecture {
        var text: [String: Any]
        if let t = f.dict["text_config"], !(t is NSNull) {
            guard let dict = t as? [String: Any] else {
                throw PlanError.invalidDimension(field: "text_config", value: "\(t)", reason: "must be an object")
            }
            text = dict
        } else if textAtTopLevel {
            text = f.dict
            text.removeValue(forKey: "vision_config")
        } else {
            throw PlanError.invalidDimension(field: "text_config", value: "missing", reason: "a \(family.rawValue) config holds its language model there")
        }
        // Transformers 5 ties lm_head by the top-level config's tie_word_embeddings (its class
        // default when the file leaves it out), whatever text_config says
        text["tie_word_embeddings"] = try f.bool("tie_word_embeddings", default: tiedByDefault)
        let typeName = text["model_type"] as? String
        let textFamily: ModelFamily
        if let known = textTypes[typeName] {
            textFamily = known
        } else if anyTextType, let typeName, let known = ModelFamily(rawValue: typeName), !known.spec.isVisionLanguage {
            textFamily = known
        } else {
            throw PlanError.invalidDimension(field: "text_config.model_type", value: typeName ?? "missing",
                                             reason: anyTextType ? "not a language model peft-plan reads" :
                                                "not a language model \(family.rawValue) builds (\(textTypes.keys.compactMap { $0 }.sorted().joined(separator: ", ")))")
        }
        text["model_type"] = textFamily.rawValue
        var arch = try textFamily.spec.build(ConfigReader.Fields(text, source: f.source), name)
        // the language model sits under model.language_model; lm_head stays at the top
        for i in arch.modules.indices where !arch.modules[i].perLayer && arch.modules[i].name.hasPrefix("model.") {
            arch.modules[i].name = "model.language_model." + arch.modules[i].name.dropFirst("model.".count)
        }
        if arch.layerPrefix.hasPrefix("model.") {
            arch.layerPrefix = "model.language_model." + arch.layerPrefix.dropFirst("model.".count)
        }
        let visionValue = f.dict["vision_config"]
        var visionDict: [String: Any] = [:]
        if let v = visionValue, !(v is NSNull) {
            guard let d = v as? [String: Any] else {
                throw PlanError.invalidDimension(field: "vision_config", value: "\(v)", reason: "must be an object")
            }
            visionDict = d
        }
        let image = try tower(ConfigReader.Fields(visionDict, source: f.source), f, arch.hiddenSize)
        guard image.modules.allSatisfy({ $0.repeats <= Self.towerLayerLimit }), (image.tower?.layers ?? 0) <= Self.towerLayerLimit else {
            throw PlanError.invalidDimension(field: "vision_config", value: "more than \(Self.towerLayerLimit) layers or mergers",
                                             reason: "far beyond any real encoder (they have tens)")
        }
        guard (image.tower?.patchesPerToken ?? 1) <= 1024 else {
            throw PlanError.invalidDimension(field: "vision_config", value: "\(image.tower?.patchesPerToken ?? 0) patches per image token",
                                             reason: "more than 1024 patches merged into one token, far beyond any real model")
        }
        arch.modules = image.modules + arch.modules
        arch.vision = image.tower
        arch.family = family
        return arch
    }
}

// MARK: - Module helpers

extension VisionLanguageReader {
    static func linear(_ name: String, _ i: Int, _ o: Int, bias: Bool, _ role: ModuleRole = .visionTower, repeats: Int = 1) -> ModuleSpec {
        var m = ModuleSpec(name, .linear, role, in: i, out: o, bias: bias, perLayer: false)
        m.repeats = repeats
        return m
    }

    /// Linears under one prefix: (name, in, out) each.
    static func linears(_ prefix: String, _ specs: [(String, Int, Int)], bias: Bool, _ role: ModuleRole = .visionTower, repeats: Int = 1) -> [ModuleSpec] {
        specs.map { linear(prefix + $0.0, $0.1, $0.2, bias: bias, role, repeats: repeats) }
    }

    static func norm(_ name: String, _ width: Int, bias: Bool, _ role: ModuleRole = .visionTower, repeats: Int = 1) -> ModuleSpec {
        var m = ModuleSpec(name, .norm, role, in: width, out: width, ownParams: width * (bias ? 2 : 1), perLayer: false)
        m.repeats = repeats
        return m
    }

    /// Bare tensors (a patch convolution, a position table PEFT cannot wrap, a projection weight).
    static func tensors(_ name: String, _ shapes: [[Int]], _ role: ModuleRole = .visionTower) throws -> ModuleSpec {
        var total = 0
        for s in shapes {
            var n = 1
            for d in s {
                let p = n.multipliedReportingOverflow(by: d)
                guard !p.overflow, p.partialValue <= ConfigReader.parameterLimit else {
                    throw PlanError.invalidDimension(field: "vision_config", value: "\(s)", reason: "a tensor larger than any real model")
                }
                n = p.partialValue
            }
            total += n
        }
        var m = ModuleSpec(name, .parameters, role, ownParams: total, perLayer: false)
        m.shapes = shapes
        return m
    }

    static func embedding(_ name: String, _ rows: Int, _ width: Int) -> ModuleSpec {
        ModuleSpec(name, .embedding, .visionTower, in: rows, out: width, perLayer: false)
    }

    /// A count the vision config may give (the class default otherwise).
    static func dim(_ v: ConfigReader.Fields, _ key: String, _ fallback: Int) throws -> Int {
        try v.optionalDim(key) ?? fallback
    }

    /// A width made of several config values (hidden × merge²), refused past the dimension limit.
    static func width(_ field: String, _ factors: Int...) throws -> Int {
        var n = 1
        for f in factors {
            let p = n.multipliedReportingOverflow(by: f)
            guard !p.overflow, p.partialValue <= ConfigReader.dimensionLimit else {
                throw PlanError.invalidDimension(field: field, value: factors.map(String.init).joined(separator: " × "),
                                                 reason: "a width larger than any real model (limit \(ConfigReader.dimensionLimit))")
            }
            n = p.partialValue
        }
        return n
    }

    static func intList(_ v: ConfigReader.Fields, _ key: String, _ fallback: [Int]) throws -> [Int] {
        guard let list = try ConfigReader.optionalList(v, key) else { return fallback }
        return try list.map { try v.positive(key, $0 as Any) }
    }

    /// A list of 0-based layer indices.
    static func indexList(_ v: ConfigReader.Fields, _ key: String, _ fallback: [Int]) throws -> [Int] {
        guard let list = try ConfigReader.optionalList(v, key) else { return fallback }
        guard list.count <= towerLayerLimit else {
            throw PlanError.invalidDimension(field: key, value: "\(list.count) entries", reason: "more than \(towerLayerLimit) layers")
        }
        return try list.map { e in
            if let n = e as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue == 0 { return 0 }
            return try v.positive(key, e as Any)
        }
    }
}

// MARK: - The towers

extension VisionLanguageReader {
    /// Qwen2.5-VL's ViT (`Qwen2_5_VisionTransformerPretrainedModel`, modeling_qwen2_5_vl.py):
    /// a Conv3d patch embedding without bias, RMSNorm blocks with a fused qkv and a gated
    /// MLP (all with bias), and a merger (RMSNorm, two Linears over 2×2 patches).
    /// Class defaults: `Qwen2_5_VLVisionConfig`.
    /// The shape both Qwen-VL towers read from `vision_config` (their classes' defaults differ).
    struct QwenViT {
        let depth, h, i, heads, c, p, merge, t, out, mh: Int
        init(_ v: ConfigReader.Fields, depth: Int, hidden: Int, intermediate: Int, patch: Int, out: Int) throws {
            self.depth = try dim(v, "depth", depth); h = try dim(v, "hidden_size", hidden); i = try dim(v, "intermediate_size", intermediate)
            heads = try dim(v, "num_heads", 16); c = try dim(v, "in_channels", 3); p = try dim(v, "patch_size", patch)
            merge = try dim(v, "spatial_merge_size", 2); t = try dim(v, "temporal_patch_size", 2); self.out = try dim(v, "out_hidden_size", out)
            mh = try width("spatial_merge_size", h, merge, merge)
        }

        /// `model.visual.blocks.*`: two norms (LayerNorm with bias, or RMSNorm), the fused qkv
        /// and its projection, then the MLP's Linears (name, in, out), all with bias.
        func blocks(layerNorm: Bool, mlp: [(String, Int, Int)]) -> [ModuleSpec] {
            [norm("model.visual.blocks.*.norm1", h, bias: layerNorm, repeats: depth),
             norm("model.visual.blocks.*.norm2", h, bias: layerNorm, repeats: depth),
             linear("model.visual.blocks.*.attn.qkv", h, 3 * h, bias: true, repeats: depth),
             linear("model.visual.blocks.*.attn.proj", h, h, bias: true, repeats: depth)]
                + mlp.map { linear("model.visual.blocks.*.mlp." + $0.0, $0.1, $0.2, bias: true, repeats: depth) }
        }
    }

    static func qwen25ViT(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let q = try QwenViT(v, depth: 32, hidden: 3584, intermediate: 3420, patch: 14, out: 3584)
        let (depth, h, i, heads, c, p, merge, t, out, mh) = (q.depth, q.h, q.i, q.heads, q.c, q.p, q.merge, q.t, q.out, q.mh)
        let m: [ModuleSpec] = [try tensors("model.visual.patch_embed.proj", [[h, c, t, p, p]])]
            + q.blocks(layerNorm: false, mlp: [("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]) + [
            norm("model.visual.merger.ln_q", h, bias: false, .visionProjector),
            linear("model.visual.merger.mlp.0", mh, mh, bias: true, .visionProjector),
            linear("model.visual.merger.mlp.2", mh, out, bias: true, .visionProjector),
        ]
        let side = try width("patch_size", p, merge)
        var tower = VisionTower("Qwen2.5-VL ViT", layers: depth, hidden: h, heads: heads,
                                 patchesPerToken: merge * merge, tokensPerImage: "one token per \(side)×\(side) pixels (a 448×448 image: \((448 / side) * (448 / side)))")
        // windows of window_size pixels (whole merged tokens), full attention in fullatt_block_indexes
        let window = try dim(v, "window_size", 112) / side
        tower.windowPatches = try width("window_size", max(1, window), max(1, window), merge, merge)
        tower.fullAttentionLayers = try indexList(v, "fullatt_block_indexes", [7, 15, 23, 31])
        tower.projector = [.norm("model.visual.merger.ln_q", rms: true, merged: false), .linear("model.visual.merger.mlp.0", merged: true),
                           .gelu(width: mh, merged: true), .linear("model.visual.merger.mlp.2", merged: true)]
        return (m, tower)
    }

    /// Qwen3-VL's ViT (`Qwen3VLVisionModel`, modeling_qwen3_vl.py): a Conv3d patch embedding
    /// with bias, a learned position table, LayerNorm blocks (fused qkv, fc1/fc2 MLP), a
    /// merger, and one deepstack merger per `deepstack_visual_indexes` entry (its norm over
    /// the 2×2-merged width). Class defaults: `Qwen3VLVisionConfig` (the MoE's are the same).
    static func qwen3ViT(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let q = try QwenViT(v, depth: 27, hidden: 1152, intermediate: 4304, patch: 16, out: 3584)
        let (depth, h, i, heads, c, p, merge, t, out, mh) = (q.depth, q.h, q.i, q.heads, q.c, q.p, q.merge, q.t, q.out, q.mh)
        let positions = try dim(v, "num_position_embeddings", 2304)
        let deepstack = try indexList(v, "deepstack_visual_indexes", [8, 16, 24]).count
        var m: [ModuleSpec] = [try tensors("model.visual.patch_embed.proj", [[h, c, t, p, p], [h]]), embedding("model.visual.pos_embed", positions, h)]
            + q.blocks(layerNorm: true, mlp: [("linear_fc1", h, i), ("linear_fc2", i, h)]) + [
            norm("model.visual.merger.norm", h, bias: true, .visionProjector),
            linear("model.visual.merger.linear_fc1", mh, mh, bias: true, .visionProjector),
            linear("model.visual.merger.linear_fc2", mh, out, bias: true, .visionProjector),
        ]
        if deepstack > 0 {
            m += [norm("model.visual.deepstack_merger_list.*.norm", mh, bias: true, .visionProjector, repeats: deepstack),
                  linear("model.visual.deepstack_merger_list.*.linear_fc1", mh, mh, bias: true, .visionProjector, repeats: deepstack),
                  linear("model.visual.deepstack_merger_list.*.linear_fc2", mh, out, bias: true, .visionProjector, repeats: deepstack)]
        }
        let side = try width("patch_size", p, merge)
        var tower = VisionTower("Qwen3-VL ViT", layers: depth, hidden: h, heads: heads,
                                 patchesPerToken: merge * merge, tokensPerImage: "one token per \(side)×\(side) pixels (a 448×448 image: \((448 / side) * (448 / side)))")
        tower.projector = [.norm("model.visual.merger.norm", rms: false, merged: false), .linear("model.visual.merger.linear_fc1", merged: true),
                           .gelu(width: mh, merged: true), .linear("model.visual.merger.linear_fc2", merged: true)]
        if deepstack > 0 {
            // each deepstack merger (norm after the 2×2 shuffle) over an intermediate block's output
            tower.projector += [.norm("model.visual.deepstack_merger_list.*.norm", rms: false, merged: true),
                                .linear("model.visual.deepstack_merger_list.*.linear_fc1", merged: true), .gelu(width: mh, merged: true),
                                .linear("model.visual.deepstack_merger_list.*.linear_fc2", merged: true)]
        }
        return (m, tower)
    }

    /// The SigLIP encoder layers and post-norm (`SiglipVisionTransformer`, Gemma 3's tower;
    /// `Siglip2VisionTransformer`, LFM2-VL's), with the attention-pooling head when
    /// `vision_use_head` (its `nn.MultiheadAttention` keeps in_proj as bare tensors and
    /// out_proj as a Linear).
    static func siglipEncoder(prefix: String, layers: Int, h: Int, i: Int, head: Bool) -> [ModuleSpec] {
        let block = prefix + ".encoder.layers.*."
        var m: [ModuleSpec] = [norm(block + "layer_norm1", h, bias: true, repeats: layers)]
            + linears(block + "self_attn.", [("k_proj", h, h), ("v_proj", h, h), ("q_proj", h, h), ("out_proj", h, h)], bias: true, repeats: layers)
            + [norm(block + "layer_norm2", h, bias: true, repeats: layers)]
            + linears(block + "mlp.", [("fc1", h, i), ("fc2", i, h)], bias: true, repeats: layers)
            + [norm(prefix + ".post_layernorm", h, bias: true)]
        if head {
            var attention = ModuleSpec(prefix + ".head.attention", .parameters, .visionTower, ownParams: 3 * h * h + 3 * h, perLayer: false)
            attention.shapes = [[3 * h, h], [3 * h]]
            var probe = ModuleSpec(prefix + ".head", .parameters, .visionTower, ownParams: h, perLayer: false)
            probe.shapes = [[1, 1, h]]
            m += [probe, attention,
                  linear(prefix + ".head.attention.out_proj", h, h, bias: true),
                  norm(prefix + ".head.layernorm", h, bias: true),
                  linear(prefix + ".head.mlp.fc1", h, i, bias: true),
                  linear(prefix + ".head.mlp.fc2", i, h, bias: true)]
        }
        return m
    }

    /// Gemma 3's SigLIP tower (`SiglipVisionModel`; class defaults `SiglipVisionConfig`) and
    /// its projector (`Gemma3MultiModalProjector`: an RMSNorm and one projection weight; the
    /// patches average-pooled to `mm_tokens_per_image`).
    static func gemma3SigLIP(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let layers = try dim(v, "num_hidden_layers", 12), h = try dim(v, "hidden_size", 768), i = try dim(v, "intermediate_size", 3072)
        let heads = try dim(v, "num_attention_heads", 12), c = try dim(v, "num_channels", 3)
        let image = try dim(v, "image_size", 224), p = try dim(v, "patch_size", 16)
        let tokens = try dim(top, "mm_tokens_per_image", 256)
        let side = image / p
        _ = try width("image_size", side, side)
        guard side >= 1 else {
            throw PlanError.invalidDimension(field: "image_size", value: "\(image)", reason: "must be at least the patch size \(p)")
        }
        let prefix = "model.vision_tower"
        var m: [ModuleSpec] = [
            try tensors(prefix + ".embeddings.patch_embedding", [[h, c, p, p], [h]]),
            embedding(prefix + ".embeddings.position_embedding", side * side, h),
        ]
        m += siglipEncoder(prefix: prefix, layers: layers, h: h, i: i, head: try v.bool("vision_use_head", default: true))
        m += [try tensors("model.multi_modal_projector", [[h, textHidden]], .visionProjector),
              norm("model.multi_modal_projector.mm_soft_emb_norm", h, bias: false, .visionProjector)]
        var tower = VisionTower("SigLIP", layers: layers, hidden: h, heads: heads,
                                 patchesPerToken: max(1, side * side / tokens), tokensPerImage: "\(tokens) tokens per image (resized to \(image)×\(image))")
        tower.rotary = false
        // post_layernorm, average pooling to mm_tokens_per_image, Gemma's RMSNorm, the projection
        tower.projector = [.norm(prefix + ".post_layernorm", rms: false, merged: false),
                           .norm("model.multi_modal_projector.mm_soft_emb_norm", rms: true, merged: true),
                           .matmul(in: h, out: textHidden, merged: true)]
        return (m, tower)
    }

    /// LFM2-VL's SigLIP 2 tower (`Siglip2VisionModel`, a Linear patch embedding; class
    /// defaults `Siglip2VisionConfig`) and its projector (`Lfm2VlMultiModalProjector`: pixel
    /// unshuffle by `downsample_factor`, an optional LayerNorm, two Linears).
    static func lfm2SigLIP2(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let layers = try dim(v, "num_hidden_layers", 12), h = try dim(v, "hidden_size", 768), i = try dim(v, "intermediate_size", 3072)
        let heads = try dim(v, "num_attention_heads", 12), c = try dim(v, "num_channels", 3), p = try dim(v, "patch_size", 16)
        let patches = try dim(v, "num_patches", 256)
        let factor = try dim(top, "downsample_factor", 2), projector = try dim(top, "projector_hidden_size", 2560)
        let bias = try top.bool("projector_bias", default: true)
        let prefix = "model.vision_tower"
        var m: [ModuleSpec] = [
            linear(prefix + ".embeddings.patch_embedding", try width("patch_size", c, p, p), h, bias: true),
            embedding(prefix + ".embeddings.position_embedding", patches, h),
        ]
        m += siglipEncoder(prefix: prefix, layers: layers, h: h, i: i, head: try v.bool("vision_use_head", default: true))
        let merged = try width("downsample_factor", h, factor, factor)
        if try top.bool("projector_use_layernorm", default: true) {
            m.append(norm("model.multi_modal_projector.layer_norm", merged, bias: true, .visionProjector))
        }
        m += [linear("model.multi_modal_projector.linear_1", merged, projector, bias: bias, .visionProjector),
              linear("model.multi_modal_projector.linear_2", projector, textHidden, bias: bias, .visionProjector)]
        let side = try width("patch_size", p, factor)
        var tower = VisionTower("SigLIP 2 NaFlex", layers: layers, hidden: h, heads: heads,
                                 patchesPerToken: factor * factor, tokensPerImage: "one token per \(side)×\(side) pixels, large images in 512×512 tiles")
        tower.rotary = false
        tower.projector = [.norm(prefix + ".post_layernorm", rms: false, merged: false)]
        if m.contains(where: { $0.name == "model.multi_modal_projector.layer_norm" }) {
            tower.projector.append(.norm("model.multi_modal_projector.layer_norm", rms: false, merged: true))
        }
        tower.projector += [.linear("model.multi_modal_projector.linear_1", merged: true), .gelu(width: projector, merged: true),
                            .linear("model.multi_modal_projector.linear_2", merged: true)]
        return (m, tower)
    }

    /// Mistral 3's Pixtral tower (`PixtralVisionModel`, class defaults `PixtralVisionConfig`:
    /// a Conv2d without bias, RMSNorm blocks with a gated MLP, no biases) and projector
    /// (`Mistral3MultiModalProjector`: RMSNorm, a 2×2 patch merger, two Linears).
    static func pixtral(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let layers = try dim(v, "num_hidden_layers", 24), h = try dim(v, "hidden_size", 1024), i = try dim(v, "intermediate_size", 4096)
        // PixtralVisionConfig's patch is 16; Mistral3Config's own vision default (no vision_config) 14
        let heads = try dim(v, "num_attention_heads", 16), c = try dim(v, "num_channels", 3), p = try dim(v, "patch_size", v.dict.isEmpty ? 14 : 16)
        guard h % heads == 0 else {
            throw PlanError.invalidDimension(field: "vision_config.num_attention_heads", value: "\(heads)", reason: "must divide hidden_size \(h)")
        }
        let merge = try dim(top, "spatial_merge_size", 2)
        let bias = try top.bool("multimodal_projector_bias", default: false)
        // one feature layer (a number) or several (a list), concatenated before linear_1
        let featureLayers = (top.dict["vision_feature_layer"] as? [Any])?.count ?? 1
        let prefix = "model.vision_tower"
        let q = h        // PixtralVisionConfig sets head_dim to hidden_size / heads: q, k, v and o are hidden × hidden
        let block = prefix + ".transformer.layers.*."
        let m: [ModuleSpec] = [
            try tensors(prefix + ".patch_conv", [[h, c, p, p]]),
            norm(prefix + ".ln_pre", h, bias: false),
            norm(block + "attention_norm", h, bias: false, repeats: layers),
        ] + linears(block, [("feed_forward.gate_proj", h, i), ("feed_forward.up_proj", h, i), ("feed_forward.down_proj", i, h),
                            ("attention.k_proj", h, q), ("attention.v_proj", h, q), ("attention.q_proj", h, q), ("attention.o_proj", q, h)],
                    bias: false, repeats: layers) + [
            norm(block + "ffn_norm", h, bias: false, repeats: layers),
            norm("model.multi_modal_projector.norm", h, bias: false, .visionProjector),
            linear("model.multi_modal_projector.patch_merger.merging_layer", try width("spatial_merge_size", h, merge, merge), h, bias: false, .visionProjector),
            linear("model.multi_modal_projector.linear_1", try width("vision_feature_layer", h, featureLayers), textHidden, bias: bias, .visionProjector),
            linear("model.multi_modal_projector.linear_2", textHidden, textHidden, bias: bias, .visionProjector),
        ]
        let side = try width("patch_size", p, merge)
        var tower = VisionTower("Pixtral ViT", layers: layers, hidden: h, heads: heads,
                                 patchesPerToken: merge * merge, tokensPerImage: "one token per \(side)×\(side) pixels, plus one per row and an end token")
        tower.pre = [.norm(prefix + ".ln_pre", rms: true, merged: false)]
        tower.projector = [.norm("model.multi_modal_projector.norm", rms: true, merged: false),
                           .linear("model.multi_modal_projector.patch_merger.merging_layer", merged: true),
                           .linear("model.multi_modal_projector.linear_1", merged: true), .gelu(width: textHidden, merged: true),
                           .linear("model.multi_modal_projector.linear_2", merged: true)]
        return (m, tower)
    }

    /// Kimi K2.5's MoonViT (`Kimi_K25VisionModel`, class defaults `Kimi_K25VisionConfig` —
    /// the published `vt_*` keys are not read by Transformers): Conv2d patch embedding, a
    /// learned height × width position table, LayerNorm blocks with separate q/k/v, and a
    /// projector (LayerNorm over `projection_hidden_size`, two Linears over 2×2 patches).
    static func moonViT(_ v: ConfigReader.Fields, _ top: ConfigReader.Fields, _ textHidden: Int) throws -> ([ModuleSpec], VisionTower) {
        let layers = try dim(v, "num_hidden_layers", 27), h = try dim(v, "hidden_size", 1152), i = try dim(v, "intermediate_size", 4304)
        let heads = try dim(v, "num_attention_heads", 16), p = try dim(v, "patch_size", 14)
        let ph = try dim(v, "pos_emb_height", 64), pw = try dim(v, "pos_emb_width", 64)
        let kernel = try intList(v, "merge_kernel_size", [2, 2])
        guard kernel.count == 2 else {
            throw PlanError.invalidDimension(field: "merge_kernel_size", value: "\(kernel)", reason: "must be two numbers")
        }
        let projection = try dim(top, "projection_hidden_size", 1152)
        let merged = try width("merge_kernel_size", h, kernel[0], kernel[1])
        let prefix = "model.vision_tower"
        let m: [ModuleSpec] = [
            try tensors(prefix + ".patch_embed.proj", [[h, 3, p, p], [h]]),
            try tensors(prefix + ".patch_embed.pos_emb", [[ph, pw, h]]),
            norm(prefix + ".layers.*.norm1", h, bias: true, repeats: layers),
            norm(prefix + ".layers.*.norm2", h, bias: true, repeats: layers),
        ] + linears(prefix + ".layers.*.", [("attn.proj", h, h), ("attn.q_proj", h, h), ("attn.k_proj", h, h), ("attn.v_proj", h, h),
                                            ("mlp.fc1", h, i), ("mlp.fc2", i, h)], bias: true, repeats: layers) + [
            norm(prefix + ".final_layernorm", h, bias: true),
            norm("model.mm_projector.pre_norm", projection, bias: true, .visionProjector),
            linear("model.mm_projector.in_proj", merged, merged, bias: true, .visionProjector),
            linear("model.mm_projector.out_proj", merged, textHidden, bias: true, .visionProjector),
        ]
        var tower = VisionTower("MoonViT", layers: layers, hidden: h, heads: heads,
                                 patchesPerToken: try width("merge_kernel_size", kernel[0], kernel[1]),
                                 tokensPerImage: "one token per \(try width("patch_size", p, kernel[0]))×\(try width("patch_size", p, kernel[1])) pixels")
        tower.projector = [.norm(prefix + ".final_layernorm", rms: false, merged: false), .norm("model.mm_projector.pre_norm", rms: false, merged: false),
                           .linear("model.mm_projector.in_proj", merged: true), .gelu(width: merged, merged: true),
                           .linear("model.mm_projector.out_proj", merged: true)]
        return (m, tower)
    }
}

// MARK: - The families

extension FamilySpec {
    /// Whether the family is a vision-language model with an image side.
    public var isVisionLanguage: Bool { vision != nil }

    /// The Auto class that loads the family: `AutoModelForImageTextToText` for the
    /// vision-language types Transformers does not map for causal LM.
    public var autoModelClass: String { (vision.map { !$0.causalLM } ?? false) ? "AutoModelForImageTextToText" : "AutoModelForCausalLM" }

    private static func visionLanguage(_ reader: VisionLanguageReader, kvHeads: Bool = true) -> FamilySpec {
        var spec = FamilySpec(read: { try reader.read($0, name: $1) }, loraTargets: nil, ia3Targets: nil, configHasKVHeads: kvHeads)
        spec.vision = reader
        return spec
    }

    /// Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`): a Qwen2 language model (its keys
    /// at the top level in the published configs, or in `text_config`) and Qwen2.5-VL's ViT.
    static let qwen25VL = visionLanguage(VisionLanguageReader(
        family: .qwen25VL, textTypes: [nil: .qwen2, "qwen2_5_vl_text": .qwen2, "qwen2_5_vl": .qwen2], textAtTopLevel: true,
        tower: VisionLanguageReader.qwen25ViT))

    /// Qwen3-VL (`Qwen3VLForConditionalGeneration`): a Qwen3 language model and Qwen3-VL's ViT.
    static let qwen3VL = visionLanguage(VisionLanguageReader(
        family: .qwen3VL, textTypes: [nil: .qwen3, "qwen3_vl_text": .qwen3], tower: VisionLanguageReader.qwen3ViT))

    /// Qwen3-VL-MoE (`Qwen3VLMoeForConditionalGeneration`): a Qwen3-MoE language model (no
    /// expert rewrite in PEFT for this type: all-linear wraps the Linears only).
    static let qwen3VLMoE = visionLanguage(VisionLanguageReader(
        family: .qwen3VLMoE, textTypes: [nil: .qwen3MoE, "qwen3_vl_moe_text": .qwen3MoE], tower: VisionLanguageReader.qwen3ViT))

    /// Gemma 3 multimodal (`Gemma3ForConditionalGeneration`, also what AutoModelForCausalLM
    /// builds for `gemma3`): Gemma 3's language model and a SigLIP tower.
    static let gemma3 = visionLanguage(VisionLanguageReader(
        family: .gemma3, textTypes: [nil: .gemma3Text, "gemma3_text": .gemma3Text], tiedByDefault: true, causalLM: true, tower: VisionLanguageReader.gemma3SigLIP))

    /// LFM2-VL (`Lfm2VlForConditionalGeneration`): an LFM2 language model and a SigLIP 2 tower.
    static let lfm2VL = visionLanguage(VisionLanguageReader(
        family: .lfm2VL, textTypes: [nil: .lfm2, "lfm2": .lfm2], tiedByDefault: true, tower: VisionLanguageReader.lfm2SigLIP2))

    /// Mistral 3 (`Mistral3ForConditionalGeneration`: Mistral Small 3.1/3.2, Magistral,
    /// Ministral 3): the language model its `text_config` names, and a Pixtral tower.
    static let mistral3 = visionLanguage(VisionLanguageReader(
        family: .mistral3, textTypes: [nil: .mistral], anyTextType: true, tiedByDefault: true, tower: VisionLanguageReader.pixtral))

    /// Kimi K2.5 (`Kimi_K25ForConditionalGeneration`): a DeepSeek-V3 language model
    /// (`kimi_k2` is read as `deepseek_v3`, as the configuration class does) and MoonViT.
    static let kimiK25 = visionLanguage(VisionLanguageReader(
        family: .kimiK25, textTypes: [nil: .deepseekV3, "kimi_k2": .deepseekV3, "deepseek_v3": .deepseekV3],
        tiedByDefault: true, tower: VisionLanguageReader.moonViT))
}
