import Foundation
import PEFTTestSupport
import Testing
import PEFTCalibration
@testable import PEFTPlan

/// What a new user meets first (issue 13): defaults that never fail, models named after what
/// the user named, output that does not change between runs, and the `--require-fit` gate.
@Suite("First run: defaults, names, determinism and the fit gate")
struct FirstRunTests {
    /// GPT-2 has 1024 learned positions and OPT 2048: with the default sequence, the 20
    /// virtual tokens of prompt tuning and P-tuning must still fit (PEFT puts them in front
    /// of every sequence), and the plan says what it chose.
    @Test("prompt tuning and P-tuning plan with default options on learned-position models",
          arguments: [("gpt2", "prompt", 1004), ("gpt2", "p-tuning", 1004), ("opt-350m", "prompt", 2028), ("opt-1.3b", "p-tuning", 2028)])
    func promptDefaults(_ model: String, _ method: String, _ seq: Int) throws {
        let r = try CLI.run(["plan", "--model", model, "--method", method, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let a = try #require(j["assumptions"] as? [String: Any])
        #expect(a["seq"] as? Int == seq)
        let notes = try #require(a["notes"] as? [String])
        #expect(notes.contains { $0.hasPrefix("--seq not given: \(seq) tokens") && $0.contains("less the 20 prompt-tuning tokens") }, "\(notes)")
        let plans = try #require(j["plans"] as? [[String: Any]])
        #expect(plans.map { $0["method"] as? String } == [method])
    }

    /// With `all`, prompt tuning is planned (not skipped) at the shorter default, beside the others.
    @Test func allMethodsOnGPT2() throws {
        let r = try CLI.run(["--model", "gpt2", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let methods = (j["plans"] as? [[String: Any]] ?? []).compactMap { $0["method"] as? String }
        #expect(methods.contains("prompt"))
        #expect(((j["assumptions"] as? [String: Any])?["skipped_methods"] as? [Any])?.isEmpty == true)
        // a model with rotary positions keeps 2048, with no note
        let llama = try CLI.run(["--model", "tiny", "--method", "prompt", "--format", "json"])
        let la = try #require((try JSONSerialization.jsonObject(with: Data(llama.stdout.utf8)) as? [String: Any])?["assumptions"] as? [String: Any])
        #expect(la["seq"] as? Int == 2048)
        #expect(!((la["notes"] as? [String]) ?? []).contains { $0.hasPrefix("--seq not given") })
    }

    /// A config given by path is named after the file (or the checkpoint it names), never
    /// after the folder the file sits in.
    @Test func configNames() throws {
        let text = try String(contentsOf: Presets.directory.appendingPathComponent("gpt2.json"), encoding: .utf8)
        let named = writeConfig(text, name: "gpt2.json")
        let r = try CLI.run(["--model", named, "--method", "lora", "--seq", "4096"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("gpt2 has 1024 learned positions"), "\(r.stderr)")
        let folderName = ((named as NSString).deletingLastPathComponent as NSString).lastPathComponent
        #expect(!r.stderr.contains(folderName))

        // a file called config.json: the checkpoint it names, else "config"
        var j = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        j["_name_or_path"] = "openai-community/gpt2-medium"
        let withName = writeConfig(String(decoding: try JSONSerialization.data(withJSONObject: j), as: UTF8.self))
        #expect(try ConfigReader.read(path: withName).name == "gpt2-medium")
        #expect(try ConfigReader.read(path: writeConfig(text)).name == "config")
        // a folder is named after itself
        let dir = (withName as NSString).deletingLastPathComponent
        #expect(try ConfigReader.read(path: dir).name == (dir as NSString).lastPathComponent)
    }

    /// The interpreter the tests and `calibrate --backend torch` run: the override, else the
    /// project's .venv (which `scripts/setup.sh --test` makes), else python3.
    @Test func pythonInterpreter() throws {
        #expect(TorchCalibration.python(environment: ["PEFT_PLAN_PYTHON": "/opt/py/bin/python3"]) == "/opt/py/bin/python3")
        let venv = repoRoot.appendingPathComponent(".venv/bin/python").path
        let found = TorchCalibration.python(environment: [:])
        if FileManager.default.isExecutableFile(atPath: venv) {
            #expect(URL(fileURLWithPath: found).standardizedFileURL == URL(fileURLWithPath: venv).standardizedFileURL, "\(found)")
        } else {
            #expect(found == "python3")
        }
        // a run from a folder that holds its own .venv takes that one
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-venv-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".venv/bin"), withIntermediateDirectories: true)
        let fake = dir.appendingPathComponent(".venv/bin/python")
        try Data("#!/bin/sh\necho stand-in\n".utf8).write(to: fake)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
        let r = try CLI.run(["calibrate", "--backend", "torch", "--model", "tiny", "--quick"], cwd: dir)
        #expect(r.status == 2)
        #expect(r.stderr.contains(fake.path) && r.stderr.contains("scripts/setup.sh --test"), "\(r.stderr)")
    }

    /// The same question gives the same bytes: no clock in a plan's output.
    @Test func cheapestJSONIsDeterministic() throws {
        let args = ["--model", "8b", "--method", "lora,qlora", "--gpu", "24GB", "--gpu", "80GB", "--cheapest", "--format", "json"]
        let a = try CLI.run(args), b = try CLI.run(args)
        #expect(a.status == 0 && b.status == 0, "\(a.stderr)")
        #expect(!a.stdout.isEmpty)
        #expect(a.stdout == b.stdout)
        let j = try #require(try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any])
        #expect(j["seconds"] == nil)
        #expect((j["evaluated"] as? Int ?? 0) > 0)
    }

    // MARK: the gate

    /// QLoRA on a 7B model fits an RTX 4090 (about 7 GiB of 23.49); full fine-tuning does not
    /// (about 57 GiB): the status says which, and the output is printed either way.
    @Test func requireFitPasses() throws {
        let r = try CLI.run(["--model", "7b", "--method", "qlora", "--gpu", "RTX 4090", "--require-fit"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("qlora     yes"))
        #expect(r.stderr.isEmpty)
    }

    @Test func requireFitFails() throws {
        let r = try CLI.run(["--model", "7b", "--method", "full", "--gpu", "RTX 4090", "--require-fit", "--format", "json"])
        #expect(r.status == 3, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "the plan is still printed")
        let v = try #require(((j["plans"] as? [[String: Any]])?.first?["gpus"] as? [[String: Any]])?.first)
        #expect(v["fits"] as? Bool == false)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.hasPrefix("peft-plan: does not fit (--require-fit): full on RTX 4090"), "\(r.stderr)")
        // without the gate the same plan exits 0
        let plain = try CLI.run(["--model", "7b", "--method", "full", "--gpu", "RTX 4090", "--format", "json"])
        #expect(plain.status == 0 && plain.stdout == r.stdout)
    }

    /// Every planned method on every GPU named must fit: one that misses fails the gate.
    @Test func requireFitEveryPair() throws {
        // QLoRA 7B at micro-batch 16 × 2048 fits an 80 GB card but not a 16 GB one; at 1 both
        let both = try CLI.run(["--model", "7b", "--method", "qlora", "--batch", "16", "--gpu", "RTX 4080", "--gpu", "H100 SXM", "--require-fit"])
        #expect(both.status == 3)
        #expect(both.stderr.contains("qlora on RTX 4080") && both.stderr.contains("short of 16 GB card, 15.67 GiB usable") && !both.stderr.contains("H100"), "\(both.stderr)")
        let small = try CLI.run(["--model", "7b", "--method", "qlora", "--batch", "1", "--gpu", "RTX 4080", "--gpu", "H100 SXM", "--require-fit"])
        #expect(small.status == 0, "\(small.stderr)")
        let big = try CLI.run(["--model", "7b", "--method", "qlora", "--batch", "16", "--gpu", "H100 SXM", "--require-fit"])
        #expect(big.status == 0, "\(big.stderr)")
        // two methods: one that misses fails the gate
        let two = try CLI.run(["--model", "7b", "--method", "qlora,full", "--gpu", "RTX 4090", "--require-fit"])
        #expect(two.status == 3 && two.stderr.contains("full on RTX 4090") && !two.stderr.contains("qlora on"), "\(two.stderr)")
        // a card without bf16 fails the gate too (the plan is bf16)
        let v100 = try CLI.run(["--model", "tiny", "--method", "lora", "--gpu", "V100 16GB SXM2", "--require-fit"])
        #expect(v100.status == 3 && v100.stderr.contains("no bf16 support"), "\(v100.stderr)")
    }

    @Test func requireFitWithServeCheapestAndEmit() throws {
        let serveFits = try CLI.run(["--model", "7b", "--method", "qlora", "--serve", "2", "--concurrency", "1", "--gpu", "RTX 4090", "--require-fit"])
        #expect(serveFits.status == 0, "\(serveFits.stderr)")
        let serveMisses = try CLI.run(["--model", "70b", "--method", "lora", "--serve", "2", "--gpu", "RTX 4090", "--require-fit"])
        #expect(serveMisses.status == 3 && serveMisses.stderr.contains("the server does not fit RTX 4090"), "\(serveMisses.stderr)")
        let none = try CLI.run(["--model", "405b", "--method", "full", "--gpu", "T4", "--cheapest", "--require-fit"])
        #expect(none.status == 3 && none.stdout.contains("Nothing fits"), "\(none.stderr)")
        let emitted = try CLI.run(["--model", "7b", "--method", "full", "--gpu", "RTX 4090", "--emit", "trl", "--require-fit"])
        #expect(emitted.status == 3 && emitted.stdout.contains("SFTConfig"), "\(emitted.stderr)")
    }

    /// Prompt tuning's tokens share GPT-2's 1024 positions: too many is named as such, and a
    /// default that would leave less than half the positions is not taken.
    @Test func promptTokensThatFillThePositions() throws {
        let r = try CLI.run(["--model", "gpt2", "--method", "prompt", "--prompt-tokens", "1024"])
        #expect(r.status == 2 && r.stderr.contains("--prompt-tokens") && r.stderr.contains("1024 learned positions"), "\(r.stderr)")
        let all = try CLI.run(["--model", "gpt2", "--prompt-tokens", "1000", "--format", "json"])
        #expect(all.status == 0, "\(all.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [String: Any])
        let a = try #require(j["assumptions"] as? [String: Any])
        #expect(a["seq"] as? Int == 1024)
        #expect(((a["skipped_methods"] as? [[String: Any]]) ?? []).contains { $0["method"] as? String == "prompt" })
    }

    /// The sequence lengths the planner accepts with virtual tokens on a learned-position model
    /// are the ones the real Transformers + PEFT run (scripts/positions_reference.py): prompt
    /// tuning, P-tuning and prefix tuning all share the position table with the sequence.
    @Test("virtual tokens share the learned positions, as in the real PEFT",
          arguments: [("gpt2", "prefix", 20), ("gpt2", "prompt", 7), ("gpt2", "p-tuning", 20), ("opt", "prefix", 7), ("opt", "prompt", 20)])
    func virtualTokensTakePositions(_ family: String, _ method: String, _ tokens: Int) throws {
        let positions = 48
        let config: [String: Any] = family == "gpt2"
            ? ["model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": positions, "vocab_size": 100]
            : ["model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 128,
               "max_position_embeddings": positions, "vocab_size": 100, "word_embed_proj_dim": 64]
        let seqs = [positions - tokens, positions - tokens + 1]
        let real = try PythonReference.run(script: "positions_reference.py",
                                           input: ["config": config, "method": method, "tokens": tokens, "seqs": seqs] as [String: Any]).get()
        let runs = try #require(real["runs"] as? [String: Bool])
        let arch = try ConfigReader.parse(data: JSONSerialization.data(withJSONObject: config), name: family)
        let m = try #require(Method(rawValue: method))
        for seq in seqs {
            var o = MethodOptions()
            o.prefixTokens = tokens
            o.promptTokens = tokens
            var t = TrainingOptions()
            t.seq = seq
            t.precision = .fp32
            let planned = (try? Planner.plan(PlanRequest(arch: arch, methods: [m], methodOptions: o, training: t, gpus: [try UsableMemoryTests.profile("H100 SXM")]))) != nil
            #expect(planned == runs[String(seq)], "\(family) \(method) \(tokens) tokens, seq \(seq): planner \(planned), PEFT \(String(describing: runs[String(seq)]))")
        }
        #expect(runs[String(seqs[0])] == true && runs[String(seqs[1])] == false, "the real run's boundary: \(runs)")
    }

    @Test func helpDocumentsEveryExitStatus() throws {
        let r = try CLI.run(["--help"])
        #expect(r.status == 0)
        for line in ["0    done", "1    the output could not be written", "2    bad input", "3    --require-fit", "64   the command line", "130  calibrate interrupted"] {
            #expect(r.stdout.contains(line), "--help lacks '\(line)'")
        }
        let plan = try CLI.run(["plan", "--help"])
        #expect(plan.stdout.contains("--require-fit"))
    }
}
