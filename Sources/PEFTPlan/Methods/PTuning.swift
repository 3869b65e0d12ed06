import Foundation

extension MethodSpec {
    /// P-tuning (Liu et al. 2021; PEFT `PromptEncoderConfig`, MLP encoder): prompt tuning whose
    /// virtual tokens pass through an MLP every step.
    static let ptuning = MethodSpec(
        title: "P-tuning", base: .frozen, checkpointing: .optional, wrapper: nil, virtualTokens: .input,
        insertsBottleneck: false, promptEncoderMLP: true, notes: [.promptTokens], leaner: nil,
        account: { arch, method, o in
            let d = arch.hiddenSize
            let hdn = o.ptuningHidden > 0 ? o.ptuningHidden : d
            let trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [o.promptTokens, d]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.0.weight", shape: [hdn, d]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.0.bias", shape: [hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.2.weight", shape: [hdn, hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.2.bias", shape: [hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.4.weight", shape: [d, hdn]),
                             AdapterTensor(name: "prompt_encoder.mlp_head.4.bias", shape: [d])]
            return ParameterAccounting.promptLearning(arch, method, trainable, [AdapterTensor(name: "prompt_embeddings", shape: [o.promptTokens, d])])
        })
}
