import Foundation

extension MethodSpec {
    /// QLoRA (Dettmers et al. 2023): LoRA over a base whose block Linear weights are stored
    /// in bitsandbytes 4-bit; `prepare_model_for_kbit_training` upcasts the rest to fp32 and
    /// turns gradient checkpointing on (``QLoRARest``: stacks that skip the call keep the rest 16-bit).
    static let qlora = MethodSpec(
        title: "QLoRA", base: .quantised4bit, checkpointing: .forced(reason: "as prepare_model_for_kbit_training turns it on"), wrapper: .lowRank, virtualTokens: nil,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [.lowRank, .quantisation], leaner: nil,
        account: ParameterAccounting.lowRank)
}

extension MethodNote {
    static let quantisation = MethodNote(order: 20) { o in
        "QLoRA \(o.quant.rawValue)\(o.doubleQuant ? " with double quantisation" : ""): block Linear weights 4-bit, "
            + (o.qloraRest == .fp32 ? "embeddings/norms/lm_head upcast to fp32 by prepare_model_for_kbit_training"
                : "embeddings/norms/lm_head and the residual stream kept in the model's 16-bit dtype (no prepare_model_for_kbit_training)")
    }
}
