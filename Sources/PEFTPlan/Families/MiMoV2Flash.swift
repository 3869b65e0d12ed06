import Foundation

extension FamilySpec {
    /// MiMo-V2-Flash (`MiMoV2FlashConfig`, `modeling_mimo_v2_flash.py`, Transformers 5.25):
    /// full-attention layers (the first and every sixth, unless `layer_types` lists them) and
    /// sliding-window layers with twice the KV heads and a learned sink per head
    /// (`self_attn.sinks`); queries and keys of `head_dim` (192), values of `v_head_dim` (128);
    /// a dense MLP in the first layer, then (unless `mlp_layer_types` says otherwise)
    /// `n_routed_experts` experts behind DeepSeek-V3's fp32 sigmoid router, no shared experts.
    /// Eager attention only (no SDPA with sinks): max-subtracted softmax in the model dtype.
    /// The checkpoint's own `hybrid_layer_pattern`, `moe_layer_freq` and `swa_*` keys are not
    /// read by Transformers and not here. The multi-token-prediction layers are not built.
    static let mimoV2Flash = FamilySpec(read: readMiMoV2Flash, loraTargets: nil, ia3Targets: nil, configHasKVHeads: true,
                                        kvHeadsDefault: 4)

    @Sendable static func readMiMoV2Flash(_ f: ConfigReader.Fields, _ name: String) throws -> Architecture {
        var a = try ConfigReader.decoder(f, name, .mimoV2Flash, headDimDefault: 192, intermediateDefault: 16384, positions: 131072,
                                         tiedDefault: false, norm: .rms)
        let (h, layers, heads, kv, hd, inter, vocab) = (a.hiddenSize, a.numLayers, a.numHeads, a.nKVHeads, a.headDim, a.intermediateSize, a.vocabSize)
        let vhd = try f.optionalDim("v_head_dim") ?? 128
        guard heads % (2 * kv) == 0 else {
            throw PlanError.invalidDimension(field: "num_key_value_heads", value: "\(kv)",
                                             reason: "twice it (the sliding-window layers' KV heads) must divide num_attention_heads \(heads)")
        }
        a.rotaryDim = try ConfigReader.rotaryWidth(f, headDim: hd, default: 0.334)
        a.supportsSDPA = false
        let bias = try f.bool("attention_bias", default: false)

        let sliding = try Self.layerList(f, "layer_types", layers: layers, values: ["full_attention", "sliding_attention"],
                                         default: { $0 != 0 && ($0 + 1) % 6 != 0 }, pick: "sliding_attention")
        let sparse = try Self.layerList(f, "mlp_layer_types", layers: layers, values: ["dense", "sparse"],
                                        default: { $0 != 0 }, pick: "sparse")
        let full = (0..<layers).filter { !sliding.contains($0) }
        let dense = (0..<layers).filter { !sparse.contains($0) }
        func set(_ l: [Int]) -> [Int]? { l.count == layers ? nil : l }

        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, .embed, in: vocab, out: h, perLayer: false)]
        for (group, kvHeads) in [(full, kv), (sliding, 2 * kv)] where !group.isEmpty {
            m += [ModuleSpec("self_attn.q_proj", .linear, .q, in: h, out: heads * hd, bias: bias, layers: set(group)),
                  ModuleSpec("self_attn.k_proj", .linear, .k, in: h, out: kvHeads * hd, bias: bias, layers: set(group)),
                  ModuleSpec("self_attn.v_proj", .linear, .v, in: h, out: kvHeads * vhd, bias: bias, layers: set(group)),
                  ModuleSpec("self_attn.o_proj", .linear, .o, in: heads * vhd, out: h, layers: set(group))]
        }
        if !sliding.isEmpty { m.append(ModuleSpec("self_attn.sinks", .parameters, .sinks, ownParams: heads, layers: set(sliding))) }
        if !dense.isEmpty {
            m += [ModuleSpec("mlp.gate_proj", .linear, .gate, in: h, out: inter, layers: set(dense)),
                  ModuleSpec("mlp.up_proj", .linear, .up, in: h, out: inter, layers: set(dense)),
                  ModuleSpec("mlp.down_proj", .linear, .down, in: inter, out: h, layers: set(dense))]
        }
        var block = GatedBlock()
        block.sinks = true                      // in the layers that hold `sinks`
        block.valueHeadDim = vhd
        block.maxSubtractedSoftmax = true
        if !sparse.isEmpty {
            let read = try MoEReader(countKeys: ["n_routed_experts", "num_local_experts"], fp32Router: true)
                .read(f, hidden: h, layers: set(sparse))
            m += read.modules
            a.numExperts = read.experts
            a.expertsPerToken = read.perToken
            block.fp32Router = true
        }
        m += [ModuleSpec("input_layernorm", .norm, .attentionNorm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, .feedForwardNorm, ownParams: h),
              ModuleSpec("model.norm", .norm, .finalNorm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, .head, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.block = .gated(block)
        a.modules = m
        return a
    }

    /// The layers whose entry in `key` (a list of `values`, one per layer) is `pick`; without
    /// the list, the layers `rule` picks.
    static func layerList(_ f: ConfigReader.Fields, _ key: String, layers: Int, values: [String],
                          default rule: (Int) -> Bool, pick: String) throws -> [Int] {
        guard let v = f.dict[key], !(v is NSNull) else { return (0..<layers).filter(rule) }
        guard let list = v as? [Any], list.count == layers else {
            throw PlanError.invalidDimension(field: key, value: "\(v)", reason: "must list every one of the \(layers) layers")
        }
        var picked: [Int] = []
        for (i, e) in list.enumerated() {
            guard let s = e as? String, values.contains(s) else {
                throw PlanError.invalidDimension(field: key, value: "\(e)", reason: "must be one of \(values.joined(separator: ", "))")
            }
            if s == pick { picked.append(i) }
        }
        return picked
    }
}
