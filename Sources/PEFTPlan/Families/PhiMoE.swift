import Foundation

extension FamilySpec {
    /// Phi-3.5-MoE (`PhimoeConfig`, `modeling_phimoe.py`): LayerNorms with bias, q/k/v/o
    /// biases from `attention_bias`, experts in every layer behind a Linear router
    /// (`mlp.router`, which all-linear wraps), an optional bias on `lm_head` (`lm_head_bias`).
    /// Transformers maps no conversion for it: PEFT leaves the fused experts alone.
    static let phimoe = FamilySpec(
        read: {
            try GatedReader(family: .phimoe, attentionBias: .fromConfig, headBiasFromConfig: true, norm: .layer,
                            moe: MoEReader(routerName: "router", routerIsLinear: true, countKeys: ["num_local_experts"],
                                           expertWidthKeys: ["intermediate_size"])).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        loraFailingModules: ["router": "PhiMoE's router, a Linear whose forward returns a tuple"],
        kvHeadsDefault: 8)
}
