import Foundation

extension FamilySpec {
    /// Mixtral (`MixtralConfig`, `modeling_mixtral.py`): Mistral's attention, a router and
    /// fused experts in place of the feed-forward block. PEFT 0.21.2 on Transformers v5 has
    /// no usable default LoRA target for it (the experts are no Linear modules any more).
    static let mixtral = FamilySpec(
        read: { try GatedReader(family: .mixtral, moe: MoEReader(countKeys: ["num_local_experts"], expertWidthKeys: ["intermediate_size"])).read($0, name: $1) },
        loraTargets: nil,
        ia3Targets: (["k_proj", "v_proj", "w2"], ["w2"]),
        configHasKVHeads: true,
        moeConversion: .mixtral,
        kvHeadsDefault: 8,
        liger: LigerPatch(fusedMoE: true))
}
