import Foundation

extension FamilySpec {
    /// Qwen3 (`Qwen3Config`, `modeling_qwen3.py`): RMSNorm over each head of q and k.
    static let qwen3 = FamilySpec(
        read: { try GatedReader(family: .qwen3, attentionBias: .fromConfig, block: GatedBlock(headNorm: .perHead)).read($0, name: $1) },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        kvHeadsDefault: 32,
        liger: LigerPatch(),
        unslothKernels: true)
}
