import Foundation

extension FamilySpec {
    /// Qwen3-Next (`Qwen3NextConfig`, `modeling_qwen3_next.py`): three Gated DeltaNet layers
    /// (fused `in_proj_qkvz`, `in_proj_ba`) to one full-attention layer whose `q_proj` also
    /// yields an output gate; per-head q/k norms; Gemma-style (1 + weight) RMSNorm; routed
    /// experts and a gated shared expert. PEFT rewrites all-linear (Qwen2-MoE pattern).
    static let qwen3Next = FamilySpec(
        read: {
            try GatedReader(family: .qwen3Next, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(headNorm: .perHead),
                            moe: MoEReader(shared: .gatedOne, layersRule: .qwenSparseStep, denseWidthDefault: 5632),
                            linearAttention: LinearAttentionReader(fused: true)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE,
        kvHeadsDefault: 2,
        liger: LigerPatch(fusedMoE: true))
}
