import ArgumentParser
import Foundation
import PEFTCalibration
import PEFTEngine
import PEFTPlan

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Real training bursts, measured against the prediction per memory component.",
        discussion: """
            --backend engine runs a matrix of bursts on the built-in CPU engine (every method × \
            micro-batch 1 and 4 × sequence 64 and 128 × checkpointing off and on; --quick: one \
            small shape) and sets the engine-cpu model's prediction beside the engine ledger's \
            measurement, category by category, with the phase that set each peak.
            """)

    @Option(help: "engine (the built-in CPU trainer). The PyTorch backend is not built yet.") var backend: String = "engine"
    @Option(help: "Model: tiny (default), or a Llama-type preset or config.json the engine can hold.") var model: String = "tiny"
    @Option(parsing: .unconditional, help: "Measured steps per burst, after one warm-up step (default 2).") var steps: String?
    @Flag(help: "One small shape (2 × 32 tokens) instead of four: a check in seconds.") var quick = false
    @Option(help: "table|json") var format: String = "table"

    func run() throws {
        guard backend == "engine" else {
            throw PlanError.invalidOption(option: "--backend", value: backend, accepted: "engine (the PyTorch backend is not built yet)")
        }
        guard ["table", "json"].contains(format) else { throw PlanError.invalidOption(option: "--format", value: format, accepted: "table or json") }
        let n = try PlanningOptions.integer(steps, "--steps", default: 2)
        guard (1...1000).contains(n) else { throw PlanError.invalidOption(option: "--steps", value: "\(n)", accepted: "an integer from 1 to 1000") }
        let config = try EngineModels.config(model)
        let bursts = EngineCalibration.matrix(config: config, quick: quick)
        for b in bursts {
            let need = EngineBench.estimatedPeakBytes(config: config, method: b.method, batch: b.batch, seq: b.seq)
            guard need <= Double(ProcessInfo.processInfo.physicalMemory) * 0.7 else {
                throw PlanError.invalidOption(option: "--model", value: model, accepted: "a model this machine can train: \(b.name) needs about \(PlanOutput.gib(Int(need)))")
            }
        }
        let progress = Progress(total: bursts.count)
        var results: [EngineComparison] = []
        for b in bursts {
            progress.show(results.count, b.name)
            results.append(EngineCalibration.run(b, config: config, steps: n))
        }
        progress.done()
        PeftPlan.emit(format == "json" ? Self.json(results, config: config) : Self.table(results, config: config))
    }

    /// Progress on stderr: a redrawn line on a terminal, plain lines otherwise.
    struct Progress {
        let total: Int
        let terminal = isatty(2) != 0
        func show(_ done: Int, _ name: String) {
            let line = "burst \(done + 1)/\(total): \(name)"
            FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        func done() { if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
    }

    static func summary(_ results: [EngineComparison]) -> (worst: Double, worstBurst: String, exact: Int) {
        var worst = 0.0, name = ""
        for r in results {
            let e = abs(r.error("allocated_peak") ?? .infinity)
            if e >= worst { worst = e; name = r.burst.name }
        }
        return (worst, name, results.filter(\.exact).count)
    }

    static func table(_ results: [EngineComparison], config c: EngineConfig) -> String {
        var out = "calibration: engine backend, engine-cpu model; dim \(c.dim), \(c.layers) layers, \(c.heads) heads (\(c.kvHeads) KV), "
        out += "intermediate \(c.hidden), vocab \(c.vocab); fp32, AdamW; one warm-up step, then the measured ones\n"
        if let e = results.first?.record.environment {
            out += "environment: OpenBLAS core \(e.blasCore), \(e.threads) BLAS threads, \(e.engineThreads) engine threads, \(e.cores) cores\n"
        }
        for r in results {
            out += "\n\(r.burst.name): peak phase predicted \(r.predictedPeakPhase), measured \(r.measuredPeakPhase); \(String(format: "%.0f", r.record.tokensPerSecond)) tokens/s\n"
            out += "  component               predicted        measured     error\n"
            for k in engineComponents {
                let p = r.predicted[k] ?? 0, m = r.measured[k] ?? 0
                guard p != 0 || m != 0 else { continue }
                let err = r.error(k).map { String(format: "%+.3f%%", $0 * 100) } ?? "n/a"
                out += "  " + k.padding(toLength: 20, withPad: " ", startingAt: 0)
                    + String(repeating: " ", count: max(0, 12 - "\(p)".count)) + "\(p)"
                    + String(repeating: " ", count: max(0, 16 - "\(m)".count)) + "\(m)"
                    + String(repeating: " ", count: max(0, 10 - err.count)) + err + "\n"
            }
        }
        let s = summary(results)
        let worst = s.worst == 0 ? "0 (every burst)" : String(format: "%.3f%% (%@)", s.worst * 100, s.worstBurst)
        out += "\nsummary: \(results.count) bursts; largest relative error of the peak \(worst); every component exact and the same peak phase in \(s.exact) of \(results.count)\n"
        return out
    }

    static func json(_ results: [EngineComparison], config c: EngineConfig) -> String {
        func bytes(_ d: [String: Int]) -> JSONValue { .object(engineComponents.map { ($0, .int(d[$0] ?? 0)) }) }
        let runs: [JSONValue] = results.map { r in
            .object([
                ("method", .string(r.burst.method.name)), ("label", .string(r.burst.label)), ("batch", .int(r.burst.batch)),
                ("seq", .int(r.burst.seq)), ("grad_checkpointing", .bool(r.burst.checkpointing)),
                ("predicted", bytes(r.predicted)), ("measured", bytes(r.measured)),
                ("error", .object(engineComponents.map { k in (k, r.error(k).map(JSONValue.double) ?? .null) })),
                ("peak_phase", .object([("predicted", .string(r.predictedPeakPhase)), ("measured", .string(r.measuredPeakPhase))])),
                ("phase_peaks", .object(r.record.phasePeaks.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("tokens_per_second", .double(r.record.tokensPerSecond)), ("step_ms_median", .double(r.record.stepMillisecondsMedian)),
            ])
        }
        let e = results.first?.record.environment
        let s = summary(results)
        return JSONValue.object([
            ("backend", .string("engine")), ("runtime", .string("engine-cpu")),
            ("environment", .object([("device", .string("cpu")), ("blas_core", .string(e?.blasCore ?? "")), ("threads", .int(e?.threads ?? 0)),
                                     ("engine_threads", .int(e?.engineThreads ?? 0)), ("cores", .int(e?.cores ?? 0))])),
            ("config", .object([("dim", .int(c.dim)), ("layers", .int(c.layers)), ("heads", .int(c.heads)), ("kv_heads", .int(c.kvHeads)),
                                ("hidden", .int(c.hidden)), ("vocab", .int(c.vocab)), ("tied", .bool(c.tied)),
                                ("precision", .string("fp32")), ("optimizer", .string("adamw"))])),
            ("runs", .array(runs)),
            ("summary", .object([("bursts", .int(results.count)), ("largest_peak_error", .double(s.worst)),
                                 ("largest_peak_error_burst", .string(s.worstBurst)), ("exact_bursts", .int(s.exact))])),
        ]).render() + "\n"
    }
}
