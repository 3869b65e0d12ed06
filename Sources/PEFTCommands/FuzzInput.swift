import Foundation
import PEFTPlan

/// What the fuzz target feeds each reader, and what the regression tests replay: any bytes
/// must end in a value or a thrown ``PlanError``, never a trap, a hang or unbounded memory.
public enum FuzzInput {
    /// The readers under test, named as `scripts/fuzz.sh` and `Fuzz/corpus/` name them.
    public enum Target: String, CaseIterable, Sendable {
        /// Hugging Face config.json → architecture → one plan of every method on one GPU.
        case config
        /// A hardware profile (JSON) → profile → a plan on it.
        case hardware
        /// A calibration profile (JSON) → profile → a plan with it as the runtime.
        case calibration
        /// Command-line arguments, one per line, parsed and planned as `peft-plan` would.
        case cli
    }

    /// Runs one input through one target. Returns whether the input was accepted.
    @discardableResult
    public static func run(_ target: Target, _ data: Data) -> Bool {
        do {
            switch target {
            case .config:
                let arch = try ConfigReader.parse(data: data, name: "fuzz")
                try plan(arch: arch, gpu: nil, runtime: .hfCUDA)
            case .hardware:
                let gpu = try HardwareCatalog.parse(data: data, path: "fuzz.json")
                try plan(arch: try Presets.resolve("tiny"), gpu: gpu, runtime: .hfCUDA)
            case .calibration:
                let profile = try CalibrationProfile.parse(data: data, path: "fuzz.json")
                try plan(arch: try Presets.resolve("tiny"), gpu: nil, runtime: profile.runtime)
            case .cli:
                guard data.count <= 4096 else { return false }
                let args = arguments(data)
                // commands that train, run Python or write files are parsed, not run
                try CommandLineTool.check(args)
            }
            return true
        } catch is PlanError {
            return false
        } catch {
            // the readers speak in PlanError (one clear line); anything else would reach the
            // user as a raw error, so the fuzzer treats it as a finding
            if target == .cli { return false }   // the parser's own errors are printed by the tool
            fatalError("\(target.rawValue): an error that is not a PlanError: \(error)")
        }
    }

    /// Command-line arguments from bytes: one per line (a final newline ends the last one).
    public static func arguments(_ data: Data) -> [String] {
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static func plan(arch: Architecture, gpu: GPUProfile?, runtime: RuntimeProfile) throws {
        let gpus = try gpu.map { [$0] } ?? [HardwareCatalog.select("24GB", from: HardwareCatalog.bundled())[0]]
        var training = TrainingOptions()
        training.seq = min(512, Planner.defaultSeq(arch))
        let request = PlanRequest(arch: arch, methods: Array(Method.allCases.prefix(7)), methodsFromAll: true, training: training, gpus: gpus, runtime: runtime)
        _ = try Planner.plan(request)
    }
}
