import Foundation

extension FamilySpec {
    /// GLM-5 (`GlmMoeDsaConfig`, `modeling_glm_moe_dsa.py`): DeepSeek-V3.2's latent attention
    /// and indexer, GLM's experts.
    static let glmMoeDsa = FamilySpec(
        read: {
            try GatedReader(family: .glmMoeDsa, mla: MLAReader(indexer: true, qRankDefault: 2048))
                .with(moe: MoEReader(countKeys: ["n_routed_experts"], shared: .summed, layersRule: .firstKDense, denseWidthDefault: 12288, firstKDenseDefault: 3, fp32Router: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE)
}
