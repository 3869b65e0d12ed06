import Foundation

/// How much data one training run processes.
public struct Dataset: Equatable, Sendable {
    /// Training tokens per epoch as given (`--tokens`); nil when examples are given.
    public var tokens: Double?
    /// `--examples` × `--avg-tokens`.
    public var examples: Int?
    public var avgTokens: Int?
    public var epochs: Double = 1
    /// Whether examples are packed into full sequences (else each is padded to `--seq`).
    public var packing = false
    /// The examples' token lengths (`--lengths`), in place of `examples` × `avgTokens`.
    public var lengths: TokenLengths?

    /// The dataset assumed when none is given: 100 million tokens, one epoch.
    public static let defaultTokens = 100_000_000.0

    public init(tokens: Double? = nil, examples: Int? = nil, avgTokens: Int? = nil, epochs: Double = 1, packing: Bool = false) {
        self.tokens = tokens
        self.examples = examples
        self.avgTokens = avgTokens
        self.epochs = epochs
        self.packing = packing
    }

    public var isDefault: Bool { tokens == nil && examples == nil && lengths == nil }

    /// The sequence length a step is timed at for micro-batches of `batch` when sequences are
    /// `seq` long: with a lengths file and no packing, the expected longest of `batch`
    /// examples (TRL's collator pads a micro-batch to its longest); `seq` otherwise.
    public func timedLength(batch: Int, seq: Int) -> Int {
        guard let l = lengths, !packing else { return seq }
        return max(1, min(seq, Int(l.expectedLongest(of: batch, cap: seq).rounded())))
    }

    /// Sequences of `seq` tokens one epoch needs, and the tokens they carry that are real
    /// (not padding). `--tokens` counts tokens as sequences of `seq` hold them (packed).
    public func sequencesPerEpoch(seq: Int) -> (sequences: Double, realTokens: Double) {
        let s = Double(seq)
        if let l = lengths {
            let kept = l.tokens(cap: seq)             // examples longer than the sequence are truncated
            if packing { return ((kept / s).rounded(.up), kept) }
            return (Double(l.examples), kept)
        }
        if let e = examples, let avg = avgTokens {
            let kept = Double(min(avg, seq))          // longer examples are truncated to the sequence length
            if packing { return ((Double(e) * kept / s).rounded(.up), Double(e) * kept) }
            return (Double(e), Double(e) * kept)       // one padded sequence per example
        }
        let t = tokens ?? Self.defaultTokens
        return ((t / s).rounded(.up), t)
    }

    /// The dataset in words, for the notes and the time table.
    public var summary: PlanText {
        let ep = epochs == 1 ? "1 epoch" : String(format: "%g epochs", epochs)
        if let l = lengths {
            let n = l.examples
            let mean = Int((l.tokens(cap: Int.max) / Double(n)).rounded())
            let layout: PlanText = packing ? "packed" : "each micro-batch padded to its longest example"
            return "\(n) example\(n == 1 ? "" : "s") from \(field: .lengths) (\(l.shortest)–\(l.longest) tokens, mean \(mean)), \(ep), \(layout)"
        }
        if let e = examples, let avg = avgTokens {
            let layout: PlanText = packing ? "packed" : "each padded to \(field: .seq)"
            return "\(e) example\(e == 1 ? "" : "s") × \(avg) tokens, \(ep), \(layout)"
        }
        if let t = tokens { return "\(Units.count(t)) tokens, \(ep)" }
        return "default dataset: \(Units.count(Self.defaultTokens)) tokens, \(ep) (set \(field: .tokens) or \(field: .examples)/\(field: .avgTokens))"
    }
}

/// What a run costs besides the training steps, and the price, all overridable.
public struct BudgetOptions: Equatable, Sendable {
    /// `--price` (USD per GPU-hour); nil means the profile's typical price.
    public var pricePerGPUHour: Double?
    /// `--mfu`: the fraction of the 16-bit peak the step's matmuls reach; nil means the
    /// runtime profile's figure.
    public var mfu: Double?
    /// `--setup-minutes`: starting the machine, installing, tokenising (stated guess).
    public var setupMinutes = 10.0
    /// Bytes per second for reading the model and writing checkpoints (local NVMe or a
    /// fast object store; stated guess, `--io-gbps`).
    public var ioBytesPerSecond = 1e9
    /// Checkpoints written per epoch (`--checkpoints-per-epoch`).
    public var checkpointsPerEpoch = 1.0
    /// `--provider`: price each GPU at this provider's offer in `prices` (the bundled catalogue
    /// or `--price-file`), in `tier`, billed in the provider's increments; nil: `--price` or
    /// the profile's typical price.
    public var provider: String?
    public var prices: PriceCatalogue?
    /// `--spot`: price at interruptible offers (tiers spot and interruptible), with the
    /// interruptions' expected cost in time added; nil: on-demand offers.
    public var spot: SpotPolicy?
    /// The catalogue tiers priced: on-demand, or the interruptible ones under `--spot`.
    public var tiers: [String] { spot == nil ? ["on-demand"] : SpotPolicy.tiers }
    /// `--provider all`: every provider in the catalogue, each GPU priced at the cheapest.
    public static let allProviders = "all"
    /// `--compile`: the training step runs under `torch.compile`.
    public var compile = false
    /// Optimizer steps to time (`--steps`): nil for the dataset's.
    public var steps: Int?

    public init() {}
}

/// The time and cost of one plan on one GPU type and count.
/// A spread of measured ÷ predicted time: its 10th and 90th percentiles.
public struct RatioRange: Equatable, Sendable {
    public var p10: Double, p90: Double
    public init(p10: Double, p90: Double) { self.p10 = p10; self.p90 = p90 }
}

public struct TimeEstimate: Equatable, Sendable {
    /// Matmul FLOPs of one micro-batch step (forward + backward + recompute), and the
    /// fp32 part of them.
    public var flopsPerMicroBatch = 0.0, fp32FlopsPerMicroBatch = 0.0
    /// Seconds of one micro-batch: matmuls, memory-bound extras (LoRA's fp32 casts,
    /// QLoRA's dequantisation), per GPU.
    public var computeSeconds = 0.0
    /// Seconds of one optimizer step (memory-bound; on the host when offloaded).
    public var optimizerSeconds = 0.0
    /// Communication of one optimizer step that is not hidden behind compute.
    public var communicationSeconds = 0.0
    /// Bytes one GPU moves over its host link per optimizer step (parameter offload's fetches,
    /// offloaded activations or block inputs out and back), and the seconds of it compute
    /// waits for (the copies back that nothing overlaps).
    public var hostLinkBytesPerStep = 0.0, exposedHostSecondsPerStep = 0.0
    /// One optimizer step: grad-accum micro-batches + optimizer + exposed communication.
    public var stepSeconds = 0.0
    /// Tokens per second over all GPUs (padding included, as the GPU processes them).
    public var tokensPerSecond = 0.0
    public var mfuUsed = 0.0
    public var optimizerSteps = 0.0
    public var trainHours = 0.0
    public var overheadHours = 0.0
    public var hours = 0.0
    public var gpuHours = 0.0
    public var pricePerGPUHour = 0.0
    /// Where the price comes from (the offer's page, `--price`, or the profile's estimate), its
    /// date, and the provider's offer and billing when one is used.
    public var priceSource = ""
    public var priceDate = ""
    public var provider: String?
    public var offering: String?
    public var billing: Billing?
    /// Hours billed (the run rounded up to the billing increment, at least the minimum charge)
    /// and GPUs charged (whole instances: renting 8-GPU instances for one GPU charges eight).
    public var billedHours = 0.0
    public var chargedGPUs = 0
    public var costUSD = 0.0
    /// The range of hours and cost: training time scaled by the time model's held-out 10th and
    /// 90th percentile of measured ÷ predicted step time (``TimeCoefficients/timeRatioP10``);
    /// setup and checkpoint I/O as estimated; billing applied to each end.
    public var hoursP10 = 0.0, hoursP90 = 0.0
    public var costP10USD = 0.0, costP90USD = 0.0
    /// Every provider's price for this plan (`--provider`; all of them with `--provider all`),
    /// cheapest first; the first is the one the cost above uses.
    public var quotes: [ProviderQuote] = []
    /// Expected hours added by interruptions and the checkpoints that bound their loss (`--spot`).
    public var interruptionHours = 0.0
    public var costPerEpochUSD = 0.0
    /// Per million real (non-padding) training tokens.
    public var costPerMillionTokensUSD = 0.0
    /// Of `stepSeconds`: the trainer's no-grad forwards (reference, KTO's KL, GRPO's old
    /// log-probabilities) and GRPO's generation, per optimizer step.
    public var extraForwardSeconds = 0.0
    public var generation: GenerationTime?
    /// GRPO: the spread applied to the generation's hours in the range (Transformers' generate's
    /// held-out P10 and P90; 1 and 1 for vLLM, not fitted); nil without generation.
    public var generationRange: RatioRange? = nil
    /// GPUs billed besides the training ones (a vLLM server's).
    public var generationGPUs = 0
}

/// Step time from the step's work (``StepWork``: FLOPs, bytes, calls, link traffic) and the
/// runtime's fitted coefficients (``TimeCoefficients``; README, "The model": Time, and
/// docs/time-model.md). FLOPs count every executed matmul, checkpointing's recompute
/// included, so recompute costs time as it does on a GPU; hours and cost come with the
/// held-out range.
public enum TimeModel {
    /// Estimates one plan on `gpu` × the context's GPU count, sharding and offload.
    public static func estimate(_ ctx: PlanContext, gpu: GPUProfile, dataset: Dataset, budget: BudgetOptions) -> TimeEstimate {
        let scale = ctx.scale
        var e = TimeEstimate()
        let t = ctx.training
        let c = ctx.runtime.time
        let s = t.seq
        // Micro-batches padded to their longest example are timed at its expected length; each
        // GPU pads its own and the slowest sets the pace: the longest of batch × GPUs examples.
        var timed = ctx
        timed.training.seq = dataset.timedLength(batch: t.batch * max(1, ctx.scale.gpus), seq: s)
        let w = timed.stepWork(gpu: gpu)
        e.flopsPerMicroBatch = w.countedFlops
        e.fp32FlopsPerMicroBatch = w.countedFp32Flops
        let mfu = budget.mfu ?? c.matmulEfficiency(gpu)
        e.mfuUsed = mfu
        let seconds = c.seconds(w, gpu: gpu, precision: t.precision, matmulEfficiency: mfu, compile: budget.compile, runtime: ctx.runtime)
        e.computeSeconds = seconds.microBatch
        e.optimizerSeconds = seconds.optimizer
        e.communicationSeconds = seconds.exposedCommunication
        e.stepSeconds = seconds.step
        let trainer = t.trainer
        if trainer.kind != .sft {
            // The no-grad forwards run the micro-batch's rows once more each: their share of a
            // micro-batch's compute is the forward's share of its FLOPs.
            let f = timed.flops(batch: t.batch, seq: timed.training.seq)
            let share = f.forward / max(1, f.forward + f.backward + f.recompute)
            let reuse = Double(trainer.stepsPerGeneration)
            e.extraForwardSeconds = Double(trainer.extraForwards) * share * seconds.microBatch * w.microBatches / reuse
            e.stepSeconds += e.extraForwardSeconds
            if trainer.kind == .grpo {
                var g = GenerationTime.estimate(ctx, gpu: gpu, mfu: mfu)
                // one generation serves num_iterations optimizer steps
                (g.prefillSeconds, g.decodeSeconds, g.syncSeconds) = (g.prefillSeconds / reuse, g.decodeSeconds / reuse, g.syncSeconds / reuse)
                e.generation = g
                e.stepSeconds += g.seconds
                e.generationGPUs = trainer.generation == .vllmServer ? trainer.vllmGPUs : 0
            }
        }
        e.hostLinkBytesPerStep = (w.offloadBytesPerMicroBatch + w.exposedHostBytesPerMicroBatch) * w.microBatches
        e.exposedHostSecondsPerStep = w.exposedHostBytesPerMicroBatch * w.microBatches / ctx.runtime.hostLinkBytesPerSecond
        e.tokensPerSecond = w.tokensPerStep / e.stepSeconds
        let shards = Double(max(1, scale.gpus))
        let b = t.batch
        let accum = w.microBatches

        var (sequences, realTokens) = dataset.sequencesPerEpoch(seq: s)
        // GRPO's examples are prompts, each generating num_generations completions
        if t.trainer.kind == .grpo { sequences *= Double(t.trainer.numGenerations) }
        // DPO, ORPO, SimPO: a micro-batch counts pairs, each two rows of the tokens given
        if t.trainer.kind.pairs && dataset.examples == nil && dataset.lengths == nil { sequences = (sequences / 2).rounded(.up) }
        let sequencesPerStep = Double(b) * accum * shards
        let stepsPerEpoch = (sequences / sequencesPerStep).rounded(.up)
        e.optimizerSteps = budget.steps.map(Double.init) ?? stepsPerEpoch * dataset.epochs
        e.trainHours = e.optimizerSteps * e.stepSeconds / 3600
        let load = Double(ctx.checkpointLoadBytes) / budget.ioBytesPerSecond
        let saves = Double(ctx.checkpointSaveBytes) / budget.ioBytesPerSecond * budget.checkpointsPerEpoch * dataset.epochs.rounded(.up)
        e.overheadHours = (budget.setupMinutes * 60 + load + saves) / 3600
        e.hours = e.trainHours + e.overheadHours
        // a vLLM server's GPUs are rented beside the training ones
        let billed = shards + Double(e.generationGPUs)
        e.gpuHours = e.hours * billed
        e.pricePerGPUHour = budget.pricePerGPUHour ?? gpu.price.usdPerHour
        e.priceSource = budget.pricePerGPUHour != nil ? "--price" : gpu.price.source
        e.priceDate = budget.pricePerGPUHour != nil ? "" : gpu.price.date
        e.billedHours = e.hours
        e.chargedGPUs = Int(billed)
        e.costUSD = e.gpuHours * e.pricePerGPUHour
        // the range: the training time's held-out spread on the training share; Transformers'
        // generate's own held-out spread on its generation (GenerationTime); vLLM's as planned
        let generationHours = e.optimizerSteps * (e.generation?.seconds ?? 0) / 3600
        let ranged = e.trainHours - generationHours
        let spread = t.trainer.generation == .transformers
            ? RatioRange(p10: GenerationTime.generateRatioP10, p90: GenerationTime.generateRatioP90) : RatioRange(p10: 1, p90: 1)
        if e.generation != nil { e.generationRange = spread }
        e.hoursP10 = ranged * c.timeRatioP10 + generationHours * spread.p10 + e.overheadHours
        e.hoursP90 = ranged * c.timeRatioP90 + generationHours * spread.p90 + e.overheadHours
        e.costP10USD = e.hoursP10 * billed * e.pricePerGPUHour
        e.costP90USD = e.hoursP90 * billed * e.pricePerGPUHour
        if let name = budget.provider, let prices = budget.prices {
            let names = name.lowercased() == BudgetOptions.allProviders ? prices.providers.map(\.name) : [name]
            let save = Double(ctx.checkpointSaveBytes) / budget.ioBytesPerSecond
            e.quotes = names.flatMap { n in budget.tiers.compactMap { tier in
                e.quote(prices: prices, provider: n, tier: tier, gpu: gpu.name, gpus: Int(billed), spot: budget.spot, saveSeconds: save)
            } }.sorted { ($0.costUSD, $0.provider) < ($1.costUSD, $1.provider) }
            if let q = e.quotes.first {
                e.provider = q.provider
                e.offering = q.offering
                e.billing = q.billing
                e.pricePerGPUHour = q.usdPerGPUHour
                e.priceSource = q.source
                e.priceDate = q.date
                e.chargedGPUs = q.chargedGPUs
                e.interruptionHours = q.interruptionHours
                e.hours += q.interruptionHours
                e.hoursP10 += q.interruptionHours
                e.hoursP90 += q.interruptionHours
                e.gpuHours = e.hours * billed
                e.billedHours = q.billedHours
                (e.costUSD, e.costP10USD, e.costP90USD) = (q.costUSD, q.costP10USD, q.costP90USD)
            }
        }
        if budget.steps != nil {
            // a number of steps, not the dataset: per epoch at this rate, per million tokens trained
            e.costPerEpochUSD = e.costUSD * stepsPerEpoch / max(e.optimizerSteps, 1)
            e.costPerMillionTokensUSD = e.costUSD / max(e.tokensPerSecond * e.trainHours * 3600 / 1e6, 1e-9)
        } else {
            e.costPerEpochUSD = e.costUSD / max(dataset.epochs, 1e-9)
            e.costPerMillionTokensUSD = e.costUSD / max(realTokens * dataset.epochs / 1e6, 1e-9)
        }
        return e
    }

    /// Bytes each GPU sends per optimizer step (`perStep`, may overlap with compute) and the
    /// parameter bytes fetched from the host per micro-batch (parameter offload), from
    /// ring-collective volumes:
    /// - all-reduce moves 2·(N−1)/N of the buffer per GPU; reduce-scatter and all-gather
    ///   (N−1)/N each (Rajbhandari et al., ZeRO, SC'20, §7: DDP and ZeRO-1/2 move 2Ψ,
    ///   ZeRO-3 3Ψ per step).
    /// - DDP / ZeRO-1: one all-reduce of the gradients per optimizer step (no_sync while
    ///   accumulating). ZeRO-2: a reduce-scatter of the gradients per micro-batch and an
    ///   all-gather of the updated 16-bit weights per step. ZeRO-3 / FSDP: per micro-batch
    ///   two all-gathers of the weights (forward, backward; three with checkpointing's
    ///   recompute) and a reduce-scatter of the gradients.
    static func collectiveBytes(_ ctx: PlanContext, scale: ScaleOptions) -> (perStep: Double, offloadPerMicroBatch: Double) {
        let n = Double(scale.gpus)
        let accum = Double(ctx.training.gradAccum)
        // The weights as the GPUs hold them: 16-bit, or 4-bit blocks with their constants
        // under QLoRA (FSDP shards and gathers the quantised storage).
        let weights = Double(ctx.unsharded.weights)
        var offload = 0.0
        if scale.offload == .params {
            // Offloaded parameters cross PCIe for forward, backward (and recompute).
            offload = (ctx.checkpointing ? 3.0 : 2.0) * weights
        }
        guard n > 1 else { return (0, offload) }
        let g = Double(ctx.unsharded.gradients)
        let frac = (n - 1) / n
        var bytes = 0.0
        switch scale.sharding {
        case .none, .zero1:
            bytes = 2 * frac * g
        case .zero2:
            bytes = accum * frac * g + frac * Double(ctx.unsharded.trainableWeights)
        case .zero3, .fsdp:
            let gathers = ctx.checkpointing ? 3.0 : 2.0
            bytes = accum * (gathers * frac * weights + frac * g)
        }
        return (bytes, offload)
    }
}

/// One provider's price for a plan: its cheapest offer of the GPU in a tier, billed in its
/// increments for whole instances, at the expected hours and at each end of the range.
public struct ProviderQuote: Equatable, Sendable {
    public var provider: String
    public var tier: String
    public var offering: String
    public var usdPerGPUHour: Double
    public var billing: Billing
    public var chargedGPUs: Int
    /// Hours added by interruptions (interruptible tiers under `--spot`), included below.
    public var interruptionHours: Double
    public var billedHours: Double
    public var costUSD: Double, costP10USD: Double, costP90USD: Double
    public var date: String
    public var source: String
}

/// How `--spot` plans interruptible capacity: how often an instance is reclaimed, how often
/// training saves a checkpoint to resume from, and what a restart costs. Each interruption
/// loses the work since the last checkpoint (half an interval on average) and the restart;
/// each checkpoint costs its write.
public struct SpotPolicy: Equatable, Sendable {
    /// Interruptions per instance-hour. Default 0.20 per instance-month (730 h): the highest
    /// band AWS's Spot Instance Advisor gave H100 instances (p5, "10–20%" of instances
    /// reclaimed over the trailing month), as reported from the Advisor on 2025-05-01 by
    /// thundercompute.com/blog/should-i-use-cloud-gpu-spot-instances (read 2026-12-07).
    /// Marketplace hosts can be reclaimed far more often: set `--interruptions-per-hour`.
    public var interruptionsPerHour = 0.20 / 730
    /// `--checkpoint-minutes`: training time between checkpoints.
    public var checkpointMinutes = 30.0
    /// `--restart-minutes`: from an interruption to training again (a new instance, the
    /// environment, the model and the last checkpoint loaded).
    public var restartMinutes = 15.0

    public static let tiers = ["spot", "interruptible"]

    public init() {}

    /// Hours added to a run of `hours` on `instances` instances whose checkpoint takes
    /// `saveSeconds` to write, and the interruptions expected.
    public func addedHours(hours: Double, instances: Int, saveSeconds: Double) -> (hours: Double, interruptions: Double) {
        let saves = (hours * 60 / checkpointMinutes).rounded(.down) * saveSeconds / 3600
        let interruptions = interruptionsPerHour * Double(max(1, instances)) * (hours + saves)
        let lost = interruptions * (restartMinutes / 60 + checkpointMinutes / 120)
        return (saves + lost, interruptions)
    }
}

extension TimeEstimate {
    /// `provider`'s price for this estimate in `tier`, nil when it offers no such GPU there.
    func quote(prices: PriceCatalogue, provider: String, tier: String, gpu: String, gpus: Int, spot: SpotPolicy?, saveSeconds: Double) -> ProviderQuote? {
        guard let info = prices.provider(named: provider), let (o, charged) = prices.offer(provider: provider, gpu: gpu, gpus: gpus, tier: tier) else { return nil }
        let added = tier == "on-demand" ? 0 : (spot?.addedHours(hours: hours, instances: charged / o.gpusPerInstance, saveSeconds: saveSeconds).hours ?? 0)
        func cost(_ h: Double) -> (billed: Double, cost: Double) {
            let billed = info.billing.billedSeconds((h + added) * 3600) / 3600
            return (billed, billed * Double(charged) * o.usdPerGPUHour)
        }
        let mid = cost(hours)
        return ProviderQuote(provider: info.name, tier: tier, offering: o.offering, usdPerGPUHour: o.usdPerGPUHour, billing: info.billing,
                             chargedGPUs: charged, interruptionHours: added, billedHours: mid.billed, costUSD: mid.cost,
                             costP10USD: cost(hoursP10).cost, costP90USD: cost(hoursP90).cost, date: o.date, source: o.source)
    }
}

/// The work of one optimizer step on one GPU, as physical quantities the time model turns
/// into seconds with its coefficients (``TimeCoefficients``): FLOPs, bytes moved by
/// memory-bound work, kernel calls, bytes over links. Derived from the plan alone.
public struct StepWork: Equatable, Sendable {
    /// Micro-batches per optimizer step (gradient accumulation).
    public var microBatches = 1.0
    /// Matmul FLOPs of one micro-batch as PyTorch's counter counts them (forward, backward,
    /// recompute), and the fp32 part of them.
    public var countedFlops = 0.0, countedFp32Flops = 0.0
    /// Matmul FLOPs executed per micro-batch in the 16-bit dtype and in fp32 (causal flash
    /// attention's skipped blocks taken out; recompute included).
    public var matmul16 = 0.0, matmul32 = 0.0
    /// Bytes of saved activations and logits written in forward and read in backward per
    /// micro-batch (recompute writes them once more): the elementwise traffic that grows
    /// with tokens × width rather than with FLOPs.
    public var activationBytes = 0.0
    /// LoRA's extra elementwise traffic per micro-batch (casts, scaled update, addition).
    public var adapterBytes = 0.0
    /// 4-bit weights dequantised per micro-batch (QLoRA), and 4-bit matmul calls.
    public var dequantWeights = 0.0, quantisedCalls = 0.0
    /// Transformer blocks run per micro-batch (forward, backward, recompute each count one).
    public var blockPasses = 0.0
    /// Bytes the optimizer step moves in GPU memory; seconds it takes on the host when offloaded.
    public var optimizerBytes = 0.0, hostOptimizerSeconds = 0.0
    /// Bytes of collectives per optimizer step, and parameter bytes fetched from the host per
    /// micro-batch (parameter offload).
    public var collectiveBytes = 0.0, offloadBytesPerMicroBatch = 0.0
    /// Bytes per micro-batch copied from the host that compute waits for (activation
    /// offloading's backward copies).
    public var exposedHostBytesPerMicroBatch = 0.0
    /// Where the collectives run: within one node over NVLink-class links, over PCIe, or
    /// across nodes.
    public var link = Link.none
    /// Tokens one optimizer step processes over all GPUs (padding included).
    public var tokensPerStep = 0.0

    public enum Link: String, Sendable { case none, nvlink, pcie, network }
}

extension PlanContext {
    /// The step's work on `gpu` (the context's GPU count, sharding and offload).
    public func stepWork(gpu: GPUProfile) -> StepWork {
        var w = StepWork()
        let t = training
        let (b, s) = layout(batch: t.batch, seq: t.seq)     // one row under padding-free SDPA
        let f = flops(batch: b, seq: s), f32 = fp32Flops(batch: b, seq: s)
        let all = f.forward + f.backward + f.recompute
        let all32 = f32.forward + f32.backward + f32.recompute
        (w.countedFlops, w.countedFp32Flops) = (all, all32)
        // Causal flash attention executes about half of the s × s square the counter counts
        // (FlashAttention-2, Dao 2023, §3.1: blocks above the diagonal are skipped).
        let flash = flashAttentionFlops(batch: b, seq: s)
        let executed = all - 0.5 * (flash.forward + flash.backward + flash.recompute)
        let f16 = t.precision == .fp32 ? 0 : (runtime.autocast ? executed : executed - all32)
        w.matmul16 = f16
        w.matmul32 = executed - f16
        w.microBatches = Double(t.gradAccum)
        let (sq, skv) = lengths(seq: s)
        let passes = checkpointing ? 4.0 / 3 : 1
        // The loss's logits-sized traffic: the kept logits (standard); the tiles a fused loss
        // writes and folds once per pass, in the head's compute dtype (chunked, liger); none
        // for Cut Cross-Entropy, whose logits stay on chip.
        let logitsTraffic: Double
        switch t.loss {
        case .standard: logitsTraffic = logitsBill.bytes(batch: b, sq: sq, skv: skv)
        case .chunked, .liger:
            // the head's compute dtype: QLoRA's rest dtype (fp32 after prepare_model_for_kbit_training)
            let head = account.method.spec.quantisesBase
                ? account.method.quantisedRestBytes(methodOptions, precision: t.precision, kernels: t.kernels) : t.precision.bytes
            logitsTraffic = Double(b) * Double(sq) * Double(arch.vocabSize) * Double(head)
        case .cce: logitsTraffic = 0
        case .unsloth:
            // per chunk the 16-bit logits and their fp32 cross-entropy
            logitsTraffic = Double(b) * Double(sq) * Double(arch.vocabSize) * Double(t.precision.bytes + 4)
        }
        w.activationBytes = (blockActivations(batch: b, sq: sq, skv: skv) + logitsTraffic) * passes
        let bytes = memoryBoundParts(batch: b, seq: s)
        w.adapterBytes = bytes.adapter
        w.dequantWeights = bytes.dequantWeights
        w.quantisedCalls = Double(quantisedCalls)
        w.blockPasses = Double(arch.numLayers) * (checkpointing ? 3 : 2)
        let shards = Double(max(1, scale.gpus))
        if scale.offload == .none {
            w.optimizerBytes = Double(optimizerTrafficBytes)
        } else {
            // ZeRO-Offload: this GPU's gradient shard to the host, the step over its share of
            // the host's states, the updated 16-bit weights back.
            let share = scale.sharding.shardsOptimizer ? 1 / shards : 1
            let moved = Double(unsharded.gradients + unsharded.trainableWeights) * share
            w.hostOptimizerSeconds = moved / runtime.hostLinkBytesPerSecond + 2 * Double(hostBytes) / shards / runtime.hostMemoryBytesPerSecond
        }
        let comm = TimeModel.collectiveBytes(self, scale: scale)
        w.collectiveBytes = comm.perStep
        w.offloadBytesPerMicroBatch = comm.offloadPerMicroBatch
        if offloadsBlockInputs(batch: b, seq: s) {
            // Unsloth's offloaded checkpointing (unsloth-zoo @ce232d6c gradient_checkpointing.py):
            // forward copies each block's input out on a side stream, overlapped with the block
            // (L851–885); backward copies it back into the staging buffer and the compute stream
            // waits for it before the recompute (L914–983), without prefetching the next layer's:
            // that half is exposed. The last layer's input stays on the GPU after the first step.
            let (sq, _) = lengths(seq: s)
            let input = activationScale * Double(b) * Double(sq) * Double(checkpointInputPerToken)
            let moved = Double(max(0, arch.numLayers - 1)) * input
            w.offloadBytesPerMicroBatch += moved
            w.exposedHostBytesPerMicroBatch += moved
        }
        if t.activationOffloading {
            // TRL 1.16 trl/models/activation_offloading.py: forward copies each saved tensor to
            // the host on a side stream (overlapped, like parameter prefetch); backward copies
            // each back on demand and the compute stream waits for it (unpack_tensor_with_streams:
            // s0.wait_stream(s1), no prefetch), so that half is exposed. Reentrant checkpointing
            // reruns each block under the same hooks in backward: its saved tensors go out and
            // come back once more.
            let offloaded = phases(batch: b, seq: s).offloaded
            var again = 0.0
            if checkpointing && recomputesWholeBlocks {
                let (sq, skv) = lengths(seq: s)
                again = activationScale * Double(arch.numLayers) * oneBlock(batch: b, sq: sq, skv: skv)
            }
            w.offloadBytesPerMicroBatch += offloaded + again
            w.exposedHostBytesPerMicroBatch = offloaded + again
        }
        if scale.gpus > 1 {
            w.link = scale.gpus > runtime.gpusPerNode ? .network : (gpu.interconnect.isPCIe ? .pcie : .nvlink)
        }
        w.tokensPerStep = Double(b) * Double(s) * w.microBatches * shards
        return w
    }
}

extension PlanContext {
    /// Bytes the optimizer step reads and writes on the GPU: each trainable weight read and
    /// written, its gradient read, each state (and master weight) read and written —
    /// a fused AdamW touches every byte once each way (torch/optim/adamw.py, fused path).
    public var optimizerTrafficBytes: Int {
        2 * (trainableWeights + optimizerStates + masterWeights) + gradients
    }

    /// Memory-bound work the 16-bit matmul rate does not cover, per micro-batch: LoRA's bytes
    /// and QLoRA's dequantised weights.
    /// - LoRA (peft/tuners/lora/layer.py `forward`): per wrapped module and token, the
    ///   input cast to fp32 (read a, write 4 bytes per input feature), the scaled fp32
    ///   update and its addition to the base output (about 16 bytes per output feature);
    ///   backward twice that; checkpointing's recompute once more. Adapters in the model's
    ///   16-bit dtype cast nothing and write, scale and add a 16-bit update (4a bytes per
    ///   output feature).
    /// - QLoRA (bitsandbytes `matmul_4bit`): every 4-bit block weight dequantised to the
    ///   compute dtype before its matmul in forward, backward and recompute, at the
    ///   runtime's `dequantBytesPerWeight` (a perfect kernel: read ½, write 2 bytes).
    func memoryBoundParts(batch: Int, seq: Int) -> (adapter: Double, dequantWeights: Double) {
        let (sq, _) = lengths(seq: seq)
        let tokens = Double(batch) * Double(sq)
        let a = Double(training.precision.bytes)
        var adapter = 0.0, dequant = 0.0
        if account.method.spec.wrapper == .lowRank {
            // (a vision tower's adapters run over its patches: their share is left out)
            let fp32 = account.method.adapterElementBytes(methodOptions, precision: training.precision) == 4
            // QLoRA's residual stream is fp32 after prepare_model_for_kbit_training: 16-bit
            // adapters cast their input down (read 4, write a bytes per input feature); a stack
            // that keeps the rest 16-bit casts nothing
            let stream = account.method.quantisedRestBytes(methodOptions, precision: training.precision, kernels: training.kernels)
            let castDown = stream == 4 ? 4 + a : 0
            // Unsloth's matmul_lora adds X·A·B into the base output with one addmm_ in the
            // input's dtype (unsloth @015bdef0 kernels/utils.py L1163–1167): the output read and
            // written once more, no casts of the activations.
            let perToken = account.wrapped.filter { !$0.module.isVision }.reduce(0.0) { sum, w in
                let (i, o) = (Double(w.module.inFeatures), Double(w.module.outFeatures))
                if unslothFuses(w.module) { return sum + Double(w.instances) * 2 * a * o }
                return sum + Double(w.instances) * (fp32 ? (a + 4) * i + 16 * o : castDown * i + 4 * a * o)
            }
            adapter = tokens * perToken * (checkpointing ? 4 : 3)
        }
        if account.method.spec.quantisesBase {
            let blocks = arch.modules.reduce(0) { $0 + ($1.perLayer && $1.quantisedBy4Bit ? $1.weightElements * arch.instances($1) : 0) }
            let tower = arch.modules.reduce(0) { $0 + ($1.isVision && $1.quantisedBy4Bit ? $1.weightElements * arch.instances($1) : 0) }
            dequant = Double(blocks) * Double(checkpointing ? 3 : 2) + Double(tower) * Double(towerPasses)
        }
        return (adapter, dequant)
    }

    /// Whether Unsloth's fused LoRA functions run `module` (as ``GraphContext``'s
    /// `unslothFuses`: its group — q/k/v, o, or gate/up/down — all wrapped, without a base bias
    /// or DoRA).
    func unslothFuses(_ module: ModuleSpec) -> Bool {
        guard let group = KernelPatch.unslothGroups.first(where: { $0.contains(module.role) }) else { return false }
        let wrapped = Set(account.wrapped.map(\.module.key))
        return KernelPatch(arch.family.spec, kernels: training.kernels)
            .unslothFuses(group, layer: 0, arch: arch, method: account.method, options: methodOptions) { wrapped.contains($0.key) }
    }

    /// How often a vision tower's 4-bit Linears run per micro-batch: never without images,
    /// forward only when no adapter sits in the tower, else as the blocks' do.
    var towerPasses: Int {
        guard arch.vision != nil, training.imageTokens > 0 else { return 0 }
        return account.wrapped.contains { $0.module.isVision } ? (checkpointing ? 3 : 2) : 1
    }

    /// 4-bit matmul calls per micro-batch (QLoRA): each quantised block Linear once in
    /// forward, once in backward, once more in checkpointing's recompute.
    var quantisedCalls: Int {
        guard account.method.spec.quantisesBase else { return 0 }
        let blocks = arch.modules.reduce(0) { $0 + ($1.perLayer && $1.quantisedBy4Bit ? arch.instances($1) : 0) }
        let tower = arch.modules.reduce(0) { $0 + ($1.isVision && $1.quantisedBy4Bit ? arch.instances($1) : 0) }
        return blocks * (checkpointing ? 3 : 2) + tower * towerPasses
    }

    /// Bytes read when the run starts: the base model as stored (16-bit checkpoint files).
    var checkpointLoadBytes: Int { account.baseParams * 2 }
    /// Bytes written per checkpoint: the adapter file for PEFT methods; for full
    /// fine-tuning the weights plus optimizer states (Trainer saves both to resume).
    var checkpointSaveBytes: Int {
        account.method.spec.trainsBase ? unsharded.trainableWeights + unsharded.optimizerStates + unsharded.masterWeights : account.adapterFileBytes
    }
}
