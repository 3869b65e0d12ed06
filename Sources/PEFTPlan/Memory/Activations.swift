import Foundation

// MARK: - Sizes

/// The size of a tensor in elements, as coefficients of the training shape:
/// `q·(B·Sq) + kv·(B·Skv) + pair·(B·Sq·Skv) + pos·Sq + fixed + sample·B`, where B is the
/// micro-batch, Sq the query length (the sequence, plus prompt-tuning tokens) and Skv the
/// attended length (plus prefix tokens); `sample` counts per sequence whatever does not
/// grow with its length (a vision tower's patches of the sample's images).
public struct Extent: Equatable, Sendable {
    public var q = 0, kv = 0, pair = 0, pos = 0, fixed = 0, sample = 0
    /// Elements per query token that exist only at micro-batch 1, where a reshape that
    /// merges the batch into the heads is a view and keeps a larger storage alive.
    public var q1 = 0
    /// Elements per attended token that exist only at a micro-batch above 1: `torch.matmul`
    /// folds the batch into a broadcast (stride-0) head dimension by copying, where at batch 1
    /// the fold is a view (DeepSeek-V4: one key head read by every query head).
    public var kvMulti = 0
    static func q(_ n: Int) -> Extent { Extent(q: n) }
    static func kv(_ n: Int) -> Extent { Extent(kv: n) }
    static func pair(_ n: Int) -> Extent { Extent(pair: n) }
}

/// Bytes as coefficients of the training shape (see ``Extent``), so that one symbolic pass
/// over the model serves every batch size and sequence length.
public struct ByteBill: Equatable, Sendable {
    public var q = 0.0, kv = 0.0, pair = 0.0, pos = 0.0, fixed = 0.0, q1 = 0.0, sample = 0.0, kvMulti = 0.0

    public func bytes(batch: Int, sq: Int, skv: Int) -> Double {
        let b = Double(batch), s = Double(sq), k = Double(skv)
        return q * b * s + kv * b * k + pair * b * s * k + pos * s + fixed + (batch == 1 ? q1 * s : 0) + sample * b
            + (batch > 1 ? kvMulti * b * k : 0)
    }

    mutating func add(_ e: Extent, bytes: Int, times: Double = 1) {
        let w = Double(bytes) * times
        q += Double(e.q) * w; kv += Double(e.kv) * w; pair += Double(e.pair) * w
        pos += Double(e.pos) * w; fixed += Double(e.fixed) * w; q1 += Double(e.q1) * w; sample += Double(e.sample) * w
        kvMulti += Double(e.kvMulti) * w
    }

    static func + (a: ByteBill, b: ByteBill) -> ByteBill {
        ByteBill(q: a.q + b.q, kv: a.kv + b.kv, pair: a.pair + b.pair, pos: a.pos + b.pos, fixed: a.fixed + b.fixed, q1: a.q1 + b.q1,
                 sample: a.sample + b.sample, kvMulti: a.kvMulti + b.kvMulti)
    }
    static func * (a: ByteBill, k: Double) -> ByteBill {
        ByteBill(q: a.q * k, kv: a.kv * k, pair: a.pair * k, pos: a.pos * k, fixed: a.fixed * k, q1: a.q1 * k, sample: a.sample * k,
                 kvMulti: a.kvMulti * k)
    }
    static func - (a: ByteBill, b: ByteBill) -> ByteBill {
        ByteBill(q: a.q - b.q, kv: a.kv - b.kv, pair: a.pair - b.pair, pos: a.pos - b.pos, fixed: a.fixed - b.fixed, q1: a.q1 - b.q1,
                 sample: a.sample - b.sample, kvMulti: a.kvMulti - b.kvMulti)
    }
}

// MARK: - The symbolic tape

/// A forward pass played symbolically: tensors have sizes and a requires-grad flag, and
/// each op saves for backward exactly what PyTorch's autograd saves for it — an input is
/// saved only when a gradient that needs it will be computed (`should_compute_output` in
/// the generated autograd code) — deduplicated by storage, as the meta-device trace is.
final class Tape {
    struct T {
        let id: Int
        let extent: Extent
        let bytes: Int
        var rg: Bool
        /// Logits-sized tensors are reported as their own component.
        var logits = false
    }

    private var nextID = 0
    private(set) var savedIDs = Set<Int>()
    /// Roles a block recipe asked for that the architecture lacks: planning refuses them
    /// (``PlanError/incompleteArchitecture(model:role:)``) rather than count nothing.
    var missing = Set<ModuleRole>()
    private(set) var activations = ByteBill()
    private(set) var logits = ByteBill()
    /// The layer being played (which of a layer-varying model's modules exist).
    var layer = 0
    /// Gemma 4: the keys and values each attention width's last producing layer made, which
    /// its KV-sharing layers reuse (the same storages: saving them again adds nothing).
    var sharedKV: [String: (k: T, v: T)] = [:]
    /// Gemma 4: the per-layer inputs every layer reads a slice of (a view of one storage).
    var perLayerInputs: T?
    /// What the layer being played stands for: the steady stage plays each kind of layer
    /// once, weighted by its share of the layers after the first two.
    var weight = 1.0

    func new(_ e: Extent, _ bytes: Int, rg: Bool, logits: Bool = false) -> T {
        nextID += 1
        return T(id: nextID, extent: e, bytes: bytes, rg: rg, logits: logits)
    }

    /// Saves `t` (once per storage); `times` scales it where a size is a fraction of the
    /// shape's terms (DeepSeek-V4's compressed entries: one per `rate` tokens).
    func save(_ t: T, times: Double = 1) {
        guard !savedIDs.contains(t.id) else { return }
        savedIDs.insert(t.id)
        recomputedFlops[stage] = recomputedFlops[stage] + sinceLastSave[stage]
        sinceLastSave[stage] = ByteBill()
        fp32RecomputedFlops[stage] = fp32RecomputedFlops[stage] + fp32SinceLastSave[stage]
        fp32SinceLastSave[stage] = ByteBill()
        flashRecomputedFlops[stage] = flashRecomputedFlops[stage] + flashSinceLastSave[stage]
        flashSinceLastSave[stage] = ByteBill()
        if t.logits { logits.add(t.extent, bytes: t.bytes, times: weight * times) } else { activations.add(t.extent, bytes: t.bytes, times: weight * times) }
    }

    func save(_ e: Extent, _ bytes: Int, times: Double = 1) { save(new(e, bytes, rg: false), times: times) }

    var total: ByteBill { activations + logits }

    /// Matmul FLOPs of forward and backward by stage (0: embedding, 1–3: blocks, 4: head),
    /// counted as PyTorch's FlopCounterMode counts them (2 per multiply-add of mm/bmm).
    private(set) var forwardFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var backwardFlops = [ByteBill](repeating: ByteBill(), count: 5)

    /// Forward FLOPs that non-reentrant checkpointing recomputes: PyTorch stops recomputing
    /// a block once its last saved tensor is back ("early stop"), so matmuls after the
    /// block's last save are not rerun.
    private(set) var recomputedFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private var sinceLastSave = [ByteBill](repeating: ByteBill(), count: 5)
    /// The part of the above that runs in fp32 (no 16-bit tensor-core rate): LoRA's fp32
    /// adapters, and under QLoRA the attention and lm_head, whose inputs are fp32.
    private(set) var fp32ForwardFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var fp32BackwardFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var fp32RecomputedFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private var fp32SinceLastSave = [ByteBill](repeating: ByteBill(), count: 5)

    /// Attention FLOPs of the flash kernel, which PyTorch's counter counts over the full
    /// s × s square although a causal kernel skips the masked upper half.
    private(set) var flashForwardFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var flashBackwardFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var flashRecomputedFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private var flashSinceLastSave = [ByteBill](repeating: ByteBill(), count: 5)

    func flops(_ e: Extent, forward: Int, backward: Int, fp32: Bool = false, causalFlash: Bool = false, times: Double = 1) {
        let w = weight * times
        forwardFlops[stage].add(e, bytes: forward, times: w)
        backwardFlops[stage].add(e, bytes: backward, times: w)
        sinceLastSave[stage].add(e, bytes: forward, times: w)
        if fp32 {
            fp32ForwardFlops[stage].add(e, bytes: forward, times: w)
            fp32BackwardFlops[stage].add(e, bytes: backward, times: w)
            fp32SinceLastSave[stage].add(e, bytes: forward, times: w)
        }
        if causalFlash {
            flashForwardFlops[stage].add(e, bytes: forward, times: w)
            flashBackwardFlops[stage].add(e, bytes: backward, times: w)
            flashSinceLastSave[stage].add(e, bytes: forward, times: w)
        }
    }

    /// Tensors alive until the end of forward without being saved (the KV cache that
    /// Transformers fills in training unless checkpointing turns `use_cache` off), by stage.
    private var cached: [(id: Int, extent: Extent, bytes: Int, stage: Int, weight: Double)] = []
    var stage = 0

    /// The outputs of the attention op (SDPA's output and log-sum-exp), by stage: what
    /// selective checkpointing caches per block (``CheckpointStyle/selective``).
    private(set) var attentionOutputs = [ByteBill](repeating: ByteBill(), count: 5)

    func cacheAttentionOutput(_ e: Extent, _ bytes: Int) { attentionOutputs[stage].add(e, bytes: bytes, times: weight) }

    /// The forward FLOPs of those attention ops, by stage (all, and the causal-flash part):
    /// what selective checkpointing's recompute takes from its cache instead of rerunning.
    private(set) var cachedAttentionFlops = [ByteBill](repeating: ByteBill(), count: 5)
    private(set) var cachedFlashFlops = [ByteBill](repeating: ByteBill(), count: 5)

    func cacheAttentionFlops(_ e: Extent, forward: Int, causalFlash: Bool) {
        cachedAttentionFlops[stage].add(e, bytes: forward, times: weight)
        if causalFlash { cachedFlashFlops[stage].add(e, bytes: forward, times: weight) }
    }

    func keepAlive(_ t: T) {
        guard !cached.contains(where: { $0.id == t.id }) else { return }
        cached.append((t.id, t.extent, t.bytes, stage, weight))
    }

    /// The kept-alive bytes of one stage that no saved tensor already holds.
    func forwardOnly(stage: Int) -> ByteBill {
        var bill = ByteBill()
        for c in cached where c.stage == stage && !savedIDs.contains(c.id) { bill.add(c.extent, bytes: c.bytes, times: c.weight) }
        return bill
    }
}

// MARK: - What the methods change

/// Everything the symbolic forward needs to know about one plan besides the shape.
struct GraphContext {
    let arch: Architecture
    let method: Method
    let options: MethodOptions
    let wrapped: [String: WrappedModule]
    /// Bytes of an activation in the compute dtype.
    let a: Int
    /// Bytes of a LoRA adapter's elements: fp32 (PEFT's autocast_adapter_dtype) or the model's.
    let adapterBytes: Int
    /// Bytes of the residual stream (QLoRA after `prepare_model_for_kbit_training`
    /// keeps embeddings and norms in fp32, so the stream is fp32).
    let stream: Int
    let kernel: AttentionKernel?   // nil = eager
    let maskBytes: Int              // 0 = the tensor's dtype
    let baseTrainable: Bool
    let virtualQ: Int               // prompt-tuning tokens added to the query length
    let prefix: Bool
    /// Transformers fills a DynamicCache in training (config `use_cache`) unless gradient
    /// checkpointing turns it off or TRL's trainer asks for none; PEFT's prefix tuning always
    /// passes one.
    let useCache: Bool
    let checkpointing: Bool
    /// Image tokens per sample a vision-language model's tower fills (0: text only).
    let imageTokens: Int
    /// The loss over the vocabulary (what the head keeps, computes again or computes early).
    let loss: LossKind
    /// A padding-free row under SDPA without a cache (TRL's trainer passes use_cache=False;
    /// checkpointing turns the cache off): Transformers 5.25 builds a block-diagonal mask from
    /// the position ids (masking_utils.py: only with no attention mask and no cache), so the
    /// keys and values are expanded to every head (sdpa_attention.py `repeat_kv`, as
    /// `use_gqa_in_sdpa` needs no mask) and each layer's SDPA call turns the boolean mask into
    /// one in the query's dtype, which its kernel keeps (checked on the CPU). Without it (the
    /// plain Trainer's cache) the row attends causally across its sequences, unmasked.
    let packedMask: Bool
    /// The kernel stack and what it replaces in this family (``KernelPatch``).
    let kernels: KernelStack
    let patch: KernelPatch
    /// Positions per row TRL's fused head scores where it scores labelled positions only
    /// (a trainer's completion on CUDA); nil: every position that has a next token.
    let scoredPerRow: Int?
    /// ORPO and SimPO (CPO): the full logits kept for backward (``TrainerKind/fullLogits``),
    /// and ORPO's NLL over the chosen rows (``TrainerKind/nllOnChosen``).
    let fullLogits: Bool, nllOnChosen: Bool

    init(arch: Architecture, account: ParameterAccount, options: MethodOptions, training: TrainingOptions, runtime: RuntimeProfile) {
        self.arch = arch
        self.method = account.method
        self.options = options
        var w: [String: WrappedModule] = [:]
        for m in account.wrapped { w[m.module.key] = m }
        self.wrapped = w
        a = training.precision.bytes
        adapterBytes = account.method.adapterElementBytes(options, precision: training.precision)
        let spec = account.method.spec
        kernels = training.kernels
        patch = KernelPatch(arch.family.spec, kernels: training.kernels)
        // QLoRA's norms write the stream in their own dtype: fp32 after
        // prepare_model_for_kbit_training, 16-bit where the stack keeps them so (Unsloth too).
        stream = spec.quantisesBase ? account.method.quantisedRestBytes(options, precision: training.precision, kernels: training.kernels)
            : training.precision.bytes
        switch training.attention {
        case .eager: kernel = nil
        case .flash: kernel = .flash
        case .sdpa: kernel = arch.supportsSDPA ? runtime.sdpaKernel : nil
        }
        maskBytes = runtime.dropoutMaskBytes
        baseTrainable = spec.trainsBase
        virtualQ = spec.virtualTokens == .input ? options.promptTokens : 0
        prefix = spec.virtualTokens == .keysValues
        checkpointing = spec.checkpointing(requested: training.gradCheckpointing)
        // TRL's SFTTrainer, whose chunked head `--loss chunked` plans (and Unsloth's, which runs
        // under it), passes use_cache=False to every training forward (TRL 1.16 sft_trainer.py
        // compute_loss; trainer/utils.py, the fused head's forward); padding-free rows come from
        // its collator, so they run under it too.
        let trl = training.loss == .chunked || training.loss == .unsloth || training.paddingFree || training.trainer.kind != .sft
        useCache = prefix || (!checkpointing && !trl)
        packedMask = training.paddingFree && training.attention == .sdpa && !useCache && spec.virtualTokens == nil
        imageTokens = arch.vision == nil ? 0 : training.imageTokens
        loss = training.loss
        let trainer = training.trainer
        scoredPerRow = runtime.compactScoring && trainer.kind != .sft ? trainer.completion.map { min($0, max(1, training.seq - 1)) } : nil
        fullLogits = trainer.kind.fullLogits
        nllOnChosen = trainer.kind.nllOnChosen
    }

    /// Whether Unsloth's fused LoRA function runs `roles` together (`LoRA_QKV`, `LoRA_W`,
    /// `LoRA_MLP`; unsloth @015bdef0 models/llama.py `patch_peft_model` L3695–3767): each of
    /// them wrapped by LoRA, without a base bias or DoRA (and LoRA dropout 0, checked when
    /// planning starts).
    func unslothFuses(_ roles: [ModuleRole], layer: Int) -> Bool {
        patch.unslothFuses(roles, layer: layer, arch: arch, method: method, options: options) { wrapped[$0.key] != nil }
    }

    func module(_ role: ModuleRole, layer: Int) -> ModuleSpec? { arch.module(role, layer: layer) }
    /// Whether the method wraps the module that plays `role` in `layer`.
    func wraps(_ role: ModuleRole, layer: Int) -> Bool { module(role, layer: layer).map { wrapped[$0.key] != nil } ?? false }
}

/// The symbolic forward of each architecture, written from the Transformers v5 modelling
/// code (`modeling_llama.py`, `modeling_gpt2.py`, …) op by op.
struct ForwardGraph {
    let c: GraphContext
    let tape = Tape()

    /// The module that plays `role` in the layer being played (or outside the blocks).
    func module(_ role: ModuleRole) -> ModuleSpec? { c.module(role, layer: tape.layer) }
    /// Whether the method wraps the module that plays `role` in the layer being played.
    func wraps(_ role: ModuleRole) -> Bool { c.wraps(role, layer: tape.layer) }

    // MARK: ops

    func maskBytes(_ t: Tape.T) -> Int { c.maskBytes == 0 ? t.bytes : c.maskBytes }

    /// `nn.Linear` / GPT-2 `Conv1D`, with the method's wrapper if the module is targeted.
    /// A frozen base weight saves nothing (its input grad needs only the weight); a
    /// trainable one saves its input.
    /// A module on a branch that reaches no loss (DeepSeek-V4's indexer feeds a top-k whose
    /// values are dropped) runs no backward: `branch` says whether what it saved is `kept` (a
    /// cache holds the branch's output, and so its graph) or `dropped` with the branch's graph
    /// when the forward leaves it.
    enum Branch { case trained, kept, dropped }

    func linear(_ x: Tape.T, _ role: ModuleRole, outBytes: Int? = nil, branch: Branch = .trained) -> Tape.T {
        guard let m = module(role) else {
            tape.missing.insert(role)
            return x
        }
        let ob = outBytes ?? c.a
        let backward = branch == .trained
        if branch == .dropped {
            let r = c.wrapped[m.key] != nil && c.method.spec.wrapper == .lowRank ? c.options.loraR : 0
            tape.flops(.q(1), forward: 2 * m.inFeatures * m.outFeatures, backward: 0)
            if r > 0 { tape.flops(.q(1), forward: 2 * r * (m.inFeatures + m.outFeatures), backward: 0, fp32: c.adapterBytes == 4) }
            return tape.new(.q(m.outFeatures), ob, rg: false)
        }
        if c.baseTrainable { tape.save(x) }
        if c.method.spec.quantisesBase && m.perLayer && m.weightElements > 0 && x.rg {
            // bitsandbytes' MatMul4Bit keeps its input (cast to the compute dtype by
            // Linear4bit) in ctx.tensors whenever the input needs a gradient, although only
            // the weight is used in backward (bitsandbytes/autograd/_functions.py).
            tape.save(x.bytes == c.a ? x : tape.new(x.extent, c.a, rg: x.rg))
        }
        let out = Extent.q(m.outFeatures)
        // y = x Wᵀ: 2·in·out per token; backward needs the input's gradient where the
        // input needs one, and the weight's where the weight trains.
        let mm = 2 * m.inFeatures * m.outFeatures
        tape.flops(.q(1), forward: mm, backward: backward ? (x.rg ? mm : 0) + (c.baseTrainable ? mm : 0) : 0)
        if let w = c.wrapped[m.key] {
            switch c.method.spec.wrapper {
            case .lowRank?:
                let r = c.options.loraR
                let a = 2 * m.inFeatures * r, b = 2 * r * m.outFeatures
                // forward lora_A and lora_B; backward both weights, lora_B's input, and
                // lora_A's input where x needs a gradient
                // the adapter's dtype: fp32 (PEFT's autocast_adapter_dtype) or the model's
                let ab = c.adapterBytes
                tape.flops(.q(1), forward: a + b, backward: backward ? a + 2 * b + (x.rg ? a : 0) : 0, fp32: ab == 4)
                // PEFT casts the input to the adapter's dtype before lora_dropout and lora_A;
                // lora_A saves that input, lora_B saves lora_A's rank-r output.
                var xin = x.bytes == ab ? x : tape.new(x.extent, ab, rg: x.rg)
                if c.options.loraDropout > 0 {
                    if xin.rg { tape.save(Extent.q(m.inFeatures), c.maskBytes == 0 ? ab : c.maskBytes) }
                    xin = tape.new(x.extent, ab, rg: x.rg)
                }
                tape.save(xin)
                let u = tape.new(.q(c.options.loraR), ab, rg: true)
                tape.save(u)
                if c.options.dora {
                    // the LoRA weight for the norm: an (in × in) identity through lora_A and lora_B
                    tape.flops(Extent(fixed: 1), forward: 2 * m.inFeatures * r * (m.inFeatures + m.outFeatures), backward: 0)
                    // DoRA (peft/tuners/lora/dora.py): the weight norm is computed on a detached
                    // branch (freed after forward; see PlanContext's DoRA transient); kept are
                    // the magnitude scales and both results that
                    // `(mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result` multiplies.
                    tape.save(Extent(fixed: m.outFeatures), ab)         // mag_norm_scale
                    tape.save(Extent(fixed: m.outFeatures), ab)         // mag_norm_scale - 1
                    tape.save(out, ob)                                  // base result
                    tape.save(out, ab)                                  // LoRA result
                }
                return tape.new(out, ob, rg: true)
            case .scaling?:
                if w.feedforward {
                    // interm = (x.to(fp32) * ia3_l).to(dtype): the fp32 input is saved.
                    let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
                    tape.save(x32)
                    if x.rg { tape.save(Extent(fixed: m.inFeatures), 4) }    // the flattened ia3_l
                    return tape.new(out, ob, rg: true)
                }
                // result = (base(x) * ia3_l).to(dtype): base's output is saved.
                let y = tape.new(out, ob, rg: x.rg || c.baseTrainable)
                tape.save(y)
                if y.rg { tape.save(Extent(fixed: m.outFeatures), 4) }       // the flattened ia3_l
                return tape.new(out, ob, rg: true)
            case nil: break   // the method wraps no module
            }
        }
        return tape.new(out, ob, rg: x.rg || c.baseTrainable)
    }

    /// Hugging Face RMSNorm (Llama, Mistral, Mixtral, Qwen, Phi-3): fp32 input, rsqrt, the
    /// cast normalised tensor (saved only for a trainable weight).
    /// `headNorm`: the attention's q or k norm, which a kernel stack patches separately.
    func rmsNorm(_ x: Tape.T, heads: Int = 1, weightInFP32: Bool = false, headNorm: Bool = false) -> Tape.T {
        if headNorm ? c.patch.headNorms : c.patch.norms { return fusedRMSNorm(x, heads: heads) }
        let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        if x.rg {
            tape.save(x32)
            tape.save(.q(heads), 4)
        }
        // OLMo 2 multiplies the weight before the cast: the weight's gradient reads fp32
        let normed = tape.new(x.extent, c.stream == 4 || weightInFP32 ? 4 : c.a, rg: x.rg)
        if c.baseTrainable { tape.save(normed) }
        return tape.new(x.extent, c.stream, rg: x.rg || c.baseTrainable)
    }

    /// A parameter-free RMSNorm over each head computed in fp32 (Llama 4's q/k norm): keeps
    /// the fp32 copy and the reciprocal per head.
    func weightlessNorm(_ x: Tape.T, heads: Int) -> Tape.T {
        let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        if x.rg {
            tape.save(x32)
            tape.save(.q(heads), 4)
        }
        return tape.new(x.extent, c.a, rg: x.rg)
    }

    /// A fused RMSNorm kernel: Liger's `LigerRMSNormFunction` (Liger-Kernel @ead96b61
    /// ops/rms_norm.py L612–659: `save_for_backward(X, W, RSTD)`, X the input itself — a view,
    /// no copy — and RSTD one fp32 value per row in the llama and gemma casting modes, L452) or
    /// Unsloth's `Fast_RMS_Layernorm` (unsloth @015bdef0 kernels/rms_layernorm.py L162–206:
    /// `save_for_backward(X, W, r)`, r fp32 per row). Neither keeps an fp32 copy or the normed
    /// tensor (backward recomputes it); the output has the input's dtype. Gemma's (1 + weight)
    /// is the kernels' offset, nothing kept. CUDA kernels (Triton): not traced; the model
    /// follows these lines.
    func fusedRMSNorm(_ x: Tape.T, heads: Int) -> Tape.T {
        if x.rg || c.baseTrainable {
            tape.save(x)
            tape.save(.q(heads), 4)
        }
        return tape.new(x.extent, x.bytes, rg: x.rg || c.baseTrainable)
    }

    /// Gemma's RMSNorm: computes in fp32 and multiplies by (1 + weight) in fp32.
    func gemmaNorm(_ x: Tape.T, width: Int) -> Tape.T {
        if c.patch.norms { return fusedRMSNorm(x, heads: 1) }
        let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        if x.rg {
            tape.save(x32)
            tape.save(.q(1), 4)
        }
        let normed = tape.new(x.extent, 4, rg: x.rg)
        if c.baseTrainable { tape.save(normed) }
        if x.rg { tape.save(Extent(fixed: width), 4) }   // (1 + weight.float())
        return tape.new(x.extent, c.stream, rg: x.rg || c.baseTrainable)
    }

    /// `torch.layer_norm`: saves input, mean and rstd when anything needs a gradient;
    /// `groups` normalised slices per token (Phi's per-head q/k LayerNorms: one per head).
    func layerNorm(_ x: Tape.T, groups: Int = 1) -> Tape.T {
        let rg = x.rg || c.baseTrainable
        if rg {
            tape.save(x)
            tape.save(.q(groups), 4)
            tape.save(.q(groups), 4)
        }
        return tape.new(x.extent, x.bytes, rg: rg)
    }

    /// Cohere's LayerNorm (`Cohere2LayerNorm.forward`): x.float(); mean; (x − mean).pow(2)
    /// keeps one centred fp32 tensor; rsqrt keeps its output; (x − mean), computed again, times
    /// it keeps the second centred tensor; weight.float() · normed keeps the normed fp32 tensor
    /// where the weight trains and the fp32 weight copy; the cast back keeps nothing.
    func cohereLayerNorm(_ x: Tape.T, width: Int) -> Tape.T {
        if x.rg {
            tape.save(x.extent, 4)
            tape.save(x.extent, 4)
            tape.save(.q(1), 4)
            tape.save(Extent(fixed: width), 4)
        }
        let normed = tape.new(x.extent, 4, rg: x.rg)
        if c.baseTrainable { tape.save(normed) }
        return tape.new(x.extent, c.stream, rg: x.rg || c.baseTrainable)
    }

    /// Rotary embedding: `q * cos + rotate_half(q) * sin` saves cos and sin (shared by all
    /// layers) when q needs a gradient.
    func rope(_ x: Tape.T, _ cosSin: (Tape.T, Tape.T)) -> Tape.T {
        if x.rg { tape.save(cosSin.0); tape.save(cosSin.1) }
        return tape.new(x.extent, x.bytes, rg: x.rg)
    }

    func dropout(_ x: Tape.T, _ p: Double) -> Tape.T {
        guard p > 0 else { return x }
        if x.rg { tape.save(x.extent, maskBytes(x)) }
        return tape.new(x.extent, x.bytes, rg: x.rg)
    }

    /// Elementwise product: each operand is saved for the other's gradient.
    func mul(_ x: Tape.T, _ y: Tape.T, out: Extent? = nil) -> Tape.T {
        if y.rg { tape.save(x) }
        if x.rg { tape.save(y) }
        return tape.new(out ?? x.extent, max(x.bytes, y.bytes) == 4 && c.a == 4 ? 4 : c.a, rg: x.rg || y.rg)
    }

    /// An activation that keeps its input (SiLU, exact/tanh GELU).
    func act(_ x: Tape.T, width: Int) -> Tape.T {
        if x.rg { tape.save(x) }
        return tape.new(.q(width), c.a, rg: x.rg)
    }

    /// ReLU keeps its output.
    func relu(_ x: Tape.T, width: Int) -> Tape.T {
        let y = tape.new(.q(width), c.a, rg: x.rg)
        if x.rg { tape.save(y) }
        return y
    }

    /// GPT-2's `NewGELUActivation`, written in Python ops: it keeps four tensors.
    func geluNew(_ x: Tape.T, width: Int) -> Tape.T {
        if x.rg {
            tape.save(x)
            for _ in 0..<3 { tape.save(.q(width), c.a) }
        }
        return tape.new(.q(width), c.a, rg: x.rg)
    }

    /// Attention over q (Sq tokens) and k, v (Skv tokens); `softcap` is Gemma 2's tanh on
    /// the scores; `expandKV` is whether eager code repeats KV heads (`repeat_kv`).
    func attention(q: Tape.T, k: Tape.T, v: Tape.T, dropoutP: Double, softcap: Bool = false,
                   softmaxFP32: Bool = true, bloomStyle: Bool = false, qkWidth: Int? = nil, vWidth: Int? = nil,
                   sinks: Bool = false, maxSubtracted: Bool = false) -> Tape.T {
        let arch = c.arch
        // latent attention: queries and keys of one width, values and the output of another
        let qd = qkWidth ?? arch.qDim, nh = arch.numHeads, vd = vWidth ?? qd
        let anyRG = q.rg || k.rg || v.rg
        // a padding-free row's block-diagonal mask (GraphContext.packedMask): k and v repeated to
        // every head, the mask in the query's dtype kept per layer, no causal block skipping
        // (the kernel that takes a mask computes the whole square)
        let masked = c.packedMask && c.kernel == .flash
        var k = k, v = v
        if masked && arch.nKVHeads < nh {
            k = tape.new(.kv(qd), k.bytes, rg: k.rg)
            v = tape.new(.kv(vd), v.bytes, rg: v.rg)
        }
        // QKᵀ and PV: 2·head_dim per (query, key) pair and head, each. Backward: the flash
        // kernel recomputes QKᵀ and computes dQ, dK, dV and dP whenever anything needs a
        // gradient (five products, torch.utils.flop_counter's sdpa backward); the math and
        // eager paths compute only the gradients autograd asks for.
        let pairFlops = 2 * qd, pvFlops = 2 * vd
        let backwardFlops: Int
        if c.kernel == .flash { backwardFlops = anyRG ? 3 * pairFlops + 2 * pvFlops : 0 } else {
            backwardFlops = (q.rg ? pairFlops : 0) + (k.rg ? pairFlops : 0) + ((q.rg || k.rg) ? pvFlops : 0) + (v.rg ? pvFlops : 0)
        }
        // Under QLoRA, Linear4bit returns its input's dtype: q, k and v are fp32 (the
        // residual stream is fp32 after prepare_model_for_kbit_training), so attention runs
        // in fp32, where PyTorch has no flash kernel.
        tape.flops(.pair(1), forward: pairFlops + pvFlops, backward: backwardFlops, fp32: c.method.spec.quantisesBase && c.stream == 4,
                   causalFlash: c.kernel == .flash && !masked)
        switch c.kernel {
        case .flash?:
            // TRL's selective checkpointing keeps the op's outputs: the output and the fp32
            // log-sum-exp (aten::_scaled_dot_product_flash_attention and its CPU twin)
            tape.cacheAttentionOutput(.q(vd), c.a)
            tape.cacheAttentionOutput(.q(nh), 4)
            tape.cacheAttentionFlops(.pair(1), forward: pairFlops + pvFlops, causalFlash: !masked)
            if anyRG {
                tape.save(q); tape.save(k); tape.save(v)
                if masked { tape.save(.pair(1), c.a) }
                let out = tape.new(.q(vd), c.a, rg: true)
                tape.save(out)
                tape.save(.q(nh), 4)   // log-sum-exp
                return out             // (b, s, nh, hd) memory: the o_proj input is a view
            }
            return tape.new(.q(vd), c.a, rg: false)
        case .math?:
            // aten::_scaled_dot_product_attention_math upcasts to fp32 and expands GQA.
            let q32 = tape.new(.q(qd), 4, rg: q.rg)
            let k32 = tape.new(.kv(qd), 4, rg: k.rg)
            let v32 = tape.new(.kv(vd), 4, rg: v.rg)
            if k.rg { tape.save(q32) }
            if q.rg { tape.save(k32) }
            if anyRG { tape.save(.pair(nh), 4) }
            if q.rg || k.rg { tape.save(v32) }
            if dropoutP > 0 && anyRG { tape.save(.pair(nh), 4); tape.save(.pair(nh), 4) }
            // the fp32 output is cast back and transposed into a new contiguous tensor
            return tape.new(.q(vd), c.a, rg: anyRG)
        case nil:
            // Transformers' eager attention.
            let expand = !bloomStyle && arch.nKVHeads < nh
            let kx = expand ? tape.new(.kv(qd), c.a, rg: k.rg) : (bloomStyle ? tape.new(.kv(qd), c.a, rg: k.rg) : k)
            let vx = expand ? tape.new(.kv(vd), c.a, rg: v.rg) : (bloomStyle ? tape.new(.kv(vd), c.a, rg: v.rg) : v)
            let qx = bloomStyle ? tape.new(.q(qd), c.a, rg: q.rg) : q
            if kx.rg {
                tape.save(qx)
                // BLOOM's reshape of q to (batch·heads, s, hd) is a view of the fused qkv
                // output at batch 1, which then stays alive whole (3 × hidden, not 1 ×).
                if bloomStyle { tape.save(Extent(q1: 2 * qd), c.a) }
            }
            if qx.rg { tape.save(kx) }
            let scoresRG = qx.rg || kx.rg
            if softcap && scoresRG { tape.save(.pair(nh), c.a) }       // tanh output
            if sinks && scoresRG {
                // gpt-oss (`eager_attention_forward`, modeling_gpt_oss.py): the sink logit is
                // concatenated as one more key column, the row max subtracted (max keeps its
                // int64 indices), softmax in the model dtype over s + 1 columns; the
                // probabilities without the sink column are a view of that output
                tape.save(.q(nh), 8)
                let combined = Extent(q: nh, pair: nh)
                let out = tape.new(combined, c.a, rg: true)
                tape.save(out)
                let probs = Tape.T(id: out.id, extent: combined, bytes: c.a, rg: true)
                if probs.rg { tape.save(vx) }
                return tape.new(.q(vd), c.a, rg: true)
            }
            if scoresRG {
                if maxSubtracted { tape.save(.q(nh), 8) }                // the row max's indices
                if softmaxFP32 { tape.save(.pair(nh), 4) } else { tape.save(.pair(nh), c.a) }
            }
            var probs = tape.new(.pair(nh), c.a, rg: scoresRG)
            probs = dropout(probs, dropoutP)
            if vx.rg { tape.save(probs) }
            if probs.rg { tape.save(vx) }
            // attn_output.transpose(1, 2).contiguous(): a new tensor
            return tape.new(.q(vd), c.a, rg: probs.rg || vx.rg)
        }
    }

    /// Prefix tuning concatenates the learned keys/values in front: new tensors that
    /// need gradients, of Skv tokens.
    func withPrefix(_ x: Tape.T) -> Tape.T {
        c.prefix ? tape.new(.kv(x.extent.q), x.bytes, rg: true) : tape.new(.kv(x.extent.q), x.bytes, rg: x.rg)
    }
    /// k and v as attention sees them (Skv tokens): the tensor itself unless prefixed.
    func kvSide(_ x: Tape.T) -> Tape.T {
        let t = c.prefix ? withPrefix(x) : Tape.T(id: x.id, extent: .kv(x.extent.q), bytes: x.bytes, rg: x.rg)
        if c.useCache { tape.keepAlive(t) }    // DynamicCache.update keeps the layer's keys and values
        return t
    }

    /// A key or value that is a view of a fused projection's output: the cache keeps the
    /// whole storage alive.
    func cachedView(_ t: Tape.T) -> Tape.T {
        if c.useCache { tape.keepAlive(t) }
        return t
    }

    /// The bottleneck adapter (AdapterHub): down projection, ReLU, up projection, residual.
    func bottleneck(_ x: Tape.T) -> Tape.T {
        let m = c.arch.hiddenSize / max(1, c.options.adapterReduction)
        let mm = 2 * c.arch.hiddenSize * m
        tape.flops(.q(1), forward: 2 * mm, backward: 2 * mm + mm + (x.rg ? mm : 0))
        let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        tape.save(x32)                                  // down's weight gradient
        let d = tape.new(.q(m), 4, rg: true)
        tape.save(d)                                    // ReLU output, also up's input
        return tape.new(x.extent, x.bytes, rg: true)
    }
}
