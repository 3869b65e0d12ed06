import Foundation

/// What `peft-plan bench` measures: a few real training steps of one configuration, timed
/// step by step, with the share of time spent in GEMM, the GEMM rate, and the ledger's
/// peak bytes (docs/CONTRACT.md, "bench --format json").
public struct BenchResult: Sendable {
    public var config: EngineConfig
    public var method: String
    public var batch: Int, seq: Int, steps: Int
    public var checkpointing = false
    public var stepMilliseconds: [Double]
    public var gemmShare: Double
    public var gemmGFLOPs: Double
    public var peakBytes: Int
    public var peakByCategory: [MemoryCategory: Int]
    public var phasePeaks: [EnginePhase: Int]
    public var losses: [Float]
    public var blasCore: String
    public var threads: Int
    /// Seconds per timed step spent in forward, backward and the optimizer step.
    public var phaseSeconds: [EnginePhase: Double] = [:]
    /// The whole process's peak resident set (libraries, code and the ledger's bytes).
    public var peakResidentBytes = 0

    public var stepMillisecondsMedian: Double { stepMilliseconds.sorted()[stepMilliseconds.count / 2] }
    public var tokensPerSecond: Double { Double(batch * seq) / (stepMillisecondsMedian / 1000) }
}

public enum EngineBench {
    /// Runs `steps` training steps after one warm-up step (not timed: it allocates the
    /// gradients and optimizer states). Tokens are seeded random ids.
    public static func run(config: EngineConfig, method: EngineMethod, batch: Int, seq: Int, steps: Int,
                           optimizer: EngineOptimizer = .adamw(lr: 1e-3), checkpointing: Bool = false) -> BenchResult {
        let t = Trainer(config: config, method: method, optimizer: optimizer, maxSeq: seq, seed: 1, checkpointing: checkpointing)
        var state: UInt64 = 42
        func token() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32((state >> 33) % UInt64(config.vocab))
        }
        func data() -> ([Int32], [Int32]) {
            let tokens = (0..<batch * seq).map { _ in token() }
            let targets = (0..<batch * seq).map { _ in token() }
            return (tokens, targets)
        }
        var losses: [Float] = []
        let (w0, w1) = data()
        losses.append(t.step(tokens: w0, targets: w1, batch: batch, seq: seq))
        t.ledger.resetPeaks()
        GEMMStats.reset()
        let before = t.phaseSeconds
        var times: [Double] = []
        var total = 0.0
        for _ in 0..<steps {
            let (x, y) = data()
            let start = DispatchTime.now().uptimeNanoseconds
            losses.append(t.step(tokens: x, targets: y, batch: batch, seq: seq))
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            times.append(ms)
            total += ms / 1000
        }
        var perStep: [EnginePhase: Double] = [:]
        for (p, v) in t.phaseSeconds { perStep[p] = (v - (before[p] ?? 0)) / Double(max(1, steps)) }
        let gemm = GEMMStats.snapshot()
        var result = BenchResult(config: config, method: method.name, batch: batch, seq: seq, steps: steps, stepMilliseconds: times,
                           gemmShare: total > 0 ? gemm.seconds / total : 0,
                           gemmGFLOPs: gemm.seconds > 0 ? gemm.flops / gemm.seconds / 1e9 : 0,
                           peakBytes: t.ledger.peakTotal, peakByCategory: t.ledger.peak, phasePeaks: t.ledger.phasePeak,
                           losses: losses, blasCore: BLASInfo.coreName, threads: BLASInfo.threads)
        result.phaseSeconds = perStep
        result.checkpointing = checkpointing
        result.peakResidentBytes = ProcessMemory.peakResidentBytes
        return result
    }
}

/// One burst as calibration consumes it (PEFTCalibration/README.md): the configuration, the measured
/// bytes of each memory category at their peaks, the peak of the total and the phase that
/// set it, every phase's peak, the speed, and the environment it ran in.
public struct BurstRecord: Codable, Equatable, Sendable {
    public struct Environment: Codable, Equatable, Sendable {
        public var backend = "engine"
        public var device = "cpu"
        public var blasCore: String
        public var threads: Int
        public var cores: Int
        /// The engine's own worker threads (attention and elementwise loops).
        public var engineThreads: Int
    }
    public var method: String
    public var batch: Int
    public var seq: Int
    public var steps: Int
    public var gradCheckpointing: Bool
    /// Peak bytes per category (``MemoryCategory`` raw values) and "allocated_peak".
    public var measured: [String: Int]
    public var peakPhase: String
    public var phasePeaks: [String: Int]
    public var tokensPerSecond: Double
    public var stepMillisecondsMedian: Double
    public var environment: Environment

    public init(_ r: BenchResult) {
        method = r.method
        gradCheckpointing = r.checkpointing
        batch = r.batch
        seq = r.seq
        steps = r.steps
        var m: [String: Int] = [:]
        for c in MemoryCategory.allCases { m[c.rawValue] = r.peakByCategory[c] ?? 0 }
        m["allocated_peak"] = r.peakBytes
        measured = m
        let top = EnginePhase.allCases.max { (r.phasePeaks[$0] ?? 0) < (r.phasePeaks[$1] ?? 0) } ?? .forward
        peakPhase = top.rawValue
        phasePeaks = Dictionary(uniqueKeysWithValues: r.phasePeaks.map { ($0.key.rawValue, $0.value) })
        tokensPerSecond = r.tokensPerSecond
        stepMillisecondsMedian = r.stepMillisecondsMedian
        environment = Environment(blasCore: r.blasCore, threads: r.threads, cores: ProcessInfo.processInfo.activeProcessorCount,
                                  engineThreads: EngineThreads.count)
    }

    /// The record as JSON with sorted keys and snake_case names, as calibration reads it.
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}

extension EngineBench {
    /// An upper estimate of what a step allocates (weights, gradients and AdamW states in
    /// fp32, every layer's saved tensors including the s² attention probabilities, the
    /// logits, their softmax and gradient), so `bench` can refuse a configuration the machine
    /// cannot hold instead of dying in the allocator.
    public static func estimatedPeakBytes(config c: EngineConfig, method: EngineMethod, batch b: Int, seq s0: Int) -> Double {
        let s = Double(s0 + method.virtualTokens), kv = s + Double(method.prefixTokens)
        let n = Double(b) * s
        let perLayerParams = Double(2 * c.dim + 2 * c.dim * c.dim + 2 * c.dim * c.kvDim + 3 * c.dim * c.hidden)
        let params = Double(c.layers) * perLayerParams + Double(c.vocab * c.dim * (c.tied ? 1 : 2) + c.dim)
        let trainableFactor = method == .full ? 3.0 : 0.1   // gradients + two AdamW states
        let perLayer = n * Double(6 * c.dim + 2 * c.kvDim + 3 * c.hidden + 2) + Double(b * c.heads) * s * kv
        let logits = n * Double(c.vocab) * 3
        return 4 * (params * (1 + trainableFactor) + Double(c.layers) * perLayer + logits + n * Double(4 * c.hidden))
    }
}
