import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// One row of Fixtures/peft-cases.json: a preset, a method and its options.
struct CountCase: CustomTestStringConvertible, Sendable {
    let id: String
    let model: String
    let method: String
    let raw: [String: String]

    var testDescription: String { id }

    static let all: [CountCase] = (Fixtures.json("peft-cases.json") as! [[String: Any]]).map { d in
        CountCase(id: d["id"] as! String, model: d["model"] as! String, method: d["method"] as! String,
                  raw: d.mapValues { "\($0)" })
    }

    var options: MethodOptions {
        var o = MethodOptions()
        if let r = raw["r"] { o.loraR = Int(r)! }
        if let t = raw["targets"] { o.loraTargets = try! .parse(t, field: .loraTargets) }
        if raw["dora"] == "1" || raw["dora"] == "true" { o.dora = true }
        if let d = raw["adapter_dtype"] { o.adapterDtype = AdapterDtype(rawValue: d)! }
        if let t = raw["tokens"] { o.prefixTokens = Int(t)!; o.promptTokens = Int(t)! }
        if let p = raw["projection"] { o.prefixProjection = Int(p)! }
        if let h = raw["encoder_hidden"] { o.ptuningHidden = Int(h)! }
        if let t = raw["ia3_targets"] { o.ia3Targets = try! .parse(t, field: .ia3Targets) }
        if let f = raw["ia3_feedforward"] { o.ia3Feedforward = f.split(separator: ",").map(String.init) }
        return o
    }

    /// The input line for scripts/peft_reference.py: the same config.json the preset reads.
    var pythonInput: [String: Any] {
        Fixtures.pythonInput(Fixtures.json("peft-cases.json") as! [[String: Any]], id: id, model: model)
    }
}

/// The real PEFT's counts for every case, computed once per test run.
nonisolated(unsafe) let peftReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "peft_reference.py", input: CountCase.all.map(\.pythonInput))

@Suite("Parameter counts against the real Hugging Face PEFT (meta device)")
struct ParameterCountTests {
    @Test("at least 40 cases across every supported family")
    func coverage() {
        #expect(CountCase.all.count >= 40)
        let families = Set(CountCase.all.compactMap { try? Presets.resolve($0.model).family })
        #expect(families.isSubset(of: Set(ModelFamily.allCases)) && families.count >= 13)   // the rest: PublishedConfigTests
    }

    @Test("trainable, all and base counts equal PEFT's, exactly", arguments: CountCase.all)
    func matchesPEFT(_ c: CountCase) throws {
        let reference = try peftReference.get()
        let expected = try #require(reference[c.id] as? [String: Any], "no reference result for \(c.id)")
        let arch = try Presets.resolve(c.model)
        let method = try #require(Method(rawValue: c.method))
        if let error = expected["error"] as? String {
            // PEFT refuses this configuration: peft-plan must refuse it too.
            if let a = try? ParameterAccounting.account(arch, method: method, options: c.options) {
                Issue.record("PEFT refused (\(error)) but peft-plan counted \(a.trainableParams) trainable")
            }
            return
        }
        let account = try ParameterAccounting.account(arch, method: method, options: c.options)
        #expect(arch.totalParams == expected.int("base"), "base model parameters")
        #expect(account.trainableParams == expected.int("trainable"), "trainable params")
        #expect(account.totalParams == expected.int("all"), "all params")
        if let bytes = expected.int("file_bytes") {
            #expect(account.adapterFileBytes == bytes, "adapter_model.safetensors size")
        }
    }
}

/// Counts PEFT printed for public checkpoints (print_trainable_parameters() output, trainable || all).
@Suite("Published parameter counts")
struct PublishedCountTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let model: String, method: Method, options: MethodOptions, trainable: Int, all: Int
        var testDescription: String { "\(model) \(method.rawValue) \(trainable)" }
    }

    static func opts(_ f: (inout MethodOptions) -> Void) -> MethodOptions { var o = MethodOptions(); f(&o); return o }

    static let rows: [Row] = [
        Row(model: "llama-2-7b", method: .lora, options: opts { $0.loraTargets = .list(["q_proj", "v_proj"]) }, trainable: 4_194_304, all: 6_742_609_920),
        Row(model: "llama-3.2-1b", method: .lora, options: opts { $0.loraTargets = .list(["q_proj"]) }, trainable: 524_288, all: 1_236_338_688),
        Row(model: "qwen2.5-3b", method: .lora, options: opts { $0.loraR = 16 }, trainable: 3_686_400, all: 3_089_625_088),
        Row(model: "bloom-560m", method: .prefix, options: opts { $0.prefixTokens = 20 }, trainable: 983_040, all: 560_197_632),
        Row(model: "bloom-560m", method: .ptuning, options: opts { $0.promptTokens = 20; $0.ptuningHidden = 128 }, trainable: 300_288, all: 559_514_880),
        Row(model: "gpt2", method: .lora, options: opts { $0.loraTargets = .list(["c_attn"]) }, trainable: 294_912, all: 124_734_720),
        Row(model: "llama-3.2-3b", method: .lora, options: opts { $0.loraR = 32; $0.loraTargets = .list(["q_proj", "v_proj"]) }, trainable: 9_175_040, all: 3_221_924_864),
        Row(model: "llama-3.2-3b", method: .ia3, options: MethodOptions(), trainable: 286_720, all: 3_213_036_544),
        Row(model: "llama-3.2-3b", method: .prompt, options: opts { $0.promptTokens = 200 }, trainable: 614_400, all: 3_213_364_224),
        Row(model: "llama-3.2-3b", method: .prefix, options: opts { $0.prefixTokens = 200 }, trainable: 11_468_800, all: 3_224_218_624),
    ]

    @Test(arguments: rows)
    func published(_ row: Row) throws {
        let arch = try Presets.resolve(row.model)
        let a = try ParameterAccounting.account(arch, method: row.method, options: row.options)
        #expect(a.trainableParams == row.trainable)
        #expect(a.totalParams == row.all)
    }

    /// AdapterHub's counts for roberta-base (hidden 768, 12 layers), reduction factor 16:
    /// Pfeiffer 894,528 and Houlsby 1,789,056 (AdapterHub adapters, roberta-base, reduction factor 16). roberta is an encoder that
    /// peft-plan does not read, so a decoder of the same width and depth stands in: the
    /// bottleneck count depends only on hidden size, layers and the reduction factor.
    @Test func bottleneckAdapters() throws {
        let arch = try ConfigReader.parse(data: Data(#"{"model_type":"gpt2","n_embd":768,"n_layer":12,"n_head":12,"vocab_size":50265}"#.utf8), name: "roberta-sized")
        var o = MethodOptions()
        o.adapterReduction = 16
        o.adapter = .pfeiffer
        #expect(try ParameterAccounting.account(arch, method: .adapter, options: o).trainableParams == 894_528)
        o.adapter = .houlsby
        #expect(try ParameterAccounting.account(arch, method: .adapter, options: o).trainableParams == 1_789_056)
    }
}
