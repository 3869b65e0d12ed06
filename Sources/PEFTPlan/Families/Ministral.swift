import Foundation

extension FamilySpec {
    /// Ministral (`MinistralConfig`, `modeling_ministral.py`; Ministral-8B-2410): Mistral's
    /// block with sliding-window and full layers (`layer_types`), no biases.
    static let ministral = FamilySpec(
        read: { try GatedReader(family: .ministral).read($0, name: $1) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 8,
        liger: LigerPatch())

    /// Ministral 3 (`Ministral3Config`, `modeling_ministral3.py`; the Ministral 3 text models and
    /// the language model of Mistral 3): Llama's block, no biases, `head_dim` 128 by default.
    static let ministral3 = FamilySpec(
        read: { try GatedReader(family: .ministral3, headDimDefault: 128).read($0, name: $1) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 8)
}
