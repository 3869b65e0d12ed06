import Foundation

/// How model state is split over data-parallel GPUs.
///
/// ZeRO stages after Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
/// Trillion Parameter Models" (SC'20), §5: stage 1 partitions optimizer states, stage 2 also
/// gradients, stage 3 also parameters. PyTorch FSDP (FULL_SHARD) partitions all three like
/// ZeRO-3 (Zhao et al., "PyTorch FSDP", VLDB'23, §3).
public enum Sharding: String, CaseIterable, Sendable, Codable {
    case none, zero1, zero2, zero3, fsdp

    public var shardsOptimizer: Bool { self != .none }
    public var shardsGradients: Bool { self == .zero2 || self == .zero3 || self == .fsdp }
    public var shardsParameters: Bool { self == .zero3 || self == .fsdp }
    /// DeepSpeed's `zero_optimization.stage` (FSDP and none are not DeepSpeed stages).
    public var zeroStage: Int? {
        switch self {
        case .none: return 0
        case .zero1: return 1
        case .zero2: return 2
        case .zero3: return 3
        case .fsdp: return nil
        }
    }
}

/// What is moved to host memory (DeepSpeed ZeRO-Offload / ZeRO-Infinity CPU offload,
/// FSDP `cpu_offload`).
public enum Offload: String, CaseIterable, Sendable, Codable {
    case none
    /// Optimizer states (and the fp32 master copy) live in host RAM; the optimizer step
    /// runs on the CPU (ZeRO-Offload, Ren et al. 2021).
    case optimizer
    /// Parameters too (ZeRO-3 / FSDP only): each layer is fetched from the host when needed.
    case params
}

/// How the run is spread over GPUs.
public struct ScaleOptions: Equatable, Sendable {
    /// Data-parallel GPUs.
    public var gpus = 1
    public var sharding: Sharding = .none
    public var offload: Offload = .none

    public init(gpus: Int = 1, sharding: Sharding = .none, offload: Offload = .none) {
        self.gpus = gpus
        self.sharding = sharding
        self.offload = offload
    }
}
