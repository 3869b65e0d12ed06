import Foundation

extension FamilySpec {
    /// MiniMax-M2 (`MiniMaxM2Config`, `modeling_minimax_m2.py`): full-width q/k norms,
    /// `head_dim` 128 by default, `num_local_experts` experts of `intermediate_size` behind a
    /// sigmoid router. PEFT rewrites all-linear (the Mixtral pattern).
    static let minimaxM2 = FamilySpec(
        read: {
            try GatedReader(family: .minimaxM2, block: GatedBlock(headNorm: .fullWidth),
                            moe: MoEReader(countKeys: ["num_local_experts"], expertWidthKeys: ["intermediate_size"]),
                            headDimDefault: 128).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: .mixtral,
        kvHeadsDefault: 8)
}
