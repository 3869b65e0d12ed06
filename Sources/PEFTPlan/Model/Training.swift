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
    public var attention: AttentionChoice = .sdpa
    /// Of `seq`, the tokens that stand for images (a vision-language model's image tokens,
    /// each the merger's output for `patchesPerToken` of the tower's patches); 0: text only.
    public var imageTokens = 0

    public init() {}
}
