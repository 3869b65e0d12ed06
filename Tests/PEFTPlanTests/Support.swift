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
        d["config_path"] = (try! Presets.directory).appendingPathComponent("\(model).json").path
        return d
    }
}

