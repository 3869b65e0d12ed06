import ArgumentParser
import Foundation
import PEFTCalibration
import PEFTEngine
import PEFTOutput
import PEFTPlan
import PEFTReport

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Real training bursts, measured against the prediction per memory component.",
        discussion: """
            --backend engine runs a matrix of bursts on the built-in CPU engine (every method × \
            micro-batch 1 and 4 × sequence 64 and 128 × checkpointing off and on; --quick: one \
            small shape) and sets the engine-cpu model's prediction beside the engine ledger's \
            measurement, category by category, with the phase that set each peak.

            --backend torch runs bursts on PyTorch + Transformers + PEFT through the bundled \
            torch_bursts.py ($PEFT_PLAN_PYTHON, else the .venv/ that scripts/setup.sh --test makes, else python3) on --device cpu, meta or cuda, and sets \
            the plan's prediction beside each: parameter, gradient and optimizer bytes and the \
            activations with logits everywhere (what autograd saved, off CUDA), and on CUDA the \
            allocated and reserved peaks. --emit-script DIR writes the script and its job for a \
            machine without Swift; --compare results.json reads such a run back (its job from \
            --job, or results.job.json or job.json beside it); --fit FILE then fits a calibration \
            profile for plan --runtime FILE.
            """)

    @Option(help: "engine (the built-in CPU trainer) or torch (PyTorch + Transformers + PEFT).") var backend: String = "engine"
    @Option(help: "Model: tiny (default), or a preset or config.json (Llama-type for the engine).") var model: String = "tiny"
    @Option(help: "torch backend: cpu (default), cuda or meta (no data: what autograd saves, instantly).") var device: String = "cpu"
    @Option(help: "torch backend: write torch_bursts.py, its helper and job.json into this folder instead of running.") var emitScript: String?
    @Option(help: "Read a torch_bursts.py results file and compare it with the plan.") var compare: String?
    @Option(help: "The job file of --compare (default: <results>.job.json or job.json beside it).") var job: String?
    @Option(help: "With --compare: fit the runtime's coefficients to the results and write a calibration profile here (use it with plan --runtime FILE).") var fit: String?
    @Option(help: "With --fit: the GPU profile the results ran on, for the MFU fit (such as \"H100 SXM\"; without it MFU is not fitted).") var gpu: String?
    @Option(parsing: .unconditional, help: "Measured steps per burst, after one warm-up step (default 2).") var steps: String?
    @Flag(help: "One small shape (2 × 32 tokens) instead of four: a check in seconds.") var quick = false
    @Option(help: "table|json") var format: String = "table"
    @Option(help: "Also write the comparison as a document: .pdf (parity plot, residuals per component, every burst), or one chart as .svg or .png.") var report: String?
    @Option(help: "With --report FILE.svg|.png: parity (default) or residuals.") var chart: String?
    @Option(help: "Engine backend: save the finished bursts here after each one, so that an interrupted run can go on (default calibration.progress.json in the current folder; removed when the run completes).") var progress: String?
    @Option(help: "Engine backend: go on from the progress file an interrupted run left, skipping its finished bursts (same --model, --quick and --steps).") var resume: String?
    @Option(help: "Refuse the run before it starts if any burst's predicted peak exceeds this many bytes (such as 2GB, 512MB, 1.5GiB).") var maxMemory: String?

    func run() throws {
        guard ["table", "json"].contains(format) else { throw PlanError.invalidOption(option: "--format", value: format, accepted: "table or json") }
        if let report {
            guard let f = CanvasFormat(path: report) else { throw PlanError.invalidOption(option: "--report", value: report, accepted: "a file ending in .pdf, .svg or .png") }
            if let chart {
                guard CalibrationReport.Chart(rawValue: chart.lowercased()) != nil else {
                    throw PlanError.invalidOption(option: "--chart", value: chart, accepted: "parity or residuals")
                }
                if f == .pdf { throw PlanError.contradictoryOptions("--chart picks one chart for an .svg or .png file; a PDF holds every chart") }
            }
            if fit != nil || emitScript != nil { throw PlanError.contradictoryOptions("--report goes with a calibration that compares (not with --fit or --emit-script)") }
        } else if chart != nil {
            throw PlanError.contradictoryOptions("--chart goes with --report")
        }
        if let compare {
            let ignored = [("--backend", backend != "engine"), ("--device", device != "cpu"), ("--emit-script", emitScript != nil),
                           ("--model", model != "tiny"), ("--steps", steps != nil), ("--quick", quick), ("--progress", progress != nil),
                           ("--resume", resume != nil), ("--max-memory", maxMemory != nil)].filter(\.1).map(\.0)
            if let first = ignored.first { throw PlanError.contradictoryOptions("\(first) does not apply to --compare (the results file says how they were run)") }
            return try compareFile(compare)
        }
        if compare == nil, progress != nil || resume != nil, backend != "engine" {
            throw PlanError.contradictoryOptions("--progress and --resume go with --backend engine")
        }
        if job != nil || fit != nil { throw PlanError.contradictoryOptions("--job and --fit go with --compare") }
        if gpu != nil { throw PlanError.contradictoryOptions("--gpu goes with --compare and --fit") }
        guard ["engine", "torch"].contains(backend) else {
            throw PlanError.invalidOption(option: "--backend", value: backend, accepted: "engine or torch")
        }
        let n = try PlanningOptions.integer(steps, "--steps", default: 2)
        guard (1...1000).contains(n) else { throw PlanError.invalidOption(option: "--steps", value: "\(n)", accepted: "an integer from 1 to 1000") }
        if backend == "torch" { return try runTorch(steps: n) }
        if emitScript != nil || device != "cpu" { throw PlanError.contradictoryOptions("--emit-script and --device go with --backend torch") }
        let config = try EngineModels.config(model)
        let bursts = EngineCalibration.matrix(config: config, quick: quick)
        if let limit = try Self.bytes(maxMemory, "--max-memory") {
            for b in bursts {
                let peak = EngineCalibration.predict(b, config: config, workers: EngineThreads.count).allocatedPeak
                guard peak <= limit else {
                    throw PlanError.contradictoryOptions("burst \(b.name) would peak at \(PlanOutput.gib(peak)) (engine-cpu model, exact), over --max-memory \(maxMemory!); nothing was run")
                }
            }
        }
        for b in bursts {
            let need = EngineBench.estimatedPeakBytes(config: config, method: b.method, batch: b.batch, seq: b.seq)
            guard need <= Double(ProcessInfo.processInfo.physicalMemory) * 0.7 else {
                throw PlanError.invalidOption(option: "--model", value: model, accepted: "a model this machine can train: \(b.name) needs about \(PlanOutput.gib(Int(need)))")
            }
        }
        let bar = Progress(total: bursts.count)
        let fingerprint = CalibrationProgress.fingerprint(config: config)
        var state = try resume.map { try CalibrationProgress.load($0, model: model, quick: quick, steps: n, fingerprint: fingerprint, bursts: bursts) }
            ?? CalibrationProgress(model: model, quick: quick, steps: n, fingerprint: fingerprint, done: [:])
        let progressPath = progress ?? resume ?? "calibration.progress.json"
        if resume == nil, FileManager.default.fileExists(atPath: progressPath) {
            throw PlanError.contradictoryOptions("\(progressPath) holds the finished bursts of an interrupted run: go on with --resume \(progressPath), or remove it to start again")
        }
        // outputs are checked before hours of bursts, not after
        if let report { try Self.writableFolder(report, "--report") }
        if progress != nil { try Self.writableFolder(progressPath, "--progress") }
        var saving = true
        if let resume { FileHandle.standardError.write(Data("resuming from \(resume): \(state.done.count) of \(bursts.count) bursts already done\n".utf8)) }
        Interrupt.install()
        defer { Interrupt.uninstall() }
        var results: [EngineComparison] = []
        for b in bursts {
            if let record = state.done[b.name] {
                results.append(EngineCalibration.compare(b, record: record, config: config))
                continue
            }
            bar.show(results.count, b.name)
            let r = EngineCalibration.run(b, config: config, steps: n)
            results.append(r)
            state.done[b.name] = r.record
            if saving {
                do { try state.save(to: progressPath) } catch {
                    // the default file is a convenience: a folder that cannot be written only loses resumability
                    if progress != nil || resume != nil { throw error }
                    FileHandle.standardError.write(Data("peft-plan: warning: cannot save progress in \(progressPath) (\(error)); an interrupted run will start again\n".utf8))
                    saving = false
                }
            }
            if Interrupt.wasRequested && results.count < bursts.count {
                bar.done()
                PeftPlan.fail("interrupted after \(state.done.count) of \(bursts.count) bursts; " + (saving
                    ? "the finished ones are saved in \(progressPath): run the same command with --resume \(progressPath) to go on"
                    : "they could not be saved (see the warning above): run the command again"), code: 130)
            }
        }
        bar.done()
        Interrupt.uninstall()
        let json = Self.json(results, config: config)
        try writeReport(json, title: "Calibration: engine-cpu against the CPU engine (\(model))")
        PeftPlan.emit(format == "json" ? json : Self.table(results, config: config))
        // only a run whose results are out may forget its progress
        if saving { try? FileManager.default.removeItem(atPath: progressPath) }
    }

    // MARK: - PyTorch

    func runTorch(steps n: Int) throws {
        guard ["cpu", "cuda", "meta"].contains(device) else { throw PlanError.invalidOption(option: "--device", value: device, accepted: "cpu, cuda or meta") }
        let data = try Presets.configData(model)
        if emitScript == nil && device == "cpu" {
            // full fine-tuning in fp32 with AdamW holds 16 bytes per parameter before activations
            let need = Double(try Presets.resolve(model).totalParams) * 16
            guard need <= Double(ProcessInfo.processInfo.physicalMemory) * 0.7 else {
                throw PlanError.invalidOption(option: "--model", value: model, accepted: "a model this machine can train on its CPU in fp32 (it needs over \(PlanOutput.gib(Int(need))); use --emit-script for a bigger machine, or --device meta)")
            }
        }
        var job = try TorchCalibration.job(model: model, configData: data, device: device, quick: quick)
        if steps != nil { job.defaults.steps = n }
        if let limit = try Self.bytes(maxMemory, "--max-memory") {
            for b in job.bursts.map({ $0.over(job.defaults) }) {
                // a burst the plan cannot describe (prefix tuning with checkpointing) is reported by the run itself
                guard let ctx = try? TorchCalibration.context(b, runtime: TorchCalibration.runtime(device: device)) else { continue }
                let peak = ctx.memory(batch: ctx.training.batch, seq: ctx.training.seq).allocatedPeak
                guard peak <= limit else {
                    throw PlanError.contradictoryOptions("burst \(b.id ?? "?") would peak at \(PlanOutput.gib(peak)) (the plan's allocated peak), over --max-memory \(maxMemory!); nothing was run")
                }
            }
        }
        if let dir = emitScript {
            let files: [URL]
            do { files = try TorchCalibration.emitScript(to: URL(fileURLWithPath: dir), job: job) } catch let e as PlanError { throw e } catch {
                throw PlanError.invalidOption(option: "--emit-script", value: dir, accepted: "a folder that can be written (\(error.localizedDescription))")
            }
            PeftPlan.emit("wrote " + files.map(\.lastPathComponent).joined(separator: ", ") + " to \(dir)\n"
                + "run there:  python3 torch_bursts.py job.json results.partial.json > results.json\n"
                + "then here:  peft-plan calibrate --compare results.json --job job.json\n")
            return
        }
        FileHandle.standardError.write(Data("running \(job.bursts.count) PyTorch bursts on \(device) (\(model))…\n".utf8))
        let results = try TorchCalibration.run(job)
        try printTorch(TorchCalibration.compare(results: results, job: job), results: results, device: device)
    }

    func compareFile(_ path: String) throws {
        let results = try TorchCalibration.load(TorchResults.self, path: path, option: "--compare")
        let url = URL(fileURLWithPath: path)
        let candidates = job.map { [$0] } ?? [url.deletingPathExtension().path + ".job.json", url.deletingLastPathComponent().appendingPathComponent("job.json").path]
        guard let jobPath = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw PlanError.invalidOption(option: "--job", value: candidates.joined(separator: " or "), accepted: "the job file the results were made from")
        }
        let jobFile = try TorchCalibration.load(TorchJob.self, path: jobPath, option: "--job")
        if let fit { return try fitProfile(results: results, job: jobFile, to: fit) }
        if gpu != nil { throw PlanError.contradictoryOptions("--gpu goes with --fit") }
        try printTorch(TorchCalibration.compare(results: results, job: jobFile), results: results, device: jobFile.device ?? "cuda")
    }

    func fitProfile(results: TorchResults, job: TorchJob, to path: String) throws {
        guard (job.device ?? "cuda") == "cuda" else {
            throw PlanError.invalidOption(option: "--fit", value: path, accepted: "CUDA results (the allocator's peaks are what is fitted)")
        }
        var gpuProfile: GPUProfile?
        if let gpu {
            let found = try HardwareCatalog.select(gpu, from: HardwareCatalog.bundled())
            guard found.count == 1 else { throw PlanError.invalidOption(option: "--gpu", value: gpu, accepted: "one GPU profile (\(found.map(\.name).joined(separator: ", ")))") }
            gpuProfile = found[0]
        }
        let env = results.environmentText
        if let g = gpuProfile, let measuredOn = env["gpu"] {
            let probe = CalibrationProfile(name: "", base: "hf-cuda", environment: ["gpu": measuredOn],
                                           coefficients: .init(reservedOverAllocated: 1, outsideAllocatorBytes: 0, mfu: nil, activationScale: [:]),
                                           fit: .init(fittedOn: [], heldOut: [], fitPeakError: 0, holdoutPeakError: nil, holdoutPeakErrorBase: nil,
                                                      holdoutStepError: nil, holdoutStepErrorBase: nil))
            if !probe.warnings(gpus: [g]).isEmpty {
                FileHandle.standardError.write(Data("peft-plan: warning: the results were measured on \(measuredOn), --gpu names \(g.name): the MFU is fitted against \(g.name)'s peak\n".utf8))
            }
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let result = try RuntimeFit.fit(RuntimeFit.bursts(results: results, job: job), base: .hfCUDA, environment: env, gpu: gpuProfile, name: name)
        do { try result.profile.encoded().write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw PlanError.invalidOption(option: "--fit", value: path, accepted: "a file that can be written (\(error.localizedDescription))")
        }
        if format == "json" { return PeftPlan.emit(String(decoding: try result.profile.encoded(), as: UTF8.self) + "\n") }
        let p = result.profile, c = p.coefficients, b = result.base
        var out = "fitted \(p.name) on \(p.fit.fittedOn.count) bursts, \(p.fit.heldOut.count) held out; base \(b.name); wrote \(path)\n"
        out += String(format: "  reserved/allocated   %.3f (base %.2f)\n", c.reservedOverAllocated, b.reservedOverAllocated)
        out += "  outside allocator    \(PlanOutput.gib(c.outsideAllocatorBytes)) (base \(PlanOutput.gib(b.outsideAllocatorBytes)))\n"
        let baseMFU = gpuProfile.map { b.time.matmulEfficiency($0) } ?? b.mfu
        out += c.mfu.map { String(format: "  MFU                  %.3f (base %.2f)\n", $0, baseMFU) } ?? "  MFU                  not fitted (give --gpu)\n"
        for (m, k) in c.activationScale.sorted(by: { $0.key < $1.key }) { out += String(format: "  activations × %.4f   %@\n", k, m) }
        for m in result.unfittedScales { out += "  activations × 1      \(m) (the best scale ran to the bound of 0.5–2: its error is not in the activations)\n" }
        let width = (result.rows.map { $0.id.count + ($0.heldOut ? 11 : 0) }.max() ?? 5) + 1
        out += "\n  " + "burst".padding(toLength: width, withPad: " ", startingAt: 0) + "peak error base → fitted     step error base → fitted\n"
        for r in result.rows {
            let step = r.stepError.map { String(format: "%+7.2f%% → %+7.2f%%", (r.stepErrorBase ?? 0) * 100, $0 * 100) } ?? "n/a"
            out += "  " + (r.id + (r.heldOut ? " (held out)" : "")).padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: " %+7.2f%% → %+7.2f%%", r.peakErrorBase * 100, r.peakError * 100) + "     " + step + "\n"
        }
        if let h = p.fit.holdoutPeakError, let hb = p.fit.holdoutPeakErrorBase {
            out += String(format: "\nhold-out: largest error of the allocated peak %.2f%% (base %.2f%%)", h * 100, hb * 100)
            if let s = p.fit.holdoutStepError, let sb = p.fit.holdoutStepErrorBase { out += String(format: ", of the step time %.1f%% (base %.1f%%)", s * 100, sb * 100) }
            out += "\n"
        }
        PeftPlan.emit(out)
    }

    func printTorch(_ rows: [TorchCalibration.Comparison], results: TorchResults, device: String) throws {
        let env = results.environmentText
        let runtime = TorchCalibration.runtime(device: device).name
        var worst = 0.0, worstID = ""
        for r in rows where r.note == nil { if let e = r.error(.allocatedPeak).map(abs), e >= worst { worst = e; worstID = r.id } }
        let json = Self.torchJSON(rows, env: env, runtime: runtime, device: device, worst: worst)
        try writeReport(json, title: "Calibration: \(runtime) against PyTorch on " + (env["gpu"] ?? device))
        if format == "json" { return PeftPlan.emit(json) }
        var out = "calibration: torch backend on \(device), \(runtime) model; " + ["torch", "transformers", "peft", "bitsandbytes", "gpu"].compactMap { k in env[k].map { "\(k) \($0)" } }.joined(separator: ", ") + "\n"
        for r in rows {
            out += "\n\(r.id): peak phase predicted \(r.predictedPeakPhase), measured \(r.measuredPeakPhase ?? "n/a")"
            out += r.tokensPerSecond.map { String(format: "; %.0f tokens/s", $0) } ?? ""
            out += r.note.map { "\n  (not in the summary: \($0))" } ?? ""
            out += "\n  component               predicted        measured     error\n"
            for k in TorchCalibration.measuredComponents {
                guard let p = r.predicted[k], let m = r.measured[k] else { continue }
                out += Self.componentRow(k.rawValue, p, m, r.error(k).map { String(format: "%+.2f%%", $0 * 100) } ?? "n/a")
            }
        }
        out += "\nsummary: \(rows.count) bursts compared (\(rows.filter { $0.note != nil }.count) not like for like)"
        out += device == "cuda" ? String(format: "; largest relative error of the allocated peak %.2f%% (%@)\n", worst * 100, worstID)
            : "; off CUDA the allocator's peaks are not measured (parameters, gradients, optimizer states and saved activations are)\n"
        PeftPlan.emit(out)
    }

    static func torchJSON(_ rows: [TorchCalibration.Comparison], env: [String: String], runtime: String, device: String, worst: Double) -> String {
        let components = TorchCalibration.measuredComponents
        let runs: [JSONValue] = rows.map { r in
            .object([("id", .string(r.id)),
                     ("predicted", .object(components.compactMap { k in r.predicted[k].map { (k.rawValue, .int($0)) } })),
                     ("measured", .object(components.compactMap { k in r.measured[k].map { (k.rawValue, .int($0)) } })),
                     ("error", .object(components.compactMap { k in r.error(k).map { (k.rawValue, .double($0)) } })),
                     ("peak_phase", .object([("predicted", .string(r.predictedPeakPhase)), ("measured", r.measuredPeakPhase.map(JSONValue.string) ?? .null)])),
                     ("tokens_per_second", r.tokensPerSecond.map(JSONValue.double) ?? .null),
                     ("note", r.note.map(JSONValue.string) ?? .null)])
        }
        let environment: [(String, JSONValue)] = env.keys.sorted().map { k in (k, Int(env[k]!).map(JSONValue.int) ?? .string(env[k]!)) }
        return JSONValue.object([("backend", .string("torch")), ("runtime", .string(runtime)), ("environment", .object(environment)),
                                        ("runs", .array(runs)),
                                        ("summary", .object([("bursts", .int(rows.count)),
                                                             ("largest_peak_error", device == "cuda" ? .double(worst) : .null)]))]).render() + "\n"
    }

    /// Writes --report from the comparison's JSON, when asked.
    func writeReport(_ json: String, title: String) throws {
        guard let report else { return }
        guard let data = CalibrationData(data: Data(json.utf8)) else {
            throw PlanError.invalidOption(option: "--report", value: report, accepted: "a comparison that produced results")
        }
        try CalibrationReport.write(data, title: title, to: report, chart: chart.flatMap { CalibrationReport.Chart(rawValue: $0.lowercased()) })
        FileHandle.standardError.write(Data("wrote \(report)\n".utf8))
    }

    /// Refuses an output path whose folder does not exist or cannot be written.
    static func writableFolder(_ path: String, _ option: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue, FileManager.default.isWritableFile(atPath: dir) else {
            throw PlanError.invalidOption(option: option, value: path, accepted: "a file in an existing folder you can write to")
        }
    }

    /// A byte size: "2GB" and "2GiB" are 2 × 2³⁰ (as GPU sizes are read), "512MB", "1.5GiB",
    /// or a plain number of bytes; nil when the option is absent.
    static func bytes(_ text: String?, _ option: String) throws -> Int? {
        guard let text else { return nil }
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GIB", 1_073_741_824), ("GB", 1_073_741_824), ("MIB", 1_048_576), ("MB", 1_048_576), ("KIB", 1024), ("KB", 1024), ("B", 1), ("", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v.isFinite, v * scale >= 1, v * scale <= 1_125_899_906_842_624 else { break }
            return Int(v * scale)
        }
        throw PlanError.invalidOption(option: option, value: text, accepted: "a size of at least 1 byte and at most 1 PiB, such as 2GB, 512MB or 1.5GiB")
    }

    /// One component's line of a side-by-side table.
    static func componentRow(_ k: String, _ p: Int, _ m: Int, _ err: String) -> String {
        "  " + k.padding(toLength: 20, withPad: " ", startingAt: 0)
            + String(repeating: " ", count: max(0, 12 - "\(p)".count)) + "\(p)"
            + String(repeating: " ", count: max(0, 16 - "\(m)".count)) + "\(m)"
            + String(repeating: " ", count: max(0, 10 - err.count)) + err + "\n"
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
                out += componentRow(k, p, m, r.error(k).map { String(format: "%+.3f%%", $0 * 100) } ?? "n/a")
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
                                 ("largest_peak_error_burst", s.worst == 0 ? .null : .string(s.worstBurst)), ("exact_bursts", .int(s.exact))])),
        ]).render() + "\n"
    }
}
