import Foundation

extension FamilySpec {
    /// Granite (`GraniteConfig`, `modeling_granite.py`; Granite 3.x dense): Llama's block with
    /// `attention_bias` and `mlp_bias` from the config; its multipliers (embedding, residual,
    /// attention, logits scaling) scale tensors without adding any.
    static let granite = FamilySpec(
        read: { try GatedReader(family: .granite, attentionBias: .fromConfig, mlpBiasFromConfig: true).read($0, name: $1) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        liger: LigerPatch())

    /// Granite MoE (`GraniteMoeConfig`, `modeling_granitemoe.py`; Granite 3.x 1B-A400M,
    /// 3B-A800M): experts in every layer under `block_sparse_moe`, a bias-free router
    /// parameter, `intermediate_size` per expert. Transformers maps no conversion for it, so
    /// PEFT's all-linear wraps attention only.
    static let granitemoe = FamilySpec(
        read: {
            try GatedReader(family: .granitemoe, attentionBias: .fromConfig,
                            moe: MoEReader(prefix: "block_sparse_moe", routerName: "router", countKeys: ["num_local_experts"],
                                           expertWidthKeys: ["intermediate_size"])).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil)

    /// Granite MoE with a shared MLP (`GraniteMoeSharedConfig`): Granite MoE plus, when
    /// `shared_intermediate_size` is not 0, `shared_mlp` (`input_linear`: gate and up together,
    /// `output_linear`) run on every token.
    static let granitemoeshared = FamilySpec(
        read: {
            try GatedReader(family: .granitemoeshared, attentionBias: .fromConfig,
                            moe: MoEReader(prefix: "block_sparse_moe", routerName: "router", countKeys: ["num_local_experts"],
                                           expertWidthKeys: ["intermediate_size"], shared: .graniteShared)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil)
}
