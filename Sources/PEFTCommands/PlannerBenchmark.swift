import Foundation
import PEFTPlan

/// How fast the memory model evaluates plans: a sweep over methods × micro-batches ×
/// sequence lengths × GPU profiles on one thread, each plan a full memory evaluation
/// (every component and phase, evaluated afresh for each plan) plus its fit verdict. Contexts (the parameter accounting
/// and the symbolic forward, once per method) are built outside the timed sweep and
/// timed on their own.
public enum PlannerBenchmark {
    public struct Result: Sendable {
        public var model: String
        public var plansPerRound: Int
        public var rounds: Int
        /// Plans per second of each round.
        public var rates: [Double]
        public var contextsPerSecond: Double
        public var median: Double { rates.sorted()[rates.count / 2] }
        /// A checksum of the sweep's results, so the work cannot be optimised away.
        public var fits: Int
    }

    public static let batches = [1, 2, 4, 8, 16, 32, 64]
    public static let seqs = [256, 512, 1024, 2048, 4096, 8192, 16384]

    public static func run(model: String, rounds: Int) throws -> Result {
        let arch = try Presets.resolve(model)
        let gpus = try HardwareCatalog.bundled()
        var o = MethodOptions()
        if arch.family.spec.loraTargets == nil && arch.family.spec.loraTargetPattern == nil { o.loraTargets = .allLinear }
        let methods = Method.standard.filter { (try? ParameterAccounting.account(arch, method: $0, options: o)) != nil }

        let clock = ContinuousClock()
        var contexts: [PlanContext] = []
        let start = clock.now
        for _ in 0..<5 {
            contexts = try methods.map { try PlanContext(arch: arch, method: $0, methodOptions: o, training: TrainingOptions()) }
        }
        let ctxSeconds = seconds(clock.now - start)

        var rates: [Double] = []
        var fits = 0
        let perRound = contexts.count * batches.count * seqs.count * gpus.count
        for _ in 0..<rounds {
            let t0 = clock.now
            for ctx in contexts {
                for b in batches {
                    for s in seqs {
                        for g in gpus {
                            // each plan evaluates its own memory: nothing is shared between GPUs
                            let m = ctx.memory(batch: b, seq: s)
                            if m.deviceTotal <= g.usableMemoryBytes { fits += 1 }
                        }
                    }
                }
            }
            rates.append(Double(perRound) / seconds(clock.now - t0))
        }
        return Result(model: arch.name, plansPerRound: perRound, rounds: rounds, rates: rates,
                      contextsPerSecond: Double(5 * contexts.count) / ctxSeconds, fits: fits)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// How fast the cheapest-plan search sweeps configurations: every bundled GPU profile ×
/// methods × 1–64 GPUs × sharding × offload × micro-batch × checkpointing, each fitting
/// candidate with its time and cost, on one thread. Plan contexts are built inside the
/// timed search, as a user's `--cheapest` builds them.
public enum SearchBenchmark {
    public struct Result: Sendable {
        public var model: String
        public var configurations: Int
        public var fitting: Int
        public var seconds: [Double]
        public var medianSeconds: Double { seconds.sorted()[seconds.count / 2] }
        public var perSecond: Double { Double(configurations) / medianSeconds }
    }

    public static func run(model: String, rounds: Int, globalBatch: Int = 256) throws -> Result {
        let arch = try Presets.resolve(model)
        var o = MethodOptions()
        if arch.family.spec.loraTargets == nil && arch.family.spec.loraTargetPattern == nil { o.loraTargets = .allLinear }
        let methods = Method.standard.filter { (try? ParameterAccounting.account(arch, method: $0, options: o)) != nil }
        let request = PlanRequest(arch: arch, methods: methods, methodsFromAll: true, methodOptions: o,
                                  gpus: try HardwareCatalog.bundled())
        var space = SearchSpace()
        space.globalBatch = globalBatch
        space.maxMicroBatch = 256
        var times: [Double] = []
        var evaluated = 0, fitting = 0
        for _ in 0..<rounds {
            evaluated = 0; fitting = 0
            let clock = ContinuousClock()
            let t0 = clock.now
            // Two sequence lengths: the model's default and half of it.
            for seq in seqs(arch) {
                var r = request
                r.training.seq = seq
                let found = try Search.run(r, space: space)
                evaluated += found.evaluated
                fitting += found.fitting
            }
            times.append(PlannerBenchmark.seconds(clock.now - t0))
        }
        return Result(model: arch.name, configurations: evaluated, fitting: fitting, seconds: times)
    }

    public static func seqs(_ arch: Architecture) -> [Int] {
        let s = Planner.defaultSeq(arch)
        return [s / 2, s]
    }
}
