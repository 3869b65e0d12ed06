import Foundation
import Testing
import PEFTCalibration
@testable import PEFTPlan

/// The repository's root, found from this file's path.
let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

enum Fixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name)
    }
    static func json(_ name: String) -> Any {
        try! JSONSerialization.jsonObject(with: Data(contentsOf: url(name)))
    }

    /// One case of a fixture list as a Python reference script reads it: the fixture row
    /// plus `config_path`, the same bundled config.json the preset is read from.
    static func pythonInput(_ rows: [[String: Any]], id: String, model: String) -> [String: Any] {
        var d = rows.first { $0["id"] as? String == id }!
        d["config_path"] = (try! Presets.directory).appendingPathComponent("\(model).json").path
        return d
    }
}

/// Runs one of the repository's Python reference scripts (the real PyTorch, Transformers
/// and PEFT) with `input` as JSON on stdin and returns its JSON output.
///
/// When Python or its packages are missing this fails loudly, naming what to install:
/// the comparison is the point of the test, so it never passes silently without it.
enum PythonReference {
    /// The Python `peft-plan calibrate` would run: `$PEFT_PLAN_PYTHON`, else the project's
    /// virtual environment that `bash scripts/setup.sh --test` creates (`.venv/bin/python`),
    /// else `python3`, whose scripts then say what to run (Debian's refuses pip, PEP 668).
    static var python: String { TorchCalibration.python() }

    /// What to run when the interpreter or its packages are missing.
    static let setupHint = TorchCalibration.pythonHint

    static func run(script: String, input: Any) -> Result<[String: Any], ReferenceError> {
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

    struct ReferenceError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
}
