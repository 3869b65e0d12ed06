import Foundation

/// A published claim about fine-tuning memory or parameters, with what peft-plan computes
/// for it and a verdict (each claim names where it was published).
public struct Claim: Sendable {
    public enum Verdict: String, Sendable {
        case holds
        case holdsOnlyIf = "holds only if"
        case doesNotHold = "does not hold"
    }

    public var id: String
    /// The claim as it is commonly published.
    public var claim: String
    /// Where it is made.
    public var source: String
    /// What peft-plan computes, in words, with the figures.
    public var computed: String
    /// The settings the computation assumed.
    public var assumptions: String
    public var verdict: Verdict
    /// For `holdsOnlyIf`: the condition; for the others an optional qualification.
    public var condition: String?
    /// The figures behind the verdict, by name (bytes, counts or percent as the name says).
    public var figures: [(String, Double)]

    /// The condition as it follows the verdict: "holds only if X", "holds — X".
    public var phrase: String {
        guard let condition else { return "" }
        return verdict == .holdsOnlyIf ? " " + condition : " — " + condition
    }
}

/// Checks the common published claims against the model.
///
/// Conventions, stated with every result: "GB" in a claim is 10⁹ bytes (a GPU's "48 GB" is
/// its profile's capacity, 48 GiB, the number fit verdicts use everywhere else); "~x" holds
/// within 30% of x; a range holds when the figure lies inside it.
public enum Claims {
    /// How far "~x" may be from x.
    public static let approximately = 0.30

    static func near(_ v: Double, _ target: Double) -> Bool { abs(v / target - 1) <= approximately }

    static func gb(_ bytes: Int) -> String { String(format: "%.1f GB", Double(bytes) / 1e9) }
    static func gb(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
    static func pct(_ p: Double) -> String { String(format: p < 0.1 ? "%.4f%%" : "%.3f%%", p) }
    static func millions(_ n: Int) -> String { String(format: "%.2f M", Double(n) / 1e6) }

    struct Setting {
        var training = TrainingOptions()
        var options = MethodOptions()
    }

    static func context(_ model: String, _ method: Method, _ s: Setting) throws -> PlanContext {
        try PlanContext(arch: Presets.resolve(model), method: method, methodOptions: s.options, training: s.training)
    }

    static func total(_ ctx: PlanContext) -> Int { ctx.deviceTotal(batch: ctx.training.batch, seq: ctx.training.seq) }

    /// The longest sequence (to the model's limit) that fits `capacity` at the context's batch.
    static func longest(_ ctx: PlanContext, capacity: Int) -> String {
        let limit = Planner.seqSearchLimit(ctx.arch)
        let n = Planner.largest(upTo: limit) { ctx.deviceTotal(batch: ctx.training.batch, seq: $0) <= capacity }
        return "\(n) tokens" + (n == limit ? " (the model's position limit; memory allows more)" : "")
    }

    static func percent(_ a: ParameterAccount) -> Double { Double(a.trainableParams) / Double(a.totalParams) * 100 }

    /// A claim about "a 48 GB GPU" holds if it holds on some card of that size: the bundled
    /// profile of that nominal size with the most usable memory, among those that run bf16
    /// (the claims are computed in bf16) where there are any.
    static func gpu(_ query: String) throws -> GPUProfile {
        func key(_ g: GPUProfile) -> (Int, Int, String) { (g.supportsBF16 ? 1 : 0, g.usableMemoryBytes, g.name) }
        guard let g = try HardwareCatalog.select(query, from: HardwareCatalog.bundled()).max(by: { key($0) < key($1) }) else {
            throw PlanError.invalidSetting(.gpu, value: query, accepted: "a bundled GPU profile")
        }
        return g
    }

    /// Every published claim, checked.
    public static func check() throws -> [Claim] {
        var out: [Claim] = []
        let seven = try Presets.resolve("llama-2-7b")
        let p7 = seven.totalParams

        // 1. "Full fine-tuning of a 7B model needs over 28 GB"
        var lean = Setting()
        lean.training.seq = 512
        lean.training.gradCheckpointing = true
        let leanFull = total(try context("llama-2-7b", .full, lean))
        out.append(Claim(
            id: "full-7b-over-28gb", claim: "Full fine-tuning of a 7B model needs over 28 GB (the fp32 weights alone)",
            source: "common rule of thumb: 7 B parameters × 4 bytes",
            computed: "Llama-2-7B has \(String(format: "%.2f", Double(p7) / 1e9)) B parameters: its fp32 weights are \(gb(4 * p7)) (the 28 GB rounds the model up to 7 B); "
                + "the leanest full fine-tune here needs \(gb(leanFull)) on the GPU",
            assumptions: "llama-2-7b; leanest: bf16 weights and AdamW states, gradient checkpointing, micro-batch 1 × 512 tokens, hf-cuda runtime",
            verdict: leanFull <= 28_000_000_000 ? .doesNotHold : (4 * p7 > 28_000_000_000 ? .holds : .holdsOnlyIf),
            condition: leanFull > 28_000_000_000 && 4 * p7 <= 28_000_000_000
                ? "the model has a full 7 B parameters: Llama-2-7B's fp32 weights are \(gb(4 * p7)); the whole job needs more than 28 GB anyway (\(gb(leanFull)))" : nil,
            figures: [("params", Double(p7)), ("fp32_weight_bytes", Double(4 * p7)), ("leanest_full_bytes", Double(leanFull))]))

        // 2. "a 7B full fine-tune easily exceeds 100 GB"
        var mixed = Setting()
        mixed.training.precision = .mixedBF16
        var pure = Setting()
        pure.training.precision = .bf16
        let mixedTotal = total(try context("llama-2-7b", .full, mixed)), pureTotal = total(try context("llama-2-7b", .full, pure))
        let v2: Claim.Verdict = mixedTotal > 100_000_000_000 ? (pureTotal > 100_000_000_000 ? .holds : .holdsOnlyIf) : .doesNotHold
        out.append(Claim(
            id: "full-7b-over-100gb", claim: "A 7B full fine-tune easily exceeds 100 GB with gradients, AdamW states and activations",
            source: "common estimate: 16 bytes per parameter plus activations",
            computed: "mixed precision (bf16 compute, fp32 master weights, gradients and AdamW states): \(gb(mixedTotal)); pure bf16 (bf16 weights, gradients and AdamW states): \(gb(pureTotal))",
            assumptions: "llama-2-7b; AdamW; micro-batch 1 × 2048 tokens; no checkpointing; hf-cuda runtime",
            verdict: v2, condition: v2 == .holdsOnlyIf ? "training in mixed precision with fp32 master weights and AdamW states; pure bf16 stays at \(gb(pureTotal))" : nil,
            figures: [("mixed_bf16_bytes", Double(mixedTotal)), ("bf16_bytes", Double(pureTotal))]))

        // 3. "LoRA on a 7B model: ~4M trainable parameters"
        var lora = Setting()
        lora.options.loraTargets = .list(["q_proj", "v_proj"])
        lora.training.seq = 512
        let loraAccount = try ParameterAccounting.account(seven, method: .lora, options: lora.options)
        out.append(Claim(
            id: "lora-7b-4m-params", claim: "LoRA on a 7B model trains ~4M parameters",
            source: "LoRA r=8 on q_proj and v_proj, as PEFT's examples print it",
            computed: "\(loraAccount.trainableParams.formatted(.number.grouping(.automatic))) trainable parameters (\(millions(loraAccount.trainableParams)))",
            assumptions: "llama-2-7b; LoRA r=8 on q_proj, v_proj",
            verdict: near(Double(loraAccount.trainableParams), 4e6) ? .holds : .doesNotHold, condition: nil,
            figures: [("trainable_params", Double(loraAccount.trainableParams)), ("total_params", Double(loraAccount.totalParams))]))

        // 4. "LoRA on a 7B model: ~8 GB VRAM"
        // like for like: both with gradient checkpointing (QLoRA always has it)
        var loraLean = lora
        loraLean.training.gradCheckpointing = true
        let loraTotal = total(try context("llama-2-7b", .lora, loraLean))
        let qlora = loraLean
        let qloraTotal = total(try context("llama-2-7b", .qlora, qlora))
        let loraWeights = 2 * p7
        let v4: Claim.Verdict = near(Double(loraTotal), 8e9) ? .holds : (near(Double(qloraTotal), 8e9) ? .holdsOnlyIf : .doesNotHold)
        out.append(Claim(
            id: "lora-7b-8gb", claim: "LoRA on a 7B model needs ~8 GB of GPU memory",
            source: "common figure for LoRA r=8 on q,v",
            computed: "LoRA with bf16 base weights: \(gb(loraTotal)) (the frozen bf16 weights alone are \(gb(loraWeights))); with the base in 4-bit NF4 (QLoRA): \(gb(qloraTotal))",
            assumptions: "llama-2-7b; LoRA r=8 on q_proj, v_proj; AdamW; gradient checkpointing; micro-batch 1 × 512 tokens; QLoRA with double quantisation; hf-cuda runtime",
            verdict: v4, condition: v4 == .holdsOnlyIf ? "the base weights are quantised to 4 bits (QLoRA, \(gb(qloraTotal))); in bf16 it needs \(gb(loraTotal))" : nil,
            figures: [("lora_bf16_bytes", Double(loraTotal)), ("qlora_bytes", Double(qloraTotal))]))

        // 5. "QLoRA fine-tunes a 65B model on one 48 GB GPU"
        let card48 = try gpu("48GB"), card16 = try gpu("16GB")
        var q65 = Setting()
        q65.options.loraR = 64
        q65.options.loraTargets = .allLinear
        q65.training.seq = 512
        q65.training.gradCheckpointing = true
        let ctx65 = try context("llama-65b", .qlora, q65)
        let t65 = total(ctx65)
        var q65Paged = q65
        q65Paged.training.optimizer = .pagedAdamw8bit
        let ctx65Paged = try context("llama-65b", .qlora, q65Paged)
        let t65Paged = total(ctx65Paged)
        let v5: Claim.Verdict = t65 <= card48.usableMemoryBytes ? .holds : (t65Paged <= card48.usableMemoryBytes ? .holdsOnlyIf : .doesNotHold)
        out.append(Claim(
            id: "qlora-65b-48gb", claim: "QLoRA fine-tunes a 65B model on one 48 GB GPU",
            source: "Dettmers et al. 2023, QLoRA, abstract",
            computed: "\(gb(t65)) with 32-bit AdamW, \(gb(t65Paged)) with paged 8-bit AdamW, against \(card48.name) (\(card48.capacityLabel)); "
                + "the longest sequence that fits at micro-batch 1: \(longest(v5 == .holds ? ctx65 : ctx65Paged, capacity: card48.usableMemoryBytes))",
            assumptions: "llama-65b; QLoRA NF4 with double quantisation, r=64 on every linear layer (the paper's setting), bf16 compute, gradient checkpointing, micro-batch 1 × 512 tokens; hf-cuda runtime",
            verdict: v5, condition: v5 == .holdsOnlyIf ? "the optimizer states are paged (paged 8-bit AdamW, whose states may move to host memory; with 32-bit AdamW on the GPU it needs \(gb(t65)))" : nil,
            figures: [("adamw_bytes", Double(t65)), ("paged_adamw_8bit_bytes", Double(t65Paged)), ("capacity_bytes", Double(card48.usableMemoryBytes))]))

        // 6. "… and a 7B model on a 16 GB GPU"
        var q7 = Setting()
        q7.training.gradCheckpointing = true
        let ctx7 = try context("llama-2-7b", .qlora, q7)
        let t7 = total(ctx7)
        out.append(Claim(
            id: "qlora-7b-16gb", claim: "QLoRA fine-tunes a 7B model on a 16 GB GPU",
            source: "common figure after the QLoRA paper",
            computed: "\(gb(t7)) at micro-batch 1 × 2048 tokens against \(card16.name) (\(card16.capacityLabel)); the longest sequence that fits at micro-batch 1: \(longest(ctx7, capacity: card16.usableMemoryBytes))",
            assumptions: "llama-2-7b; QLoRA NF4 with double quantisation, r=8 on PEFT's default targets (q_proj, v_proj), AdamW, gradient checkpointing; hf-cuda runtime",
            verdict: t7 <= card16.usableMemoryBytes ? .holds : .doesNotHold, condition: nil,
            figures: [("bytes", Double(t7)), ("capacity_bytes", Double(card16.usableMemoryBytes))]))

        // 7. "LoRA r=8 on a 7B model trains 0.1–0.2% of parameters"
        let targetSets: [(String, TargetSpec)] = [("q_proj, v_proj", .list(["q_proj", "v_proj"])), ("q_proj, k_proj, v_proj, o_proj", .list(["q_proj", "k_proj", "v_proj", "o_proj"])),
                                                  ("every linear layer", .allLinear)]
        let shares = try targetSets.map { name, spec -> (String, Double) in
            var o = MethodOptions()
            o.loraTargets = spec
            return (name, percent(try ParameterAccounting.account(seven, method: .lora, options: o)))
        }
        let inside = shares.filter { (0.1...0.2).contains($0.1) }
        let v7: Claim.Verdict = (0.1...0.2).contains(shares[0].1) ? .holds : (inside.isEmpty ? .doesNotHold : .holdsOnlyIf)
        out.append(Claim(
            id: "lora-7b-percent", claim: "LoRA r=8 on a 7B model trains 0.1–0.2% of the parameters",
            source: "common figure",
            computed: shares.map { "\($0.0): \(pct($0.1))" }.joined(separator: "; "),
            assumptions: "llama-2-7b; LoRA r=8; percent of all parameters with the adapter, as PEFT's print_trainable_parameters counts",
            verdict: v7, condition: v7 == .holdsOnlyIf ? "LoRA targets \(inside.map(\.0).joined(separator: " or ")) (the default q_proj, v_proj gives \(pct(shares[0].1)))" : nil,
            figures: shares.map { ("percent_" + $0.0.replacingOccurrences(of: ", ", with: "_").replacingOccurrences(of: " ", with: "_"), $0.1) }))

        // 8. "prefix tuning ~0.1%"
        let prefix = try ParameterAccounting.account(seven, method: .prefix, options: MethodOptions())
        out.append(Claim(
            id: "prefix-percent", claim: "Prefix tuning trains ~0.1% of the parameters",
            source: "Li & Liang 2021 and common summaries",
            computed: "\(prefix.trainableParams.formatted(.number.grouping(.automatic))) trainable parameters, \(pct(percent(prefix)))",
            assumptions: "llama-2-7b; 20 virtual tokens (PEFT's example), no reparameterisation MLP",
            verdict: near(percent(prefix), 0.1) ? .holds : .doesNotHold, condition: nil,
            figures: [("trainable_params", Double(prefix.trainableParams)), ("percent", percent(prefix))]))

        // 9. "IA³ ~0.01–0.02%"
        let ia3 = try ParameterAccounting.account(seven, method: .ia3, options: MethodOptions())
        out.append(Claim(
            id: "ia3-percent", claim: "IA³ trains 0.01–0.02% of the parameters",
            source: "Liu et al. 2022 and common summaries",
            computed: "\(ia3.trainableParams.formatted(.number.grouping(.automatic))) trainable parameters, \(pct(percent(ia3)))",
            assumptions: "llama-2-7b; PEFT's default IA³ targets (k_proj, v_proj, down_proj)",
            verdict: (0.01...0.02).contains(percent(ia3)) ? .holds : .doesNotHold, condition: nil,
            figures: [("trainable_params", Double(ia3.trainableParams)), ("percent", percent(ia3))]))

        // 10. LoRA paper: GPT-3 175B training memory 1.2 TB → 350 GB
        let gpt3 = try Presets.resolve("gpt3-175b")
        var g = Setting()
        g.training.precision = .fp16
        g.training.gradCheckpointing = true
        g.options.loraR = 4
        let fullG = total(try context("gpt3-175b", .full, g)), loraG = total(try context("gpt3-175b", .lora, g))
        out.append(Claim(
            id: "gpt3-training-memory", claim: "LoRA cuts GPT-3 175B's training memory from 1.2 TB to 350 GB",
            source: "Hu et al. 2021, LoRA, section 4.2",
            computed: "full fine-tuning \(gb(fullG)); LoRA r=4 \(gb(loraG)) (the frozen fp16 weights are \(gb(2 * gpt3.totalParams)))",
            assumptions: "gpt3-175b as one GPT-2-type model, all in one memory (the paper's figure is for the whole job); fp16 weights and AdamW states, gradient checkpointing, micro-batch 1 × 2048 tokens; LoRA on the attention projection (c_attn); hf-cuda runtime",
            verdict: near(Double(fullG), 1.2e12) && near(Double(loraG), 350e9) ? .holds : .doesNotHold, condition: nil,
            figures: [("full_bytes", Double(fullG)), ("lora_bytes", Double(loraG))]))

        // 11. LoRA paper: checkpoint 350 GB → 35 MB
        var ck = MethodOptions()
        ck.loraR = 4
        let loraCk = try ParameterAccounting.account(gpt3, method: .lora, options: ck)
        let fullBytes = 2 * gpt3.totalParams, loraBytes = 2 * loraCk.trainableParams
        out.append(Claim(
            id: "gpt3-checkpoint", claim: "LoRA shrinks GPT-3 175B's checkpoint from 350 GB to 35 MB",
            source: "Hu et al. 2021, LoRA, section 4.2",
            computed: "full: \(gb(fullBytes)) (\(String(format: "%.1f", Double(gpt3.totalParams) / 1e9)) B parameters in fp16); LoRA r=4: \(String(format: "%.1f MB", Double(loraBytes) / 1e6)) (\(millions(loraCk.trainableParams)) parameters in fp16)",
            assumptions: "gpt3-175b; LoRA r=4 on the query and value projections (c_attn's q and v parts have the same count as PEFT's c_attn target); fp16 tensors, no file headers",
            verdict: near(Double(fullBytes), 350e9) && near(Double(loraBytes), 35e6) ? .holds : .doesNotHold, condition: nil,
            figures: [("full_bytes", Double(fullBytes)), ("lora_bytes", Double(loraBytes)), ("lora_params", Double(loraCk.trainableParams))]))
        return out
    }

    public static let conventions = "Conventions: GB in a claim is 10⁹ bytes; a GPU holds the usable memory its profile gives (what PyTorch reports on the card: an RTX A6000, sold as 48 GB, holds 47.54 GiB), and a claim about \"a 48 GB GPU\" is checked on the card of that size that holds the most and runs bf16; \"~x\" holds within 30% of x; a range holds when the figure is inside it."
}
