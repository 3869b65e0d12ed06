import Foundation

extension MethodSpec {
    /// Full fine-tuning: every weight trains, with gradients and optimizer states.
    static let full = MethodSpec(
        title: "full fine-tuning", base: .trained, checkpointing: .optional, wrapper: nil, virtualTokens: nil,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [],
        leaner: (.lora, "LoRA instead of full fine-tuning (\(setting: .method, "lora"))"),
        account: { arch, method, _ in
            let base = arch.totalParams
            return ParameterAccount(method: method, baseParams: base, trainableParams: base, totalParams: base,
                                    adapterTensors: [], wrapped: [], adapterFileBytes: 0)
        })
}
