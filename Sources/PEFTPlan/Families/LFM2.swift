import Foundation

extension FamilySpec {
    /// LFM2 (`Lfm2Config`, `modeling_lfm2.py`): short-convolution layers (`conv.in_proj` to B, C
    /// and x, a depthwise causal `conv.conv` of `conv_L_cache` taps over B·x, C times its output,
    /// `conv.out_proj`) between gated-attention layers (`full_attn_idxs` or `layer_types`) with
    /// per-head q/k norms; `operator_norm` and `ffn_norm` before each sub-block; a SwiGLU
    /// `feed_forward` (w1, w3, w2) whose width `block_auto_adjust_ff_dim` takes to
    /// ⌈2/3 · `block_ff_dim` · multiplier⌉ to a multiple of `block_multiple_of`; the final norm
    /// is called `embedding_norm`. Tied by default (`tie_embedding`).
    static let lfm2 = FamilySpec(read: readLFM2, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true,
        kvHeadsDefault: 8)

    @Sendable static func readLFM2(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        let h = try f.dim("hidden_size", "block_dim")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads", "num_heads")
        let kv = try f.optionalDim("num_key_value_heads") ?? ModelFamily.lfm2.spec.kvHeadsDefault ?? heads
        try ConfigReader.checkHeads(hidden: h, heads: heads, kv: kv, headDimGiven: false)
        let hd = h / heads
        var inter = try f.optionalDim("intermediate_size", "block_ff_dim") ?? 12288
        if try f.bool("block_auto_adjust_ff_dim", default: true) {
            inter = 2 * inter / 3
            var multiplier = 1.0
            if let v = f.dict["block_ffn_dim_multiplier"], !(v is NSNull) {
                guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.doubleValue.isFinite, n.doubleValue > 0, n.doubleValue < 64 else {
                    throw PlanError.invalidDimension(field: "block_ffn_dim_multiplier", value: "\(v)", reason: "must be a positive number")
                }
                multiplier = n.doubleValue
                let of = try f.optionalDim("block_multiple_of") ?? 256
                inter = Int(multiplier * Double(inter))
                inter = of * ((inter + of - 1) / of)
            }
        }
        guard inter >= 1 else { throw PlanError.invalidDimension(field: "block_ff_dim", value: "\(inter)", reason: "leaves no feed-forward width") }
        let vocab = try f.dim("vocab_size")
        let tied = try f.bool("tie_word_embeddings", default: try f.bool("tie_embedding", default: true))
        var attention: [Int]
        if let types = f.dict["layer_types"] as? [Any] {
            guard types.count == layers else {
                throw PlanError.invalidDimension(field: "layer_types", value: "\(types.count) entries", reason: "must list every one of the \(layers) layers")
            }
            guard types.allSatisfy({ ($0 as? String).map { ["conv", "full_attention"].contains($0) } ?? false }) else {
                throw PlanError.invalidDimension(field: "layer_types", value: "\(types.first { !(["conv", "full_attention"].contains($0 as? String ?? "")) } ?? "")",
                                                 reason: "must be conv or full_attention")
            }
            attention = types.indices.filter { (types[$0] as? String) != "conv" }
        } else if let list = f.dict["full_attn_idxs"] as? [Any] {
            attention = []
            for v in list {
                guard let n = v as? NSNumber, !ConfigReader.isBoolean(n), n.intValue >= 0, n.intValue < layers else {
                    throw PlanError.invalidDimension(field: "full_attn_idxs", value: "\(v)", reason: "must list layer numbers below \(layers)")
                }
                attention.append(n.intValue)
            }
        } else {
            attention = Array(0..<layers)
        }
        attention = Array(Set(attention)).sorted()
        let conv = (0..<layers).filter { !attention.contains($0) }
        let kernel = try ConfigReader.convolutionTaps(f, "conv_L_cache", default: 3)
        let bias = try f.bool("conv_bias", default: false)
        var a = ConfigReader.blank(name, .lfm2, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                                   vocab: vocab, positions: try f.optionalDim("max_position_embeddings") ?? 128_000, tied: tied)
        a.norm = .rms
        a.rotaryDim = hd
        a.layerPrefix = "model.layers"
        let attentionSet: [Int]? = conv.isEmpty ? nil : attention
        var convolution = ModuleSpec("conv.conv", .parameters, .shortConv, ownParams: h * kernel + (bias ? h : 0), layers: conv)
        convolution.shapes = bias ? [[h, 1, kernel], [h]] : [[h, 1, kernel]]
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        if !attention.isEmpty {
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: a.qDim, layers: attentionSet),
                  ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: a.kvDim, layers: attentionSet),
                  ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: a.kvDim, layers: attentionSet),
                  ModuleSpec("self_attn.out_proj", .linear, .o, in: a.qDim, out: h, layers: attentionSet),
                  ModuleSpec("self_attn.q_layernorm", .norm, .qNorm, ownParams: hd, layers: attentionSet),
                  ModuleSpec("self_attn.k_layernorm", .norm, .kNorm, ownParams: hd, layers: attentionSet)]
        }
        if !conv.isEmpty {
            m += [convolution,
                  ModuleSpec("conv.in_proj", .linear, .shortConvIn, in: h, out: 3 * h, bias: bias, layers: conv),
                  ModuleSpec("conv.out_proj", .linear, .shortConvOut, in: h, out: h, bias: bias, layers: conv)]
        }
        m += [ModuleSpec("feed_forward.w1", .linear, .gate, in: h, out: inter),
              ModuleSpec("feed_forward.w3", .linear, .up, in: h, out: inter),
              ModuleSpec("feed_forward.w2", .linear, .down, in: inter, out: h),
              ModuleSpec("operator_norm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("ffn_norm", .norm, .feedForwardNorm, ownParams: h),
              ModuleSpec("model.embedding_norm", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: tied)]
        var block = GatedBlock(headNorm: .perHead)
        block.shortConvolution = conv.isEmpty ? nil : kernel
        a.block = .gated(block)
        a.modules = m
        return a
    }
}
