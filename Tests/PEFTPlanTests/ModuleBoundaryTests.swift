import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTOutput
@testable import PEFTPlan

/// What the pure model may not contain, read off its sources, and the front end's side of
/// the bargain: every planner input the model names is an option the command line takes.
@Suite("The pure model's boundary")
struct ModuleBoundaryTests {
    /// Each Swift file of `Sources/PEFTPlan`, with comments and doc comments removed.
    static func modelSources() throws -> [(path: String, code: String)] {
        let root = repoRoot.appendingPathComponent("Sources/PEFTPlan")
        let walker = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
        var out: [(String, String)] = []
        for case let url as URL in walker where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            let code = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                // drop comment lines, and a trailing // comment that is not inside a string literal
                if line.trimmingCharacters(in: .whitespaces).hasPrefix("//") { return "" }
                guard let r = line.range(of: "//"), !line[r.upperBound...].contains("\"") else { return String(line) }
                return String(line[..<r.lowerBound])
            }.joined(separator: "\n")
            out.append((url.path.replacingOccurrences(of: repoRoot.path + "/", with: ""), code))
        }
        #expect(out.count > 30)
        return out
    }

    @Test("PEFTPlan imports only Foundation")
    func importsOnlyFoundation() throws {
        for (path, code) in try Self.modelSources() {
            for line in code.split(separator: "\n") where line.trimmingCharacters(in: .whitespaces).hasPrefix("import ") {
                #expect(line.trimmingCharacters(in: .whitespaces) == "import Foundation", "\(path): \(line)")
            }
        }
    }

    @Test("PEFTPlan reads no clock and spells no command-line flag")
    func noClockNoFlags() throws {
        let clocks = ["Date()", "ContinuousClock", "SuspendingClock", "DispatchTime", "CFAbsoluteTimeGetCurrent", "clock_gettime",
                      "ProcessInfo.processInfo.systemUptime"]
        let flag = try Regex(#""[^"\n]*(^|[ (`])--[a-z][a-z0-9-]*"#)
        for (path, code) in try Self.modelSources() {
            for c in clocks { #expect(!code.contains(c), "\(path) reads a clock: \(c)") }
            for line in code.split(separator: "\n") where line.contains(flag) {
                Issue.record("\(path) spells a flag: \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }

    /// The command line renders each field as a flag: each must be one `plan` accepts.
    @Test("every planner input the model names is an option of `peft-plan plan`")
    func everyFieldIsAnOption() throws {
        let help = try CLI.run(["plan", "--help"]).stdout
        for f in PlanField.allCases {
            let flag = CommandLineNames.flag(f)
            #expect(help.contains(flag + " ") || help.contains(flag + "\n") || help.contains(flag + ","), "\(f) → \(flag) is not in plan --help")
        }
    }

    @Test("a model sentence names its fields by the flag on the command line and by name elsewhere")
    func renderingNamesFields() {
        let t: PlanText = "micro-batch 4 → 2 with \(setting: .gradAccum, "8") and \(field: .gradCheckpointing)"
        #expect(t.forCommandLine == "micro-batch 4 → 2 with --grad-accum 8 and --grad-checkpointing")
        #expect(t.description == "micro-batch 4 → 2 with `gradAccum=8` and `gradCheckpointing`")
        let e = PlanError.invalidSetting(.loraR, value: "0", accepted: "an integer from 1 to 65536")
        #expect(CommandLineNames.message(e) == "invalid value '0' for --lora-r: an integer from 1 to 65536")
    }
}
