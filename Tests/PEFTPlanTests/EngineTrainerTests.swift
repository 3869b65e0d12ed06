import Foundation
import PEFTTestSupport
import Testing
import PEFTEngine

@Suite("Engine: the whole model trains")
struct EngineTrainerTests {
    static let micro = EngineConfig(dim: 16, layers: 2, heads: 4, kvHeads: 2, hidden: 24, vocab: 20, tied: false)

    static func batch(_ seed: UInt64, b: Int, s: Int, vocab: Int) -> (tokens: [Int32], targets: [Int32]) {
        var rng = SeededRandom(state: seed)
        let tokens = (0..<b * s).map { _ in Int32(rng.next() % UInt64(vocab)) }
        var targets = (0..<b * s).map { _ in Int32(rng.next() % UInt64(vocab)) }
        targets[1] = -1   // an ignored position
        return (tokens, targets)
    }

    /// The whole model's analytic gradients against central differences of the loss, for
    /// a sample of every trainable tensor: full fine-tuning (tied and untied), LoRA and
    /// QLoRA (double quantisation) on every Linear (with B made non-zero so that A's gradient
    /// is not trivially zero), Houlsby and Pfeiffer bottleneck adapters, and prefix tuning
    /// through its reparameterisation MLP.
    @Test(arguments: ["full", "full-tied", "lora", "qlora", "houlsby", "pfeiffer", "prefix-mlp"])
    func wholeModelGradients(_ variant: String) {
        var c = Self.micro
        c.tied = variant == "full-tied"
        let method: EngineMethod
        switch variant {
        case "lora": method = .lora(rank: 3, alpha: 6, targets: Set(BlockLinear.allCases))
        case "qlora": method = .qlora(rank: 3, alpha: 6, targets: Set(BlockLinear.allCases), doubleQuant: true)
        case "houlsby": method = .adapter(houlsby: true, reduction: 4)
        case "pfeiffer": method = .adapter(houlsby: false, reduction: 2)
        case "prefix-mlp": method = .prefix(tokens: 3, projection: 12)
        default: method = .full
        }
        let t = Trainer(config: c, method: method, optimizer: .sgd(lr: 0, momentum: 0), maxSeq: 8, seed: 3)
        var rng = SeededRandom(state: 11)
        // LoRA's B starts at zero and adapters at ±0.03: values of order 0.3 make every
        // gradient informative
        for (name, v) in t.params.views.sorted(by: { $0.key < $1.key }) where name.hasSuffix("lora_B") || name.contains("adapter") {
            let p = t.params.pointer(name)
            for i in 0..<v.view.count { p[i] = rng.float() * 0.3 }
        }
        let (b, s) = (2, 5)
        let data = Self.batch(5, b: b, s: s, vocab: c.vocab)
        t.forwardBackward(tokens: data.tokens, targets: data.targets, batch: b, seq: s)
        // every analytic gradient first: the finite differences below run more backwards
        var grads: [String: [Float]] = [:]
        for (name, v) in t.params.views where v.trainable {
            let g = t.gradient(name)!
            grads[name] = (0..<v.view.count).map { g[$0] }
        }
        var checked = 0, atKinks = 0
        // The adapters' ReLU has a kink: a central difference whose ±eps straddles one (some
        // token's pre-activation crossing zero) does not estimate the derivative. Such a
        // point shows as a central difference that changes with the step; for the adapters it
        // is counted and skipped, for every other variant (smooth) it fails.
        let hasKinks = ["houlsby", "pfeiffer"].contains(variant)
        for (name, v) in t.params.views.sorted(by: { $0.key < $1.key }) where v.trainable {
            let analytic = grads[name]!
            let p = t.params.pointer(name)
            for _ in 0..<4 {
                let i = Int(rng.next() % UInt64(v.view.count))
                let keep = p[i]
                func central(_ eps: Float) -> Double {
                    // forward only matters here; the accumulated gradients are not read again
                    p[i] = keep + eps; let up = Double(t.forwardBackward(tokens: data.tokens, targets: data.targets, batch: b, seq: s))
                    p[i] = keep - eps; let down = Double(t.forwardBackward(tokens: data.tokens, targets: data.targets, batch: b, seq: s))
                    p[i] = keep
                    return (up - down) / Double(2 * eps)
                }
                let numeric = central(1e-2)
                let a = Double(analytic[i])
                let tolerance = 2e-2 * abs(a) + 2e-4
                if hasKinks && abs(numeric - a) > tolerance && abs(central(2.5e-3) - numeric) > tolerance {
                    atKinks += 1
                    continue
                }
                #expect(abs(numeric - a) <= tolerance, "\(variant) \(name)[\(i)]: analytic \(a), numeric \(numeric)")
                checked += 1
            }
        }
        #expect(atKinks * 8 <= checked, "\(variant): \(atKinks) points at ReLU kinks of \(checked + atKinks)")
        #expect(checked >= (["lora", "qlora"].contains(variant) ? 56 : 20))
    }

    /// Byte-level tokens of a text the repository ships (its README): training lowers the
    /// loss with each method.
    @Test(arguments: ["full", "lora", "qlora", "ia3", "prompt", "prefix", "prefix-mlp", "pfeiffer", "houlsby"])
    func lossFallsOnText(_ variant: String) throws {
        let text = try Data(contentsOf: repoRoot.appendingPathComponent("README.md"))
        let bytes = Array(text.prefix(4096)).map { Int32($0) }
        let c = EngineConfig(dim: 64, layers: 2, heads: 4, kvHeads: 2, hidden: 128, vocab: 256, tied: false)
        let method: EngineMethod
        switch variant {
        case "lora": method = .lora(rank: 8, alpha: 16, targets: Set(BlockLinear.allCases))
        case "ia3": method = .ia3(targets: Set(BlockLinear.allCases), feedforward: [.w2])
        case "prompt": method = .prompt(tokens: 8)
        case "qlora": method = .qlora(rank: 8, alpha: 16, targets: Set(BlockLinear.allCases), doubleQuant: true)
        case "prefix": method = .prefix(tokens: 8)
        case "prefix-mlp": method = .prefix(tokens: 8, projection: 64)
        case "pfeiffer": method = .adapter(houlsby: false, reduction: 4)
        case "houlsby": method = .adapter(houlsby: true, reduction: 8)
        default: method = .full
        }
        let t = Trainer(config: c, method: method, optimizer: .adamw(lr: variant == "full" ? 3e-3 : 1e-2), maxSeq: 32, seed: 7)
        let (b, s) = (4, 32)
        var losses: [Float] = []
        for step in 0..<40 {
            var tokens: [Int32] = [], targets: [Int32] = []
            for row in 0..<b {
                let start = ((step * b + row) * 97) % (bytes.count - s - 1)
                tokens += bytes[start..<start + s]
                targets += bytes[start + 1..<start + s + 1]
            }
            losses.append(t.step(tokens: tokens, targets: targets, batch: b, seq: s))
        }
        let first = losses.prefix(3).reduce(0, +) / 3, last = losses.suffix(5).reduce(0, +) / 5
        #expect(abs(first - log(256)) < 0.3, "an untrained model predicts about uniformly: \(first)")
        // The PEFT methods adapt a random base through few parameters (embeddings and
        // lm_head frozen), so they learn far less in 40 steps than full fine-tuning.
        print("engine loss on README bytes, \(variant): \(first) → \(last)")
        #expect(last < first - (variant == "full" ? 1.0 : 0.05), "\(variant): loss \(first) → \(last)")
        #expect(losses.allSatisfy { $0.isFinite })
    }

    /// Checkpointing recomputes each block's forward in backward: the same gradients, bit for
    /// bit (the same arithmetic in the same order), and a lower activation peak.
    @Test(arguments: ["full", "lora", "qlora", "houlsby", "prefix-mlp"])
    func checkpointingGivesTheSameGradients(_ variant: String) {
        let c = EngineConfig(dim: 32, layers: 3, heads: 4, kvHeads: 2, hidden: 48, vocab: 50, tied: false)
        let method: EngineMethod
        switch variant {
        case "lora": method = .lora(rank: 4, alpha: 8, targets: [.wq, .wv, .w2])
        case "qlora": method = .qlora(rank: 4, alpha: 8, targets: [.wq, .wv, .w2], doubleQuant: false)
        case "houlsby": method = .adapter(houlsby: true, reduction: 4)
        case "prefix-mlp": method = .prefix(tokens: 4, projection: 16)
        default: method = .full
        }
        let plain = Trainer(config: c, method: method, optimizer: .sgd(lr: 0, momentum: 0), maxSeq: 16, seed: 2)
        let ckpt = Trainer(config: c, method: method, optimizer: .sgd(lr: 0, momentum: 0), maxSeq: 16, seed: 2, checkpointing: true)
        let data = Self.batch(3, b: 2, s: 16, vocab: c.vocab)
        let l1 = plain.forwardBackward(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
        let l2 = ckpt.forwardBackward(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
        #expect(l1 == l2)
        let g1 = plain.gradients!, g2 = ckpt.gradients!
        #expect((0..<g1.count).allSatisfy { g1[$0] == g2[$0] })
        #expect((ckpt.ledger.peak[.activations] ?? 0) < (plain.ledger.peak[.activations] ?? 0))
    }

    /// The ledger's persistent bytes are the parameter counts of the architecture (written
    /// out here from the Llama shapes, not read from the engine) × 4 bytes.
    @Test func ledgerHoldsTheParameterBytes() {
        let c = EngineConfig.tiny
        let perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * c.dim * c.kvDim + 3 * c.dim * c.hidden
        let total = c.vocab * c.dim * 2 + c.layers * perLayer + c.dim
        let full = Trainer(config: c, method: .full, optimizer: .adamw(lr: 1e-3), maxSeq: 16)
        let data = Self.batch(1, b: 2, s: 16, vocab: c.vocab)
        full.step(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
        #expect(full.ledger.live[.trainableWeights] == total * 4)
        #expect(full.ledger.live[.frozenWeights] == 0)
        #expect(full.ledger.live[.gradients] == total * 4)
        #expect(full.ledger.live[.optimizerStates] == 2 * total * 4)
        #expect(full.ledger.live[.activations] == 0 && full.ledger.live[.activationGradients] == 0)
        // The first step creates AdamW's states in its optimizer phase (as torch does); from
        // the second on, backward (states, gradients and activations alive) is the peak.
        full.ledger.resetPeaks()
        full.step(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
        #expect((full.ledger.phasePeak[.backward] ?? 0) > (full.ledger.phasePeak[.optimizer] ?? 0))

        // LoRA r=8 on wq, wv: r·(in + out) per module (PEFT src/peft/tuners/lora/layer.py), base frozen.
        let lora = Trainer(config: c, method: .lora(rank: 8, alpha: 16, targets: [.wq, .wv]), optimizer: .adamw(lr: 1e-3), maxSeq: 16)
        lora.step(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
        let adapters = c.layers * (8 * (c.dim + c.dim) + 8 * (c.dim + c.kvDim))
        #expect(lora.ledger.live[.frozenWeights] == total * 4)
        #expect(lora.ledger.live[.trainableWeights] == adapters * 4)
        #expect(lora.ledger.live[.optimizerStates] == 2 * adapters * 4)

        // QLoRA: the block Linears in NF4 — half a byte per value, an fp32 absmax per 64, or
        // with double quantisation a byte per 64, an fp32 scale per 256 of those and one fp32
        // offset (bitsandbytes/functional.py quantize_4bit, compress_statistics); embeddings, norms and lm_head stay fp32.
        let linears = [c.dim * c.dim, c.kvDim * c.dim, c.kvDim * c.dim, c.dim * c.dim, c.hidden * c.dim, c.dim * c.hidden, c.hidden * c.dim]
        for dq in [false, true] {
            let q = Trainer(config: c, method: .qlora(rank: 8, alpha: 16, targets: [.wq, .wv], doubleQuant: dq), optimizer: .adamw(lr: 1e-3), maxSeq: 16)
            q.step(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
            let nf4 = c.layers * linears.map { n in
                let blocks = (n + 63) / 64
                return n / 2 + (dq ? blocks + 4 * ((blocks + 255) / 256) + 4 : 4 * blocks)
            }.reduce(0, +)
            let fp32 = (c.vocab * c.dim * 2 + c.dim + 2 * c.layers * c.dim) * 4
            #expect(q.ledger.live[.frozenWeights] == fp32 + nf4, "double quantisation \(dq)")
            #expect(q.ledger.live[.trainableWeights] == adapters * 4)
            // between steps the only workspace is RoPE's cos and sin tables (16 positions × 32)
            #expect(q.ledger.live[.transient] == 2 * 16 * (c.headDim / 2) * 4, "dequantised copies are freed after each matmul")
        }

        // Bottleneck adapters: 2·h·m + m + h per adapter with m = h / reduction; Pfeiffer one
        // per layer, Houlsby two (AdapterHub seq_bn / double_seq_bn; Houlsby et al. 2019).
        for houlsby in [false, true] {
            let a = Trainer(config: c, method: .adapter(houlsby: houlsby, reduction: 16), optimizer: .adamw(lr: 1e-3), maxSeq: 16)
            a.step(tokens: data.tokens, targets: data.targets, batch: 2, seq: 16)
            let m = c.dim / 16
            let count = c.layers * (houlsby ? 2 : 1) * (2 * c.dim * m + m + c.dim)
            #expect(a.ledger.live[.trainableWeights] == count * 4)
            #expect(a.ledger.live[.frozenWeights] == total * 4)
        }
    }
}
