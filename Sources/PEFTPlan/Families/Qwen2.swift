import Foundation

extension FamilySpec {
    /// Qwen2 and Qwen2.5 (`Qwen2Config`, `modeling_qwen2.py`): bias on q, k, v, none on o.
    static let qwen2 = FamilySpec(
        read: { try GatedReader(family: .qwen2, attentionBias: .fixed(qkv: true, o: false)).read($0, name: $1) },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        kvHeadsDefault: 32,
        liger: LigerPatch(),
        unslothKernels: true)
}
