import Foundation

extension FamilySpec {
    /// Mistral (`MistralConfig`, `modeling_mistral.py`): Llama's block without biases.
    static let mistral = FamilySpec(
        read: { try GatedReader(family: .mistral).read($0, name: $1) },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        kvHeadsDefault: 8,
        liger: LigerPatch(),
        unslothKernels: true)
}
