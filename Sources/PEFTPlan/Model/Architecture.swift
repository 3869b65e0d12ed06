import Foundation

/// What kind of module a parameter tensor belongs to. PEFT can wrap `linear`, `conv1d`
/// (GPT-2's transposed linear) and `embedding`; it refuses the others as targets.
public enum ModuleKind: String, Sendable, Equatable {
    case linear, conv1d, embedding, norm, router, experts, positionEmbedding
    /// Bare parameters of a module PEFT does not wrap (attention sinks, a state-space
    /// layer's A_log and dt_bias, a depthwise convolution): counted, never targeted.
    case parameters
}

/// What a module does in the model, so that the symbolic forward names modules by role and
/// never by a family's spelling: a recipe that asks for a role the architecture lacks is an
/// error (``PlanError/incompleteArchitecture(model:role:)``), not a module that costs nothing.
public enum ModuleRole: String, Sendable, Equatable, CaseIterable {
    /// Outside the blocks: the token embedding, learned positions, BLOOM's embedding norm,
    /// OPT-350m's projections between embedding and hidden width, the final norm, the head.
    case embed, positions, embedNorm, projectIn, projectOut, finalNorm, head
    /// Attention: separate or fused projections, the output projection, Qwen3's head norms.
    case q, k, v, qkv, o, qNorm, kNorm
    /// Block norms: before attention, before the feed-forward block, and Gemma 2's norms of
    /// the attention and feed-forward outputs.
    case attentionNorm, feedForwardNorm, attentionOutputNorm, feedForwardOutputNorm
    /// Feed-forward: gated (gate, up, down; Phi-3 fuses gate and up), plain (up, down),
    /// or a mixture of experts (router, fused experts, shared experts and their gate).
    case gate, up, gateUp, down, router, experts, sharedGate, sharedUp, sharedGateUp, sharedDown, sharedExpertGate
    /// Multi-head latent attention: the query latent and its norm, the query up-projection,
    /// the key-value latent (with the shared rotary key), its norm, its up-projection; the
    /// sparse attention's indexer; attention sinks.
    case qA, qANorm, qB, kvA, kvANorm, kvB, indexerQ, indexerK, indexerKNorm, indexerWeights, sinks
    /// Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5): the input projections (q, k, v
    /// together or with z; z; b; a; or b and a together), the depthwise causal convolution,
    /// its bare parameters (A_log, dt_bias), the gated output norm and the output projection.
    case linearQKV, linearZ, linearB, linearA, linearBA, linearConv, linearParams, linearNorm, linearOut
    /// LFM2's short convolution: the B, C, x projection, the depthwise convolution, the output.
    case shortConvIn, shortConv, shortConvOut
    /// Mamba-2 (Nemotron-H): the input projection to z, x, B, C and dt, the depthwise
    /// convolution, dt_bias / A_log / D, the gated RMSNorm, the output projection; and the
    /// latent projections around Nemotron 3's experts.
    case ssmIn, ssmConv, ssmParams, ssmNorm, ssmOut, latentIn, latentOut
    /// A vision-language model's image side: the vision tower (patch embedding, its blocks,
    /// its norms) and the projector (merger) that maps its features into the language model's
    /// embedding width. Frozen in full fine-tuning; PEFT's all-linear still wraps their Linears.
    case visionTower, visionProjector
    /// Gemma 4's per-layer inputs: in each layer the gate to the layer's input width, the
    /// projection back and its norm; outside the blocks the packed per-layer embedding table,
    /// the projection of the embeddings to every layer's inputs and its norm.
    case perLayerGate, perLayerProjection, perLayerNorm, perLayerEmbed, perLayerModelProjection, perLayerProjectionNorm
    /// Gemma 4's experts beside the dense MLP: the router's scales, the norms of the dense
    /// MLP's output, of the experts' input and of their output.
    case routerScale, mlpOutputNorm, expertsNorm, expertsOutputNorm
    /// DeepSeek-V4's attention: the one key-and-value head (`kv_proj`, keys are the values)
    /// and its norm; the grouped output projection (`o_a_proj`, one block per group of heads)
    /// and the projection that mixes the groups (`o_b_proj`); in the compressed layers the
    /// compressor's key-value and gate projections, its learned position bias and its norm,
    /// and the lightning indexer's own compressor (key-value, gate, position bias, norm).
    case sharedKV, sharedKVNorm, groupedO, groupedOMix
    case compressorKV, compressorGate, compressorBias, compressorNorm
    case indexerKV, indexerGate, indexerBias, indexerNorm
    /// Manifold-constrained hyper-connections (DeepSeek-V4): the mixing weights before
    /// attention and before the MLP in each layer, and the final collapse of the streams.
    case attentionHyperConnection, feedForwardHyperConnection, hyperHead
}

/// One module of the model as `named_modules()` shows it, with its parameter shapes.
///
/// Block modules are stored once with `perLayer == true` and a `name` relative to the
/// block ("self_attn.q_proj"); the rest carry their full name ("model.embed_tokens").
public struct ModuleSpec: Sendable, Equatable {
    public var name: String
    public var kind: ModuleKind
    public var role: ModuleRole
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
    /// The decoder layers that hold this module, for models whose layers differ (dense
    /// layers before MoE ones, linear-attention layers between full-attention ones, sliding
    /// and full layers of different widths); nil: every layer. Only for block modules.
    public var layers: [Int]?
    /// The tensors of a module counted by `ownParams` when they are not the kind's usual
    /// ones (expert biases, a convolution, several bare parameters); empty: the usual.
    public var shapes: [[Int]] = []
    /// bitsandbytes keeps this Linear 16-bit (the module of the model's last parameter).
    public var keep16Bit = false
    /// Instances of a module outside the decoder blocks (a vision tower's blocks, Qwen3-VL's
    /// deepstack mergers); its `name` then holds `*` where `named_modules()` has the index.
    public var repeats = 1

    public init(_ name: String, _ kind: ModuleKind, _ role: ModuleRole, in inFeatures: Int = 0, out outFeatures: Int = 0,
                bias: Bool = false, ownParams: Int = 0, perLayer: Bool = true, tied: Bool = false, layers: [Int]? = nil) {
        self.name = name
        self.kind = kind
        self.role = role
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias
        self.ownParams = ownParams
        self.perLayer = perLayer
        self.tied = tied
        self.layers = layers
    }

    /// Names a module apart from another of the same name in other layers (Gemma 4's
    /// sliding and full-attention q_proj differ in width).
    public var key: String { layers.map { name + "@" + $0.map(String.init).joined(separator: ",") } ?? name }

    /// Parameters of one instance, as `numel()` summed over its own tensors.
    public var params: Int {
        // a tied lm_head shares the embedding's weight; its own bias (Phi's) stays a parameter
        if tied { return (kind == .linear && bias) ? outFeatures : 0 }
        switch kind {
        case .linear, .conv1d: return inFeatures * outFeatures + (bias ? outFeatures : 0)
        case .embedding, .positionEmbedding: return inFeatures * outFeatures
        case .norm, .router, .experts, .parameters: return ownParams
        }
    }

    /// Weight elements a bitsandbytes 4-bit Linear stores quantised (the matrix, not the bias).
    public var weightElements: Int { (kind == .linear || kind == .conv1d) && !tied ? inFeatures * outFeatures : 0 }

    /// Part of a vision-language model's image side (tower or projector).
    public var isVision: Bool { role == .visionTower || role == .visionProjector }

    /// Linear modules whose weights Transformers' bitsandbytes quantizer replaces with 4-bit
    /// ones: every nn.Linear but the output head (`get_keys_to_not_convert`,
    /// quantizers/base.py, 5.25) — the decoder blocks' and a vision tower's alike.
    public var quantisedBy4Bit: Bool { (perLayer || isVision) && weightElements > 0 && !keep16Bit }
}

public enum NormKind: String, Sendable {
    /// Hugging Face RMSNorm: computes in fp32, keeps the fp32 input and the cast output.
    case rms
    /// Gemma's RMSNorm: fp32 throughout, scaled by (1 + weight).
    case rmsOnePlusWeight
    /// torch LayerNorm in the model dtype, with bias.
    case layer
    /// OLMo 2's RMSNorm: the weight multiplies the fp32 normalised tensor before the cast
    /// back (`(self.weight * hidden_states).to(input_dtype)`), so a trainable weight keeps it in fp32.
    case rmsWeightInFP32
    /// Cohere's LayerNorm (`Cohere2LayerNorm`): weight, no bias; fp32 throughout, the input
    /// centred twice (two fp32 tensors kept), the fp32 weight multiplied before the cast back.
    case cohereLayer
    /// Gemma 4's RMSNorm (`Gemma4RMSNorm`): fp32 throughout, `pow(mean + eps, −0.5)` keeping
    /// both the mean and the reciprocal, the fp32 weight (not 1 + weight) multiplied.
    case gemma4
}

/// Which decoder block the symbolic forward plays: the closed set of block shapes the
/// families share. A family picks one (with its variations) in its reader; a new family
/// with a block that is none of these adds a case here and its recipe in `Memory/Blocks.swift`.
public enum BlockShape: Equatable, Sendable {
    /// Pre-norm, rotary, separate or fused projections, a gated feed-forward or experts:
    /// Llama and its relatives (`modeling_llama.py` and the files modelled on it).
    case gated(GatedBlock)
    /// Pre-LN, one fused qkv, a plain MLP, sequential residuals: GPT-2, and BLOOM (whose
    /// eager attention copies q, k, v per head and keeps an fp32 softmax; GELU as one op).
    case sequential(bloom: Bool)
    /// GPT-NeoX: fused qkv, partial rotary, the MLP reading the block input (parallel residual).
    case parallelResidual
    /// OPT: separate projections, ReLU MLP, layer norms before (`do_layer_norm_before`) or
    /// after each sub-block.
    case opt(preNorm: Bool)
    /// Falcon: fused (multi-query or grouped) qkv, rotary; attention and MLP in parallel
    /// or in sequence; one norm for both or two (`ln_attn`, `ln_mlp`).
    case falcon(parallel: Bool, twoNorms: Bool)
}

/// The variations of the gated block, as named traits.
public struct GatedBlock: Equatable, Sendable {
    /// Where the block's norms sit.
    public enum Norms: Equatable, Sendable {
        /// Before attention and before the feed-forward block (Llama).
        case pre
        /// Gemma 2/3: before and after each sub-block.
        case sandwich
        /// OLMo 2/3, EXAONE 4: after each sub-block only, inside the residual.
        case post
        /// Phi-2: one norm before attention and the MLP, which run side by side on its output
        /// and join the residual together.
        case parallel
        /// GLM-4: the sandwich's four norms under GLM's names (`post_self_attn_layernorm`,
        /// `post_attention_layernorm` before the MLP, `post_mlp_layernorm`).
        case glm
    }
    /// RMSNorm over q and k before the rotary embedding.
    public enum HeadNorm: Equatable, Sendable {
        case none
        /// Qwen3, Gemma 3, EXAONE 4: over each head (weight of head_dim).
        case perHead
        /// OLMo 2, OLMoE, MiniMax-M2: over the whole projection (weight of q width, k width).
        case fullWidth
        /// Llama 4: a parameter-free RMSNorm over each head, in the layers that hold `qNorm`.
        case weightless
    }

    /// Phi-3: q, k and v in one `qkv_proj`, gate and up in one `gate_up_proj`.
    public var fusedProjections = false
    /// GLM-4: gate and up in one `gate_up_proj`, q, k and v apart.
    public var fusedGateUp = false
    /// Phi-2: the plain MLP's `gelu_new`, Transformers' Python tanh-GELU (`NewGELUActivation`:
    /// pow, tanh and two products, each keeping a tensor), not one fused op.
    public var tanhGELUChain = false
    /// Starcoder2: a plain two-layer MLP (`c_fc`, GELU, `c_proj`) in place of the gated one.
    public var plainMLP = false
    public var headNorm: HeadNorm = .none
    public var norms: Norms = .pre
    /// Gemma 2: tanh soft-capping of the attention scores.
    public var scoreSoftcap = false
    /// gpt-oss, MiMo: learned attention sinks (one logit per head joins the softmax), in the
    /// layers that hold `sinks`.
    public var sinks = false
    /// MiMo-V2-Flash: values narrower than queries and keys (`v_head_dim`); nil: the same.
    public var valueHeadDim: Int?
    /// MiMo-V2-Flash's eager attention: the row max subtracted (max keeps its indices) and the
    /// softmax in the model dtype, in the layers without sinks too.
    public var maxSubtractedSoftmax = false
    /// gpt-oss: the experts' clamped SwiGLU with α (`swiglu_limit`, `swiglu_alpha`).
    public var clampedSwiGLU = false
    /// DeepSeek-V4: gate clamped from above and up on both sides before SiLU(gate) · up, in
    /// the routed experts and the shared one; the router scores by sqrt(softplus(logits)) in
    /// the model dtype (a learned top-k, or a fixed token-to-expert table in the first layers).
    public var clampedPlainSwiGLU = false
    /// DeepSeek-V4's attention in place of q/k/v projections, if any.
    public var compressed: CompressedAttention?
    /// DeepSeek-V4's manifold-constrained hyper-connections: the residual is this many
    /// streams, collapsed into each sub-block's input and expanded from its output.
    public var hyperConnections: HyperConnections?
    /// Qwen3-Next, Qwen3.5: `q_proj` also yields a gate; the attention output is scaled by its sigmoid.
    public var attentionOutputGate = false
    /// LFM2: the short convolution's kernel (taps) in the layers that hold one.
    public var shortConvolution: Int?
    /// Qwen3-Next, Qwen3.5: the Gated DeltaNet layers' widths (their layers hold `linearOut`).
    public var linearAttention: LinearAttention?
    /// Shared experts beside the routed ones, if any.
    public var sharedExpert: SharedExpert?
    /// Nemotron-H: each layer is one norm and one mixer (Mamba-2, attention, MLP or experts,
    /// by the modules the layer holds), added to the residual.
    public var singleMixer = false
    /// Nemotron-H: the Mamba-2 mixers' widths, in the layers that hold `ssmIn`.
    public var stateSpace: StateSpace?
    /// Falcon-H1: the Mamba-2 mixer runs beside attention in every layer, each on its own
    /// scaled copy of the normed input, their outputs summed into the residual.
    public var parallelStateSpace = false
    /// Nemotron-H: experts of up and down projections only (ReLU², no gate).
    public var nonGatedExperts = false
    /// Llama 4 in Transformers (`Llama4TextMoe`): every token goes through every expert, its
    /// input scaled by the router's sigmoid score (0 for the experts not picked), as batched
    /// matmuls over all experts — activations and FLOPs follow all experts, not the active ones.
    public var denseExpertDispatch = false
    /// DeepSeek V2/V3/V3.2, GLM-4.5, GLM-5: the router weight is kept in fp32
    /// (`_keep_in_fp32_modules_strict`) and its input cast to fp32 (`F.linear(x.float(), w)`):
    /// where the router trains, backward keeps that fp32 copy of the input.
    public var fp32Router = false
    /// Gemma 4: each layer's attention widths are its q_proj's (sliding and full layers have
    /// different head dims); a layer without k_proj reuses the keys and values of the last
    /// earlier layer of its width; a layer without v_proj uses its keys as values.
    public var layerHeadDims = false
    /// Gemma 4: the layers that reuse an earlier layer's keys and values (no k/v projections),
    /// and those whose keys are their values (no v_proj).
    public var kvSharingLayers: [Int] = []
    public var keyAsValueLayers: [Int] = []
    /// Gemma 4: a weightless RMSNorm over each value head.
    public var valueNorm = false
    /// Gemma 4's per-layer inputs, of this width per layer.
    public var perLayerInput: Int?
    /// Gemma 4: routed experts beside the dense MLP, their outputs normed and added.
    public var expertsBesideMLP = false
    /// Multi-head latent attention in place of q/k/v projections, if any.
    public var latent: LatentAttention?

    /// Qwen3's per-head q/k norms (the name the older families' files use).
    public var headNorms: Bool { headNorm != .none }
    public var sandwichNorms: Bool { norms == .sandwich || norms == .glm }
    /// Whether norms sit on the sub-blocks' outputs (sandwich, GLM's four, post-norm).
    var normsOutputs: Bool { norms == .sandwich || norms == .glm || norms == .post }

    public init(fusedProjections: Bool = false, plainMLP: Bool = false, headNorm: HeadNorm = .none,
                norms: Norms = .pre, scoreSoftcap: Bool = false) {
        self.fusedProjections = fusedProjections
        self.plainMLP = plainMLP
        self.headNorm = headNorm
        self.norms = norms
        self.scoreSoftcap = scoreSoftcap
    }
}

/// Shared experts of a mixture-of-experts block: every token runs them beside its routed ones.
public enum SharedExpert: Equatable, Sendable {
    /// Qwen2-MoE: the shared MLP's output scaled by sigmoid(`shared_expert_gate`(x)).
    case gated
    /// DeepSeek, GLM-5: added as it is.
    case plain
    /// Granite MoE Shared: gate and up in one `input_linear`, added as it is.
    case fusedGateUp
}

/// Mamba-2's widths (Dao & Gu 2024, "Transformers are SSMs"; `NemotronHMamba2Mixer`):
/// heads × head width for x and z, `groups` groups of B and C of `state` each, the
/// convolution's taps.
public struct StateSpace: Equatable, Sendable {
    public var heads: Int, headDim: Int, groups: Int, state: Int, kernel: Int
    /// The gated RMSNorm before `out_proj` (Falcon-H1 only with `mamba_rms_norm`; without it
    /// the scan gates its output by z itself).
    public var norm = true
    public init(heads: Int, headDim: Int, groups: Int, state: Int, kernel: Int) {
        (self.heads, self.headDim, self.groups, self.state, self.kernel) = (heads, headDim, groups, state, kernel)
    }
    public var width: Int { heads * headDim }
    public var convDim: Int { width + 2 * groups * state }
}

/// Gated DeltaNet's widths (Yang et al. 2024, "Gated Delta Networks"; `Qwen3_5GatedDeltaNet`):
/// key heads × key head width for q and k, value heads × value head width for v, the
/// convolution's kernel.
public struct LinearAttention: Equatable, Sendable {
    public var keyHeads: Int, keyDim: Int, valueHeads: Int, valueDim: Int, kernel: Int
    /// Qwen3-Next: q, k, v, z in one projection and b, a in another.
    public var fused = false
    public var qk: Int { keyHeads * keyDim }
    public var v: Int { valueHeads * valueDim }
}

/// Multi-head latent attention's widths (DeepSeek-V2 §2.1): the query and key-value
/// latent ranks (query rank 0: a plain `q_proj`) and the per-head no-rope, rope and value widths.
public struct LatentAttention: Equatable, Sendable {
    public var qRank: Int, kvRank: Int, nope: Int, rope: Int, v: Int
    /// DeepSeek-V3.2, GLM-5: the sparse attention's lightning indexer.
    public var indexer = false
}

/// DeepSeek-V4's attention (DeepSeek-V4 report §2.3; `DeepseekV4Attention`, Transformers
/// 5.25): queries through a latent (`q_a_proj`, its norm, `q_b_proj`, a weightless norm per
/// head), one key head that is also the value (`kv_proj`), partial interleaved rotary on the
/// last `rope` channels of each head, learned sinks, eager attention over the sequence (the
/// sliding window is a mask) plus, in the compressed layers, one entry per `rate` tokens
/// (compressed sparse attention, rate `csaRate`, with a lightning indexer; heavily compressed
/// attention, rate `hcaRate`), the rotary undone on the output, and the output through
/// `groups` blocks of `groupRank` then one mixing projection.
public struct CompressedAttention: Equatable, Sendable {
    public var qRank: Int, rope: Int, groups: Int, groupRank: Int
    public var csaRate: Int, hcaRate: Int
    public var indexerHeads: Int, indexerDim: Int, indexerTopK: Int
    /// The layers of each kind (the rest slide over the window only).
    public var csaLayers: [Int], hcaLayers: [Int]
}

/// Manifold-constrained hyper-connections (Xie et al. 2026; `DeepseekV4HyperConnection`):
/// `streams` copies of the residual, mixed by weights from one projection of all of them,
/// the residual mixing projected by `sinkhornIterations` Sinkhorn-Knopp steps.
public struct HyperConnections: Equatable, Sendable {
    public var streams: Int, sinkhornIterations: Int
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
    public var configHasKVHeads: Bool { family.spec.configHasKVHeads }
    /// The decoder block the symbolic forward plays.
    public var block: BlockShape
    /// Width of each head that the rotary embedding turns (0: no rotary; GPT-NeoX: a quarter).
    public var rotaryDim: Int
    /// Dropout on the embeddings' output in training (GPT-2's `embd_pdrop` path); 0 when none.
    public var embeddingDropout: Double
    /// Final-logit soft-capping (Gemma 2) adds logits-sized tensors to the loss.
    public var finalLogitSoftcapping: Bool
    /// Cohere 2: `logits * logit_scale` makes one more logits-sized tensor (a product by a
    /// number keeps nothing for backward).
    public var scaledLogits = false
    /// The attention implementation Transformers can use (Gemma 2 supports only eager).
    public var supportsSDPA: Bool
    /// The quantisation a published checkpoint ships in (`quantization_config.quant_method`:
    /// gpt-oss's `mxfp4` experts, DeepSeek's and MiniMax's `fp8` blocks), which training
    /// dequantises to the compute dtype; nil for a 16-bit checkpoint.
    public var shippedQuantisation: String? = nil

    /// The name prefix of block modules ("model.layers"), used to build full names.
    public var layerPrefix: String
    /// A vision-language model's image side (its modules are in `modules`), nil for text models.
    public var vision: VisionTower? = nil
    /// Methods whose training step fails on this model in the pinned Transformers and PEFT,
    /// with why (DeepSeek-V4: prefix tuning's cache, prompt tuning's embeddings): refused.
    public var failingMethods: [Method: String] = [:]

    /// Total parameters as Hugging Face counts them (`named_parameters()`, tied once).
    public var totalParams: Int {
        modules.reduce(0) { $0 + $1.params * instances($1) }
    }

    /// How many instances of `m` the model holds: one outside the blocks, one per layer
    /// that has it inside.
    public func instances(_ m: ModuleSpec) -> Int { m.perLayer ? (m.layers?.count ?? numLayers) : m.repeats }

    /// The index of each instance of `m`: its layers inside the blocks, 0..<repeats outside.
    public func instanceIndices(_ m: ModuleSpec) -> [Int] { m.perLayer ? layerIndices(m) : Array(0..<m.repeats) }

    /// Parameters of the image side (vision tower and projector), which full fine-tuning
    /// leaves frozen; 0 for a text model.
    public var visionParams: Int {
        modules.reduce(0) { $0 + ($1.isVision ? $1.params * instances($1) : 0) }
    }

    /// The layers that hold block module `m` (empty for a module outside the blocks).
    public func layerIndices(_ m: ModuleSpec) -> [Int] { m.perLayer ? (m.layers ?? Array(0..<numLayers)) : [] }

    /// Whether block module `m` is in layer `layer`.
    public func has(_ m: ModuleSpec, layer: Int) -> Bool { m.perLayer && (m.layers?.contains(layer) ?? (layer < numLayers)) }

    /// The kinds of layer from layer `start` on, each as its first layer and how many
    /// layers are of that kind (layers of a kind hold the same modules); in layer order.
    public func layerKinds(from start: Int) -> [(layer: Int, count: Int)] {
        guard start < numLayers else { return [] }
        guard layersDiffer else { return [(start, numLayers - start)] }
        let varying = modules.indices.filter { modules[$0].perLayer && modules[$0].layers != nil }
        var kinds: [(signature: [Int], layer: Int, count: Int)] = []
        for i in start..<numLayers {
            let signature = varying.filter { has(modules[$0], layer: i) }
            if let k = kinds.firstIndex(where: { $0.signature == signature }) { kinds[k].count += 1 } else { kinds.append((signature, i, 1)) }
        }
        return kinds.map { ($0.layer, $0.count) }
    }

    /// The last name component of every Linear in the blocks, in module order, once each,
    /// leaving out `excluded` names — the module list a LoRA
    /// target list names when all-linear cannot be used.
    public func blockLinearNames(excluding excluded: Set<String> = []) -> [String] {
        var names: [String] = []
        for m in modules where m.perLayer && m.kind == .linear {
            let name = String(m.name.split(separator: ".").last ?? Substring(m.name))
            if !excluded.contains(name) && !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// Whether the layers differ from one another.
    public var layersDiffer: Bool { modules.contains { $0.perLayer && $0.layers != nil } }

    /// Parameters outside the decoder blocks (embeddings, final norm, untied lm_head).
    public var nonBlockParams: Int {
        modules.reduce(0) { $0 + ($1.perLayer ? 0 : $1.params * instances($1)) }
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
            case .norm, .router, .experts, .parameters: own = (m.ownParams, false)
            }
            if own.1 { return nil }
            let n = (m.tied ? (m.kind == .linear && m.bias ? m.outFeatures : 0) : own.0).multipliedReportingOverflow(by: instances(m))
            if n.overflow { return nil }
            let s = total.addingReportingOverflow(n.partialValue)
            if s.overflow || s.partialValue > limit { return nil }
            total = s.partialValue
        }
        return total
    }

    /// Parameters in block Linear weights: the part bitsandbytes quantises for QLoRA.
    public var blockLinearWeightParams: Int {
        modules.reduce(0) { $0 + ($1.quantisedBy4Bit ? $1.weightElements * instances($1) : 0) }
    }

    /// Parameters a token touches in one forward pass (MoE: only its experts).
    public var activeParams: Int {
        guard numExperts > 0 else { return totalParams }
        let experts = modules.filter { $0.kind == .experts }.reduce(0) { $0 + $1.params * instances($1) }
        return totalParams - experts + experts / numExperts * expertsPerToken
    }

    /// The full name of a module instance in layer `layer` (its first layer for matching).
    public func fullName(_ m: ModuleSpec, layer: Int? = nil) -> String {
        if m.perLayer { return "\(layerPrefix).\(layer ?? m.layers?.first ?? 0).\(m.name)" }
        return m.repeats > 1 || m.name.contains("*") ? m.name.replacingOccurrences(of: "*", with: "\(layer ?? 0)") : m.name
    }

    /// The input (token) embedding's full name, whatever the family calls it
    /// (`model.embed_tokens`, `transformer.wte`, `gpt_neox.embed_in`, `transformer.word_embeddings`, …).
    public var inputEmbeddingName: String? { module(.embed)?.name }

    /// The module that plays `role` (block modules once), if the model has one.
    public func module(_ role: ModuleRole) -> ModuleSpec? { modules.first { $0.role == role } }

    /// The module that plays `role` in layer `layer` (block roles), or outside the blocks.
    public func module(_ role: ModuleRole, layer: Int) -> ModuleSpec? {
        modules.first { $0.role == role && (!$0.perLayer || has($0, layer: layer)) }
    }

    /// GPT-2 and OPT learn a table of positions: no sequence can be longer than it.
    public var hasLearnedPositions: Bool { modules.contains { $0.kind == .positionEmbedding } }

    /// Width of the keys and values of one token in one layer.
    public var kvDim: Int { nKVHeads * headDim }
    /// Width of the queries (and of the attention output) of one token in one layer.
    public var qDim: Int { numHeads * headDim }
}
