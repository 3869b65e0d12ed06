import Foundation
import PEFTCalibration
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
        /// An engine calibration's progress file, as `--resume` reads it.
        case progress
        /// A PyTorch run's results with its job ({"results": …, "job": …}), as
        /// `calibrate --compare` reads them: compared, charted and fitted.
        case compare
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
            case .progress:
                let config = try EngineModels.config("tiny")
                // the machine's fingerprint is the file's own, so that seeds from any machine reach the record checks
                struct Print: Decodable { var fingerprint: String }
                let own = (try? JSONDecoder().decode(Print.self, from: data))?.fingerprint ?? CalibrationProgress.fingerprint(config: config)
                let bursts = EngineCalibration.matrix(config: config, quick: true)
                let progress = try CalibrationProgress.parse(data, path: "fuzz.json", model: "tiny", quick: true, steps: 1, fingerprint: own, bursts: bursts)
                let rows = bursts.compactMap { b in progress.done[b.name].map { EngineCalibration.compare(b, record: $0, config: config) } }
                _ = Calibrate.table(rows, config: config)
            case .compare:
                struct Pair: Decodable { var results: TorchResults; var job: TorchJob }
                let pair = try TorchCalibration.decode(Pair.self, from: data, option: "--compare", path: "fuzz.json")
                let (results, job) = (pair.results, pair.job)
                let rows = try TorchCalibration.compare(results: results, job: job)
                _ = Calibrate.torchJSON(rows, env: results.environmentText, runtime: "hf-cuda", device: "cuda", worst: 0)
                let bursts = RuntimeFit.bursts(results: results, job: job)
                if bursts.count >= 2 {
                    _ = try RuntimeFit.fit(bursts, base: .hfCUDA, environment: [:], gpu: nil, name: "fuzz")
                }
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
