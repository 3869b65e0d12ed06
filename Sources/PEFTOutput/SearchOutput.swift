import Foundation
import PEFTPlan

/// Renders a ``SearchResult``: ranked tables for people, every candidate's numbers in JSON.
public enum SearchOutput {
    public static func render(_ r: SearchResult, as format: OutputFormat) -> String {
        switch format {
        case .json: return json(r).render() + "\n"
        default: return table(r)
        }
    }

    static func describe(_ c: Candidate) -> String {
        var s = c.scale.gpus == 1 ? "1 GPU" : "\(c.scale.gpus) GPUs \(c.scale.sharding.rawValue)"
        if c.scale.offload != .none { s += " +offload \(c.scale.offload.rawValue)" }
        return s
    }

    static func row(_ c: Candidate) -> String {
        let cells = [
            PlanOutput.pad(c.method.rawValue, 8), PlanOutput.pad(String(c.gpu.name.prefix(14)), 14), PlanOutput.pad(describe(c), 24),
            PlanOutput.pad("\(c.batch)×\(c.gradAccum)", 6, right: true), PlanOutput.pad(c.checkpointing ? "on" : "off", 4),
            PlanOutput.pad(PlanOutput.gibNumber(c.deviceBytes), 6, right: true),
            PlanOutput.pad(PlanOutput.hours(c.time.hours), 7, right: true), PlanOutput.pad(PlanOutput.dollars(c.time.costUSD), 7, right: true),
        ]
        return "  " + cells.joined(separator: " ") + "\n"
    }

    static let header = "  " + [PlanOutput.pad("method", 8), PlanOutput.pad("GPU", 14), PlanOutput.pad("GPUs", 24),
                                 PlanOutput.pad("mb×acc", 6, right: true), PlanOutput.pad("ckpt", 4), PlanOutput.pad("GiB/GPU", 6, right: true),
                                 PlanOutput.pad("hours", 7, right: true), PlanOutput.pad("cost", 7, right: true)].joined(separator: " ") + "\n"

    public static func table(_ r: SearchResult) -> String {
        let a = r.request.arch, t = r.request.training
        var out = PlanOutput.wrap("\(a.name): \(PlanOutput.params(a.totalParams)) parameters; seq \(t.seq), \(t.precision.rawValue), \(t.optimizer.rawValue)\(t.trainer.kind == .sft ? "" : ", TRL's \(t.trainer.kind.title) trainer"); \(r.request.budget.steps.map { "\($0) optimizer steps" } ?? r.request.dataset.summary.forCommandLine).", width: 100, indent: "  ")
        out += PlanOutput.wrap("Searched \(r.evaluated) configurations (methods × GPU types × 1–64 GPUs × sharding × offload × micro-batch × checkpointing): \(r.fitting) fit (the time a search takes: `peft-plan bench-search`).", width: 100, indent: "")
        guard !r.cheapest.isEmpty else {
            return out + "\nNothing fits: try larger GPUs (--gpu 80GB), a PEFT method, or a shorter --seq.\n"
        }
        out += "\nCheapest plans that fit (mb×acc = micro-batch × gradient accumulation; memory per GPU):\n" + header
        for c in r.cheapest { out += row(c) }
        out += "\nFastest plans that fit:\n" + header
        for c in r.fastest { out += row(c) }
        out += "\nFewest GPUs per method:\n" + header
        for c in r.fewestGPUs { out += row(c) }
        let host = r.cheapest.first { $0.hostBytes > 0 }
        if let h = host { out += "\nOffloaded plans need host RAM: \(PlanOutput.gib(h.hostBytes)) for \(describe(h)) (JSON: host_bytes).\n" }
        out += "\n" + PlanOutput.wrap("Every candidate trains \(r.globalBatch) sequences per optimizer step (--global-batch; micro-batch × accumulation × GPUs, at least one per GPU); time and cost as `peft-plan plan` states them (runtime \(r.request.runtime.name)).", width: 100, indent: "")
        return out
    }

    static func candidateJSON(_ c: Candidate, _ k: TimeCoefficients) -> JSONValue {
        .object([
            ("method", .string(c.method.rawValue)), ("gpu", .string(c.gpu.name)), ("count", .int(c.scale.gpus)),
            ("sharding", .string(c.scale.sharding.rawValue)), ("offload", .string(c.scale.offload.rawValue)),
            ("micro_batch", .int(c.batch)), ("grad_accum", .int(c.gradAccum)), ("grad_checkpointing", .bool(c.checkpointing)),
            ("device_total", .int(c.deviceBytes)), ("host_bytes", .int(c.hostBytes)),
            ("tokens_per_second", .double(c.time.tokensPerSecond)), ("hours", .double(c.time.hours)), ("cost_usd", .double(c.time.costUSD)),
            ("range", PlanOutput.rangeJSON(c.time, k)),
            ("provider", c.time.provider.map { .string($0) } ?? .null), ("offering", c.time.offering.map { .string($0) } ?? .null),
            ("usd_per_gpu_hour", .double(c.time.pricePerGPUHour)),
        ])
    }

    public static func json(_ r: SearchResult) -> JSONValue {
        .object([
            ("model", .string(r.request.arch.name)), ("evaluated", .int(r.evaluated)), ("fitting", .int(r.fitting)),
            ("cheapest", .array(r.cheapest.map { candidateJSON($0, r.request.runtime.time) })),
            ("fastest", .array(r.fastest.map { candidateJSON($0, r.request.runtime.time) })),
            ("fewest_gpus", .array(r.fewestGPUs.map { candidateJSON($0, r.request.runtime.time) })),
        ])
    }
}
