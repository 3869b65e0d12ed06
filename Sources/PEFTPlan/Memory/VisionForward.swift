import Foundation

// MARK: - A vision-language model's image side

extension ForwardGraph {
    /// Plays the vision tower and projector over one sample's images (their patches and
    /// merged tokens are per-sample extents), before the language model's embedding.
    /// Returns whether the image embeddings require grad — they do when an adapter sits in
    /// the tower or projector, which then makes the language model's input require grad.
    ///
    /// The tower's weights are frozen in every method (full fine-tuning trains the language
    /// model only), so a tower with no adapter saves nothing: autograd records no graph
    /// for it and only its forward FLOPs count. With adapters (all-linear wraps the tower's
    /// Linears) each op saves what the language model's do (the ops of
    /// `modeling_qwen2_5_vl.py`'s vision blocks, 5.25): the norms' inputs, the casts to fp32
    /// the adapters keep, the attention's q, k, v, output and log-sum-exp, the MLP's
    /// activation inputs. Attention runs per image (one image per sample is assumed for its
    /// pairs) and, in Qwen2.5-VL, within windows except in its full-attention layers.
    func visionTower() -> Bool {
        guard let v = c.arch.vision, c.imageTokens > 0 else { return false }
        let tokens = c.imageTokens, patches = c.imageTokens * v.patchesPerToken
        let modules = c.arch.modules.filter { $0.isVision && (v.prefix.map($0.name.hasPrefix) ?? true || $0.role == .visionProjector) }
        func named(_ name: String) -> ModuleSpec? { modules.first { $0.name == name } }
        let blockLinears = modules.filter { $0.role == .visionTower && $0.kind == .linear && $0.repeats == v.layers }
        // Gemma 4's encoder wraps each Linear (`q_proj.linear`): the wrapper names it
        func leaf(_ m: ModuleSpec) -> String {
            let parts = m.name.split(separator: ".")
            return String(parts.last == "linear" && parts.count > 1 ? parts[parts.count - 2] : parts.last ?? "")
        }
        func block(_ names: [String]) -> ModuleSpec? { blockLinears.first { names.contains(leaf($0)) } }
        let blockNorms = modules.filter { $0.role == .visionTower && $0.kind == .norm && $0.repeats == v.layers }
        let rms = blockNorms.first.map { $0.ownParams == $0.inFeatures } ?? false

        // the patch embedding (a Conv3d/Conv2d, or SigLIP 2's Linear) and its FLOPs
        var x = tape.new(Extent(sample: patches * v.hiddenSize), c.a, rg: false)
        if let embed = modules.first(where: { $0.role == .visionTower && $0.kind == .parameters && $0.shapes.first?.count ?? 0 >= 4 }),
           let w = embed.shapes.first {
            tape.flops(Extent(sample: patches), forward: 2 * w.reduce(1, *), backward: 0)
        } else if let embed = modules.first(where: { $0.role == .visionTower && $0.kind == .linear && $0.repeats == 1 && $0.name.hasSuffix("patch_embedding") }) {
            x = towerLinear(tape.new(Extent(sample: patches * embed.inFeatures), c.a, rg: false), embed, rows: patches)
        }
        for step in v.pre { x = visionStep(step, x, patches: patches, tokens: tokens, named: named) }

        let h = v.hiddenSize, heads = v.heads
        // the first two layers one by one (where requires-grad settles), then one layer of each
        // kind (windowed, full attention) weighted by how many layers it stands for
        var plays: [(layer: Int, weight: Double)] = (0..<min(2, v.layers)).map { ($0, 1) }
        let rest = Array(min(2, v.layers)..<v.layers)
        for kind in [rest.filter { !v.fullAttentionLayers.contains($0) }, rest.filter { v.fullAttentionLayers.contains($0) }] where !kind.isEmpty {
            plays.append((kind[0], Double(kind.count)))
        }
        let outerWeight = tape.weight
        defer { tape.weight = outerWeight }
        for (layer, weight) in plays {
            tape.weight = outerWeight * weight
            if c.checkpointing && x.rg { tape.save(x) }   // a GradientCheckpointingLayer keeps its input
            let saving = !c.checkpointing
            let save: (Tape.T) -> Void = { if saving { tape.save($0) } }
            // norm1 → attention
            var y = towerNorm(x, rms: rms, width: h, rows: patches, save: save)
            var q: Tape.T, k: Tape.T, vv: Tape.T
            if let qkv = block(["qkv"]) {
                // q, k, v are views of the fused output: v keeps its whole storage
                let fused = towerLinear(y, qkv, rows: patches, save: save)
                q = fused; k = fused; vv = fused
            } else {
                q = block(["q_proj"]).map { towerLinear(y, $0, rows: patches, save: save) } ?? y
                k = block(["k_proj"]).map { towerLinear(y, $0, rows: patches, save: save) } ?? y
                vv = block(["v_proj"]).map { towerLinear(y, $0, rows: patches, save: save) } ?? y
            }
            if v.rotary {
                // q.float(), k.float(), (x·cos + rotate_half(x)·sin), cast back: the products
                // by cos and sin (no grad) keep nothing activation-sized
                q = tape.new(Extent(sample: patches * h), c.a, rg: q.rg)
                k = tape.new(Extent(sample: patches * h), c.a, rg: k.rg)
            }
            let window = v.fullAttentionLayers.contains(layer) ? patches : min(patches, v.windowPatches ?? patches)
            let anyRG = q.rg || k.rg || vv.rg
            // QKᵀ and PV over `window` keys per patch; the flash kernel's backward: five products
            let pair = 2 * h
            tape.flops(Extent(sample: patches * window), forward: 2 * pair, backward: anyRG ? 5 * pair : 0)
            var out = tape.new(Extent(sample: patches * h), c.a, rg: anyRG)
            if anyRG {
                save(q); save(k); save(vv); save(out)
                if saving { tape.save(Extent(sample: patches * heads), 4) }   // log-sum-exp
            }
            if let proj = block(["proj", "out_proj", "o_proj"]) { out = towerLinear(out, proj, rows: patches, save: save) }
            x = tape.new(x.extent, c.a, rg: x.rg || out.rg)
            // norm2 → MLP
            y = towerNorm(x, rms: rms, width: h, rows: patches, save: save)
            var mlp: Tape.T
            if let gate = block(["gate_proj"]), let up = block(["up_proj"]), let down = block(["down_proj"]) {
                let g = towerLinear(y, gate, rows: patches, save: save), u = towerLinear(y, up, rows: patches, save: save)
                if g.rg { save(g) }                                              // SiLU keeps its input
                let act = tape.new(g.extent, c.a, rg: g.rg)
                if u.rg { save(act) }
                if act.rg { save(u) }
                mlp = towerLinear(tape.new(g.extent, c.a, rg: g.rg || u.rg), down, rows: patches, save: save)
            } else if let fc1 = block(["fc1", "linear_fc1"]), let fc2 = block(["fc2", "linear_fc2"]) {
                let f = towerLinear(y, fc1, rows: patches, save: save)
                if f.rg { save(f) }                                              // GELU keeps its input
                mlp = towerLinear(tape.new(f.extent, c.a, rg: f.rg), fc2, rows: patches, save: save)
            } else {
                mlp = y
            }
            x = tape.new(x.extent, c.a, rg: x.rg || mlp.rg)
        }
        tape.weight = outerWeight
        for step in v.projector { x = visionStep(step, x, patches: patches, tokens: tokens, named: named) }
        return x.rg
    }

    /// One step of the tower's pre or post ops; repeated modules (Qwen3-VL's deepstack
    /// mergers) run once per copy.
    private func visionStep(_ step: VisionStep, _ x: Tape.T, patches: Int, tokens: Int, named: (String) -> ModuleSpec?) -> Tape.T {
        let save: (Tape.T) -> Void = { tape.save($0) }
        switch step {
        case let .norm(name, rms, merged):
            guard let m = named(name) else { return x }
            let rows = merged ? tokens : patches
            var y = x
            for _ in 0..<m.repeats { y = towerNorm(x, rms: rms, width: m.inFeatures, rows: rows, save: save) }
            return y
        case let .linear(name, merged):
            guard let m = named(name) else { return x }
            let rows = merged ? tokens : patches
            var y = x
            for _ in 0..<m.repeats { y = towerLinear(tape.new(Extent(sample: rows * m.inFeatures), x.bytes, rg: x.rg), m, rows: rows, save: save) }
            return y
        case let .gelu(width, merged):
            let rows = merged ? tokens : patches
            if x.rg { tape.save(x) }
            return tape.new(Extent(sample: rows * width), c.a, rg: x.rg)
        case let .matmul(i, o, merged):
            let rows = merged ? tokens : patches
            tape.flops(Extent(sample: rows), forward: 2 * i * o, backward: x.rg ? 2 * i * o : 0)
            return tape.new(Extent(sample: rows * o), c.a, rg: x.rg)
        }
    }

    /// A norm of the frozen tower: RMSNorm keeps its fp32 input and reciprocal, LayerNorm its
    /// input, mean and rstd — only when the input requires grad.
    private func towerNorm(_ x: Tape.T, rms: Bool, width: Int, rows: Int, save: (Tape.T) -> Void) -> Tape.T {
        guard x.rg else { return tape.new(Extent(sample: rows * width), c.a, rg: false) }
        if rms {
            let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: true)
            save(x32)
            save(tape.new(Extent(sample: rows), 4, rg: false))
        } else {
            save(x)
            save(tape.new(Extent(sample: 2 * rows), 4, rg: false))
        }
        return tape.new(Extent(sample: rows * width), c.a, rg: true)
    }

    /// A Linear of the frozen tower or projector over `rows` patches or tokens, with LoRA
    /// when the method wraps it (the same tensors as the language model's wrapped Linears).
    private func towerLinear(_ x: Tape.T, _ m: ModuleSpec, rows: Int, save: ((Tape.T) -> Void)? = nil) -> Tape.T {
        let keep = save ?? { tape.save($0) }
        let mm = 2 * m.inFeatures * m.outFeatures
        tape.flops(Extent(sample: rows), forward: mm, backward: x.rg ? mm : 0)
        if c.method.spec.quantisesBase && x.rg { keep(x) }     // MatMul4Bit keeps its input
        let out = Extent(sample: rows * m.outFeatures)
        guard c.wrapped[m.key] != nil, c.method.spec.wrapper == .lowRank else {
            return tape.new(out, c.a, rg: x.rg)
        }
        let r = c.options.loraR
        let a = 2 * m.inFeatures * r, b = 2 * r * m.outFeatures
        tape.flops(Extent(sample: rows), forward: a + b, backward: a + 2 * b + (x.rg ? a : 0), fp32: true)
        let xin = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        keep(xin)
        keep(tape.new(Extent(sample: rows * r), 4, rg: true))
        return tape.new(out, c.a, rg: true)
    }
}
