import Foundation
import PEFTPlan

public enum OutputFormat: String, CaseIterable, Sendable { case table, json, csv, markdown }

/// Renders a ``PlanResult`` for people (table, markdown) and for scripts (json, csv).
public enum PlanOutput {
    public static func render(_ r: PlanResult, as format: OutputFormat) -> String {
        switch format {
        case .table: return table(r)
        case .json: return json(r).render() + "\n"
        case .csv: return csv(r)
        case .markdown: return markdown(r)
        }
    }

    // MARK: JSON (docs/CONTRACT.md)

    static func memoryKeys(_ m: MemoryBreakdown) -> [(String, Int)] {
        MemoryComponent.allCases.map { ($0.rawValue, m[$0]) }
    }

    public static func json(_ r: PlanResult) -> JSONValue {
        let a = r.request.arch, t = r.request.training, o = r.request.methodOptions
        let model: JSONValue = .object([
            ("name", .string(a.name)), ("model_type", .string(a.family.rawValue)), ("total_params", .int(a.totalParams)),
            ("hidden_size", .int(a.hiddenSize)), ("num_layers", .int(a.numLayers)), ("num_heads", .int(a.numHeads)),
            ("num_kv_heads", .int(a.nKVHeads)), ("head_dim", .int(a.headDim)), ("intermediate_size", .int(a.intermediateSize)),
            ("vocab_size", .int(a.vocabSize)), ("tied_embeddings", .bool(a.tiedEmbeddings)),
            ("num_experts", .int(a.numExperts)), ("experts_per_token", .int(a.expertsPerToken)),
            ("vision_tower", a.vision.map { .string($0.title) } ?? .null), ("vision_params", .int(a.visionParams)),
        ])
        let assumptions: JSONValue = .object([
            ("batch", .int(t.batch)), ("seq", .int(t.seq)), ("image_tokens", .int(t.imageTokens)), ("grad_accum", .int(t.gradAccum)),
            ("precision", .string(t.precision.rawValue)), ("optimizer", .string(t.optimizer.rawValue)),
            ("runtime", .string(r.request.runtime.name)), ("attention", .string(t.attention.rawValue)), ("loss", .string(t.loss.rawValue)), ("kernels", .string(t.kernels.rawValue)),
            ("grad_checkpointing", .bool(t.gradCheckpointing)), ("checkpoint_style", .string(t.checkpointStyle.rawValue)),
            ("activation_offloading", .bool(t.activationOffloading)), ("optimizer_in_backward", .bool(t.optimizerInBackward)),
            ("compile_activation_factor", t.compiledActivationFactor.map { .double($0) } ?? .null),
            ("lora_r", .int(o.loraR)), ("lora_alpha", .int(o.loraAlpha)), ("lora_targets", .string(o.loraTargets.text)),
            ("lora_dropout", .double(o.loraDropout)), ("dora", .bool(o.dora)), ("adapter_dtype", .string(o.adapterDtype.rawValue)),
            ("quant", .string(o.quant.rawValue)), ("double_quant", .bool(o.doubleQuant)), ("qlora_rest", .string(o.qloraRest.rawValue)),
            ("adapter", .string(o.adapter.rawValue)), ("adapter_reduction", .int(o.adapterReduction)),
            ("prefix_tokens", .int(o.prefixTokens)), ("prefix_projection", .int(o.prefixProjection)),
            ("prompt_tokens", .int(o.promptTokens)), ("ia3_targets", .string(o.ia3Targets.text)),
            ("ia3_feedforward", o.ia3Feedforward.map { .string($0.joined(separator: ",")) } ?? .string("default")),
            ("notes", .array(r.notes.map { .string($0.forCommandLine) })),
            ("skipped_methods", .array(r.skipped.map { .object([("method", .string($0.0.rawValue)), ("reason", .string($0.1.forCommandLine))]) })),
        ])
        let plans: [JSONValue] = r.plans.map { p in
            .object([
                ("method", .string(p.method.rawValue)),
                ("trainable_params", .int(p.account.trainableParams)),
                ("total_params", .int(p.account.totalParams)),
                ("trainable_percent", .double(Double(p.account.trainableParams) / Double(max(1, p.account.totalParams)) * 100)),
                ("adapter_file_bytes", .int(p.method.spec.trainsBase ? p.account.totalParams * t.precision.bytes : p.account.adapterFileBytes)),
                ("grad_checkpointing", .bool(p.checkpointing)),
                ("memory", .object(memoryKeys(p.memory).map { ($0.0, .int($0.1)) })),
                ("peak_phase", .string(p.memory.peakPhase.rawValue)),
                ("live_at_peak", .array(p.memory.live.keys.map(JSONValue.string))),
                ("phase_peaks", .object(Phase.allCases.filter { $0 != .generation || t.trainer.kind == .grpo }.map { ($0.rawValue, .int(p.memory.phasePeak($0))) })),
                ("trainer", trainerJSON(r, p)),
                ("host_bytes", .int(p.hostBytes)), ("offloaded_activation_bytes", .int(p.memory.offloadedActivations)),
                ("advice", p.advice.map { a in .object([("gpu", .string(a.gpu)), ("changes", .array(a.changes.map { c in
                    .object([("change", .string(c.change.forCommandLine)), ("saved_bytes", .int(c.savedBytes)), ("device_total", .int(c.deviceBytes)),
                             ("gpu_hours_factor", .double(c.gpuHoursFactor))])
                }))]) } ?? .null),
                ("flops_per_step", .object([("forward", .double(p.flops.forward)), ("backward", .double(p.flops.backward)),
                                            ("recompute", .double(p.flops.recompute))])),
                ("gpus", .array(p.verdicts.map { v in
                    .object([
                        ("name", .string(v.gpu.name)), ("memory_bytes", .int(v.gpu.memoryBytes)),
                        ("usable_memory_bytes", .int(v.gpu.usableMemoryBytes)), ("count", .int(r.request.scale.gpus)),
                        ("fits", .bool(v.fits)), ("headroom_bytes", .int(v.headroomBytes)), ("shortfall_bytes", .int(v.shortfallBytes)),
                        ("max_micro_batch", .int(v.maxMicroBatch)), ("max_seq", .int(v.maxSeq)),
                        ("blocker", v.blocker.map { .string($0.forCommandLine) } ?? .null),
                        ("tokens_per_second", .double(v.time.tokensPerSecond)), ("hours", .double(v.time.hours)),
                        ("cost_usd", .double(v.time.costUSD)),
                        ("time", timeJSON(v.time, r.request.runtime.time)),
                        ("vllm", v.vllm.map { s in .object([("claimed_bytes", .int(s.claimed)), ("weights_bytes", .int(s.weights)),
                                                            ("activation_bytes", .int(s.activations)), ("kv_cache_bytes", .int(s.kvCache)),
                                                            ("sequences", .int(s.sequences))]) } ?? .null),
                        ("max_prompts_per_step", t.trainer.kind == .grpo ? .int(maxPrompts(r, v)) : .null),
                        ("extra_forward_seconds_per_step", .double(v.time.extraForwardSeconds)),
                        ("generation", v.time.generation.map { g in .object([("completions_per_generation", .int(g.rows)), ("concurrent", .int(g.concurrency)),
                                                                             ("prefill_seconds", .double(g.prefillSeconds)), ("decode_seconds", .double(g.decodeSeconds)),
                                                                             ("weight_sync_seconds", .double(g.syncSeconds)), ("seconds", .double(g.seconds))]) } ?? .null),
                        ("generation_gpus", .int(v.time.generationGPUs)),
                    ])
                })),
            ])
        }
        return .object([("model", model), ("assumptions", assumptions), ("plans", .array(plans))])
    }

    /// The trainer's terms of a plan (null under SFT).
    static func trainerJSON(_ r: PlanResult, _ p: MethodPlan) -> JSONValue {
        let tr = r.request.training.trainer
        guard tr.kind != .sft else { return .null }
        return .object([
            ("kind", .string(tr.kind.rawValue)), ("rows_per_micro_batch", .int(tr.rows(r.request.training.batch))),
            ("completion_tokens", tr.completion.map(JSONValue.int) ?? .null),
            ("beta", .double(tr.effectiveBeta)), ("reference_forward", .bool(tr.referenceForward)),
            ("precompute_ref_log_probs", .bool(tr.precomputeRef)), ("extra_forwards_per_micro_batch", .int(tr.extraForwards)),
            ("reference_weights_bytes", .int(p.memory.referenceWeights)),
            ("num_generations", tr.kind == .grpo ? .int(tr.numGenerations) : .null),
            ("num_iterations", tr.kind == .grpo ? .int(tr.numIterations) : .null),
            ("generation_backend", tr.kind == .grpo ? .string(tr.generation.rawValue) : .null),
            ("vllm_memory", tr.kind == .grpo && tr.generation.usesVLLM ? .double(tr.effectiveVLLMMemory) : .null),
            ("vllm_gpus", tr.generation == .vllmServer ? .int(tr.vllmGPUs) : .null),
            ("generation_cache_bytes", .int(p.memory.generationCache)),
            ("generation_peak_bytes", .int(p.memory.generationPeak)),
        ])
    }

    /// GRPO: the most prompts one optimizer step can take on a GPU: the largest micro-batch
    /// that fits, rounded down to whole groups of generations over the generation batch.
    static func maxPrompts(_ r: PlanResult, _ v: GPUVerdict) -> Int {
        let t = r.request.training
        let perStep = t.gradAccum * r.request.scale.gpus
        let q = t.trainer.batchQuantum(perStep: perStep)
        let batch = v.blocker == nil ? v.maxMicroBatch / q * q : 0
        return batch * perStep / t.trainer.numGenerations
    }

    /// The trainer's sentences (none under SFT): its rows, what it adds to memory, the
    /// largest batch of prompts (GRPO), the time per step, and advice; each with its
    /// indentation level (0 or 1). The table and the PDF both print them.
    public static func trainerLines(_ r: PlanResult) -> [(level: Int, text: String)] {
        let t = r.request.training, tr = t.trainer
        guard tr.kind != .sft else { return [] }
        var out: [(Int, String)] = []
        let rows = tr.rows(t.batch)
        var head = "\(tr.kind.title): \(rows) rows of \(t.seq) tokens per micro-batch"
        if tr.kind.pairs { head += " (\(t.batch) chosen and \(t.batch) rejected, run together)" }
        if tr.kind == .grpo, let c = tr.completion {
            head += " (\(t.seq - c) prompt + \(c) generated), \(t.batch * t.gradAccum * r.request.scale.gpus / tr.numGenerations) prompt(s) × \(tr.numGenerations) generations per step"
        }
        if tr.extraForwards > 0 {
            let what: String
            switch tr.kind {
            case .kto: what = "KL estimate" + (tr.referenceForward ? " and reference" : "")
            case .grpo: what = [tr.referenceForward ? "reference" : nil, tr.generation.usesVLLM ? "old log-probabilities" : nil].compactMap { $0 }.joined(separator: " and ")
            default: what = "reference"
            }
            head += "; \(tr.extraForwards) no-grad forward(s) more per micro-batch (\(what))"
        }
        out.append((0, head + "."))
        for p in r.plans {
            var parts: [String] = []
            if p.memory.referenceWeights > 0 { parts.append("reference model \(gib(p.memory.referenceWeights)) (in weights)") }
            if tr.kind == .grpo {
                switch tr.generation {
                case .transformers:
                    parts.append("generation KV cache \(gib(p.memory.generationCache)) (Transformers' cache of \(rows * t.gradAccum) completions; generation peaks at \(gib(p.memory.generationPeak)) allocated)")
                    parts.append("vLLM share none (\(CommandLineNames.setting(.generation, "vllm-colocate")) to generate with vLLM)")
                case .vllmColocate, .vllmServer:
                    if let v = p.verdicts.first(where: { $0.vllm != nil }), let s = v.vllm {
                        let pct = Units.plain((tr.effectiveVLLMMemory * 100).rounded())
                        let whereText = tr.generation == .vllmColocate ? "colocated takes \(pct)% of the card" : "server on \(tr.vllmGPUs) GPU(s) of its own takes \(pct)% of each"
                        parts.append("vLLM share: vLLM \(whereText): \(gib(s.claimed)) on \(v.gpu.name), of which its weights \(gib(s.weights)), working set \(gib(s.activations)), KV cache \(gib(s.kvCache)) (\(s.sequences) rows of \(t.seq) tokens)")
                    }
                    parts.append("generation KV cache in the training process none")
                }
            }
            if !parts.isEmpty { out.append((1, "\(p.method.rawValue): " + parts.joined(separator: "; ") + ".")) }
            if tr.kind == .grpo {
                let cells = p.verdicts.map { "\($0.gpu.name) \(maxPrompts(r, $0))" }
                out.append((1, "\(p.method.rawValue): largest batch of prompts per step that fits: " + cells.joined(separator: ", ") + "."))
            }
            if let v = p.verdicts.first(where: \.fits), tr.kind == .grpo || tr.extraForwards > 0 {
                let g = v.time.generation
                let training = v.time.stepSeconds - (g?.seconds ?? 0) - v.time.extraForwardSeconds
                var line = "\(p.method.rawValue): per step on \(v.gpu.name): "
                if let g {
                    line += String(format: "%.1f s generating (%d completions, %d at once: prefill %.1f s, decode %.1f s%@), ", g.seconds, g.rows, g.concurrency,
                                   g.prefillSeconds, g.decodeSeconds, g.syncSeconds > 0 ? String(format: ", weight sync %.1f s", g.syncSeconds) : "")
                }
                line += String(format: "%.1f s training", training)
                if v.time.extraForwardSeconds > 0 { line += String(format: ", %.1f s in no-grad forwards", v.time.extraForwardSeconds) }
                out.append((1, line + "."))
            }
        }
        if tr.kind == .grpo && tr.generation == .vllmColocate, let p = r.plans.first,
           let v = p.verdicts.first(where: { !$0.fits && $0.vllm != nil }), let s = v.vllm {
            let pct = Units.plain((tr.effectiveVLLMMemory * 100).rounded())
            out.append((0, "Advice: vLLM colocated takes \(pct)% of \(v.gpu.name) (\(gib(s.claimed))): plan 2 GPUs with vLLM on one (\(CommandLineNames.setting(.generation, "vllm-server"))), or Transformers' generate (\(CommandLineNames.setting(.generation, "transformers")))."))
        }
        return out
    }

    /// The trainer's lines under the memory table (nothing under SFT).
    static func trainerSection(_ r: PlanResult) -> String {
        let lines = trainerLines(r)
        guard !lines.isEmpty else { return "" }
        return "\n" + lines.map { ($0.level == 0 ? "" : "  ") + wrap($0.text, width: $0.level == 0 ? 100 : 98, indent: $0.level == 0 ? "  " : "    ") }.joined()
    }

    static func timeJSON(_ e: TimeEstimate, _ c: TimeCoefficients) -> JSONValue {
        .object([
            ("flops_per_micro_batch", .double(e.flopsPerMicroBatch)), ("fp32_flops_per_micro_batch", .double(e.fp32FlopsPerMicroBatch)),
            ("mfu", .double(e.mfuUsed)), ("compute_seconds_per_micro_batch", .double(e.computeSeconds)),
            ("optimizer_seconds", .double(e.optimizerSeconds)), ("communication_seconds", .double(e.communicationSeconds)),
            ("host_link_bytes_per_step", .double(e.hostLinkBytesPerStep)), ("exposed_host_seconds_per_step", .double(e.exposedHostSecondsPerStep)),
            ("step_seconds", .double(e.stepSeconds)), ("optimizer_steps", .double(e.optimizerSteps)),
            ("train_hours", .double(e.trainHours)), ("overhead_hours", .double(e.overheadHours)),
            ("gpu_hours", .double(e.gpuHours)), ("price_usd_per_gpu_hour", .double(e.pricePerGPUHour)),
            ("price", .object([
                ("source", .string(e.priceSource)), ("date", .string(e.priceDate)),
                ("provider", e.provider.map { .string($0) } ?? .null), ("offering", e.offering.map { .string($0) } ?? .null),
                ("billing_unit_seconds", e.billing.map { .double($0.unitSeconds) } ?? .null),
                ("minimum_billed_seconds", e.billing.map { .double($0.minimumSeconds) } ?? .null),
                ("billed_hours", .double(e.billedHours)), ("charged_gpus", .int(e.chargedGPUs)),
                ("interruption_hours", .double(e.interruptionHours)),
                ("quotes", .array(e.quotes.map { q in .object([
                    ("provider", .string(q.provider)), ("tier", .string(q.tier)), ("offering", .string(q.offering)),
                    ("usd_per_gpu_hour", .double(q.usdPerGPUHour)), ("billing_unit_seconds", .double(q.billing.unitSeconds)),
                    ("minimum_billed_seconds", .double(q.billing.minimumSeconds)), ("charged_gpus", .int(q.chargedGPUs)),
                    ("interruption_hours", .double(q.interruptionHours)), ("billed_hours", .double(q.billedHours)),
                    ("cost_usd", .double(q.costUSD)), ("cost_usd_p10", .double(q.costP10USD)), ("cost_usd_p90", .double(q.costP90USD)),
                    ("date", .string(q.date)), ("source", .string(q.source)),
                ]) })),
            ])),
            ("range", rangeJSON(e, c)),
            ("cost_per_epoch_usd", .double(e.costPerEpochUSD)), ("cost_per_million_tokens_usd", .double(e.costPerMillionTokensUSD)),
        ])
    }

    /// Hours and cost at the held-out 10th and 90th percentiles of `c`, the plan's runtime's
    /// time model.
    static func rangeJSON(_ e: TimeEstimate, _ c: TimeCoefficients) -> JSONValue {
        .object([
            ("hours_p10", .double(e.hoursP10)), ("hours_p90", .double(e.hoursP90)),
            ("cost_usd_p10", .double(e.costP10USD)), ("cost_usd_p90", .double(e.costP90USD)),
            ("basis", .string(rangeBasis(c, generation: e.generationRange))),
        ])
    }

    /// What the range means, in one sentence (JSON, report).
    public static func rangeBasis(_ c: TimeCoefficients, generation: RatioRange? = nil) -> String {
        String(format: "10th–90th percentile of measured ÷ predicted step time (%.2f–%.2f×) over published runs held out of the time model's fit, by source", c.timeRatioP10, c.timeRatioP90)
            + (generation.map(generationBasis) ?? "")
    }

    /// The generation's part of the range (GRPO).
    static func generationBasis(_ g: RatioRange) -> String {
        g.p10 == 1 && g.p90 == 1
            ? "; GRPO's generation by vLLM as planned (no measured spread)"
            : String(format: "; GRPO's generation %.2f–%.2f× (Transformers' generate, held-out published runs)", g.p10, g.p90)
    }

    /// "12.5–22.8 h, $40–$73": a plan's range in words.
    public static func range(_ e: TimeEstimate) -> String {
        "\(hours(e.hoursP10))–\(hours(e.hoursP90)), \(dollars(e.costP10USD))–\(dollars(e.costP90USD))"
    }

    /// Hours as people read them: 0.4h, 12.3h, 1234h.
    public static func hours(_ h: Double) -> String {
        guard h.isFinite else { return "—" }
        if h < 100 { return String(format: "%.1fh", h) }
        if h < 100_000 { return String(format: "%.0fh", h) }
        return String(format: "%.1eh", h)
    }

    /// Dollars: $0.42, $12, $1234, $12k, $1.2M.
    public static func dollars(_ d: Double) -> String {
        guard d.isFinite else { return "—" }
        if d >= 1e9 { return String(format: "$%.1e", d) }
        if d < 1 { return String(format: "$%.2f", d) }
        if d < 10_000 { return String(format: "$%.0f", d) }
        if d < 10_000_000 { return String(format: "$%.0fk", d / 1000) }
        return String(format: "$%.1fM", d / 1e6)
    }

    static func timeTable(_ r: PlanResult) -> String {
        guard !r.plans.isEmpty else { return "" }
        let n = r.request.scale.gpus
        var head = "Time and cost, " + (r.request.budget.steps.map { "\($0) optimizer steps" } ?? r.request.dataset.summary.forCommandLine)
        head += n > 1 ? ", on \(n) GPUs" : ""
        let tr = r.request.training.trainer
        if tr.kind == .grpo && tr.generation == .vllmServer {
            head += ", plus \(tr.vllmGPUs) GPU\(tr.vllmGPUs == 1 ? "" : "s") of the same kind for the vLLM server (billed too)"
        }
        head += ": hours and USD at the price per GPU-hour shown (— = does not fit)"
        var out = "\n" + wrap(head, width: 100, indent: "  ")
        let w = 9
        out += "  " + pad("GPU", 13) + " " + pad("$/h", 7, right: true)
        for p in r.plans { out += " " + pad(p.method.rawValue, w, right: true) }
        out += "\n"
        for (i, g) in r.request.gpus.enumerated() {
            let price = r.plans.first.map { $0.verdicts[i].time.pricePerGPUHour } ?? (r.request.budget.pricePerGPUHour ?? g.price.usdPerHour)
            var line = "  " + pad(String(g.name.prefix(13)), 13) + " " + pad(String(format: price < 100 ? "%.2f" : "%.0f", price), 7, right: true)
            for p in r.plans {
                let v = p.verdicts[i]
                let cell = v.fits ? "\(hours(v.time.hours)) \(dollars(v.time.costUSD))" : "—"
                line += " " + pad(cell, w, right: true)
            }
            out += trimmed(line) + "\n"
        }
        // the range of the cheapest fitting GPU per method
        var ranges: [String] = []
        for p in r.plans {
            guard let v = p.verdicts.filter(\.fits).min(by: { $0.time.costUSD < $1.time.costUSD }) else { continue }
            ranges.append("\(p.method.rawValue) on \(v.gpu.name): \(range(v.time))")
        }
        if !ranges.isEmpty {
            let c = r.request.runtime.time
            let generation = r.plans.first?.verdicts.first?.time.generationRange.map(generationBasis) ?? ""
            out += wrap(String(format: "Range, P10–P90 (the time model's held-out error, %.2f–%.2f× the training time", c.timeRatioP10, c.timeRatioP90)
                        + generation + "): " + ranges.joined(separator: "; "), width: 100, indent: "  ")
        }
        // a provider's prices: each GPU's offer, instance size, date and page
        if let plan = r.plans.first, r.request.budget.provider != nil {
            out += "Prices:\n"
            for v in plan.verdicts {
                let t = v.time
                guard t.offering != nil else { continue }
                if t.quotes.count > 1 { out += "- \(v.gpu.name), \(plan.method.rawValue), cheapest first:\n" }
                for q in t.quotes {
                    let charged = q.chargedGPUs > r.request.scale.gpus ? " (whole instances: \(q.chargedGPUs) GPUs charged)" : ""
                    let tier = q.tier == "on-demand" ? "" : " \(q.tier)"
                    let lost = q.interruptionHours > 0 ? String(format: ", +%.2g h expected for interruptions and checkpoints", q.interruptionHours) : ""
                    let cost = v.fits ? ": \(dollars(q.costUSD)) (P10–P90 \(dollars(q.costP10USD))–\(dollars(q.costP90USD))), billed \(hours(q.billedHours))\(lost)" : ""
                    let price = "$\(String(format: "%.2f", q.usdPerGPUHour)) per GPU-hour"
                    let line = (t.quotes.count > 1 ? "\(q.provider)\(tier) \(price)" : "- \(v.gpu.name): \(price) (\(q.provider)\(tier))")
                        + "\(cost); \(q.offering)\(charged), \(q.date), \(q.source)"
                    // wrap drops leading spaces: the quotes under a GPU's line get theirs back
                    let wrapped = wrap(line, width: 100, indent: "      ")
                    out += t.quotes.count > 1 ? "    " + wrapped : wrapped
                }
            }
        }
        return out
    }

    // MARK: units

    /// Bytes in GiB, labelled GiB (binary), never "GB".
    public static func gib(_ bytes: Int) -> String { Units.gib(bytes) }

    /// A card's capacity to the hundredth of a GiB ("23.49 GiB").
    public static func capacity(_ bytes: Int) -> String { Units.capacity(bytes) }

    static func gibNumber(_ bytes: Int) -> String {
        let g = Double(bytes) / Double(1 << 30)
        if bytes == 0 { return "0" }
        return g < 0.01 ? "<0.01" : (g < 100 ? String(format: "%.2f", g) : String(format: "%.1f", g))
    }

    /// A number for a message: integers without a fraction, others as given.
    public static func plain(_ v: Double) -> String { Units.plain(v) }

    /// Large counts as people say them: 100 million, 1.5 billion, 52,000.
    public static func count(_ d: Double) -> String { Units.count(d) }

    /// Parameter counts as people say them: 6.74 B, 4.19 M, 286.7 K.
    public static func params(_ n: Int) -> String {
        let d = Double(n)
        if d >= 1e9 { return String(format: "%.2f B", d / 1e9) }
        if d >= 1e6 { return String(format: "%.2f M", d / 1e6) }
        if d >= 1e3 { return String(format: "%.1f K", d / 1e3) }
        return "\(n)"
    }

    static func percent(_ p: MethodPlan) -> String {
        let pc = Double(p.account.trainableParams) / Double(max(1, p.account.totalParams)) * 100
        if pc >= 99.95 { return "100%" }
        if pc >= 0.1 { return String(format: "%.2f%%", pc) }
        return pc >= 0.001 ? String(format: "%.3f%%", pc) : "<0.001%"
    }

    static func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
        let n = s.count
        guard n < w else { return s }
        let fill = String(repeating: " ", count: w - n)
        return right ? fill + s : s + fill
    }

    // MARK: table

    /// GPUs grouped by usable capacity, nominal size and whether they can run the precision:
    /// every profile of a group gets the same verdict.
    static func capacityGroups(_ r: PlanResult) -> [(cap: Int, blocked: Bool, gpus: [GPUProfile])] {
        let blocked = r.blockedGPUs
        var groups: [(cap: Int, blocked: Bool, gpus: [GPUProfile])] = []
        for g in r.request.gpus {
            let b = blocked.contains(g.name)
            if let i = groups.firstIndex(where: { $0.cap == g.usableMemoryBytes && $0.gpus[0].nominalMemoryGB == g.nominalMemoryGB && $0.blocked == b }) {
                groups[i].gpus.append(g)
            } else {
                groups.append((g.usableMemoryBytes, b, [g]))
            }
        }
        return groups
    }

    /// "RTX 4090 (24 GB card, 23.49 GiB usable)" or "RTX 3090, RTX A5000 (24 GB cards, …)".
    static func groupLabel(_ gpus: [GPUProfile]) -> String {
        let label = gpus[0].capacityLabel
        return gpus.map(\.name).joined(separator: ", ") + " (" + (gpus.count > 1 ? label.replacingOccurrences(of: " card,", with: " cards,") : label) + ")"
    }

    public static func table(_ r: PlanResult) -> String {
        let a = r.request.arch, t = r.request.training
        var out = ""
        out += "\(a.name) (\(a.family.rawValue)): \(params(a.totalParams)) parameters, \(a.numLayers) layers, hidden \(a.hiddenSize), "
        out += "heads \(a.numHeads)/\(a.nKVHeads) KV, vocab \(a.vocabSize)\(a.numExperts > 0 ? ", \(a.numExperts) experts (\(a.expertsPerToken) active)" : "")"
        if let v = a.vision { out += ", \(v.title) and projector \(params(a.visionParams)) (frozen)" }
        out += "\n"
        out += "One micro-batch of \(t.batch) × \(t.seq) tokens\(t.imageTokens > 0 ? " (\(t.imageTokens) of them image tokens)" : ""), \(t.precision.rawValue), \(t.optimizer.rawValue), runtime \(r.request.runtime.name). Memory in GiB.\n\n"
        let head = [("method", 9), ("trainable", 17), ("weights", 8), ("grads", 7), ("optim", 7), ("activ", 7), ("logits", 7), ("transnt", 8), ("device", 8), ("peak at", 9)]
        out += trimmed(head.enumerated().map { pad($0.element.0, $0.element.1, right: $0.offset > 0 && $0.offset < 9) }.joined(separator: " ")) + "\n"
        for p in r.plans {
            let m = p.memory
            let cells = [
                p.method.rawValue,
                "\(params(p.account.trainableParams)) \(percent(p))",
                gibNumber(m.frozenWeights + m.trainableWeights + m.masterWeights),
                gibNumber(m.gradients), gibNumber(m.optimizerStates), gibNumber(m.activations), gibNumber(m.logits),
                gibNumber(m.transient), gibNumber(m.deviceTotal), m.peakPhase.rawValue,
            ]
            out += trimmed(cells.enumerated().map { pad($0.element, head[$0.offset].1, right: $0.offset > 0 && $0.offset < 9) }.joined(separator: " ")) + "\n"
        }
        for (cap, blocked, gpus) in capacityGroups(r) {
            out += wrap("\nOn " + groupLabel(gpus) + ":", width: 100, indent: "  ")
            out += "  " + pad("method", 9) + " " + pad("fits", 5) + " " + pad("headroom", 17) + " " + pad("max micro-batch", 16) + " max seq\n"
            for p in r.plans {
                guard let v = p.verdicts.first(where: { $0.gpu.name == gpus[0].name && $0.gpu.usableMemoryBytes == cap && ($0.blocker != nil) == blocked }) else { continue }
                let room = v.blocker != nil ? "(no bf16 support)" : (v.fits ? "\(gib(v.headroomBytes)) free" : "\(gib(v.shortfallBytes)) short")
                let mb = v.maxMicroBatch == 0 ? "none" : "\(v.maxMicroBatch) at seq \(t.seq)"
                let limit = Planner.seqSearchLimit(a, requested: t.seq)
                let ms: String
                if v.maxSeq == 0 { ms = "none" }
                else if v.maxSeq < limit { ms = "\(v.maxSeq) at batch \(t.batch)" }
                else if limit == a.maxPositions { ms = "\(v.maxSeq) (the model's limit)" }
                else { ms = "\(v.maxSeq) or more (searched up to --seq)" }
                out += "  " + pad(p.method.rawValue, 9) + " " + pad(v.fits ? "yes" : "no", 5) + " " + pad(room, 17) + " " + pad(mb, 16) + " " + ms + "\n"
            }
        }
        for p in r.plans {
            guard let a = p.advice else { continue }
            out += "\n" + wrap("\(p.method.rawValue) fits none of these GPUs. On \(a.gpu), each of these makes it fit:", width: 100, indent: "  ")
            if a.changes.isEmpty { out += "  (no change tried here does; try `--cheapest`)\n" }
            // the advisor's order: the cheapest in GPU time first
            for c in a.changes {
                out += "  " + wrap("- \(c.change.forCommandLine): −\(gib(c.savedBytes)) → \(gib(c.deviceBytes)), GPU-hours ×\(String(format: "%.2f", c.gpuHoursFactor))", width: 98, indent: "    ")
            }
        }
        if r.request.scale.offload != .none || t.activationOffloading {
            let host = r.plans.map { "\($0.method.rawValue) \(gib($0.hostBytes))" }.joined(separator: ", ")
            out += "\n" + wrap("Host RAM for offload (all \(r.request.scale.gpus) GPUs' together): \(host).", width: 100, indent: "  ")
        }
        out += trainerSection(r)
        out += timeTable(r)
        for (m, text) in r.skipped {
            let reason = text.forCommandLine
            let why = reason.hasPrefix(m.rawValue + ": ") ? String(reason.dropFirst(m.rawValue.count + 2)) : reason
            out += "\n" + wrap("skipped \(m.rawValue): \(why)", width: 100, indent: "  ")
        }
        out += "\nColumns: weights = frozen + trainable + fp32 master; device = reserved peak + memory outside the\n"
        out += "allocator (the figure fit verdicts use); transnt = the peak phase's temporaries. `--format json` has\nevery byte.\n"
        out += "\nAssumptions:\n"
        for n in r.notes { out += wrap("- " + n.forCommandLine, width: 100, indent: "  ") }
        return out
    }

    static func trimmed(_ s: String) -> String {
        var t = s
        while t.last == " " { t.removeLast() }
        return t
    }

    static func wrap(_ text: String, width: Int, indent: String) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = indent + word
            } else {
                line += line.isEmpty ? String(word) : " " + word
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: csv and markdown

    static let flatColumns = ["method", "gpu", "memory_bytes", "fits", "headroom_bytes", "shortfall_bytes", "max_micro_batch", "max_seq",
                              "trainable_params", "total_params", "adapter_file_bytes", "peak_phase",
                              "gpus", "tokens_per_second", "hours", "cost_usd"]

    static func flatRows(_ r: PlanResult) -> [[String]] {
        var rows: [[String]] = []
        for p in r.plans {
            let mem = memoryKeys(p.memory).map { String($0.1) }
            let file = p.method.spec.trainsBase ? p.account.totalParams * r.request.training.precision.bytes : p.account.adapterFileBytes
            for v in p.verdicts {
                rows.append([p.method.rawValue, v.gpu.name, String(v.gpu.memoryBytes), v.fits ? "true" : "false",
                             String(v.headroomBytes), String(v.shortfallBytes), String(v.maxMicroBatch), String(v.maxSeq),
                             String(p.account.trainableParams), String(p.account.totalParams), String(file),
                             p.memory.peakPhase.rawValue, String(r.request.scale.gpus), String(format: "%.1f", v.time.tokensPerSecond),
                             String(format: "%.4f", v.time.hours), String(format: "%.2f", v.time.costUSD)] + mem + [String(v.gpu.usableMemoryBytes)])
            }
        }
        return rows
    }

    public static func csv(_ r: PlanResult) -> String {
        let header = flatColumns + memoryKeys(MemoryBreakdown()).map(\.0) + ["usable_memory_bytes"]
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        return ([header] + flatRows(r)).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    static func md(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    public static func markdown(_ r: PlanResult) -> String {
        let a = r.request.arch, t = r.request.training
        var out = "## \(a.name): \(params(a.totalParams)) parameters, micro-batch \(t.batch) × \(t.seq), \(t.precision.rawValue), \(t.optimizer.rawValue)\n\n"
        out += "| method | trainable | weights (GiB) | gradients | optimizer | activations | logits | device total | peak phase |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
        for p in r.plans {
            let m = p.memory
            out += "| \(p.method.rawValue) | \(params(p.account.trainableParams)) (\(percent(p))) | \(gibNumber(m.frozenWeights + m.trainableWeights + m.masterWeights)) | \(gibNumber(m.gradients)) | \(gibNumber(m.optimizerStates)) | \(gibNumber(m.activations)) | \(gibNumber(m.logits)) | \(gibNumber(m.deviceTotal)) | \(m.peakPhase.rawValue) |\n"
        }
        out += "\n| method | GPU | usable (GiB) | fits | headroom | max micro-batch | max seq | tokens/s | hours | cost |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n"
        for p in r.plans {
            for v in p.verdicts {
                out += "| \(p.method.rawValue) | \(md(v.gpu.name)) | \(gibNumber(v.gpu.usableMemoryBytes)) | \(v.fits ? "yes" : (v.blocker != nil ? "no (no bf16)" : "no")) | \(v.fits ? gib(v.headroomBytes) : "−" + gib(v.shortfallBytes)) | \(v.maxMicroBatch) | \(v.maxSeq) | \(String(format: "%.0f", v.time.tokensPerSecond)) | \(hours(v.time.hours)) | \(dollars(v.time.costUSD)) |\n"
            }
        }
        for (m, reason) in r.skipped { out += "\nSkipped \(m.rawValue): \(md(reason.forCommandLine))\n" }
        out += "\nAssumptions:\n\n" + r.notes.map { "- " + md($0.forCommandLine) }.joined(separator: "\n") + "\n"
        return out
    }
}
