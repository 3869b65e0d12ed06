import Foundation

extension FamilySpec {
    /// OLMoE (`OlmoeConfig`, `modeling_olmoe.py`; OLMoE-1B-7B): Llama's pre-norm block with
    /// RMSNorm over the whole q and k, experts in every layer (`intermediate_size` per expert,
    /// a router parameter). `clip_qkv`, when set, clamps q, k and v in place; that clamp's mask
    /// is not in the activation model (OLMoE's published configs leave it null). PEFT rewrites
    /// all-linear to the router and fused experts (the Qwen2-MoE pattern).
    static let olmoe = FamilySpec(
        read: {
            try GatedReader(family: .olmoe, attentionBias: .fromConfig, block: GatedBlock(headNorm: .fullWidth),
                            moe: MoEReader(expertWidthKeys: ["intermediate_size"])).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .qwen2MoE)
}
