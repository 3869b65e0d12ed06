import Foundation
import PEFTTestSupport
import Testing

/// Nothing lost (issue 7): Ctrl-C during `calibrate --backend engine` keeps the finished
/// bursts in a progress file, written whole, and says how to go on; `--resume` finishes the
/// run with the same results a clean run gives and removes the file.
@Suite("Interrupted calibration")
struct InterruptTests {
    @Test func sigintKeepsFinishedBurstsAndResumeCompletes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-interrupt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let progress = folder.appendingPathComponent("p.json")

        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["calibrate", "--quick", "--steps", "1", "--progress", progress.path]
        p.currentDirectoryURL = folder
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // wait for the first finished burst, then Ctrl-C
        let deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: progress.path) && p.isRunning && Date() < deadline { usleep(20_000) }
        #expect(p.isRunning, "the run ended before it could be interrupted")
        p.interrupt()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 130, "status \(p.terminationStatus): \(stderr)")
        let last = stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("peft-plan: error: interrupted after") && last.contains("--resume \(progress.path)"), "\(last)")

        // the progress file is whole JSON with the finished bursts, and nothing else was left
        let saved = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: progress)) as? [String: Any])
        let done = try #require(saved["done"] as? [String: Any])
        #expect(done.count >= 1 && done.count < 18, "\(done.count) bursts saved")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["p.json"], "a temporary file was left")

        // a fresh run will not overwrite the interrupted one's progress
        let fresh = try CLI.run(["calibrate", "--quick", "--steps", "1", "--progress", progress.path], cwd: folder)
        #expect(fresh.status != 0 && fresh.stderr.contains("go on with --resume"), "\(fresh.stderr)")

        // going on: only the missing bursts run, the saved ones are reused as saved, every
        // burst is exact, and the progress file is gone
        let r = try CLI.run(["calibrate", "--quick", "--steps", "1", "--resume", progress.path, "--format", "json"], cwd: folder)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("resuming from \(progress.path): \(done.count) of 18 bursts already done"))
        let ran = r.stderr.split(separator: "\n").filter { $0.hasPrefix("burst ") && $0.contains("/18: ") }
        #expect(ran.count == 18 - done.count, "\(ran.count) bursts ran again for \(18 - done.count) missing")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let summary = try #require(json["summary"] as? [String: Any])
        #expect(summary["bursts"] as? Int == 18 && summary["exact_bursts"] as? Int == 18, "\(summary)")
        for run in json["runs"] as? [[String: Any]] ?? [] {
            let name = "\(run["label"]!), \(run["batch"]!) × \(run["seq"]!)" + ((run["grad_checkpointing"] as? Bool) == true ? ", checkpointing" : "")
            guard let saved = done[name] as? [String: Any] else { continue }
            #expect((saved["tokens_per_second"] as? Double) == (run["tokens_per_second"] as? Double), "\(name) was not reused as saved")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty, "the progress file or a temporary file outlived a complete run")
    }
}
