import ArgumentParser
import Foundation
import PEFTEngine
import PEFTOutput
import PEFTPlan

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Engine throughput on one configuration: tokens/s, GEMM share and GFLOP/s, peak bytes, BLAS core and threads.")

    @Option(help: "Model: tiny (hidden 256, 4 layers, 4 heads, intermediate 688, vocab 1000), or a Llama-type config.json.")
    var model: String = "tiny"
    @Option(help: "full|lora|qlora|adapter|prefix|prompt|ia3 (LoRA/QLoRA r8 on wq, wv; IA³ on wk, wv, w2; 20 prompt or prefix tokens; Pfeiffer adapters, reduction 16)") var method: String = "full"
    @Option(parsing: .unconditional, help: "Micro-batch (default 4).") var batch: String?
    @Option(parsing: .unconditional, help: "Sequence length (default 128).") var seq: String?
    @Option(parsing: .unconditional, help: "Timed steps after one warm-up step (default 30).") var steps: String?
    @Option(parsing: .unconditional, help: "LoRA/QLoRA rank (default 8; targets wq, wv as PEFT's default for Llama; alpha = 2 × rank).") var loraR: String?
    @Flag(inversion: .prefixedNo, help: "QLoRA double quantisation of the absmax values (default on).") var doubleQuant = true
    @Option(help: "Bottleneck adapter: pfeiffer|houlsby (default pfeiffer).") var adapter: String?
    @Option(parsing: .unconditional, help: "Bottleneck reduction factor (default 16; it must divide the hidden size).") var adapterReduction: String?
    @Option(parsing: .unconditional, help: "Prefix tuning: virtual tokens (default 20).") var prefixTokens: String?
    @Option(parsing: .unconditional, help: "Prefix tuning: reparameterisation MLP width (default 0 = none).") var prefixProjection: String?
    @Option(parsing: .unconditional, help: "Prompt tuning: virtual tokens (default 20).") var promptTokens: String?
    @Flag(help: "Gradient checkpointing per block.") var gradCheckpointing = false
    @Option(help: "table|json") var format: String = "table"

    func run() throws {
        let b = try PlanningOptions.integer(batch, "--batch", default: 4)
        let s = try PlanningOptions.integer(seq, "--seq", default: 128)
        let n = try PlanningOptions.integer(steps, "--steps", default: 30)
        let r = try PlanningOptions.integer(loraR, "--lora-r", default: 8)
        let reduction = try PlanningOptions.integer(adapterReduction, "--adapter-reduction", default: 16)
        let prefixT = try PlanningOptions.integer(prefixTokens, "--prefix-tokens", default: 20)
        let projection = try PlanningOptions.integer(prefixProjection, "--prefix-projection", default: 0)
        let promptT = try PlanningOptions.integer(promptTokens, "--prompt-tokens", default: 20)
        for (flag, v, range) in [("--batch", b, 1...4096), ("--seq", s, 1...65536), ("--steps", n, 1...100_000), ("--lora-r", r, 1...4096),
                                 ("--adapter-reduction", reduction, 1...65536), ("--prefix-tokens", prefixT, 1...65536),
                                 ("--prefix-projection", projection, 0...65536), ("--prompt-tokens", promptT, 1...65536)]
            where !range.contains(v) {
            throw PlanError.invalidOption(option: flag, value: "\(v)", accepted: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        guard ["table", "json"].contains(format) else { throw PlanError.invalidOption(option: "--format", value: format, accepted: "table or json") }
        let config = try EngineModels.config(model)
        let m: EngineMethod
        let name = method.lowercased()
        switch name {
        case "full": m = .full
        case "lora": m = .lora(rank: r, alpha: Float(2 * r), targets: [.wq, .wv])
        case "qlora": m = .qlora(rank: r, alpha: Float(2 * r), targets: [.wq, .wv], doubleQuant: doubleQuant)
        case "adapter":
            guard ["pfeiffer", "houlsby"].contains(adapter?.lowercased() ?? "pfeiffer") else {
                throw PlanError.invalidOption(option: "--adapter", value: adapter ?? "", accepted: "pfeiffer or houlsby")
            }
            guard config.dim % reduction == 0, config.dim / reduction >= 1 else {
                throw PlanError.invalidOption(option: "--adapter-reduction", value: "\(reduction)", accepted: "a divisor of the hidden size \(config.dim)")
            }
            m = .adapter(houlsby: adapter?.lowercased() == "houlsby", reduction: reduction)
        case "ia3": m = .ia3Default
        case "prompt": m = .prompt(tokens: promptT)
        case "prefix": m = .prefix(tokens: prefixT, projection: projection)
        default: throw PlanError.invalidOption(option: "--method", value: method, accepted: "full, lora, qlora, adapter, prefix, prompt or ia3")
        }
        for (flag, given, applies) in [("--lora-r", loraR != nil, ["lora", "qlora"]), ("--no-double-quant", !doubleQuant, ["qlora"]),
                                       ("--adapter", adapter != nil, ["adapter"]), ("--adapter-reduction", adapterReduction != nil, ["adapter"]),
                                       ("--prefix-tokens", prefixTokens != nil, ["prefix"]), ("--prefix-projection", prefixProjection != nil, ["prefix"]),
                                       ("--prompt-tokens", promptTokens != nil, ["prompt"])] where given && !applies.contains(name) {
            throw PlanError.contradictoryOptions("\(flag) applies to --method \(applies.joined(separator: " or "))")
        }
        let need = EngineBench.estimatedPeakBytes(config: config, method: m, batch: b, seq: s)
        let have = Double(ProcessInfo.processInfo.physicalMemory) * 0.7
        guard need <= have else {
            throw PlanError.invalidOption(option: "--batch", value: "\(b) with --seq \(s)",
                                          accepted: String(format: "a configuration this machine can hold: it needs about %.1f GiB, 70%% of memory is %.1f GiB", need / 1073741824, have / 1073741824))
        }
        let r0 = EngineBench.run(config: config, method: m, batch: b, seq: s, steps: n, checkpointing: gradCheckpointing)
        if format == "json" {
            PeftPlan.emit(EngineModels.json(r0, burst: try BurstRecord(r0).json()))
        } else {
            PeftPlan.emit(EngineModels.table(r0))
        }
    }
}

/// Bridges the planner's model presets to the engine, and prints bench results.
enum EngineModels {
    static func config(_ model: String) throws -> EngineConfig {
        let a = try Presets.resolve(model)
        guard a.family == .llama else {
            throw PlanError.invalidOption(option: "--model", value: model, accepted: "a Llama-type model (the engine's architecture), such as tiny")
        }
        guard a.hiddenSize == a.numHeads * a.headDim, a.headDim % 2 == 0 else {
            throw PlanError.invalidOption(option: "--model", value: model, accepted: "a model whose head_dim × heads equals hidden_size, with an even head_dim")
        }
        guard a.totalParams <= 2_000_000_000 else {
            throw PlanError.invalidOption(option: "--model", value: model, accepted: "a model of at most 2 billion parameters (the engine trains in fp32 on the CPU)")
        }
        return EngineConfig(dim: a.hiddenSize, layers: a.numLayers, heads: a.numHeads, kvHeads: a.nKVHeads, hidden: a.intermediateSize,
                            vocab: a.vocabSize, tied: a.tiedEmbeddings)
    }

    static func json(_ r: BenchResult, burst: String) -> String {
        let c = r.config
        var cats: [(String, JSONValue)] = MemoryCategory.allCases.map { ($0.rawValue, .int(r.peakByCategory[$0] ?? 0)) }
        cats.sort { $0.0 < $1.0 }
        return JSONValue.object([
            ("tokens_per_second", .double(r.tokensPerSecond)), ("step_ms_median", .double(r.stepMillisecondsMedian)),
            ("step_ms", .array(r.stepMilliseconds.map(JSONValue.double))),
            ("gemm_share", .double(r.gemmShare)), ("gemm_gflops", .double(r.gemmGFLOPs)),
            ("peak_bytes", .int(r.peakBytes)), ("peak_rss_bytes", .int(r.peakResidentBytes)), ("peak_bytes_by_category", .object(cats)),
            ("phase_peaks", .object(EnginePhase.allCases.map { ($0.rawValue, .int(r.phasePeaks[$0] ?? 0)) })),
            ("phase_ms", .object([EnginePhase.forward, .backward, .optimizer].map { ($0.rawValue, .double((r.phaseSeconds[$0] ?? 0) * 1000)) })),
            ("blas_core", .string(r.blasCore)), ("threads", .int(r.threads)),
            ("losses", .array(r.losses.map { .double(Double($0)) })),
            ("config", .object([("dim", .int(c.dim)), ("layers", .int(c.layers)), ("heads", .int(c.heads)), ("kv_heads", .int(c.kvHeads)),
                                ("hidden", .int(c.hidden)), ("vocab", .int(c.vocab)), ("tied", .bool(c.tied)),
                                ("method", .string(r.method)), ("batch", .int(r.batch)), ("seq", .int(r.seq)), ("steps", .int(r.steps)),
                                ("precision", .string("fp32")), ("optimizer", .string("adamw")), ("grad_checkpointing", .bool(r.checkpointing))])),
            ("burst", .string("@BURST@")),
        ]).render().replacingOccurrences(of: "\"@BURST@\"", with: burst.replacingOccurrences(of: "\n", with: "\n  ")) + "\n"
    }

    static func table(_ r: BenchResult) -> String {
        let c = r.config
        var out = "engine: \(r.method), dim \(c.dim), \(c.layers) layers, \(c.heads) heads (\(c.kvHeads) KV), intermediate \(c.hidden), vocab \(c.vocab); "
        out += "batch \(r.batch) × seq \(r.seq), fp32, AdamW; \(r.steps) timed steps after 1 warm-up\n"
        out += String(format: "tokens/s: %.0f (median step %.1f ms; min %.1f, max %.1f)\n", r.tokensPerSecond, r.stepMillisecondsMedian,
                      r.stepMilliseconds.min() ?? 0, r.stepMilliseconds.max() ?? 0)
        out += String(format: "GEMM: %.0f%% of the time, %.1f GFLOP/s\n", r.gemmShare * 100, r.gemmGFLOPs)
        out += "time per step: " + [EnginePhase.forward, .backward, .optimizer].map { String(format: "%@ %.1f ms", $0.rawValue, (r.phaseSeconds[$0] ?? 0) * 1000) }.joined(separator: ", ") + "\n"
        out += "peak bytes (ledger): \(r.peakBytes) (\(PlanOutput.gib(r.peakBytes))); process peak RSS \(PlanOutput.gib(r.peakResidentBytes)); by phase: "
        out += EnginePhase.allCases.compactMap { p in r.phasePeaks[p].map { "\(p.rawValue) \(PlanOutput.gib($0))" } }.joined(separator: ", ") + "\n"
        out += "peak by category: " + MemoryCategory.allCases.compactMap { k in
            (r.peakByCategory[k] ?? 0) > 0 ? "\(k.rawValue) \(PlanOutput.gib(r.peakByCategory[k]!))" : nil
        }.joined(separator: ", ") + "\n"
        out += String(format: "loss: %.3f → %.3f\n", r.losses.first ?? 0, r.losses.last ?? 0)
        out += "BLAS: OpenBLAS, core \(r.blasCore), \(r.threads) thread\(r.threads == 1 ? "" : "s")\n"
        return out
    }
}

/// Not for users: the ledger against glibc's accounting in a process of its own (the tests
/// run many things in parallel in theirs).
struct LedgerCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ledger-check", abstract: "Check the engine's ledger against malloc's own accounting.",
                                                    shouldDisplay: false)
    func run() throws {
        guard let r = LedgerCheck.run() else { throw PlanError.contradictoryOptions("mallinfo2 is not available on this system") }
        PeftPlan.emit(JSONValue.object([("ledger_bytes", .int(r.ledger)), ("malloc_grown", .int(r.mallocGrown)),
                                        ("malloc_after_free", .int(r.mallocAfterFree))]).render() + "\n")
    }
}
