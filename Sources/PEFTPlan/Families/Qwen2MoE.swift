import Foundation

extension FamilySpec {
    /// Qwen2-MoE (`Qwen2MoeConfig`, `modeling_qwen2_moe.py`; Qwen1.5-MoE, Qwen2-57B-A14B):
    /// Qwen2's attention (bias on q, k, v), routed experts of `moe_intermediate_size` and one
    /// shared expert behind a sigmoid gate; `mlp_only_layers` and `decoder_sparse_step` make
    /// some layers dense. PEFT has no default targets; Transformers maps no conversion for
    /// this type itself, so all-linear wraps the shared expert and leaves the experts alone.
    static let qwen2MoE = FamilySpec(
        read: {
            try GatedReader(family: .qwen2MoE, attentionBias: .fixed(qkv: true, o: false),
                            moe: MoEReader(shared: .gatedOne, layersRule: .qwenSparseStep, denseWidthDefault: 5632)).read($0, name: $1)
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 16)
}
