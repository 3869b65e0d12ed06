import Foundation

/// The model families peft-plan reads from a Hugging Face `config.json`, by `model_type`.
public enum ModelFamily: String, CaseIterable, Sendable, Codable {
    case llama, mistral, mixtral, qwen2, qwen3, gemma, gemma2, phi3, gpt2
    case gptNeoX = "gpt_neox"
    case opt, falcon, bloom

    /// Llama-style blocks: RMSNorm, rotary embeddings, a gated feed-forward (SwiGLU/GeGLU).
    var isLlamaStyle: Bool {
        switch self {
        case .llama, .mistral, .mixtral, .qwen2, .qwen3, .gemma, .gemma2, .phi3: return true
        case .gpt2, .gptNeoX, .opt, .falcon, .bloom: return false
        }
    }
}

/// What kind of module a parameter tensor belongs to. PEFT can wrap `linear`, `conv1d`
/// (GPT-2's transposed linear) and `embedding`; it refuses the others as targets.
public enum ModuleKind: String, Sendable, Equatable {
    case linear, conv1d, embedding, norm, router, experts, positionEmbedding
}

/// One module of the model as `named_modules()` shows it, with its parameter shapes.
///
/// Block modules are stored once with `perLayer == true` and a `name` relative to the
/// block ("self_attn.q_proj"); the rest carry their full name ("model.embed_tokens").
public struct ModuleSpec: Sendable, Equatable {
    public var name: String
    public var kind: ModuleKind
    /// Input and output features (for an embedding: vocabulary/positions and width).
    public var inFeatures: Int
    public var outFeatures: Int
    public var bias: Bool
    /// Parameters owned by a norm, router or fused-experts module (its tensors' numel).
    public var ownParams: Int
    public var perLayer: Bool
    /// True for an output head whose weight is the input embedding's: it exists as a
    /// module (and can be targeted) but adds no parameter to the count.
    public var tied: Bool

    public init(_ name: String, _ kind: ModuleKind, in inFeatures: Int = 0, out outFeatures: Int = 0,
                bias: Bool = false, ownParams: Int = 0, perLayer: Bool = true, tied: Bool = false) {
        self.name = name
        self.kind = kind
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias
        self.ownParams = ownParams
        self.perLayer = perLayer
        self.tied = tied
    }

    /// Parameters of one instance, as `numel()` summed over its own tensors.
    public var params: Int {
        if tied { return 0 }
        switch kind {
        case .linear, .conv1d: return inFeatures * outFeatures + (bias ? outFeatures : 0)
        case .embedding, .positionEmbedding: return inFeatures * outFeatures
        case .norm, .router, .experts: return ownParams
        }
    }

    /// Weight elements a bitsandbytes 4-bit Linear stores quantised (the matrix, not the bias).
    public var weightElements: Int { (kind == .linear || kind == .conv1d) && !tied ? inFeatures * outFeatures : 0 }
}

/// The feed-forward block's form, which decides what it saves for backward.
public enum FeedForwardKind: String, Sendable {
    /// act(gate(x)) * up(x) → down: SwiGLU (Llama) or GeGLU (Gemma).
    case gated
    /// act(fc1(x)) → fc2 (GPT-2, OPT, GPT-NeoX, Falcon, BLOOM).
    case plain
}

public enum NormKind: String, Sendable {
    /// Hugging Face RMSNorm: computes in fp32, keeps the fp32 input and the cast output.
    case rms
    /// torch LayerNorm in the model dtype, with bias.
    case layer
}

/// A decoder-only transformer, reduced to what counts for parameters, memory and compute.
///
/// Built from a Hugging Face `config.json` (``ConfigReader``) or a preset (``Presets``).
/// `modules` lists the model's modules as Transformers builds them, so that PEFT's target
/// matching (suffix match on module names) can be reproduced exactly.
public struct Architecture: Sendable, Equatable {
    public var name: String
    public var family: ModelFamily
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var nKVHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    public var maxPositions: Int
    public var tiedEmbeddings: Bool
    /// Mixture of experts: experts per layer (0 for dense) and experts each token visits.
    public var numExperts: Int
    public var expertsPerToken: Int
    public var feedForward: FeedForwardKind
    public var norm: NormKind
    /// Dropout probability active in training on hidden states (GPT-2: 0.1); 0 when none.
    public var hiddenDropout: Double
    public var attentionDropout: Double
    /// Embedding width where it differs from `hiddenSize` (OPT-350m's word_embed_proj_dim).
    public var embedDim: Int
    /// Modules, block ones once (`perLayer`), in `named_modules()` order.
    public var modules: [ModuleSpec]
    /// Whether Transformers' config for this family carries `num_key_value_heads`, which
    /// makes PEFT size prefix tuning by the KV heads (the Llama-style families do).
    public var configHasKVHeads: Bool { family.isLlamaStyle }
    /// Final-logit soft-capping (Gemma 2) adds logits-sized tensors to the loss.
    public var finalLogitSoftcapping: Bool
    /// The attention implementation Transformers can use (Gemma 2 supports only eager).
    public var supportsSDPA: Bool

    /// The name prefix of block modules ("model.layers"), used to build full names.
    public var layerPrefix: String

    /// Total parameters as Hugging Face counts them (`named_parameters()`, tied once).
    public var totalParams: Int {
        modules.reduce(0) { $0 + $1.params * ($1.perLayer ? numLayers : 1) }
    }

    /// Parameters outside the decoder blocks (embeddings, final norm, untied lm_head).
    public var nonBlockParams: Int {
        modules.reduce(0) { $0 + ($1.perLayer ? 0 : $1.params) }
    }

    /// Total parameters with every product and sum checked; nil past `limit`.
    func checkedTotalParams(limit: Int) -> Int? {
        var total = 0
        for m in modules {
            let own: (Int, Bool)
            switch m.kind {
            case .linear, .conv1d:
                let w = m.inFeatures.multipliedReportingOverflow(by: m.outFeatures)
                own = w.overflow ? (0, true) : w.partialValue.addingReportingOverflow(m.bias ? m.outFeatures : 0)
            case .embedding, .positionEmbedding: own = m.inFeatures.multipliedReportingOverflow(by: m.outFeatures)
            case .norm, .router, .experts: own = (m.ownParams, false)
            }
            if own.1 { return nil }
            let n = (m.tied ? 0 : own.0).multipliedReportingOverflow(by: m.perLayer ? numLayers : 1)
            if n.overflow { return nil }
            let s = total.addingReportingOverflow(n.partialValue)
            if s.overflow || s.partialValue > limit { return nil }
            total = s.partialValue
        }
        return total
    }

    /// Parameters in block Linear weights: the part bitsandbytes quantises for QLoRA.
    public var blockLinearWeightParams: Int {
        modules.reduce(0) { $0 + ($1.perLayer ? $1.weightElements * numLayers : 0) }
    }

    /// Parameters a token touches in one forward pass (MoE: only its experts).
    public var activeParams: Int {
        guard numExperts > 0 else { return totalParams }
        let experts = modules.filter { $0.kind == .experts }.reduce(0) { $0 + $1.params } * numLayers
        return totalParams - experts + experts / numExperts * expertsPerToken
    }

    /// The full name of a module instance in layer `layer` (0 for matching).
    public func fullName(_ m: ModuleSpec, layer: Int = 0) -> String {
        m.perLayer ? "\(layerPrefix).\(layer).\(m.name)" : m.name
    }

    /// The input (token) embedding's full name, whatever the family calls it
    /// (`model.embed_tokens`, `transformer.wte`, `gpt_neox.embed_in`, `transformer.word_embeddings`, …).
    public var inputEmbeddingName: String? {
        modules.first { $0.kind == .embedding && !$0.perLayer }?.name
    }

    /// GPT-2 and OPT learn a table of positions: no sequence can be longer than it.
    public var hasLearnedPositions: Bool { modules.contains { $0.kind == .positionEmbedding } }

    /// Width of the keys and values of one token in one layer.
    public var kvDim: Int { nKVHeads * headDim }
    /// Width of the queries (and of the attention output) of one token in one layer.
    public var qDim: Int { numHeads * headDim }
}
