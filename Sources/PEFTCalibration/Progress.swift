import Foundation
import PEFTEngine
import PEFTPlan

/// The finished bursts of an engine calibration, saved after each one so that an
/// interrupted run (Ctrl-C, a crash, a lost machine) can go on with `--resume FILE`.
public struct CalibrationProgress: Codable, Sendable {
    public static let formatName = "peft-plan calibration progress"
    public static let currentVersion = 1

    public var format = formatName
    public var version = currentVersion
    public var backend = "engine"
    public var model: String
    public var quick: Bool
    public var steps: Int
    /// The model's shape and the machine (BLAS core, threads): a resume on another model
    /// file or machine would mix measurements of two set-ups.
    public var fingerprint: String
    /// Burst name → its record.
    public var done: [String: BurstRecord]

    public init(model: String, quick: Bool, steps: Int, fingerprint: String, done: [String: BurstRecord]) {
        self.model = model
        self.quick = quick
        self.steps = steps
        self.fingerprint = fingerprint
        self.done = done
    }

    /// Writes the file whole or not at all: a temporary file in the same folder, renamed.
    public func save(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).partial")
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        do {
            try e.encode(self).write(to: temporary)
            // on disk before the rename, so that a lost machine keeps a whole file
            let fd = open(temporary.path, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw PlanError.invalidOption(option: "--progress or --resume", value: path, accepted: "a file in a folder that can be written (\(error.localizedDescription))")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw PlanError.invalidOption(option: "--progress", value: path, accepted: "a path that can be written (\(reason))")
        }
    }

    public static func fingerprint(config c: EngineConfig) -> String {
        "dim \(c.dim), \(c.layers) layers, \(c.heads)/\(c.kvHeads) heads, intermediate \(c.hidden), vocab \(c.vocab), \(c.tied ? "tied" : "untied"); "
            + "OpenBLAS \(BLASInfo.coreName), \(BLASInfo.threads) BLAS threads, \(EngineThreads.count) engine threads"
    }

    /// Reads a progress file and checks it belongs to this run: same options, same model
    /// shape and machine, and every record the burst of that name.
    public static func load(_ path: String, model: String, quick: Bool, steps: Int, fingerprint: String, bursts: [EngineBurst]) throws -> CalibrationProgress {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular,
              (attributes[.size] as? Int ?? .max) <= 64 << 20, let data = FileManager.default.contents(atPath: path) else {
            throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a readable progress file that an interrupted calibrate wrote")
        }
        return try parse(data, path: path, model: model, quick: quick, steps: steps, fingerprint: fingerprint, bursts: bursts)
    }

    /// Decodes and checks a progress file's bytes; `path` names it in errors.
    public static func parse(_ data: Data, path: String, model: String, quick: Bool, steps: Int, fingerprint: String, bursts: [EngineBurst]) throws -> CalibrationProgress {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        struct Header: Decodable { var format: String; var version: Int }
        guard let h = try? d.decode(Header.self, from: data), h.format == formatName else {
            throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a progress file written by `peft-plan calibrate --backend engine`")
        }
        guard h.version == currentVersion else {
            throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a progress file of version \(currentVersion) (this one is version \(h.version): start the calibration again)")
        }
        guard let p = try? d.decode(CalibrationProgress.self, from: data) else {
            throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a whole progress file (this one is damaged: start the calibration again)")
        }
        guard p.backend == "engine", p.model == model, p.quick == quick, p.steps == steps else {
            throw PlanError.contradictoryOptions("--resume \(path) was a run of --model \(p.model)\(p.quick ? " --quick" : "") --steps \(p.steps): resume it with the same options")
        }
        guard p.fingerprint == fingerprint else {
            throw PlanError.contradictoryOptions("--resume \(path) was measured on another set-up (\(p.fingerprint)); this one is \(fingerprint): start the calibration again")
        }
        for (name, r) in p.done {
            guard let b = bursts.first(where: { $0.name == name }), r.method == b.method.name, r.batch == b.batch, r.seq == b.seq,
                  r.gradCheckpointing == b.checkpointing, r.steps == steps,
                  r.measured.values.allSatisfy({ $0 >= 0 }), r.phasePeaks.values.allSatisfy({ $0 >= 0 }),
                  r.tokensPerSecond.isFinite, r.tokensPerSecond >= 0, r.stepMillisecondsMedian.isFinite, r.stepMillisecondsMedian >= 0,
                  r.environment.engineThreads >= 1, r.environment.engineThreads <= 4096 else {
                throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a progress file whose bursts are this calibration's (\(name) is not)")
            }
        }
        return p
    }
}
