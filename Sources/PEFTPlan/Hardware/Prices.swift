import Foundation

/// How a provider bills: in increments of `unitSeconds`, with at least `minimumSeconds`
/// charged per run, as its billing page says (`source`).
public struct Billing: Codable, Equatable, Sendable {
    public var unitSeconds: Double
    public var minimumSeconds: Double
    public var source: String

    public init(unitSeconds: Double, minimumSeconds: Double, source: String) {
        (self.unitSeconds, self.minimumSeconds, self.source) = (unitSeconds, minimumSeconds, source)
    }

    /// The seconds charged for a run of `seconds`: rounded up to the billing increment, never
    /// below the minimum charge.
    public func billedSeconds(_ seconds: Double) -> Double {
        guard seconds.isFinite, seconds > 0 else { return minimumSeconds }
        return max(minimumSeconds, (seconds / unitSeconds).rounded(.up) * unitSeconds)
    }

    /// "per second (60 s minimum)", "per minute", "per hour".
    public var summary: String {
        let unit: String
        switch unitSeconds {
        case 1: unit = "per second"
        case 60: unit = "per minute"
        case 3600: unit = "per hour"
        default: unit = "per \(Units.plain(unitSeconds)) s"
        }
        return minimumSeconds > unitSeconds ? "\(unit) (\(Units.plain(minimumSeconds)) s minimum)" : unit
    }
}

/// A GPU cloud: its name (what `--provider` takes), its kind and its billing.
public struct PriceProvider: Codable, Equatable, Sendable {
    public var name: String
    /// hyperscaler, gpu-cloud or marketplace
    public var kind: String
    public var billing: Billing
}

/// One rental offer: a provider's price per GPU-hour for a GPU type in a tier, with where and
/// when the figure was read.
public struct PriceOffer: Codable, Equatable, Sendable {
    public var provider: String
    /// on-demand, spot, community (a marketplace's hosts) or interruptible
    public var tier: String
    /// The hardware profile's name (`peft-plan gpus`).
    public var gpu: String
    public var usdPerGPUHour: Double
    /// The instance or SKU as the provider names it, and how many GPUs it has.
    public var offering: String
    public var gpusPerInstance: Int
    /// The page the price was read from, and the date it shows (YYYY-MM or YYYY-MM-DD).
    public var source: String
    public var date: String
    public var notes: String?
}

/// A dated catalogue of GPU rental prices (`Resources/prices/catalogue.json`), or a team's own
/// negotiated rates in the same format (`--price-file`).
public struct PriceCatalogue: Codable, Equatable, Sendable {
    public var providers: [PriceProvider]
    public var offers: [PriceOffer]

    public static let tiers = ["on-demand", "spot", "community", "interruptible"]

    /// The catalogue bundled with the library.
    public static func bundled() throws -> PriceCatalogue {
        try load(path: BundledFiles.folder("prices").appendingPathComponent("catalogue.json").path)
    }

    /// Reads and checks a catalogue: every offer names a known provider and a bundled GPU
    /// profile, a price from $0.001 to $10,000 per GPU-hour, a source and a date; every
    /// provider a billing increment from 1 s to a day.
    public static func load(path: String) throws -> PriceCatalogue {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PlanError.unreadableConfig(path: path, reason: "cannot read the price file (\(error.localizedDescription))")
        }
        return try parse(data: data, path: path)
    }

    /// Decodes and checks a catalogue's bytes (see ``load(path:)``).
    public static func parse(data: Data, path: String) throws -> PriceCatalogue {
        guard data.count <= 4 << 20 else { throw PlanError.malformedConfig(path: path, reason: "larger than 4 MiB, far beyond a price list") }
        let catalogue: PriceCatalogue
        do { catalogue = try JSONDecoder().decode(PriceCatalogue.self, from: data) } catch {
            throw PlanError.malformedConfig(path: path, reason: "not a price catalogue: {\"providers\": [{name, kind, billing: {unitSeconds, minimumSeconds, source}}], \"offers\": [{provider, tier, gpu, usdPerGPUHour, offering, gpusPerInstance, source, date}]}")
        }
        try catalogue.validate(path: path, profiles: HardwareCatalog.bundled())
        return catalogue
    }

    func validate(path: String, profiles: [GPUProfile]) throws {
        func bad(_ reason: String) -> PlanError { .malformedConfig(path: path, reason: reason) }
        func text(_ s: String, max: Int = 512) -> Bool { !s.isEmpty && s.count <= max && !s.unicodeScalars.contains { $0.properties.generalCategory == .control } }
        guard !providers.isEmpty, !offers.isEmpty else { throw bad("a price catalogue needs providers and offers") }
        var names = Set<String>()
        for p in providers {
            guard text(p.name, max: 64), names.insert(p.name.lowercased()).inserted else { throw bad("provider names must be non-empty and unique (\(p.name.prefix(64)))") }
            guard text(p.kind, max: 64), text(p.billing.source, max: 4096) else { throw bad("provider \(p.name): kind and billing source must be given") }
            let b = p.billing
            guard b.unitSeconds.isFinite, b.unitSeconds >= 1, b.unitSeconds <= 86_400, b.minimumSeconds.isFinite, b.minimumSeconds >= 0, b.minimumSeconds <= 86_400 else {
                throw bad("provider \(p.name): billing unitSeconds from 1 to 86400 and minimumSeconds from 0 to 86400")
            }
        }
        for o in offers {
            guard names.contains(o.provider.lowercased()) else { throw bad("offer for \(o.gpu.prefix(64)): unknown provider '\(o.provider.prefix(64))'") }
            guard Self.tiers.contains(o.tier) else { throw bad("offer \(o.provider) \(o.gpu.prefix(64)): tier must be one of \(Self.tiers.joined(separator: ", "))") }
            guard profiles.contains(where: { $0.name == o.gpu }) else {
                throw bad("offer \(o.provider): '\(o.gpu.prefix(64))' is not a GPU profile name (peft-plan gpus lists them)")
            }
            guard o.usdPerGPUHour.isFinite, o.usdPerGPUHour >= 0.001, o.usdPerGPUHour <= 10_000 else {
                throw bad("offer \(o.provider) \(o.gpu): usdPerGPUHour must be from 0.001 to 10000")
            }
            guard o.gpusPerInstance >= 1, o.gpusPerInstance <= 1024, text(o.offering), text(o.source, max: 4096) else {
                throw bad("offer \(o.provider) \(o.gpu): offering, gpusPerInstance (1–1024) and source must be given")
            }
            guard o.date.range(of: #"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$"#, options: .regularExpression) != nil else {
                throw bad("offer \(o.provider) \(o.gpu): date must be YYYY-MM or YYYY-MM-DD (the date the source shows)")
            }
        }
    }

    /// The provider a `--provider` value names (case-insensitive), if any.
    public func provider(named name: String) -> PriceProvider? {
        providers.first { $0.name.lowercased() == name.lowercased() }
    }

    /// The provider's offer for the GPU in the tier that charges least for `gpus` GPUs, and the
    /// GPUs it charges: instances are rented whole (one GPU on an 8-GPU instance pays for eight).
    public func offer(provider: String, gpu: String, gpus: Int, tier: String = "on-demand") -> (offer: PriceOffer, charged: Int)? {
        offers.filter { $0.provider.lowercased() == provider.lowercased() && $0.gpu == gpu && $0.tier == tier }
            .map { o in (o, (gpus + o.gpusPerInstance - 1) / o.gpusPerInstance * o.gpusPerInstance) }
            .min { Double($0.1) * $0.0.usdPerGPUHour < Double($1.1) * $1.0.usdPerGPUHour }
    }

    /// The GPU profiles the provider offers in the tier, in catalogue order.
    public func gpus(provider: String, tier: String = "on-demand") -> [String] {
        var seen: [String] = []
        for o in offers where o.provider.lowercased() == provider.lowercased() && o.tier == tier && !seen.contains(o.gpu) { seen.append(o.gpu) }
        return seen
    }
}
