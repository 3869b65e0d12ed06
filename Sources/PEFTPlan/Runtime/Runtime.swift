import Foundation

/// What attention saves for backward, which depends on the kernel that runs.
public enum AttentionKernel: String, Sendable, Codable {
    /// FlashAttention-2 / PyTorch's flash SDPA on CUDA: q, k, v (grouped-query heads not
    /// expanded), the output and an fp32 log-sum-exp per head; no s² tensor.
    case flash
    /// PyTorch's math SDPA fallback (what runs on the meta device and for masks the fused
    /// kernels refuse): q, k, v upcast to fp32 and expanded to every head, plus the fp32
    /// s² probabilities.
    case math
}

/// What a framework adds to the model's own tensors: the attention kernel it picks, how
/// it stores dropout masks, its allocator's behaviour and what it holds outside the
/// allocator. `hf-cuda` is the default; a calibration file is a fitted runtime profile.
public struct RuntimeProfile: Sendable, Equatable {
    public var name: String
    public var description: String
    /// The kernel `--attention sdpa` gets (eager is Transformers' own code, the same everywhere).
    public var sdpaKernel: AttentionKernel
    /// Bytes per element of a dropout mask: CUDA's fused dropout keeps a bool mask; the
    /// meta/CPU path keeps a mask in the tensor's dtype (0 means "the tensor's dtype").
    public var dropoutMaskBytes: Int
    /// `max_memory_reserved / max_memory_allocated` of the caching allocator.
    public var reservedOverAllocated: Double
    /// Memory the process holds outside the allocator (CUDA context, cuBLAS/cuDNN handles).
    public var outsideAllocatorBytes: Int

    // Speed (README, "The model": Time; docs/time-model.md).
    /// Whether forward runs under `torch.autocast` in the 16-bit dtype, as the Trainer's
    /// `bf16=True`/`fp16=True` runs it: fp32 parts (PEFT's fp32 adapters, QLoRA's fp32
    /// attention and lm_head) then multiply in 16 bits. Measured on an H100: QLoRA on
    /// Llama-3.1-8B ran 2.5× faster with autocast than without
    /// (reports/calibration/cuda-llama-3.1-8b-autocast.json).
    public var autocast = true
    /// TRL's fused LM head scores only the positions that have a label (`hidden_states[mask]`)
    /// where Triton runs (CUDA, XPU); elsewhere every position (TRL 1.16 trainer/utils.py
    /// `_fused_forward`, `compact = _use_triton(...)`).
    public var compactScoring = true
    /// How step time follows from the step's work (``TimeCoefficients``).
    public var time = TimeCoefficients.fitted
    /// The fraction of the 16-bit peak matmuls reach (`--mfu` overrides it per plan): read on
    /// the H100 SXM unless set; a calibration profile's fit, made on one GPU, sets it for every GPU.
    public var mfu: Double {
        get { time.peakFraction ?? time.matmulEfficiency * TimeCoefficients.datacenterReference }
        set { time.peakFraction = newValue }
    }
    /// GPUs per node; beyond that, collectives cross the network.
    public var gpusPerNode = 8
    /// Network bandwidth per GPU between nodes, one direction (400 Gb/s InfiniBand NDR per GPU).
    public var networkBytesPerSecondPerGPU = 50e9
    /// Host link for offload, one direction (PCIe 4.0 ×16: 32 GB/s theoretical, ~25 usable).
    public var hostLinkBytesPerSecond = 25e9
    /// Host memory bandwidth available to one GPU's CPU optimizer step.
    public var hostMemoryBytesPerSecond = 50e9
    /// Measured correction of the saved activations and logits per method (raw value of
    /// ``Method``), fitted by `calibrate --fit`; absent means 1.
    public var activationScale: [String: Double] = [:]
    /// Where a fitted profile came from (GPU, library versions), for the plan's warnings.
    public var fittedEnvironment: [String: String] = [:]

    /// Transformers + PEFT + PyTorch on CUDA: the planner's default.
    ///
    /// - sdpa → flash kernel (PyTorch picks flash for causal masks without padding,
    ///   head_dim ≤ 256, bf16/fp16; Transformers passes `enable_gqa` then).
    /// - Dropout masks: `native_dropout` on CUDA returns a bool mask (1 byte/element).
    /// - reserved/allocated 1.10: the median of `max_memory_reserved / max_memory_allocated`
    ///   over 64 bursts measured on one H100 SXM (Llama-3.2-1B and Llama-3.1-8B, every
    ///   method, micro-batch 1–4 × 2048–4096, checkpointing on and off; range 1.02–1.40,
    ///   highest with checkpointing at small models); reports/calibration/cuda-*.json.
    /// - 768 MiB outside the allocator: measured in the same runs (cudaMemGetInfo's used
    ///   memory − memory_reserved: 766–774 MiB on CUDA 13.0, driver 580, PyTorch 2.11).
    /// - Fused AdamW: Transformers' default optimizer on CUDA is `adamw_torch_fused`, so the
    ///   optimizer step adds no per-parameter temporaries to its phase.
    /// - Speed: MFU, fp32 efficiency and bitsandbytes overheads fitted on the same H100
    ///   (see the fields' notes); other GPUs reach other fractions of their peak.
    public static let hfCUDA = RuntimeProfile(
        name: "hf-cuda",
        description: "Transformers + PEFT + PyTorch on CUDA (flash SDPA, fused AdamW, Trainer autocast; allocator, context and speed terms measured on one H100)",
        sdpaKernel: .flash, dropoutMaskBytes: 1, reservedOverAllocated: 1.10,
        outsideAllocatorBytes: 768 << 20)

    /// What the meta-device trace of saved tensors sees (PyTorch's math SDPA, dropout
    /// masks in the activation dtype, no allocator): used to check the activation model
    /// against the real Transformers code.
    public static let hfMeta: RuntimeProfile = {
        var r = RuntimeProfile(
            name: "hf-meta",
            description: "Transformers on PyTorch's meta device (math SDPA, masks in the tensor dtype, no allocator)",
            sdpaKernel: .math, dropoutMaskBytes: 0, reservedOverAllocated: 1.0,
            outsideAllocatorBytes: 0)
        r.compactScoring = false
        return r
    }()

    public static let builtIn: [RuntimeProfile] = [.hfCUDA, .hfMeta]

    public static func named(_ name: String) -> RuntimeProfile? {
        builtIn.first { $0.name == name.lowercased() }
    }
}
