import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTCommands
@testable import PEFTPlan

/// The fuzz target's inputs, replayed in every test run (issue 7): the committed seeds are
/// accepted, and every input the fuzzer once crashed on (Fuzz/regressions/TARGET/) now ends
/// in a value or a clear error — in-process through the same harness, and through the binary
/// with one line on stderr.
@Suite("Fuzz corpus and regressions")
struct FuzzRegressionTests {
    static func files(_ folder: String) -> [URL] {
        let dir = repoRoot.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzInput.Target.allCases)
    func seedsAreAccepted(_ target: FuzzInput.Target) throws {
        let seeds = Self.files("Fuzz/corpus/\(target.rawValue)")
        #expect(seeds.count >= 3, "the seed corpus of \(target.rawValue) is missing")
        for url in seeds {
            let data = try Data(contentsOf: url)
            // every seed is a real input the tool accepts (the report seed names an unwritable
            // --out, which only running would notice)
            var why = ""
            if target == .cli {
                do { try CommandLineTool.check(FuzzInput.arguments(data)) } catch { why = "\(error)" }
            }
            #expect(FuzzInput.run(target, data), "\(target.rawValue) seed \(url.lastPathComponent) was rejected \(why)")
        }
    }

    @Test(arguments: FuzzInput.Target.allCases)
    func regressionsEndCleanly(_ target: FuzzInput.Target) throws {
        let inputs = Self.files("Fuzz/regressions/\(target.rawValue)")
        #expect(!inputs.isEmpty, "no regression inputs for \(target.rawValue)")
        for url in inputs {
            let data = try Data(contentsOf: url)
            _ = FuzzInput.run(target, data)   // a trap here would end the test process
            let args: [String]
            switch target {
            case .config: args = ["--model", url.path, "--gpu", "24GB"]
            case .hardware: args = ["--model", "tiny", "--gpu", url.path]
            case .calibration: args = ["--model", "tiny", "--gpu", "24GB", "--runtime", url.path]
            case .cli:
                args = FuzzInput.arguments(data)
                // commands that train, run Python or write files are replayed in-process only
                if let first = args.first, ["bench", "calibrate", "report", "ledger-check", "bench-planner", "bench-search"].contains(first) { continue }
            case .prices: args = ["--model", "tiny", "--price-file", url.path]
            case .progress, .compare, .hubcache:
                continue   // resuming or comparing through the binary would run bursts or need two files: in-process only
            }
            let r = try CLI.run(args)
            #expect(!r.signalled, "\(url.lastPathComponent): the binary crashed: \(r.stderr)")
            if r.status != 0 {
                #expect(r.stderr.split(separator: "\n").filter { !$0.hasPrefix("peft-plan: warning:") }.count == 1, "\(url.lastPathComponent): \(r.stderr)")
            }
        }
    }
}
