import Foundation
import PEFTCalibration
import PEFTHub
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
        /// A Hub id and what Hugging Face's cache holds for it: the first line is the id
        /// (`--model`), the second the content of `refs/main`, the rest the snapshot's
        /// config.json; read offline from a cache made of them, then planned.
        case hubcache
        /// A price catalogue (JSON, `--price-file`) → its first provider's offers priced into a
        /// plan on every GPU it offers.
        case prices
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
            case .hubcache:
                try hubCache(data)
            case .prices:
                let catalogue = try PriceCatalogue.parse(data: data, path: "fuzz.json")
                let provider = catalogue.providers[0].name
                let gpus = try HardwareCatalog.bundled().filter { catalogue.gpus(provider: provider).contains($0.name) }
                guard !gpus.isEmpty else { return true }
                var request = PlanRequest(arch: try Presets.resolve("tiny"), methods: [.lora], methodsFromAll: false, training: TrainingOptions(),
                                          gpus: gpus, runtime: .hfCUDA)
                request.budget.provider = provider
                request.budget.prices = catalogue
                _ = try Planner.plan(request)
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

    /// Lays out a Hugging Face cache from the input and reads the model from it offline.
    static func hubCache(_ data: Data) throws {
        let lines = data.split(separator: UInt8(ascii: "\n"), maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count == 3, let id = HubModel(String(decoding: lines[0], as: UTF8.self)) else { return }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-fuzz-hub-\(getpid())")
        defer { try? FileManager.default.removeItem(at: home) }
        let root = home.appendingPathComponent(".cache/huggingface/hub/models--\(id.org)--\(id.name)")
        let ref = String(decoding: lines[1], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        try? FileManager.default.createDirectory(at: root.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try? Data(lines[1]).write(to: root.appendingPathComponent("refs/main"))
        if ref.count == 40, ref.allSatisfy(\.isHexDigit) {
            let snapshot = root.appendingPathComponent("snapshots/\(ref)")
            try? FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
            try? Data(lines[2]).write(to: snapshot.appendingPathComponent("config.json"))
        }
        let env = HubEnvironment(variables: ["HF_HUB_OFFLINE": "1", "HOME": home.path], home: home.path)
        let (arch, _) = try HubReader.read(id, environment: env)
        try plan(arch: arch, gpu: nil, runtime: .hfCUDA)
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
