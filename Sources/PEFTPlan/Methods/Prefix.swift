import Foundation

extension MethodSpec {
    /// Prefix tuning (Li & Liang 2021; PEFT `PrefixTuningConfig`): learned keys and values in
    /// front of every layer's, optionally through a reparameterisation MLP. PEFT passes them
    /// as past key values, which gradient checkpointing refuses.
    static let prefix = MethodSpec(
        title: "prefix tuning", base: .frozen, checkpointing: .refused, wrapper: nil, virtualTokens: .keysValues,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [.prefix], leaner: nil,
        account: { arch, method, o in
            let t = o.prefixTokens
            let td = ParameterAccounting.prefixTokenDim(arch)
            let perToken = arch.numLayers * 2 * td
            var trainable = [AdapterTensor(name: "prompt_encoder.embedding.weight", shape: [t, o.prefixProjection > 0 ? td : perToken])]
            if o.prefixProjection > 0 {
                let p = o.prefixProjection
                trainable += [AdapterTensor(name: "prompt_encoder.transform.0.weight", shape: [p, td]),
                              AdapterTensor(name: "prompt_encoder.transform.0.bias", shape: [p]),
                              AdapterTensor(name: "prompt_encoder.transform.2.weight", shape: [perToken, p]),
                              AdapterTensor(name: "prompt_encoder.transform.2.bias", shape: [perToken])]
            }
            // save_pretrained() stores the prefix itself (the projection's output), not the MLP.
            let saved = [AdapterTensor(name: "prompt_embeddings", shape: [t, perToken])]
            return ParameterAccounting.promptLearning(arch, method, trainable, saved)
        })
}

extension MethodNote {
    static let prefix = MethodNote(order: 40) { o in
        "prefix tuning: \(o.prefixTokens) virtual tokens\(o.prefixProjection > 0 ? ", projection \(o.prefixProjection)" : "")"
    }
}
