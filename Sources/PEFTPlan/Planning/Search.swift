import Foundation

/// One configuration the search tried and found to fit.
public struct Candidate: Sendable {
    public var method: Method
    public var gpu: GPUProfile
    public var scale: ScaleOptions
    public var batch: Int
    public var gradAccum: Int
    public var checkpointing: Bool
    /// Per-GPU device total, and host RAM for offload.
    public var deviceBytes: Int
    public var hostBytes: Int
    public var time: TimeEstimate
}

/// What the search covered and found.
public struct SearchResult: Sendable {
    public var request: PlanRequest
    /// Configurations evaluated (fitting or not) and how many fit.
    public var evaluated = 0
    public var fitting = 0
    public var cheapest: [Candidate] = []
    public var fastest: [Candidate] = []
    /// Per method: the fewest GPUs of any listed type that hold it, with that plan.
    public var fewestGPUs: [Candidate] = []
    public var globalBatch = 16
}

/// The space the search walks; every axis is stated in the output.
public struct SearchSpace: Sendable {
    public var gpuCounts = [1, 2, 4, 8, 16, 32, 64]
    public var shardings: [Sharding] = [.none, .zero1, .zero2, .zero3, .fsdp]
    public var offloads: [Offload] = [.none, .optimizer, .params]
    /// Micro-batches tried: powers of two up to this.
    public var maxMicroBatch = 64
    public var top = 10
    /// Sequences per optimizer step every candidate trains with (micro-batch × accumulation
    /// × GPUs, rounded up to whole micro-batches per GPU).
    public var globalBatch = 16

    public init() {}
}

/// Cheapest and fastest plans that fit, over methods × GPU types × GPU counts × sharding ×
/// offload × micro-batch × checkpointing (README, "The model": Search).
///
/// Every candidate processes the same global batch (``SearchSpace/globalBatch`` sequences
/// per optimizer step, at least one per GPU): a smaller micro-batch is made up by gradient
/// accumulation, so candidates differ in memory and speed, not in what they train.
public enum Search {
    public static func run(_ request: PlanRequest, space: SearchSpace = SearchSpace()) throws -> SearchResult {
        try Planner.validate(request)
        var result = SearchResult(request: request)
        let t0 = request.training
        var globalBatch = max(1, space.globalBatch)
        // GRPO: whole groups of generations per step (the global batch rounded up to them)
        if t0.trainer.kind == .grpo {
            let g = t0.trainer.numGenerations
            globalBatch = (globalBatch + g - 1) / g * g
        }
        result.globalBatch = globalBatch
        var all: [Candidate] = []
        for method in request.methods {
            if request.arch.failingMethods[method] != nil && request.methodsFromAll { continue }   // as `plan` skips it from `all`
            if request.methodsFromAll && PlanContext.methodRefusal(method, training: t0) != nil { continue }
            let account: ParameterAccount
            do {
                account = try ParameterAccounting.account(request.arch, method: method, options: request.methodOptions)
            } catch {
                if request.methodsFromAll { continue }   // as `plan` skips it from `all`
                throw error
            }
            for ckpt in method.spec.checkpointingChoices {
                var t = t0
                t.gradCheckpointing = ckpt
                t.gradAccum = 1
                let base = try PlanContext(arch: request.arch, account: account, methodOptions: request.methodOptions,
                                           training: t, runtime: request.runtime)
                for count in space.gpuCounts {
                    for sharding in space.shardings where count > 1 || sharding == .none || sharding == .zero2 || sharding == .zero3 {
                        for offload in space.offloads {
                            // One GPU: ZeRO only to offload (ZeRO-Offload). Offload needs ZeRO or
                            // FSDP; FSDP offloads everything or nothing; params need stage 3/FSDP.
                            if count == 1 && sharding != .none && offload == .none { continue }
                            if offload != .none && sharding == .none { continue }
                            if offload == .optimizer && sharding == .fsdp { continue }
                            if offload == .params && !sharding.shardsParameters { continue }
                            if offload != .none && !account.method.spec.trainsBase && account.trainableParams < 1_000_000_000 { continue }
                            let scale = ScaleOptions(gpus: count, sharding: sharding, offload: offload)
                            // what planning refuses at this scale (PlanContext.scaleRefusal)
                            if PlanContext.scaleRefusal(t, scale: scale) != nil { continue }
                            let ctx0 = base.scaled(scale)
                            var mb = 1
                            while mb <= space.maxMicroBatch {
                                // Global batch kept: micro-batches per GPU and step, rounded up.
                                let perGPU = max(1, (globalBatch + count - 1) / count)
                                if mb > perGPU && mb > 1 { break }
                                var tt = t
                                tt.batch = mb
                                tt.gradAccum = max(1, (perGPU + mb - 1) / mb)
                                if tt.optimizerInBackward && tt.gradAccum > 1 { mb *= 2; continue }
                                // what the trainer runs (KTO's two examples, GRPO's whole groups); with a
                                // fixed number of steps (--steps) every candidate trains the same batch
                                if !tt.trainer.allows(batch: mb, perStep: tt.gradAccum * count) { mb *= 2; continue }
                                if request.budget.steps != nil && mb * tt.gradAccum * count != globalBatch { mb *= 2; continue }
                                for gpu in request.gpus {
                                    result.evaluated += 1
                                    if (t.precision == .bf16 || t.precision == .mixedBF16 || t.loss == .cce) && !gpu.supportsBF16 { continue }
                                    let ctx = ctx0.withTraining(tt)
                                    let device = ctx.deviceTotal(batch: mb, seq: tt.seq)
                                    let room = Planner.trainingCapacity(ctx, gpu: gpu)
                                    guard room.vllmBlocker == nil, device <= room.bytes else { continue }
                                    result.fitting += 1
                                    let time = TimeModel.estimate(ctx, gpu: gpu, dataset: request.dataset, budget: request.budget)
                                    all.append(Candidate(method: method, gpu: gpu, scale: ctx.scale, batch: mb, gradAccum: tt.gradAccum,
                                                         checkpointing: method.spec.checkpointing(requested: ckpt), deviceBytes: device,
                                                         hostBytes: ctx.hostBytes, time: time))
                                }
                                mb *= 2
                            }
                        }
                    }
                }
            }
        }
        func order(_ a: Candidate, _ b: Candidate, cost: Bool) -> Bool {
            let ka = cost ? a.time.costUSD : a.time.hours, kb = cost ? b.time.costUSD : b.time.hours
            if abs(ka - kb) > 1e-9 * max(ka, kb) { return ka < kb }
            if a.scale.gpus != b.scale.gpus { return a.scale.gpus < b.scale.gpus }
            let sa = Sharding.allCases.firstIndex(of: a.scale.sharding)!, sb = Sharding.allCases.firstIndex(of: b.scale.sharding)!
            if sa != sb { return sa < sb }
            return a.deviceBytes < b.deviceBytes
        }
        /// The ranked list without near-duplicates: the same method, GPU type and count
        /// within 1% of the cost and time is one line (the simplest sharding).
        func distinct(_ ranked: [Candidate], top: Int) -> [Candidate] {
            var kept: [Candidate] = []
            for c in ranked {
                if kept.contains(where: { k in k.method == c.method && k.gpu.name == c.gpu.name && k.scale.gpus == c.scale.gpus
                    && abs(k.time.costUSD - c.time.costUSD) <= 0.01 * k.time.costUSD && abs(k.time.hours - c.time.hours) <= 0.01 * k.time.hours }) { continue }
                kept.append(c)
                if kept.count == top { break }
            }
            return kept
        }
        result.cheapest = distinct(all.sorted { order($0, $1, cost: true) }, top: space.top)
        result.fastest = distinct(all.sorted { order($0, $1, cost: false) }, top: space.top)
        for method in request.methods {
            let mine = all.filter { $0.method == method }
            guard let fewest = mine.map(\.scale.gpus).min() else { continue }
            if let best = mine.filter({ $0.scale.gpus == fewest }).min(by: { order($0, $1, cost: true) }) {
                result.fewestGPUs.append(best)
            }
        }
        return result
    }
}

/// One change that makes a plan that does not fit, fit.
public struct Advice: Sendable, Equatable {
    public var change: PlanText
    /// Device bytes saved per GPU (positive = smaller).
    public var savedBytes: Int
    public var deviceBytes: Int
    /// GPU-hours with the change ÷ without it (the time model's estimate on the GPU the advice
    /// is for, hours × GPUs): what the change costs in GPU time, and so in money (below 1 where
    /// it saves).
    public var gpuHoursFactor: Double = 1
}

public enum Advisor {
    /// The changes that bring `plan` under `gpu`'s capacity: checkpointing, a smaller
    /// micro-batch with accumulation, an 8-bit optimizer, QLoRA instead of LoRA, LoRA
    /// instead of full fine-tuning, offload, and the fewest GPUs with parameter sharding
    /// (with checkpointing too where sharding alone is not enough).
    public static func advise(_ request: PlanRequest, method: Method, gpu: GPUProfile) -> [Advice] {
        let t = request.training
        guard let account = try? ParameterAccounting.account(request.arch, method: method, options: request.methodOptions),
              let ctx = try? PlanContext(arch: request.arch, account: account, methodOptions: request.methodOptions,
                                         training: t, runtime: request.runtime, scale: request.scale) else { return [] }
        let cap = Planner.trainingCapacity(ctx, gpu: gpu).bytes
        let now = ctx.deviceTotal(batch: t.batch, seq: t.seq)
        guard now > cap else { return [] }
        var out: [Advice] = []
        let hoursNow = TimeModel.estimate(ctx, gpu: gpu, dataset: request.dataset, budget: request.budget).gpuHours
        /// The change's context, when it fits: the device bytes at the plan's shape and its time.
        func consider(_ change: PlanText, _ changed: PlanContext?) {
            guard let changed else { return }
            let device = changed.deviceTotal(batch: changed.training.batch, seq: changed.training.seq)
            guard device <= cap else { return }
            let hours = TimeModel.estimate(changed, gpu: gpu, dataset: request.dataset, budget: request.budget).gpuHours
            out.append(Advice(change: change, savedBytes: now - device, deviceBytes: device,
                              gpuHoursFactor: hoursNow > 0 && hours.isFinite ? hours / hoursNow : 1))
        }
        func context(_ tt: TrainingOptions, _ m: Method = method, _ scale: ScaleOptions? = nil) -> PlanContext? {
            guard let acc = try? ParameterAccounting.account(request.arch, method: m, options: request.methodOptions) else { return nil }
            return try? PlanContext(arch: request.arch, account: acc, methodOptions: request.methodOptions, training: tt,
                                    runtime: request.runtime, scale: scale ?? request.scale)
        }
        func fits(_ changed: PlanContext?) -> Bool {
            guard let changed else { return false }
            return changed.deviceTotal(batch: changed.training.batch, seq: changed.training.seq) <= cap
        }
        // A loss that keeps no full logits (docs/loss.md), each where the GPU can run it.
        var fitsAlone: Set<LossKind> = []
        if t.loss == .standard {
            for kind in [LossKind.chunked, .liger, .cce] where kind != .cce || gpu.supportsBF16 {
                var tt = t; tt.loss = kind
                let changed = context(tt)
                if fits(changed) { fitsAlone.insert(kind) }
                consider("use \(kind.name), no full logits (\(setting: .loss, kind.rawValue))", changed)
            }
        }
        if !ctx.checkpointing && !method.spec.refusesCheckpointing {
            var ckpt = t; ckpt.gradCheckpointing = true
            let checkpointed = context(ckpt)
            consider("enable gradient checkpointing (\(field: .gradCheckpointing))", checkpointed)
            // A fused loss with checkpointing, where neither fits alone: the usual pairing.
            if t.loss == .standard && !fits(checkpointed) {
                for kind in [LossKind.chunked, .liger] where !fitsAlone.contains(kind) {
                    var tt = ckpt; tt.loss = kind
                    consider("enable gradient checkpointing and use \(kind.name) (\(field: .gradCheckpointing) \(setting: .loss, kind.rawValue))", context(tt))
                }
            }
        }
        // Padding-free rows are one sequence to SDPA and eager attention (a mask over the row).
        if t.paddingFree && t.attention != .flash {
            var tt = t; tt.attention = .flash
            consider("attend within each packed sequence with flash_attention_2 (\(setting: .attention, "flash"))", context(tt))
        }
        // Kernel stacks that keep less for backward (docs/kernels.md), where the family has them.
        if t.kernels == .none && request.arch.family.spec.plansLiger {
            var tt = t; tt.kernels = .liger
            if tt.loss == .standard {
                // TRL's SFTTrainer applies them beside its chunked head
                tt.loss = .chunked
                consider("use Liger's layer kernels with TRL's chunked head (\(setting: .kernels, "liger") \(setting: .loss, "chunked"))", context(tt))
            } else {
                consider("use Liger's layer kernels (\(setting: .kernels, "liger"))", context(tt))
            }
        }
        if t.kernels != .unsloth, request.arch.family.spec.unslothKernels, method.spec.wrapper == .lowRank,
           !method.spec.trainsBase, request.methodOptions.loraDropout == 0, !request.methodOptions.dora, t.precision != .fp32 {
            var tt = t; tt.kernels = .unsloth; tt.loss = .unsloth
            tt.gradCheckpointing = true; tt.checkpointStyle = .offloaded
            consider("train under Unsloth: its kernels, fused loss and offloaded checkpointing (\(setting: .kernels, "unsloth"))", context(tt))
        }
        if t.kernels == .unsloth && !(ctx.checkpointing && t.checkpointStyle == .offloaded) {
            var tt = t; tt.gradCheckpointing = true; tt.checkpointStyle = .offloaded
            consider("Unsloth's offloaded checkpointing (\(setting: .checkpointing, "offloaded"))", context(tt))
        }
        if !t.optimizerInBackward && t.gradAccum == 1 && request.scale.gpus <= 1 && request.scale.sharding == .none && account.trainableParams > 0 {
            var tt = t; tt.optimizerInBackward = true
            consider("step the optimizer in backward, one gradient alive at a time (\(field: .optimizerInBackward))", context(tt))
        }
        if !t.activationOffloading {
            var tt = t; tt.activationOffloading = true
            consider("offload the blocks' saved activations to host memory (\(field: .activationOffloading))", context(tt))
        }
        if t.batch > 1 {
            var b = t.batch / 2
            while b >= 1 {
                var tt = t; tt.batch = b; tt.gradAccum = t.gradAccum * ((t.batch + b - 1) / b)
                let changed = t.trainer.allows(batch: b, perStep: tt.gradAccum * request.scale.gpus) ? context(tt) : nil
                if fits(changed) {
                    consider("micro-batch \(t.batch) → \(b) with \(setting: .gradAccum, "\(tt.gradAccum)") (same global batch)", changed)
                    break
                }
                b /= 2
            }
        }
        if t.optimizer == .adamw && account.trainableParams > 0 {
            var tt = t; tt.optimizer = .adamw8bit
            consider("8-bit AdamW (\(setting: .optimizer, "adamw-8bit"))", context(tt))
        }
        if let leaner = method.spec.leaner {
            consider(leaner.change, context(t, leaner.method))
        }
        // More GPUs with parameter sharding; with checkpointing too if that alone is not enough.
        var ckptOptions = [t.gradCheckpointing]
        if !t.gradCheckpointing && !method.spec.refusesCheckpointing { ckptOptions.append(true) }
        sharding: for ck in ckptOptions {
            for n in [2, 4, 8, 16, 32, 64] where n > request.scale.gpus {
                let scale = ScaleOptions(gpus: n, sharding: method.spec.base == .frozen ? .zero3 : .fsdp, offload: request.scale.offload)
                var tt = t; tt.gradCheckpointing = ck
                let changed = context(tt, method, scale)
                if fits(changed) {
                    let also: PlanText = ck && !t.gradCheckpointing ? " and \(field: .gradCheckpointing)" : ""
                    consider("\(n) GPUs with \(setting: .sharding, scale.sharding.rawValue)\(also)", changed)
                    break sharding
                }
            }
        }
        if request.scale.offload == .none && account.trainableParams > 0 {
            let sharding: Sharding = request.scale.sharding == .none || request.scale.sharding == .fsdp ? .zero2 : request.scale.sharding
            let scale = ScaleOptions(gpus: request.scale.gpus, sharding: sharding, offload: .optimizer)
            let flags: PlanText = sharding == request.scale.sharding ? "\(setting: .offload, "optimizer")"
                : "\(setting: .sharding, sharding.rawValue) \(setting: .offload, "optimizer")"
            consider("optimizer states in host RAM (ZeRO-Offload: \(flags))", context(t, method, scale))
        }
        // the cheapest in GPU time first
        return out.enumerated().sorted { a, b in
            abs(a.element.gpuHoursFactor - b.element.gpuHoursFactor) > 1e-9 ? a.element.gpuHoursFactor < b.element.gpuHoursFactor : a.offset < b.offset
        }.map(\.element)
    }
}

extension PlanContext {
    /// The same plan with another micro-batch and accumulation (nothing else of the
    /// symbolic forward depends on them).
    func withTraining(_ t: TrainingOptions) -> PlanContext {
        var copy = self
        copy.training.batch = t.batch
        copy.training.gradAccum = t.gradAccum
        return copy
    }
}
