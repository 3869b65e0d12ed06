import Foundation
import PEFTTestSupport
import Testing
import PEFTEngine

/// The vectorised exp against Foundation's, and the vectorised / multi-threaded kernels
/// against plain scalar loops, at sizes that exercise both the vector body and the tails.
@Suite("Engine: vectorised kernels")
struct EngineFastKernelTests {
    static func ulps(_ a: Float, _ b: Float) -> Int {
        if a == b { return 0 }
        return abs(Int(Int32(bitPattern: a.bitPattern)) - Int(Int32(bitPattern: b.bitPattern)))
    }

    /// vexp within 2 ulp of expf over the whole normal range (about 1.3 million points
    /// spread evenly over [−87.3, 88.7]), within 4 subnormal steps below it, and exact on
    /// the special values: −∞ (softmax masks) → 0, far below → 0, above 88.73 → +∞, NaN → NaN.
    @Test func vexpMatchesExpf() {
        var worst = 0, worstX: Float = 0
        let count = 1 << 20
        let lo: Float = -87.3, hi: Float = 88.7
        var xs = [Float](repeating: 0, count: count), ys = xs
        for i in 0..<count { xs[i] = lo + (hi - lo) * Float(i) / Float(count - 1) }
        xs.withUnsafeBufferPointer { x in ys.withUnsafeMutableBufferPointer { y in
            vexpArray(y.baseAddress!, x.baseAddress!, count: count)
        } }
        for i in 0..<count {
            let u = Self.ulps(ys[i], expf(xs[i]))
            if u > worst { worst = u; worstX = xs[i] }
        }
        #expect(worst <= 2, "worst \(worst) ulp at x = \(worstX)")
        // small arguments around 0, where e^x ≈ 1 + x
        for i in -1000...1000 {
            let x = Float(i) * 1e-4
            #expect(Self.ulps(sexp(x), expf(x)) <= 2, "x = \(x)")
        }
        // the subnormal results
        var x: Float = -103.5
        while x < -87.3 {
            #expect(abs(sexp(x) - expf(x)) <= 4 * Float.leastNonzeroMagnitude + 2 * expf(x).ulp, "x = \(x)")
            x += 0.01
        }
        #expect(sexp(-.infinity) == 0 && sexp(-200) == 0 && sexp(-104) == 0)
        #expect(sexp(0) == 1)
        #expect(sexp(88.73) == .infinity && sexp(1000) == .infinity && sexp(.infinity) == .infinity)
        #expect(sexp(.nan).isNaN)
        // the array form's tail (count not a multiple of the lanes) matches the lanes
        var tail = [Float](repeating: 0, count: 37)
        let src = (0..<37).map { Float($0) * -0.37 }
        vexpArray(&tail, src, count: 37)
        for i in 0..<37 { #expect(Self.ulps(tail[i], expf(src[i])) <= 2) }
    }

    @Test func swigluMatchesScalar() {
        var rng = SeededRandom(state: 11)
        let count = 40_000 + 7   // split over the cores, with a scalar tail
        let g = rng.floats(count, scale: 12), u = rng.floats(count), dh = rng.floats(count)
        var h = [Float](repeating: 0, count: count)
        swigluForward(&h, g, u, count: count)
        var dg = rng.floats(count), du = rng.floats(count)
        let dg0 = dg, du0 = du
        swigluBackward(dg: &dg, du: &du, dh, g, u, count: count)
        for i in 0..<count {
            let s = 1 / (1 + expf(-g[i]))
            #expect(abs(h[i] - g[i] * s * u[i]) <= 1e-6 * max(1, abs(h[i])))
            #expect(abs(du[i] - (du0[i] + dh[i] * g[i] * s)) <= 1e-5)
            #expect(abs(dg[i] - (dg0[i] + dh[i] * u[i] * s * (1 + g[i] * (1 - s)))) <= 1e-5)
        }
    }

    @Test func rmsnormMatchesScalar() {
        var rng = SeededRandom(state: 12)
        let (n, c) = (9, 45)
        let x = rng.floats(n * c, scale: 3), w = rng.floats(c), d = rng.floats(n * c)
        var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
        rmsnormForward(&out, rstd: &rstd, x, w, n: n, c: c, eps: 1e-5)
        var dx = rng.floats(n * c), dw = rng.floats(c)
        let dx0 = dx, dw0 = dw
        rmsnormBackward(dx: &dx, dw: &dw, d, x, w, rstd: rstd, n: n, c: c)
        var dwRef = dw0.map { Double($0) }
        for i in 0..<n {
            var ss = 0.0
            for j in 0..<c { ss += Double(x[i * c + j]) * Double(x[i * c + j]) }
            let r = 1 / (ss / Double(c) + 1e-5).squareRoot()
            #expect(abs(Double(rstd[i]) - r) <= 1e-6 * r)
            var dot = 0.0
            for j in 0..<c { dot += Double(d[i * c + j]) * Double(w[j]) * Double(x[i * c + j]) * r }
            for j in 0..<c {
                let k = i * c + j
                #expect(abs(Double(out[k]) - Double(x[k]) * r * Double(w[j])) <= 1e-5)
                let ref = Double(dx0[k]) + r * (Double(d[k]) * Double(w[j]) - Double(x[k]) * r * dot / Double(c))
                #expect(abs(Double(dx[k]) - ref) <= 1e-4, "dx[\(k)]")
                dwRef[j] += Double(d[k]) * Double(x[k]) * r
            }
        }
        for j in 0..<c { #expect(abs(Double(dw[j]) - dwRef[j]) <= 1e-4, "dw[\(j)]") }
    }

    /// RoPE with a half-width of 20 (one vector and a tail) against the rotation by hand.
    @Test func ropeMatchesScalar() {
        var rng = SeededRandom(state: 13)
        let (b, s, h, d) = (2, 5, 3, 40)
        let tables = ropeTables(seq: s, headDim: d, base: 10000)
        let x = rng.floats(b * s * h * d)
        var y = x
        ropeForward(&y, cos: tables.cos, sin: tables.sin, batch: b, seq: s, heads: h, headDim: d)
        for bi in 0..<b { for p in 0..<s { for hi in 0..<h { for j in 0..<d / 2 {
            let base = ((bi * s + p) * h + hi) * d
            let c = tables.cos[p * d / 2 + j], sn = tables.sin[p * d / 2 + j]
            #expect(abs(y[base + j] - (x[base + j] * c - x[base + j + d / 2] * sn)) <= 1e-6)
            #expect(abs(y[base + j + d / 2] - (x[base + j + d / 2] * c + x[base + j] * sn)) <= 1e-6)
        } } } }
        ropeBackward(&y, cos: tables.cos, sin: tables.sin, batch: b, seq: s, heads: h, headDim: d)
        #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 })   // the inverse rotation
    }

    /// Cross-entropy over a vocabulary of 1003 (vectors and a tail), rows split over the
    /// cores, with an ignored row, against a Double reference.
    @Test func crossEntropyMatchesScalar() {
        var rng = SeededRandom(state: 14)
        let (n, vocab) = (70, 1003)
        let logits = rng.floats(n * vocab, scale: 8)
        let targets: [Int32] = (0..<n).map { $0 == 3 ? -1 : Int32(($0 * 37) % vocab) }
        var probs = [Float](repeating: 0, count: n * vocab)
        let loss = crossEntropyForward(probs: &probs, logits, targets, n: n, vocab: vocab)
        var ref = 0.0, counted = 0
        for i in 0..<n {
            let row = logits[i * vocab..<(i + 1) * vocab].map { Double($0) }
            let m = row.max()!
            let sum = row.reduce(0) { $0 + exp($1 - m) }
            for j in 0..<vocab { #expect(abs(Double(probs[i * vocab + j]) - exp(row[j] - m) / sum) <= 1e-6) }
            if targets[i] >= 0 { ref -= row[Int(targets[i])] - m - log(sum); counted += 1 }
        }
        ref /= Double(counted)
        #expect(abs(Double(loss) - ref) <= 1e-5 * ref)
        var dl = [Float](repeating: 7, count: n * vocab)
        crossEntropyBackward(dlogits: &dl, probs: probs, targets, n: n, vocab: vocab)
        for i in 0..<n {
            for j in 0..<vocab {
                let t = Int(targets[i])
                let want: Float = t < 0 ? 0 : (probs[i * vocab + j] - (j == t ? 1 : 0)) / Float(counted)
                #expect(abs(dl[i * vocab + j] - want) <= 1e-9)
            }
        }
    }

    /// The BLAS attention with (batch, head) pairs over two workers (two workspace slots),
    /// sizes with vector tails, against the plain-loop references.
    @Test(arguments: [0, 3])
    func attentionParallelMatchesNaive(prefix: Int) {
        var rng = SeededRandom(state: 15)
        let (b, s, h, kvh, d) = (3, 37, 4, 2, 20)
        let skv = s + prefix
        let q = rng.floats(b * s * h * d), k = rng.floats(b * skv * kvh * d), v = rng.floats(b * skv * kvh * d)
        let r = rng.floats(b * s * h * d)
        var out = [Float](repeating: 0, count: b * s * h * d), probs = [Float](repeating: 0, count: b * h * s * skv)
        attentionForward(&out, probs: &probs, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        var out2 = out, probs2 = probs
        attentionForwardNaive(&out2, probs: &probs2, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        #expect(zip(out, out2).allSatisfy { abs($0 - $1) < 1e-5 } && zip(probs, probs2).allSatisfy { abs($0 - $1) < 1e-6 })
        var dq = rng.floats(q.count), dk = rng.floats(k.count), dv = rng.floats(v.count)
        var dq2 = dq, dk2 = dk, dv2 = dv
        var work = [Float](repeating: 0, count: 2 * s * skv)
        attentionBackward(dq: &dq, dk: &dk, dv: &dv, r, probs: probs, q, k, v, workspace: &work, workspaceSlots: 2,
                          batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        attentionBackwardNaive(dq: &dq2, dk: &dk2, dv: &dv2, r, probs: probs, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        for (x, y) in [(dq, dq2), (dk, dk2), (dv, dv2)] { #expect(zip(x, y).allSatisfy { abs($0 - $1) < 1e-5 }) }
    }

    /// AdamW in vector lanes over the cores against the scalar update, the gradient cleared.
    @Test func adamWMatchesScalar() {
        var rng = SeededRandom(state: 16)
        let count = 200_003
        var p = rng.floats(count), g = rng.floats(count), m = rng.floats(count, scale: 0.1), v = rng.floats(count).map { $0 * $0 }
        let p0 = p, g0 = g, m0 = m, v0 = v
        adamWUpdate(p: &p, g: &g, m: &m, v: &v, count: count, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3, zeroGradient: true)
        let c1 = 1 - pow(Float(0.9), 3), c2 = 1 - pow(Float(0.999), 3)
        for i in stride(from: 0, to: count, by: 7) {
            let mi = 0.9 * m0[i] + 0.1 * g0[i], vi = 0.999 * v0[i] + 0.001 * g0[i] * g0[i]
            let pi = p0[i] - 1e-3 * (mi / c1) / ((vi / c2).squareRoot() + 1e-8)
            #expect(abs(m[i] - mi) <= 1e-7 && abs(v[i] - vi) <= 1e-7 && abs(p[i] - pi) <= 1e-6)
        }
        #expect(g.allSatisfy { $0 == 0 })
    }
}
