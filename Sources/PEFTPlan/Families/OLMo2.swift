import Foundation

extension FamilySpec {
    /// OLMo 2 (`Olmo2Config`, `modeling_olmo2.py`): norms after attention and after the MLP
    /// only (inside the residual), RMSNorm over the whole q and k projections.
    static let olmo2 = FamilySpec(
        read: {
            try GatedReader(family: .olmo2, attentionBias: .fromConfig, norm: .rmsWeightInFP32, block: GatedBlock(headNorm: .fullWidth, norms: .post)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        liger: LigerPatch())
}
