import Foundation

extension MethodSpec {
    /// Full fine-tuning: every weight trains, with gradients and optimizer states — but a
    /// vision-language model's tower and projector, which stay frozen (LLaMA-Factory's
    /// defaults `freeze_vision_tower` and `freeze_multi_modal_projector`, finetuning_args.py).
    static let full = MethodSpec(
        title: "full fine-tuning", base: .trained, checkpointing: .optional, wrapper: nil, virtualTokens: nil,
        insertsBottleneck: false, promptEncoderMLP: false, notes: [],
        leaner: (.lora, "LoRA instead of full fine-tuning (\(setting: .method, "lora"))"),
        account: { arch, method, _ in
            let base = arch.totalParams
            return ParameterAccount(method: method, baseParams: base, trainableParams: base - arch.visionParams, totalParams: base,
                                    adapterTensors: [], wrapped: [], adapterFileBytes: 0)
        })
}
