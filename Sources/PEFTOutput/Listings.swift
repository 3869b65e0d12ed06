import Foundation
import PEFTPlan

/// `peft-plan models` and `peft-plan gpus`.
public enum Listings {
    public static func models(json: Bool) throws -> String {
        var rows: [(Presets.Entry, Architecture)] = []
        for e in Presets.all { rows.append((e, try Presets.architecture(named: e.name)!)) }
        if json {
            return JSONValue.array(rows.map { e, a in
                .object([("name", .string(e.name)), ("aliases", .array(e.aliases.map(JSONValue.string))),
                         ("model_type", .string(a.family.rawValue)), ("total_params", .int(a.totalParams)), ("source", .string(e.source))])
            }).render() + "\n"
        }
        // columns as wide as their longest entry, two spaces apart
        let nameWidth = max(16, (rows.map(\.0.name.count).max() ?? 0) + 2)
        let typeWidth = max(10, (rows.map(\.1.family.rawValue.count).max() ?? 0) + 2)
        var out = PlanOutput.pad("preset", nameWidth) + PlanOutput.pad("type", typeWidth) + PlanOutput.pad("params", 10) + "aliases\n"
        for (e, a) in rows {
            out += PlanOutput.pad(e.name, nameWidth) + PlanOutput.pad(a.family.rawValue, typeWidth)
                + PlanOutput.pad(PlanOutput.params(a.totalParams), 10) + e.aliases.joined(separator: ", ") + "\n"
        }
        out += "\nEach preset is the public config.json of its checkpoint (`peft-plan models --format json` names it).\n"
        out += "\n--model also takes a Hugging Face config.json (or a folder holding one) of type: "
        out += ModelFamily.allCases.map(\.rawValue).joined(separator: ", ") + ".\n"
        return out
    }

    public static func gpus(json: Bool) throws -> String {
        let profiles = try HardwareCatalog.bundled()
        if json {
            return JSONValue.array(profiles.map { p in
                .object([("name", .string(p.name)), ("memory_bytes", .int(p.memoryBytes)), ("nominal_memory_gb", .int(p.nominalMemoryGB)),
                         ("usable_memory_bytes", .int(p.usableMemoryBytes)),
                         ("usable_memory_basis", p.usableMemory.map { .string($0.basis.rawValue) } ?? .null),
                         ("usable_memory_source", p.usableMemory.map { .string($0.source) } ?? .null),
                         ("bf16_tflops", p.denseTflops["bf16"].map(JSONValue.double) ?? .null),
                         ("fp16_tflops", p.denseTflops["fp16"].map(JSONValue.double) ?? .null),
                         ("bandwidth_bytes_per_second", .double(p.memoryBandwidthBytesPerSecond)),
                         ("usd_per_hour", .double(p.price.usdPerHour)), ("price_date", .string(p.price.date)), ("source", .string(p.source))])
            }).render() + "\n"
        }
        var out = PlanOutput.pad("GPU", 18) + PlanOutput.pad("memory", 8) + PlanOutput.pad("usable", 20) + PlanOutput.pad("bf16 TFLOP/s", 14) + PlanOutput.pad("bandwidth", 12) + "$/hour (date)\n"
        for p in profiles {
            let tf = p.denseTflops["bf16"].map { String(format: "%.1f", $0) } ?? (p.denseTflops["fp16"].map { String(format: "%.1f (fp16)", $0) } ?? "–")
            let usable = PlanOutput.capacity(p.usableMemoryBytes) + " " + (p.usableMemory?.basis.rawValue ?? "nominal")
            out += PlanOutput.pad(p.name, 18) + PlanOutput.pad("\(p.nominalMemoryGB) GB", 8) + PlanOutput.pad(usable, 20) + PlanOutput.pad(tf, 14)
                + PlanOutput.pad(String(format: "%.0f GB/s", p.memoryBandwidthBytesPerSecond / 1e9), 12)
                + String(format: "%.2f (%@)", p.price.usdPerHour, p.price.date) + "\n"
        }
        out += "\nUsable: the device total PyTorch reports on the card, which fit verdicts use; measured in our runs,\n"
        out += "observed in a public report that names the card, or derived where none was found (`--format json`\n"
        out += "gives each figure's source). Dense (non-sparse) peaks from vendor datasheets; each profile's JSON\nnames its source.\n"
        out += "Prices are typical on-demand figures at their date, as each profile states.\n"
        return out
    }

    /// The price catalogue (bundled, or `file`): providers with their billing, then every offer
    /// with its date and source.
    public static func prices(json: Bool, file: String? = nil) throws -> String {
        let c = try file.map { try PriceCatalogue.load(path: $0) } ?? PriceCatalogue.bundled()
        if json {
            return JSONValue.object([
                ("providers", .array(c.providers.map { p in
                    .object([("name", .string(p.name)), ("kind", .string(p.kind)), ("billing_unit_seconds", .double(p.billing.unitSeconds)),
                             ("minimum_billed_seconds", .double(p.billing.minimumSeconds)), ("billing_source", .string(p.billing.source))])
                })),
                ("offers", .array(c.offers.map { o in
                    .object([("provider", .string(o.provider)), ("tier", .string(o.tier)), ("gpu", .string(o.gpu)),
                             ("usd_per_gpu_hour", .double(o.usdPerGPUHour)), ("offering", .string(o.offering)),
                             ("gpus_per_instance", .int(o.gpusPerInstance)), ("date", .string(o.date)), ("source", .string(o.source))])
                })),
            ]).render() + "\n"
        }
        var out = ""
        for p in c.providers {
            out += "\(p.name) (\(p.kind)), billed \(p.billing.summary)\n"
            for o in c.offers where o.provider == p.name {
                out += "  " + PlanOutput.pad(o.tier, 14) + PlanOutput.pad(o.gpu, 15) + PlanOutput.pad(String(format: "$%.2f", o.usdPerGPUHour), 8)
                    + PlanOutput.pad("×\(o.gpusPerInstance)", 5) + o.date + "\n"
            }
        }
        out += "\nPer GPU-hour, as each source page showed it on its date; an instance of several GPUs is rented\n"
        out += "whole. `--format json` gives every offer's source page; `peft-plan plan --provider NAME` prices a plan\n"
        out += "with them, `--price-file FILE` takes your own rates in the same format.\n"
        return out
    }
}
