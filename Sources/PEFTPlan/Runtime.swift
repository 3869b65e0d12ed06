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

    /// Transformers + PEFT + PyTorch on CUDA: the planner's default.
    ///
    /// - sdpa → flash kernel (PyTorch picks flash for causal masks without padding,
    ///   head_dim ≤ 256, bf16/fp16; Transformers passes `enable_gqa` then).
    /// - Dropout masks: `native_dropout` on CUDA returns a bool mask (1 byte/element).
    /// - reserved/allocated 1.05: an uncalibrated default for the caching allocator's
    ///   2 MiB segments and fragmentation; `peft-plan calibrate` replaces it.
    /// - 0.5 GiB outside the allocator: the CUDA 12 context plus cuBLAS workspace as
    ///   nvidia-smi shows for an idle PyTorch process on Ampere/Hopper; uncalibrated.
    /// - Fused AdamW: Transformers' default optimizer on CUDA is `adamw_torch_fused`, so the
    ///   optimizer step adds no per-parameter temporaries to its phase.
    public static let hfCUDA = RuntimeProfile(
        name: "hf-cuda",
        description: "Transformers + PEFT + PyTorch on CUDA (flash SDPA, fused AdamW; allocator and context terms uncalibrated)",
        sdpaKernel: .flash, dropoutMaskBytes: 1, reservedOverAllocated: 1.05,
        outsideAllocatorBytes: 512 << 20)

    /// What the meta-device trace of saved tensors sees (PyTorch's math SDPA, dropout
    /// masks in the activation dtype, no allocator): used to check the activation model
    /// against the real Transformers code.
    public static let hfMeta = RuntimeProfile(
        name: "hf-meta",
        description: "Transformers on PyTorch's meta device (math SDPA, masks in the tensor dtype, no allocator)",
        sdpaKernel: .math, dropoutMaskBytes: 0, reservedOverAllocated: 1.0,
        outsideAllocatorBytes: 0)

    public static let builtIn: [RuntimeProfile] = [.hfCUDA, .hfMeta]

    public static func named(_ name: String) -> RuntimeProfile? {
        builtIn.first { $0.name == name.lowercased() }
    }
}
