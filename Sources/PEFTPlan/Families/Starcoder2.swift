import Foundation

extension FamilySpec {
    /// StarCoder2 (`Starcoder2Config`, `modeling_starcoder2.py`): LayerNorm with bias, a
    /// plain GELU MLP (`c_fc`, `c_proj`), bias on every projection (`use_bias`, default true).
    static let starcoder2 = FamilySpec(
        read: {
            try GatedReader(family: .starcoder2, tiedByDefault: true, attentionBias: .useBias, norm: .layer,
                            block: GatedBlock(plainMLP: true), readsDropouts: true).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 2)
}
