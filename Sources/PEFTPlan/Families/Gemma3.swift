import Foundation

extension FamilySpec {
    /// Gemma 3's language model (`Gemma3TextConfig`, `modeling_gemma3.py`): Gemma 2's
    /// sandwich norms, per-head q/k norms, `head_dim` 256 by default, sliding and full layers
    /// of the same shapes; no score soft-capping, logits capped only when the config says.
    static let gemma3Text = FamilySpec(
        read: {
            try GatedReader(family: .gemma3Text, tiedByDefault: true, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(headNorm: .perHead, norms: .sandwich), headDimDefault: 256,
                            logitSoftcapFromConfig: true).read($0, name: $1)
        },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 4)
}
