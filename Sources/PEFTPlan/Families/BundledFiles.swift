import Foundation

/// Where the library's bundled files (presets, hardware profiles) are, found without
/// SwiftPM's `Bundle.module`, which stops the process when its bundle is missing (a binary
/// copied without the `peft-plan_PEFTPlan.resources` folder beside it).
enum BundledFiles {
    static let bundleName = "peft-plan_PEFTPlan.resources"

    /// The folder holding `models/` and `hardware-profiles/`, or nil when none is found.
    static let root: URL? = {
        var candidates: [URL] = []
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent(bundleName))
        candidates.append(Bundle.main.bundleURL.appendingPathComponent(bundleName))
        if let r = Bundle.main.resourceURL { candidates.append(r.appendingPathComponent(bundleName)) }
        // The source tree this library was built from, for a binary run where it was built.
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Resources"))
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("models").path) }
    }()

    static func folder(_ name: String) throws -> URL {
        guard let root else {
            throw PlanError.unreadableConfig(path: bundleName, reason: "the bundled presets and GPU profiles are missing; keep the \(bundleName) folder beside the peft-plan binary")
        }
        return root.appendingPathComponent(name)
    }
}

/// The Python scripts shipped with the package (PyTorch + PEFT bursts and their helpers),
/// which `calibrate --emit-script` writes out for a machine without Swift.
public enum BundledScripts {
    public static let names = ["torch_bursts.py", "peft_reference.py"]

    public static func url(_ name: String) throws -> URL {
        try BundledFiles.folder("python").appendingPathComponent(name)
    }
}
