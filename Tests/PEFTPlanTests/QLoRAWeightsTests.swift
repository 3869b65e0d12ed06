import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// What QLoRA's base model holds, against real bitsandbytes on the CPU
/// (scripts/qlora_weights_reference.py): which weights bitsandbytes quantises to 4 bits and
/// the bytes of everything else after prepare_model_for_kbit_training (and as loaded, for
/// stacks that skip it: `--qlora-rest model`). A mixture of experts
/// matters here: Transformers v5 fuses its experts into 3-D parameters, which the quantizer
/// (nn.Linear only) leaves 16-bit and PEFT then upcasts to fp32.
@Suite("QLoRA's base weights against bitsandbytes")
struct QLoRAWeightsTests {
    nonisolated(unsafe) static let cases: [(id: String, config: [String: Any])] = [
        ("moe", ["model_type": "qwen3_moe", "hidden_size": 128, "intermediate_size": 256, "moe_intermediate_size": 64,
                 "num_experts": 8, "num_experts_per_tok": 2, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512]),
        ("shared-expert", ["model_type": "qwen2_moe", "hidden_size": 128, "intermediate_size": 256, "moe_intermediate_size": 64,
                           "shared_expert_intermediate_size": 96, "num_experts": 4, "num_experts_per_tok": 2,
                           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512]),
        ("dense", ["model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512]),
    ]

    nonisolated(unsafe) static let reference: Result<[String: Any], PythonReference.ReferenceError> =
        PythonReference.run(script: "qlora_weights_reference.py", input: cases.map { ["id": $0.id, "config": $0.config] })

    @Test("4-bit elements and the fp32 rest equal bitsandbytes + prepare_model_for_kbit_training", arguments: cases.map(\.id))
    func matches(_ id: String) throws {
        let expected = try #require(try Self.reference.get()[id] as? [String: Any])
        if let error = expected["error"] as? String { Issue.record("the reference failed: \(error)"); return }
        #expect(expected["other_dtypes"] as? [String] == ["torch.float32"])
        let config = try #require(Self.cases.first { $0.id == id }?.config)
        let arch = try ConfigReader.parse(data: JSONSerialization.data(withJSONObject: config), name: id)
        #expect(arch.blockLinearWeightParams == expected.int("quantised_elements"), "weights bitsandbytes quantises")
        let account = try ParameterAccounting.account(arch, method: .qlora, options: { var o = MethodOptions(); o.loraTargets = .allLinear; return o }())
        let frozen = MemoryComponents.frozenWeights(arch, account: account, precision: .bf16, options: MethodOptions())
        let fourBit = arch.modules.reduce(0) { $0 + ($1.perLayer && $1.weightElements > 0
            ? MemoryComponents.nf4Bytes(elements: $1.weightElements, doubleQuant: true) * arch.instances($1) : 0) }
        #expect(frozen - fourBit == expected.int("other_bytes"), "bytes left unquantised (fp32)")
        // a stack that never calls prepare_model_for_kbit_training (--qlora-rest model) trains
        // the rest as loaded: bf16
        #expect(expected["loaded_other_dtypes"] as? [String] == ["torch.bfloat16"])
        var kept = MethodOptions()
        kept.qloraRest = .model
        let loaded = MemoryComponents.frozenWeights(arch, account: account, precision: .bf16, options: kept)
        #expect(loaded - fourBit == expected.int("loaded_other_bytes"), "bytes left unquantised (as loaded)")
    }
}
