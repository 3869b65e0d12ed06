import Foundation

extension FamilySpec {
    /// Llama 1–3 (`LlamaConfig`, `modeling_llama.py`): `attention_bias` and `mlp_bias` in the config.
    static let llama = FamilySpec(
        read: { try GatedReader(family: .llama, attentionBias: .fromConfig, mlpBiasFromConfig: true).read($0, name: $1) },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        liger: LigerPatch(),
        unslothKernels: true)
}
