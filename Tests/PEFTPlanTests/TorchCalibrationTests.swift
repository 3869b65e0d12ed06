import Foundation
import Testing
import PEFTCalibration
import PEFTPlan

/// `calibrate --backend torch`: the script and job written by `--emit-script` run on the
/// real PyTorch + Transformers + PEFT (CPU), and `--compare` reads the results back; the
/// parameter, gradient and AdamW-state bytes torch measured must equal the plan's.
@Suite("Calibration: PyTorch backend round trip")
struct TorchCalibrationTests {
    @Test func emitRunCompare() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-torch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let emit = try CLI.run(["calibrate", "--backend", "torch", "--model", "tiny", "--quick", "--emit-script", dir.path])
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
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "torch_bursts.py failed (pip install torch transformers peft)")
        try data.write(to: dir.appendingPathComponent("results.json"))

        let r = try CLI.run(["calibrate", "--compare", dir.appendingPathComponent("results.json").path, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let runs = try #require(j["runs"] as? [[String: Any]])
        #expect(runs.count >= 10, "bursts compared: \(runs.count)")
        for run in runs {
            let p = try #require(run["predicted"] as? [String: Int]), m = try #require(run["measured"] as? [String: Int])
            for k in ["frozen_weights", "trainable_weights", "gradients", "optimizer_states"] {
                #expect(p[k] != nil && p[k] == m[k], "\(run["id"] ?? "?") \(k): plan \(p[k] ?? -1), torch \(m[k] ?? -1)")
            }
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
