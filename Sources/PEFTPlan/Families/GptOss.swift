import Foundation

extension FamilySpec {
    /// gpt-oss (`GptOssConfig`, `modeling_gpt_oss.py`): biased attention projections with a
    /// learned sink per head, `head_dim` 64 by default, `num_local_experts` experts with
    /// biases behind a biased router (not an nn.Linear). Not in Transformers' conversion
    /// table, so PEFT's all-linear wraps the attention only. The published checkpoints store
    /// the experts in MXFP4; Transformers dequantises them to bf16 to train (Mxfp4Config
    /// `dequantize=True`), which is what peft-plan plans.
    static let gptOss = FamilySpec(
        read: {
            try GatedReader(family: .gptOss, attentionBias: .fromConfig,
                            moe: MoEReader(routerName: "router", routerBias: true, countKeys: ["num_local_experts"],
                                           perTokenKeys: ["num_experts_per_tok", "experts_per_token"],
                                           expertWidthKeys: ["intermediate_size"], expertBias: true),
                            sinks: true, headDimDefault: 64, clampedSwiGLU: true).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 8,
        liger: LigerPatch(mlp: false))
}
