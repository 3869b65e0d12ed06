import Foundation

extension FamilySpec {
    /// SmolLM3 (`SmolLM3Config`, `modeling_smollm3.py`): Llama's block; every fourth layer
    /// skips the rotary embedding (`no_rope_layers`), which changes no parameter. Tied by default.
    static let smollm3 = FamilySpec(
        read: {
            try GatedReader(family: .smollm3, tiedByDefault: true, attentionBias: .fromConfig, mlpBiasFromConfig: true).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 4,
        liger: LigerPatch())
}
