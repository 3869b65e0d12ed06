import Foundation
import PEFTPlan

/// Renders the serving plan (`plan --serve`): memory by part and, per GPU, whether it fits
/// and how many requests fit at once.
public enum ServingOutput {
    public static func render(_ r: ServeRequest, as format: OutputFormat) throws -> String {
        let m = try Serving.memory(r, concurrency: r.concurrency)
        let v = try Serving.verdicts(r)
        if format == .json {
            return JSONValue.object([
                ("model", .string(r.arch.name)), ("adapters", .int(r.adapters)), ("context", .int(r.context)),
                ("concurrency", .int(r.concurrency)), ("quantised_base", .bool(r.quantisedBase)),
                ("memory", .object([("base_weights", .int(m.baseWeights)), ("adapter_weights", .int(m.adapterWeights)),
                                    ("kv_cache", .int(m.kvCache)), ("workspace", .int(m.workspace)),
                                    ("runtime_overhead", .int(m.runtimeOverhead)), ("device_total", .int(m.total)),
                                    ("kv_bytes_per_token", .int(m.kvBytesPerToken))])),
                ("gpus", .array(v.map { .object([("name", .string($0.gpu.name)), ("memory_bytes", .int($0.gpu.memoryBytes)),
                                                 ("usable_memory_bytes", .int($0.gpu.usableMemoryBytes)), ("fits", .bool($0.fits)), ("max_concurrency", .int($0.maxConcurrency))]) })),
            ]).render() + "\n"
        }
        var out = PlanOutput.wrap("Serving \(r.arch.name) (\(r.quantisedBase ? "4-bit" : "16-bit") base) with \(r.adapters) LoRA adapter\(r.adapters == 1 ? "" : "s") (r=\(r.methodOptions.loraR), targets \(r.methodOptions.loraTargets.text)), \(r.concurrency) request\(r.concurrency == 1 ? "" : "s") of \(r.context) tokens:", width: 100, indent: "  ")
        let rows: [(String, Int)] = [("base weights", m.baseWeights), ("adapters", m.adapterWeights), ("KV cache", m.kvCache),
                                     ("workspace", m.workspace), ("runtime", m.runtimeOverhead), ("device total", m.total)]
        for (k, b) in rows { out += "  " + PlanOutput.pad(k, 14) + PlanOutput.pad(PlanOutput.gib(b), 11, right: true) + "\n" }
        out += "  (KV cache: \(m.kvBytesPerToken / 1024) KiB per token)\n\n"
        out += "  " + PlanOutput.pad("GPU", 22) + PlanOutput.pad("usable", 11) + PlanOutput.pad("fits", 6) + "most requests of \(r.context) tokens at once\n"
        for x in v { out += "  " + PlanOutput.pad(x.gpu.name, 22) + PlanOutput.pad(PlanOutput.gib(x.gpu.usableMemoryBytes), 11) + PlanOutput.pad(x.fits ? "yes" : "no", 6) + "\(x.maxConcurrency)\n" }
        out += "\n" + PlanOutput.wrap("Assumptions: one base copy; every adapter resident in the model dtype (servers that page adapters to the host need fewer); KV cache in 16 bits for the full context of every request (paged caches allocate as tokens arrive, so this is the worst case); prefill in chunks of \(Serving.prefillChunk) tokens.", width: 100, indent: "")
        return out
    }
}
