import Foundation
import PEFTCalibration
import PEFTEngine
import PEFTPlan

/// Ctrl-C during a long run: the first SIGINT asks the run to stop after the current burst
/// (its progress is kept); a second one stops the process at once.
enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    /// Installs the handler, unless SIGINT is ignored (a background job keeps it so).
    static func install() {
        requested = 0   // initialised here, never first touched inside the handler
        // a launcher may hand the process SIGINT blocked (the mask is inherited): unblock it
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let previous = signal(SIGINT) { _ in
            Interrupt.requested = 1
            signal(SIGINT, SIG_DFL)
            let note: StaticString = "\npeft-plan: finishing the current burst, then stopping (Ctrl-C again stops at once)\n"
            _ = write(2, note.utf8Start, note.utf8CodeUnitCount)   // async-signal-safe: no allocation
        }
        if isIgnore(previous) { signal(SIGINT, SIG_IGN) }
    }

    /// Back to the default: Ctrl-C after the bursts stops the process at once.
    static func uninstall() {
        if isIgnore(signal(SIGINT, SIG_DFL)) { signal(SIGINT, SIG_IGN) }
    }

    /// Whether a handler is SIG_IGN (C function pointers compare by address).
    static func isIgnore(_ h: __sighandler_t?) -> Bool { unsafeBitCast(h, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) }

    static var wasRequested: Bool { requested != 0 }
}

/// The finished bursts of an engine calibration, saved after each one so that an
/// interrupted run (Ctrl-C, a crash, a lost machine) can go on with `--resume FILE`.
struct CalibrationProgress: Codable {
    static let formatName = "peft-plan calibration progress"
    static let currentVersion = 1

    var format = formatName
    var version = currentVersion
    var backend = "engine"
    var model: String
    var quick: Bool
    var steps: Int
    /// The model's shape and the machine (BLAS core, threads): a resume on another model
    /// file or machine would mix measurements of two set-ups.
    var fingerprint: String
    /// Burst name → its record.
    var done: [String: BurstRecord]

    /// Writes the file whole or not at all: a temporary file in the same folder, renamed.
    func save(to path: String) throws {
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

    static func fingerprint(config c: EngineConfig) -> String {
        "dim \(c.dim), \(c.layers) layers, \(c.heads)/\(c.kvHeads) heads, intermediate \(c.hidden), vocab \(c.vocab), \(c.tied ? "tied" : "untied"); "
            + "OpenBLAS \(BLASInfo.coreName), \(BLASInfo.threads) BLAS threads, \(EngineThreads.count) engine threads"
    }

    /// Reads a progress file and checks it belongs to this run: same options, same model
    /// shape and machine, and every record the burst of that name.
    static func load(_ path: String, model: String, quick: Bool, steps: Int, fingerprint: String, bursts: [EngineBurst]) throws -> CalibrationProgress {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular,
              (attributes[.size] as? Int ?? .max) <= 64 << 20, let data = FileManager.default.contents(atPath: path) else {
            throw PlanError.invalidOption(option: "--resume", value: path, accepted: "a readable progress file that an interrupted calibrate wrote")
        }
        return try parse(data, path: path, model: model, quick: quick, steps: steps, fingerprint: fingerprint, bursts: bursts)
    }

    /// Decodes and checks a progress file's bytes; `path` names it in errors.
    static func parse(_ data: Data, path: String, model: String, quick: Bool, steps: Int, fingerprint: String, bursts: [EngineBurst]) throws -> CalibrationProgress {
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
