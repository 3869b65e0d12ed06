import Foundation

extension FamilySpec {
    /// Qwen3-MoE (`Qwen3MoeConfig`, `modeling_qwen3_moe.py`; Qwen3-30B-A3B, 235B-A22B,
    /// Qwen3-Coder-480B): Qwen3's attention with per-head q/k norms, routed experts only.
    /// PEFT rewrites all-linear to the router and fused experts (the Qwen2-MoE pattern).
    static let qwen3MoE = FamilySpec(
        read: {
            try GatedReader(family: .qwen3MoE, attentionBias: .fromConfig, block: GatedBlock(headNorm: .perHead),
                            moe: MoEReader(layersRule: .qwenSparseStep, denseWidthDefault: 6144)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE,
        kvHeadsDefault: 4,
        liger: LigerPatch(fusedMoE: true))
}
