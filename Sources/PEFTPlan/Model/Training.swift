import Foundation

/// Numeric precision of training.
public enum Precision: String, CaseIterable, Sendable, Codable {
    /// Pure bf16/fp16: weights, gradients and (torch) optimizer states in 16 bits.
    case bf16, fp16
    /// Everything in fp32.
    case fp32
    /// 16-bit weights and gradients with an fp32 master copy of every trainable weight
    /// and fp32 optimizer states (ZeRO paper §3: 2 + 2 + 12 bytes per parameter).
    case mixedBF16 = "mixed-bf16"
    case mixedFP16 = "mixed-fp16"

    /// Bytes of a weight, an activation and a gradient of the model itself.
    public var bytes: Int { self == .fp32 ? 4 : 2 }
    public var hasMasterWeights: Bool { self == .mixedBF16 || self == .mixedFP16 }
    /// The dtype key of a hardware profile's peak TFLOP/s.
    public var tflopsKey: String {
        switch self {
        case .bf16, .mixedBF16: return "bf16"
        case .fp16, .mixedFP16: return "fp16"
        case .fp32: return "fp32"
        }
    }
}

public enum Optimizer: String, CaseIterable, Sendable, Codable {
    case adamw
    case adamw8bit = "adamw-8bit"
    case pagedAdamw8bit = "paged-adamw-8bit"
    case sgd
    case sgdMomentum = "sgd-momentum"
    case adafactor
    case lion
}

public enum AttentionChoice: String, CaseIterable, Sendable, Codable {
    /// `attn_implementation="sdpa"`: the runtime profile says which kernel runs.
    case sdpa
    /// `attn_implementation="flash_attention_2"`.
    case flash
    /// `attn_implementation="eager"`: Transformers' own matmul-softmax-matmul, keeps s².
    case eager
}

/// How the loss over the vocabulary is computed: what it keeps for backward, what it allocates
/// on the way and what it computes again (docs/loss.md gives each source line by line).
public enum LossKind: String, CaseIterable, Sendable, Codable {
    /// Transformers' `ForCausalLMLoss` under the `Trainer`: the full logits, their fp32 copy,
    /// `log_softmax`'s fp32 output kept for backward.
    case standard
    /// TRL's fused LM head (`trl/kernels/chunked_logprob.py`, TRL 1.16.0, which its
    /// `SFTTrainer` always uses): log-probabilities over tiles of 4,096 tokens × 32,768 vocabulary
    /// entries, the head's input kept, the tiles computed again in backward.
    case chunked
    /// Liger's fused linear cross-entropy (`liger_kernel/ops/fused_linear_cross_entropy.py`):
    /// the gradients computed in forward over token chunks, kept until backward.
    case liger
    /// Cut Cross-Entropy (`cut_cross_entropy/cce.py`): the log-sum-exp only, the logits computed
    /// again block by block in backward, never in memory; Ampere or newer.
    case cce
    /// Unsloth's fused cross-entropy (unsloth-zoo @ce232d6c `fused_losses/cross_entropy_loss.py`,
    /// `UnslothFusedLoss`), what Unsloth trains with: the gradients computed in forward over row
    /// chunks of at most 4 GiB of fp32 logits, kept until backward; only under Unsloth's kernels.
    case unsloth

    /// Whether it computes the gradients in forward (nothing left for backward's head).
    public var gradientsInForward: Bool { self == .liger || self == .unsloth }

    /// Its name in advice ("use … ").
    public var name: String {
        switch self {
        case .standard: return "the standard cross-entropy"
        case .chunked: return "TRL's chunked LM head"
        case .liger: return "Liger's fused linear cross-entropy"
        case .cce: return "Cut Cross-Entropy"
        case .unsloth: return "Unsloth's fused cross-entropy"
        }
    }

    /// How a plan's notes describe it.
    public var title: String {
        switch self {
        case .standard: return "standard cross-entropy (full logits and an fp32 copy)"
        case .chunked: return "TRL's chunked LM head (no full logits; the head recomputed in backward)"
        case .liger: return "Liger's fused linear cross-entropy (gradients in forward, no full logits)"
        case .cce: return "Cut Cross-Entropy (no logits in memory; recomputed in backward)"
        case .unsloth: return "Unsloth's fused cross-entropy (gradients in forward over chunks of at most 4 GiB of fp32 logits; the chunk's 16-bit logits and fp32 cross-entropy counted, the compiled chunk function's further temporaries not)"
        }
    }
}

/// How gradient checkpointing recomputes a block (when it is on).
public enum CheckpointStyle: String, CaseIterable, Sendable, Codable {
    /// `use_reentrant=False`, what Transformers 5 and TRL default to: the recompute stops at
    /// the block's last saved tensor (PyTorch's early stop).
    case nonReentrant = "non-reentrant"
    /// `use_reentrant=True` (torch.utils.checkpoint's CheckpointFunction): the whole block's
    /// forward is run again in backward.
    case reentrant
    /// Unsloth's offloaded checkpointing (`use_gradient_checkpointing="unsloth"`, unsloth-zoo
    /// @ce232d6c `gradient_checkpointing.py`, `UnslothCheckpointFunction`): reentrant, with each
    /// block's input in pinned host memory between forward and backward.
    case offloaded
    /// TRL's selective activation checkpointing (`gradient_checkpointing_kwargs={"selective":
    /// True}`, TRL 1.16 trl/models/selective_activation_checkpointing.py): non-reentrant, with
    /// the SDPA op's outputs cached by PyTorch's selective checkpointing instead of recomputed.
    case selective
}

/// The kernel stack that replaces Transformers' layer ops, which changes what backward saves.
public enum KernelStack: String, CaseIterable, Sendable, Codable {
    /// Transformers' own modules (`LlamaRMSNorm`, `LlamaMLP`, …) and PEFT's LoRA layers.
    case none
    /// Liger-Kernel's layer kernels as TRL's `use_liger_kernel=True` applies them (RMSNorm,
    /// RoPE, SwiGLU/GeGLU; TRL 1.16 leaves the loss to its own chunked head).
    case liger
    /// Unsloth's hand-written kernels (`FastLanguageModel`: its RMSNorm, RoPE and fused LoRA
    /// autograd functions for q/k/v, o and the MLP) and its fused cross-entropy.
    case unsloth

    /// The stack in a sentence, for notes.
    public var title: String {
        switch self {
        case .none: return "Transformers' modules and PEFT's LoRA layers"
        case .liger: return "Liger-Kernel's RMSNorm, RoPE and SwiGLU/GeGLU (TRL's use_liger_kernel)"
        case .unsloth: return "Unsloth's RMSNorm, RoPE and fused LoRA kernels"
        }
    }
}

/// How one training step is run: everything besides the model and the method.
public struct TrainingOptions: Equatable, Sendable {
    /// Micro-batch size per GPU.
    public var batch = 1
    /// Tokens per sequence (before virtual tokens).
    public var seq = 2048
    public var gradAccum = 1
    public var precision: Precision = .bf16
    public var optimizer: Optimizer = .adamw
    public var gradCheckpointing = false
    /// How checkpointing recomputes (when on).
    public var checkpointStyle: CheckpointStyle = .nonReentrant
    /// TRL's activation offloading (`SFTConfig(activation_offloading=True)`): the blocks' saved
    /// tensors go to pinned host memory in forward and come back in backward.
    public var activationOffloading = false
    public var attention: AttentionChoice = .sdpa
    /// The loss over the vocabulary.
    public var loss: LossKind = .standard
    /// The kernel stack of the layer ops.
    public var kernels: KernelStack = .none
    /// The optimizer step fused into backward: one optimizer per parameter, stepped by the
    /// parameter's post-accumulate-grad hook, which then frees its gradient (PyTorch's
    /// `Tensor.register_post_accumulate_grad_hook`; torch 2.15
    /// `torch.distributed.optim._apply_optimizer_in_backward`; Transformers 5.25's `*_layerwise`
    /// optimizers, trainer_optimizer.py): one gradient alive at a time.
    public var optimizerInBackward = false
    /// `torch.compile`'s effect on the saved activations, as a factor the user measured (its
    /// partitioner decides what to keep, which no source states): nil for none assumed.
    public var compiledActivationFactor: Double?
    /// TRL's padding-free batches (what its packing turns on, `padding_free=True`): the
    /// collator concatenates the micro-batch's sequences into one row with position ids
    /// restarting at each (TRL 1.16 `DataCollatorForLanguageModeling`). Under
    /// flash_attention_2 each sequence attends to itself (varlen); under SDPA and eager
    /// attention Transformers 5.25 attends over the whole row through a block-diagonal mask
    /// it builds from the position ids (TRL's trainer runs without a KV cache).
    public var paddingFree = false
    /// Of `seq`, the tokens that stand for images (a vision-language model's image tokens,
    /// each the merger's output for `patchesPerToken` of the tower's patches); 0: text only.
    public var imageTokens = 0
    /// The TRL trainer (SFT unless a preference or RL trainer is named).
    public var trainer = TrainerOptions()

    public init() {}
}
