import Foundation

extension FamilySpec {
    /// DeepSeek-V2 (`DeepseekV2Config`, `modeling_deepseek_v2.py`; V2, V2-Lite, Coder-V2):
    /// multi-head latent attention (`q_lora_rank` null in the Lite models: one `q_proj`), dense
    /// first `first_k_dense_replace` layers, then `n_routed_experts` experts behind a softmax
    /// router and `n_shared_experts` (2 by default) shared experts summed in; `mlp_bias` on
    /// the dense and shared MLPs. PEFT rewrites all-linear to the router and fused experts.
    static let deepseekV2 = FamilySpec(
        read: {
            try GatedReader(family: .deepseekV2, mlpBiasFromConfig: true, mla: MLAReader())
                .with(moe: MoEReader(countKeys: ["n_routed_experts"], shared: .summed, sharedCountDefault: 2,
                                     layersRule: .firstKDense, denseWidthDefault: 11008, fp32Router: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE)
}
