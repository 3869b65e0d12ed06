import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan


@Suite("The command line")
struct CommandLineTests {
    @Test("`peft-plan --model 7b --gpu 24GB` answers for all seven methods and every 24 GB card")
    func headline() throws {
        let r = try CLI.run(["--model", "7b", "--gpu", "24GB"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        for m in Method.standard { #expect(r.stdout.contains("\n\(m.rawValue) ") || r.stdout.contains("  \(m.rawValue) "), "\(m.rawValue) missing") }
        let profiles = try HardwareCatalog.bundled().filter { $0.nominalMemoryGB == 24 }
        #expect(profiles.count >= 4)
        for p in profiles { #expect(r.stdout.contains(p.name)) }
        #expect(r.stdout.contains("Assumptions:"))
        #expect(!r.stdout.contains("nan") && !r.stdout.contains("-0"))
        // fits a 100-column terminal
        for line in r.stdout.split(separator: "\n") { #expect(line.count <= 100, "too wide: \(line)") }
    }

    /// PEFT has no default LoRA targets for most 2025–26 types: without --lora-targets the plan
    /// takes all-linear and says so; the trainable count is PEFT's for all-linear (PublishedConfigTests).
    @Test("no LoRA targets and no PEFT default: all-linear, stated in the assumptions")
    func allLinearWhenPEFTHasNoDefault() throws {
        let r = try CLI.run(["--model", "qwen3-30b-a3b", "--method", "lora", "--gpu", "H100", "--format", "json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let assumptions = j["assumptions"] as! [String: Any]
        #expect(assumptions["lora_targets"] as? String == "all-linear")
        #expect((assumptions["notes"] as! [String]).contains { $0.contains("PEFT has no default target modules for model type 'qwen3_moe'") })
        let arch = try Presets.resolve("qwen3-30b-a3b")
        var o = MethodOptions()
        o.loraTargets = .allLinear
        let plan = (j["plans"] as! [[String: Any]])[0]
        #expect(plan.int("trainable_params") == (try ParameterAccounting.account(arch, method: .lora, options: o)).trainableParams)
    }

    /// DeepSeek-V4: with no targets the plan takes every Linear but the grouped o_a_proj (on
    /// which LoRA fails in the forward: PublishedConfigTests' one-step check), and says why;
    /// the count is PEFT's for that list.
    @Test("DeepSeek-V4 without targets: every Linear but o_a_proj, stated in the assumptions")
    func deepSeekV4DefaultTargets() throws {
        let r = try CLI.run(["--model", "deepseek-v4-flash", "--method", "lora", "--gpu", "H100", "--format", "json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let assumptions = j["assumptions"] as! [String: Any]
        let targets = try #require(assumptions["lora_targets"] as? String)
        #expect(!targets.contains("o_a_proj") && targets.contains("o_b_proj") && targets.contains("q_a_proj"))
        #expect((assumptions["notes"] as! [String]).contains { $0.contains("o_a_proj") && $0.contains("fails in the forward") })
        // PEFT 0.21.2 on the meta device, LoraConfig(r=8, target_modules=that list) on
        // V4-Flash's published config: get_nb_trainable_parameters() = 32,442,880
        let plan = (j["plans"] as! [[String: Any]])[0]
        #expect(plan.int("trainable_params") == 32_442_880)
    }

    /// A vision-language model: no targets plan the language model's Linears (the image side
    /// frozen), and --image-tokens lengthens the sequence the language model trains on. The
    /// byte counts themselves are checked against the saved-tensor trace (ActivationTraceTests).
    @Test("a vision-language model: language-model targets by default, image tokens lengthen the sequence")
    func visionLanguage() throws {
        func plan(_ extra: [String]) throws -> [String: Any] {
            let r = try CLI.run(["--model", "qwen2.5-vl-7b", "--method", "lora", "--gpu", "H100", "--seq", "2048", "--format", "json"] + extra)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        }
        let text = try plan([]), images = try plan(["--image-tokens", "1024"])
        let t = text["assumptions"] as! [String: Any], i = images["assumptions"] as! [String: Any]
        #expect(t["lora_targets"] as? String == "language-model")
        #expect((t["notes"] as! [String]).contains { $0.contains("planning every Linear of the language model") })
        #expect(t.int("seq") == 2048 && t.int("image_tokens") == 0)
        #expect(i.int("seq") == 3072 && i.int("image_tokens") == 1024)
        #expect((i["notes"] as! [String]).contains { $0.contains("1024 image tokens per sample") && $0.contains("4096 patches") })
        let model = text["model"] as! [String: Any]
        #expect(model["vision_tower"] as? String == "Qwen2.5-VL ViT")
        let arch = try Presets.resolve("qwen2.5-vl-7b")
        #expect(model.int("vision_params") == arch.visionParams && arch.visionParams > 0)
        // the frozen tower saves nothing, so the activations grow as the language model's do: by 3072/2048
        func activations(_ j: [String: Any]) -> Double { Double(((j["plans"] as! [[String: Any]])[0]["memory"] as! [String: Any]).int("activations")!) }
        let ratio = activations(images) / activations(text)
        #expect(ratio > 1.45 && ratio < 1.55, "activations grew by \(ratio)")
        // the same plan with the tower's adapters keeps their activations too
        let all = try plan(["--image-tokens", "1024", "--lora-targets", "all-linear"])
        #expect(activations(all) > activations(images))
    }

    /// gpt-oss ships MXFP4 experts, DeepSeek FP8 blocks (their config.json's quantization_config);
    /// the plan says it trains them dequantised to bf16, as Transformers does.
    @Test("a checkpoint published quantised is planned dequantised, and says so")
    func shippedQuantisation() throws {
        for (model, mentions) in [("gpt-oss-20b", "ships its experts in MXFP4"), ("deepseek-v3", "ships FP8 weights")] {
            let r = try CLI.run(["--model", model, "--method", "qlora", "--gpu", "H100", "--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            #expect(((j["assumptions"] as! [String: Any])["notes"] as! [String]).contains { $0.contains(mentions) }, "\(model)")
        }
        let plain = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--gpu", "H100"])
        #expect(!plain.stdout.contains("ships"))
    }

    @Test("json output follows the contract and agrees with the library")
    func json() throws {
        let r = try CLI.run(["plan", "--model", "llama-3.1-8b", "--method", "lora,qlora", "--gpu", "RTX 4090", "--format", "json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let plans = try #require(obj["plans"] as? [[String: Any]])
        #expect(plans.count == 2)
        let lora = plans[0]
        #expect(lora["trainable_params"] as? Int == 3_407_872)   // PEFT, checked in ParameterCountTests
        let memory = try #require(lora["memory"] as? [String: Any])
        for key in ["frozen_weights", "trainable_weights", "master_weights", "gradients", "optimizer_states", "activations",
                    "logits", "transient", "allocated_peak", "reserved_peak", "runtime_overhead", "device_total"] {
            let v = try #require(memory[key] as? Int, "memory.\(key)")
            #expect(v >= 0)
        }
        let gpus = try #require(lora["gpus"] as? [[String: Any]])
        #expect(gpus.first?["name"] as? String == "RTX 4090")
        #expect(["forward", "backward", "optimizer"].contains(lora["peak_phase"] as? String ?? ""))
        let again = try CLI.run(["plan", "--model", "llama-3.1-8b", "--method", "lora,qlora", "--gpu", "RTX 4090", "--format", "json"])
        #expect(again.stdout == r.stdout, "same input, byte-identical output")
    }

    /// `--adapter-dtype model`: LoRA's 3,407,872 adapter weights (PEFT's count) in bf16, so
    /// their weights, gradients and AdamW states take 2 bytes each instead of fp32's 4; the
    /// assumptions say so, and the step is shorter (no fp32 casts of the adapters' inputs).
    /// One method's JSON plan of Llama-3.1-8B on an RTX 4090: its assumptions, memory and hours.
    func rtx4090Plan(_ method: String, _ extra: [String]) throws -> (assumptions: [String: Any], memory: [String: Any], hours: Double) {
        let r = try CLI.run(["--model", "llama-3.1-8b", "--method", method, "--gpu", "RTX 4090", "--format", "json"] + extra)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let p = try #require((obj["plans"] as? [[String: Any]])?.first)
        let gpu = try #require((p["gpus"] as? [[String: Any]])?.first)
        return (try #require(obj["assumptions"] as? [String: Any]), try #require(p["memory"] as? [String: Any]),
                try #require(gpu["hours"] as? Double))
    }

    @Test func adapterDtype() throws {
        let fp32 = try rtx4090Plan("lora", []), model = try rtx4090Plan("lora", ["--adapter-dtype", "model"])
        #expect(fp32.assumptions["adapter_dtype"] as? String == "fp32")
        #expect(model.assumptions["adapter_dtype"] as? String == "model")
        #expect(fp32.memory["trainable_weights"] as? Int == 3_407_872 * 4)
        #expect(model.memory["trainable_weights"] as? Int == 3_407_872 * 2)
        #expect(model.memory["gradients"] as? Int == 3_407_872 * 2)
        #expect(model.memory["optimizer_states"] as? Int == 3_407_872 * 2 * 2)
        #expect(model.hours < fp32.hours)
        #expect((model.assumptions["notes"] as? [String] ?? []).contains { $0.contains("autocast_adapter_dtype=False") })
    }

    /// `--qlora-rest model`: QLoRA's unquantised weights kept in bf16, as stacks that never call
    /// prepare_model_for_kbit_training train them (TRL 1.16's SFTTrainer, Answer.AI's FSDP-QLoRA,
    /// torchtune). Llama-3.1-8B's unquantised parameters are its embeddings and untied lm_head,
    /// 128,256 × 4,096 each, and 65 RMSNorm weights of 4,096 (meta-llama/Llama-3.1-8B
    /// config.json: vocab_size 128256, hidden_size 4096, 32 layers, tie_word_embeddings false):
    /// 1,050,939,392 parameters, 2 bytes each fewer than fp32's 4. The residual stream is bf16 too,
    /// so the activations shrink, and the adapters cast nothing, so the step is shorter.
    @Test func qloraRest() throws {
        let fp32 = try rtx4090Plan("qlora", []), model = try rtx4090Plan("qlora", ["--qlora-rest", "model"])
        #expect(fp32.assumptions["qlora_rest"] as? String == "fp32")
        #expect(model.assumptions["qlora_rest"] as? String == "model")
        let frozen32 = try #require(fp32.memory["frozen_weights"] as? Int), frozen16 = try #require(model.memory["frozen_weights"] as? Int)
        #expect(frozen32 - frozen16 == 1_050_939_392 * 2)
        #expect(try #require(model.memory["activations"] as? Int) < (try #require(fp32.memory["activations"] as? Int)))
        #expect(model.hours < fp32.hours)
        #expect((model.assumptions["notes"] as? [String] ?? []).contains { $0.contains("no prepare_model_for_kbit_training") })
    }

    /// `--loss`: Qwen3-8B QLoRA at 1 × 4096 on a 24 GB card. A fused loss keeps no logits
    /// (TRL's chunked head keeps the head's input instead: the trace tests check those bytes
    /// against the real TRL), its transients are a tile instead of the vocabulary-wide fp32
    /// copies, and the head's recompute makes the step a little longer; the assumptions and
    /// notes name the loss. At 16,384 tokens the standard plan does not fit, and the advice
    /// offers the fused losses, cheapest in time first.
    @Test func loss() throws {
        func plan(_ extra: [String]) throws -> (obj: [String: Any], memory: [String: Int], hours: Double) {
            let r = try CLI.run(["--model", "qwen3-8b", "--method", "qlora", "--gpu", "RTX 4090", "--format", "json"] + extra)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let p = try #require((obj["plans"] as? [[String: Any]])?.first)
            let gpu = try #require((p["gpus"] as? [[String: Any]])?.first)
            return (obj, try #require(p["memory"] as? [String: Int]), try #require(gpu["hours"] as? Double))
        }
        let standard = try plan(["--seq", "4096"]), chunked = try plan(["--seq", "4096", "--loss", "chunked"])
        #expect((standard.obj["assumptions"] as? [String: Any])?["loss"] as? String == "standard")
        #expect((chunked.obj["assumptions"] as? [String: Any])?["loss"] as? String == "chunked")
        #expect(standard.memory["logits"]! > 2 << 30, "Qwen3-8B's 151,936-entry logits at 4096 tokens")
        #expect(chunked.memory["logits"] == 0)
        #expect(chunked.memory["transient"]! < standard.memory["transient"]! / 4)
        #expect(chunked.memory["device_total"]! < standard.memory["device_total"]!)
        #expect(chunked.hours > standard.hours && chunked.hours < standard.hours * 1.05, "one more head matmul in backward")
        let notes = ((chunked.obj["assumptions"] as? [String: Any])?["notes"] as? [String]) ?? []
        #expect(notes.contains { $0.contains("TRL's chunked LM head") })

        let long = try CLI.run(["--model", "qwen3-8b", "--method", "qlora", "--gpu", "RTX 4090", "--seq", "16384"])
        #expect(long.status == 0, "stderr: \(long.stderr)")
        let advice = long.stdout.split(separator: "\n").filter { $0.hasPrefix("  - ") }
        #expect(advice.first?.contains("--loss") == true, "the fused losses cost least GPU time: \(advice)")
        #expect(advice.contains { $0.contains("--loss chunked") })
    }

    /// `--checkpointing reentrant` reruns whole blocks (more recompute FLOPs, same memory);
    /// `--activation-offloading` moves the blocks' saved tensors to the host: the GPU keeps one
    /// block in flight, host_bytes holds the rest, and the plan says so.
    @Test func activationPolicies() throws {
        func plan(_ extra: [String]) throws -> (obj: [String: Any], p: [String: Any]) {
            let r = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--gpu", "H100 SXM", "--seq", "4096", "--format", "json"] + extra)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (obj, try #require((obj["plans"] as? [[String: Any]])?.first))
        }
        func memory(_ p: [String: Any]) -> [String: Int] { p["memory"] as? [String: Int] ?? [:] }
        func recompute(_ p: [String: Any]) -> Double { (p["flops_per_step"] as? [String: Double])?["recompute"] ?? 0 }
        let plain = try plan(["--grad-checkpointing"]), reentrant = try plan(["--checkpointing", "reentrant"])
        #expect((reentrant.obj["assumptions"] as? [String: Any])?["checkpoint_style"] as? String == "reentrant")
        #expect(memory(reentrant.p)["device_total"] == memory(plain.p)["device_total"])
        #expect(recompute(reentrant.p) > recompute(plain.p))

        let kept = try plan([]), offloaded = try plan(["--activation-offloading"])
        let moved = offloaded.p["offloaded_activation_bytes"] as? Int ?? 0
        #expect(moved > 0)
        #expect(memory(offloaded.p)["activations"]! + moved == memory(kept.p)["activations"]!)
        #expect(offloaded.p["host_bytes"] as? Int == moved)
        #expect(memory(offloaded.p)["device_total"]! < memory(kept.p)["device_total"]!)
        let notes = ((offloaded.obj["assumptions"] as? [String: Any])?["notes"] as? [String]) ?? []
        #expect(notes.contains { $0.contains("activation offloading") })
    }

    @Test("csv and markdown", arguments: ["csv", "markdown"])
    func otherFormats(_ format: String) throws {
        let r = try CLI.run(["--model", "gpt2", "--gpu", "T4", "--format", format, "--precision", "fp16", "--seq", "512"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("lora"))
        if format == "csv" {
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.count == 1 + Method.standard.count)
            #expect(Set(lines.map { $0.split(separator: ",").count }).count == 1, "every row has every column")
        }
    }

    @Test("models and gpus list everything, from any directory")
    func listings() throws {
        let elsewhere = FileManager.default.temporaryDirectory
        let m = try CLI.run(["models"], cwd: elsewhere)
        #expect(m.status == 0)
        for e in Presets.all { #expect(m.stdout.contains(e.name)) }
        let g = try CLI.run(["gpus"], cwd: elsewhere)
        #expect(g.status == 0)
        #expect(g.stdout.contains("H100 SXM") && g.stdout.contains("RTX 4090") && g.stdout.contains("MI300X"))
        let p = try CLI.run(["--model", "tiny", "--gpu", "24GB"], cwd: elsewhere)
        #expect(p.status == 0, "stderr: \(p.stderr)")
    }

    @Test("a GPU without bf16 gets a blocker in its verdict, not a crash or a silent fit")
    func bf16Blocker() throws {
        let r = try CLI.run(["--model", "7b", "--method", "qlora", "--gpu", "V100 16GB", "--gpu", "RTX 4090", "--format", "json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let gpus = try #require((obj["plans"] as? [[String: Any]])?.first?["gpus"] as? [[String: Any]])
        let v100 = try #require(gpus.first { $0["name"] as? String == "V100 16GB SXM2" })
        let rtx = try #require(gpus.first { $0["name"] as? String == "RTX 4090" })
        #expect(v100["fits"] as? Bool == false && (v100["blocker"] as? String)?.contains("bf16") == true)
        #expect(rtx["fits"] as? Bool == true && rtx["blocker"] is NSNull)
    }

    @Test("output that cannot be written is an error",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full, the device whose writes fail"))
    func unwritableOutput() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exec \"\(CLI.binary.path)\" --model tiny --gpu 24GB > /dev/full"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(e.contains("cannot write the output"))
    }

    @Test("a config.json path and its folder plan like the preset")
    func configPath() throws {
        let src = try Presets.directory.appendingPathComponent("qwen2.5-0.5b.json").path
        let text = try String(contentsOfFile: src, encoding: .utf8)
        let file = writeConfig(text)
        let viaFile = try CLI.run(["--model", file, "--method", "lora", "--gpu", "T4", "--format", "csv", "--precision", "fp16"])
        let viaDir = try CLI.run(["--model", (file as NSString).deletingLastPathComponent, "--method", "lora", "--gpu", "T4", "--format", "csv", "--precision", "fp16"])
        let viaPreset = try CLI.run(["--model", "qwen2.5-0.5b", "--method", "lora", "--gpu", "T4", "--format", "csv", "--precision", "fp16"])
        #expect(viaFile.status == 0 && viaFile.stdout == viaPreset.stdout)
        #expect(viaDir.status == 0 && viaDir.stdout == viaPreset.stdout)
    }

    /// Bad input: each gets one line on stderr naming the problem and a non-zero status,
    /// never a crash or a signal (docs/CONTRACT.md, "Errors and exit statuses").
    struct Bad: Sendable, CustomTestStringConvertible {
        let args: [String]
        let mentions: String
        var testDescription: String { args.joined(separator: " ") }
    }

    /// A team's price file: two providers (so --provider must choose), one offer of "Ours".
    static func priceFile(gpu: String, price: String, date: String) -> String {
        let billing = #"{"unitSeconds": 60, "minimumSeconds": 0, "source": "our contract"}"#
        return writeConfig(#"{"providers": [{"name": "Ours", "kind": "gpu-cloud", "billing": "# + billing + #"}, "#
            + #"{"name": "Theirs", "kind": "gpu-cloud", "billing": "# + billing + #"}], "offers": [{"provider": "Ours", "tier": "on-demand", "#
            + #""gpu": ""# + gpu + #"", "usdPerGPUHour": "# + price + #", "offering": "8x", "gpusPerInstance": 8, "source": "contract", "date": ""# + date + #""}]}"#,
                           name: "prices-\(gpu.count)-\(price)-\(date.count).json")
    }
    static let malformed = writeConfig(#"{"model_type": "llama", "hidden_size": 4096, "num_hid"#)
    static let notObject = writeConfig("[1, 2, 3]")
    static let t5 = writeConfig(#"{"model_type": "t5", "d_model": 512}"#)
    static let noType = writeConfig(#"{"hidden_size": 512}"#)
    static func llama(_ patch: String) -> String {
        writeConfig(#"{"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 8, "intermediate_size": 1024, "vocab_size": 1000, "#
                    + patch + "}")
    }
    static let missingHidden = llama(#""num_key_value_heads": 8"#)
    static let zeroHidden = llama(#""hidden_size": 0"#)
    static let negativeHidden = llama(#""hidden_size": -512"#)
    static let stringHidden = llama(#""hidden_size": "512""#)
    static let fractionalHidden = llama(#""hidden_size": 512.5"#)
    static let hugeHidden = llama(#""hidden_size": 1e300"#)
    static let headsNotDividing = llama(#""hidden_size": 500"#)
    static let kvNotDividing = llama(#""hidden_size": 512, "num_key_value_heads": 3"#)
    static let boolTie = llama(#""hidden_size": 512, "tie_word_embeddings": "yes""#)
    static let softcapText = writeConfig(#"{"model_type": "gemma2", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 64, "intermediate_size": 512, "vocab_size": 1000, "final_logit_softcapping": "x"}"#)
    static let tooDeep = llama(#""hidden_size": 512, "num_hidden_layers": 4194304"#)
    static let namelessGPU: String = {
        let src = (try! HardwareCatalog.directory).appendingPathComponent("l4.json").path
        let text = (try? String(contentsOfFile: src, encoding: .utf8)) ?? ""
        return writeConfig(text.replacingOccurrences(of: "\"name\": \"L4\"", with: "\"name\": \"\""), name: "nameless.json")
    }()
    static let emptyDir: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-empty-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.path
    }()

    static let hugeFile = writeConfig(#"{"model_type": "llama", "hidden_size": 512"# + String(repeating: " ", count: 17 << 20) + "}", name: "huge.json")
    static let truncatedGPU: String = {
        let src = (try! HardwareCatalog.directory).appendingPathComponent("h100-sxm.json").path
        let text = (try? String(contentsOfFile: src, encoding: .utf8)) ?? ""
        return writeConfig(String(text.prefix(text.count / 2)), name: "truncated.json")
    }()
    static let otherProgress = writeConfig(#"{"format": "peft-plan calibration progress", "version": 1, "backend": "engine", "model": "tiny", "quick": false, "steps": 2, "fingerprint": "x", "done": {}}"#, name: "progress.json")
    static let damagedProgress = writeConfig(#"{"format": "peft-plan calibration progress", "version": 1, "backend": "engine", "model": "tiny", "done": {"x": 3}}"#, name: "progress.json")
    static let futureProgress = writeConfig(#"{"format": "peft-plan calibration progress", "version": 7, "backend": "engine", "model": "tiny", "quick": true, "steps": 2, "done": {}}"#, name: "progress.json")

    static func l4Patched(_ usable: String, name: String) -> String {
        let src = (try! HardwareCatalog.directory).appendingPathComponent("l4.json").path
        var j = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: src)))) as? [String: Any] ?? [:]
        j["usableMemory"] = try? JSONSerialization.jsonObject(with: Data(usable.utf8))
        return writeConfig(String(decoding: (try? JSONSerialization.data(withJSONObject: j)) ?? Data(), as: UTF8.self), name: name)
    }
    static let usableAboveNominal = l4Patched(#"{"bytes": 30000000000, "basis": "observed", "source": "a made-up figure above the card's nominal size"}"#, name: "above.json")
    static let usableUnknownBasis = l4Patched(#"{"bytes": 23000000000, "basis": "guessed", "source": "a figure from nowhere in particular, for the test"}"#, name: "guessed.json")
    static let usableNewlineSource = l4Patched(#"{"bytes": 23000000000, "basis": "observed", "source": "\n"}"#, name: "newline.json")
    static let usableEmpty = l4Patched("{}", name: "empty-usable.json")
    static let usableNoSource = l4Patched(#"{"bytes": 23000000000, "basis": "observed", "source": "  "}"#, name: "nosource.json")

    static let bad: [Bad] = [
        // the --require-fit gate (issue 13) and usable memory in hand-written profiles
        Bad(args: ["--model", "7b", "--require-fit=yes"], mentions: "require-fit"),
        Bad(args: ["gpus", "--require-fit"], mentions: "--require-fit"),
        Bad(args: ["--model", "7b", "--gpu", "RTX 4090", "--require-fit", "--seq", "0"], mentions: "--seq"),
        Bad(args: ["--model", "7b", "--gpu", "RTX 4090", "--require-fit", "--method", "bogus"], mentions: "bogus"),
        Bad(args: ["--model", "7b", "--method", "qlora", "--require-fit"], mentions: "name them with --gpu"),
        Bad(args: ["--model", "7b", "--gpu", usableNewlineSource], mentions: "usableMemory.source"),
        Bad(args: ["--model", "7b", "--gpu", usableEmpty], mentions: "missing field 'usableMemory.bytes'"),
        Bad(args: ["--model", "7b", "--gpu", usableAboveNominal], mentions: "usableMemory.bytes must be from 1 MiB to memoryBytes"),
        Bad(args: ["--model", "7b", "--gpu", usableUnknownBasis], mentions: "accepted: measured, observed, derived"),
        Bad(args: ["--model", "7b", "--gpu", usableNoSource], mentions: "usableMemory.source"),
        Bad(args: ["--model", hugeFile], mentions: "more than any config.json"),
        Bad(args: ["--model", "7b", "--gpu", "-1GB"], mentions: "-1GB"),
        Bad(args: ["--model", "7b", "--mfu", "nan"], mentions: "from 0.001 to 1"),
        Bad(args: ["--model", "7b", "--price", "inf"], mentions: "at most 10000"),
        Bad(args: ["--model", "7b", "--tokens", "-inf"], mentions: "above 0"),
        Bad(args: ["--model", "7b", "--method", "lora", "--emit", "trl", "--learning-rate", "inf"], mentions: "--learning-rate"),
        Bad(args: ["--model", "7b", "--gpu", truncatedGPU], mentions: "invalid hardware profile"),
        Bad(args: ["calibrate", "--quick", "--max-memory", "1MB"], mentions: "nothing was run"),
        Bad(args: ["calibrate", "--quick", "--max-memory", "-2GB"], mentions: "--max-memory"),
        Bad(args: ["calibrate", "--quick", "--max-memory", "lots"], mentions: "--max-memory"),
        Bad(args: ["calibrate", "--backend", "torch", "--device", "meta", "--max-memory", "1KB"], mentions: "nothing was run"),
        Bad(args: ["calibrate", "--quick", "--resume", "/nonexistent/progress.json"], mentions: "--resume"),
        Bad(args: ["calibrate", "--quick", "--resume", otherProgress], mentions: "resume it with the same options"),
        Bad(args: ["calibrate", "--quick", "--resume", futureProgress], mentions: "start the calibration again"),
        Bad(args: ["calibrate", "--quick", "--resume", malformed], mentions: "--resume"),
        Bad(args: ["calibrate", "--quick", "--resume", damagedProgress], mentions: "damaged"),
        Bad(args: ["calibrate", "--quick", "--report", "/nonexistent/folder/cal.pdf"], mentions: "existing folder"),
        Bad(args: ["calibrate", "--backend", "torch", "--progress", "p.json"], mentions: "go with --backend engine"),
        Bad(args: ["calibrate", "--compare", "r.json", "--max-memory", "2GB"], mentions: "--max-memory does not apply to --compare"),
        Bad(args: ["--model", "llama-2-7bb"], mentions: "did you mean 'llama-2-7b'"),
        Bad(args: ["--model", "./no/such/config.json"], mentions: "unknown model"),
        Bad(args: ["--model", emptyDir], mentions: "no readable config.json"),
        Bad(args: ["--model", malformed], mentions: "not valid JSON"),
        Bad(args: ["--model", notObject], mentions: "not a JSON object"),
        Bad(args: ["--model", t5], mentions: "unsupported model_type 't5'"),
        Bad(args: ["--model", noType], mentions: "model_type"),
        Bad(args: ["--model", missingHidden], mentions: "hidden_size"),
        Bad(args: ["--model", zeroHidden], mentions: "hidden_size"),
        Bad(args: ["--model", negativeHidden], mentions: "hidden_size"),
        Bad(args: ["--model", stringHidden], mentions: "hidden_size"),
        Bad(args: ["--model", fractionalHidden], mentions: "hidden_size"),
        Bad(args: ["--model", hugeHidden], mentions: "larger than any real model"),
        Bad(args: ["--model", headsNotDividing], mentions: "does not divide hidden_size"),
        Bad(args: ["--model", kvNotDividing], mentions: "num_key_value_heads"),
        Bad(args: ["--model", boolTie], mentions: "tie_word_embeddings"),
        Bad(args: ["--model", "7b", "--batch", "0"], mentions: "--batch"),
        Bad(args: ["--model", "7b", "--batch", "-3"], mentions: "batch"),
        Bad(args: ["--model", "7b", "--batch", "99999999999999999999999"], mentions: "batch"),
        Bad(args: ["--model", "7b", "--seq", "0"], mentions: "--seq"),
        Bad(args: ["--model", "7b", "--seq", "1000000000000"], mentions: "--seq"),
        Bad(args: ["--model", "7b", "--lora-r", "0"], mentions: "--lora-r"),
        Bad(args: ["--model", "7b", "--lora-dropout", "1.5"], mentions: "--lora-dropout"),
        Bad(args: ["--model", "7b", "--lora-dropout", "nan"], mentions: "--lora-dropout"),
        Bad(args: ["--model", "7b", "--method", "lora", "--adapter-dtype", "bf16"], mentions: "--adapter-dtype"),
        Bad(args: ["--model", "7b", "--method", "ia3", "--adapter-dtype", "model"], mentions: "--adapter-dtype"),
        Bad(args: ["--model", "7b", "--method", "qlora", "--qlora-rest", "bf16"], mentions: "--qlora-rest"),
        Bad(args: ["--model", "7b", "--method", "lora", "--qlora-rest", "model"], mentions: "--qlora-rest"),
        Bad(args: ["--model", "7b", "--method", "qlora", "--qlora-rest", "model", "--precision", "mixed-bf16"], mentions: "--qlora-rest"),
        Bad(args: ["--model", "llama-3.1-8b", "--method", "qlora", "--kernels", "unsloth", "--qlora-rest", "fp32"], mentions: "--qlora-rest"),
        Bad(args: ["--model", "7b", "--adapter-reduction", "100000"], mentions: "--adapter-reduction"),
        Bad(args: ["--model", "7b", "--gpu", "RTX 9090"], mentions: "unknown GPU"),
        Bad(args: ["--model", "7b", "--gpu", "7GB"], mentions: "sizes:"),
        Bad(args: ["--model", "7b", "--gpu", "RTX"], mentions: "ambiguous"),
        Bad(args: ["--model", "7b", "--gpu", "/no/such/profile.json"], mentions: "no such file"),
        Bad(args: ["--model", "7b", "--method", "prefix", "--grad-checkpointing"], mentions: "PEFT refuses gradient checkpointing"),
        Bad(args: ["--model", "7b", "--method", "lora", "--quant", "nf4"], mentions: "--quant applies to qlora"),
        Bad(args: ["--model", "7b", "--method", "full", "--lora-r", "16"], mentions: "--lora-r applies to"),
        Bad(args: ["--model", "7b", "--method", "lorra"], mentions: "--method"),
        Bad(args: ["--model", "7b", "--precision", "bf8"], mentions: "--precision"),
        Bad(args: ["--model", "7b", "--loss", "fused"], mentions: "--loss"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-targets", "q_proj,lm_head", "--loss", "chunked"], mentions: "lm_head"),
        Bad(args: ["--model", "7b", "--method", "lora", "--loss", "liger", "--emit", "trl"], mentions: "--loss chunked"),
        Bad(args: ["--model", "7b", "--method", "lora", "--loss", "cce", "--emit", "trl"], mentions: "Cut Cross-Entropy"),
        // kernel stacks a family, method or option cannot run with (docs/kernels.md)
        Bad(args: ["--model", "llama-3.1-8b", "--method", "lora", "--checkpointing", "selective"], mentions: "Unexpected keyword arguments: selective"),
        Bad(args: ["--model", "llama-3.1-8b", "--method", "full", "--gpus", "8", "--sharding", "fsdp", "--checkpointing", "selective"], mentions: "FSDP"),
        Bad(args: ["--model", "llama-3.1-8b", "--method", "full", "--optimizer-in-backward", "--grad-accum", "4"], mentions: "--grad-accum 1"),
        Bad(args: ["--model", "llama-3.1-8b", "--method", "full", "--optimizer-in-backward", "--gpus", "2", "--sharding", "zero2"], mentions: "one GPU"),
        Bad(args: ["--model", "llama-3.2-1b", "--method", "full", "--optimizer-in-backward", "--emit", "trl"], mentions: "--optimizer-in-backward"),
        Bad(args: ["--model", "llama-3.1-8b", "--compile-activation-factor", "0.6"], mentions: "give --compile"),
        Bad(args: ["--model", "llama-3.1-8b", "--compile", "--compile-activation-factor", "0"], mentions: "0.05 to 2"),
        Bad(args: ["--model", "llama-3.1-8b", "--compile", "--compile-activation-factor", "nan"], mentions: "--compile-activation-factor"),
        Bad(args: ["--model", "llama-3.1-8b", "--compile", "--compile-activation-factor", "lots"], mentions: "--compile-activation-factor"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--kernels", "triton"], mentions: "--kernels"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "mixtral-8x7b", "--kernels", "unsloth"], mentions: "llama, mistral, qwen2, qwen3, gemma and gemma2"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "gpt2", "--kernels", "liger"], mentions: "Liger-Kernel's (@ead96b61) kernels for gpt2"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "mixtral-8x7b", "--kernels", "liger"], mentions: "fused MoE function"),
        Bad(args: ["--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--method", "full", "--kernels", "unsloth"], mentions: "LoRA and QLoRA"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--kernels", "unsloth", "--lora-dropout", "0.05"], mentions: "--lora-dropout 0"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--kernels", "unsloth", "--loss", "chunked"], mentions: "--loss unsloth"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--loss", "unsloth"], mentions: "--kernels unsloth"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--checkpointing", "offloaded"], mentions: "--kernels unsloth"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--checkpointing", "offf"], mentions: "off"),
        Bad(args: ["--method", "lora", "--gpu", "H100 SXM", "--model", "llama-3.1-8b", "--kernels", "unsloth", "--emit", "trl"], mentions: "FastLanguageModel"),
        Bad(args: ["--model", "7b", "--optimizer", "adam"], mentions: "did you mean 'adamw'"),
        Bad(args: ["--model", "7b", "--format", "yaml"], mentions: "--format"),
        Bad(args: ["--model", "7b", "--runtime", "vllm"], mentions: "--runtime"),
        Bad(args: ["--model", "phi-3-mini", "--method", "lora", "--lora-targets", "default"], mentions: "no default target modules"),
        Bad(args: ["--model", "qwen3-30b-a3b", "--method", "lora", "--lora-targets", "default"], mentions: "no default target modules"),
        // prices: an unknown provider, two ways to price, a provider without the GPU asked for,
        // and price files that are missing or wrong
        Bad(args: ["--model", "8b", "--provider", "azure"], mentions: "--provider"),
        Bad(args: ["--model", "8b", "--provider", "lambda", "--price", "2"], mentions: "two ways"),
        Bad(args: ["--model", "8b", "--provider", "all", "--price", "2"], mentions: "two ways"),
        Bad(args: ["--model", "8b", "--provider", "RunPod", "--spot"], mentions: "no interruptible (spot) offer"),
        Bad(args: ["--model", "8b", "--checkpoint-minutes", "10"], mentions: "add --spot"),
        Bad(args: ["--model", "8b", "--spot", "--interruptions-per-hour", "-1"], mentions: "--interruptions-per-hour"),
        Bad(args: ["--model", "8b", "--spot", "--checkpoint-minutes", "0"], mentions: "--checkpoint-minutes"),
        Bad(args: ["--model", "8b", "--spot", "--restart-minutes", "nan"], mentions: "--restart-minutes"),
        Bad(args: ["--model", "8b", "--provider", "lambda", "--gpu", "24GB"], mentions: "Lambda offers none of"),
        Bad(args: ["--model", "8b", "--price-file", "/nonexistent/prices.json"], mentions: "cannot read the price file"),
        Bad(args: ["--model", "8b", "--price-file", writeConfig(#"{"providers": []}"#, name: "p1.json")], mentions: "not a price catalogue"),
        Bad(args: ["--model", "8b", "--price-file", priceFile(gpu: "H100 SXM", price: "2.5", date: "2026-11")], mentions: "choose one with --provider"),
        Bad(args: ["--model", "8b", "--price-file", priceFile(gpu: "H100X", price: "2.5", date: "2026-11"), "--provider", "Ours"], mentions: "not a GPU profile name"),
        Bad(args: ["--model", "8b", "--price-file", priceFile(gpu: "H100 SXM", price: "-1", date: "2026-11"), "--provider", "Ours"], mentions: "usdPerGPUHour"),
        Bad(args: ["--model", "8b", "--price-file", priceFile(gpu: "H100 SXM", price: "2.5", date: "last week"), "--provider", "Ours"], mentions: "date must be"),
        Bad(args: ["prices", "--price-file", writeConfig("[1]", name: "p2.json")], mentions: "not a price catalogue"),
        // all-linear wraps DeepSeek-V4's grouped o_a_proj, on which LoRA fails in the forward
        Bad(args: ["--model", "deepseek-v4-flash", "--method", "lora", "--lora-targets", "all-linear"], mentions: "leave it out of the targets"),
        Bad(args: ["--model", "deepseek-v4-flash", "--method", "qlora", "--lora-targets", "o_a_proj,o_b_proj"], mentions: "o_a_proj"),
        // PEFT refuses LoRA on a Mamba mixer's out_proj (all-linear picks it) for nemotron_h
        Bad(args: ["--model", "nemotron-3-nano", "--method", "lora", "--lora-targets", "all-linear"], mentions: "PEFT refuses LoRA on 'out_proj'"),
        Bad(args: ["--model", "nemotron-h-56b", "--method", "qlora", "--lora-targets", "out_proj"], mentions: "Mamba-based models"),
        // PEFT wraps Llama 4's router (a Linear returning a tuple) and fails in the forward
        Bad(args: ["--model", "llama-4-scout", "--method", "lora", "--lora-targets", "all-linear"], mentions: "returns a tuple"),
        Bad(args: ["--model", "deepseek-v3", "--method", "lora", "--lora-targets", "gate_proj"], mentions: "without up_proj"),
        // images: for vision-language models only, a count in range
        Bad(args: ["--model", "qwen3-8b", "--image-tokens", "256"], mentions: "reads text only"),
        Bad(args: ["--model", "qwen2.5-vl-7b", "--image-tokens", "-1"], mentions: "--image-tokens"),
        Bad(args: ["--model", "qwen2.5-vl-7b", "--image-tokens", "2000000"], mentions: "--image-tokens"),
        Bad(args: ["--model", "qwen2.5-vl-7b", "--image-tokens", "many"], mentions: "--image-tokens"),
        Bad(args: ["--model", "qwen2.5-vl-7b", "--method", "lora", "--lora-targets", "language-model,q_proj"], mentions: "stand alone"),
        Bad(args: ["--model", "qwen2.5-vl-7b", "--method", "ia3", "--ia3-targets", "language-model"], mentions: "IA³ takes module names"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-targets", "foo_proj"], mentions: "not found"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-targets", "input_layernorm"], mentions: "cannot wrap"),
        Bad(args: [], mentions: "missing --model"),
        Bad(args: ["gpus", "--format", "yaml"], mentions: "--format"),
        Bad(args: ["--model", "/dev/zero"], mentions: "not a regular file"),
        Bad(args: ["--model", "7b", "--gpu", "/dev/zero"], mentions: "invalid hardware profile"),
        Bad(args: ["frobnicate"], mentions: "unknown command 'frobnicate'"),
        Bad(args: ["--model", "7b", "--method", ","], mentions: "--method"),
        Bad(args: ["--model", "7b", "--method", ""], mentions: "--method"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-targets", ","], mentions: "--lora-targets"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-targets", "all-linear,q_proj"], mentions: "stand alone"),
        Bad(args: ["--model", "7b", "--method", "lora", "--lora-alpha", "-5"], mentions: "--lora-alpha"),
        Bad(args: ["--model", "7b", "--batch", "abc"], mentions: "invalid value 'abc' for --batch"),
        Bad(args: ["--model", "7b", "--method", "ia3", "--ia3-feedforward", ","], mentions: "--ia3-feedforward"),
        Bad(args: ["--model", "gpt2", "--seq", "2048"], mentions: "1024 learned positions"),
        Bad(args: ["--model", "gpt2", "--method", "prompt", "--seq", "1024"], mentions: "prompt-tuning tokens"),
        Bad(args: ["--model", softcapText], mentions: "final_logit_softcapping"),
        Bad(args: ["--model", tooDeep], mentions: "layers"),
        Bad(args: ["--model", "7b", "--gpu", namelessGPU], mentions: "name must be"),
        Bad(args: ["--model"], mentions: "model"),
        Bad(args: ["--model", "7b", "--no-such-flag"], mentions: "no-such-flag"),
        // time, cost and scale
        Bad(args: ["--model", "7b", "--gpus", "0"], mentions: "--gpus"),
        Bad(args: ["--model", "7b", "--gpus", "-2"], mentions: "--gpus"),
        Bad(args: ["--model", "7b", "--sharding", "zero4"], mentions: "--sharding"),
        Bad(args: ["--model", "7b", "--offload", "disk"], mentions: "--offload"),
        Bad(args: ["--model", "7b", "--offload", "params", "--sharding", "zero2", "--gpus", "2"], mentions: "zero3 or fsdp"),
        Bad(args: ["--model", "7b", "--tokens", "0"], mentions: "--tokens"),
        Bad(args: ["--model", "7b", "--tokens", "-5"], mentions: "--tokens"),
        Bad(args: ["--model", "7b", "--tokens", "lots"], mentions: "--tokens"),
        Bad(args: ["--model", "7b", "--tokens", "inf"], mentions: "--tokens"),
        Bad(args: ["--model", "7b", "--examples", "100"], mentions: "--avg-tokens"),
        Bad(args: ["--model", "7b", "--examples", "100", "--avg-tokens", "50", "--tokens", "1e6"], mentions: "not both"),
        Bad(args: ["--model", "7b", "--examples", "0", "--avg-tokens", "50"], mentions: "--examples"),
        Bad(args: ["--model", "7b", "--tokens", "1e6", "--packing"], mentions: "--packing"),
        Bad(args: ["--model", "7b", "--epochs", "0"], mentions: "--epochs"),
        Bad(args: ["--model", "7b", "--price", "-1"], mentions: "--price"),
        Bad(args: ["--model", "7b", "--price", "nan"], mentions: "--price"),
        Bad(args: ["--model", "7b", "--mfu", "1.5"], mentions: "--mfu"),
        Bad(args: ["--model", "7b", "--mfu", "0"], mentions: "--mfu"),
        Bad(args: ["--model", "7b", "--setup-minutes", "-1"], mentions: "--setup-minutes"),
        Bad(args: ["--model", "7b", "--global-batch", "8"], mentions: "--cheapest"),
        Bad(args: ["--model", "7b", "--cheapest", "--global-batch", "0"], mentions: "--global-batch"),
        Bad(args: ["--model", "7b", "--serve", "-1"], mentions: "--serve"),
        Bad(args: ["--model", "7b", "--serve", "4", "--method", "prefix"], mentions: "--serve plans LoRA"),
        Bad(args: ["--model", "7b", "--serve", "4", "--context", "0"], mentions: "--context"),
        Bad(args: ["--model", "7b", "--concurrency", "4"], mentions: "apply to --serve"),
        Bad(args: ["--model", "7b", "--serve", "4", "--cheapest"], mentions: "--serve plans serving"),
        Bad(args: ["--model", "7b", "--offload", "optimizer"], mentions: "ZeRO stage or FSDP"),
        Bad(args: ["--model", "7b", "--gpus", "4", "--sharding", "fsdp", "--offload", "optimizer"], mentions: "FSDP offloads"),
        Bad(args: ["--model", "7b", "--emit", "yaml", "--method", "lora"], mentions: "--emit"),
        Bad(args: ["--model", "7b", "--emit", "trl"], mentions: "exactly one --method"),
        Bad(args: ["--model", "7b", "--method", "lora", "--learning-rate", "1e-4"], mentions: "apply to --emit"),
        Bad(args: ["--model", "7b", "--method", "full", "--gpus", "2", "--sharding", "fsdp", "--emit", "deepspeed"], mentions: "fsdp"),
        Bad(args: ["--model", "7b", "--method", "lora", "--emit", "trl", "--learning-rate", "-1"], mentions: "--learning-rate"),
        Bad(args: ["bench", "--method", "dora"], mentions: "--method"),
        Bad(args: ["calibrate", "--backend", "jax"], mentions: "--backend"),
        Bad(args: ["calibrate", "--backend", "torch", "--device", "tpu"], mentions: "--device"),
        Bad(args: ["calibrate", "--compare", "/nonexistent/results.json"], mentions: "--compare"),
        Bad(args: ["calibrate", "--job", "job.json"], mentions: "--job and --fit go with --compare"),
        Bad(args: ["calibrate", "--fit", "out.json"], mentions: "--job and --fit go with --compare"),
        Bad(args: ["calibrate", "--gpu", "H100 SXM"], mentions: "--gpu goes with"),
        Bad(args: ["calibrate", "--compare", "results.json", "--device", "cuda"], mentions: "--device does not apply to --compare"),
        Bad(args: ["calibrate", "--backend", "torch", "--model", "70b"], mentions: "can train on its CPU"),
        Bad(args: ["calibrate", "--compare", writeConfig(#"{"bursts": [{"id": "x", "allocated_peak": 1, "reserved_peak": 1}]}"#, name: "r.json"),
                   "--job", writeConfig(#"{"device": "cuda", "bursts": [{"id": "x", "method": "lora", "batch": 0, "seq": 2048, "config_path": "/m/llama-3.1-8b.json"}]}"#, name: "j.json")],
            mentions: "a batch of 1–4096"),
        Bad(args: ["report", "--model", "7b", "--out", "plan.txt"], mentions: ".pdf, .svg or .png"),
        Bad(args: ["report", "--model", "7b", "--out", "/nonexistent/folder/plan.pdf"], mentions: "existing folder"),
        Bad(args: ["report", "--model", "7b"], mentions: "--out"),
        Bad(args: ["report", "--model", "7b", "--out", "plan.svg", "--chart", "pie"], mentions: "--chart"),
        Bad(args: ["report", "--model", "7b", "--out", "plan.pdf", "--chart", "fit"], mentions: "a PDF holds every chart"),
        Bad(args: ["claims", "--format", "yaml"], mentions: "--format"),
        Bad(args: ["calibrate", "--quick", "--report", "cal.txt"], mentions: ".pdf, .svg or .png"),
        Bad(args: ["calibrate", "--quick", "--chart", "parity"], mentions: "--chart goes with --report"),
        Bad(args: ["calibrate", "--quick", "--report", "cal.svg", "--chart", "bars"], mentions: "parity or residuals"),
        Bad(args: ["calibrate", "--compare", "r.json", "--fit", "p.json", "--report", "cal.pdf"], mentions: "--report goes with"),
        Bad(args: ["--model", "7b", "--runtime", "/nonexistent/profile.json"], mentions: "--runtime"),
        Bad(args: ["--model", "7b", "--runtime", "hf-rocm"], mentions: "calibration profile"),
        Bad(args: ["--model", "7b", "--runtime", writeConfig(#"{"model_type": "llama"}"#, name: "profile.json")], mentions: "the JSON a calibration fit writes"),
        Bad(args: ["--model", "7b", "--runtime", writeConfig(#"{"format": "peft-plan calibration profile", "version": 99, "name": "x", "base": "hf-cuda", "environment": {}, "coefficients": {"reserved_over_allocated": 1.1, "outside_allocator_bytes": 0, "activation_scale": {}}, "fit": {"fitted_on": [], "held_out": [], "fit_peak_error": 0}}"#, name: "old.json")], mentions: "fit it again"),
        Bad(args: ["--model", "7b", "--runtime", writeConfig(#"{"format": "peft-plan calibration profile", "version": 1, "name": "x", "base": "hf-cuda", "environment": {}, "coefficients": {"reserved_over_allocated": -3, "outside_allocator_bytes": 0, "activation_scale": {}}, "fit": {"fitted_on": [], "held_out": [], "fit_peak_error": 0}}"#, name: "bad.json")], mentions: "in range"),
        Bad(args: ["calibrate", "--emit-script", "/tmp/x"], mentions: "--backend torch"),
        Bad(args: ["calibrate", "--backend", "torch", "--emit-script", "/proc/peft-plan-x"], mentions: "--emit-script"),
        Bad(args: ["calibrate", "--steps", "0"], mentions: "--steps"),
        Bad(args: ["calibrate", "--format", "csv"], mentions: "--format"),
        Bad(args: ["calibrate", "--model", "gpt2"], mentions: "Llama-type"),
        Bad(args: ["bench", "--method", "adapter", "--adapter-reduction", "3"], mentions: "divisor of the hidden size"),
        Bad(args: ["bench", "--method", "adapter", "--adapter", "lora"], mentions: "--adapter"),
        Bad(args: ["bench", "--method", "lora", "--prefix-tokens", "4"], mentions: "--prefix-tokens applies"),
        Bad(args: ["bench", "--method", "full", "--no-double-quant"], mentions: "--no-double-quant applies"),
        Bad(args: ["bench", "--method", "prefix", "--prefix-projection", "-2"], mentions: "--prefix-projection"),
        Bad(args: ["bench", "--batch", "0"], mentions: "--batch"),
        Bad(args: ["bench", "--steps", "-1"], mentions: "--steps"),
        Bad(args: ["bench", "--model", "gpt2"], mentions: "Llama-type"),
        Bad(args: ["bench", "--model", "70b"], mentions: "2 billion"),
        Bad(args: ["bench", "--format", "csv"], mentions: "--format"),
        Bad(args: ["bench", "--method", "full", "--lora-r", "4"], mentions: "--lora-r applies"),
        // found by review: each of these once exited 0 with nonsense or crashed
        Bad(args: ["bench", "--batch", "1", "--seq", "65536", "--steps", "1"], mentions: "this machine can hold"),
        Bad(args: ["--model", "7b", "--mfu", "1e-300"], mentions: "--mfu"),
        Bad(args: ["--model", "7b", "--epochs", "1e-300"], mentions: "--epochs"),
        Bad(args: ["--model", "phi-3-mini", "--method", "lora", "--lora-targets", "default", "--cheapest"], mentions: "no default target modules"),
        Bad(args: ["--model", "7b", "--method", "lora", "--emit", "trl", "--lora-alpha", "-3"], mentions: "--lora-alpha"),
        Bad(args: ["--model", "7b", "--method", "ia3", "--emit", "trl", "--ia3-targets", "bogus_proj"], mentions: "bogus_proj"),
        Bad(args: ["--model", "gpt2", "--serve", "2", "--context", "100000"], mentions: "learned positions"),
        Bad(args: ["--model", "7b", "--cheapest", "--gpus", "8"], mentions: "--cheapest searches"),
        Bad(args: ["--model", "7b", "--cheapest", "--format", "csv"], mentions: "--format"),
        Bad(args: ["--model", "7b", "--serve", "2", "--gpus", "4"], mentions: "--serve sizes"),
        // trainers (issue 18): an option of another trainer, zero generations, a row longer than
        // the model allows (Qwen3-8B's config.json: max_position_embeddings 40960), vLLM colocated
        // on a card too small for two copies of the weights
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "dpo", "--num-generations", "4"], mentions: "--num-generations is an option of --trainer grpo"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "simpo", "--precompute-ref"], mentions: "--precompute-ref"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "kto", "--generation", "vllm-server"], mentions: "--generation"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--num-generations", "8"], mentions: "not of sft"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--num-generations", "0"], mentions: "--num-generations"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--num-generations", "1"], mentions: "from 2"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--max-completion", "50000"], mentions: "40960"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--max-completion", "2048", "--seq", "1024"], mentions: "--max-completion"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--max-completion", "0"], mentions: "--max-completion"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--max-completion", "9223372036854775807"], mentions: "--max-completion"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--gpu", "24GB", "--trainer", "grpo", "--generation", "vllm-colocate"], mentions: "two copies of the weights"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--vllm-memory", "0.5"], mentions: "--vllm-memory"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--generation", "vllm-colocate", "--vllm-memory", "nan"], mentions: "--vllm-memory"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--generation", "vllm-server", "--vllm-gpus", "0"], mentions: "--vllm-gpus"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--batch", "3"], mentions: "multiple of 8"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--beta", "-1"], mentions: "--beta"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "ppo"], mentions: "did you mean 'dpo'"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "orpo", "--loss", "chunked"], mentions: "--loss standard"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "dpo", "--packing"], mentions: "packing"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "dpo", "--steps", "0"], mentions: "--steps"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "dpo", "--num-iterations", "2"], mentions: "--num-iterations"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "kto", "--batch", "1"], mentions: "2 or more under KTO"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--num-iterations", "0"], mentions: "--num-iterations"),
        Bad(args: ["--model", "qwen3-8b", "--method", "lora", "--trainer", "grpo", "--tokens", "1e6"], mentions: "GRPO's dataset is prompts"),
    ]

    /// `peft-plan bench` trains for real and reports the fields of docs/CONTRACT.md.
    @Test func bench() throws {
        let r = try CLI.run(["bench", "--method", "lora", "--batch", "2", "--seq", "32", "--steps", "3", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        for key in ["tokens_per_second", "step_ms_median", "gemm_share", "gemm_gflops", "peak_bytes", "blas_core", "threads"] {
            #expect(j[key] != nil, "missing \(key)")
        }
        #expect((j["tokens_per_second"] as! Double) > 0 && (j["peak_bytes"] as! Int) > 0)
        let share = j["gemm_share"] as! Double
        #expect(share > 0 && share < 1)
        #expect((j["step_ms"] as! [Double]).count == 3)
        // the burst record calibration reads: LoRA r8 on wq, wv of the tiny model trains
        // r·(in+out) per module (PEFT src/peft/tuners/lora/layer.py: lora_A in→r, lora_B r→out, no bias): 4 layers × 2 × 8 × 512 parameters, fp32
        let burst = try #require(j["burst"] as? [String: Any])
        let measured = try #require(burst["measured"] as? [String: Int])
        #expect(measured["trainable_weights"] == 4 * 2 * 8 * 512 * 4)
        #expect(measured["allocated_peak"] == j["peak_bytes"] as? Int)
        let phases = try #require(burst["phase_peaks"] as? [String: Int])
        let top = phases.values.max() ?? -1
        #expect(phases[burst["peak_phase"] as? String ?? ""] == top, "the phase with the largest peak (forward and backward may tie)")
        #expect(phases["forward"] != nil && phases["backward"] != nil && phases["optimizer"] != nil)
        #expect((burst["environment"] as? [String: Any])?["blas_core"] as? String == j["blas_core"] as? String)
    }

    /// Every engine method runs from the command line; the burst record's trainable bytes
    /// follow PEFT's and AdapterHub's counts for the tiny model (hidden 256, 4 layers, 4 KV heads).
    @Test(arguments: [
        (["--method", "full"], 0), (["--method", "qlora"], 4 * 2 * 8 * 512), (["--method", "qlora", "--no-double-quant"], 4 * 2 * 8 * 512),
        (["--method", "adapter"], 4 * (2 * 256 * 16 + 16 + 256)), (["--method", "adapter", "--adapter", "houlsby", "--adapter-reduction", "8"], 4 * 2 * (2 * 256 * 32 + 32 + 256)),
        (["--method", "prefix", "--prefix-tokens", "5"], 5 * 4 * 2 * 256), (["--method", "prompt", "--prompt-tokens", "5"], 5 * 256),
        (["--method", "ia3"], 4 * (256 + 256 + 688)),
    ] as [([String], Int)])
    func benchEveryMethod(_ args: [String], trainable: Int) throws {
        let r = try CLI.run(["bench", "--batch", "1", "--seq", "16", "--steps", "1", "--format", "json"] + args)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let measured = try #require((j["burst"] as? [String: Any])?["measured"] as? [String: Int])
        if trainable > 0 { #expect(measured["trainable_weights"] == trainable * 4) }
        // frozen bytes: the tiny model's 4 × 7 block Linears (4 × (4·256² + 3·256·688) values)
        // in NF4 — with double quantisation 1 byte per 64 plus a scale per 256 blocks and an
        // offset, else 4 bytes per 64 — beside embed, lm_head and norms in fp32
        let linears = [256 * 256, 256 * 256, 256 * 256, 256 * 256, 688 * 256, 256 * 688, 688 * 256]
        func nf4(_ dq: Bool) -> Int {
            4 * linears.map { n in n / 2 + (dq ? n / 64 + 4 * ((n / 64 + 255) / 256) + 4 : 4 * (n / 64)) }.reduce(0, +)
        }
        let fp32 = 4 * (2 * 1000 * 256 + 256 + 4 * 2 * 256)
        if args[1] == "qlora" { #expect(measured["frozen_weights"] == fp32 + nf4(!args.contains("--no-double-quant"))) }
        if args[1] == "full" { #expect(measured["trainable_weights"] == fp32 + 4 * 4 * linears.reduce(0, +) && measured["frozen_weights"] == 0) }
        #expect((j["config"] as? [String: Any])?["method"] as? String == args[1])
        #expect((j["losses"] as? [Double])?.allSatisfy(\.isFinite) == true)
    }

    /// `calibrate --backend engine --quick` runs its bursts and reports them in JSON with the
    /// the keys of docs/CONTRACT.md; the engine-cpu model's agreement itself is EngineCalibrationTests'.
    @Test func calibrateEngine() throws {
        // in a folder of its own: the run keeps its progress file beside it until it completes
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-calibrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let r = try CLI.run(["calibrate", "--backend", "engine", "--quick", "--steps", "1", "--format", "json"], cwd: folder)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty, "a complete run left its progress file")
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(j["backend"] as? String == "engine")
        let runs = try #require(j["runs"] as? [[String: Any]])
        #expect(runs.count == 18)   // nine methods × checkpointing off and on
        for run in runs {
            let predicted = try #require(run["predicted"] as? [String: Int]), measured = try #require(run["measured"] as? [String: Int])
            #expect(Set(predicted.keys) == Set(measured.keys) && predicted["allocated_peak"] != nil)
            #expect((measured["allocated_peak"] ?? 0) > 0)
        }
        let summary = try #require(j["summary"] as? [String: Any])
        #expect(summary["bursts"] as? Int == 18)
        #expect(!r.stderr.isEmpty, "progress lines on stderr")
    }

    /// `--emit` prints the engine's config for the planned run, with the plan's numbers.
    @Test func emitDeepSpeed() throws {
        let r = try CLI.run(["--model", "70b", "--method", "full", "--gpus", "16", "--sharding", "zero3", "--offload", "optimizer",
                             "--batch", "2", "--grad-accum", "4", "--grad-checkpointing", "--emit", "deepspeed"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(j["train_batch_size"] as? Int == 2 * 4 * 16)
        #expect(j["train_micro_batch_size_per_gpu"] as? Int == 2)
        let zero = j["zero_optimization"] as! [String: Any]
        #expect(zero["stage"] as? Int == 3)
        #expect((zero["offload_optimizer"] as? [String: Any])?["device"] as? String == "cpu")
    }

    @Test("bad input: one clear line on stderr, non-zero status, no signal", arguments: bad)
    func badInput(_ b: Bad) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let r = try CLI.run(b.args, cwd: folder)
        // nothing written, not even a partial or hidden file, where relative outputs would go
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty, "left files behind")
        #expect(!r.signalled, "crashed: \(r.stderr)")
        #expect(r.status != 0)
        #expect(r.stdout.isEmpty, "printed to stdout: \(r.stdout.prefix(200))")
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("peft-plan: error: "))
        #expect(r.stderr.contains(b.mentions), "stderr: \(r.stderr)")
    }
}

/// The preference and RL trainers from the command line (issue 18, docs/trainers.md).
@Suite("Trainers from the command line")
struct TrainerCommandLineTests {
    /// The question users ask in TRL's and Unsloth's trackers: GRPO on Qwen3-8B with LoRA, one
    /// 24 GB card, 8 generations of 1,024 tokens.
    @Test func grpoOnQwen3On24GB() throws {
        let args = ["--model", "qwen3-8b", "--gpu", "24GB", "--method", "lora", "--trainer", "grpo",
                    "--num-generations", "8", "--max-completion", "1024"]
        let table = try CLI.run(args)
        #expect(table.status == 0, "\(table.stderr)")
        for words in ["generation KV cache", "vLLM share", "largest batch of prompts per step that fits", "500 optimizer steps", "generating"] {
            #expect(table.stdout.contains(words), "the table does not say \(words)")
        }
        let r = try CLI.run(args + ["--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let plan = try #require((j["plans"] as? [[String: Any]])?.first)
        let trainer = try #require(plan["trainer"] as? [String: Any])
        #expect(trainer["kind"] as? String == "grpo")
        #expect(trainer["generation_backend"] as? String == "transformers")
        // Transformers' cache of the 8 completions of 512 + 1,024 tokens (less the last, never fed
        // back), from Qwen3-8B's config.json: 36 layers × K and V × 8 KV heads × head_dim 128, bf16
        #expect(trainer["generation_cache_bytes"] as? Int == 8 * (512 + 1024 - 1) * 36 * 2 * 8 * 128 * 2)
        let gpus = try #require(plan["gpus"] as? [[String: Any]])
        #expect(!gpus.isEmpty)
        for g in gpus {
            #expect(g["vllm"] is NSNull, "no vLLM with Transformers' generate")
            let prompts = try #require(g["max_prompts_per_step"] as? Int)
            let fits = try #require(g["fits"] as? Bool)
            // the default micro-batch is one prompt's 8 completions: fitting means one prompt at least
            #expect(fits ? prompts >= 1 : prompts == 0, "\(g["name"] ?? "")")
            let time = try #require(g["time"] as? [String: Any])
            #expect(time["optimizer_steps"] as? Double == 500)
            let generation = try #require(g["generation"] as? [String: Any])
            #expect(generation["completions_per_generation"] as? Int == 8)
            let step = try #require(time["step_seconds"] as? Double), gen = try #require(generation["seconds"] as? Double)
            #expect(gen > 0 && gen < step, "generation is part of the step")
            let hours = try #require(g["hours"] as? Double), cost = try #require(g["cost_usd"] as? Double)
            #expect(hours >= 500 * step / 3600 && cost > 0)
        }
    }

    /// vLLM on GPUs of its own: those GPUs are billed too. Colocated, vLLM's share of the card
    /// leaves training less room than Transformers' generate does.
    @Test func grpoVLLMServerIsBilled() throws {
        let base = ["--model", "qwen3-1.7b", "--gpu", "h100-sxm", "--method", "lora", "--trainer", "grpo", "--max-completion", "512"]
        func first(_ extra: [String]) throws -> [String: Any] {
            let r = try CLI.run(base + extra + ["--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return try #require(((j["plans"] as? [[String: Any]])?.first?["gpus"] as? [[String: Any]])?.first)
        }
        let server = try first(["--generation", "vllm-server", "--vllm-gpus", "2"])
        #expect(server["generation_gpus"] as? Int == 2)
        let price = try #require((server["time"] as? [String: Any])?["price"] as? [String: Any])
        #expect(price["charged_gpus"] as? Int == 3, "the training GPU and the server's two")
        let table = try CLI.run(base + ["--generation", "vllm-server", "--vllm-gpus", "2"])
        #expect(table.stdout.contains("plus 2 GPUs of the same kind for the vLLM server"))
        let colocated = try first(["--generation", "vllm-colocate"])
        #expect(colocated["vllm"] is [String: Any])
        let alone = try first([])
        let roomColocated = try #require(colocated["max_micro_batch"] as? Int), roomAlone = try #require(alone["max_micro_batch"] as? Int)
        #expect(roomColocated < roomAlone, "colocated \(roomColocated) vs Transformers' generate \(roomAlone)")
    }

    /// DPO stacks chosen and rejected: twice the rows of SFT at the same micro-batch.
    @Test func dpoDoublesTheRows() throws {
        let r = try CLI.run(["--model", "qwen2.5-0.5b", "--gpu", "24GB", "--method", "lora", "--trainer", "dpo", "--batch", "2", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let trainer = try #require((j["plans"] as? [[String: Any]])?.first?["trainer"] as? [String: Any])
        #expect(trainer["rows_per_micro_batch"] as? Int == 4)
        #expect(trainer["reference_forward"] as? Bool == true)
        #expect(trainer["reference_weights_bytes"] as? Int == 0, "LoRA's reference is the base with the adapter disabled")
        let notes = try #require((j["assumptions"] as? [String: Any])?["notes"] as? [String])
        #expect(notes.contains { $0.contains("TRL's configs default") }, "checkpointing on as TRL defaults, said")
    }
}
