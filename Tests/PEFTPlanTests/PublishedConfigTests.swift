import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// Published config.json files of the models people fine-tune (Fixtures/published-configs,
/// each with its Hugging Face id and the public repository, path and commit it was copied
/// from in sources.json), read by peft-plan and built by Transformers on the meta device.
///
/// Families with no published config we could cite are checked on their configuration
/// class's defaults in the pinned Transformers instead (Fixtures/class-default-configs,
/// written by scripts/class_default_configs.py, overrides listed in its sources.json): the
/// same cases, the same reference, named `class-default:<file>`.
struct PublishedConfig: Sendable {
    let folder: String
    let file: String
    let hfID: String
    let modelType: String

    nonisolated(unsafe) static let sources: [[String: Any]] = Fixtures.json("published-configs/sources.json") as! [[String: Any]]
    nonisolated(unsafe) static let classDefaultSources: [[String: Any]] = Fixtures.json("class-default-configs/sources.json") as! [[String: Any]]
    static let published: [PublishedConfig] = sources.map {
        PublishedConfig(folder: "published-configs", file: $0["file"] as! String, hfID: $0["hf_id"] as! String, modelType: $0["model_type"] as! String)
    }
    static let classDefaults: [PublishedConfig] = classDefaultSources.map {
        PublishedConfig(folder: "class-default-configs", file: $0["file"] as! String, hfID: "class-default:\($0["file"] as! String)",
                        modelType: $0["model_type"] as! String)
    }
    static let all = published + classDefaults

    var url: URL { Fixtures.url("\(folder)/\(file)") }
}

/// The cases of every published config: full fine-tuning, LoRA with PEFT's default targets
/// (or PEFT's refusal), LoRA on all-linear, and IA³ with PEFT's defaults (or its refusal);
/// for a vision-language model also LoRA on the language model's Linears (what peft-plan
/// plans when no targets are given), as the regular expression PEFT takes.
struct PublishedCase: CustomTestStringConvertible, Sendable {
    let config: PublishedConfig
    let method: Method
    let targets: String?
    var id: String { "\(config.hfID):\(method.rawValue):\(targets ?? "default")" }
    var testDescription: String { id }

    static let all: [PublishedCase] = PublishedConfig.all.flatMap { c in
        var cases = [PublishedCase(config: c, method: .full, targets: nil), PublishedCase(config: c, method: .lora, targets: nil),
                     PublishedCase(config: c, method: .lora, targets: "all-linear"), PublishedCase(config: c, method: .ia3, targets: nil)]
        if (try? ConfigReader.read(path: c.url.path))?.isVisionLanguage == true {
            cases.append(PublishedCase(config: c, method: .lora, targets: "language-model"))
        }
        return cases
    }

    var pythonInput: [String: Any] {
        // the file itself (a round trip through JSONSerialization turns 7.0 into 7, which
        // Transformers' strict config fields refuse); a shipped quantisation is left out, as
        // training dequantises it to bf16
        var d: [String: Any] = ["id": id, "config_path": config.url.path, "dequantised": true, "method": method.rawValue, "r": 8, "alpha": 16]
        if let targets { d["targets"] = targets }
        return d
    }

    var options: MethodOptions {
        var o = MethodOptions()
        if targets == "all-linear" { o.loraTargets = .allLinear }
        if targets == "language-model" { o.loraTargets = .languageModel }
        return o
    }
}

nonisolated(unsafe) let publishedReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "peft_reference.py", input: PublishedCase.all.map(\.pythonInput))

@Suite("Published configs against Transformers + PEFT on the meta device")
struct PublishedConfigTests {
    @Test("at least 100 cases, every family peft-plan reads that has a published config")
    func coverage() throws {
        #expect(PublishedCase.all.filter { $0.config.folder == "published-configs" }.count >= 100)
        for s in PublishedConfig.sources {
            let commit = s["commit"] as? String ?? ""
            #expect(commit.count == 40 && commit.allSatisfy(\.isHexDigit), "\(s["file"]!): a source commit")
            #expect(!(s["repository"] as? String ?? "").isEmpty && !(s["path"] as? String ?? "").isEmpty)
        }
        // every family is checked against PEFT here or by the preset cases (peft-cases.json)
        let read = Set(PublishedConfig.all.compactMap { try? ConfigReader.read(path: $0.url.path).family })
        let presets = Set(CountCase.all.compactMap { try? Presets.resolve($0.model).family })
        let missing = Set(ModelFamily.allCases).subtracting(read).subtracting(presets)
        #expect(missing.isEmpty, "families no count test reaches: \(missing.map(\.rawValue))")
    }

    @Test("base, trainable and all counts equal PEFT's exactly; PEFT's refusals are refused", arguments: PublishedCase.all)
    func matchesPEFT(_ c: PublishedCase) throws {
        let reference = try publishedReference.get()
        let expected = try #require(reference[c.id] as? [String: Any], "no reference result for \(c.id)")
        let arch = try ConfigReader.read(path: c.config.url.path)
        #expect(arch.family.rawValue == c.config.modelType)
        if let error = expected["error"] as? String {
            if let a = try? ParameterAccounting.account(arch, method: c.method, options: c.options) {
                Issue.record("PEFT refused (\(error)) but peft-plan counted \(a.trainableParams) trainable")
            }
            return
        }
        let account = try ParameterAccounting.account(arch, method: c.method, options: c.options)
        #expect(arch.totalParams == expected.int("base"), "base model parameters")
        #expect(account.trainableParams == expected.int("trainable"), "trainable params")
        #expect(account.totalParams == expected.int("all"), "all params")
        if c.targets == "language-model" {
            // the regular expression --emit writes selects the same modules
            var o = c.options
            o.loraTargets = .pattern(try #require(arch.languageModelTargetPattern))
            #expect(try ParameterAccounting.account(arch, method: c.method, options: o).trainableParams == expected.int("trainable"))
        }
    }
}

/// Some MoE routers are `nn.Linear` subclasses whose forward returns a tuple, and DeepSeek-V4's
/// grouped output projection one whose forward is a batched matmul per group; PEFT's all-linear
/// wraps them and the wrapped layer then fails in the forward. On DeepSeek-V4, prefix tuning
/// fails on PEFT's own cache (its layers lack the compressor state the compressed layers store)
/// and prompt and P-tuning on the hash-routed layers (they look experts up by input_ids, and the
/// virtual tokens arrive as inputs_embeds). peft-plan refuses each exactly where one training
/// step of the real PEFT fails on a tiny model of the family (scripts/tuple_router_reference.py,
/// on the CPU), and plans it where the step runs: prompt tuning once no layer is hash-routed,
/// prefix tuning once no layer is compressed and the config gives the one key head the
/// attention has (PEFT sizes the prefix by num_key_value_heads), both on Llama.
@Suite("PEFT methods and LoRA target lists refused where the real PEFT fails in the forward")
struct TupleRouterTests {
    nonisolated(unsafe) static let tiny: [String: Any] = ["hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 4,
                                                         "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128,
                                                         "num_experts_per_tok": 2]
    nonisolated(unsafe) static let v4: [String: Any] = ["n_routed_experts": 4, "head_dim": 16, "q_lora_rank": 32, "o_groups": 2, "o_lora_rank": 16,
                                                       "index_n_heads": 2, "index_head_dim": 16, "index_topk": 4,
                                                       "layer_types": ["compressed_sparse_attention", "sliding_attention"],
                                                       "mlp_layer_types": ["hash_moe", "moe"]]
    /// method: `nil` is LoRA on all-linear
    nonisolated(unsafe) static let cases: [(id: String, type: String, extra: [String: Any], method: Method?)] = [
        ("phimoe", "phimoe", ["num_local_experts": 4], nil),
        ("llama4_text", "llama4_text", ["num_local_experts": 4, "intermediate_size_mlp": 64, "head_dim": 16], nil),
        ("qwen3_moe", "qwen3_moe", ["num_experts": 4, "moe_intermediate_size": 32, "head_dim": 16], nil),
        ("granitemoe", "granitemoe", ["num_local_experts": 4], nil),
        ("mixtral", "mixtral", ["num_local_experts": 4], nil),
        ("deepseek_v4", "deepseek_v4", v4, nil),
        ("v4-prefix", "deepseek_v4", v4, .prefix),
        ("v4-prompt", "deepseek_v4", v4, .prompt),
        ("v4-ptuning", "deepseek_v4", v4, .ptuning),
        ("v4-no-hash-prompt", "deepseek_v4", v4.merging(["mlp_layer_types": ["moe", "moe"]]) { $1 }, .prompt),
        ("v4-sliding-prefix", "deepseek_v4", v4.merging(["layer_types": ["sliding_attention", "sliding_attention"], "num_key_value_heads": 1]) { $1 }, .prefix),
        ("v4-sliding-prefix-2kv", "deepseek_v4", v4.merging(["layer_types": ["sliding_attention", "sliding_attention"]]) { $1 }, .prefix),
        ("llama-prefix", "llama", [:], .prefix),
        ("llama-prompt", "llama", [:], .prompt),
    ]

    nonisolated(unsafe) static let reference: Result<[String: Any], PythonReference.ReferenceError> =
        PythonReference.run(script: "tuple_router_reference.py", input: cases.map { c in
            ["id": c.id, "model_type": c.type, "config": tiny.merging(c.extra) { $1 },
             "method": c.method?.rawValue ?? "lora-all-linear"] as [String: Any]
        })

    @Test("refused exactly where one training step fails")
    func refusedWherePEFTFails() throws {
        let reference = try Self.reference.get()
        var failing = 0
        for c in Self.cases {
            let r = try #require(reference[c.id] as? [String: Any], "no reference result for \(c.id)")
            let config = try #require(r["config"] as? [String: Any])
            let arch = try ConfigReader.parse(data: JSONSerialization.data(withJSONObject: config), name: c.id)
            var o = MethodOptions()
            if c.method == nil { o.loraTargets = .allLinear }
            var t = TrainingOptions()
            t.seq = 8
            let trains = try #require(r["trains"] as? Bool)
            if trains {
                #expect(throws: Never.self, "\(c.id): PEFT trains, peft-plan must plan") {
                    _ = try PlanContext(arch: arch, method: c.method ?? .lora, methodOptions: o, training: t)
                }
            } else {
                failing += 1
                #expect(throws: PlanError.self, "\(c.id): PEFT fails (\(r["error"] ?? "")), peft-plan must refuse") {
                    _ = try PlanContext(arch: arch, method: c.method ?? .lora, methodOptions: o, training: t)
                }
            }
        }
        #expect(failing >= 7, "the reference should show the failing routers, the grouped projection and the V4 methods")
    }
}
