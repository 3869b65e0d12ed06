import Foundation

extension FamilySpec {
    /// GLM-4 (`Glm4Config`, `modeling_glm4.py`; GLM-4-9B/32B-0414, GLM-Z1): four norms per
    /// layer under GLM's names, q/k/v biases (`attention_bias`, true by default) and none on
    /// o, gate and up fused in `gate_up_proj`, rotary on half of each head
    /// (`partial_rotary_factor` 0.5).
    static let glm4 = FamilySpec(
        read: {
            var block = GatedBlock(norms: .glm)
            block.fusedGateUp = true
            return try GatedReader(family: .glm4, attentionBias: .fromConfigQKV, attentionBiasDefault: true,
                                   partialRotaryDefault: 0.5, block: block).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 2,
        liger: LigerPatch())

    /// GLM-4.5/4.6/4.7 (`Glm4MoeConfig`, `modeling_glm4_moe.py`): pre-norm, q/k/v biases
    /// (`attention_bias`), per-head q/k norms when `use_qk_norm`, half-rotary heads, dense first
    /// `first_k_dense_replace` layers then `n_routed_experts` experts with a sigmoid router
    /// (its correction bias a buffer) and `n_shared_experts` shared experts summed in. The
    /// multi-token-prediction layer (`num_nextn_predict_layers`) is not built by Transformers
    /// and not planned. PEFT rewrites all-linear to the router and fused experts (Qwen2-MoE pattern).
    static let glm4MoE = FamilySpec(
        read: {
            try GatedReader(family: .glm4MoE, attentionBias: .fromConfigQKV, partialRotaryDefault: 0.5, headNormKey: "use_qk_norm",
                            moe: MoEReader(countKeys: ["n_routed_experts"], shared: .summed, layersRule: .firstKDense, denseWidthDefault: 10944, firstKDenseDefault: 1, fp32Router: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE,
        kvHeadsDefault: 8)
}
