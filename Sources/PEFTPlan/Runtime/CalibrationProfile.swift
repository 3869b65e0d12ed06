import Foundation

/// A runtime profile fitted from measured bursts (`peft-plan calibrate --compare … --fit
/// FILE`), read back with `--runtime FILE`: the base runtime with the fitted coefficients,
/// and the environment it was measured in.
public struct CalibrationProfile: Codable, Equatable, Sendable {
    public static let format = "peft-plan calibration profile"
    public static let currentVersion = 1

    public struct Coefficients: Codable, Equatable, Sendable {
        public var reservedOverAllocated: Double
        public var outsideAllocatorBytes: Int
        public var mfu: Double?
        public var activationScale: [String: Double]
        public init(reservedOverAllocated: Double, outsideAllocatorBytes: Int, mfu: Double?, activationScale: [String: Double]) {
            self.reservedOverAllocated = reservedOverAllocated
            self.outsideAllocatorBytes = outsideAllocatorBytes
            self.mfu = mfu
            self.activationScale = activationScale
        }
    }

    /// How well the coefficients fit: the bursts fitted on and held out, and the largest
    /// relative errors of the allocated peak (and step time) with the base and fitted profiles.
    public struct Fit: Codable, Equatable, Sendable {
        public var fittedOn: [String]
        public var heldOut: [String]
        public var fitPeakError: Double
        public var holdoutPeakError: Double?
        public var holdoutPeakErrorBase: Double?
        public var holdoutStepError: Double?
        public var holdoutStepErrorBase: Double?
        public init(fittedOn: [String], heldOut: [String], fitPeakError: Double, holdoutPeakError: Double?, holdoutPeakErrorBase: Double?,
                    holdoutStepError: Double?, holdoutStepErrorBase: Double?) {
            self.fittedOn = fittedOn; self.heldOut = heldOut; self.fitPeakError = fitPeakError
            self.holdoutPeakError = holdoutPeakError; self.holdoutPeakErrorBase = holdoutPeakErrorBase
            self.holdoutStepError = holdoutStepError; self.holdoutStepErrorBase = holdoutStepErrorBase
        }
    }

    public var format = CalibrationProfile.format
    public var version = CalibrationProfile.currentVersion
    public var name: String
    public var base: String
    public var environment: [String: String]
    public var coefficients: Coefficients
    public var fit: Fit

    public init(name: String, base: String, environment: [String: String], coefficients: Coefficients, fit: Fit) {
        self.name = name; self.base = base; self.environment = environment; self.coefficients = coefficients; self.fit = fit
    }

    /// The runtime profile this calibration describes.
    public var runtime: RuntimeProfile {
        var r = RuntimeProfile.named(base) ?? .hfCUDA
        r.name = name
        r.description = "\(r.description); calibrated on \(environment["gpu"] ?? "an unnamed device") (\(CalibrationProfile.versions(environment)))"
        r.reservedOverAllocated = coefficients.reservedOverAllocated
        r.outsideAllocatorBytes = coefficients.outsideAllocatorBytes
        if let m = coefficients.mfu { r.mfu = m }
        r.activationScale = coefficients.activationScale
        r.fittedEnvironment = environment
        return r
    }

    static func versions(_ e: [String: String]) -> String {
        ["torch", "transformers", "peft", "bitsandbytes"].compactMap { k in e[k].map { "\(k) \($0)" } }.joined(separator: ", ")
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return try e.encode(self)
    }

    /// Reads a profile file; every problem is one ``PlanError`` naming the file.
    public static func load(path: String) throws -> CalibrationProfile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              (attributes[.size] as? Int ?? Int.max) <= 16 << 20, let data = FileManager.default.contents(atPath: path) else {
            throw PlanError.invalidSetting(.runtime, value: path, accepted: "hf-cuda, hf-meta or a readable calibration profile (JSON, at most 16 MiB)")
        }
        return try parse(data: data, path: path)
    }

    /// Decodes and checks a profile's bytes; `path` names it in errors.
    public static func parse(data: Data, path: String) throws -> CalibrationProfile {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        guard let p = try? d.decode(CalibrationProfile.self, from: data), p.format == format else {
            throw PlanError.invalidSetting(.runtime, value: path, accepted: "a calibration profile (the JSON a calibration fit writes)")
        }
        guard p.version == currentVersion else {
            throw PlanError.invalidSetting(.runtime, value: path, accepted: "a calibration profile of version \(currentVersion) (this one is version \(p.version): fit it again with this peft-plan)")
        }
        let c = p.coefficients
        guard c.reservedOverAllocated.isFinite, (1...4).contains(c.reservedOverAllocated),
              (0...(1 << 40)).contains(c.outsideAllocatorBytes), c.mfu.map({ $0.isFinite && $0 > 0 && $0 <= 1 }) ?? true,
              c.activationScale.values.allSatisfy({ $0.isFinite && $0 > 0.1 && $0 < 10 }),
              RuntimeProfile.named(p.base) != nil else {
            throw PlanError.invalidSetting(.runtime, value: path, accepted: "a calibration profile with coefficients in range (reserved/allocated 1–4, MFU 0–1, activation scales 0.1–10) and a known base runtime")
        }
        return p
    }

    /// Transformers and PEFT versions the memory model follows (those scripts/setup.sh pins).
    public static let modelledVersions = ["transformers": "5.23.0", "peft": "0.21.2"]

    /// Warnings for a plan on `gpus` with this profile: another GPU than it was measured on,
    /// or library versions other than the ones the model follows.
    public func warnings(gpus: [GPUProfile]) -> [String] {
        var w: [String] = []
        if let g = environment["gpu"] {
            func tokens(_ s: String) -> [String] {
                String(s.lowercased().map { $0.isLetter || $0.isNumber ? $0 : " " }).split(separator: " ").map(String.init)
            }
            let measured = Set(tokens(g))
            // the model number (H100, 4090, A10G): the first part of the name with a digit; it
            // cannot tell an H100 PCIe from an SXM, which share one
            let others = gpus.filter { p in
                let key = tokens(p.name).first { $0.contains(where: \.isNumber) } ?? ""
                return key.isEmpty || !measured.contains(key)
            }
            if !others.isEmpty {
                w.append("runtime profile \(name) was measured on \(g), not on \(others.map(\.name).joined(separator: ", ")): its allocator and speed coefficients may not carry over")
            }
        }
        for (k, v) in Self.modelledVersions where environment[k] != nil && environment[k] != v {
            w.append("runtime profile \(name) was measured with \(k) \(environment[k]!); peft-plan's memory model follows \(k) \(v)")
        }
        return w
    }
}
