import Foundation
import PEFTPlan

/// Bursts on PyTorch + Transformers + PEFT (the bundled `torch_bursts.py`): the job the
/// script reads, and its measurements set beside the planner's prediction (PEFTCalibration/README.md).
public enum TorchCalibration {
    /// The Python that runs the bundled scripts: `$PEFT_PLAN_PYTHON`; else the project's
    /// virtual environment (`bash scripts/setup.sh --test` makes `.venv/`) in the current
    /// folder or in the source tree this binary was built from; else `python3` on PATH.
    public static func python(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = environment["PEFT_PLAN_PYTHON"], !p.isEmpty { return p }
        let built = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for root in [URL(fileURLWithPath: FileManager.default.currentDirectoryPath), built] {
            let venv = root.appendingPathComponent(".venv/bin/python").path
            if FileManager.default.isExecutableFile(atPath: venv) { return venv }
        }
        return "python3"
    }

    /// What to do when that Python lacks the packages.
    public static let pythonHint = "run `bash scripts/setup.sh --test` in the repository (it makes .venv/ with torch, transformers and peft), or set PEFT_PLAN_PYTHON to a python that has them"

    /// The components a PyTorch burst measures that the plan predicts (what autograd saved is
    /// compared with activations + logits, under the activations key).
    public static let measuredComponents: [MemoryComponent] = [.frozenWeights, .trainableWeights, .gradients, .optimizerStates, .activations,
                                                               .allocatedPeak, .reservedPeak]

    /// A job for `torch_bursts.py`: every method PEFT runs on the model (QLoRA only on CUDA,
    /// where bitsandbytes' kernels are) × micro-batch × sequence × checkpointing, the
    /// config.json inline so the job runs anywhere.
    public static func job(model: String, configData: Data, device: String, quick: Bool) throws -> TorchJob {
        let config = try decoder.decode(JSONTree.self, from: configData)
        func m(_ method: String, targets: String? = nil, r: Int? = nil, tokens: Int? = nil) -> TorchBurst {
            var b = TorchBurst(method: method)
            b.targets = targets
            b.r = r
            b.tokens = tokens
            return b
        }
        var methods = [m("full"), m("lora"), m("lora", targets: "all-linear", r: 16), m("ia3"), m("prefix", tokens: 20), m("prompt", tokens: 20)]
        if device == "cuda" { methods.insert(m("qlora"), at: 3) }
        let shapes = quick ? [(1, 256)] : (device == "cuda" ? [(1, 2048), (4, 2048), (1, 4096)] : [(1, 512), (2, 1024)])
        var bursts: [TorchBurst] = []
        for method in methods {
            for (b, s) in shapes {
                for ckpt in [false, true] {
                    var burst = method
                    burst.batch = b
                    burst.seq = s
                    burst.gradCheckpointing = ckpt
                    burst.id = (method.method ?? "") + (method.targets.map { "-\($0)" } ?? "") + "-b\(b)-s\(s)" + (ckpt ? "-ckpt" : "")
                    bursts.append(burst)
                }
            }
        }
        var defaults = TorchBurst()
        defaults.config = config
        defaults.dtype = device == "cuda" ? "bf16" : "fp32"
        defaults.warmup = 1
        defaults.steps = quick ? 1 : 3
        return TorchJob(device: device, model: model, defaults: defaults, bursts: bursts)
    }

    /// Writes the scripts and the job into `directory` for a machine that has no Swift.
    public static func emitScript(to directory: URL, job: TorchJob) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [URL] = []
        for name in BundledScripts.names {
            let target = directory.appendingPathComponent(name)
            try writeAtomically(try Data(contentsOf: BundledScripts.url(name)), to: target)
            written.append(target)
        }
        let jobURL = directory.appendingPathComponent("job.json")
        try writeAtomically(try encoded(job), to: jobURL)
        written.append(jobURL)
        return written
    }

    /// Writes through a temporary file renamed into place: never a half-written file.
    static func writeAtomically(_ data: Data, to url: URL) throws {
        try data.write(to: url, options: .atomic)
    }

    /// Runs `job` with the bundled script under ``python(environment:)`` and reads its
    /// results; the script's progress lines go to this process's stderr.
    public static func run(_ job: TorchJob) throws -> TorchResults {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-calibrate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try emitScript(to: folder, job: job)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let python = python()
        process.arguments = [python, folder.appendingPathComponent("torch_bursts.py").path,
                             folder.appendingPathComponent("job.json").path, folder.appendingPathComponent("results.partial.json").path]
        let out = Pipe()
        process.standardOutput = out
        do { try process.run() } catch {
            throw PlanError.invalidOption(option: "--backend", value: "torch", accepted: "a Python with torch, transformers and peft (\(python): \(error.localizedDescription); \(pythonHint))")
        }
        let bytes = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let results = try? decoder.decode(TorchResults.self, from: bytes) else {
            throw PlanError.invalidOption(option: "--backend", value: "torch", accepted: "a working PyTorch: torch_bursts.py exited with status \(process.terminationStatus) under \(python) (\(pythonHint))")
        }
        return results
    }

    /// One burst's prediction and measurement.
    public struct Comparison: Sendable {
        public var id: String
        public var predicted: [MemoryComponent: Int]
        public var measured: [MemoryComponent: Int]
        public var predictedPeakPhase: String
        public var measuredPeakPhase: String?
        public var tokensPerSecond: Double?
        /// Why this burst is not like for like (left out of the summary), if it is not.
        public var note: String?

        /// The component's ``relativeError(predicted:measured:)``; nil when either side is missing.
        public func error(_ k: MemoryComponent) -> Double? {
            guard let p = predicted[k], let m = measured[k] else { return nil }
            return relativeError(predicted: p, measured: m)
        }
    }

    /// The plan for one burst of a job (its config.json, method options and shape) on the
    /// runtime that describes where it ran.
    public static func context(_ burst: TorchBurst, runtime: RuntimeProfile) throws -> PlanContext {
        let id = burst.id ?? "?"
        let arch: Architecture
        if let inline = burst.config {
            arch = try ConfigReader.parse(data: try JSONEncoder().encode(inline), name: burst.id ?? "model")
        } else if let path = burst.configPath {
            arch = try Presets.resolve(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        } else {
            throw PlanError.invalidOption(option: "--job", value: id, accepted: "bursts with a config or config_path")
        }
        var o = MethodOptions()
        if let r = burst.r { o.loraR = r }
        if let a = burst.alpha { o.loraAlpha = a }
        if burst.targets == "all-linear" { o.loraTargets = .allLinear }
        if let t = burst.tokens { o.prefixTokens = t; o.promptTokens = t }
        if let p = burst.projection { o.prefixProjection = p }
        var t = TrainingOptions()
        t.batch = burst.batch ?? 1
        t.seq = burst.seq ?? 2048
        guard (1...4096).contains(t.batch), (1...1_048_576).contains(t.seq) else {
            throw PlanError.invalidOption(option: "--job", value: "\(id): batch \(t.batch), seq \(t.seq)",
                                          accepted: "bursts with a batch of 1–4096 and a sequence of 1–1,048,576 tokens")
        }
        t.gradCheckpointing = burst.gradCheckpointing ?? false
        if burst.dtype == "fp32" { t.precision = .fp32 }
        guard let name = burst.method, let method = Method(rawValue: name) else {
            throw PlanError.invalidOption(option: "--job", value: burst.method ?? "none", accepted: "a method peft-plan plans")
        }
        return try PlanContext(arch: arch, method: method, methodOptions: o, training: t, runtime: runtime)
    }

    /// The runtime that describes where a job ran. CUDA: the allocator and the flash kernel;
    /// meta: PyTorch's math SDPA (hf-meta). The CPU runs SDPA's flash kernel for CPU, whose
    /// saved tensors are flash's: hf-cuda's model.
    public static func runtime(device: String?) -> RuntimeProfile { device == "meta" ? .hfMeta : .hfCUDA }

    /// Whether the planner describes the run of `burst`: it plans QLoRA with checkpointing
    /// (prepare_model_for_kbit_training turns it on), so a QLoRA burst without it is not.
    public static func likeForLike(_ burst: TorchBurst) -> Bool {
        !(burst.method == "qlora" && !(burst.gradCheckpointing ?? false))
    }

    /// Sets each measured burst of `results` beside the plan for the same burst of `job`;
    /// bursts that failed or ran out of memory are left out.
    public static func compare(results: TorchResults, job: TorchJob) throws -> [Comparison] {
        let bursts = job.resolved
        let device = job.device ?? "cuda"
        var out: [Comparison] = []
        for r in results.bursts {
            guard r.ran, let burst = bursts[r.id] else { continue }
            let ctx = try context(burst, runtime: runtime(device: device))
            let m = ctx.memory(batch: ctx.training.batch, seq: ctx.training.seq)
            var predicted: [MemoryComponent: Int] = [:]
            for c in [MemoryComponent.frozenWeights, .trainableWeights, .gradients, .optimizerStates] { predicted[c] = m[c] }
            predicted[.activations] = m.activations + m.logits
            if device == "cuda" {
                for c in [MemoryComponent.allocatedPeak, .reservedPeak] { predicted[c] = m[c] }
            }
            var measured: [MemoryComponent: Int] = [:]
            for c in measuredComponents { if let v = r[c] { measured[c] = v } }
            out.append(Comparison(id: r.id, predicted: predicted, measured: measured, predictedPeakPhase: m.peakPhase.rawValue,
                                  measuredPeakPhase: r.peakPhase, tokensPerSecond: r.tokensPerSecond,
                                  note: likeForLike(burst) ? nil : "QLoRA without checkpointing: the plan assumes prepare_model_for_kbit_training's checkpointing"))
        }
        return out
    }
}
