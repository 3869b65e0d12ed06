import Foundation
import PEFTPlan

/// Bursts on PyTorch + Transformers + PEFT (the bundled `torch_bursts.py`): the job the
/// script reads, and its measurements set beside the planner's prediction (DESIGN.md §6).
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
    /// Their JSON keys, as in `plan`.
    public static let components = measuredComponents.map(\.rawValue)

    /// A job for `torch_bursts.py`: every method PEFT runs on the model (QLoRA only on CUDA,
    /// where bitsandbytes' kernels are) × micro-batch × sequence × checkpointing, the
    /// config.json inline so the job runs anywhere.
    public static func job(model: String, configData: Data, device: String, quick: Bool) throws -> [String: Any] {
        let config = try JSONSerialization.jsonObject(with: configData)
        var methods: [[String: Any]] = [["method": "full"], ["method": "lora"], ["method": "lora", "targets": "all-linear", "r": 16],
                                        ["method": "ia3"], ["method": "prefix", "tokens": 20], ["method": "prompt", "tokens": 20]]
        if device == "cuda" { methods.insert(["method": "qlora"], at: 3) }
        let shapes = quick ? [(1, 256)] : (device == "cuda" ? [(1, 2048), (4, 2048), (1, 4096)] : [(1, 512), (2, 1024)])
        var bursts: [[String: Any]] = []
        for m in methods {
            for (b, s) in shapes {
                for ckpt in [false, true] {
                    var burst = m
                    burst["batch"] = b
                    burst["seq"] = s
                    burst["grad_checkpointing"] = ckpt
                    var id = "\(m["method"]!)"
                    if let t = m["targets"] as? String { id += "-\(t)" }
                    burst["id"] = id + "-b\(b)-s\(s)" + (ckpt ? "-ckpt" : "")
                    bursts.append(burst)
                }
            }
        }
        return ["device": device, "model": model,
                "defaults": ["config": config, "dtype": device == "cuda" ? "bf16" : "fp32", "warmup": 1, "steps": quick ? 1 : 3],
                "bursts": bursts]
    }

    /// Writes the scripts and the job into `directory` for a machine that has no Swift.
    public static func emitScript(to directory: URL, job: [String: Any]) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [URL] = []
        for name in BundledScripts.names {
            let target = directory.appendingPathComponent(name)
            try writeAtomically(try Data(contentsOf: BundledScripts.url(name)), to: target)
            written.append(target)
        }
        let jobURL = directory.appendingPathComponent("job.json")
        try writeAtomically(try JSONSerialization.data(withJSONObject: job, options: [.prettyPrinted, .sortedKeys]), to: jobURL)
        written.append(jobURL)
        return written
    }

    /// Writes through a temporary file renamed into place: never a half-written file.
    static func writeAtomically(_ data: Data, to url: URL) throws {
        try data.write(to: url, options: .atomic)
    }

    /// One burst's prediction and measurement.
    public struct Comparison: Sendable {
        public var id: String
        public var predicted: [String: Int]
        public var measured: [String: Int]
        public var predictedPeakPhase: String
        public var measuredPeakPhase: String?
        public var tokensPerSecond: Double?
        /// Why this burst is not like for like (left out of the summary), if it is not.
        public var note: String?

        public func error(_ k: String) -> Double? {
            guard let p = predicted[k], let m = measured[k], m > 0 else { return nil }
            return Double(p - m) / Double(m)
        }
    }

    /// The plan for one burst of a job (its config.json, method options and shape) on the
    /// runtime that describes where it ran.
    public static func context(_ burst: [String: Any], runtime: RuntimeProfile) throws -> PlanContext {
        let arch: Architecture
        if let inline = burst["config"] {
            arch = try ConfigReader.parse(data: try JSONSerialization.data(withJSONObject: inline), name: burst["id"] as? String ?? "model")
        } else if let path = burst["config_path"] as? String {
            arch = try Presets.resolve(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        } else {
            throw PlanError.invalidOption(option: "--job", value: burst["id"] as? String ?? "?", accepted: "bursts with a config or config_path")
        }
        var o = MethodOptions()
        if let r = burst["r"] as? Int { o.loraR = r }
        if let a = burst["alpha"] as? Int { o.loraAlpha = a }
        if (burst["targets"] as? String) == "all-linear" { o.loraTargets = .allLinear }
        if let t = burst["tokens"] as? Int { o.prefixTokens = t; o.promptTokens = t }
        if let p = burst["projection"] as? Int { o.prefixProjection = p }
        var t = TrainingOptions()
        t.batch = burst["batch"] as? Int ?? 1
        t.seq = burst["seq"] as? Int ?? 2048
        guard (1...4096).contains(t.batch), (1...1_048_576).contains(t.seq) else {
            throw PlanError.invalidOption(option: "--job", value: "\(burst["id"] ?? "?"): batch \(t.batch), seq \(t.seq)",
                                          accepted: "bursts with a batch of 1–4096 and a sequence of 1–1,048,576 tokens")
        }
        t.gradCheckpointing = burst["grad_checkpointing"] as? Bool ?? false
        if (burst["dtype"] as? String) == "fp32" { t.precision = .fp32 }
        guard let name = burst["method"] as? String, let method = Method(rawValue: name) else {
            throw PlanError.invalidOption(option: "--job", value: "\(burst["method"] ?? "none")", accepted: "a method peft-plan plans")
        }
        return try PlanContext(arch: arch, method: method, methodOptions: o, training: t, runtime: runtime)
    }

    /// Sets each measured burst of `results` (torch_bursts.py's output) beside the plan for
    /// the same burst of `job`; bursts that failed or ran out of memory are left out.
    public static func compare(results: [String: Any], job: [String: Any]) throws -> [Comparison] {
        let defaults = job["defaults"] as? [String: Any] ?? [:]
        var configs: [String: [String: Any]] = [:]
        for b in job["bursts"] as? [[String: Any]] ?? [] {
            if let id = b["id"] as? String { configs[id] = defaults.merging(b) { $1 } }
        }
        let device = (job["device"] as? String) ?? "cuda"
        // CUDA: the allocator and the flash kernel; meta: PyTorch's math SDPA (hf-meta). The CPU
        // runs SDPA's flash kernel for CPU, whose saved tensors are flash's: hf-cuda's model.
        let runtime: RuntimeProfile = device == "meta" ? .hfMeta : .hfCUDA
        var out: [Comparison] = []
        for r in results["bursts"] as? [[String: Any]] ?? [] {
            guard let id = r["id"] as? String, r["error"] == nil, r["oom"] == nil, let burst = configs[id] else { continue }
            let ctx = try context(burst, runtime: runtime)
            // The planner plans QLoRA with checkpointing (prepare_model_for_kbit_training turns
            // it on); a burst that turned it off is not the run the plan describes.
            let unlike = ctx.account.method == .qlora && !(burst["grad_checkpointing"] as? Bool ?? false)
            let m = ctx.memory(batch: ctx.training.batch, seq: ctx.training.seq)
            var predicted = Dictionary(uniqueKeysWithValues: [MemoryComponent.frozenWeights, .trainableWeights, .gradients, .optimizerStates].map { ($0.rawValue, m[$0]) })
            var measured: [String: Int] = [:]
            for k in components { if let v = r[k] as? Int { measured[k] = v } }
            predicted[MemoryComponent.activations.rawValue] = m.activations + m.logits
            if device == "cuda" {
                for c in [MemoryComponent.allocatedPeak, .reservedPeak] { predicted[c.rawValue] = m[c] }
            }
            out.append(Comparison(id: id, predicted: predicted, measured: measured, predictedPeakPhase: m.peakPhase.rawValue,
                                  measuredPeakPhase: r["peak_phase"] as? String, tokensPerSecond: r["tokens_per_second"] as? Double,
                                  note: unlike ? "QLoRA without checkpointing: the plan assumes prepare_model_for_kbit_training's checkpointing" : nil))
        }
        return out
    }
}
