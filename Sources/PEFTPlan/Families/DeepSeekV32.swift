import Foundation

extension FamilySpec {
    /// DeepSeek-V3.2 (`DeepseekV32Config`, `modeling_deepseek_v32.py`): V3 with the sparse
    /// attention's lightning indexer (`index_n_heads` × `index_head_dim` queries from the
    /// query latent, one key head with a LayerNorm, per-head weights).
    static let deepseekV32 = FamilySpec(
        read: {
            try GatedReader(family: .deepseekV32, mla: MLAReader(indexer: true))
                .with(moe: MoEReader(countKeys: ["n_routed_experts"], shared: .summed, layersRule: .firstKDense, denseWidthDefault: 18432, firstKDenseDefault: 3, fp32Router: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE)
}
