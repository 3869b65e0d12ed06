import Foundation

extension FamilySpec {
    /// Llama 4 Scout and Maverick, text model (`Llama4TextConfig`, `modeling_llama4.py`):
    /// Llama's attention with a parameter-free q/k RMSNorm in the rotary layers
    /// (`use_qk_norm`, `no_rope_layers`); experts in the `moe_layers` (else every
    /// `interleave_moe_layer_step`-th layer) beside a shared expert as wide as one expert, a
    /// Linear router (which all-linear wraps), fused experts stored input-major; the other
    /// layers a dense MLP of `intermediate_size_mlp`, all under `feed_forward`. Transformers
    /// runs every expert on every token (``GatedBlock/denseExpertDispatch``). The NoPE
    /// layers' temperature scaling keeps a per-token factor only, not modelled. Transformers
    /// maps no conversion for it and PEFT has no default targets for `llama4_text`.
    static let llama4Text = FamilySpec(
        read: { try readLlama4($0, $1, family: .llama4Text) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        loraFailingModules: ["router": "Llama 4's router, a Linear whose forward returns a tuple"],
        kvHeadsDefault: 8)

    /// A Llama 4 checkpoint's own config (`Llama4Config`, model type `llama4`): the language
    /// model is read from `text_config`, as AutoModelForCausalLM builds `Llama4ForCausalLM`
    /// from it (the vision tower is not part of that model).
    static let llama4 = FamilySpec(
        read: { try readLlama4($0, $1, family: .llama4) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        nestedTextConfig: true,
        loraFailingModules: ["router": "Llama 4's router, a Linear whose forward returns a tuple"],
        kvHeadsDefault: 8)

    static func readLlama4(_ f: ConfigReader.Fields, _ name: String, family: ModelFamily) throws -> Architecture {
        var reader = GatedReader(family: family, attentionBias: .fromConfig,
                                 moe: MoEReader(prefix: "feed_forward", routerName: "router", routerIsLinear: true,
                                                countKeys: ["num_local_experts"], expertWidthKeys: ["intermediate_size"],
                                                shared: .llama4, layersRule: .listedOrInterleaved, inputMajor: true))
        reader.intermediateKeys = ["intermediate_size_mlp"]
        reader.mlpPrefix = "feed_forward"
        reader.headDimDefault = 128                     // Llama4TextConfig.head_dim
        reader.weightlessQKNormInRotaryLayers = true
        var a = try reader.read(f, name: name)
        if case var .gated(block) = a.block {
            block.denseExpertDispatch = true
            a.block = .gated(block)
        }
        return a
    }
}
