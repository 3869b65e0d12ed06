import Foundation
import PEFTTestSupport
import Testing
import PEFTEngine

/// A small deterministic generator (SplitMix64) so every test sees the same numbers.
struct SeededRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in float() * scale } }
}

@Suite("Engine: GEMM and the memory ledger")
struct EngineKernelTests {
    /// OpenBLAS's sgemm against the three-loop reference, every transpose, odd sizes.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func sgemmMatchesNaive(_ t: (Bool, Bool)) {
        var rng = SeededRandom(state: 7)
        let (m, n, k) = (37, 29, 53)
        let a = rng.floats(m * k), b = rng.floats(k * n), c0 = rng.floats(m * n)
        var fast = c0, slow = c0
        let lda = t.0 ? m : k, ldb = t.1 ? k : n
        sgemm(transA: t.0, transB: t.1, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 0.25, c: &fast, ldc: n)
        sgemmNaive(transA: t.0, transB: t.1, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 0.25, c: &slow, ldc: n)
        let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5, "max |Δ| \(worst)")
    }

    @Test func ledgerCountsByCategoryAndPhase() {
        let ledger = Ledger()
        let w = ledger.allocate(Float.self, count: 1000, category: .frozenWeights)
        ledger.enter(.forward)
        var act: Buffer<Float>? = ledger.allocate(Float.self, count: 500, category: .activations)
        var tmp: Buffer<Float>? = ledger.allocate(Float.self, count: 250, category: .transient)
        #expect(ledger.live[.activations] == 2000 && ledger.liveTotal == 7000)
        tmp = nil
        ledger.enter(.backward)
        let g = ledger.allocate(Float.self, count: 100, category: .gradients)
        act = nil
        #expect(ledger.liveTotal == 4400)
        #expect(ledger.peakTotal == 7000)
        #expect(ledger.phasePeak[.forward] == 7000)
        #expect(ledger.phasePeakBreakdown[.forward]?[.transient] == 1000)
        #expect(ledger.phasePeak[.backward] == 6400)   // weights + activations + gradients
        #expect(ledger.peak[.activations] == 2000 && ledger.live[.activations] == 0)
        _ = (w, g, act, tmp)
    }

    /// The ledger against glibc's own accounting (mallinfo2: heap bytes in use plus mmap'ed
    /// blocks), in a process of its own so that no parallel test allocates meanwhile:
    /// 16 buffers of about 16 MiB, tolerance 0.1% + 64 KiB (malloc's headers and rounding).
    @Test func ledgerAgreesWithMalloc() throws {
        let r = try CLI.run(["ledger-check"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Int]
        let ledger = j["ledger_bytes"]!, grown = j["malloc_grown"]!, after = j["malloc_after_free"]!
        #expect(ledger == (0..<16).reduce(0) { $0 + ((1 << 22) + $1 * 1000) * 4 })
        let slack = ledger / 1000 + (64 << 10)
        #expect(abs(grown - ledger) <= slack, "malloc grew \(grown), ledger \(ledger)")
        #expect(abs(after) <= slack, "malloc after free: \(after)")
    }

    @Test func blasIsRecorded() {
        #expect(!BLASInfo.coreName.isEmpty && BLASInfo.coreName != "unknown")
        #expect(BLASInfo.threads >= 1)
    }
}

/// Finite-difference checks of every layer's backward: the loss L = Σ out ⊙ R for a fixed
/// random R, central differences with step 1e-2 on a sample of coordinates, tolerance
/// 2e-2 relative (fp32 forward; the llm.c test_gpt2.c practice of a stated tolerance).
@Suite("Engine: layer gradients against finite differences")
struct EngineGradientTests {
    /// Checks d(Σ f(x) ⊙ r)/dx[i] numerically for a sample of i.
    static func check(_ name: String, x: inout [Float], analytic: [Float], samples: Int = 24,
                      loss: ([Float]) -> Double, rng: inout SeededRandom) {
        let eps: Float = 1e-2
        for _ in 0..<min(samples, x.count) {
            let i = Int(rng.next() % UInt64(x.count))
            let keep = x[i]
            x[i] = keep + eps; let up = loss(x)
            x[i] = keep - eps; let down = loss(x)
            x[i] = keep
            let numeric = (up - down) / (2 * Double(eps))
            let a = Double(analytic[i])
            #expect(abs(numeric - a) <= 2e-2 * max(1, abs(a)), "\(name)[\(i)]: analytic \(a), numeric \(numeric)")
        }
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    @Test func linear() {
        var rng = SeededRandom(state: 1)
        let (n, i, o) = (6, 10, 7)
        var x = rng.floats(n * i), w = rng.floats(o * i)
        let r = rng.floats(n * o)
        func f(_ x: [Float], _ w: [Float]) -> [Float] { var out = [Float](repeating: 0, count: n * o); linearForward(&out, x, w, n: n, inFeatures: i, outFeatures: o); return out }
        var dx = [Float](repeating: 0, count: n * i), dw = [Float](repeating: 0, count: o * i)
        linearBackward(dinp: &dx, dw: &dw, r, x, w, n: n, inFeatures: i, outFeatures: o)
        let w0 = w, x0 = x
        Self.check("linear.x", x: &x, analytic: dx, loss: { Self.dot(f($0, w0), r) }, rng: &rng)
        Self.check("linear.w", x: &w, analytic: dw, loss: { Self.dot(f(x0, $0), r) }, rng: &rng)
    }

    @Test func rmsnorm() {
        var rng = SeededRandom(state: 2)
        let (n, c) = (5, 16)
        var x = rng.floats(n * c), w = rng.floats(c)
        let r = rng.floats(n * c)
        func f(_ x: [Float], _ w: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
            rmsnormForward(&out, rstd: &rstd, x, w, n: n, c: c, eps: 1e-5); return out
        }
        var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
        rmsnormForward(&out, rstd: &rstd, x, w, n: n, c: c, eps: 1e-5)
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c)
        rmsnormBackward(dx: &dx, dw: &dw, r, x, w, rstd: rstd, n: n, c: c)
        let w0 = w, x0 = x
        Self.check("rmsnorm.x", x: &x, analytic: dx, loss: { Self.dot(f($0, w0), r) }, rng: &rng)
        Self.check("rmsnorm.w", x: &w, analytic: dw, loss: { Self.dot(f(x0, $0), r) }, rng: &rng)
    }

    @Test func swiglu() {
        var rng = SeededRandom(state: 3)
        let count = 40
        var g = rng.floats(count, scale: 3), u = rng.floats(count)
        let r = rng.floats(count)
        func f(_ g: [Float], _ u: [Float]) -> [Float] { var h = [Float](repeating: 0, count: count); swigluForward(&h, g, u, count: count); return h }
        var dg = [Float](repeating: 0, count: count), du = [Float](repeating: 0, count: count)
        swigluBackward(dg: &dg, du: &du, r, g, u, count: count)
        let g0 = g, u0 = u
        Self.check("swiglu.g", x: &g, analytic: dg, loss: { Self.dot(f($0, u0), r) }, rng: &rng)
        Self.check("swiglu.u", x: &u, analytic: du, loss: { Self.dot(f(g0, $0), r) }, rng: &rng)
    }

    @Test func rope() {
        var rng = SeededRandom(state: 4)
        let (b, s, h, d) = (2, 5, 3, 8)
        let tables = ropeTables(seq: s, headDim: d, base: 10000)
        var x = rng.floats(b * s * h * d)
        let r = rng.floats(x.count)
        func f(_ x: [Float]) -> [Float] { var y = x; ropeForward(&y, cos: tables.cos, sin: tables.sin, batch: b, seq: s, heads: h, headDim: d); return y }
        var dx = r
        ropeBackward(&dx, cos: tables.cos, sin: tables.sin, batch: b, seq: s, heads: h, headDim: d)
        Self.check("rope.x", x: &x, analytic: dx, loss: { Self.dot(f($0), r) }, rng: &rng)
    }

    /// Grouped-query causal attention, with two prefix keys visible to every query.
    @Test(arguments: [0, 2])
    func attention(prefix: Int) {
        var rng = SeededRandom(state: 5)
        let (b, s, h, kvh, d) = (2, 4, 4, 2, 6)
        let skv = s + prefix
        var q = rng.floats(b * s * h * d), k = rng.floats(b * skv * kvh * d), v = rng.floats(b * skv * kvh * d)
        let r = rng.floats(b * s * h * d)
        func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: b * s * h * d), p = [Float](repeating: 0, count: b * h * s * skv)
            attentionForward(&out, probs: &p, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d); return out
        }
        var out = [Float](repeating: 0, count: b * s * h * d), probs = [Float](repeating: 0, count: b * h * s * skv)
        attentionForward(&out, probs: &probs, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = [Float](repeating: 0, count: v.count)
        var work = [Float](repeating: 0, count: s * skv)
        attentionBackward(dq: &dq, dk: &dk, dv: &dv, r, probs: probs, q, k, v, workspace: &work,
                          batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        // the BLAS kernels against their plain-loop references
        var out2 = [Float](repeating: 0, count: out.count), probs2 = [Float](repeating: 0, count: probs.count)
        attentionForwardNaive(&out2, probs: &probs2, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        #expect(zip(out, out2).allSatisfy { abs($0 - $1) < 1e-5 } && zip(probs, probs2).allSatisfy { abs($0 - $1) < 1e-6 })
        var dq2 = [Float](repeating: 0, count: q.count), dk2 = [Float](repeating: 0, count: k.count), dv2 = [Float](repeating: 0, count: v.count)
        attentionBackwardNaive(dq: &dq2, dk: &dk2, dv: &dv2, r, probs: probs, q, k, v, batch: b, seq: s, kvSeq: skv, heads: h, kvHeads: kvh, headDim: d)
        for (x, y) in [(dq, dq2), (dk, dk2), (dv, dv2)] { #expect(zip(x, y).allSatisfy { abs($0 - $1) < 1e-5 }) }
        let q0 = q, k0 = k, v0 = v
        Self.check("attention.q", x: &q, analytic: dq, loss: { Self.dot(f($0, k0, v0), r) }, rng: &rng)
        Self.check("attention.k", x: &k, analytic: dk, loss: { Self.dot(f(q0, $0, v0), r) }, rng: &rng)
        Self.check("attention.v", x: &v, analytic: dv, loss: { Self.dot(f(q0, k0, $0), r) }, rng: &rng)
    }

    @Test func crossEntropy() {
        var rng = SeededRandom(state: 6)
        let (n, vocab) = (5, 11)
        var logits = rng.floats(n * vocab, scale: 3)
        let targets: [Int32] = [3, -1, 0, 10, 7]
        var probs = [Float](repeating: 0, count: n * vocab)
        _ = crossEntropyForward(probs: &probs, logits, targets, n: n, vocab: vocab)
        var dl = [Float](repeating: 0, count: n * vocab)
        crossEntropyBackward(dlogits: &dl, probs: probs, targets, n: n, vocab: vocab)
        Self.check("cross_entropy.logits", x: &logits, analytic: dl, loss: { l in
            var p = [Float](repeating: 0, count: n * vocab)
            return Double(crossEntropyForward(probs: &p, l, targets, n: n, vocab: vocab))
        }, rng: &rng)
        // the loss of a uniform prediction is log V (a fact, not the code under test)
        var uniform = [Float](repeating: 0, count: n * vocab)
        let flat = [Float](repeating: 0.5, count: n * vocab)
        #expect(abs(crossEntropyForward(probs: &uniform, flat, targets, n: n, vocab: vocab) - Float(log(Double(vocab)))) < 1e-5)
    }

    @Test func embedding() {
        var rng = SeededRandom(state: 8)
        let (vocab, c) = (7, 4)
        let table = rng.floats(vocab * c)
        let tokens: [Int32] = [3, 3, 0, 6]
        var out = [Float](repeating: 0, count: tokens.count * c)
        embeddingForward(&out, tokens, table, n: tokens.count, c: c)
        #expect(Array(out[0..<c]) == Array(table[3 * c..<4 * c]))
        let r = rng.floats(out.count)
        var dt = [Float](repeating: 0, count: table.count)
        embeddingBackward(&dt, r, tokens, n: tokens.count, c: c)
        // token 3 appears twice: its gradient row is the sum of both rows of r
        for j in 0..<c { #expect(abs(dt[3 * c + j] - (r[j] + r[c + j])) < 1e-6) }
        #expect(dt[c..<3 * c].allSatisfy { $0 == 0 })
    }
}
