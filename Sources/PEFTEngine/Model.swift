import Foundation

/// The engine's Llama-style decoder, sized like a Hugging Face `LlamaConfig`.
public struct EngineConfig: Equatable, Sendable {
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    /// SwiGLU width (`intermediate_size`).
    public var hidden: Int
    public var vocab: Int
    public var tied: Bool
    public var normEps: Float = 1e-5
    public var ropeTheta: Float = 10000

    public var headDim: Int { dim / heads }
    public var kvDim: Int { kvHeads * headDim }

    public init(dim: Int, layers: Int, heads: Int, kvHeads: Int, hidden: Int, vocab: Int, tied: Bool) {
        self.dim = dim; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads
        self.hidden = hidden; self.vocab = vocab; self.tied = tied
    }

    /// The `tiny` preset (hidden 256, 4 layers, 4 heads, 4 KV heads, intermediate 688,
    /// vocab 1000, untied), as `Sources/PEFTPlan/Resources/models/tiny.json`.
    public static let tiny = EngineConfig(dim: 256, layers: 4, heads: 4, kvHeads: 4, hidden: 688, vocab: 1000, tied: false)
}

/// The Linear layers of a block, with Llama's names.
public enum BlockLinear: String, CaseIterable, Sendable {
    case wq, wk, wv, wo, w1, w2, w3

    /// (out, in) of the weight.
    func shape(_ c: EngineConfig) -> (out: Int, in: Int) {
        switch self {
        case .wq: return (c.dim, c.dim)
        case .wk, .wv: return (c.kvDim, c.dim)
        case .wo: return (c.dim, c.dim)
        case .w1, .w3: return (c.hidden, c.dim)
        case .w2: return (c.dim, c.hidden)
        }
    }
}

/// How the engine trains (README, "The training engine"). More methods join as they are built.
public enum EngineMethod: Equatable, Sendable {
    case full
    /// LoRA on the named block Linears: W x + (alpha / r) · B A x, B zero-initialised.
    case lora(rank: Int, alpha: Float, targets: Set<BlockLinear>)
    /// QLoRA: every block Linear's frozen weight stored in NF4 (``NF4Tensor``, optionally
    /// with double quantisation) and dequantised per matmul into a transient buffer, LoRA on
    /// the named targets. Embeddings, norms and the output head stay fp32, as bitsandbytes
    /// quantises only the Linear layers inside the blocks.
    case qlora(rank: Int, alpha: Float, targets: Set<BlockLinear>, doubleQuant: Bool)
    /// Bottleneck adapters at AdapterHub's placements: h + up(ReLU(down(h) + b_down)) + b_up on
    /// a sublayer's output before its residual addition, with down dim → dim / reduction.
    /// Pfeiffer (`seq_bn`): after the feed-forward block; Houlsby (`double_seq_bn`): also after
    /// attention. ReLU for both (AdapterHub's `double_seq_bn` defaults to swish; the memory is
    /// the same: the input and the bottleneck's activation are kept either way).
    case adapter(houlsby: Bool, reduction: Int)
    /// IA³: a learned vector scales each target's output, or, for a feed-forward target,
    /// its input (PEFT's IA3Config; Llama's default: wk, wv, w2 with w2 feed-forward).
    case ia3(targets: Set<BlockLinear>, feedforward: Set<BlockLinear>)
    /// Prompt tuning: `tokens` learned embeddings in front of every sequence.
    case prompt(tokens: Int)
    /// Prefix tuning: per layer `tokens` learned keys and values in front of every sequence's,
    /// as PEFT's PrefixTuningConfig passes them as a KV cache. With `projection` > 0 they are
    /// reparameterised as PEFT's `prefix_projection`: an embedding of `tokens` × kvDim through
    /// Linear(kvDim → projection), tanh, Linear(projection → layers · 2 · kvDim), both with bias.
    case prefix(tokens: Int, projection: Int = 0)

    public static let ia3Default = EngineMethod.ia3(targets: [.wk, .wv, .w2], feedforward: [.w2])

    public var name: String {
        switch self {
        case .full: return "full"
        case .lora: return "lora"
        case .qlora: return "qlora"
        case .adapter: return "adapter"
        case .ia3: return "ia3"
        case .prompt: return "prompt"
        case .prefix: return "prefix"
        }
    }

    /// Virtual tokens added in front of the sequence.
    public var virtualTokens: Int { if case let .prompt(t) = self { return t }; return 0 }
    /// Learned keys and values in front of the attended sequence.
    public var prefixTokens: Int { if case let .prefix(t, _) = self { return t }; return 0 }
}

/// A named slice of a category's single allocation (llm.c's layout: one buffer per
/// category, tensors pointed into it).
public struct TensorView: Sendable {
    public let offset: Int
    public let count: Int
}

/// Parameters laid out from a size table: one frozen and one trainable allocation, with a
/// view per tensor, and the frozen weights QLoRA keeps in NF4, one ``NF4Tensor`` each.
public final class ParameterStore: @unchecked Sendable {
    public enum Kind: Sendable { case frozen, trainable, nf4 }
    public let frozen: Buffer<Float>
    public let trainable: Buffer<Float>
    public private(set) var views: [String: (trainable: Bool, view: TensorView)] = [:]
    /// NF4 tensors by name with their element counts (the tensor is made at initialisation).
    public private(set) var quantized: [String: NF4Tensor] = [:]
    public private(set) var quantizedCounts: [String: Int] = [:]

    init(sizes: [(name: String, count: Int, kind: Kind)], ledger: Ledger) {
        var f = 0, t = 0
        var views: [String: (Bool, TensorView)] = [:]
        for s in sizes {
            switch s.kind {
            case .trainable: views[s.name] = (true, TensorView(offset: t, count: s.count)); t += s.count
            case .frozen: views[s.name] = (false, TensorView(offset: f, count: s.count)); f += s.count
            case .nf4: quantizedCounts[s.name] = s.count
            }
        }
        self.views = views
        frozen = ledger.allocate(Float.self, count: f, category: .frozenWeights)
        trainable = ledger.allocate(Float.self, count: t, category: .trainableWeights)
    }

    public func pointer(_ name: String) -> FloatPointer {
        guard let v = views[name] else { preconditionFailure("no fp32 parameter \(name)") }
        return (v.trainable ? trainable.pointer : frozen.pointer) + v.view.offset
    }

    func setQuantized(_ name: String, _ t: NF4Tensor) { quantized[name] = t }

    /// Every parameter's name, fp32 or NF4.
    public var names: Set<String> { Set(views.keys).union(quantizedCounts.keys) }
    /// Elements of a parameter, fp32 or NF4.
    public func count(_ name: String) -> Int? { views[name]?.view.count ?? quantizedCounts[name] }
    public func isTrainable(_ name: String) -> Bool { views[name]?.trainable ?? false }
    public var trainableCount: Int { trainable.count }
    public var frozenCount: Int { frozen.count + quantizedCounts.values.reduce(0, +) }
}
