import Foundation

/// Everything a planning command asks.
public struct PlanRequest: Sendable {
    public var arch: Architecture
    public var methods: [Method]
    /// True when the methods came from `all`: a method PEFT would refuse for this model is
    /// then skipped with a note instead of failing the whole plan.
    public var methodsFromAll: Bool
    public var methodOptions: MethodOptions
    public var training: TrainingOptions
    public var gpus: [GPUProfile]
    public var runtime: RuntimeProfile
    /// GPUs per run, sharding and offload (`--gpus`, `--sharding`, `--offload`).
    public var scale = ScaleOptions()
    /// What is trained on, and what it costs (`--tokens`, `--price`, `--mfu`, …).
    public var dataset = Dataset()
    public var budget = BudgetOptions()
    /// Defaults the caller chose for the user that change the numbers (a shorter default
    /// sequence), stated first in the notes.
    public var defaults: [PlanText] = []

    public init(arch: Architecture, methods: [Method], methodsFromAll: Bool = false, methodOptions: MethodOptions = MethodOptions(),
                training: TrainingOptions = TrainingOptions(), gpus: [GPUProfile], runtime: RuntimeProfile = .hfCUDA) {
        self.arch = arch
        self.methods = methods
        self.methodsFromAll = methodsFromAll
        self.methodOptions = methodOptions
        self.training = training
        self.gpus = gpus
        self.runtime = runtime
    }
}

/// One method on one GPU.
public struct GPUVerdict: Sendable {
    public var gpu: GPUProfile
    public var fits: Bool
    /// Capacity left (fits) or missing (does not fit); both non-negative.
    public var headroomBytes: Int
    public var shortfallBytes: Int
    /// Largest micro-batch that fits at the requested sequence length (0: not even 1).
    public var maxMicroBatch: Int
    /// Longest sequence that fits at the requested micro-batch (0: not even 1 token),
    /// searched up to ``Planner/seqSearchLimit(_:)``.
    public var maxSeq: Int
    /// Why the plan cannot run on this GPU whatever its memory (a precision it lacks).
    public var blocker: PlanText?
    /// GRPO with vLLM: the engine's share of each of its cards (colocated: of this one).
    public var vllm: VLLMShare?
    /// Time and cost of the run on this GPU type (× the request's GPU count).
    public var time = TimeEstimate()
}

public struct MethodPlan: Sendable {
    public var method: Method
    public var account: ParameterAccount
    public var memory: MemoryBreakdown
    public var checkpointing: Bool
    public var verdicts: [GPUVerdict]
    /// Host RAM taken by offload over the whole run.
    public var hostBytes = 0
    /// When it fits none of the GPUs: single changes that make it fit the largest one.
    public var advice: (gpu: String, changes: [Advice])?
    /// Matmul FLOPs of one micro-batch step: forward, backward, checkpointing's recompute.
    public var flops: (forward: Double, backward: Double, recompute: Double) = (0, 0, 0)
}

public struct PlanResult: Sendable {
    public var request: PlanRequest
    public var plans: [MethodPlan]
    /// Methods left out of `all`, with PEFT's reason.
    public var skipped: [(Method, PlanText)]
    /// Human-readable assumptions, in order.
    public var notes: [PlanText]

    /// The GPUs that cannot run the plan whatever their memory (a precision they lack).
    public var blockedGPUs: Set<String> { Set(plans.flatMap { $0.verdicts.filter { $0.blocker != nil }.map(\.gpu.name) }) }
}

public enum Planner {
    /// Upper bound of the micro-batch search.
    public static let batchSearchLimit = 1 << 16

    /// Of `methods`, the one whose virtual tokens take the most learned positions
    /// (``Method/positionsTaken(_:)``), how many, and what to call them; nil when none take any.
    public static func positionTaker(_ methods: [Method], _ o: MethodOptions) -> (method: Method, tokens: Int, words: String)? {
        guard let m = methods.max(by: { $0.positionsTaken(o) < $1.positionsTaken(o) }), m.positionsTaken(o) > 0 else { return nil }
        let n = m.positionsTaken(o)
        let kinds = Set(methods.filter { $0.positionsTaken(o) == n }.map(\.virtualTokensWords))
        return (m, n, kinds.count > 1 ? "prompt- and prefix-tuning tokens" : m.virtualTokensWords)
    }

    /// The sequence length a plan uses when none is given: 2048, or fewer where the model
    /// has fewer learned positions — less the positions the planned methods' virtual tokens
    /// take (prompt tuning, P-tuning, prefix tuning), so that the default always runs. The
    /// room is left only while the sequence keeps at least half the positions: past that the
    /// virtual tokens, not the default, are what does not fit (the method is then skipped
    /// from `all`, or refused by its tokens' option when asked for).
    public static func defaultSeq(_ arch: Architecture, methods: [Method] = [], options: MethodOptions = MethodOptions()) -> Int {
        guard arch.hasLearnedPositions else { return 2048 }
        let full = min(2048, arch.maxPositions)
        let left = arch.maxPositions - (positionTaker(methods, options)?.tokens ?? 0)
        return left >= arch.maxPositions / 2 ? min(full, left) : full
    }

    /// What training does with a checkpoint published quantised, for the notes; nil for a
    /// 16-bit one. Transformers 5.25 trains such weights dequantised to bf16: `Mxfp4Config`
    /// and `FineGrainedFP8Config` take `dequantize=True` (utils/quantization_config.py), which
    /// is what the plan assumes; QLoRA then quantises the bf16 weights to 4 bits as usual.
    public static func shippedQuantisationNote(_ arch: Architecture) -> PlanText? {
        guard let method = arch.shippedQuantisation else { return nil }
        switch method {
        case "mxfp4":
            return "the checkpoint ships its experts in MXFP4: Transformers dequantises them to bf16 to train (Mxfp4Config(dequantize=True)), which is what is planned"
        case "fp8":
            return "the checkpoint ships FP8 weights: training loads them dequantised to bf16 (FineGrainedFP8Config(dequantize=True)), which is what is planned"
        case "fp8-fp4-experts":
            return "the checkpoint ships FP8 weights and FP4-packed experts: training loads them dequantised to bf16 (FineGrainedFP8Config(dequantize=True), expert_dtype fp4), which is what is planned"
        default:
            return "the checkpoint ships quantised (quant_method \(method)): planned as its weights dequantised to the compute dtype"
        }
    }

    /// QLoRA on a mixture of experts: bitsandbytes quantises nn.Linear modules only, so the
    /// fused 3-D experts of Transformers v5 stay unquantised, and prepare_model_for_kbit_training
    /// upcasts them to fp32 (checked against bitsandbytes 0.50.2 on the CPU); nil otherwise.
    public static func expertsUnderQLoRANote(_ arch: Architecture, methods: [Method], options: MethodOptions = MethodOptions(),
                                             precision: Precision = .bf16) -> PlanText? {
        guard arch.numExperts > 0, methods.contains(where: { $0.spec.quantisesBase }) else { return nil }
        if options.qloraRest == .model {
            return "QLoRA: bitsandbytes quantises Linear layers only; this model's fused experts stay unquantised, in the model's 16-bit dtype (\(setting: .qloraRest, "model")), as planned"
        }
        let upcast: PlanText = "QLoRA: bitsandbytes quantises Linear layers only; this model's fused experts stay unquantised and prepare_model_for_kbit_training upcasts them to fp32, as planned"
        guard [.bf16, .fp16].contains(precision) else { return upcast }
        return "\(upcast) (a stack that skips that call, TRL 1.16's SFTTrainer among them, keeps them 16-bit: \(setting: .qloraRest, "model"))"
    }

    /// Layers whose saved tensors follow fused CUDA kernels not yet measured (Gated DeltaNet,
    /// Mamba-2): say so, and what runs without those kernels.
    public static func fusedKernelNote(_ arch: Architecture, methods: [Method]) -> PlanText? {
        guard case let .gated(t) = arch.block else { return nil }
        if t.stateSpace != nil {
            var text = "Mamba-2 layers: activations as mamba-ssm's fused kernels keep them in training on CUDA (in_proj's output, the scan output and the norm's scale; the rest recomputed), not yet measured on a GPU; without mamba-ssm installed Transformers runs a PyTorch scan that keeps far more"
            if arch.family.spec.loraRefusedModules == nil, methods.contains(where: { $0.spec.wrapper == .lowRank }) {
                text = "\(text); Transformers hands out_proj's weight to that kernel as a tensor, so a LoRA adapter on out_proj is skipped there (PEFT refuses it for nemotron_h and falcon_h1, not for \(arch.family.rawValue))"
            }
            if methods.contains(where: { $0.spec.quantisesBase }) {
                text = "\(text); under QLoRA the fused kernel is handed out_proj's 4-bit weight as a tensor, a path not tested here"
            }
            return PlanText(stringLiteral: text)
        }
        if t.linearAttention != nil {
            return "Gated DeltaNet layers: activations as flash-linear-attention's CUDA kernels keep them (their inputs; the rest recomputed), not yet measured on a GPU; without those kernels Transformers runs a PyTorch fallback that keeps far more"
        }
        return nil
    }

    /// Llama 4 under Transformers: every token through every expert (``GatedBlock/denseExpertDispatch``).
    public static func denseExpertDispatchNote(_ arch: Architecture) -> PlanText? {
        guard case let .gated(t) = arch.block, t.denseExpertDispatch, arch.numExperts > 1 else { return nil }
        return "MoE: Transformers runs this model's experts densely — every token through all \(arch.numExperts) experts, scaled by the router's score (Llama4TextMoe) — so activations and time follow \(arch.numExperts) experts, not the \(arch.expertsPerToken) a token is routed to"
    }

    /// Why a default sequence is shorter than 2048, for the notes; nil when it is not.
    public static func defaultSeqNote(_ arch: Architecture, methods: [Method], options: MethodOptions) -> PlanText? {
        let s = defaultSeq(arch, methods: methods, options: options)
        guard s < 2048 else { return nil }
        var why = "\(arch.name)'s \(arch.maxPositions) learned positions"
        if let t = positionTaker(methods, options), s < min(2048, arch.maxPositions) { why += " less the \(t.tokens) \(t.words)" }
        return "\(field: .seq) not given: \(s) tokens (\(why); \(field: .seq) sets it)"
    }

    /// Upper bound of the sequence search: the model's position limit where it has one
    /// (learned positions cannot go past it; rotary ones need RoPE scaling, so the search
    /// goes past it only up to a longer sequence the user asked for), else 1,048,576.
    public static func seqSearchLimit(_ arch: Architecture, requested: Int = 0) -> Int {
        guard arch.maxPositions > 0 else { return 1 << 20 }
        let limit = min(arch.maxPositions, 1 << 20)
        return arch.hasLearnedPositions ? limit : max(limit, requested)
    }

    public static func plan(_ request: PlanRequest) throws -> PlanResult {
        try validate(request)
        var plans: [MethodPlan] = []
        var skipped: [(Method, PlanText)] = []
        for method in request.methods {
            let account: ParameterAccount
            do {
                account = try ParameterAccounting.account(request.arch, method: method, options: request.methodOptions)
            } catch let e as PlanError {
                if request.methodsFromAll, case .invalidTargets = e { skipped.append((method, e.text)); continue }
                throw e
            }
            let taken = method.positionsTaken(request.methodOptions)
            if taken > 0 && request.arch.hasLearnedPositions && request.training.seq + taken > request.arch.maxPositions {
                skipped.append((method, "\(request.training.seq) tokens plus \(taken) \(method.virtualTokensWords) exceed the model's \(request.arch.maxPositions) learned positions"))
                continue
            }
            if let why = request.arch.failingMethods[method], request.methodsFromAll {
                skipped.append((method, "\(method.title) fails in training's forward on this model: \(why)"))
                continue
            }
            if request.methodsFromAll, let why = PlanContext.methodRefusal(method, training: request.training) {
                skipped.append((method, why))
                continue
            }
            if method.spec.refusesCheckpointing && request.training.gradCheckpointing && request.methodsFromAll {
                skipped.append((method, "\(method.title) cannot use gradient checkpointing (PEFT refuses it)"))
                continue
            }
            let ctx = try PlanContext(arch: request.arch, account: account, methodOptions: request.methodOptions,
                                      training: request.training, runtime: request.runtime, scale: request.scale)
            guard ctx.representable(batch: request.training.batch, seq: request.training.seq) else {
                throw PlanError.overflow("the memory of \(method.rawValue) at micro-batch \(request.training.batch) × \(request.training.seq) tokens (over an exbibyte)")
            }
            let memory = ctx.memory(batch: request.training.batch, seq: request.training.seq)
            let verdicts = request.gpus.map { gpu in
                var v = verdict(ctx, memory: memory, gpu: gpu)
                v.time = TimeModel.estimate(ctx, gpu: gpu, dataset: request.dataset, budget: request.budget)
                return v
            }
            if request.training.trainer.kind == .grpo, request.training.trainer.generation.usesVLLM,
               let why = verdicts.first?.blocker, verdicts.allSatisfy({ $0.blocker != nil }) {
                // vLLM cannot run beside this method on any card named: skipped under `all`
                if request.methodsFromAll { skipped.append((method, why)); continue }
                throw PlanError.conflict(why)
            }
            var plan = MethodPlan(method: method, account: account, memory: memory, checkpointing: ctx.checkpointing, verdicts: verdicts)
            plan.flops = ctx.flops(batch: request.training.batch, seq: request.training.seq)
            // offloaded states (all GPUs' shards) and each GPU's offloaded activations
            plan.hostBytes = ctx.hostBytes + memory.offloadedActivations * max(1, request.scale.gpus)
            if !verdicts.contains(where: \.fits), let big = verdicts.filter({ $0.blocker == nil }).max(by: { $0.gpu.usableMemoryBytes < $1.gpu.usableMemoryBytes }) {
                plan.advice = (big.gpu.name, Advisor.advise(request, method: method, gpu: big.gpu))
            }
            plans.append(plan)
        }
        // the assumptions speak of the methods planned, not of those left out
        var planned = request
        if !skipped.isEmpty { planned.methods = plans.map(\.method) }
        return PlanResult(request: request, plans: plans, skipped: skipped, notes: notes(planned))
    }

    /// The bytes training has on `gpu` (its usable memory, less a colocated vLLM engine's
    /// claim), why vLLM cannot run there (nil when it can or is not used), and its share.
    public static func trainingCapacity(_ ctx: PlanContext, gpu: GPUProfile) -> (bytes: Int, vllmBlocker: PlanText?, share: VLLMShare?) {
        var cap = gpu.usableMemoryBytes
        let share = VLLMShare.of(ctx, gpu: gpu)
        var vllmBlocker: PlanText?
        if let share {
            let t = ctx.training.trainer
            let pct = Units.plain((t.effectiveVLLMMemory * 100).rounded())
            if t.generation == .vllmColocate {
                // the engine claims its share when the trainer starts; training runs in the rest
                cap = max(0, cap - share.claimed)
                let weights = ctx.frozenWeights + ctx.trainableWeights
                if weights + share.weights > gpu.usableMemoryBytes {
                    vllmBlocker = "\(gpu.name) cannot hold two copies of the weights (the trainer's \(Units.gib(weights)) and vLLM's \(Units.gib(share.weights))): plan \(setting: .generation, "vllm-server") on GPUs of its own, or \(setting: .generation, "transformers")"
                } else if share.sequences < 1 {
                    vllmBlocker = "vLLM's \(pct)% of \(gpu.name) (\(Units.gib(share.claimed))) cannot hold its copy of the weights (\(Units.gib(share.weights))) and one row's KV cache: raise \(field: .vllmMemory), or plan \(setting: .generation, "vllm-server")"
                }
            } else if share.sequences < 1 {
                vllmBlocker = "the vLLM server's \(pct)% of \(t.vllmGPUs) × \(gpu.name) (\(Units.gib(share.claimed)) each) cannot hold its weights (\(Units.gib(share.weights)) each) and one row's KV cache: give it more \(field: .vllmGpus)"
            }
        }
        return (cap, vllmBlocker, share)
    }

    /// The verdict for one GPU: fit on `device_total`, and the searched limits.
    public static func verdict(_ ctx: PlanContext, memory: MemoryBreakdown, gpu: GPUProfile) -> GPUVerdict {
        let (cap, vllmBlocker, share) = trainingCapacity(ctx, gpu: gpu)
        let p = ctx.training.precision
        var blocker: PlanText? = (p == .bf16 || p == .mixedBF16) && !gpu.supportsBF16
            ? "\(gpu.name) has no bf16 support: plan with \(setting: .precision, "fp16") or mixed-fp16" : nil
        if blocker == nil, ctx.training.loss == .cce, !gpu.supportsBF16 {
            // cut_cross_entropy/cce.py refuses to run unless torch.cuda.is_bf16_supported()
            blocker = "Cut Cross-Entropy needs an Ampere or newer GPU (bf16 support), which \(gpu.name) lacks: plan with \(setting: .loss, "chunked") or liger"
        }
        if blocker == nil { blocker = vllmBlocker }
        let fits = memory.deviceTotal <= cap && blocker == nil
        let b = ctx.training.batch, s = ctx.training.seq
        let maxBatch = largest(upTo: batchSearchLimit) { ctx.deviceTotal(batch: $0, seq: s) <= cap }
        let maxSeq = largest(upTo: seqSearchLimit(ctx.arch, requested: s)) { ctx.deviceTotal(batch: b, seq: $0) <= cap }
        return GPUVerdict(gpu: gpu, fits: fits, headroomBytes: max(0, cap - memory.deviceTotal),
                          shortfallBytes: max(0, memory.deviceTotal - cap), maxMicroBatch: maxBatch, maxSeq: maxSeq,
                          blocker: blocker, vllm: share)
    }

    /// The largest n in 1...limit with `ok(n)`, for a monotone predicate (memory never
    /// shrinks as batch or sequence grow); 0 when `ok(1)` is false.
    static func largest(upTo limit: Int, _ ok: (Int) -> Bool) -> Int {
        guard ok(1) else { return 0 }
        var lo = 1, hi = 2
        while hi <= limit && ok(hi) { lo = hi; hi *= 2 }
        hi = min(hi, limit + 1)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if ok(mid) { lo = mid } else { hi = mid }
        }
        return lo
    }

    static func validate(_ r: PlanRequest) throws {
        let t = r.training
        let o = r.methodOptions
        func check(_ field: PlanField, _ v: Int, _ range: ClosedRange<Int>) throws {
            guard range.contains(v) else {
                throw PlanError.invalidSetting(field, value: "\(v)", accepted: "an integer from \(range.lowerBound) to \(range.upperBound)")
            }
        }
        try check(.batch, t.batch, 1...batchSearchLimit)
        if t.trainer.kind != .sft, let c = t.trainer.completion, r.arch.maxPositions > 0, c >= r.arch.maxPositions {
            throw PlanError.invalidSetting(.maxCompletion, value: "\(c)", accepted: "fewer than \(r.arch.name)'s \(r.arch.maxPositions) positions (max_position_embeddings), which a row of prompt and completion cannot exceed")
        }
        try check(.seq, t.seq, 1...(1 << 22))
        try check(.gradAccum, t.gradAccum, 1...65536)
        try check(.loraR, o.loraR, 1...65536)
        try check(.loraAlpha, o.loraAlpha, 1...1_000_000)
        try check(.adapterReduction, o.adapterReduction, 1...65536)
        try check(.prefixTokens, o.prefixTokens, 1...65536)
        try check(.promptTokens, o.promptTokens, 1...65536)
        try check(.prefixProjection, o.prefixProjection, 0...(1 << 20))
        try check(.gpus, r.scale.gpus, 1...65536)
        let tr = t.trainer
        if tr.kind == .grpo {
            // GRPOConfig.__post_init__ (TRL 1.16): at least 2 generations, and the generation
            // batch (per_device_train_batch_size × GPUs × steps_per_generation) a multiple of them
            try check(.numGenerations, tr.numGenerations, 2...65536)
            let generationBatch = t.batch * r.scale.gpus * t.gradAccum
            if !tr.allows(batch: t.batch, perStep: r.scale.gpus * t.gradAccum) {
                let fit = tr.batchQuantum(perStep: r.scale.gpus * t.gradAccum)
                throw PlanError.invalidSetting(.batch, value: "\(t.batch)", accepted: "a multiple of \(fit): GRPO's generation batch (\(field: .batch) × \(field: .gpus) × \(field: .gradAccum) = \(generationBatch) completions) must hold whole groups of \(tr.numGenerations) generations")
            }
            try check(.vllmGpus, tr.vllmGPUs, 1...64)
        }
        if tr.kind == .kto && !tr.allows(batch: t.batch, perStep: r.scale.gpus * t.gradAccum) {
            // KTOTrainer (TRL 1.16 kto_trainer.py L844–847): its KL term mismatches completions
            // within the micro-batch, and refuses a per-device batch of 1
            throw PlanError.invalidSetting(.batch, value: "\(t.batch)", accepted: "2 or more under KTO, whose KL estimate pairs each prompt with another example's completion in the micro-batch (TRL refuses 1)")
        }
        if let c = tr.completion { try check(.maxCompletion, c, 1...(1 << 20)) }
        if let m = tr.vllmMemory, !(m > 0 && m <= 0.95) {
            throw PlanError.invalidSetting(.vllmMemory, value: Units.plain(m), accepted: "a fraction of the card above 0 and at most 0.95 (vLLM's gpu_memory_utilization)")
        }
        if let b = tr.beta, !(b.isFinite && b >= 0 && b <= 1000) {
            throw PlanError.invalidSetting(.beta, value: Units.plain(b), accepted: "a number from 0 to 1000")
        }
        if tr.kind != .sft, let c = tr.completion, c + (tr.kind == .grpo ? 1 : 0) > t.seq {
            throw PlanError.invalidSetting(.maxCompletion, value: "\(c)", accepted: "at most \(t.seq - (tr.kind == .grpo ? 1 : 0)) tokens: the row (\(field: .seq) \(t.seq)) holds the prompt and the completion")
        }
        if tr.kind != .sft, t.seq > r.arch.maxPositions {
            throw PlanError.invalidSetting(.seq, value: "\(t.seq)", accepted: "at most \(r.arch.name)'s \(r.arch.maxPositions) positions: a row of prompt and completion cannot be longer than the model allows")
        }
        if r.scale.offload == .params && !r.scale.sharding.shardsParameters {
            throw PlanError.conflict("\(setting: .offload, "params") needs \(setting: .sharding, "zero3") or fsdp (ZeRO-1/2 and plain data parallelism keep every weight on each GPU)")
        }
        if r.scale.offload != .none && r.scale.sharding == .none {
            throw PlanError.conflict("\(field: .offload) needs a ZeRO stage or FSDP (\(setting: .sharding, "zero1|zero2|zero3|fsdp"); on one GPU, ZeRO-Offload is \(setting: .sharding, "zero2") \(setting: .offload, "optimizer"))")
        }
        if r.scale.offload == .optimizer && r.scale.sharding == .fsdp {
            throw PlanError.conflict("FSDP offloads parameters, gradients and optimizer states together: use \(setting: .offload, "params"), or a ZeRO stage for \(setting: .offload, "optimizer")")
        }
        let d = r.dataset
        func positive(_ field: PlanField, _ v: Double?, max: Double) throws {
            if let v, !(v > 0 && v <= max) {
                throw PlanError.invalidSetting(field, value: Units.plain(v), accepted: "a number above 0 and at most \(max.formatted(.number.grouping(.never)))")
            }
        }
        try positive(.tokens, d.tokens, max: 1e15)
        if !(d.epochs >= 0.001 && d.epochs <= 10_000) {
            throw PlanError.invalidSetting(.epochs, value: Units.plain(d.epochs), accepted: "a number from 0.001 to 10000")
        }
        if let e = d.examples { try check(.examples, e, 1...1_000_000_000_000) }
        if let a = d.avgTokens { try check(.avgTokens, a, 1...(1 << 22)) }
        try positive(.price, r.budget.pricePerGPUHour, max: 10_000)
        if let m = r.budget.mfu, !(m >= 0.001 && m <= 1) {
            throw PlanError.invalidSetting(.mfu, value: Units.plain(m), accepted: "a fraction of the peak from 0.001 to 1 (0.44 is what Transformers reached on an H100)")
        }
        if !(r.budget.setupMinutes >= 0 && r.budget.setupMinutes <= 100_000) {
            throw PlanError.invalidSetting(.setupMinutes, value: Units.plain(r.budget.setupMinutes), accepted: "a number from 0 to 100000")
        }
        guard o.loraDropout >= 0 && o.loraDropout < 1 else {
            throw PlanError.invalidSetting(.loraDropout, value: "\(o.loraDropout)", accepted: "a probability in [0, 1)")
        }
        if let refusing = r.methods.first(where: \.spec.refusesCheckpointing), t.gradCheckpointing && !r.methodsFromAll {
            throw PlanError.refusesCheckpointing(refusing)
        }
        if r.arch.hasLearnedPositions {
            // the methods asked for by name (from `all`, one that cannot fit is skipped instead)
            let taker = r.methodsFromAll ? nil : positionTaker(r.methods, o)
            let taken = taker?.tokens ?? 0
            if let tk = taker, taken >= r.arch.maxPositions {
                throw PlanError.invalidSetting(tk.method.virtualTokensField, value: "\(taken)", accepted:
                    "fewer than \(r.arch.name)'s \(r.arch.maxPositions) learned positions, which the virtual tokens share with the sequence")
            }
            if t.seq + taken > r.arch.maxPositions {
                throw PlanError.invalidSetting(.seq, value: "\(t.seq)", accepted:
                    "\(r.arch.name) has \(r.arch.maxPositions) learned positions, so a sequence\(taker.map { " with its \($0.tokens) \($0.words)" } ?? "") cannot exceed them")
            }
        }
    }

    /// The assumptions that shaped the numbers, stated for people.
    static func notes(_ r: PlanRequest) -> [PlanText] {
        let t = r.training, o = r.methodOptions
        var n: [PlanText] = []
        n.append("runtime \(r.runtime.name): \(r.runtime.description)")
        n.append(contentsOf: r.defaults)
        if !r.arch.hasLearnedPositions && r.arch.maxPositions > 0 && t.seq > r.arch.maxPositions {
            n.append("\(setting: .seq, "\(t.seq)") is beyond the model's max_position_embeddings (\(r.arch.maxPositions)): training there needs RoPE scaling")
        }
        n.append("memory per GPU for one micro-batch of \(t.batch) × \(t.seq) tokens; fit verdicts compare device_total (reserved + outside the allocator) with the card's usable memory")
        let zeroKeepsFP32 = (r.scale.sharding.zeroStage ?? 0) > 0 && (t.precision == .bf16 || t.precision == .fp16)
        n.append("precision \(t.precision.rawValue): \(zeroKeepsFP32 ? "16-bit weights and gradients; fp32 master weights and optimizer states (DeepSpeed ZeRO keeps them)" : precisionNote(t.precision)); optimizer \(t.optimizer.rawValue)")
        if !r.arch.supportsSDPA && t.attention == .sdpa {
            n.append("\(r.arch.family.rawValue) has no sdpa in Transformers v5: eager attention (s² scores kept) is used")
        }
        n.append("attention \(t.attention.rawValue)\(t.attention == .sdpa && r.arch.supportsSDPA ? " (→ \(r.runtime.sdpaKernel.rawValue) kernel)" : "")")
        switch t.loss {
        case .standard:
            n.append("loss \(t.loss.rawValue): \(t.loss.title); TRL 1.16's SFTTrainer computes it with its chunked LM head instead (\(setting: .loss, "chunked"))")
        case .chunked, .liger, .cce:
            n.append("loss \(t.loss.rawValue): \(t.loss.title)")
        case .unsloth:
            n.append("loss \(t.loss.rawValue): \(t.loss.title); its chunks follow min(half the free memory, 4 GiB) when training starts, planned at the 4 GiB cap")
        }
        switch t.kernels {
        case .none: break
        case .liger:
            n.append("kernels liger: \(t.kernels.title): the norms keep their 16-bit input and one fp32 value per row, the gated MLP its gate and up outputs (no activation output); the kernels' own speed is not modelled beyond the bytes they save (no GPU measurement yet)")
        case .unsloth:
            n.append("kernels unsloth: \(t.kernels.title): the norms keep their input and one fp32 value per row; q/k/v, o and the MLP, where LoRA wraps each of them, keep only their inputs (and the MLP its gate and up outputs), recomputing each X·A in backward; frozen embeddings, norms and lm_head stay 16-bit under QLoRA (Unsloth casts only the trainable parameters); not measured on a GPU yet")
        }
        let forced = t.gradCheckpointing ? [] : r.methods.compactMap { m -> String? in
            if case let .forced(reason) = m.spec.checkpointing { return " (\(m.title): on, \(reason))" } else { return nil }
        }
        let style: PlanText
        switch (t.gradCheckpointing, t.checkpointStyle) {
        case (true, .reentrant): style = " (\(setting: .checkpointing, "reentrant"): each block's whole forward again in backward)"
        case (true, .offloaded):
            style = t.seq < 512
                ? " (\(setting: .checkpointing, "offloaded"): below 512 tokens Unsloth runs plain reentrant checkpointing, nothing offloaded)"
                : " (\(setting: .checkpointing, "offloaded"), Unsloth's: each block's input in pinned host memory, host_bytes; copied back before the block reruns, and compute waits for the copy)"
        case (true, .selective):
            style = " (\(setting: .checkpointing, "selective"), TRL's: each block keeps its input and the attention op's outputs, cached by PyTorch's selective checkpointing, and recomputes the rest but attention)"
        default: style = ""
        }
        n.append("gradient checkpointing \(t.gradCheckpointing ? "on" : "off")\(style)\(forced.joined())")
        if t.activationOffloading {
            n.append("activation offloading (TRL's OffloadActivations): the blocks' saved tensors go to pinned host memory in forward and come back in backward, one block in flight; host_bytes counts them (exact bytes; PyTorch's pinned host allocator rounds each block up to a power of two); the copies out overlap forward, the copies back are waited for in backward (TRL brings each back on demand)")
        }

        if t.optimizer == .pagedAdamw8bit {
            n.append("paged-adamw-8bit: states of tensors of 100,000 elements or more live in CUDA unified memory, which can page to the host; they are left out of device_total (JSON: pageable_bytes)")
        }
        if t.paddingFree {
            n.append(t.attention == .flash
                ? "packing: TRL's padding-free rows (its collator concatenates the micro-batch's sequences with position ids); flash_attention_2 attends within each sequence"
                : "packing: TRL's padding-free rows of \(t.batch) × \(t.seq) tokens, planned as one sequence each; under \(setting: .attention, t.attention.rawValue) Transformers 5.25 masks each sequence off from the others with a block-diagonal mask over the row (TRL runs without a KV cache; under sdpa the mask is kept per layer in the compute dtype, keys and values are repeated to every head and the whole square is computed; prompt-learning methods, whose position ids PEFT drops, get no mask and attend across); \(setting: .attention, "flash") attends within each sequence at no such cost")
        }
        if t.optimizerInBackward {
            n.append("optimizer step in backward: each parameter's optimizer steps from its post-accumulate-grad hook and frees the gradient, so gradients hold the largest one only; no gradient clipping (the Trainer's clipping sees no gradients), no accumulation")
        }
        if t.gradAccum > 1 { n.append("gradient accumulation \(t.gradAccum): gradients stay allocated during forward") }
        let methodNotes = r.methods.flatMap(\.spec.notes).sorted { $0.order < $1.order }
        for (k, note) in methodNotes.enumerated() where k == 0 || methodNotes[k - 1].order != note.order { n.append(note.text(o)) }
        n.append("GPU memory: fits compare with each card's usable memory, the device total PyTorch reports there (less than the nominal size: the driver's reservation, and ECC on GDDR datacenter cards; each profile names its source, `peft-plan gpus`); \(setting: .gpu, "24GB") selects by nominal size; 1 GiB = 2^30 bytes")
        let unstated = r.gpus.filter { $0.usableMemory == nil }.map(\.name)
        if !unstated.isEmpty {
            n.append("no usable memory figure in the profile of \(unstated.joined(separator: ", ")): its nominal size is used, which overstates what PyTorch can allocate (add usableMemory {bytes, basis, source} to the file)")
        }
        if let sn = scaleNote(r) { n.append("\(sn)") }
        n.append(timeNote(r))
        return n
    }

    /// How time and cost were reckoned, for the notes.
    static func timeNote(_ r: PlanRequest) -> PlanText {
        let c = r.runtime.time
        let mfu: PlanText = r.budget.mfu.map { "\(String(format: "%.0f%%", $0 * 100)) (\(field: .mfu))" }
            ?? c.peakFraction.map { "\(String(format: "%.0f%%", $0 * 100)) (the runtime profile's)" }
            ?? "\(String(format: "%.0f%% of each GPU's measured achievable matmul rate", c.matmulEfficiency * 100))\(r.gpus.first.map { String(format: " (%.0f%% of the peak on %@)", c.matmulEfficiency($0) * 100, $0.name) } ?? "")"
        var n: PlanText = "time (runtime \(r.runtime.name), fitted to \(TimeCoefficients.fittedRuns) published and measured runs; docs/time-model.md): matmul FLOPs (recompute included) at a fraction of the GPU's dense 16-bit peak: \(mfu); "
        n += "\(String(format: "elementwise traffic %.1f× the saved activations and logits, %.2f ms per block pass, %.0f ms per step", c.activationTraffic, c.blockPassSeconds * 1e3, c.stepFixedSeconds * 1e3))"
        n += "\(String(format: "; range P10–P90 = %.2f–%.2f× the training time (held-out error)", c.timeRatioP10, c.timeRatioP90))"
        n += "; " + (r.budget.steps.map { "\($0) optimizer steps (\(field: .steps))" } ?? r.dataset.summary) + "; cost = hours × GPUs × price (profile's typical on-demand price unless \(field: .price) or a provider's offer)"
        n += "\(String(format: ", plus %g min set-up, model load and checkpoint saves at 1 GB/s", r.budget.setupMinutes))"
        let tr = r.training.trainer
        if tr.extraForwards > 0 {
            n += "; the trainer's no-grad forwards each the forward's share of a micro-batch"
        }
        if tr.kind == .grpo {
            n += "\(String(format: "; generation: the prompts' prefill at the matmul rate, every decode step reading the weights and the KV cache in flight at %.0f%% of the memory bandwidth", r.runtime.time.bandwidthEfficiency * 100))"
            n += tr.generation == .transformers
                ? "\(String(format: ", plus Transformers' generate's own max(%.1f ms, %.2f ms × sequences) per step (fitted on published A100 runs, held-out median error 9.4%%; docs/trainers.md)", GenerationTime.generateStepOverhead * 1e3, GenerationTime.generateRowOverhead * 1e3))"
                : " (vLLM; its overhead not counted), and the weights synced into it every step"
            n += "; every completion at its full length"
        }
        return n
    }

    static func scaleNote(_ r: PlanRequest) -> String? {
        let s = r.scale
        guard s.gpus > 1 || s.sharding != .none || s.offload != .none else { return nil }
        var n = "\(s.gpus) GPU\(s.gpus == 1 ? "" : "s"), sharding \(s.sharding.rawValue), offload \(s.offload.rawValue): memory is per GPU"
        if s.sharding.shardsParameters { n += "; sharded weights add the gathered root unit (embeddings, lm_head) and two blocks" }
        if s.offload != .none { n += "; offloaded states live in host RAM (host_bytes)" }
        if (s.sharding.zeroStage ?? 0) > 0 && (r.training.precision == .bf16 || r.training.precision == .fp16) {
            n += "; DeepSpeed ZeRO keeps fp32 master weights and optimizer states even for \(r.training.precision.rawValue)"
        }
        n += "; collectives at half the interconnect's quoted bandwidth × \(Int(r.runtime.time.nvlinkEfficiency * 100))% (NVLink) or \(Int(r.runtime.time.pcieEfficiency * 100))% (PCIe), \(Int(r.runtime.time.communicationOverlap * 100))% hidden behind compute"
        if s.gpus > r.runtime.gpusPerNode { n += ", past \(r.runtime.gpusPerNode) GPUs over a \(Int(r.runtime.networkBytesPerSecondPerGPU / 1e9)) GB/s-per-GPU network" }
        return n
    }

    static func precisionNote(_ p: Precision) -> String {
        switch p {
        case .bf16, .fp16: return "weights, gradients and AdamW states in 16 bits"
        case .fp32: return "everything in fp32"
        case .mixedBF16, .mixedFP16: return "16-bit weights and gradients, fp32 master weights and optimizer states"
        }
    }
}
