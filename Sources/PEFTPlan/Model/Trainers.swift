import Foundation

/// The TRL trainer a step runs under (TRL 1.16.0; docs/trainers.md gives each fact's file
/// and line). SFT is the supervised step the rest of the model describes.
public enum TrainerKind: String, CaseIterable, Sendable, Codable {
    case sft, dpo, orpo, kto, simpo, grpo

    /// Chosen and rejected run through the policy together: the collator (DPO,
    /// trainer/dpo_trainer.py L147–171) or `concatenated_forward` (ORPO, CPO) stacks them, so
    /// a micro-batch of `batch` pairs is 2 × batch rows.
    public var pairs: Bool { self == .dpo || self == .orpo || self == .simpo }

    /// Scores log-probabilities through TRL's fused LM head (`fused_lm_head=True`,
    /// trainer/utils.py `add_fused_lm_head`): DPO, KTO and GRPO. ORPO and CPO (SimPO) take
    /// the model's full logits (experimental/orpo/orpo_trainer.py L771–777).
    public var fusedHead: Bool { self == .sft || self == .dpo || self == .kto || self == .grpo }

    /// Full-vocabulary logits kept for backward (ORPO, SimPO).
    public var fullLogits: Bool { self == .orpo || self == .simpo }

    /// An NLL term over the chosen rows (ORPO's, orpo_trainer.py L779–800), whose
    /// cross-entropy keeps a log-softmax over them. SimPO is planned as the paper's loss,
    /// `CPOConfig(loss_type="simpo", cpo_alpha=0.0)`, which skips it (cpo_trainer.py L842–845;
    /// cpo_alpha's default 1.0 would add it: CPO-SimPO).
    public var nllOnChosen: Bool { self == .orpo }

    /// TRL's default β (DPOConfig L297, KTOConfig L205, ORPOConfig L90, CPOConfig L110,
    /// GRPOConfig L681: 0.0, so GRPO runs no reference model by default).
    public var defaultBeta: Double {
        switch self {
        case .sft: return 0
        case .grpo: return 0
        default: return 0.1
        }
    }

    /// Whether a reference model exists at all (ORPO and SimPO have none).
    public var hasReference: Bool { self == .dpo || self == .kto || self == .grpo }

    /// TRL's config class, as `--emit trl` writes it.
    public var configClass: String {
        switch self {
        case .sft: return "SFTConfig"
        case .dpo: return "DPOConfig"
        case .orpo: return "ORPOConfig"
        case .kto: return "KTOConfig"
        case .simpo: return "CPOConfig"
        case .grpo: return "GRPOConfig"
        }
    }

    public var title: String {
        switch self {
        case .sft: return "SFT"
        case .dpo: return "DPO"
        case .orpo: return "ORPO"
        case .kto: return "KTO"
        case .simpo: return "SimPO (TRL's CPOTrainer, loss_type=\"simpo\", cpo_alpha=0)"
        case .grpo: return "GRPO"
        }
    }
}

/// Where GRPO's completions are generated (GRPOConfig `use_vllm`, `vllm_mode`).
public enum GenerationBackend: String, CaseIterable, Sendable, Codable {
    /// `use_vllm=False` (TRL's default): the policy's own `generate` in the training process,
    /// with Transformers' KV cache on the training GPU.
    case transformers
    /// `use_vllm=True, vllm_mode="colocate"`: a vLLM engine in the training process, holding
    /// `vllm_gpu_memory_utilization` of the card for its own copy of the weights and KV cache.
    case vllmColocate = "vllm-colocate"
    /// `vllm_mode="server"`: `trl vllm-serve` (vllm serve) on GPUs of their own.
    case vllmServer = "vllm-server"

    public var usesVLLM: Bool { self != .transformers }
}

/// What a preference or RL trainer adds to a training step.
public struct TrainerOptions: Equatable, Sendable {
    public var kind: TrainerKind = .sft
    /// Tokens of each row's completion, the part the fused head scores on CUDA (GRPO:
    /// `max_completion_length`, TRL's default 512); nil: every position scored.
    public var completion: Int?
    /// GRPO: completions per prompt (`num_generations`, TRL's default 8).
    public var numGenerations = 8
    public var generation: GenerationBackend = .transformers
    /// vLLM's `gpu_memory_utilization`: colocated, TRL's `vllm_gpu_memory_utilization`
    /// (default 0.3, GRPOConfig L656); on its own GPUs, `vllm serve`'s default 0.9.
    public var vllmMemory: Double?
    /// GPUs the vLLM server runs on (`--vllm-gpus`; tensor parallel over them).
    public var vllmGPUs = 1
    /// β: nil for the trainer's default.
    public var beta: Double?
    /// GRPO's `num_iterations` (μ, TRL's default 1, GRPOConfig L689): each generation serves μ
    /// optimizer steps (generated every steps_per_generation × μ micro-steps,
    /// grpo_trainer.py L1538), and with μ > 1 the old log-probabilities are computed.
    public var numIterations = 1
    /// DPOConfig/KTOConfig `precompute_ref_log_probs`: the reference log-probabilities
    /// computed once before training, so no reference forward (nor model) in the step.
    public var precomputeRef = false

    public init() {}

    public var effectiveBeta: Double { beta ?? kind.defaultBeta }
    public var effectiveVLLMMemory: Double { vllmMemory ?? (generation == .vllmServer ? 0.9 : 0.3) }

    /// Whether a step runs a reference forward: DPO and KTO unless precomputed; GRPO only
    /// with β ≠ 0 (grpo_trainer.py: the reference log-probabilities only `if self.beta != 0.0`).
    public var referenceForward: Bool {
        switch kind {
        case .dpo, .kto: return !precomputeRef
        case .grpo: return effectiveBeta != 0
        default: return false
        }
    }

    /// GRPO: the step in which the micro-batch must grow for the generation batch (micro-batch ×
    /// `perStep`, the accumulation × GPUs) to hold whole groups of `numGenerations`.
    public func batchQuantum(perStep: Int) -> Int {
        var a = numGenerations, b = max(1, perStep)
        while b != 0 { (a, b) = (b, a % b) }
        return numGenerations / max(1, a)
    }

    /// Whether TRL runs a micro-batch of `batch` with `perStep` (accumulation × GPUs): KTO needs
    /// two examples at least (kto_trainer.py L844–847), GRPO whole groups per generation batch.
    public func allows(batch: Int, perStep: Int) -> Bool {
        switch kind {
        case .kto: return batch >= 2
        case .grpo: return batch % batchQuantum(perStep: perStep) == 0
        default: return true
        }
    }

    /// Rows the policy's forward runs per micro-batch of `batch`: pairs stacked.
    public func rows(_ batch: Int) -> Int { kind.pairs ? 2 * batch : batch }

    /// No-grad forwards over the micro-batch's rows besides the policy's, per micro-batch:
    /// the reference's; KTO's KL estimate runs the policy (no_grad) and, without precomputed
    /// reference log-probabilities, the reference on the mismatched completions too
    /// (kto_trainer.py `_compute_kl_logps`, L1337–1368, L1426–1436); GRPO's old log-probs
    /// when generation is vLLM's (its importance-sampling correction, on by default) or reused over
    /// several steps (grpo_trainer.py L2642–2645). GRPO's run once per generation, over its rows.
    public var extraForwards: Int {
        switch kind {
        case .sft, .orpo, .simpo: return 0
        case .dpo: return referenceForward ? 1 : 0
        case .kto: return 1 + (referenceForward ? 2 : 0)
        case .grpo: return (referenceForward ? 1 : 0) + (generation.usesVLLM || numIterations > 1 ? 1 : 0)
        }
    }

    /// Optimizer steps one generation serves (GRPO's μ; 1 otherwise): its generation and no-grad
    /// forwards are spread over them.
    public var stepsPerGeneration: Int { kind == .grpo ? max(1, numIterations) : 1 }
}

/// Generation for GRPO: the KV cache and the decode time (docs/trainers.md).
public enum Generation {
    /// Bytes of one token's keys and values over every layer, as the cache holds them:
    /// Transformers' DynamicCache keeps each attention layer's k and v (the outputs of k_proj
    /// and v_proj, per token); MLA layers keep the expanded keys and values in Transformers
    /// and the compressed latent (kv_lora_rank + rope dims, one per layer) in vLLM
    /// (vllm 0.31 `MLAAttentionSpec`). Linear-attention and state-space layers keep a fixed
    /// state per sequence, not counted per token; sliding windows are counted whole. Serving
    /// (``Serving``) reads the same figure.
    public static func kvBytesPerToken(_ a: Architecture, bytes: Int, vllm: Bool) -> Int {
        var elements = 0
        var latent: LatentAttention?
        if case let .gated(t) = a.block { latent = t.latent }
        for layer in 0..<a.numLayers {
            if let m = latent, a.module(.kvB, layer: layer) != nil || a.module(.kvA, layer: layer) != nil {
                elements += vllm ? m.kvRank + m.rope : a.numHeads * (m.nope + m.rope + m.v)
            } else if let k = a.module(.k, layer: layer) {
                elements += k.outFeatures + (a.module(.v, layer: layer)?.outFeatures ?? k.outFeatures)
            } else if a.module(.qkv, layer: layer) != nil {
                elements += 2 * a.kvDim
            } else if let shared = a.module(.sharedKV, layer: layer) {
                // DeepSeek-V4: one shared key-value head per layer, the key read as the value;
                // its compressed layers' shorter caches are counted whole
                elements += shared.outFeatures
            }
        }
        return elements * bytes
    }

    /// The copy of the weights vLLM loads (vllm 0.31: the checkpoint again, in its dtype, fp32
    /// cast to bf16; TRL passes no `dtype`): 16-bit, or, colocated with a 4-bit trainer model
    /// (QLoRA), bitsandbytes 4-bit block Linears with the rest 16-bit (TRL 1.16
    /// generation/vllm_generation.py L337–344 starts the colocated engine with
    /// quantization="bitsandbytes"; `trl vllm-serve` passes none, scripts/vllm_serve.py L226–274).
    public static func vllmWeightBytes(_ ctx: PlanContext) -> Int {
        guard ctx.account.method.spec.quantisesBase, ctx.training.trainer.generation == .vllmColocate else { return ctx.arch.totalParams * 2 }
        return MemoryComponents.fourBitWeights(ctx.arch, doubleQuant: ctx.methodOptions.doubleQuant, restBytes: 2)
    }
}

/// vLLM's share of a card (vllm 0.31.0 `vllm/v1/worker/gpu_worker.py`: the engine claims
/// `gpu_memory_utilization` × the device total at start-up and refuses to start when less is
/// free; its weights, the profile run's activations and the KV cache all come out of it).
public struct VLLMShare: Equatable, Sendable {
    /// Bytes the engine claims on each of its GPUs.
    public var claimed = 0
    /// Its copy of the weights per GPU (16-bit, split over tensor-parallel GPUs).
    public var weights = 0
    /// The profile run's working set (TRL's colocated engine: max_num_batched_tokens=4096).
    public var activations = 0
    /// What is left for the KV cache, and the sequences of one row's length it holds.
    public var kvCache = 0
    public var sequences = 0
    /// Bytes of one token's KV cache per GPU.
    public var kvPerToken = 0

    /// The batched-token budget of the profile run: TRL's colocated engine sets 4096
    /// (generation/vllm_generation.py L347–363); `vllm serve` defaults to 8192 on cards of 70 GiB
    /// or more other than the A100, 2048 below (vllm 0.31 engine/arg_utils.py L2829–2920).
    public static func profileTokens(_ ctx: PlanContext, gpu: GPUProfile) -> Int {
        ctx.training.trainer.generation == .vllmColocate ? 4096 : (bigServer(gpu) ? 8192 : 2048)
    }

    /// Sequences vLLM runs at once at most (`max_num_seqs`): TRL's colocated engine sets its
    /// generation batch (per_device_train_batch_size × steps_per_generation); `vllm serve`
    /// defaults to 1024 on the cards above, 256 on the others.
    public static func maxSequences(_ ctx: PlanContext, gpu: GPUProfile) -> Int {
        let t = ctx.training
        return t.trainer.generation == .vllmColocate ? t.trainer.rows(t.batch) * max(1, t.gradAccum) : (bigServer(gpu) ? 1024 : 256)
    }

    static func bigServer(_ gpu: GPUProfile) -> Bool {
        gpu.usableMemoryBytes >= 70 << 30 && !gpu.name.uppercased().contains("A100")
    }

    public static func of(_ ctx: PlanContext, gpu: GPUProfile) -> VLLMShare? {
        let t = ctx.training.trainer
        guard t.kind == .grpo, t.generation.usesVLLM else { return nil }
        let tp = t.generation == .vllmServer ? max(1, t.vllmGPUs) : 1
        var s = VLLMShare()
        s.claimed = Int(t.effectiveVLLMMemory * Double(gpu.usableMemoryBytes))
        s.weights = Generation.vllmWeightBytes(ctx) / tp
        // The profile run (gpu_model_runner.py `profile_run`): one prefill of the batched-token
        // budget, taken as one block's feed-forward working set (vLLM's own activations are not
        // traced here), and the sampler's logits over min(max_num_seqs, tokens) requests: 16-bit,
        // their fp32 copy and TRL's processed log-probabilities in fp32 (sampler.py L95–104).
        // vLLM's CUDA-graph estimate and non-torch memory are not counted (no source states them).
        let tokens = profileTokens(ctx, gpu: gpu)
        let requests = Double(min(maxSequences(ctx, gpu: gpu), tokens))
        s.activations = Int(MemoryComponents.blockGradientWorkspace(ctx.arch, tokens: Double(tokens), actBytes: 2) / Double(tp)
                            + requests * Double(ctx.arch.vocabSize) * 10)
        s.kvPerToken = max(1, Generation.kvBytesPerToken(ctx.arch, bytes: 2, vllm: true) / tp)
        s.kvCache = max(0, s.claimed - s.weights - s.activations)
        s.sequences = s.kvCache / (s.kvPerToken * max(1, ctx.training.seq))
        return s
    }
}

/// The time GRPO spends generating per optimizer step (docs/trainers.md): decode is bound by
/// memory bandwidth — every step reads the weights once and the KV cache of every sequence
/// in flight — or by the matmuls when many sequences run at once; the prompts' prefill is
/// matmul-bound. Every completion is taken to run to `max_completion_length`.
public struct GenerationTime: Equatable, Sendable {
    /// Completions one generation makes on one engine (per training GPU, or the whole run's on
    /// a vLLM server), and how many are decoded at once. The seconds below are per optimizer
    /// step: a generation serving num_iterations steps is spread over them.
    public var rows = 0, concurrency = 0
    public var prefillSeconds = 0.0, decodeSeconds = 0.0
    /// vLLM: the trainer's weights pushed into the engine every step.
    public var syncSeconds = 0.0
    public var seconds: Double { prefillSeconds + decodeSeconds + syncSeconds }

    /// Transformers' generate (eager, dynamic cache) spends more per decode step than its
    /// memory traffic: max(c0, c1 × sequences) on top of it — Python, kernel launches and
    /// per-sequence work, a floor of about one step's launches at small batches and growing
    /// with the batch above it. Fitted on optimum-benchmark's Llama-2-7B decode runs on an
    /// A100-SXM4-80GB (batch 1–64; source S1 of
    /// Tests/PEFTPlanTests/Fixtures/published-generation/runs.json) by least squares of the
    /// relative error, and checked on the four other sources there (Mistral-7B, Llama-2-13B,
    /// Transformers 4.35–4.39): held-out median |error| 9.4%, median −8.2%
    /// (`swift test --filter GenerationTimeTests`). The pinned Transformers 5.25 is newer than
    /// every measured version; no measurement on an H100 or of 5.x was found.
    public static let generateStepOverhead = 0.0176
    public static let generateRowOverhead = 0.00117
    /// The 10th and 90th percentiles of measured ÷ predicted step time over the held-out
    /// sources (the range plans print for this part of a step).
    public static let generateRatioP10 = 0.8981
    public static let generateRatioP90 = 1.4605

    /// One decode step of Transformers' generate over `rows` sequences reading `bytes`
    /// (weights and KV cache) at `bandwidth`: the overhead above, then the traffic.
    public static func generateStep(bytes: Double, rows: Int, bandwidth: Double,
                                    overhead: (step: Double, row: Double) = (generateStepOverhead, generateRowOverhead)) -> Double {
        max(overhead.step, overhead.row * Double(rows)) + bytes / bandwidth
    }

    /// The overhead pair that minimises the squared relative error of ``generateStep`` over
    /// `runs` (each its traffic-only seconds, sequences and measured seconds), searched on a grid
    /// of 0.1 ms × 0.01 ms steps.
    public static func fitGenerateOverhead(_ runs: [(traffic: Double, rows: Int, measured: Double)]) -> (step: Double, row: Double) {
        var best = (error: Double.infinity, step: 0.0, row: 0.0)
        for i in 0...600 {
            let c0 = Double(i) * 1e-4
            for j in 0...500 {
                let c1 = Double(j) * 1e-5
                var e = 0.0
                for r in runs {
                    let x = (max(c0, c1 * Double(r.rows)) + r.traffic) / r.measured - 1
                    e += x * x
                }
                if e < best.error { best = (e, c0, c1) }
            }
        }
        return (best.step, best.row)
    }

    public static func estimate(_ ctx: PlanContext, gpu: GPUProfile, mfu: Double) -> GenerationTime {
        let t = ctx.training.trainer
        let a = ctx.arch
        var g = GenerationTime()
        let completion = Double(t.completion ?? 512)
        let prompt = Double(max(1, ctx.training.seq)) - completion
        let perGPU = ctx.training.trainer.rows(ctx.training.batch) * max(1, ctx.training.gradAccum)
        let server = t.generation == .vllmServer
        g.rows = server ? perGPU * max(1, ctx.scale.gpus) : perGPU
        let tp = Double(server ? max(1, t.vllmGPUs) : 1)
        let efficiency = ctx.runtime.time.bandwidthEfficiency
        let bandwidth = gpu.memoryBandwidthBytesPerSecond * efficiency * tp
        let peak = TimeCoefficients.peakFlops(gpu, .bf16) * mfu * tp
        let weights: Double, kv: Double
        if t.generation.usesVLLM, let share = VLLMShare.of(ctx, gpu: gpu) {
            weights = Double(Generation.vllmWeightBytes(ctx))
            kv = Double(Generation.kvBytesPerToken(a, bytes: 2, vllm: true))
            g.concurrency = max(1, min(g.rows, VLLMShare.maxSequences(ctx, gpu: gpu), share.sequences))
            g.syncSeconds = 2 * weights / bandwidth
        } else {
            weights = Double(ctx.unsharded.weights)
            kv = Double(ctx.generationKVPerToken)
            g.concurrency = max(1, g.rows)
        }
        let flopsPerToken = 2 * Double(a.activeParams)
        g.prefillSeconds = flopsPerToken * Double(g.rows) * prompt / peak
        let waves = (Double(g.rows) / Double(g.concurrency)).rounded(.up)
        let n = Double(g.concurrency)
        let bytes = completion * weights + n * kv * (prompt * completion + completion * (completion + 1) / 2)
        let flops = completion * n * flopsPerToken
        // vLLM's decode is taken at the memory (or matmul) bound; Transformers' generate adds
        // its fitted per-step overhead
        let overhead = t.generation == .transformers
            ? completion * max(generateStepOverhead, generateRowOverhead * n) : 0
        g.decodeSeconds = waves * (max(bytes / bandwidth, flops / peak) + overhead)
        return g
    }
}
