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

    /// The dataset assumed when none is given: 100 million tokens, one epoch.
    public static let defaultTokens = 100_000_000.0

    public init(tokens: Double? = nil, examples: Int? = nil, avgTokens: Int? = nil, epochs: Double = 1, packing: Bool = false) {
        self.tokens = tokens
        self.examples = examples
        self.avgTokens = avgTokens
        self.epochs = epochs
        self.packing = packing
    }

    public var isDefault: Bool { tokens == nil && examples == nil }

    /// Sequences of `seq` tokens one epoch needs, and the tokens they carry that are real
    /// (not padding). `--tokens` counts tokens as sequences of `seq` hold them (packed).
    public func sequencesPerEpoch(seq: Int) -> (sequences: Double, realTokens: Double) {
        let s = Double(seq)
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
    public var tier = "on-demand"

    public init() {}
}

/// The time and cost of one plan on one GPU type and count.
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
    public var costPerEpochUSD = 0.0
    /// Per million real (non-padding) training tokens.
    public var costPerMillionTokensUSD = 0.0
}

/// Step time from FLOPs, bandwidth and the runtime's efficiencies (README, "The model": Time).
///
/// time(micro-batch) = F₁₆ / (peak₁₆ · MFU) + F₃₂ / (peak₃₂ · MFU₃₂) + bytes moved by
/// memory-bound extras / (bandwidth · η_mem). `MFU` is the fraction of the datasheet's
/// dense 16-bit peak that the matmuls reach, counting every FLOP actually executed
/// (checkpointing's recompute included), so recompute costs time as it does on a GPU.
public enum TimeModel {
    /// Estimates one plan on `gpu` × the context's GPU count, sharding and offload.
    public static func estimate(_ ctx: PlanContext, gpu: GPUProfile, dataset: Dataset, budget: BudgetOptions) -> TimeEstimate {
        let scale = ctx.scale
        var e = TimeEstimate()
        let t = ctx.training
        let rt = ctx.runtime
        let b = t.batch, s = t.seq
        let f = ctx.flops(batch: b, seq: s), f32 = ctx.fp32Flops(batch: b, seq: s)
        e.flopsPerMicroBatch = f.forward + f.backward + f.recompute
        e.fp32FlopsPerMicroBatch = f32.forward + f32.backward + f32.recompute
        let mfu = budget.mfu ?? rt.mfu
        e.mfuUsed = mfu
        let peak16 = (gpu.denseTflops[t.precision.tflopsKey] ?? gpu.denseTflops["fp16"] ?? gpu.denseTflops["fp32"] ?? 1) * 1e12
        let peak32 = (gpu.denseTflops["fp32"] ?? 1) * 1e12
        let bandwidth = gpu.memoryBandwidthBytesPerSecond * rt.bandwidthEfficiency
        // Causal flash attention executes about half of the s × s square the counter counts
        // (FlashAttention-2, Dao 2023, §3.1: blocks above the diagonal are skipped).
        let flash = ctx.flashAttentionFlops(batch: b, seq: s)
        let executed = e.flopsPerMicroBatch - 0.5 * (flash.forward + flash.backward + flash.recompute)
        let f16 = t.precision == .fp32 ? 0 : (rt.autocast ? executed : executed - e.fp32FlopsPerMicroBatch)
        let fp32 = executed - f16
        // fp32 training runs its matmuls at the fp32 rate with the same efficiency.
        let fp32Efficiency = t.precision == .fp32 ? mfu : rt.fp32Efficiency
        e.computeSeconds = f16 / (peak16 * mfu) + fp32 / (peak32 * fp32Efficiency)
            + ctx.memoryBoundBytes(batch: b, seq: s) / bandwidth + Double(ctx.quantisedCalls) * rt.quantisedCallSeconds

        // Optimizer step: memory-bound on the GPU over this GPU's shard (the context's
        // components are already per GPU); on the host when offloaded.
        let shards = Double(max(1, scale.gpus))
        if scale.offload == .none {
            e.optimizerSeconds = Double(ctx.optimizerTrafficBytes) / bandwidth
        } else {
            // ZeRO-Offload: this GPU's gradient shard to the host, the step over its share of
            // the host's states, the updated 16-bit weights back.
            let share = scale.sharding.shardsOptimizer ? 1 / shards : 1
            let moved = Double(ctx.unsharded.gradients + ctx.unsharded.trainableWeights) * share
            e.optimizerSeconds = moved / rt.hostLinkBytesPerSecond + 2 * Double(ctx.hostBytes) / shards / rt.hostMemoryBytesPerSecond
        }
        let comm = communicationSeconds(ctx, gpu: gpu, scale: scale)
        let micro = e.computeSeconds + comm.perMicroBatchExtra
        let accum = Double(t.gradAccum)
        // Communication runs on its own stream; what exceeds the compute it overlaps shows.
        e.communicationSeconds = max(0, comm.perStep - accum * micro * rt.communicationOverlap)
        e.stepSeconds = accum * micro + e.optimizerSeconds + e.communicationSeconds
        let tokensPerStep = Double(b) * Double(s) * accum * shards
        e.tokensPerSecond = tokensPerStep / e.stepSeconds

        let (sequences, realTokens) = dataset.sequencesPerEpoch(seq: s)
        let sequencesPerStep = Double(b) * accum * shards
        let stepsPerEpoch = (sequences / sequencesPerStep).rounded(.up)
        e.optimizerSteps = stepsPerEpoch * dataset.epochs
        e.trainHours = e.optimizerSteps * e.stepSeconds / 3600
        let load = Double(ctx.checkpointLoadBytes) / budget.ioBytesPerSecond
        let saves = Double(ctx.checkpointSaveBytes) / budget.ioBytesPerSecond * budget.checkpointsPerEpoch * dataset.epochs.rounded(.up)
        e.overheadHours = (budget.setupMinutes * 60 + load + saves) / 3600
        e.hours = e.trainHours + e.overheadHours
        e.gpuHours = e.hours * shards
        e.pricePerGPUHour = budget.pricePerGPUHour ?? gpu.price.usdPerHour
        e.priceSource = budget.pricePerGPUHour != nil ? "--price" : gpu.price.source
        e.priceDate = budget.pricePerGPUHour != nil ? "" : gpu.price.date
        e.billedHours = e.hours
        e.chargedGPUs = Int(shards)
        e.costUSD = e.gpuHours * e.pricePerGPUHour
        if let name = budget.provider, let prices = budget.prices, let info = prices.provider(named: name),
           let (o, charged) = prices.offer(provider: name, gpu: gpu.name, gpus: Int(shards), tier: budget.tier) {
            e.provider = info.name
            e.offering = o.offering
            e.billing = info.billing
            e.pricePerGPUHour = o.usdPerGPUHour
            e.priceSource = o.source
            e.priceDate = o.date
            e.chargedGPUs = charged
            e.billedHours = info.billing.billedSeconds(e.hours * 3600) / 3600
            e.costUSD = e.billedHours * Double(charged) * o.usdPerGPUHour
        }
        e.costPerEpochUSD = e.costUSD / max(dataset.epochs, 1e-9)
        e.costPerMillionTokensUSD = e.costUSD / max(realTokens * dataset.epochs / 1e6, 1e-9)
        return e
    }

    /// Bytes each GPU sends per optimizer step (`perStep`, may overlap with compute) and
    /// the extra seconds of each micro-batch that cannot overlap (fetching offloaded
    /// parameters), from ring-collective volumes:
    /// - all-reduce moves 2·(N−1)/N of the buffer per GPU; reduce-scatter and all-gather
    ///   (N−1)/N each (Rajbhandari et al., ZeRO, SC'20, §7: DDP and ZeRO-1/2 move 2Ψ,
    ///   ZeRO-3 3Ψ per step).
    /// - DDP / ZeRO-1: one all-reduce of the gradients per optimizer step (no_sync while
    ///   accumulating). ZeRO-2: a reduce-scatter of the gradients per micro-batch and an
    ///   all-gather of the updated 16-bit weights per step. ZeRO-3 / FSDP: per micro-batch
    ///   two all-gathers of the weights (forward, backward; three with checkpointing's
    ///   recompute) and a reduce-scatter of the gradients.
    static func communicationSeconds(_ ctx: PlanContext, gpu: GPUProfile, scale: ScaleOptions)
        -> (perStep: Double, perMicroBatchExtra: Double) {
        let n = Double(scale.gpus)
        let accum = Double(ctx.training.gradAccum)
        let weights16 = Double(ctx.account.baseParams * ctx.training.precision.bytes)
        var extra = 0.0
        if scale.offload == .params {
            // Offloaded parameters cross PCIe for forward, backward (and recompute).
            let passes = ctx.checkpointing ? 3.0 : 2.0
            extra = passes * weights16 / ctx.runtime.hostLinkBytesPerSecond
        }
        guard n > 1 else { return (0, extra) }
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
            bytes = accum * (gathers * frac * weights16 + frac * g)
        }
        return (bytes / linkBytesPerSecond(gpu: gpu, gpus: scale.gpus, runtime: ctx.runtime), extra)
    }

    /// Per-GPU bandwidth one direction of a ring collective gets: half the profile's
    /// interconnect figure (datasheets quote both directions) times the runtime's
    /// collective efficiency; past one node (8 GPUs) the network's per-GPU bandwidth.
    static func linkBytesPerSecond(gpu: GPUProfile, gpus: Int, runtime: RuntimeProfile) -> Double {
        let inNode = gpu.interconnect.bytesPerSecond / 2
        let link = gpus > runtime.gpusPerNode ? min(inNode, runtime.networkBytesPerSecondPerGPU) : inNode
        return link * runtime.collectiveEfficiency
    }
}

extension PlanContext {
    /// Bytes the optimizer step reads and writes on the GPU: each trainable weight read and
    /// written, its gradient read, each state (and master weight) read and written —
    /// a fused AdamW touches every byte once each way (torch/optim/adamw.py, fused path).
    public var optimizerTrafficBytes: Int {
        2 * (trainableWeights + optimizerStates + masterWeights) + gradients
    }

    /// Bytes moved by memory-bound work the 16-bit MFU does not cover, per micro-batch:
    /// - LoRA (peft/tuners/lora/layer.py `forward`): per wrapped module and token, the
    ///   input cast to fp32 (read a, write 4 bytes per input feature), the scaled fp32
    ///   update and its addition to the base output (about 16 bytes per output feature);
    ///   backward twice that; checkpointing's recompute once more.
    /// - QLoRA (bitsandbytes `matmul_4bit`): every 4-bit block weight dequantised to the
    ///   compute dtype before its matmul in forward, backward and recompute, at the
    ///   runtime's `dequantBytesPerWeight` (a perfect kernel: read ½, write 2 bytes).
    func memoryBoundBytes(batch: Int, seq: Int) -> Double {
        let (sq, _) = lengths(seq: seq)
        let tokens = Double(batch) * Double(sq)
        let a = Double(training.precision.bytes)
        var bytes = 0.0
        if account.method.spec.wrapper == .lowRank {
            // (a vision tower's adapters run over its patches: their share is left out)
            let perToken = account.wrapped.filter { !$0.module.isVision }.reduce(0.0) { sum, w in
                sum + Double(w.instances) * ((a + 4) * Double(w.module.inFeatures) + 16 * Double(w.module.outFeatures))
            }
            bytes += tokens * perToken * (checkpointing ? 4 : 3)
        }
        if account.method.spec.quantisesBase {
            let blocks = arch.modules.reduce(0) { $0 + ($1.perLayer && $1.quantisedBy4Bit ? $1.weightElements * arch.instances($1) : 0) }
            let tower = arch.modules.reduce(0) { $0 + ($1.isVision && $1.quantisedBy4Bit ? $1.weightElements * arch.instances($1) : 0) }
            bytes += (Double(blocks) * Double(checkpointing ? 3 : 2) + Double(tower) * Double(towerPasses)) * runtime.dequantBytesPerWeight
        }
        return bytes
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
