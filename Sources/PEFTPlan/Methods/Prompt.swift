import Foundation

extension MethodSpec {
    /// Prompt tuning (Lester et al. 2021; PEFT `PromptTuningConfig`): learned token
    /// embeddings in front of the input.
    static let prompt = MethodSpec(
        title: "prompt tuning", base: .frozen, checkpointing: .optional, wrapper: nil, virtualTokens: .input,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [.promptTokens], leaner: nil,
        account: { arch, method, o in
            let trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [o.promptTokens, arch.hiddenSize])]
            return ParameterAccounting.promptLearning(arch, method, trainable, trainable.map { AdapterTensor(name: "prompt_embeddings", shape: $0.shape) })
        })
}

extension MethodNote {
    static let promptTokens = MethodNote(order: 50) { o in "prompt tuning: \(o.promptTokens) virtual tokens added to every sequence" }
}
