import Foundation

/// The phases of a training step; the peak is the largest of their live sets.
public enum Phase: String, Sendable, Codable, CaseIterable {
    case forward, backward, optimizer
    /// GRPO's generation with Transformers' generate in the training process (its KV cache).
    case generation
}

/// Bytes of one plan, by component, with the phase that sets the peak.
///
/// Component fields are each component's full size. `live` lists which of them are
/// allocated at the peak; `allocatedPeak` is exactly their sum, less `pageableBytes`
/// (paged optimizer states in unified memory), plus `transient`.
public struct MemoryBreakdown: Equatable, Sendable {
    public var frozenWeights = 0
    public var trainableWeights = 0
    public var masterWeights = 0
    public var gradients = 0
    public var optimizerStates = 0
    public var activations = 0
    public var logits = 0
    public var transient = 0
    public var allocatedPeak = 0
    public var reservedPeak = 0
    public var runtimeOverhead = 0
    public var deviceTotal = 0
    public var peakPhase: Phase = .forward
    /// Allocated bytes at the peak of each phase.
    public var forwardPeak = 0, backwardPeak = 0, optimizerPeak = 0, generationPeak = 0
    /// Of `frozenWeights`: a full fine-tune's reference model (DPO, KTO; GRPO with β ≠ 0).
    public var referenceWeights = 0
    /// GRPO with Transformers' generate: the KV cache of the generation batch.
    public var generationCache = 0
    public func phasePeak(_ p: Phase) -> Int {
        switch p {
        case .forward: return forwardPeak
        case .backward: return backwardPeak
        case .optimizer: return optimizerPeak
        case .generation: return generationPeak
        }
    }
    /// Components allocated at the peak.
    public var live: LiveComponents = []
    /// Bytes that live in host memory instead (paged optimizer states spill there).
    public var pageableBytes = 0
    /// Saved activations moved to host memory by activation offloading (this GPU's).
    public var offloadedActivations = 0

    public init() {}
}

/// The memory components of a plan, named as the JSON contract names them, in the order
/// `plan --format json` lists them. Output, calibration and reports read a breakdown through
/// this enum rather than through strings.
public enum MemoryComponent: String, CaseIterable, Sendable {
    case frozenWeights = "frozen_weights", trainableWeights = "trainable_weights", masterWeights = "master_weights"
    case gradients, optimizerStates = "optimizer_states", activations, logits, transient
    case allocatedPeak = "allocated_peak", reservedPeak = "reserved_peak", runtimeOverhead = "runtime_overhead"
    case deviceTotal = "device_total", pageableBytes = "pageable_bytes"
}

extension MemoryBreakdown {
    /// One component's bytes.
    public subscript(_ c: MemoryComponent) -> Int {
        switch c {
        case .frozenWeights: return frozenWeights
        case .trainableWeights: return trainableWeights
        case .masterWeights: return masterWeights
        case .gradients: return gradients
        case .optimizerStates: return optimizerStates
        case .activations: return activations
        case .logits: return logits
        case .transient: return transient
        case .allocatedPeak: return allocatedPeak
        case .reservedPeak: return reservedPeak
        case .runtimeOverhead: return runtimeOverhead
        case .deviceTotal: return deviceTotal
        case .pageableBytes: return pageableBytes
        }
    }
}

/// Which components are allocated at the peak (a set, cheap to build in sweeps).
public struct LiveComponents: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let persistent = LiveComponents(rawValue: 1)   // weights, master weights, optimizer states
    public static let gradients = LiveComponents(rawValue: 2)
    public static let saved = LiveComponents(rawValue: 4)        // activations and logits

    /// The live components, in the order the JSON lists them under `live_at_peak`.
    public var components: [MemoryComponent] {
        var k: [MemoryComponent] = []
        if contains(.persistent) { k += [.frozenWeights, .trainableWeights, .masterWeights, .optimizerStates] }
        if contains(.gradients) { k.append(.gradients) }
        if contains(.saved) { k += [.activations, .logits] }
        return k
    }

    /// Their JSON keys.
    public var keys: [String] { components.map(\.rawValue) }
}

/// Everything about one (model, method, options) that does not depend on batch or
/// sequence length, computed once so that sweeps over shapes cost a few multiplications.
public struct PlanContext: Sendable {
    public let arch: Architecture
    public let account: ParameterAccount
    public let methodOptions: MethodOptions
    public internal(set) var training: TrainingOptions
    public let runtime: RuntimeProfile
    /// The runtime's correction of saved activations and logits for this method (a fitted
    /// calibration profile's; 1 otherwise), looked up once: `phases` is the planner's hot path.
    let activationScale: Double

    // Persistent components (bytes).
    public private(set) var frozenWeights: Int
    public private(set) var trainableWeights: Int
    public private(set) var masterWeights: Int
    public private(set) var gradients: Int
    public private(set) var optimizerStates: Int
    public private(set) var pageableOptimizerBytes: Int
    /// Gradient bytes of the output head, allocated first in backward (full fine-tuning).
    let headGradients: Int
    /// The output head's input width (the hidden size, or OPT-350m's projection).
    let headInFeatures: Int
    /// Weight-sized temporaries of one module's forward and backward: QLoRA's largest
    /// block weight dequantised to the compute dtype; DoRA's weight-norm computation.
    let dequantTransient: Int

    // Activation coefficients from the symbolic forward.
    let pre: ByteBill, layer0: ByteBill, layer1: ByteBill, steady: ByteBill, head: ByteBill, logitsBill: ByteBill
    /// Each kind of layer after the first two, unweighted (`steady` is their weighted mean):
    /// checkpointing recomputes one block at a time, so its peak is the largest kind.
    let steadyKinds: [ByteBill]
    let checkpointInputPerToken: Int
    /// What selective checkpointing caches per block: the attention op's outputs (layers 0, 1,
    /// and the steady layer's weighted mean); zero where the kernel is not one it matches.
    let attentionOutputs: [ByteBill]
    /// Per-layer bytes of the KV cache that no saved tensor holds (layers 0, 1, steady).
    let cache: [ByteBill]
    /// Matmul FLOPs by stage (embedding, blocks 0, 1, steady, head), forward and backward.
    let forwardFlops: [ByteBill], backwardFlops: [ByteBill], recomputedFlops: [ByteBill]
    /// The fp32 part of the above, and the flash-attention part (see ``Tape``).
    let fp32Flops: (forward: [ByteBill], backward: [ByteBill], recomputed: [ByteBill])
    let flashFlops: (forward: [ByteBill], backward: [ByteBill], recomputed: [ByteBill])
    /// Whether gradient checkpointing is on (QLoRA always: prepare_model_for_kbit_training).
    public let checkpointing: Bool
    /// Whether checkpointing reruns whole blocks (`use_reentrant=True`). TRL 1.16 means to force
    /// it for PEFT under DeepSpeed ZeRO-3 (sft_trainer.py), but writes the deprecated
    /// `gradient_checkpointing_kwargs`, which Transformers 5.25's Trainer no longer reads
    /// (`activation_checkpointing_kwargs`, defaulting to `use_reentrant=False`): the pinned
    /// stack runs non-reentrant there unless asked.
    public var recomputesWholeBlocks: Bool { training.checkpointStyle == .reentrant || training.checkpointStyle == .offloaded }

    /// Whether Unsloth's offloaded checkpointing moves the block inputs to the host for a
    /// micro-batch of `batch` × `seq`: under Unsloth's style, from 512 tokens (below, Unsloth
    /// turns the mode into plain checkpointing: unsloth @015bdef0 models/_utils.py L374–378),
    /// and for inputs of more than 1,048,576 elements (unsloth-zoo @ce232d6c
    /// gradient_checkpointing.py MINIMUM_SIZE, L692–694, L753–770).
    public func offloadsBlockInputs(batch: Int, seq: Int) -> Bool {
        guard checkpointing, training.checkpointStyle == .offloaded, training.seq >= 512 else { return false }
        return Double(batch) * Double(lengths(seq: seq).sq) * Double(arch.hiddenSize) > Double(1 << 20)
    }

    /// GPUs, sharding and offload: the persistent components above are per GPU.
    public private(set) var scale: ScaleOptions
    /// The same components on one unsharded GPU (what collectives and checkpoints move).
    public private(set) var unsharded: (weights: Int, trainableWeights: Int, gradients: Int, optimizerStates: Int, masterWeights: Int)
    /// Master weights and optimizer states without and with DeepSpeed's ZeRO, which keeps an
    /// fp32 master copy and fp32 Adam states even for pure bf16/fp16 training (its bf16 and
    /// fp16 optimizers: `runtime/bf16_optimizer.py`, `runtime/zero/stage_1_and_2.py`).
    private var optimizerPlain = (master: 0, states: 0), optimizerZeRO = (master: 0, states: 0)
    /// Bytes held in host RAM by offload, over all GPUs of the run.
    public private(set) var hostBytes: Int
    /// A full fine-tune's reference model (unsharded; in `frozenWeights`): DPO and KTO load
    /// a second copy in the policy's dtype (dpo_trainer.py L916–927: `create_model_from_path(…,
    /// dtype=self.model.dtype)`), GRPO with β ≠ 0 likewise; with PEFT the reference is the
    /// base with the adapter disabled, no copy.
    public private(set) var referenceWeights = 0
    /// Bytes of one token's keys and values in Transformers' cache (GRPO's generate).
    public private(set) var generationKVPerToken = 0
    /// Sharded runs: the weights gathered while a layer runs (forward and backward) and
    /// the full gradient of the block being reduce-scattered (backward).
    private(set) var gatherBytes: Int, gradientBucketBytes: Int
    /// Unsharded pageable optimizer bytes (paged 8-bit AdamW).
    private var unshardedPageable = 0

    /// Why `method` cannot train under the training options' techniques (a kernel stack or
    /// checkpointing style that serves other methods only), or nil. Planning refuses it; a
    /// plan of every method skips it with this reason.
    public static func methodRefusal(_ method: Method, training t: TrainingOptions) -> PlanText? {
        if t.kernels == .unsloth && (method.spec.wrapper != .lowRank || method.spec.trainsBase) {
            return "Unsloth's kernels run LoRA and QLoRA only (for \(method.title) it runs its torch.compile'd Transformers code, whose saved tensors cannot be derived): plan with \(setting: .kernels, "none")"
        }
        if t.checkpointStyle == .selective && t.gradCheckpointing && !method.spec.trainsBase {
            return "TRL 1.16's selective checkpointing fails with a PEFT model (TRL wraps the PeftModel's gradient_checkpointing_enable, which Transformers 5.25 does not call: \"Unexpected keyword arguments: selective\"); plan it with full fine-tuning, or \(setting: .checkpointing, "non-reentrant")"
        }
        return nil
    }

    /// Why the training options' techniques cannot run at `scale`, or nil (the search skips
    /// such scales; planning refuses them).
    public static func scaleRefusal(_ t: TrainingOptions, scale: ScaleOptions) -> PlanText? {
        if t.optimizerInBackward && (scale.gpus > 1 || scale.sharding != .none) {
            return "the optimizer step in backward runs in one process here (Transformers' layerwise optimizers refuse distributed training): plan it on one GPU without \(field: .sharding)"
        }
        if t.gradCheckpointing && t.checkpointStyle == .selective && scale.sharding == .fsdp {
            return "under FSDP the Trainer checkpoints with FSDP's own wrapper, which TRL's selective checkpointing does not reach; plan \(setting: .checkpointing, "selective") without \(setting: .sharding, "fsdp")"
        }
        if t.kernels == .unsloth && scale.sharding.shardsParameters {
            return "Unsloth's fused LoRA kernels read the base weights directly, which parameter sharding (ZeRO-3, FSDP) leaves as shards: plan \(setting: .kernels, "unsloth") without them"
        }
        return nil
    }

    /// Refuses a kernel stack, loss or checkpointing style the family or method cannot run with.
    /// What the pinned TRL cannot run, or runs otherwise than planned, under a trainer.
    static func checkTrainer(_ t: TrainingOptions, method: Method) throws {
        let k = t.trainer.kind
        guard k != .sft else { return }
        if k.fusedHead && t.loss != .chunked {
            throw PlanError.conflict("\(k.title) scores log-probabilities through TRL's fused LM head (TRL 1.16 fused_lm_head=True): plan \(setting: .loss, "chunked"), the default under \(field: .trainer)")
        }
        if k.fullLogits && t.loss != .standard {
            throw PlanError.conflict("\(k.title) takes the model's full logits (TRL 1.16's experimental trainer has no other loss path): plan \(setting: .loss, "standard"), the default for it")
        }
        if t.kernels == .unsloth {
            throw PlanError.conflict("Unsloth's patched \(k.title) trainer is not modelled: plan \(setting: .kernels, "none") or liger (TRL's use_liger_kernel)")
        }
        if t.paddingFree {
            throw PlanError.conflict("\(k.title) batches are padded (DPOConfig's padding_free falls back to padding in TRL 1.16; the others have none): plan them without packing")
        }
        if t.activationOffloading && ![.dpo, .kto].contains(k) {
            // activation_offloading is a field of SFTConfig, DPOConfig and KTOConfig only (TRL 1.16)
            throw PlanError.conflict("TRL's \(k.title) trainer has no activation offloading (only SFT, DPO and KTO's configs do): plan without \(field: .activationOffloading)")
        }
        if t.optimizerInBackward {
            throw PlanError.conflict("\(field: .optimizerInBackward) is not wired into TRL's \(k.title) trainer: plan without it")
        }
        if k == .grpo, let c = t.trainer.completion, c >= t.seq {
            throw PlanError.invalidSetting(.maxCompletion, value: "\(c)", accepted: "fewer tokens than the row (\(field: .seq) \(t.seq)), which holds the prompt and the completion")
        }
    }

    static func checkKernels(_ arch: Architecture, account: ParameterAccount, methodOptions o: MethodOptions, training t: TrainingOptions) throws {
        let family = arch.family.rawValue
        switch t.kernels {
        case .none: break
        case .liger:
            guard let patch = arch.family.spec.liger else {
                throw PlanError.conflict("peft-plan does not model Liger-Kernel's (@ead96b61) kernels for \(family); plan with \(setting: .kernels, "none")")
            }
            if patch.fusedMoE {
                throw PlanError.conflict("Liger replaces \(family)'s experts with its fused MoE function, which peft-plan does not model yet (and which fails in forward with LoRA on the experts); plan with \(setting: .kernels, "none")")
            }
        case .unsloth:
            guard arch.family.spec.unslothKernels else {
                throw PlanError.conflict("Unsloth runs its own kernels for llama, mistral, qwen2, qwen3, gemma and gemma2 only; \(family) goes through its torch.compile'd Transformers code, whose saved tensors cannot be derived: plan with \(setting: .kernels, "none") or liger")
            }
            if let why = methodRefusal(account.method, training: t) { throw PlanError.conflict(why) }
            if o.loraDropout > 0 {
                throw PlanError.conflict("Unsloth patches no layer when lora_dropout > 0 (models/llama.py patch_peft_model): plan with \(setting: .loraDropout, "0") or \(setting: .kernels, "none")")
            }
            if o.dora {
                throw PlanError.conflict("Unsloth's fused LoRA kernels leave DoRA layers to PEFT: plan DoRA with \(setting: .kernels, "none")")
            }
            if t.precision == .fp32 {
                throw PlanError.conflict("Unsloth loads the model in 16 bits: plan with \(setting: .precision, "bf16") or fp16")
            }
            if t.loss != .unsloth {
                throw PlanError.conflict("Unsloth computes the loss with its own fused cross-entropy: plan with \(setting: .loss, "unsloth") (the default under \(setting: .kernels, "unsloth"))")
            }
        }
        if t.loss == .unsloth && t.kernels != .unsloth {
            throw PlanError.conflict("\(setting: .loss, "unsloth") is Unsloth's own loss: plan it with \(setting: .kernels, "unsloth")")
        }
        if let why = methodRefusal(account.method, training: t) { throw PlanError.conflict(why) }
        if t.checkpointStyle == .offloaded && t.gradCheckpointing && t.activationOffloading {
            throw PlanError.conflict("Unsloth's offloaded checkpointing and TRL's activation offloading both move the blocks' tensors to the host; plan one of them")
        }
        if t.kernels == .liger && t.loss == .standard {
            throw PlanError.conflict("with \(setting: .kernels, "liger") and the standard loss Transformers' Trainer would also install Liger's fused linear cross-entropy: plan \(setting: .loss, "chunked") (TRL's SFTTrainer, the default under Liger's kernels) or \(setting: .loss, "liger")")
        }
        if t.checkpointStyle == .offloaded && t.kernels != .unsloth {
            throw PlanError.conflict("offloaded checkpointing is Unsloth's (use_gradient_checkpointing=\"unsloth\"): plan it with \(setting: .kernels, "unsloth")")
        }
    }

    public init(arch: Architecture, method: Method, methodOptions: MethodOptions, training: TrainingOptions,
                runtime: RuntimeProfile = .hfCUDA, scale: ScaleOptions = ScaleOptions()) throws {
        try self.init(arch: arch, account: ParameterAccounting.account(arch, method: method, options: methodOptions),
                      methodOptions: methodOptions, training: training, runtime: runtime, scale: scale)
    }

    public init(arch: Architecture, account: ParameterAccount, methodOptions: MethodOptions, training: TrainingOptions,
                runtime: RuntimeProfile = .hfCUDA, scale: ScaleOptions = ScaleOptions()) throws {
        self.arch = arch
        self.account = account
        self.methodOptions = methodOptions
        self.training = training
        self.runtime = runtime
        activationScale = (runtime.activationScale[account.method.rawValue] ?? 1) * (training.compiledActivationFactor ?? 1)
        if let f = training.compiledActivationFactor, !(f >= 0.05 && f <= 2) {
            throw PlanError.invalidSetting(.compileActivationFactor, value: Units.plain(f), accepted: "a factor from 0.05 to 2 (measured saved bytes under torch.compile ÷ without it; docs/kernels.md lists some)")
        }
        let method = account.method
        let p = training.precision
        let spec = method.spec
        if let why = arch.failingMethods[method] {
            throw PlanError.conflict("\(method.title) fails in training's forward on \(arch.family.rawValue) (Transformers 5.25, PEFT 0.21): \(why); plan another method")
        }
        let failing = arch.family.spec.loraFailingModules
        if !failing.isEmpty, spec.wrapper == .lowRank,
           let hit = account.wrapped.first(where: { failing[String($0.module.name.split(separator: ".").last ?? "")] != nil }) {
            let leaf = String(hit.module.name.split(separator: ".").last ?? "")
            let others = arch.blockLinearNames(excluding: Set(failing.keys))
            throw PlanError.invalidTargets(method: method.rawValue, reason: """
                PEFT wraps \(leaf) (\(failing[leaf] ?? leaf)) as a plain Linear, and LoRA's update then fails in \
                training's forward (Transformers 5.25, PEFT 0.21); leave it out of the targets \
                (every other Linear: \(others.joined(separator: ",")))
                """)
        }
        let adapters16 = account.method.adaptersInModelDtype(methodOptions)
        if adapters16 && ![.bf16, .fp16].contains(p) {
            throw PlanError.conflict("\(setting: .adapterDtype, "model") needs a pure 16-bit \(field: .precision) (bf16 or fp16): under mixed precision the Trainer keeps trainable weights in fp32, and fp32 training keeps fp32 adapters")
        }
        if spec.quantisesBase && methodOptions.qloraRest == .model && [.mixedBF16, .mixedFP16].contains(p) {
            throw PlanError.conflict("\(setting: .qloraRest, "model") needs a pure 16-bit \(field: .precision) (bf16 or fp16): under mixed precision the model is loaded in fp32, so its unquantised weights are fp32")
        }
        if spec.refusesCheckpointing && training.gradCheckpointing {
            throw PlanError.refusesCheckpointing(method)
        }
        checkpointing = spec.checkpointing(requested: training.gradCheckpointing)

        // Weights: MemoryComponents documents each formula.
        try Self.checkKernels(arch, account: account, methodOptions: methodOptions, training: training)
        if training.optimizerInBackward && training.gradAccum > 1 {
            throw PlanError.conflict("with the optimizer step in backward each gradient is freed as soon as it is made, so none can accumulate over micro-batches: plan \(setting: .gradAccum, "1") (Transformers' layerwise optimizers refuse accumulation too)")
        }
        if let why = Self.scaleRefusal(training, scale: scale) { throw PlanError.conflict(why) }
        try Self.checkTrainer(training, method: method)
        // The model's own dtype: fp32 under mixed precision (the Trainer autocasts an fp32 model), in
        // which TRL loads the reference and generate, outside autocast, fills its cache.
        let modelBytes = p.hasMasterWeights ? 4 : p.bytes
        referenceWeights = training.trainer.referenceForward && spec.trainsBase ? arch.totalParams * modelBytes : 0
        generationKVPerToken = training.trainer.kind == .grpo ? Generation.kvBytesPerToken(arch, bytes: modelBytes, vllm: false) : 0
        let frozen = MemoryComponents.frozenWeights(arch, account: account, precision: p, options: methodOptions, kernels: training.kernels)
            + referenceWeights
        let trainable = MemoryComponents.trainableWeights(account, precision: p, options: methodOptions)
        let master = MemoryComponents.masterWeights(account, precision: p)
        let grads = MemoryComponents.gradients(account, precision: p, options: methodOptions)
        let shapes = MemoryComponents.trainableShapes(arch, account: account)
        let sizes = shapes.map(\.numel).sorted(by: >)
        let tiedTrained = spec.trainsBase && (arch.module(.head)?.tied ?? false)
        largestTrainableElements = (sizes.first ?? 0) + (tiedTrained && sizes.count > 1 ? sizes[1] : 0)
        // torch's optimizers keep states in the parameter's dtype
        let stateBytes = spec.trainsBase ? (p.hasMasterWeights ? 4 : p.bytes) : account.method.adapterElementBytes(methodOptions, precision: p)
        let states = MemoryComponents.optimizerStates(shapes, optimizer: training.optimizer, stateBytes: stateBytes)
        let pageable = training.optimizer == .pagedAdamw8bit
            ? MemoryComponents.optimizerStates(shapes.filter { $0.numel >= 100_000 }, optimizer: .adamw8bit, stateBytes: stateBytes) : 0
        let pZeRO: Precision = p == .bf16 ? .mixedBF16 : (p == .fp16 ? .mixedFP16 : p)
        let statesZeRO = MemoryComponents.optimizerStates(shapes, optimizer: training.optimizer,
                                                          stateBytes: spec.trainsBase ? (pZeRO.hasMasterWeights ? 4 : pZeRO.bytes) : 4)
        optimizerPlain = (master, states)
        // DeepSpeed's 16-bit optimizers keep an fp32 master copy of 16-bit adapters too
        optimizerZeRO = (adapters16 && pZeRO.hasMasterWeights ? account.trainableParams * 4 : MemoryComponents.masterWeights(account, precision: pZeRO), statesZeRO)
        self.scale = scale
        unsharded = (frozen + trainable, trainable, grads, states, master)
        unshardedFrozen = frozen
        unshardedPageable = pageable
        (frozenWeights, trainableWeights, masterWeights, gradients, optimizerStates, pageableOptimizerBytes) = (0, 0, 0, 0, 0, 0)
        (hostBytes, gatherBytes, gradientBucketBytes) = (0, 0, 0)
        let headParams = arch.module(.head).map { $0.inFeatures * $0.outFeatures } ?? 0
        headGradients = spec.trainsBase ? headParams * p.bytes : 0
        headInFeatures = arch.module(.head)?.inFeatures ?? arch.hiddenSize
        if training.loss != .standard, let head = arch.module(.head), account.wrapped.contains(where: { $0.module.key == head.key }) {
            throw PlanError.conflict("\(setting: .loss, training.loss.rawValue) reads lm_head's weight directly, so an adapter on lm_head would be left out of the loss; take lm_head out of \(field: .loraTargets) or use \(setting: .loss, "standard")")
        }
        let largest = arch.modules.filter(\.perLayer).map(\.weightElements).max() ?? 0
        var transient = spec.quantisesBase ? largest * p.bytes : 0
        if methodOptions.dora && spec.wrapper == .lowRank {
            // DoRA materialises, per wrapped module in forward, an identity (in × in) in the
            // adapter's dtype pushed through lora_A and lora_B and the combined weight (out × in)
            // for its norm.
            let eye = account.method.adapterElementBytes(methodOptions, precision: p)
            let dora = account.wrapped.map { eye * ($0.module.inFeatures * $0.module.inFeatures + 2 * $0.module.weightElements) }.max() ?? 0
            transient += dora
        }
        dequantTransient = transient

        let graph = ForwardGraph(c: GraphContext(arch: arch, account: account, options: methodOptions, training: training, runtime: runtime))
        let r = graph.run(layers: arch.numLayers)
        if let role = graph.tape.missing.min(by: { $0.rawValue < $1.rawValue }) {
            throw PlanError.incompleteArchitecture(model: arch.name, role: role)
        }
        pre = r.pre; layer0 = r.layer0; layer1 = r.layer1; steady = r.steady; head = r.head; logitsBill = r.logits
        steadyKinds = r.steadyKinds
        checkpointInputPerToken = r.checkpointInput
        cache = r.cache
        forwardFlops = r.forwardFlops
        backwardFlops = r.backwardFlops
        attentionOutputs = (1...3).map { graph.tape.attentionOutputs[$0] }
        // TRL's selective checkpointing takes the attention op's outputs from its cache in the
        // recompute: those ops' FLOPs are not run again (the SDPA kernels its policy matches;
        // eager and math attention, and other token-pair work such as an indexer's, rerun).
        // Full fine-tuning only (PEFT is refused), whose attention is never in the fp32 part.
        if checkpointing && training.checkpointStyle == .selective {
            let tape = graph.tape
            recomputedFlops = (0..<5).map { r.recomputedFlops[$0] - tape.cachedAttentionFlops[$0] }
            flashFlops = (r.flashFlops.forward, r.flashFlops.backward, (0..<5).map { r.flashFlops.recomputed[$0] - tape.cachedFlashFlops[$0] })
        } else {
            recomputedFlops = r.recomputedFlops
            flashFlops = r.flashFlops
        }
        fp32Flops = r.fp32Flops
        applyScale(scale)
    }

    private var unshardedFrozen = 0
    /// Elements of the gradients alive at once with the optimizer step in backward: the
    /// largest trainable tensor's; with a trained tied embedding, that embedding's (autograd
    /// holds the head's share of its gradient from the start of backward until the
    /// embedding's share arrives at the end) plus the largest other.
    private var largestTrainableElements = 0

    /// Sets the per-GPU persistent components for `scale` from the unsharded ones.
    private mutating func applyScale(_ scale: ScaleOptions) {
        self.scale = scale
        let zero = (scale.sharding.zeroStage ?? 0) > 0
        (unsharded.masterWeights, unsharded.optimizerStates) = zero ? optimizerZeRO : optimizerPlain
        let sh = MemoryComponents.sharded(arch, frozen: unshardedFrozen, trainable: unsharded.trainableWeights,
                                          master: unsharded.masterWeights, gradients: unsharded.gradients,
                                          optimizerStates: unsharded.optimizerStates, trainableParams: account.trainableParams,
                                          scale: scale)
        frozenWeights = sh.frozen
        trainableWeights = sh.trainable
        masterWeights = sh.master
        gradients = sh.gradients
        if training.optimizerInBackward && account.trainableParams > 0 {
            // each parameter's hook steps its optimizer and sets its gradient to None as soon as
            // the gradient is accumulated: at most the largest one is alive
            gradients = min(gradients, largestTrainableElements * (unsharded.gradients / account.trainableParams))
        }
        optimizerStates = sh.optimizerStates
        pageableOptimizerBytes = scale.offload == .none
            ? MemoryComponents.shard(unshardedPageable, over: scale.sharding.shardsOptimizer ? scale.gpus : 1) : 0
        hostBytes = sh.host
        gatherBytes = sh.gather
        gradientBucketBytes = sh.bucket
    }

    /// The same plan spread over GPUs as `scale` says: only the persistent components and
    /// the sharding buffers change, so searches over GPU counts stay cheap.
    public func scaled(_ scale: ScaleOptions) -> PlanContext {
        var copy = self
        copy.applyScale(scale)
        return copy
    }

    /// Sums per-stage bills over the whole model: embedding, every block, head.
    func overModel(_ stages: [ByteBill], batch: Int, sq: Int, skv: Int) -> Double {
        let l = Double(arch.numLayers)
        func at(_ i: Int) -> Double { stages[i].bytes(batch: batch, sq: sq, skv: skv) }
        return at(0) + at(1) + (l >= 2 ? at(2) : 0) + (l >= 3 ? (l - 2) * at(3) : 0) + at(4)
    }

    /// Matmul FLOPs of one training step of one micro-batch: forward, backward (activation
    /// gradients where needed, weight gradients for trainable weights only), and the
    /// forward recomputed by gradient checkpointing, counted as PyTorch's FlopCounterMode
    /// counts (2 per multiply-add of every mm/bmm; the flash kernel's backward as dQ, dK,
    /// dV and dP).
    /// The shape a micro-batch of `batch` sequences of `seq` tokens runs as: one row of
    /// batch × seq tokens under padding-free batches where attention runs over the row (SDPA
    /// and eager attention: TRL 1.16's collator makes one row with position ids, and
    /// Transformers 5.25 masks it block-diagonally or, for prompt-learning methods, whose
    /// position ids PEFT drops, not at all — checked on the CPU with the real collator; the
    /// virtual tokens are added to the row once); the sequences as they are otherwise
    /// (flash_attention_2's varlen path attends per sequence).
    public func layout(batch: Int, seq: Int) -> (batch: Int, seq: Int) {
        let batch = training.trainer.rows(batch)
        guard training.paddingFree, training.attention != .flash else { return (batch, seq) }
        let row = batch.multipliedReportingOverflow(by: seq)
        return row.overflow ? (batch, seq) : (1, row.partialValue)
    }

    public func flops(batch: Int, seq: Int) -> (forward: Double, backward: Double, recompute: Double) {
        stepFlops(batch: batch, seq: seq, forwardFlops, backwardFlops, recomputedFlops)
    }

    /// The part of ``flops(batch:seq:)`` that runs in fp32 (see ``Tape``): charged at the
    /// GPU's fp32 rate by the time model.
    public func fp32Flops(batch: Int, seq: Int) -> (forward: Double, backward: Double, recompute: Double) {
        stepFlops(batch: batch, seq: seq, fp32Flops.forward, fp32Flops.backward, fp32Flops.recomputed)
    }

    /// The flash-attention part of ``flops(batch:seq:)``: counted over the full square as
    /// PyTorch counts it, of which a causal kernel executes about half.
    public func flashAttentionFlops(batch: Int, seq: Int) -> (forward: Double, backward: Double, recompute: Double) {
        stepFlops(batch: batch, seq: seq, flashFlops.forward, flashFlops.backward, flashFlops.recomputed)
    }

    private func stepFlops(batch: Int, seq: Int, _ f: [ByteBill], _ b: [ByteBill], _ r: [ByteBill])
        -> (forward: Double, backward: Double, recompute: Double) {
        let (batch, seq) = layout(batch: batch, seq: seq)
        let (sq, skv) = lengths(seq: seq)
        let forward = overModel(f, batch: batch, sq: sq, skv: skv)
        let backward = overModel(b, batch: batch, sq: sq, skv: skv)
        var recompute = 0.0
        if checkpointing {
            // Reentrant checkpointing reruns each block's whole forward; non-reentrant stops at
            // the block's last saved tensor.
            var blocksOnly = recomputesWholeBlocks ? f : r
            blocksOnly[0] = ByteBill(); blocksOnly[4] = ByteBill()
            recompute = overModel(blocksOnly, batch: batch, sq: sq, skv: skv)
        }
        return (forward, backward, recompute)
    }

    /// Query and attended lengths for a sequence of `seq` tokens: prompt tuning adds its
    /// virtual tokens to the sequence, prefix tuning to the attended keys only.
    public func lengths(seq: Int) -> (sq: Int, skv: Int) {
        switch account.method.spec.virtualTokens {
        case .input?: return (seq + methodOptions.promptTokens, seq + methodOptions.promptTokens)
        case .keysValues?: return (seq, seq + methodOptions.prefixTokens)
        case nil: return (seq, seq)
        }
    }

    /// Saved activations of all blocks (no checkpointing), excluding logits.
    func blockActivations(batch: Int, sq: Int, skv: Int) -> Double {
        perLayer([layer0, layer1, steady], batch: batch, sq: sq, skv: skv)
    }

    /// A per-layer quantity (layers 0, 1 and the steady mean) summed over the model's layers.
    func perLayer(_ bills: [ByteBill], batch: Int, sq: Int, skv: Int) -> Double {
        let l = arch.numLayers
        var total = bills[0].bytes(batch: batch, sq: sq, skv: skv)
        if l >= 2 { total += bills[1].bytes(batch: batch, sq: sq, skv: skv) }
        if l >= 3 { total += Double(l - 2) * bills[2].bytes(batch: batch, sq: sq, skv: skv) }
        return total
    }

    /// One block's activations (the steady-state block), as recomputed under checkpointing.
    func oneBlock(batch: Int, sq: Int, skv: Int) -> Double {
        let l = arch.numLayers
        if l >= 3 { return steadyKinds.map { $0.bytes(batch: batch, sq: sq, skv: skv) }.max() ?? steady.bytes(batch: batch, sq: sq, skv: skv) }
        return (l == 2 ? layer1 : layer0).bytes(batch: batch, sq: sq, skv: skv)
    }

    /// The phase totals of one step, as plain numbers (the planner's hot path).
    struct Phases {
        var activations, logits, forward, backwardStart, backwardEnd, optimizer: Double
        /// Saved activations in host memory (activation offloading).
        var offloaded = 0.0
        /// GRPO's generation in the training process (0 otherwise).
        var generation = 0.0
        var generationCache = 0.0
        var peak: Double { max(forward, backwardStart, backwardEnd, optimizer, generation) }
    }

    func phases(batch: Int, seq: Int) -> Phases {
        let (batch, seq) = layout(batch: batch, seq: seq)
        let (sq, skv) = lengths(seq: seq)
        let tokens = Double(batch) * Double(sq)
        let a = Double(training.precision.bytes)
        // QLoRA's lm_head is fp32 after prepare_model_for_kbit_training; stacks that skip it
        // (and Unsloth) leave it 16-bit.
        let fp32Head = account.method.quantisedRestBytes(methodOptions, precision: training.precision, kernels: training.kernels) == 4
        let v = Double(arch.vocabSize)
        let k = activationScale
        let preBytes = k * pre.bytes(batch: batch, sq: sq, skv: skv)
        let outer = preBytes + k * head.bytes(batch: batch, sq: sq, skv: skv)
        let blocks: Double
        // At the end of backward the first block is still being worked on: its saved
        // activations (recomputed from its checkpointed input under checkpointing) are alive.
        let lastBlock: Double
        if checkpointing {
            // Each block keeps only its input; backward recomputes one block at a time.
            let input = tokens * Double(checkpointInputPerToken)
            blocks = k * Double(arch.numLayers) * input
                + (training.checkpointStyle == .selective ? k * perLayer(attentionOutputs, batch: batch, sq: sq, skv: skv) : 0)
            lastBlock = k * (input + oneBlock(batch: batch, sq: sq, skv: skv))
        } else {
            blocks = k * blockActivations(batch: batch, sq: sq, skv: skv)
            lastBlock = k * layer0.bytes(batch: batch, sq: sq, skv: skv)
        }
        // TRL 1.16 trl/models/activation_offloading.py (OffloadActivations.pack_tensor): every
        // saved tensor of 1,024 bytes or more on the GPU that is not a parameter goes to pinned
        // host memory; the output head's own forward runs under a NoOpManager
        // (get_act_offloading_ctx_manager), and with streams the last max_fwd_stash_size = 5
        // offloaded tensors stay referenced until later ones are packed, so the loss's saved
        // tensors (copied to the host too, not counted there) end forward on the GPU. Here: the
        // blocks' saved tensors go to the host; one block's (or one checkpointed input and the
        // block being recomputed) stays in flight, the forward stash and the tensors brought
        // back in backward; the parts outside the blocks and the logits stay.
        var offloaded = 0.0
        var blocksOnGPU = blocks
        if offloadsBlockInputs(batch: batch, seq: seq) {
            // UnslothCheckpointFunction (unsloth-zoo @ce232d6c gradient_checkpointing.py
            // L753–885): each block's input is copied into its own pinned host buffer (grown to the
            // exact size, never shrunk: the first pass offloads every layer's) and the block runs
            // under no_grad; the last layer keeps its input on the GPU after the first pass, and
            // backward copies each input back into a shared GPU buffer (L914–984), two of them
            // (double buffering) once 512 MiB are free after the first backward (L788–804), as
            // they usually are then, before rerunning the block. On the GPU: the last input and
            // the two staging buffers.
            let input = k * tokens * Double(checkpointInputPerToken)
            blocksOnGPU = min(blocks, 3 * input)
            offloaded = blocks
        } else if training.activationOffloading {
            let window = checkpointing ? k * Double(checkpointInputPerToken) * tokens : k * oneBlock(batch: batch, sq: sq, skv: skv)
            blocksOnGPU = min(blocks, window)
            offloaded = blocks - blocksOnGPU
        }
        let activations = outer + blocksOnGPU
        let logits = k * logitsBill.bytes(batch: batch, sq: sq, skv: skv)
        // The KV cache Transformers fills during a training forward: alive until the
        // outputs are dropped (before backward), where not already saved for backward.
        let l = Double(arch.numLayers)
        let kvCache = cache[0].bytes(batch: batch, sq: sq, skv: skv)
            + (l >= 2 ? cache[1].bytes(batch: batch, sq: sq, skv: skv) : 0)
            + (l >= 3 ? (l - 2) * cache[2].bytes(batch: batch, sq: sq, skv: skv) : 0)

        // Transients of the loss over the vocabulary (MemoryComponents.lossTransients).
        let loss = MemoryComponents.lossTransients(training.loss, tokens: tokens, vocab: v, hidden: Double(headInFeatures),
                                                   logitsBytes: fp32Head ? 4.0 : a, actBytes: a,
                                                   headTrainable: headGradients > 0,
                                                   fp32HeadUnderAutocast: fp32Head && runtime.autocast)
        let forwardLogits = loss.forward
        let backwardLogits = loss.backward
        let workspace = MemoryComponents.blockGradientWorkspace(arch, tokens: tokens, actBytes: a)
        let dequant = Double(dequantTransient)

        let persistent = Double(frozenWeights + trainableWeights + masterWeights + optimizerStates - pageableOptimizerBytes)
        let g = Double(gradients)
        let accumulated = training.gradAccum > 1 ? g : 0
        let gather = Double(gatherBytes), bucket = Double(gradientBucketBytes)
        // GRPO with Transformers' generate (grpo_trainer.py `_generate_single_turn`): each
        // process generates its whole generation batch (per_device_train_batch_size ×
        // steps_per_generation, which defaults to gradient_accumulation_steps) at once, under
        // no_grad with checkpointing off, before the step; the gradients were freed by the last
        // step's zero_grad. The cache holds prompt + completion − 1 tokens per row (measured on
        // the CPU: tiny model, 4 rows of 16 + 8 tokens, 753,664 bytes); the prefill's working
        // set is taken as one block's feed-forward intermediates over the prompts, and sampling
        // as two fp32 vocabulary rows per sequence (the last logits and their softmax).
        var generation = 0.0, generationCache = 0.0
        if training.trainer.kind == .grpo && training.trainer.generation == .transformers {
            let rows = Double(training.trainer.rows(batch)) * Double(max(1, training.gradAccum))
            let cached = Double(max(0, seq - 1))
            generationCache = rows * cached * Double(generationKVPerToken)
            let prompt = Double(max(1, seq - (training.trainer.completion ?? 0)))
            let prefill = MemoryComponents.blockGradientWorkspace(arch, tokens: rows * prompt, actBytes: a)
            // Under ZeRO-3 TRL gathers every parameter for generate (ds3_gather_for_generation,
            // True by default: grpo_config.py L498, models/utils.py L140–148), on every GPU.
            let gathered = scale.sharding == .zero3 ? Double(max(0, unsharded.weights - frozenWeights - trainableWeights)) : 0
            generation = persistent + gathered + generationCache + max(prefill, rows * v * 8) + dequant
        }
        return Phases(
            activations: activations, logits: logits,
            forward: persistent + accumulated + activations + logits + forwardLogits + dequant + kvCache + gather,
            // Liger's head gradient was made in forward and is among the saved tensors.
            backwardStart: persistent + max(accumulated, training.loss.gradientsInForward ? 0 : Double(headGradients)) + activations + logits
                + backwardLogits + gather + bucket,
            backwardEnd: persistent + g + preBytes + lastBlock + workspace + dequant + gather + bucket,
            optimizer: persistent + g, offloaded: offloaded, generation: generation, generationCache: generationCache)
    }

    /// Largest byte count the model reports (1 EiB); anything above saturates here, far
    /// beyond every GPU, so searches stay monotone and conversions never trap.
    public static let byteLimit = 1 << 60

    static func bytes(_ d: Double) -> Int {
        d >= Double(byteLimit) ? byteLimit : Int(max(0, d))
    }

    /// Whether the plan at `batch` × `seq` stays below ``byteLimit``.
    public func representable(batch: Int, seq: Int) -> Bool {
        phases(batch: batch, seq: seq).peak * runtime.reservedOverAllocated < Double(Self.byteLimit / 2)
    }

    /// What `max_memory_reserved` would show for an allocated peak (the runtime's
    /// allocator factor), the one place reserved bytes are derived.
    func reserved(allocated: Int) -> Int {
        Self.bytes((Double(allocated) * runtime.reservedOverAllocated).rounded(.up))
    }

    /// `device_total` alone, for searches and sweeps.
    public func deviceTotal(batch: Int, seq: Int) -> Int {
        reserved(allocated: Self.bytes(phases(batch: batch, seq: seq).peak.rounded())) + runtime.outsideAllocatorBytes
    }

    /// The memory of one step at `batch` × `seq`.
    public func memory(batch: Int, seq: Int) -> MemoryBreakdown {
        let p = phases(batch: batch, seq: seq)
        let forward = p.forward, backwardStart = p.backwardStart, backwardEnd = p.backwardEnd, optimizer = p.optimizer
        let backward = max(backwardStart, backwardEnd)
        let activations = p.activations, logits = p.logits

        var m = MemoryBreakdown()
        m.frozenWeights = frozenWeights
        m.trainableWeights = trainableWeights
        m.masterWeights = masterWeights
        m.gradients = gradients
        m.optimizerStates = optimizerStates
        m.pageableBytes = pageableOptimizerBytes
        m.offloadedActivations = Self.bytes(p.offloaded.rounded(.down))
        m.activations = Self.bytes(activations.rounded(.down))
        m.logits = Self.bytes(logits.rounded(.down))
        m.forwardPeak = Self.bytes(forward.rounded())
        m.backwardPeak = Self.bytes(backward.rounded())
        m.optimizerPeak = Self.bytes(optimizer.rounded())
        m.generationPeak = Self.bytes(p.generation.rounded())
        m.generationCache = Self.bytes(p.generationCache.rounded())
        m.referenceWeights = MemoryComponents.shard(referenceWeights, over: scale.sharding.shardsParameters ? scale.gpus : 1)
        let peak = max(forward, backward, optimizer, p.generation)
        var live: LiveComponents = .persistent
        if p.generation > max(forward, backward, optimizer) {
            m.peakPhase = .generation
        } else if peak == forward {
            m.peakPhase = .forward
            live.insert(.saved)
            if training.gradAccum > 1 { live.insert(.gradients) }
        } else if peak == backward {
            m.peakPhase = .backward
            if backwardStart >= backwardEnd {
                live.insert(.saved)
                if training.gradAccum > 1 { live.insert(.gradients) }
            } else {
                live.insert(.gradients)
            }
        } else {
            m.peakPhase = .optimizer
            live.insert(.gradients)
        }
        var liveSum = frozenWeights + trainableWeights + masterWeights + optimizerStates - pageableOptimizerBytes
        if live.contains(.gradients) { liveSum += gradients }
        if live.contains(.saved) { liveSum += m.activations + m.logits }
        m.live = live
        m.allocatedPeak = Self.bytes(peak.rounded())
        m.transient = max(0, m.allocatedPeak - liveSum)
        m.allocatedPeak = liveSum + m.transient
        m.reservedPeak = reserved(allocated: m.allocatedPeak)
        m.runtimeOverhead = runtime.outsideAllocatorBytes
        m.deviceTotal = m.reservedPeak + m.runtimeOverhead
        return m
    }
}

/// One small function per memory component, each with its formula's source.
public enum MemoryComponents {
    /// `bytes` split over `n` GPUs, rounded up (each rank holds an equal padded shard).
    public static func shard(_ bytes: Int, over n: Int) -> Int { n <= 1 ? bytes : (bytes + n - 1) / n }

    /// Per-GPU persistent components under ZeRO/FSDP and offload, the host RAM offload
    /// takes, and the buffers sharding adds while layers run.
    /// - ZeRO (Rajbhandari et al., SC'20, §5): stage 1 partitions optimizer states (with
    ///   the fp32 master weights), stage 2 also gradients, stage 3 also parameters; FSDP
    ///   FULL_SHARD like stage 3, frozen weights included (QLoRA's 4-bit weights shard
    ///   too once stored as bf16 via `bnb_4bit_quant_storage`; same bytes).
    /// - Parameter sharding gathers, while a unit runs, its full weights: with Transformers'
    ///   TRANSFORMER_BASED_WRAP each decoder block is a unit and the root unit (embeddings,
    ///   final norm, lm_head) stays gathered through forward and backward; with prefetching
    ///   two blocks are gathered at once (FSDP's BACKWARD_PRE / forward_prefetch).
    /// - Gradient sharding reduce-scatters a unit's full gradient after its backward: one
    ///   block's gradients are alive unsharded.
    /// - Offload (ZeRO-Offload, Ren et al. 2021; FSDP cpu_offload): optimizer states and
    ///   master weights live in host RAM with an fp32 copy of the gradients; `params` also
    ///   moves the 16-bit weights there.
    public static func sharded(_ arch: Architecture, frozen: Int, trainable: Int, master: Int, gradients: Int,
                               optimizerStates: Int, trainableParams: Int, scale: ScaleOptions)
        -> (frozen: Int, trainable: Int, master: Int, gradients: Int, optimizerStates: Int, host: Int, gather: Int, bucket: Int) {
        let n = scale.gpus
        let sharding = scale.sharding
        let optN = sharding.shardsOptimizer ? n : 1
        let gradN = sharding.shardsGradients ? n : 1
        let paramN = sharding.shardsParameters ? n : 1
        var out = (frozen: shard(frozen, over: paramN), trainable: shard(trainable, over: paramN),
                   master: shard(master, over: optN), gradients: shard(gradients, over: gradN),
                   optimizerStates: shard(optimizerStates, over: optN), host: 0, gather: 0, bucket: 0)
        let total = Double(max(1, arch.totalParams))
        let blockShare = Double(arch.totalParams - arch.nonBlockParams) / total / Double(max(1, arch.numLayers))
        let rootShare = Double(arch.nonBlockParams) / total
        if sharding.shardsParameters && n > 1 || scale.offload == .params {
            let weights = Double(frozen + trainable)
            out.gather = Int((weights * (rootShare + 2 * blockShare)).rounded(.up))
        }
        if sharding.shardsGradients && n > 1 {
            out.bucket = Int((Double(gradients) * blockShare).rounded(.up))
        }
        if scale.offload != .none {
            // with an fp32 copy of the gradients on the host: 4 bytes per trainable parameter
            out.host = optimizerStates + master + 4 * trainableParams
            out.optimizerStates = 0
            out.master = 0
        }
        if scale.offload == .params {
            out.host += frozen + trainable
            out.frozen = 0
            out.trainable = 0
        }
        return out
    }

    /// Base weights that do not train.
    /// - bf16/fp16/mixed: 2 bytes; fp32: 4 bytes per parameter.
    /// - QLoRA: Linear weights inside the blocks in bitsandbytes 4-bit (``nf4Bytes``);
    ///   everything else (embeddings, norms, lm_head, biases) is upcast to fp32 by
    ///   `prepare_model_for_kbit_training` (peft/utils/other.py) — not under Unsloth, whose
    ///   `prepare_model_for_training` casts only the trainable parameters (unsloth-zoo
    ///   @ce232d6c training_utils.py L376–422): the rest stays in the model's 16-bit dtype.
    public static func frozenWeights(_ arch: Architecture, account: ParameterAccount, precision: Precision, options: MethodOptions,
                                     kernels: KernelStack = .none) -> Int {
        switch account.method.spec.base {
        case .trained: return arch.visionParams * precision.bytes  // a frozen vision tower and projector
        case .quantised4bit:
            // prepare_model_for_kbit_training upcasts the rest to fp32; stacks that skip it leave it 16-bit
            return fourBitWeights(arch, doubleQuant: options.doubleQuant,
                                  restBytes: account.method.quantisedRestBytes(options, precision: precision, kernels: kernels))
        case .frozen:
            return arch.totalParams * precision.bytes
        }
    }

    /// A model loaded with bitsandbytes 4-bit: every Linear of the blocks (and of a vision tower)
    /// in 4-bit, tensor by tensor, and the rest at `restBytes` per parameter. Transformers'
    /// bitsandbytes quantizer replaces nn.Linear modules only (quantizers/quantizer_bnb_4bit.py,
    /// 5.25): Transformers v5's fused experts are 3-D parameters and stay with the rest, as the
    /// embeddings, norms and lm_head do (checked with bitsandbytes on the CPU). Training upcasts the
    /// rest to fp32; inference (serving, a colocated vLLM engine) keeps it 16-bit.
    public static func fourBitWeights(_ arch: Architecture, doubleQuant: Bool, restBytes: Int) -> Int {
        var quantised = 0
        for m in arch.modules where m.quantisedBy4Bit {
            quantised += nf4Bytes(elements: m.weightElements, doubleQuant: doubleQuant) * arch.instances(m)
        }
        return quantised + (arch.totalParams - arch.blockLinearWeightParams) * restBytes
    }

    /// bitsandbytes 4-bit storage of one tensor (NF4 and FP4 alike): two values per byte,
    /// one absmax per block of 64 — fp32, or with double quantisation uint8 plus an fp32
    /// scale per 256 absmax values and an fp32 offset (bitsandbytes `quantize_4bit`,
    /// `compress_statistics=True`).
    public static func nf4Bytes(elements n: Int, doubleQuant: Bool) -> Int {
        let blocks = (n + 63) / 64
        let packed = (n + 1) / 2
        return doubleQuant ? packed + blocks + 4 * ((blocks + 255) / 256) + 4 : packed + 4 * blocks
    }

    /// Trainable weights: the model's own in full fine-tuning (its precision), else the
    /// adapter's, which PEFT keeps in fp32 (`autocast_adapter_dtype=True`) unless LoRA's
    /// adapters are asked for in the model's dtype (``AdapterDtype/model``).
    public static func trainableWeights(_ account: ParameterAccount, precision: Precision, options: MethodOptions = MethodOptions()) -> Int {
        if account.method.spec.trainsBase { return account.trainableParams * precision.bytes }
        return account.trainableParams * account.method.adapterElementBytes(options, precision: precision)
    }

    /// Mixed precision keeps an fp32 master copy of 16-bit trainable weights (ZeRO §3).
    public static func masterWeights(_ account: ParameterAccount, precision: Precision) -> Int {
        account.method.spec.trainsBase && precision.hasMasterWeights ? account.trainableParams * 4 : 0
    }

    /// Gradients: one per trainable parameter, in the parameter's dtype.
    public static func gradients(_ account: ParameterAccount, precision: Precision, options: MethodOptions = MethodOptions()) -> Int {
        trainableWeights(account, precision: precision, options: options)
    }

    /// A trainable tensor's shape and how many of it there are.
    public struct Shape: Sendable {
        public var dims: [Int]
        public var count: Int
        public var numel: Int { dims.reduce(1, *) }
    }

    static func trainableShapes(_ arch: Architecture, account: ParameterAccount) -> [Shape] {
        guard account.method.spec.trainsBase else { return account.adapterTensors.map { Shape(dims: $0.shape, count: 1) } }
        var out: [Shape] = []
        for m in arch.modules where !m.isVision {
            let n = arch.instances(m)
            if m.tied {
                // the weight is the embedding's; a tied lm_head's own bias still trains
                if m.kind == .linear && m.bias { out.append(Shape(dims: [m.outFeatures], count: n)) }
                continue
            }
            switch m.kind {
            case .linear, .conv1d:
                out.append(Shape(dims: [m.outFeatures, m.inFeatures], count: n))
                if m.bias { out.append(Shape(dims: [m.outFeatures], count: n)) }
            case .embedding, .positionEmbedding: out.append(Shape(dims: [m.inFeatures, m.outFeatures], count: n))
            case _ where !m.shapes.isEmpty: out += m.shapes.map { Shape(dims: $0, count: n) }
            case .router:
                out.append(Shape(dims: [m.outFeatures, m.inFeatures], count: n))
                if m.bias { out.append(Shape(dims: [m.outFeatures], count: n)) }
            case .experts:
                out.append(Shape(dims: [arch.numExperts, 2 * m.outFeatures, m.inFeatures], count: n))
                out.append(Shape(dims: [arch.numExperts, m.inFeatures, m.outFeatures], count: n))
            case .norm, .parameters: out.append(Shape(dims: [m.ownParams], count: n))
            }
        }
        return out
    }

    /// Optimizer state bytes.
    /// - adamw: two states in the parameter's dtype (torch.optim.AdamW), fp32 with master weights.
    /// - adamw-8bit / paged: bitsandbytes blockwise 8-bit: 1 byte per state per element plus
    ///   an fp32 absmax per block of 256; tensors under 4096 elements keep fp32 states
    ///   (`min_8bit_size`). Paged states live in CUDA unified memory (≥ 1e5 elements).
    /// - sgd: none; sgd-momentum: one buffer; lion: one (exp_avg).
    /// - adafactor (Transformers, no first moment by default): factored second moment,
    ///   rows + columns for tensors of 2+ dimensions, full for vectors.
    public static func optimizerStates(_ shapes: [Shape], optimizer: Optimizer, stateBytes: Int) -> Int {
        var total = 0
        for s in shapes {
            let n = s.numel
            let bytes: Int
            switch optimizer {
            case .adamw: bytes = 2 * n * stateBytes
            case .adamw8bit, .pagedAdamw8bit:
                bytes = n < 4096 ? 2 * n * 4 : 2 * n + 2 * 4 * ((n + 255) / 256)
            case .sgd: bytes = 0
            case .sgdMomentum, .lion: bytes = n * stateBytes
            case .adafactor:
                if s.dims.count >= 2 {
                    let cols = s.dims.last!
                    let rows = n / cols
                    let lead = rows / s.dims[s.dims.count - 2]
                    bytes = (rows + lead * cols) * stateBytes
                } else {
                    bytes = n * stateBytes
                }
            }
            total += bytes * s.count
        }
        return total
    }

    /// The loss's transients at the end of forward and at the start of backward, beyond what
    /// it saves (which the symbolic forward counts), for `tokens` tokens, a `vocab`-wide head
    /// over `hidden` inputs, logits in `logitsBytes` (the head's compute dtype) and
    /// activations in `actBytes`:
    /// - standard (Transformers' `ForCausalLMLoss`): forward the logits and their fp32 copy
    ///   (`logits.float()`; one tensor when they are fp32 already); backward `log_softmax`'s
    ///   gradient and its input's, both fp32.
    /// - chunked (TRL 1.16.0 `trl/kernels/chunked_logprob.py`): forward one tile `mm_buf` of
    ///   min(tokens, 4,096) × min(vocab, 32,768) in the compute dtype and eight fp32 per-token
    ///   vectors (running max, sums, target logit, log-probabilities); backward the tile again,
    ///   `grad_hidden` in fp32 and its cast to the input's dtype, and for a trainable head
    ///   `grad_weight` in fp32 (its cast is the head's gradient, counted apart).
    /// - liger (Liger-Kernel @ead96b61 `ops/fused_linear_cross_entropy.py`): forward `loss_1d`
    ///   (fp32 per token), one chunk of logits (chunk = next power of two of tokens ÷
    ///   ⌈vocab ÷ hidden⌉, so about tokens × hidden elements), the chunk's `grad_logits @ weight`
    ///   before it is copied into `grad_input`, and for a trainable head the chunk's weight
    ///   gradient `mm(...)` and its `.float()` (vocab × hidden in both dtypes); backward nothing.
    /// - cce (apple/ml-cross-entropy @d42911f9 `cce.py`, `cce_backward.py`): forward `lse`,
    ///   `neg_dot` and `nll` (fp32 per token) and the valid-position index (int64); backward
    ///   `de` (zeros_like(e)); `dc` (zeros_like(c)) is the head's gradient, counted apart.
    /// Under QLoRA with autocast the head's weight is fp32 (`prepare_model_for_kbit_training`)
    /// and frozen, which autocast's cast cache does not keep: Liger's chunk matmuls cast the
    /// whole vocab × hidden weight to 16 bits for each chunk (one such copy alive in forward),
    /// and `cce.py` casts it once (`c = c.to(autocast dtype)`) and saves that copy for backward.
    public static func lossTransients(_ kind: LossKind, tokens: Double, vocab v: Double, hidden h: Double, logitsBytes ld: Double,
                                      actBytes a: Double, headTrainable: Bool,
                                      fp32HeadUnderAutocast: Bool = false) -> (forward: Double, backward: Double) {
        let castWeight = fp32HeadUnderAutocast ? v * h * 2 : 0
        switch kind {
        case .standard:
            return (tokens * v * (ld + (ld == 4 ? 0 : 4)), tokens * v * 8)
        case .chunked:
            let tile = min(tokens, 4096) * min(v, 32768) * ld
            return (tile + tokens * 8 * 4, tile + tokens * h * (4 + a) + (headTrainable ? v * h * 4 : 0))
        case .liger:
            let factor = (v / h).rounded(.up)
            var chunk = 1.0
            while chunk < (tokens / factor).rounded(.up) { chunk *= 2 }
            chunk = min(chunk, tokens)
            return (tokens * 4 + chunk * v * ld + chunk * h * a + (headTrainable ? v * h * (a + 4) : 0) + castWeight, 0)
        case .cce:
            return (tokens * (3 * 4 + 8) + castWeight, tokens * h * a + castWeight)
        case .unsloth:
            // unsloth-zoo @ce232d6c fused_losses/cross_entropy_loss.py: get_chunk_size splits the
            // rows so that one chunk's fp32 logits stay within min(half the free memory, 4 GiB)
            // (L137–171; the 4 GiB cap taken here, free memory being unknown before the run);
            // per chunk the head's 16-bit logits (L102–106) and their fp32 cross-entropy, which
            // the chunk size is set by ("target_gb specifies the max GB memory the fused loss can
            // use", L202); the chunk function is compiled by default (torch_compile=True), so the
            // eager graph's further fp32 copies are not counted: not measured on a GPU yet.
            // grad_inputs (empty_like(hidden), L442) is among the saved tensors, the head's
            // gradient where it trains.
            let fp32Logits = tokens * v * 4
            let exact = fp32Logits / Double(4 << 30)
            let chunks = exact <= 1 ? 1 : (exact / 4).rounded(.up) * 4
            let rows = (tokens / max(1, chunks)).rounded(.up)
            return (rows * v * (a + 4) + (headTrainable ? v * h * a : 0), 0)
        }
    }

    /// Activation gradients alive while one block runs backward: the feed-forward's
    /// (gradients of its intermediate, gate and up: 3 × intermediate, plus 2 × hidden)
    /// or attention's (dq, dk, dv, and flash's fp32 dq accumulator), whichever is larger.
    /// An estimate from the autograd graph, to be refined by calibration.
    public static func blockGradientWorkspace(_ arch: Architecture, tokens: Double, actBytes a: Double) -> Double {
        let inter = Double(arch.intermediateSize * max(1, arch.expertsPerToken))
        let mlp = a * tokens * (3 * inter + 2 * Double(arch.hiddenSize))
        let attn = a * tokens * Double(arch.qDim + 2 * arch.kvDim) + 4 * tokens * Double(arch.qDim)
        return max(mlp, attn)
    }
}
