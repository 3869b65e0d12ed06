import Foundation

/// The `engine-cpu` runtime: what peft-plan's own CPU engine allocates, by category and
/// phase, predicted from the configuration and the method alone, without running it.
///
/// The engine is fp32 throughout and frees every step buffer at a fixed point of its
/// schedule, so its memory is a sequence of allocations and frees that this model replays.
/// The sizes of the parameters, of a block's saved tensors and of NF4 storage come from the
/// tables the trainer allocates from (``EngineSizes``); what is replayed is the schedule:
/// persistent state (weights — NF4 under QLoRA —, gradients, AdamW's two states, RoPE
/// tables), then per step the forward (each block's
/// saved tensors, the method's additions, QLoRA's dequantised weight per matmul), the
/// logits and their softmax, and the backward (activation gradients, attention workspace,
/// one block's saved tensors freed after its backward). `calibrate --backend engine`
/// compares the replay with the engine's ledger: the goal is every category exact.
public enum EngineMemoryModel {
    /// Predicted peak bytes per category, the peak of the total, and each phase's peak.
    public struct Prediction: Equatable, Sendable {
        public var peak: [MemoryCategory: Int] = [:]
        public var allocatedPeak = 0
        public var phasePeaks: [EnginePhase: Int] = [:]
        /// The phase whose peak is the largest (as the engine's burst record names it).
        public var peakPhase: EnginePhase {
            EnginePhase.allCases.max { (phasePeaks[$0] ?? 0) < (phasePeaks[$1] ?? 0) } ?? .forward
        }
    }

    /// Trainable values and frozen bytes of the engine's parameter store, from the size
    /// table the trainer allocates from (fp32, or NF4 in ``NF4/Layout``'s bytes).
    static func parameters(_ c: EngineConfig, _ m: EngineMethod) -> (trainable: Int, frozenBytes: Int) {
        var trainable = 0, frozen = 0
        for p in EngineSizes.parameters(c, m) {
            switch p.kind {
            case .trainable: trainable += p.count
            case .frozen: frozen += 4 * p.count
            case .nf4:
                guard case let .qlora(_, _, _, dq) = m else { continue }
                frozen += NF4.Layout(count: p.count, doubleQuant: dq).bytes
            }
        }
        return (trainable, frozen)
    }

    /// A replay of allocations and frees with the engine ledger's bookkeeping.
    struct Replay {
        var live: [MemoryCategory: Int] = [:], peak: [MemoryCategory: Int] = [:]
        var total = 0, peakTotal = 0
        var step = EnginePhase.setup
        var phasePeaks: [EnginePhase: Int] = [:]

        mutating func enter(_ s: EnginePhase) { step = s; note() }
        mutating func alloc(_ c: MemoryCategory, _ floats: Int) -> (MemoryCategory, Int) { allocBytes(c, 4 * floats) }
        mutating func allocBytes(_ c: MemoryCategory, _ bytes: Int) -> (MemoryCategory, Int) {
            live[c, default: 0] += bytes
            total += bytes
            peak[c] = max(peak[c, default: 0], live[c]!)
            peakTotal = max(peakTotal, total)
            note()
            return (c, bytes)
        }
        mutating func free(_ b: (MemoryCategory, Int)) { live[b.0, default: 0] -= b.1; total -= b.1 }
        mutating func free(_ bs: [(MemoryCategory, Int)]) { for b in bs { free(b) } }
        mutating func note() { if total > phasePeaks[step, default: -1] { phasePeaks[step] = total } }
        /// After the warm-up step the bench forgets every peak: the next step counts alone.
        mutating func resetPeaks() { peak = live; peakTotal = total; phasePeaks = [:]; note() }
    }

    /// One measured training step after a warm-up step (what `peft-plan bench` and a
    /// calibration burst measure), with AdamW, `batch` × `seq` tokens, a trainer built for
    /// sequences of exactly `seq` (its RoPE tables' length); `workers`: the engine's threads
    /// (attention's backward keeps one workspace per worker).
    public static func predict(_ c: EngineConfig, method m: EngineMethod, batch b: Int, seq sIn: Int, checkpointing: Bool, workers: Int) -> Prediction {
        var r = Replay()
        let (trainable, frozenBytes) = parameters(c, m)
        var vt = 0, pt = 0, projection = 0
        if case let .prompt(t) = m { vt = t }
        if case let .prefix(t, p) = m { pt = t; projection = p }
        let s = sIn + vt, n = b * s, kvs = s + pt, kv = c.kvDim, d = c.dim, h = c.hidden
        let prefixWidth = c.layers * 2 * kv
        // persistent: parameters, RoPE tables (both cos and sin), gradients, AdamW's states
        _ = r.allocBytes(.frozenWeights, frozenBytes)
        _ = r.alloc(.trainableWeights, trainable)
        _ = r.alloc(.transient, 2 * EngineSizes.ropeTable(c, maxSeq: sIn, method: m))
        _ = r.alloc(.gradients, trainable)
        _ = r.alloc(.optimizerStates, 2 * trainable)
        r.resetPeaks()

        var loraRank = 0, loraTargets: Set<BlockLinear> = [], quantised = false, ia3: (Set<BlockLinear>, Set<BlockLinear>)?
        switch m {
        case let .lora(rank, _, t): loraRank = rank; loraTargets = t
        case let .qlora(rank, _, t, _): loraRank = rank; loraTargets = t; quantised = true
        case let .ia3(t, ff): ia3 = (t, ff)
        case .full, .adapter, .prompt, .prefix: break
        }
        var adapterWidth = 0, adapterSites: [String] = []
        if case let .adapter(houlsby, reduction) = m {
            adapterWidth = d / reduction
            adapterSites = houlsby ? ["attn", "ffn"] : ["ffn"]
        }

        /// The engine's `linear`: what one block Linear adds to the layer's saved set.
        func linear(_ name: BlockLinear, _ saved: inout [(MemoryCategory, Int)]) {
            let (o, i) = name.shape(c)
            if let (t, ff) = ia3, t.contains(name) {
                saved.append(r.alloc(.activations, n * (ff.contains(name) ? i : o)))
                return
            }
            if quantised { r.free(r.alloc(.transient, o * i)) }   // dequantised for this matmul
            if loraTargets.contains(name) { saved.append(r.alloc(.activations, n * loraRank)) }
        }
        /// The engine's `layerForward`: the saved set (without its input) and the output.
        func layerForward() -> (saved: [(MemoryCategory, Int)], out: (MemoryCategory, Int)) {
            var saved: [(MemoryCategory, Int)] = []
            for count in EngineSizes.BlockSaved(c, batch: b, seq: s, kvSeq: kvs).inOrder {
                saved.append(r.alloc(.activations, count))
            }
            linear(.wq, &saved)
            if pt == 0 {
                linear(.wk, &saved)
                linear(.wv, &saved)
            } else {
                let kr = r.alloc(.transient, n * kv), vr = r.alloc(.transient, n * kv)
                linear(.wk, &saved)
                linear(.wv, &saved)
                r.free([kr, vr])
            }
            linear(.wo, &saved)
            if adapterSites.contains("attn") { saved += [r.alloc(.activations, n * d), r.alloc(.activations, n * adapterWidth)] }
            linear(.w1, &saved)
            linear(.w3, &saved)
            let out = r.alloc(.activations, n * d)
            linear(.w2, &saved)
            if adapterSites.contains("ffn") { saved += [r.alloc(.activations, n * d), r.alloc(.activations, n * adapterWidth)] }
            return (saved, out)
        }
        /// The engine's `linearBack`: the transients of one block Linear's backward.
        func linearBack(_ name: BlockLinear) {
            let (o, i) = name.shape(c)
            if let (t, ff) = ia3, t.contains(name) {
                r.free(r.alloc(.activationGradients, n * (ff.contains(name) ? i : o)))
                return
            }
            if quantised { r.free(r.alloc(.transient, o * i)) }
            if loraTargets.contains(name) { r.free(r.alloc(.activationGradients, n * loraRank)) }
        }
        /// The engine's `adapterBackward`: the bottleneck's gradient and the input's, which the
        /// caller frees after the sublayer's Linear has used it.
        func adapterBackward() -> (MemoryCategory, Int) {
            let dz = r.alloc(.activationGradients, n * adapterWidth)
            let din = r.alloc(.activationGradients, n * d)
            r.free(dz)
            return din
        }

        // forward
        r.enter(.forward)
        let x0 = r.alloc(.activations, n * d)
        var prefixBuffers: [(MemoryCategory, Int)] = []
        if projection > 0 {
            prefixBuffers = [r.alloc(.activations, pt * projection), r.alloc(.activations, pt * prefixWidth),
                             r.alloc(.activationGradients, pt * prefixWidth)]
        }
        var saved: [[(MemoryCategory, Int)]] = [], inputs: [(MemoryCategory, Int)] = []
        var x = x0
        for _ in 0..<c.layers {
            let (sv, out) = layerForward()
            inputs.append(x)
            if checkpointing { r.free(sv) }
            saved.append(checkpointing ? [] : sv)
            x = out
        }
        let nf = r.alloc(.activations, n * d), rf = r.alloc(.activations, n)
        let logits = r.alloc(.logits, n * c.vocab)
        let probs = r.alloc(.logits, n * c.vocab)
        r.free(logits)

        // backward
        r.enter(.backward)
        let dlogits = r.alloc(.activationGradients, n * c.vocab)
        r.free(probs)
        let dnf = r.alloc(.activationGradients, n * d)
        r.free(dlogits)
        let dx = r.alloc(.activationGradients, n * d)
        r.free([dnf, nf, rf, x])
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            var sv = saved[l]
            if checkpointing {
                let (recomputed, out) = layerForward()
                r.free(out)
                sv = recomputed
            }
            let dh = r.alloc(.activationGradients, n * h)
            let dffn = adapterSites.contains("ffn") ? adapterBackward() : nil
            linearBack(.w2)
            if let dffn { r.free(dffn) }
            let dg = r.alloc(.activationGradients, n * h), du = r.alloc(.activationGradients, n * h)
            r.free(dh)
            let dn2 = r.alloc(.activationGradients, n * d)
            linearBack(.w1)
            linearBack(.w3)
            r.free([dg, du, dn2])
            let datt = r.alloc(.activationGradients, n * d)
            let dattn = adapterSites.contains("attn") ? adapterBackward() : nil
            linearBack(.wo)
            if let dattn { r.free(dattn) }
            let dq = r.alloc(.activationGradients, n * d)
            var dk = r.alloc(.activationGradients, b * kvs * kv), dv = r.alloc(.activationGradients, b * kvs * kv)
            let work = r.alloc(.transient, max(1, workers) * s * kvs)
            r.free([work, datt])
            if pt > 0 {
                let dkr = r.alloc(.activationGradients, n * kv), dvr = r.alloc(.activationGradients, n * kv)
                r.free([dk, dv])
                dk = dkr
                dv = dvr
            }
            let dn1 = r.alloc(.activationGradients, n * d)
            linearBack(.wq)
            linearBack(.wk)
            linearBack(.wv)
            r.free([dq, dk, dv, dn1])
            r.free(sv)
            r.free(inputs[l])
        }
        if projection > 0 {
            r.free(r.alloc(.activationGradients, pt * projection))
            r.free(prefixBuffers)
        }
        r.free(dx)
        r.enter(.optimizer)
        r.enter(.setup)

        var p = Prediction()
        for k in MemoryCategory.allCases { p.peak[k] = r.peak[k] ?? 0 }
        p.allocatedPeak = r.peakTotal
        p.phasePeaks = r.phasePeaks
        return p
    }
}
