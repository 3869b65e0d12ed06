import Foundation

extension FamilySpec {
    /// EXAONE 4 (`Exaone4Config`, `modeling_exaone4.py`): post-norm blocks like OLMo 2 with
    /// per-head q/k norms; sliding and full layers (`layer_types`) share their shapes.
    static let exaone4 = FamilySpec(
        read: {
            try GatedReader(family: .exaone4, block: GatedBlock(headNorm: .perHead, norms: .post)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 32,
        liger: LigerPatch(headNorms: true))
}
