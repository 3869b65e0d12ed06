import Foundation

extension FamilySpec {
    /// DeepSeek-V3 (`DeepseekV3Config`, `modeling_deepseek_v3.py`; V3, R1, V3.1, Kimi K2's
    /// text model): as V2 with a sigmoid router and its correction bias (a buffer, not a
    /// parameter). The multi-token-prediction layer (`num_nextn_predict_layers`) is not built
    /// by Transformers and not planned. FP8 checkpoints are dequantised to bf16 to train.
    static let deepseekV3 = FamilySpec(
        read: {
            try GatedReader(family: .deepseekV3, mla: MLAReader())
                .with(moe: MoEReader(countKeys: ["n_routed_experts"], shared: .summed, layersRule: .firstKDense, denseWidthDefault: 18432, firstKDenseDefault: 3, fp32Router: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE)
}
