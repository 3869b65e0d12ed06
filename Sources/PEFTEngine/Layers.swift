import Foundation

// Paired forward/backward functions of the engine's Llama-style decoder, in fp32, on raw
// row-major arrays. Shapes use N = batch × seq tokens. Every backward *accumulates* into
// its gradient outputs (`+=`); gradients are zeroed once per step by the caller.
// Conventions follow Hugging Face's Llama so the engine can be checked against PyTorch on
// the same weights: `nn.Linear` keeps its weight as (out, in) and computes x·Wᵀ; RMSNorm
// multiplies the normalised input by its weight; RoPE rotates halves (`rotate_half`);
// SwiGLU is down(silu(gate(x)) · up(x)).

public typealias FloatPointer = UnsafeMutablePointer<Float>
public typealias ConstFloatPointer = UnsafePointer<Float>

/// y[i] += x[i] (the residual connections), eight lanes at a time (unaligned loads: views
/// into a category's allocation start anywhere).
public func addInPlace(_ y: FloatPointer, _ x: ConstFloatPointer, count: Int) {
    let lanes = count / 8 * 8
    let yr = UnsafeMutableRawPointer(y), xr = UnsafeRawPointer(x)
    for o in stride(from: 0, to: lanes * 4, by: 32) {
        let sum = yr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + xr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        yr.storeBytes(of: sum, toByteOffset: o, as: SIMD8<Float>.self)
    }
    for i in lanes..<count { y[i] += x[i] }
}

/// torch.optim.AdamW's update (weight decay 0) at step `step` (from 1):
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε),
/// in vector lanes, split over the cores. With `zeroGradient` the gradient is cleared in
/// the same pass (it is read once and written once instead of swept again).
public func adamWUpdate(p: FloatPointer, g: FloatPointer, m: FloatPointer, v: FloatPointer, count: Int,
                        lr: Float, beta1: Float, beta2: Float, eps: Float, step: Int, zeroGradient: Bool = false) {
    let c1 = 1 - pow(beta1, Float(step)), c2 = 1 - pow(beta2, Float(step))
    let b1 = FloatVector(repeating: beta1), b2 = FloatVector(repeating: beta2)
    let ob1 = FloatVector(repeating: 1 - beta1), ob2 = FloatVector(repeating: 1 - beta2)
    let ic1 = FloatVector(repeating: 1 / c1), ic2 = FloatVector(repeating: 1 / c2)
    let lrv = FloatVector(repeating: lr), epsv = FloatVector(repeating: eps)
    parallelChunks(count, grain: 1 << 16) { range in
        var i = range.lowerBound
        while i + vectorLanes <= range.upperBound {
            let gi = loadVector(g + i)
            let mi = b1 * loadVector(m + i) + ob1 * gi
            let vi = b2 * loadVector(v + i) + ob2 * gi * gi
            storeVector(mi, m + i)
            storeVector(vi, v + i)
            storeVector(loadVector(p + i) - lrv * (mi * ic1) / ((vi * ic2).squareRoot() + epsv), p + i)
            if zeroGradient { storeVector(FloatVector(repeating: 0), g + i) }
            i += vectorLanes
        }
        while i < range.upperBound {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] -= lr * (m[i] * (1 / c1)) / ((v[i] * (1 / c2)).squareRoot() + eps)
            if zeroGradient { g[i] = 0 }
            i += 1
        }
    }
}

// MARK: - Linear

/// out[N×O] = inp[N×I] · w[O×I]ᵀ
public func linearForward(_ out: FloatPointer, _ inp: ConstFloatPointer, _ w: ConstFloatPointer, n: Int, inFeatures: Int, outFeatures: Int) {
    sgemm(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures, a: inp, lda: inFeatures, b: w, ldb: inFeatures,
          beta: 0, c: out, ldc: outFeatures)
}

/// dinp[N×I] += dout[N×O] · w[O×I] (when `dinp` is given); dw[O×I] += dout[N×O]ᵀ · inp[N×I]
/// (when `dw` is given: only trainable weights get a gradient).
public func linearBackward(dinp: FloatPointer?, dw: FloatPointer?, _ dout: ConstFloatPointer, _ inp: ConstFloatPointer,
                           _ w: ConstFloatPointer, n: Int, inFeatures: Int, outFeatures: Int) {
    if let dinp {
        sgemm(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures, a: dout, lda: outFeatures, b: w, ldb: inFeatures,
              beta: 1, c: dinp, ldc: inFeatures)
    }
    if let dw {
        sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n, a: dout, lda: outFeatures, b: inp, ldb: inFeatures,
              beta: 1, c: dw, ldc: inFeatures)
    }
}

// MARK: - RMSNorm

/// out[N×C] = x / sqrt(mean(x²) + eps) · w[C]; rstd[N] saved for backward.
public func rmsnormForward(_ out: FloatPointer, rstd: FloatPointer, _ x: ConstFloatPointer, _ w: ConstFloatPointer,
                           n: Int, c: Int, eps: Float) {
    let full = c / vectorLanes * vectorLanes
    for i in 0..<n {
        let row = x + i * c, o = out + i * c
        var acc = FloatVector(repeating: 0)
        var j = 0
        while j < full { let v = loadVector(row + j); acc += v * v; j += vectorLanes }
        var ss = acc.sum()
        for t in full..<c { ss += row[t] * row[t] }
        let r = 1 / (ss / Float(c) + eps).squareRoot()
        rstd[i] = r
        let rv = FloatVector(repeating: r)
        j = 0
        while j < full { storeVector(loadVector(row + j) * rv * loadVector(w + j), o + j); j += vectorLanes }
        for t in full..<c { o[t] = row[t] * r * w[t] }
    }
}

/// dx[N×C] += …, dw[C] += Σ_rows dout · x · rstd (when trainable).
/// With x̂ = x · r: dx = r · (g − x̂ · mean(g · x̂)), where g = dout · w.
public func rmsnormBackward(dx: FloatPointer?, dw: FloatPointer?, _ dout: ConstFloatPointer, _ x: ConstFloatPointer,
                            _ w: ConstFloatPointer, rstd: ConstFloatPointer, n: Int, c: Int) {
    let full = c / vectorLanes * vectorLanes
    for i in 0..<n {
        let row = x + i * c, d = dout + i * c
        let r = rstd[i], rv = FloatVector(repeating: r)
        if let dw {
            var j = 0
            while j < full { storeVector(loadVector(dw + j) + loadVector(d + j) * loadVector(row + j) * rv, dw + j); j += vectorLanes }
            for t in full..<c { dw[t] += d[t] * row[t] * r }
        }
        guard let dx else { continue }
        var acc = FloatVector(repeating: 0)
        var j = 0
        while j < full { acc += loadVector(d + j) * loadVector(w + j) * loadVector(row + j) * rv; j += vectorLanes }
        var dot = acc.sum()
        for t in full..<c { dot += d[t] * w[t] * row[t] * r }
        let mean = dot / Float(c), mv = FloatVector(repeating: mean)
        let o = dx + i * c
        j = 0
        while j < full {
            storeVector(loadVector(o + j) + rv * (loadVector(d + j) * loadVector(w + j) - loadVector(row + j) * rv * mv), o + j)
            j += vectorLanes
        }
        for t in full..<c { o[t] += r * (d[t] * w[t] - row[t] * r * mean) }
    }
}

// MARK: - Embedding

/// out[N×C] = table[tokens[i]]
public func embeddingForward(_ out: FloatPointer, _ tokens: UnsafePointer<Int32>, _ table: ConstFloatPointer, n: Int, c: Int) {
    for i in 0..<n { (out + i * c).update(from: table + Int(tokens[i]) * c, count: c) }
}

/// dtable[V×C] += scatter of dout rows.
public func embeddingBackward(_ dtable: FloatPointer, _ dout: ConstFloatPointer, _ tokens: UnsafePointer<Int32>, n: Int, c: Int) {
    for i in 0..<n {
        addInPlace(dtable + Int(tokens[i]) * c, dout + i * c, count: c)
    }
}

// MARK: - SwiGLU

/// h[N×F] = silu(g) · u, silu(g) = g · σ(g), with ``vexp``, split over the cores.
public func swigluForward(_ h: FloatPointer, _ g: ConstFloatPointer, _ u: ConstFloatPointer, count: Int) {
    parallelChunks(count, grain: 1 << 14) { range in
        var i = range.lowerBound
        let one = FloatVector(repeating: 1)
        while i + vectorLanes <= range.upperBound {
            let gv = loadVector(g + i)
            let s = one / (one + vexp(-gv))
            storeVector(gv * s * loadVector(u + i), h + i)
            i += vectorLanes
        }
        while i < range.upperBound {
            let s = 1 / (1 + sexp(-g[i]))
            h[i] = g[i] * s * u[i]
            i += 1
        }
    }
}

/// dg += dh · u · σ(g)(1 + g(1 − σ(g))); du += dh · silu(g), with ``vexp``, split over the cores.
public func swigluBackward(dg: FloatPointer, du: FloatPointer, _ dh: ConstFloatPointer, _ g: ConstFloatPointer, _ u: ConstFloatPointer,
                           count: Int) {
    parallelChunks(count, grain: 1 << 14) { range in
        var i = range.lowerBound
        let one = FloatVector(repeating: 1)
        while i + vectorLanes <= range.upperBound {
            let gv = loadVector(g + i), dhv = loadVector(dh + i)
            let s = one / (one + vexp(-gv))
            storeVector(loadVector(du + i) + dhv * gv * s, du + i)
            storeVector(loadVector(dg + i) + dhv * loadVector(u + i) * s * (one + gv * (one - s)), dg + i)
            i += vectorLanes
        }
        while i < range.upperBound {
            let s = 1 / (1 + sexp(-g[i]))
            du[i] += dh[i] * g[i] * s
            dg[i] += dh[i] * u[i] * s * (1 + g[i] * (1 - s))
            i += 1
        }
    }
}

// MARK: - RoPE

/// The cos/sin tables of rotary embeddings: (seq × headDim/2) each, θ_j = base^(−2j/d).
public func ropeTables(seq: Int, headDim: Int, base: Float) -> (cos: [Float], sin: [Float]) {
    let half = headDim / 2
    var c = [Float](repeating: 0, count: seq * half), s = c
    for p in 0..<seq {
        for j in 0..<half {
            let freq = pow(Double(base), -2 * Double(j) / Double(headDim))
            let angle = Double(p) * freq
            c[p * half + j] = Float(cos(angle))
            s[p * half + j] = Float(sin(angle))
        }
    }
    return (c, s)
}

/// In place on x[B×S×H×D]: the halves (x1, x2) become (x1·cos − x2·sin, x2·cos + x1·sin),
/// as Transformers' `apply_rotary_pos_emb` with `rotate_half`.
/// `offset` is the position of the first token (after a prefix of cached keys, Transformers
/// numbers the new tokens from the cache's length).
public func ropeForward(_ x: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batch: Int, seq: Int, heads: Int, headDim: Int,
                        offset: Int = 0) {
    let half = headDim / 2
    rotate(x, cos: cos + offset * half, sin: sin + offset * half, batch: batch, seq: seq, heads: heads, headDim: headDim, sign: 1)
}

/// In place on the gradient: the transpose of the rotation, a rotation by −θ.
public func ropeBackward(_ dx: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batch: Int, seq: Int, heads: Int, headDim: Int,
                         offset: Int = 0) {
    let half = headDim / 2
    rotate(dx, cos: cos + offset * half, sin: sin + offset * half, batch: batch, seq: seq, heads: heads, headDim: headDim, sign: -1)
}

private func rotate(_ x: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batch: Int, seq: Int, heads: Int, headDim: Int,
                    sign: Float) {
    let half = headDim / 2, full = half / vectorLanes * vectorLanes
    let signv = FloatVector(repeating: sign)
    for b in 0..<batch {
        for p in 0..<seq {
            let cp = cos + p * half, sp = sin + p * half
            for h in 0..<heads {
                let v = x + ((b * seq + p) * heads + h) * headDim
                var j = 0
                while j < full {
                    let c = loadVector(cp + j), s = signv * loadVector(sp + j)
                    let x1 = loadVector(v + j), x2 = loadVector(v + j + half)
                    storeVector(x1 * c - x2 * s, v + j)
                    storeVector(x2 * c + x1 * s, v + j + half)
                    j += vectorLanes
                }
                for j in full..<half {
                    let c = cp[j], s = sign * sp[j]
                    let x1 = v[j], x2 = v[j + half]
                    v[j] = x1 * c - x2 * s
                    v[j + half] = x2 * c + x1 * s
                }
            }
        }
    }
}

// MARK: - Causal grouped-query attention

/// The reference for ``attentionForward``, in plain loops.
/// out[B×S×H×D] from q[B×S×H×D], k, v[B×Skv×KV×D]: per head, softmax(q·kᵀ/√D + causal
/// mask)·v, query head h reading KV head h / (H/KV). `probs`[B×H×S×Skv] is saved for
/// backward. The first `prefix` keys (prefix tuning) are visible to every query; query
/// position p sees keys 0..<prefix+p+1.
public func attentionForwardNaive(_ out: FloatPointer, probs: FloatPointer, _ q: ConstFloatPointer, _ k: ConstFloatPointer, _ v: ConstFloatPointer,
                             batch: Int, seq: Int, kvSeq: Int, heads: Int, kvHeads: Int, headDim: Int) {
    let group = heads / kvHeads, prefix = kvSeq - seq
    let scale = 1 / Float(headDim).squareRoot()
    for b in 0..<batch {
        for h in 0..<heads {
            let kh = h / group
            for p in 0..<seq {
                let qv = q + ((b * seq + p) * heads + h) * headDim
                let row = probs + ((b * heads + h) * seq + p) * kvSeq
                let visible = prefix + p + 1
                var maxScore = -Float.infinity
                for t in 0..<visible {
                    let kv = k + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    var dot: Float = 0
                    for d in 0..<headDim { dot += qv[d] * kv[d] }
                    row[t] = dot * scale
                    maxScore = max(maxScore, row[t])
                }
                var sum: Float = 0
                for t in 0..<visible { row[t] = exp(row[t] - maxScore); sum += row[t] }
                for t in 0..<visible { row[t] /= sum }
                for t in visible..<kvSeq { row[t] = 0 }
                let o = out + ((b * seq + p) * heads + h) * headDim
                for d in 0..<headDim { o[d] = 0 }
                for t in 0..<visible {
                    let vv = v + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    let w = row[t]
                    for d in 0..<headDim { o[d] += w * vv[d] }
                }
            }
        }
    }
}

/// dq += …, dk += …, dv += … from dout and the saved probabilities (the reference for
/// ``attentionBackward``).
public func attentionBackwardNaive(dq: FloatPointer, dk: FloatPointer, dv: FloatPointer, _ dout: ConstFloatPointer, probs: ConstFloatPointer,
                              _ q: ConstFloatPointer, _ k: ConstFloatPointer, _ v: ConstFloatPointer,
                              batch: Int, seq: Int, kvSeq: Int, heads: Int, kvHeads: Int, headDim: Int) {
    let group = heads / kvHeads, prefix = kvSeq - seq
    let scale = 1 / Float(headDim).squareRoot()
    var dp = [Float](repeating: 0, count: kvSeq)
    for b in 0..<batch {
        for h in 0..<heads {
            let kh = h / group
            for p in 0..<seq {
                let row = probs + ((b * heads + h) * seq + p) * kvSeq
                let dO = dout + ((b * seq + p) * heads + h) * headDim
                let visible = prefix + p + 1
                // dP = dO · vᵀ; dV += Pᵀ · dO
                var dot: Float = 0
                for t in 0..<visible {
                    let vv = v + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    let dvv = dv + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    var s: Float = 0
                    for d in 0..<headDim { s += dO[d] * vv[d]; dvv[d] += row[t] * dO[d] }
                    dp[t] = s
                    dot += s * row[t]
                }
                // softmax backward: dS = P · (dP − Σ P·dP), then scaled
                let qv = q + ((b * seq + p) * heads + h) * headDim
                let dqv = dq + ((b * seq + p) * heads + h) * headDim
                for t in 0..<visible {
                    let ds = row[t] * (dp[t] - dot) * scale
                    let kv = k + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    let dkv = dk + ((b * kvSeq + t) * kvHeads + kh) * headDim
                    for d in 0..<headDim { dqv[d] += ds * kv[d]; dkv[d] += ds * qv[d] }
                }
            }
        }
    }
}

/// ``attentionForwardNaive`` with its two products per head in `sgemm`: scores =
/// q_h · k_hᵀ (rows strided by H·D and KV·D in place, no copies), the causal mask and a
/// vectorised softmax per row, then out_h = P · v_h. The (batch, head) pairs are spread
/// over the cores, each worker's GEMMs single-threaded.
public func attentionForward(_ out: FloatPointer, probs: FloatPointer, _ q: ConstFloatPointer, _ k: ConstFloatPointer, _ v: ConstFloatPointer,
                             batch: Int, seq: Int, kvSeq: Int, heads: Int, kvHeads: Int, headDim: Int) {
    let group = heads / kvHeads, prefix = kvSeq - seq
    let scale = 1 / Float(headDim).squareRoot()
    let qs = heads * headDim, ks = kvHeads * headDim
    let tasks = TaskCounter(batch * heads)
    parallelWorkers(min(EngineThreads.count, batch * heads)) { _, tally in
        while let pair = tasks.next() {
            let b = pair / heads, h = pair % heads
            let kh = h / group
            let qh = q + (b * seq * heads + h) * headDim
            let kb = k + (b * kvSeq * kvHeads + kh) * headDim
            let vb = v + (b * kvSeq * kvHeads + kh) * headDim
            let p = probs + (b * heads + h) * seq * kvSeq
            sgemm(transA: false, transB: true, m: seq, n: kvSeq, k: headDim, alpha: scale, a: qh, lda: qs, b: kb, ldb: ks,
                  beta: 0, c: p, ldc: kvSeq, tally: &tally)
            for i in 0..<seq {
                let row = p + i * kvSeq
                let visible = prefix + i + 1
                softmaxMaskedRow(row, visible: visible, length: kvSeq)
            }
            sgemm(transA: false, transB: false, m: seq, n: headDim, k: kvSeq, a: p, lda: kvSeq, b: vb, ldb: ks,
                  beta: 0, c: out + (b * seq * heads + h) * headDim, ldc: qs, tally: &tally)
        }
    }
}

/// ``attentionBackwardNaive`` with its four products per head in `sgemm`; `workspace`
/// holds `workspaceSlots` × seq × kvSeq floats (dP, then dS in place), one slot per worker:
/// with more than one slot the (batch, KV head) groups are spread over that many workers
/// (the query heads sharing a KV head stay on one worker, which owns their dK and dV rows),
/// each worker's GEMMs single-threaded.
public func attentionBackward(dq: FloatPointer, dk: FloatPointer, dv: FloatPointer, _ dout: ConstFloatPointer, probs: ConstFloatPointer,
                              _ q: ConstFloatPointer, _ k: ConstFloatPointer, _ v: ConstFloatPointer, workspace: FloatPointer,
                              workspaceSlots: Int = 1,
                              batch: Int, seq: Int, kvSeq: Int, heads: Int, kvHeads: Int, headDim: Int) {
    let group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot(), scalev = FloatVector(repeating: scale)
    let qs = heads * headDim, ks = kvHeads * headDim
    let full = kvSeq / vectorLanes * vectorLanes
    let tasks = TaskCounter(batch * kvHeads)
    parallelWorkers(max(1, min(workspaceSlots, EngineThreads.count, batch * kvHeads))) { w, tally in
        let work = workspace + w * seq * kvSeq
        while let task = tasks.next() {
            let b = task / kvHeads, kh = task % kvHeads
            for h in kh * group..<(kh + 1) * group {
                let off = (b * seq * heads + h) * headDim, koff = (b * kvSeq * kvHeads + kh) * headDim
                let p = probs + (b * heads + h) * seq * kvSeq
                // dP = dO · vᵀ ; dV += Pᵀ · dO
                sgemm(transA: false, transB: true, m: seq, n: kvSeq, k: headDim, a: dout + off, lda: qs, b: v + koff, ldb: ks,
                      beta: 0, c: work, ldc: kvSeq, tally: &tally)
                sgemm(transA: true, transB: false, m: kvSeq, n: headDim, k: seq, a: p, lda: kvSeq, b: dout + off, ldb: qs,
                      beta: 1, c: dv + koff, ldc: ks, tally: &tally)
                // dS = P ⊙ (dP − Σ_t P·dP) · scale  (masked entries have P = 0)
                for i in 0..<seq {
                    let pr = p + i * kvSeq, dr = work + i * kvSeq
                    var acc = FloatVector(repeating: 0)
                    var t = 0
                    while t < full { acc += loadVector(pr + t) * loadVector(dr + t); t += vectorLanes }
                    var dot = acc.sum()
                    for t in full..<kvSeq { dot += pr[t] * dr[t] }
                    let dotv = FloatVector(repeating: dot)
                    t = 0
                    while t < full { storeVector(loadVector(pr + t) * (loadVector(dr + t) - dotv) * scalev, dr + t); t += vectorLanes }
                    for t in full..<kvSeq { dr[t] = pr[t] * (dr[t] - dot) * scale }
                }
                // dQ += dS · k ; dK += dSᵀ · q
                sgemm(transA: false, transB: false, m: seq, n: headDim, k: kvSeq, a: work, lda: kvSeq, b: k + koff, ldb: ks,
                      beta: 1, c: dq + off, ldc: qs, tally: &tally)
                sgemm(transA: true, transB: false, m: kvSeq, n: headDim, k: seq, a: work, lda: kvSeq, b: q + off, ldb: qs,
                      beta: 1, c: dk + koff, ldc: ks, tally: &tally)
            }
        }
    }
}

// MARK: - Cross-entropy

/// Mean next-token cross-entropy over N rows of logits[N×V] against targets[N] (−1 =
/// ignored, as Transformers' −100); writes the softmax into `probs` for backward and
/// returns the loss. Rows are split over the cores, their losses summed in a fixed order.
public func crossEntropyForward(probs: FloatPointer, _ logits: ConstFloatPointer, _ targets: UnsafePointer<Int32>, n: Int, vocab: Int) -> Float {
    let workers = max(1, min(EngineThreads.count, n * vocab / (1 << 15)))
    let chunk = (n + workers - 1) / workers
    var losses = [Double](repeating: 0, count: workers), counts = [Int](repeating: 0, count: workers)
    losses.withUnsafeMutableBufferPointer { lossesOut in
        counts.withUnsafeMutableBufferPointer { countsOut in
            parallelChunks(workers, grain: 1) { range in
                for w in range {
                    var loss = 0.0, counted = 0
                    for i in w * chunk..<min(n, (w + 1) * chunk) {
                        let p = probs + i * vocab
                        softmaxRow(p, logits + i * vocab, count: vocab)
                        let t = Int(targets[i])
                        if t >= 0 { loss -= log(Double(max(p[t], .leastNormalMagnitude))); counted += 1 }
                    }
                    lossesOut[w] = loss
                    countsOut[w] = counted
                }
            }
        }
    }
    let counted = counts.reduce(0, +), loss = losses.reduce(0, +)
    return counted == 0 ? 0 : Float(loss / Double(counted))
}

/// dlogits[N×V] = (softmax − onehot) / (rows counted), ignored rows zero.
public func crossEntropyBackward(dlogits: FloatPointer, probs: ConstFloatPointer, _ targets: UnsafePointer<Int32>, n: Int, vocab: Int) {
    var counted = 0
    for i in 0..<n where targets[i] >= 0 { counted += 1 }
    let scale = counted == 0 ? 0 : 1 / Float(counted)
    let scalev = FloatVector(repeating: scale), full = vocab / vectorLanes * vectorLanes
    parallelChunks(n, grain: max(1, (1 << 15) / max(vocab, 1))) { range in
        for i in range {
            let t = Int(targets[i])
            let d = dlogits + i * vocab, p = probs + i * vocab
            if t < 0 { d.update(repeating: 0, count: vocab); continue }
            var j = 0
            while j < full { storeVector(loadVector(p + j) * scalev, d + j); j += vectorLanes }
            for j in full..<vocab { d[j] = p[j] * scale }
            d[t] = (p[t] - 1) * scale
        }
    }
}
