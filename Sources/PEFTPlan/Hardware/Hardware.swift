import Foundation

/// One GPU, mirrored one-to-one by a JSON file in `hardware-profiles/`.
///
/// Field names carry their units. Figures come from the vendor datasheet named in
/// `source`; TFLOP/s are dense (no sparsity). `memoryBytes` is the nominal capacity in
/// binary units (a "24 GB" card is 24 GiB), used to select (`--gpu 24GB`) and name cards;
/// fit verdicts compare against ``usableMemoryBytes``, what PyTorch can allocate there.
public struct GPUProfile: Codable, Equatable, Sendable {
    public struct Interconnect: Codable, Equatable, Sendable {
        public var name: String
        public var bytesPerSecond: Double
        /// Whether GPUs reach each other over PCIe (no NVLink or Infinity Fabric between them).
        public var isPCIe: Bool { name.hasPrefix("PCIe") }
    }
    public struct Price: Codable, Equatable, Sendable {
        public var usdPerHour: Double
        /// When the typical price was taken ("2026-11").
        public var date: String
        public var source: String
    }

    /// What PyTorch can allocate on the card: the device total the driver reports
    /// (`torch.cuda.get_device_properties(i).total_memory`, printed as "total capacity" in
    /// every CUDA out-of-memory message). The caching allocator can reserve no more; the CUDA
    /// context and library workspaces then take their share of it (the runtime profile's
    /// `runtime_overhead`). ECC on GDDR datacenter cards and the driver's own reservation
    /// make it smaller than the nominal size.
    public struct UsableMemory: Codable, Equatable, Sendable {
        /// How the figure was obtained.
        public enum Basis: String, Codable, Sendable, CaseIterable {
            /// reported by PyTorch on the card in one of our own runs
            case measured
            /// printed by PyTorch on the card in a public report (an out-of-memory message
            /// or `get_device_properties`) that names the card
            case observed
            /// no report found: worked out from related figures, as `source` explains
            case derived
        }
        public var bytes: Int
        public var basis: Basis
        /// Where the figure comes from (URL and date, or the derivation).
        public var source: String
    }

    public var name: String
    public var aliases: [String]
    public var vendor: String
    public var architecture: String
    public var formFactor: String
    public var segment: String
    public var nominalMemoryGB: Int
    public var memoryBytes: Int
    public var memoryType: String
    public var memoryBandwidthBytesPerSecond: Double
    /// Dense peak TFLOP/s by dtype key: fp32, tf32, fp16, bf16, fp8, int8.
    public var denseTflops: [String: Double]
    public var interconnect: Interconnect
    public var tdpWatts: Int
    public var source: String
    public var price: Price
    public var notes: String?
    /// Absent only in hand-written profiles (`--gpu FILE`): the nominal size is used then,
    /// and the plan's notes say so.
    public var usableMemory: UsableMemory?

    /// The capacity every fit verdict, headroom and limit search compares against.
    public var usableMemoryBytes: Int { usableMemory?.bytes ?? memoryBytes }

    /// "24 GB card, 23.49 GiB usable" (or "… its nominal … (no usable figure in its profile)").
    public var capacityLabel: String {
        guard let u = usableMemory else { return "\(nominalMemoryGB) GB card, its nominal \(Units.gib(memoryBytes)) (no usable figure in its profile)" }
        return "\(nominalMemoryGB) GB card, \(Units.capacity(u.bytes)) usable"
    }

    /// Whether the GPU has tensor cores for bf16 (Volta and Turing do not).
    public var supportsBF16: Bool { denseTflops["bf16"] != nil }
}

/// Loads the bundled profiles and resolves `--gpu` arguments.
public enum HardwareCatalog {
    /// The bundled profiles' folder: the top-level `hardware-profiles/` of the repository,
    /// shipped as a resource of this library so the binary finds it from any directory.
    public static var directory: URL {
        get throws { try BundledFiles.folder("hardware-profiles") }
    }

    /// Every bundled profile, sorted by memory then name.
    public static func bundled() throws -> [GPUProfile] {
        let dir = try directory
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        var profiles: [GPUProfile] = []
        for file in files.sorted() where file.hasSuffix(".json") {
            profiles.append(try load(path: dir.appendingPathComponent(file).path))
        }
        guard !profiles.isEmpty else {
            throw PlanError.invalidHardwareProfile(path: dir.path, reason: "no bundled profiles found (reinstall)")
        }
        return profiles.sorted { ($0.memoryBytes, $0.name) < ($1.memoryBytes, $1.name) }
    }

    /// Reads and checks one profile file.
    public static func load(path: String) throws -> GPUProfile {
        guard let data = try? ConfigReader.smallFile(path) else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "not a readable JSON file of at most \(ConfigReader.fileSizeLimit >> 20) MiB")
        }
        return try parse(data: data, path: path)
    }

    /// Decodes and checks a profile's bytes; `path` names it in errors.
    public static func parse(data: Data, path: String) throws -> GPUProfile {
        let p: GPUProfile
        do {
            p = try JSONDecoder().decode(GPUProfile.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw PlanError.invalidHardwareProfile(path: path, reason: "missing field '\((ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))'")
        } catch let DecodingError.dataCorrupted(ctx) where !ctx.codingPath.isEmpty {
            throw PlanError.invalidHardwareProfile(path: path, reason: "invalid value at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'"
                + (ctx.codingPath.last?.stringValue == "basis" ? " (accepted: \(GPUProfile.UsableMemory.Basis.allCases.map(\.rawValue).joined(separator: ", ")))" : ""))
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw PlanError.invalidHardwareProfile(path: path, reason: "wrong type at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'")
        } catch {
            throw PlanError.invalidHardwareProfile(path: path, reason: "not a valid profile JSON")
        }
        guard !p.name.trimmingCharacters(in: .whitespaces).isEmpty,
              !p.name.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }),
              p.name.count <= 64 else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "name must be 1 to 64 printable characters")
        }
        guard p.memoryBytes >= 1 << 20, p.memoryBytes < 1 << 50 else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "memoryBytes must be between 1 MiB and 1 PiB")
        }
        if let u = p.usableMemory {
            guard u.bytes >= 1 << 20, u.bytes <= p.memoryBytes else {
                throw PlanError.invalidHardwareProfile(path: path, reason: "usableMemory.bytes must be from 1 MiB to memoryBytes (\(p.memoryBytes))")
            }
            guard !u.source.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, u.source.count <= 4096,
                  !u.source.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
                throw PlanError.invalidHardwareProfile(path: path, reason: "usableMemory.source must say where the figure comes from, in at most 4096 printable characters")
            }
        }
        guard p.nominalMemoryGB >= 1, p.nominalMemoryGB < 1 << 20, p.tdpWatts >= 0 else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "nominalMemoryGB must be positive and tdpWatts not negative")
        }
        guard p.denseTflops.values.allSatisfy({ $0.isFinite && $0 >= 0.01 && $0 <= 1e6 }),
              p.denseTflops["fp32"] != nil || p.denseTflops["bf16"] != nil || p.denseTflops["fp16"] != nil else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "denseTflops needs figures from 0.01 to 1,000,000 for fp32, fp16 or bf16")
        }
        // Bounds a real device keeps, so that no figure divides time into infinity.
        guard p.price.usdPerHour.isFinite, p.price.usdPerHour >= 0, p.price.usdPerHour <= 10_000,
              p.memoryBandwidthBytesPerSecond >= 1e9, p.memoryBandwidthBytesPerSecond <= 1e15,
              p.interconnect.bytesPerSecond >= 1e6, p.interconnect.bytesPerSecond <= 1e15 else {
            throw PlanError.invalidHardwareProfile(path: path, reason: "price must be 0 to 10,000 USD/h, memory bandwidth 1e9 to 1e15 and interconnect 1e6 to 1e15 bytes/s")
        }
        return p
    }

    /// Folds case, spaces, dashes and underscores away, as `--gpu` matching does.
    static func key(_ s: String) -> String {
        String(s.lowercased().filter { !" -_".contains($0) })
    }

    /// Resolves one `--gpu` value: "24GB" (every profile of that size), a name or alias
    /// (ignoring case, spaces and dashes), or a path to a profile file.
    public static func select(_ query: String, from profiles: [GPUProfile]) throws -> [GPUProfile] {
        let q = query.trimmingCharacters(in: .whitespaces)
        let upper = q.uppercased()
        if upper.hasSuffix("GB"), let n = Int(upper.dropLast(2).trimmingCharacters(in: .whitespaces)) {
            let hits = profiles.filter { $0.nominalMemoryGB == n }
            guard !hits.isEmpty else {
                let sizes = Set(profiles.map(\.nominalMemoryGB)).sorted().map { "\($0)GB" }
                throw PlanError.invalidSetting(.gpu, value: query,
                                               accepted: "no bundled profile has that memory size; sizes: \(sizes.joined(separator: ", "))")
            }
            return hits
        }
        let k = key(q)
        let exact = profiles.filter { key($0.name) == k || $0.aliases.contains { key($0) == k } }
        if exact.count == 1 { return exact }
        if exact.count > 1 { throw PlanError.ambiguousGPU(query, candidates: exact.map(\.name)) }
        if q.hasSuffix(".json") || q.contains("/") {
            if FileManager.default.fileExists(atPath: q) { return [try load(path: q)] }
            throw PlanError.invalidHardwareProfile(path: q, reason: "no such file")
        }
        let partial = profiles.filter { key($0.name).contains(k) }
        if partial.count == 1 { return partial }
        if partial.count > 1 { throw PlanError.ambiguousGPU(query, candidates: partial.map(\.name)) }
        let names = profiles.flatMap { [$0.name] + $0.aliases }
        throw PlanError.unknownGPU(query, suggestion: closest(to: q, among: names))
    }
}
