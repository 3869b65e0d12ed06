import Foundation

extension FamilySpec {
    /// Gemma (`GemmaConfig`, `modeling_gemma.py`): RMSNorm scaled by (1 + weight), tied head.
    static let gemma = FamilySpec(
        read: { try GatedReader(family: .gemma, tiedByDefault: true, attentionBias: .fromConfig, norm: .rmsOnePlusWeight).read($0, name: $1) },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        kvHeadsDefault: 16,
        liger: LigerPatch(),
        unslothKernels: true)
}
