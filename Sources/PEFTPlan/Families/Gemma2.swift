import Foundation

extension FamilySpec {
    /// Gemma 2 (`Gemma2Config`, `modeling_gemma2.py`): Gemma's norms around both sub-blocks
    /// too, soft-capped attention scores and logits, and eager attention only.
    static let gemma2 = FamilySpec(
        read: {
            try GatedReader(family: .gemma2, tiedByDefault: true, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(norms: .sandwich, scoreSoftcap: true)).read($0, name: $1)
        },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        kvHeadsDefault: 4,
        liger: LigerPatch(),
        unslothKernels: true)
}
