import Foundation
import PEFTTestSupport
import Testing
import PEFTCalibration
import PEFTPlan

/// `calibrate --backend torch`: the script and job written by `--emit-script` run on the
/// real PyTorch + Transformers + PEFT (CPU and meta), and `--compare` reads the results back;
/// the parameter, gradient and AdamW-state bytes torch measured must equal the plan's, and
/// the bytes autograd saved must equal the plan's activations + logits within 0.01% (hf-cuda's
/// flash model on the CPU, hf-meta's math model on meta) — prefix tuning within 8%: its
/// prefix mask sends SDPA to another kernel than the model's, as on CUDA (README).
@Suite("Calibration: PyTorch backend round trip")
struct TorchCalibrationTests {
    @Test(arguments: ["cpu", "meta"])
    func emitRunCompare(_ device: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-torch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let emit = try CLI.run(["calibrate", "--backend", "torch", "--model", "tiny", "--quick", "--device", device, "--emit-script", dir.path])
        #expect(emit.status == 0, "\(emit.stderr)")
        for name in ["torch_bursts.py", "peft_reference.py", "job.json"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), "\(name) not written")
        }
        // the shipped script is the repository's
        #expect(try Data(contentsOf: dir.appendingPathComponent("torch_bursts.py"))
                 == Data(contentsOf: repoRoot.appendingPathComponent("scripts/torch_bursts.py").resolvingSymlinksInPath()))

        // run it as a machine without Swift would
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [PythonReference.python, "torch_bursts.py", "job.json"]
        process.currentDirectoryURL = dir
        let out = Pipe()
        process.standardOutput = out
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let reader = Thread { _ = errors.fileHandleForReading.readDataToEndOfFile() }   // drain, so the script never blocks
        reader.start()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "torch_bursts.py failed under \(PythonReference.python) (\(PythonReference.setupHint))")
        try data.write(to: dir.appendingPathComponent("results.json"))

        let r = try CLI.run(["calibrate", "--compare", dir.appendingPathComponent("results.json").path, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let runs = try #require(j["runs"] as? [[String: Any]])
        // meta cannot run checkpointing's recompute (Transformers calls .item()): 6 bursts there
        #expect(runs.count >= (device == "cpu" ? 10 : 6), "bursts compared: \(runs.count)")
        for run in runs {
            let id = run["id"] as? String ?? "?"
            let p = try #require(run["predicted"] as? [String: Int]), m = try #require(run["measured"] as? [String: Int])
            for k in ["frozen_weights", "trainable_weights", "gradients", "optimizer_states"] {
                #expect(p[k] != nil && p[k] == m[k], "\(id) \(k): plan \(p[k] ?? -1), torch \(m[k] ?? -1)")
            }
            let saved = Double(try #require(m["activations"])), planned = Double(try #require(p["activations"]))
            #expect(abs(planned / saved - 1) <= (id.hasPrefix("prefix") ? 0.08 : 1e-4), "\(id) activations: plan \(planned), torch \(saved)")
        }
    }

    /// The committed H100 results read back: every burst compared, the summary's largest
    /// error of the allocated peak within the tolerance MeasuredOnH100 holds (4%).
    @Test func comparesCommittedH100Results() throws {
        let r = try CLI.run(["calibrate", "--compare", repoRoot.appendingPathComponent("reports/calibration/cuda-llama-3.1-8b.json").path,
                             "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect((j["runs"] as? [Any])?.count == 12)
        let worst = try #require((j["summary"] as? [String: Any])?["largest_peak_error"] as? Double)
        #expect(worst <= 0.04)
    }
}

/// `calibrate --compare … --fit FILE`: a calibration profile fitted to the committed H100
/// bursts, with a hold-out error, that changes later plans through `--runtime FILE`.
@Suite("Calibration: fitted runtime profiles")
struct FittedProfileTests {
    @Test func fitChangesLaterPlans() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-fit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let profile = dir.appendingPathComponent("h100.json").path
        let fit = try CLI.run(["calibrate", "--compare", repoRoot.appendingPathComponent("reports/calibration/cuda-llama-3.1-8b.json").path,
                               "--fit", profile, "--gpu", "H100 SXM", "--format", "json"])
        #expect(fit.status == 0, "\(fit.stderr)")
        let written = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: profile))) as? [String: Any])
        let summary = try #require(written["fit"] as? [String: Any])
        #expect((summary["held_out"] as? [String])?.isEmpty == false, "bursts held out")
        let holdout = try #require(summary["holdout_peak_error"] as? Double)
        #expect(holdout.isFinite && holdout <= 0.04, "hold-out error of the allocated peak \(holdout)")
        let coefficients = try #require(written["coefficients"] as? [String: Any])
        // the measured reserved/allocated of these bursts (1.00–1.14) and the context's 0.75 GiB
        let factor = try #require(coefficients["reserved_over_allocated"] as? Double)
        #expect(factor > 1 && factor < 1.2)

        func plan(_ runtime: String) throws -> [String: Any] {
            let r = try CLI.run(["--model", "8b", "--method", "lora", "--gpu", "H100 SXM", "--runtime", runtime, "--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains("warning"), "no warning for the GPU it was measured on: \(r.stderr)")
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        }
        func memory(_ j: [String: Any]) throws -> [String: Any] {
            try #require((j["plans"] as? [[String: Any]])?.first?["memory"] as? [String: Any])
        }
        let base = try memory(try plan("hf-cuda")), fitted = try memory(try plan(profile))
        #expect(base["reserved_peak"] as? Int != fitted["reserved_peak"] as? Int, "the profile changes the plan")
        #expect(base["trainable_weights"] as? Int == fitted["trainable_weights"] as? Int, "and not what it must not")

        // another GPU than it was measured on: a warning on stderr, the plan still made
        let other = try CLI.run(["--model", "8b", "--method", "lora", "--gpu", "RTX 4090", "--runtime", profile])
        #expect(other.status == 0 && other.stderr.contains("warning") && other.stderr.contains("RTX 4090"))
    }
}
