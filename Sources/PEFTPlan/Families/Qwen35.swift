import Foundation

extension FamilySpec {
    /// Qwen3.5 (`Qwen3_5Config`, `modeling_qwen3_5.py`): a vision-language config whose
    /// language model (`text_config`, what AutoModelForCausalLM builds) has three Gated DeltaNet
    /// layers (`in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a`) to one gated full-attention
    /// layer, per-head q/k norms, Gemma-style RMSNorm and a dense MLP. The vision tower is not
    /// planned yet (issue 15); nor the multi-token-prediction layer, which Transformers does not build.
    static let qwen35 = FamilySpec(
        read: {
            try GatedReader(family: .qwen35, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(headNorm: .perHead), linearAttention: LinearAttentionReader()).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        nestedTextConfig: true,
        kvHeadsDefault: 4,
        liger: LigerPatch())

    /// Qwen3.5-MoE (`Qwen3_5MoeConfig`): Qwen3.5's layers with routed experts and a gated
    /// shared expert. Transformers maps its text type to Qwen3.5's conversion, which has no
    /// expert rewrite in PEFT: all-linear wraps the Linear modules only.
    static let qwen35MoE = FamilySpec(
        read: {
            try GatedReader(family: .qwen35MoE, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(headNorm: .perHead),
                            moe: MoEReader(shared: .gatedOne, layersRule: .qwenSparseStep),
                            linearAttention: LinearAttentionReader()).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        nestedTextConfig: true,
        kvHeadsDefault: 2,
        liger: LigerPatch(fusedMoE: true))
}
