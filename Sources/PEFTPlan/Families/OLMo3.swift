import Foundation

extension FamilySpec {
    /// OLMo 3 (`Olmo3Config`, `modeling_olmo3.py`): OLMo 2's block — norms after attention and
    /// after the MLP, RMSNorm over the whole q and k, the weight applied in fp32 — with
    /// sliding-window layers between full ones (`layer_types`); the window changes which keys a
    /// query sees, not what is stored (SDPA's memory does not depend on the mask).
    static let olmo3 = FamilySpec(
        read: {
            try GatedReader(family: .olmo3, attentionBias: .fromConfig, norm: .rmsWeightInFP32,
                            block: GatedBlock(headNorm: .fullWidth, norms: .post)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        liger: LigerPatch())
}
