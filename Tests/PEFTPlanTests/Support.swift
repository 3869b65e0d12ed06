import Foundation
import Testing
import PEFTCalibration
import PEFTTestSupport
@testable import PEFTPlan

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
        d["config_path"] = modelPath(model)
        return d
    }

    /// A case's model: a preset name, or `fixture:FOLDER/FILE.json` for a config among the
    /// test fixtures (the class-default configs of families with no published one).
    static func modelPath(_ model: String) -> String {
        if model.hasPrefix("fixture:") { return url(String(model.dropFirst("fixture:".count))).path }
        return (try! Presets.directory).appendingPathComponent("\(model).json").path
    }

    /// The architecture of a case's model (see ``modelPath(_:)``).
    static func architecture(_ model: String) throws -> Architecture {
        model.hasPrefix("fixture:") ? try ConfigReader.read(path: modelPath(model)) : try Presets.resolve(model)
    }
}

