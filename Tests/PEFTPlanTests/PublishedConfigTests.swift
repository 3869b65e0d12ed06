import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// Published config.json files of the models people fine-tune (Fixtures/published-configs,
/// each with its Hugging Face id and the public repository, path and commit it was copied
/// from in sources.json), read by peft-plan and built by Transformers on the meta device.
struct PublishedConfig: Sendable {
    let file: String
    let hfID: String
    let modelType: String

    nonisolated(unsafe) static let sources: [[String: Any]] = Fixtures.json("published-configs/sources.json") as! [[String: Any]]
    static let all: [PublishedConfig] = sources.map {
        PublishedConfig(file: $0["file"] as! String, hfID: $0["hf_id"] as! String, modelType: $0["model_type"] as! String)
    }

    var url: URL { Fixtures.url("published-configs/\(file)") }

}

/// The cases of every published config: full fine-tuning, LoRA with PEFT's default targets
/// (or PEFT's refusal), LoRA on all-linear, and IA³ with PEFT's defaults (or its refusal).
struct PublishedCase: CustomTestStringConvertible, Sendable {
    let config: PublishedConfig
    let method: Method
    let targets: String?
    var id: String { "\(config.hfID):\(method.rawValue):\(targets ?? "default")" }
    var testDescription: String { id }

    static let all: [PublishedCase] = PublishedConfig.all.flatMap { c in
        [PublishedCase(config: c, method: .full, targets: nil), PublishedCase(config: c, method: .lora, targets: nil),
         PublishedCase(config: c, method: .lora, targets: "all-linear"), PublishedCase(config: c, method: .ia3, targets: nil)]
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
        return o
    }
}

nonisolated(unsafe) let publishedReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "peft_reference.py", input: PublishedCase.all.map(\.pythonInput))

@Suite("Published configs against Transformers + PEFT on the meta device")
struct PublishedConfigTests {
    @Test("at least 100 cases, every family peft-plan reads that has a published config")
    func coverage() throws {
        #expect(PublishedCase.all.count >= 100)
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
    }
}
