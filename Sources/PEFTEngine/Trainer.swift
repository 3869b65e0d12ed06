import Foundation

/// Optimizers of the engine (torch.optim semantics, weight decay 0).
public enum EngineOptimizer: Equatable, Sendable {
    /// torch.optim.AdamW: two fp32 states per trainable parameter.
    case adamw(lr: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8)
    /// torch.optim.SGD with momentum: one state per trainable parameter (none at momentum 0).
    case sgd(lr: Float, momentum: Float)
}

/// A real trainer: the decoder's forward and backward on OpenBLAS with the method applied,
/// the optimizer step, and every buffer counted by category in ``ledger``.
public final class Trainer: @unchecked Sendable {
    public let config: EngineConfig
    public let method: EngineMethod
    public let optimizer: EngineOptimizer
    /// Gradient checkpointing per block (Transformers' non-reentrant checkpointing keeps the
    /// same: block inputs, one block recomputed at a time).
    public let checkpointing: Bool
    public let ledger = Ledger()
    public let params: ParameterStore
    public private(set) var gradients: Buffer<Float>?
    private var moment1: Buffer<Float>?, moment2: Buffer<Float>?
    private var stepCount = 0
    /// Seconds spent in each phase so far (for `bench`'s breakdown).
    public private(set) var phaseSeconds: [EnginePhase: Double] = [:]
    private var phaseStart: UInt64 = 0
    private var currentPhase: EnginePhase = .setup

    private func enter(_ p: EnginePhase) {
        let now = DispatchTime.now().uptimeNanoseconds
        if phaseStart > 0 { phaseSeconds[currentPhase, default: 0] += Double(now - phaseStart) / 1e9 }
        phaseStart = now
        currentPhase = p
        ledger.enter(p)
    }
    /// RoPE's cos and sin tables ((maxSeq + virtual + prefix tokens) × headDim/2 each), in
    /// the ledger as workspace (category transient) for the trainer's life.
    private let ropeCosTable: Buffer<Float>, ropeSinTable: Buffer<Float>
    private var ropeCos: ConstFloatPointer { UnsafePointer(ropeCosTable.pointer) }
    private var ropeSin: ConstFloatPointer { UnsafePointer(ropeSinTable.pointer) }
    private let maxSeq: Int

    /// Parameter names: "embed", "lm_head" (untied), "norm", and per layer "L.attn_norm",
    /// "L.ffn_norm", "L.wq" … "L.w3", and for LoRA "L.wq.lora_A" / "L.wq.lora_B".
    public init(config c: EngineConfig, method: EngineMethod, optimizer: EngineOptimizer, maxSeq: Int, seed: UInt64 = 1,
                checkpointing: Bool = false) {
        config = c
        self.checkpointing = checkpointing
        self.method = method
        self.optimizer = optimizer
        self.maxSeq = maxSeq
        let lora: (rank: Int, alpha: Float, targets: Set<BlockLinear>)?
        switch method {
        case let .lora(r, a, t), let .qlora(r, a, t, _): lora = (r, a, t)
        case .full, .adapter, .ia3, .prompt, .prefix: lora = nil
        }
        loraSpec = lora
        params = ParameterStore(sizes: EngineSizes.parameters(c, method).map { (name: $0.name, count: $0.count, kind: $0.kind) }, ledger: ledger)
        let (cosTable, sinTable) = ropeTables(seq: maxSeq + method.virtualTokens + method.prefixTokens, headDim: c.headDim, base: c.ropeTheta)
        let entries = EngineSizes.ropeTable(c, maxSeq: maxSeq, method: method)
        precondition(cosTable.count == entries && sinTable.count == entries, "RoPE tables of \(cosTable.count) entries, sized \(entries)")
        ropeCosTable = ledger.allocate(Float.self, count: entries, category: .transient, zeroed: false)
        ropeSinTable = ledger.allocate(Float.self, count: entries, category: .transient, zeroed: false)
        ropeCosTable.pointer.update(from: cosTable, count: cosTable.count)
        ropeSinTable.pointer.update(from: sinTable, count: sinTable.count)
        initialise(seed: seed)
        ProcessMemory.keepFreedMemory()
    }

    /// Deterministic initialisation: Linear and embedding weights uniform with std 0.02
    /// (Llama's initializer_range), norms 1, LoRA A uniform ±1/√in, LoRA B zero (PEFT's
    /// default: the adapted model starts equal to the base).
    private func initialise(seed: UInt64) {
        var state = seed
        func uniform() -> Float {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(Double(z >> 11) / Double(1 << 53) * 2 - 1)
        }
        let std = Float(0.02 * 3.0.squareRoot())   // uniform(−a, a) has std a/√3
        for name in params.names.sorted() {
            if let count = params.quantizedCounts[name] {
                // QLoRA: the weight is drawn in fp32 and stored only in NF4
                let w = ledger.allocate(Float.self, count: count, category: .transient, zeroed: false)
                for i in 0..<count { w[i] = uniform() * std }
                params.setQuantized(name, NF4Tensor(w.pointer, count: count, doubleQuant: doubleQuant, ledger: ledger))
                w.release()
                continue
            }
            let entry = params.views[name]!
            let p = params.pointer(name)
            if name.hasSuffix("_bias") {   // adapters' and the prefix MLP's biases start at zero (AdapterHub's "bert" init)
                for i in 0..<entry.view.count { p[i] = 0 }
            } else if name.hasSuffix("norm") || name.hasSuffix(".ia3") {   // IA³ starts as the identity (PEFT's init_ia3_weights)
                for i in 0..<entry.view.count { p[i] = 1 }
            } else if name.hasSuffix("lora_B") {
                for i in 0..<entry.view.count { p[i] = 0 }
            } else if name.hasSuffix("lora_A") {
                let inF = entry.view.count / loraRank
                let a = 1 / Float(inF).squareRoot()
                for i in 0..<entry.view.count { p[i] = uniform() * a }
            } else {
                for i in 0..<entry.view.count { p[i] = uniform() * std }
            }
        }
    }

    /// LoRA's rank, alpha and targets (LoRA and QLoRA).
    private let loraSpec: (rank: Int, alpha: Float, targets: Set<BlockLinear>)?
    var loraRank: Int { loraSpec?.rank ?? 0 }
    var loraScale: Float { loraSpec.map { $0.alpha / Float($0.rank) } ?? 0 }
    func isLoRA(_ lin: BlockLinear) -> Bool { loraSpec?.targets.contains(lin) ?? false }
    var doubleQuant: Bool { if case let .qlora(_, _, _, dq) = method { return dq }; return false }
    /// The bottleneck adapters' sites ("adapter_attn" for Houlsby, "adapter_ffn") and width.
    func hasAdapter(_ site: String) -> Bool {
        if case let .adapter(houlsby, _) = method { return site == "adapter_ffn" || houlsby }
        return false
    }
    var adapterWidth: Int { if case let .adapter(_, r) = method { return config.dim / r }; return 0 }
    var prefixProjection: Int { if case let .prefix(_, p) = method { return p }; return 0 }

    /// Sets a parameter from fp32 values (a QLoRA weight is quantised to NF4 again).
    public func setParameter(_ name: String, _ values: [Float]) {
        precondition(params.count(name) == values.count, "\(name): \(values.count) values for \(params.count(name) ?? 0)")
        if params.quantizedCounts[name] != nil {
            params.setQuantized(name, values.withUnsafeBufferPointer { NF4Tensor($0.baseAddress!, count: values.count, doubleQuant: doubleQuant, ledger: ledger) })
        } else {
            params.pointer(name).update(from: values, count: values.count)
        }
    }

    /// A block Linear's fp32 weight for one matmul: its own storage, or under QLoRA a
    /// transient dequantised copy, kept alive by the returned buffer.
    private func weight(_ name: String) -> (FloatPointer, Buffer<Float>?) {
        guard let q = params.quantized[name] else { return (params.pointer(name), nil) }
        let w = ledger.allocate(Float.self, count: q.count, category: .transient, zeroed: false)
        q.dequantize(into: w.pointer)
        return (w.pointer, w)
    }
    /// nil: not an IA³ target; true: scales its input (feed-forward); false: its output.
    func ia3Input(_ lin: BlockLinear) -> Bool? {
        if case let .ia3(t, ff) = method, t.contains(lin) { return ff.contains(lin) }
        return nil
    }

    /// The gradient of a trainable parameter (nil when it is frozen or no backward ran).
    public func gradient(_ name: String) -> FloatPointer? {
        guard let g = gradients, let v = params.views[name], v.trainable else { return nil }
        return g.pointer + v.view.offset
    }

    // MARK: - One layer's saved tensors

    final class Saved {
        var x, n1, r1, q, k, v, probs, att, mid, n2, r2, g, u, h: Buffer<Float>
        var lora: [BlockLinear: Buffer<Float>] = [:]
        /// IA³: the scaled input (feed-forward targets) or the unscaled output (others).
        var ia3: [BlockLinear: Buffer<Float>] = [:]
        /// Bottleneck adapters, per site: the adapter's input and its ReLU output.
        var adapter: [String: (input: Buffer<Float>, relu: Buffer<Float>)] = [:]
        /// `kvSeq`: attended keys per row (the sequence plus any prefix).
        init(_ l: Ledger, _ c: EngineConfig, batch b: Int, seq s: Int, kvSeq: Int, x: Buffer<Float>) {
            // written whole by forward before anything reads them
            func a(_ count: Int) -> Buffer<Float> { l.allocate(Float.self, count: count, category: .activations, zeroed: false) }
            let z = EngineSizes.BlockSaved(c, batch: b, seq: s, kvSeq: kvSeq)
            self.x = x
            n1 = a(z.n1); r1 = a(z.r1); q = a(z.q); k = a(z.k); v = a(z.v)
            probs = a(z.probs); att = a(z.att); mid = a(z.mid)
            n2 = a(z.n2); r2 = a(z.r2); g = a(z.g); u = a(z.u); h = a(z.h)
        }

        /// Frees what the layer saved; its input too unless a checkpoint keeps it.
        func release(input: Bool) {
            if input { x.release() }
            for b in [n1, r1, q, k, v, probs, att, mid, n2, r2, g, u, h] { b.release() }
            for b in lora.values { b.release() }
            for b in ia3.values { b.release() }
            for (i, z) in adapter.values { i.release(); z.release() }
        }
    }

    /// out = in · Wᵀ (+ scale · (in · Aᵀ) · Bᵀ for a LoRA target, saving in · Aᵀ).
    private func linear(_ lin: BlockLinear, layer l: Int, _ out: FloatPointer, _ inp: FloatPointer, n: Int, saved: Saved) {
        let (o, i) = lin.shape(config)
        let name = "\(l).\(lin.rawValue)"
        if let scalesInput = ia3Input(lin) {
            let scale = params.pointer(name + ".ia3")
            let keep = ledger.allocate(Float.self, count: n * (scalesInput ? i : o), category: .activations, zeroed: false)
            if scalesInput {
                // y = W (x ⊙ l): the scaled input is what the matmul saw
                for r in 0..<n { for j in 0..<i { keep[r * i + j] = inp[r * i + j] * scale[j] } }
                linearForward(out, keep.pointer, params.pointer(name), n: n, inFeatures: i, outFeatures: o)
            } else {
                // y = (W x) ⊙ l: the unscaled output is kept for l's gradient
                linearForward(keep.pointer, inp, params.pointer(name), n: n, inFeatures: i, outFeatures: o)
                for r in 0..<n { for j in 0..<o { out[r * o + j] = keep[r * o + j] * scale[j] } }
            }
            saved.ia3[lin] = keep
            return
        }
        let (w, dequantised) = weight(name)
        linearForward(out, inp, w, n: n, inFeatures: i, outFeatures: o)
        dequantised?.release()
        if isLoRA(lin) {
            let r = loraRank
            let t = ledger.allocate(Float.self, count: n * r, category: .activations, zeroed: false)
            linearForward(t.pointer, inp, params.pointer(name + ".lora_A"), n: n, inFeatures: i, outFeatures: r)
            sgemm(transA: false, transB: true, m: n, n: o, k: r, alpha: loraScale, a: t.pointer, lda: r,
                  b: params.pointer(name + ".lora_B"), ldb: r, beta: 1, c: out, ldc: o)
            saved.lora[lin] = t
        }
    }

    /// Backward of ``linear``: dinp += dout·W (+ LoRA path); weight gradients where trainable.
    private func linearBack(_ lin: BlockLinear, layer l: Int, dinp: FloatPointer?, _ dout: FloatPointer, _ inp: FloatPointer, n: Int, saved: Saved) {
        let (o, i) = lin.shape(config)
        let name = "\(l).\(lin.rawValue)"
        if let scalesInput = ia3Input(lin), let keep = saved.ia3[lin] {
            let scale = params.pointer(name + ".ia3"), dl = gradient(name + ".ia3")!
            if scalesInput {
                // dxs = dy · W ; dl += Σ_rows dxs ⊙ x ; dx += dxs ⊙ l
                let dxs = ledger.allocate(Float.self, count: n * i, category: .activationGradients)
                linearBackward(dinp: dxs.pointer, dw: gradient(name), dout, keep.pointer, params.pointer(name), n: n, inFeatures: i, outFeatures: o)
                for r in 0..<n {
                    for j in 0..<i {
                        dl[j] += dxs[r * i + j] * inp[r * i + j]
                        if let dinp { dinp[r * i + j] += dxs[r * i + j] * scale[j] }
                    }
                }
                dxs.release()
            } else {
                // dl += Σ_rows dy ⊙ (W x) ; d(W x) = dy ⊙ l
                let dyb = ledger.allocate(Float.self, count: n * o, category: .activationGradients, zeroed: false)
                for r in 0..<n {
                    for j in 0..<o {
                        dl[j] += dout[r * o + j] * keep[r * o + j]
                        dyb[r * o + j] = dout[r * o + j] * scale[j]
                    }
                }
                linearBackward(dinp: dinp, dw: gradient(name), dyb.pointer, inp, params.pointer(name), n: n, inFeatures: i, outFeatures: o)
                dyb.release()
            }
            return
        }
        if dinp != nil || gradient(name) != nil {
            let (w, dequantised) = weight(name)
            linearBackward(dinp: dinp, dw: gradient(name), dout, inp, w, n: n, inFeatures: i, outFeatures: o)
            dequantised?.release()
        }
        if isLoRA(lin), let t = saved.lora[lin] {
            let r = loraRank
            // dB[o×r] += scale · doutᵀ · t ; dt[n×r] = scale · dout · B
            sgemm(transA: true, transB: false, m: o, n: r, k: n, alpha: loraScale, a: dout, lda: o, b: t.pointer, ldb: r,
                  beta: 1, c: gradient(name + ".lora_B")!, ldc: r)
            let dt = ledger.allocate(Float.self, count: n * r, category: .activationGradients)
            sgemm(transA: false, transB: false, m: n, n: r, k: o, alpha: loraScale, a: dout, lda: o,
                  b: params.pointer(name + ".lora_B"), ldb: r, beta: 0, c: dt.pointer, ldc: r)
            linearBackward(dinp: dinp, dw: gradient(name + ".lora_A"), dt.pointer, inp, params.pointer(name + ".lora_A"),
                           n: n, inFeatures: i, outFeatures: r)
            dt.release()
        }
    }

    /// The bottleneck adapter at `site` in place on a sublayer's output h[N×C]:
    /// h ← h + up(ReLU(h · downᵀ + b_down)) + b_up, saving h and the ReLU output.
    private func adapterForward(_ site: String, layer l: Int, _ h: FloatPointer, n: Int, saved: Saved) {
        let c = config.dim, m = adapterWidth, name = "\(l).\(site)"
        let input = ledger.allocate(Float.self, count: n * c, category: .activations, zeroed: false)
        input.pointer.update(from: h, count: n * c)
        let z = ledger.allocate(Float.self, count: n * m, category: .activations, zeroed: false)
        linearForward(z.pointer, input.pointer, params.pointer(name + ".down"), n: n, inFeatures: c, outFeatures: m)
        let bd = params.pointer(name + ".down_bias"), bu = params.pointer(name + ".up_bias")
        for r in 0..<n { for j in 0..<m { z[r * m + j] = max(0, z[r * m + j] + bd[j]) } }
        sgemm(transA: false, transB: true, m: n, n: c, k: m, a: z.pointer, lda: m, b: params.pointer(name + ".up"), ldb: m,
              beta: 1, c: h, ldc: c)
        for r in 0..<n { addInPlace(h + r * c, bu, count: c) }
        saved.adapter[site] = (input, z)
    }

    /// Backward of ``adapterForward``: from the gradient `dout` of the adapter's output, the
    /// parameter gradients and the gradient of its input (dout + the bottleneck's path).
    private func adapterBackward(_ site: String, layer l: Int, _ dout: FloatPointer, n: Int, saved: Saved) -> Buffer<Float> {
        let c = config.dim, m = adapterWidth, name = "\(l).\(site)"
        let (input, z) = saved.adapter[site]!
        let dup = gradient(name + ".up")!, dbu = gradient(name + ".up_bias")!, dbd = gradient(name + ".down_bias")!
        // dup[C×M] += doutᵀ · z ; db_up += Σ rows dout ; dz = (dout · up) ⊙ [z > 0]
        sgemm(transA: true, transB: false, m: c, n: m, k: n, a: dout, lda: c, b: z.pointer, ldb: m, beta: 1, c: dup, ldc: m)
        for r in 0..<n { addInPlace(dbu, dout + r * c, count: c) }
        let dz = ledger.allocate(Float.self, count: n * m, category: .activationGradients, zeroed: false)
        sgemm(transA: false, transB: false, m: n, n: m, k: c, a: dout, lda: c, b: params.pointer(name + ".up"), ldb: m,
              beta: 0, c: dz.pointer, ldc: m)
        for r in 0..<n {
            for j in 0..<m where z[r * m + j] <= 0 { dz[r * m + j] = 0 }
            addInPlace(dbd, dz.pointer + r * m, count: m)
        }
        // the input's gradient: dout (the adapter's residual) + dz · down; down's gradient
        let din = ledger.allocate(Float.self, count: n * c, category: .activationGradients, zeroed: false)
        din.pointer.update(from: dout, count: n * c)
        linearBackward(dinp: din.pointer, dw: gradient(name + ".down"), dz.pointer, input.pointer, params.pointer(name + ".down"),
                       n: n, inFeatures: c, outFeatures: m)
        dz.release()
        return din
    }

    /// One decoder block's forward from its input `x` (batch × seq rows): the tensors it
    /// saves for backward and its output.
    private func layerForward(_ l: Int, x: Buffer<Float>, batch b: Int, seq s: Int, prefix pt: Int) -> (Saved, Buffer<Float>) {
        let c = config, n = b * s
        let sv = Saved(ledger, c, batch: b, seq: s, kvSeq: s + pt, x: x)
        rmsnormForward(sv.n1.pointer, rstd: sv.r1.pointer, sv.x.pointer, params.pointer("\(l).attn_norm"), n: n, c: c.dim, eps: c.normEps)
        linear(.wq, layer: l, sv.q.pointer, sv.n1.pointer, n: n, saved: sv)
        // Real tokens' positions start after the prefix (Transformers numbers new tokens
        // from the cache's length); prefix keys are used as given, without RoPE.
        ropeForward(sv.q.pointer, cos: ropeCos, sin: ropeSin, batch: b, seq: s, heads: c.heads, headDim: c.headDim, offset: pt)
        if pt == 0 {
            linear(.wk, layer: l, sv.k.pointer, sv.n1.pointer, n: n, saved: sv)
            linear(.wv, layer: l, sv.v.pointer, sv.n1.pointer, n: n, saved: sv)
            ropeForward(sv.k.pointer, cos: ropeCos, sin: ropeSin, batch: b, seq: s, heads: c.kvHeads, headDim: c.headDim)
        } else {
            let kr = ledger.allocate(Float.self, count: n * c.kvDim, category: .transient, zeroed: false)
            let vr = ledger.allocate(Float.self, count: n * c.kvDim, category: .transient, zeroed: false)
            linear(.wk, layer: l, kr.pointer, sv.n1.pointer, n: n, saved: sv)
            linear(.wv, layer: l, vr.pointer, sv.n1.pointer, n: n, saved: sv)
            ropeForward(kr.pointer, cos: ropeCos, sin: ropeSin, batch: b, seq: s, heads: c.kvHeads, headDim: c.headDim, offset: pt)
            let pre = prefixKV?.pointer ?? params.pointer("prefix"), width = c.layers * 2 * c.kvDim, kv = c.kvDim
            for row in 0..<b {
                let kRow = sv.k.pointer + row * (s + pt) * kv, vRow = sv.v.pointer + row * (s + pt) * kv
                for t in 0..<pt {
                    (kRow + t * kv).update(from: pre + t * width + 2 * l * kv, count: kv)
                    (vRow + t * kv).update(from: pre + t * width + (2 * l + 1) * kv, count: kv)
                }
                (kRow + pt * kv).update(from: kr.pointer + row * s * kv, count: s * kv)
                (vRow + pt * kv).update(from: vr.pointer + row * s * kv, count: s * kv)
            }
            kr.release()
            vr.release()
        }
        attentionForward(sv.att.pointer, probs: sv.probs.pointer, sv.q.pointer, sv.k.pointer, sv.v.pointer,
                         batch: b, seq: s, kvSeq: s + pt, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
        linear(.wo, layer: l, sv.mid.pointer, sv.att.pointer, n: n, saved: sv)
        if hasAdapter("adapter_attn") { adapterForward("adapter_attn", layer: l, sv.mid.pointer, n: n, saved: sv) }
        addInPlace(sv.mid.pointer, sv.x.pointer, count: n * c.dim)
        rmsnormForward(sv.n2.pointer, rstd: sv.r2.pointer, sv.mid.pointer, params.pointer("\(l).ffn_norm"), n: n, c: c.dim, eps: c.normEps)
        linear(.w1, layer: l, sv.g.pointer, sv.n2.pointer, n: n, saved: sv)
        linear(.w3, layer: l, sv.u.pointer, sv.n2.pointer, n: n, saved: sv)
        swigluForward(sv.h.pointer, sv.g.pointer, sv.u.pointer, count: n * c.hidden)
        let out = ledger.allocate(Float.self, count: n * c.dim, category: .activations, zeroed: false)
        linear(.w2, layer: l, out.pointer, sv.h.pointer, n: n, saved: sv)
        if hasAdapter("adapter_ffn") { adapterForward("adapter_ffn", layer: l, out.pointer, n: n, saved: sv) }
        addInPlace(out.pointer, sv.mid.pointer, count: n * c.dim)
        return (sv, out)
    }

    // MARK: - A training step

    /// One step on `tokens` (batch × seq, row-major) predicting `targets` (−1 = ignored):
    /// forward, backward, optimizer step; returns the loss before the update.
    @discardableResult
    public func step(tokens: [Int32], targets: [Int32], batch b: Int, seq s: Int) -> Float {
        let loss = forwardBackward(tokens: tokens, targets: targets, batch: b, seq: s)
        enter(.optimizer)
        optimizerStep()
        enter(.setup)
        return loss
    }

    /// Forward and backward only: gradients accumulate into ``gradients``.
    @discardableResult
    public func forwardBackward(tokens: [Int32], targets realTargets: [Int32], batch b: Int, seq sIn: Int) -> Float {
        precondition(tokens.count == b * sIn && realTargets.count == b * sIn && sIn <= maxSeq, "tokens must be batch × seq, seq ≤ maxSeq")
        // Prompt tuning puts its virtual tokens in front of every row; they predict nothing.
        let vt = method.virtualTokens, pt = method.prefixTokens
        let s = sIn + vt
        let c = config, n = b * s
        var targets = realTargets
        if vt > 0 {
            targets = []
            for row in 0..<b { targets += [Int32](repeating: -1, count: vt) + realTargets[row * sIn..<(row + 1) * sIn] }
        }
        enter(.forward)
        if gradients == nil { gradients = ledger.allocate(Float.self, count: params.trainableCount, category: .gradients) }

        // embedding (and the prompt's rows)
        var x = ledger.allocate(Float.self, count: n * c.dim, category: .activations, zeroed: false)
        for row in 0..<b {
            if vt > 0 { (x.pointer + row * s * c.dim).update(from: params.pointer("prompt"), count: vt * c.dim) }
            tokens.withUnsafeBufferPointer {
                embeddingForward(x.pointer + (row * s + vt) * c.dim, $0.baseAddress! + row * sIn, params.pointer("embed"), n: sIn, c: c.dim)
            }
        }
        if prefixProjection > 0 { projectPrefix() }
        // Gradient checkpointing keeps only each block's input; backward recomputes the
        // block's forward (its saved tensors for one block at a time) before its backward.
        var saved: [Saved?] = []
        var inputs: [Buffer<Float>?] = []
        for l in 0..<c.layers {
            let (sv, out) = layerForward(l, x: x, batch: b, seq: s, prefix: pt)
            if checkpointing {
                inputs.append(x)
                saved.append(nil)
                sv.release(input: false)
            } else {
                saved.append(sv)
            }
            x = out
        }
        let nf = ledger.allocate(Float.self, count: n * c.dim, category: .activations, zeroed: false)
        let rf = ledger.allocate(Float.self, count: n, category: .activations, zeroed: false)
        rmsnormForward(nf.pointer, rstd: rf.pointer, x.pointer, params.pointer("norm"), n: n, c: c.dim, eps: c.normEps)
        let head = c.tied ? "embed" : "lm_head"
        var logits: Buffer<Float>? = ledger.allocate(Float.self, count: n * c.vocab, category: .logits, zeroed: false)
        linearForward(logits!.pointer, nf.pointer, params.pointer(head), n: n, inFeatures: c.dim, outFeatures: c.vocab)
        let probs = ledger.allocate(Float.self, count: n * c.vocab, category: .logits, zeroed: false)
        let loss = targets.withUnsafeBufferPointer {
            crossEntropyForward(probs: probs.pointer, logits!.pointer, $0.baseAddress!, n: n, vocab: c.vocab)
        }
        logits?.release()   // the loss keeps only its softmax
        logits = nil

        // backward
        enter(.backward)
        var dlogits: Buffer<Float>? = ledger.allocate(Float.self, count: n * c.vocab, category: .activationGradients, zeroed: false)
        targets.withUnsafeBufferPointer { crossEntropyBackward(dlogits: dlogits!.pointer, probs: probs.pointer, $0.baseAddress!, n: n, vocab: c.vocab) }
        probs.release()
        let dnf = ledger.allocate(Float.self, count: n * c.dim, category: .activationGradients)
        linearBackward(dinp: dnf.pointer, dw: gradient(head), dlogits!.pointer, nf.pointer, params.pointer(head),
                       n: n, inFeatures: c.dim, outFeatures: c.vocab)
        dlogits?.release()
        dlogits = nil
        var dx = ledger.allocate(Float.self, count: n * c.dim, category: .activationGradients)
        rmsnormBackward(dx: dx.pointer, dw: gradient("norm"), dnf.pointer, x.pointer, params.pointer("norm"), rstd: rf.pointer, n: n, c: c.dim)
        for buffer in [dnf, nf, rf, x] { buffer.release() }   // x: the last block's output
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let sv: Saved
            if let kept = saved[l] {
                sv = kept
            } else {
                // recompute under checkpointing; the block's output is not needed again
                let (recomputed, out) = layerForward(l, x: inputs[l]!, batch: b, seq: s, prefix: pt)
                out.release()
                sv = recomputed
            }
            func ag(_ count: Int) -> Buffer<Float> { ledger.allocate(Float.self, count: count, category: .activationGradients) }
            // out = mid + w2(h): dmid = dx; dh = dx · w2
            let dh = ag(n * c.hidden)
            let dffn = hasAdapter("adapter_ffn") ? adapterBackward("adapter_ffn", layer: l, dx.pointer, n: n, saved: sv) : dx
            linearBack(.w2, layer: l, dinp: dh.pointer, dffn.pointer, sv.h.pointer, n: n, saved: sv)
            if dffn !== dx { dffn.release() }
            let dg = ag(n * c.hidden), du = ag(n * c.hidden)
            swigluBackward(dg: dg.pointer, du: du.pointer, dh.pointer, sv.g.pointer, sv.u.pointer, count: n * c.hidden)
            dh.release()
            let dn2 = ag(n * c.dim)
            linearBack(.w1, layer: l, dinp: dn2.pointer, dg.pointer, sv.n2.pointer, n: n, saved: sv)
            linearBack(.w3, layer: l, dinp: dn2.pointer, du.pointer, sv.n2.pointer, n: n, saved: sv)
            dg.release()
            du.release()
            let dmid = dx   // the residual gradient flows through
            rmsnormBackward(dx: dmid.pointer, dw: gradient("\(l).ffn_norm"), dn2.pointer, sv.mid.pointer, params.pointer("\(l).ffn_norm"),
                            rstd: sv.r2.pointer, n: n, c: c.dim)
            dn2.release()
            // mid = x + wo(att)
            let datt = ag(n * c.dim)
            let dattn = hasAdapter("adapter_attn") ? adapterBackward("adapter_attn", layer: l, dmid.pointer, n: n, saved: sv) : dmid
            linearBack(.wo, layer: l, dinp: datt.pointer, dattn.pointer, sv.att.pointer, n: n, saved: sv)
            if dattn !== dmid { dattn.release() }
            let kvs = s + pt
            let dq = ag(n * c.dim)
            var dk = ag(b * kvs * c.kvDim), dv = ag(b * kvs * c.kvDim)
            let slots = EngineThreads.count   // one dP/dS workspace per attention worker
            let work = ledger.allocate(Float.self, count: slots * s * kvs, category: .transient, zeroed: false)
            attentionBackward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, datt.pointer, probs: sv.probs.pointer,
                              sv.q.pointer, sv.k.pointer, sv.v.pointer, workspace: work.pointer, workspaceSlots: slots,
                              batch: b, seq: s, kvSeq: kvs, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
            work.release()
            datt.release()
            if pt > 0 {
                // the prefix rows' gradients go to the prefix embedding, summed over the batch
                let dpre = prefixKVGrad?.pointer ?? gradient("prefix")!, width = c.layers * 2 * c.kvDim, kv = c.kvDim
                let dkr = ag(n * kv), dvr = ag(n * kv)
                for row in 0..<b {
                    let kRow = dk.pointer + row * kvs * kv, vRow = dv.pointer + row * kvs * kv
                    for t in 0..<pt {
                        addInPlace(dpre + t * width + 2 * l * kv, kRow + t * kv, count: kv)
                        addInPlace(dpre + t * width + (2 * l + 1) * kv, vRow + t * kv, count: kv)
                    }
                    (dkr.pointer + row * s * kv).update(from: kRow + pt * kv, count: s * kv)
                    (dvr.pointer + row * s * kv).update(from: vRow + pt * kv, count: s * kv)
                }
                dk.release()
                dv.release()
                dk = dkr
                dv = dvr
            }
            ropeBackward(dq.pointer, cos: ropeCos, sin: ropeSin, batch: b, seq: s, heads: c.heads, headDim: c.headDim, offset: pt)
            ropeBackward(dk.pointer, cos: ropeCos, sin: ropeSin, batch: b, seq: s, heads: c.kvHeads, headDim: c.headDim, offset: pt)
            let dn1 = ag(n * c.dim)
            linearBack(.wq, layer: l, dinp: dn1.pointer, dq.pointer, sv.n1.pointer, n: n, saved: sv)
            linearBack(.wk, layer: l, dinp: dn1.pointer, dk.pointer, sv.n1.pointer, n: n, saved: sv)
            linearBack(.wv, layer: l, dinp: dn1.pointer, dv.pointer, sv.n1.pointer, n: n, saved: sv)
            for buffer in [dq, dk, dv] { buffer.release() }
            rmsnormBackward(dx: dmid.pointer, dw: gradient("\(l).attn_norm"), dn1.pointer, sv.x.pointer, params.pointer("\(l).attn_norm"),
                            rstd: sv.r1.pointer, n: n, c: c.dim)
            dn1.release()
            dx = dmid
            sv.release(input: true)   // this layer's saved tensors and its input, as autograd frees them
            saved[l] = nil
            if checkpointing { inputs[l] = nil }
        }
        if prefixProjection > 0 {
            projectPrefixBackward()
            for buffer in [prefixHidden, prefixKV, prefixKVGrad] { buffer?.release() }
            prefixHidden = nil; prefixKV = nil; prefixKVGrad = nil
        }
        for row in 0..<b {
            if let dEmbed = gradient("embed") {
                tokens.withUnsafeBufferPointer {
                    embeddingBackward(dEmbed, dx.pointer + (row * s + vt) * c.dim, $0.baseAddress! + row * sIn, n: sIn, c: c.dim)
                }
            }
            if vt > 0, let dPrompt = gradient("prompt") { addInPlace(dPrompt, dx.pointer + row * s * c.dim, count: vt * c.dim) }
        }
        dx.release()
        return loss
    }

    // MARK: - Prefix reparameterisation

    /// Under `prefix_projection`: the keys and values all layers read (T × L·2·kvDim), the
    /// MLP's tanh output, and the keys' and values' gradient, for one step.
    private var prefixKV: Buffer<Float>?, prefixHidden: Buffer<Float>?, prefixKVGrad: Buffer<Float>?

    /// P = tanh(E · W0ᵀ + b0) · W2ᵀ + b2 from the prefix embedding E (T × kvDim), once per step
    /// (PEFT computes it per sequence; every row of the batch gets the same).
    private func projectPrefix() {
        let c = config, t = method.prefixTokens, p = prefixProjection, width = c.layers * 2 * c.kvDim
        let hidden = ledger.allocate(Float.self, count: t * p, category: .activations, zeroed: false)
        linearForward(hidden.pointer, params.pointer("prefix"), params.pointer("prefix_mlp.0"), n: t, inFeatures: c.kvDim, outFeatures: p)
        let b0 = params.pointer("prefix_mlp.0_bias")
        for r in 0..<t { for j in 0..<p { hidden[r * p + j] = tanh(hidden[r * p + j] + b0[j]) } }
        let kv = ledger.allocate(Float.self, count: t * width, category: .activations, zeroed: false)
        linearForward(kv.pointer, hidden.pointer, params.pointer("prefix_mlp.2"), n: t, inFeatures: p, outFeatures: width)
        for r in 0..<t { addInPlace(kv.pointer + r * width, params.pointer("prefix_mlp.2_bias"), count: width) }
        prefixHidden = hidden
        prefixKV = kv
        prefixKVGrad = ledger.allocate(Float.self, count: t * width, category: .activationGradients)
    }

    /// Backward of ``projectPrefix`` from the keys' and values' gradient the layers summed.
    private func projectPrefixBackward() {
        let c = config, t = method.prefixTokens, p = prefixProjection, width = c.layers * 2 * c.kvDim
        let dkv = prefixKVGrad!.pointer, hidden = prefixHidden!
        for r in 0..<t { addInPlace(gradient("prefix_mlp.2_bias")!, dkv + r * width, count: width) }
        let dh = ledger.allocate(Float.self, count: t * p, category: .activationGradients)
        linearBackward(dinp: dh.pointer, dw: gradient("prefix_mlp.2"), dkv, hidden.pointer, params.pointer("prefix_mlp.2"),
                       n: t, inFeatures: p, outFeatures: width)
        for i in 0..<t * p { dh[i] *= 1 - hidden[i] * hidden[i] }   // tanh′ = 1 − tanh²
        for r in 0..<t { addInPlace(gradient("prefix_mlp.0_bias")!, dh.pointer + r * p, count: p) }
        linearBackward(dinp: gradient("prefix"), dw: gradient("prefix_mlp.0"), dh.pointer, params.pointer("prefix"), params.pointer("prefix_mlp.0"),
                       n: t, inFeatures: c.kvDim, outFeatures: p)
        dh.release()
    }

    private func optimizerStep() {
        guard let gradients else { return }
        let g = gradients.pointer
        let n = params.trainableCount
        let p = params.trainable.pointer
        stepCount += 1
        switch optimizer {
        case let .adamw(lr, b1, b2, eps):
            if moment1 == nil {
                moment1 = ledger.allocate(Float.self, count: n, category: .optimizerStates)
                moment2 = ledger.allocate(Float.self, count: n, category: .optimizerStates)
            }
            adamWUpdate(p: p, g: g, m: moment1!.pointer, v: moment2!.pointer, count: n, lr: lr, beta1: b1, beta2: b2, eps: eps, step: stepCount,
                        zeroGradient: true)   // clears the gradient in the same pass
            return
        case let .sgd(lr, momentum):
            if momentum == 0 {
                for i in 0..<n { p[i] -= lr * g[i] }
            } else {
                if moment1 == nil { moment1 = ledger.allocate(Float.self, count: n, category: .optimizerStates) }
                let m = moment1!.pointer
                // torch.optim.SGD: the first step's buffer is the gradient itself
                for i in 0..<n {
                    m[i] = stepCount == 1 ? g[i] : momentum * m[i] + g[i]
                    p[i] -= lr * m[i]
                }
            }
        }
        g.update(repeating: 0, count: n)
    }
}

