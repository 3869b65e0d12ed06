import Foundation
import PEFTCalibration

// Helpers the test suites share: where the repository is, the built binary, the Python
// reference scripts. Assertions stay in the tests; nothing here decides a result.

/// The repository's root, found from this file's path.
public let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs one of the repository's Python reference scripts (the real PyTorch, Transformers
/// and PEFT) with `input` as JSON on stdin and returns its JSON output.
///
/// When Python or its packages are missing this fails loudly, naming what to install:
/// the comparison is the point of the test, so it never passes silently without it.
public enum PythonReference {
    /// The Python `peft-plan calibrate` would run: `$PEFT_PLAN_PYTHON`, else the project's
    /// virtual environment that `bash scripts/setup.sh --test` creates (`.venv/bin/python`),
    /// else `python3`, whose scripts then say what to run (Debian's refuses pip, PEP 668).
    public static var python: String { TorchCalibration.python() }

    /// What to run when the interpreter or its packages are missing.
    public static let setupHint = TorchCalibration.pythonHint

    public static func run(script: String, input: Any) -> Result<[String: Any], ReferenceError> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, repoRoot.appendingPathComponent("scripts/\(script)").path]
        let stdin = Pipe(), stdout = Pipe()
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-ref-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try? FileHandle(forWritingTo: errFile)
        guard FileManager.default.isExecutableFile(atPath: python) || !python.contains("/") else {
            return .failure(ReferenceError(message: "no Python for the reference tests at \(python): \(setupHint)"))
        }
        do { try process.run() } catch {
            return .failure(ReferenceError(message: "cannot start \(python) (\(error)): \(setupHint)"))
        }
        let data = try! JSONSerialization.data(withJSONObject: input)
        let writer = Thread { stdin.fileHandleForWriting.write(data); try? stdin.fileHandleForWriting.close() }
        writer.start()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = (try? Data(contentsOf: errFile)) ?? Data()
        guard process.terminationStatus == 0 else {
            let tail = String(decoding: errData.suffix(2000), as: UTF8.self)
            return .failure(ReferenceError(message: """
                the Python reference (\(script)) failed under \(python): torch, transformers and peft \
                are needed (\(setupHint)). Its stderr ends with:
                \(tail)
                """))
        }
        guard let obj = try? JSONSerialization.jsonObject(with: out) as? [String: Any] else {
            return .failure(ReferenceError(message: "the Python reference printed no JSON"))
        }
        return .success(obj)
    }

    public struct ReferenceError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}

extension Dictionary where Key == String, Value == Any {
    public func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
}

/// Runs the built `peft-plan` binary.
public enum CLI {
    public static var binary: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), repoRoot.appendingPathComponent(".build/debug")] {
            let candidate = dir.appendingPathComponent("peft-plan")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return repoRoot.appendingPathComponent(".build/debug/peft-plan")
    }

    public struct Output { public var status: Int32; public var stdout: String; public var stderr: String; public var signalled: Bool }

    /// Runs the binary; `environment`, when given, is its whole environment.
    public static func run(_ args: [String], cwd: URL? = nil, environment: [String: String]? = nil) throws -> Output {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if let cwd { p.currentDirectoryURL = cwd }
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Output(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self), signalled: p.terminationReason == .uncaughtSignal)
    }
}

/// Writes a config.json into a fresh temporary folder and returns the file's path.
public func writeConfig(_ text: String, name: String = "config.json") -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let file = dir.appendingPathComponent(name)
    try! Data(text.utf8).write(to: file)
    return file.path
}
