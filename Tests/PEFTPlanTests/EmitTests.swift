import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTEmit
@testable import PEFTPlan

/// One planned run, emitted in every format that can express it.
///
/// The expected values in the tests below are the spec's own; the parsed values come back
/// from the real DeepSpeed, Accelerate, TRL, Transformers, PEFT and bitsandbytes
/// (scripts/validate_emitted.py, versions pinned in scripts/setup.sh).
struct EmitCase: CustomTestStringConvertible, Sendable {
    let id: String
    /// The preset the run is planned for; its config.json is what PEFT counts on.
    let model: String
    let spec: RunSpec

    var testDescription: String { id }

    init(_ id: String, model: String, method: Method, gpus: Int = 1, sharding: Sharding = .none, offload: Offload = .none,
         packing: Bool = false, epochs: Double = 1, learningRate: Double? = nil, maxSteps: Int? = nil,
         options: (inout MethodOptions) -> Void = { _ in }, training: (inout TrainingOptions) -> Void = { _ in }) {
        var o = MethodOptions(), t = TrainingOptions()
        options(&o)
        training(&t)
        self.id = id
        self.model = model
        self.spec = RunSpec(modelName: model, family: try! Presets.resolve(model).family, method: method, methodOptions: o,
                            training: t, scale: ScaleOptions(gpus: gpus, sharding: sharding, offload: offload),
                            packing: packing, epochs: epochs, learningRate: learningRate, maxSteps: maxSteps)
    }

    static let all: [EmitCase] = [
        EmitCase("lora-1gpu", model: "llama-3.2-1b", method: .lora, packing: true, epochs: 3,
                 options: { $0.loraR = 16; $0.loraAlpha = 32; $0.loraDropout = 0.05 },
                 training: { $0.batch = 4; $0.gradAccum = 8; $0.seq = 2048; $0.gradCheckpointing = true }),
        EmitCase("lora-adapters-in-model-dtype", model: "llama-3.2-1b", method: .lora,
                 options: { $0.adapterDtype = .model; $0.loraTargets = .allLinear }, training: { $0.batch = 2 }),
        EmitCase("qlora-adapters-in-model-dtype", model: "qwen2.5-0.5b", method: .qlora,
                 options: { $0.adapterDtype = .model }, training: { $0.gradAccum = 2 }),
        EmitCase("qlora-fsdp-adapters-in-model-dtype-2gpu", model: "llama-3.2-1b", method: .qlora, gpus: 2, sharding: .fsdp,
                 options: { $0.adapterDtype = .model; $0.loraTargets = .allLinear }, training: { $0.batch = 2 }),
        EmitCase("qlora-fsdp-4gpu", model: "llama-3.2-1b", method: .qlora, gpus: 4, sharding: .fsdp,
                 options: { $0.loraR = 64; $0.loraAlpha = 16; $0.loraTargets = .allLinear },
                 training: { $0.batch = 2; $0.gradAccum = 4; $0.seq = 4096; $0.optimizer = .pagedAdamw8bit }),
        EmitCase("qlora-fsdp-offload-4gpu", model: "qwen2.5-0.5b", method: .qlora, gpus: 4, sharding: .fsdp, offload: .params,
                 options: { $0.quant = .fp4; $0.doubleQuant = false; $0.loraTargets = .list(["q_proj", "k_proj", "v_proj", "o_proj"]) },
                 training: { $0.precision = .mixedBF16; $0.gradAccum = 2 }),
        EmitCase("full-zero3-optoffload-8gpu", model: "llama-3.2-1b", method: .full, gpus: 8, sharding: .zero3, offload: .optimizer,
                 training: { $0.batch = 2; $0.gradAccum = 4; $0.precision = .mixedBF16; $0.gradCheckpointing = true }),
        EmitCase("full-zero3-paramoffload-4gpu", model: "qwen2.5-0.5b", method: .full, gpus: 4, sharding: .zero3, offload: .params,
                 learningRate: 1e-5, training: { $0.gradAccum = 16; $0.seq = 1024 }),
        EmitCase("lora-zero2-2gpu", model: "mistral-7b", method: .lora, gpus: 2, sharding: .zero2,
                 options: { $0.dora = true; $0.loraTargets = .list(["q_proj", "v_proj", "down_proj"]) },
                 training: { $0.gradAccum = 3; $0.precision = .mixedFP16; $0.optimizer = .sgdMomentum }),
        EmitCase("full-zero1-offload-2gpu", model: "gpt2", method: .full, gpus: 2, sharding: .zero1, offload: .optimizer,
                 training: { $0.batch = 8; $0.precision = .fp32; $0.optimizer = .adafactor }),
        EmitCase("lora-zero2-lion-2gpu", model: "opt-350m", method: .lora, gpus: 2, sharding: .zero2, learningRate: 3e-5,
                 training: { $0.batch = 2; $0.optimizer = .lion }),
        EmitCase("prefix-1gpu", model: "llama-3.2-1b", method: .prefix,
                 options: { $0.prefixTokens = 30; $0.prefixProjection = 256 },
                 training: { $0.precision = .fp32; $0.attention = .eager; $0.seq = 512 }),
        EmitCase("prompt-ddp-2gpu", model: "qwen2.5-0.5b", method: .prompt, gpus: 2,
                 options: { $0.promptTokens = 16 },
                 training: { $0.precision = .fp16; $0.optimizer = .adamw8bit }),
        EmitCase("ptuning-1gpu", model: "gpt2", method: .ptuning,
                 options: { $0.promptTokens = 12; $0.ptuningHidden = 128 },
                 training: { $0.optimizer = .sgd; $0.seq = 1024 }),
        EmitCase("ia3-1gpu", model: "llama-3.2-1b", method: .ia3, training: { $0.attention = .flash }),
        EmitCase("full-fsdp-8gpu", model: "llama-3.2-1b", method: .full, gpus: 8, sharding: .fsdp,
                 training: { $0.gradCheckpointing = true; $0.batch = 2 }),
        EmitCase("qlora-zero3-2gpu", model: "llama-3.2-1b", method: .qlora, gpus: 2, sharding: .zero3,
                 training: { $0.gradAccum = 8 }),
        EmitCase("adapter-zero2-2gpu", model: "llama-3.2-1b", method: .adapter, gpus: 2, sharding: .zero2),
        EmitCase("lora-reentrant-offloading-chunked-1gpu", model: "qwen2.5-0.5b", method: .lora,
                 training: { $0.gradCheckpointing = true; $0.checkpointStyle = .reentrant; $0.activationOffloading = true; $0.loss = .chunked }),
        EmitCase("full-selective-checkpointing-1gpu", model: "qwen2.5-0.5b", method: .full,
                 training: { $0.gradCheckpointing = true; $0.checkpointStyle = .selective; $0.loss = .chunked }),
        EmitCase("lora-liger-kernels-packed-1gpu", model: "llama-3.2-1b", method: .lora, packing: true,
                 training: { $0.kernels = .liger; $0.loss = .chunked }),
        // the preference and RL trainers (docs/trainers.md): their configs with the planned values
        EmitCase("dpo-lora-1gpu", model: "qwen2.5-0.5b", method: .lora,
                 training: { $0.batch = 2; $0.seq = 1024; $0.loss = .chunked; $0.gradCheckpointing = true; $0.trainer.kind = .dpo }),
        EmitCase("dpo-full-precomputed-zero3-2gpu", model: "qwen2.5-0.5b", method: .full, gpus: 2, sharding: .zero3,
                 training: { $0.loss = .chunked; $0.trainer.kind = .dpo; $0.trainer.precomputeRef = true; $0.trainer.beta = 0.05 }),
        EmitCase("kto-lora-1gpu", model: "llama-3.2-1b", method: .lora,
                 training: { $0.batch = 4; $0.loss = .chunked; $0.trainer.kind = .kto }),
        EmitCase("orpo-lora-1gpu", model: "llama-3.2-1b", method: .lora,
                 training: { $0.batch = 2; $0.trainer.kind = .orpo; $0.trainer.beta = 0.2 }),
        EmitCase("simpo-full-1gpu", model: "qwen2.5-0.5b", method: .full,
                 training: { $0.gradCheckpointing = true; $0.trainer.kind = .simpo }),
        EmitCase("grpo-lora-vllm-colocate-1gpu", model: "qwen2.5-0.5b", method: .lora, maxSteps: 500,
                 training: { $0.batch = 8; $0.seq = 1536; $0.loss = .chunked; $0.gradCheckpointing = true; $0.trainer.kind = .grpo
                             $0.trainer.completion = 1024; $0.trainer.generation = .vllmColocate; $0.trainer.vllmMemory = 0.4 }),
        EmitCase("grpo-full-transformers-1gpu", model: "qwen2.5-0.5b", method: .full,
                 training: { $0.batch = 4; $0.seq = 768; $0.loss = .chunked; $0.trainer.kind = .grpo; $0.trainer.numGenerations = 4
                             $0.trainer.completion = 256; $0.trainer.beta = 0.04; $0.trainer.numIterations = 2 }),
        EmitCase("grpo-qlora-vllm-server-1gpu", model: "llama-3.2-1b", method: .qlora,
                 training: { $0.batch = 8; $0.loss = .chunked; $0.trainer.kind = .grpo; $0.trainer.completion = 512; $0.trainer.generation = .vllmServer }),
    ]

    /// The emitted text for a format, nil where the emitter refuses it (checked separately).
    func text(_ format: EmitFormat) -> String? { try? Emitter.emit(spec, as: format) }

    func key(_ format: EmitFormat) -> String { "\(id)/\(format.rawValue)" }

    /// The validator's input lines for this case: one per format it can be emitted as.
    var pythonInputs: [[String: Any]] {
        EmitFormat.allCases.compactMap { format in
            guard let text = text(format) else { return nil }
            var d: [String: Any] = ["id": key(format), "format": format.rawValue, "text": text, "gpus": spec.scale.gpus]
            if format == .trl {
                if spec.usesDeepSpeed, let ds = self.text(.deepspeed) { d["files"] = [EmitFormat.deepspeed.fileName: ds] }
                d["config_path"] = (try! Presets.directory).appendingPathComponent("\(model).json").path
            }
            return d
        }
    }
}

/// Files that must be refused: each proves the validator can fail on what it claims to check.
enum BrokenEmit {
    nonisolated(unsafe) static let inputs: [[String: Any]] = {
        let spec = EmitCase.all.first { $0.id == "full-zero3-optoffload-8gpu" }!
        let ds = spec.text(.deepspeed)!, acc = EmitCase.all.first { $0.id == "qlora-fsdp-4gpu" }!.text(.accelerate)!
        let trl = EmitCase.all.first { $0.id == "lora-1gpu" }!.text(.trl)!
        let fsdpTRL = EmitCase.all.first { $0.id == "qlora-fsdp-4gpu" }!.text(.trl)!
        return [
            // A misspelt key inside a DeepSpeed section (pydantic extra="forbid").
            ["id": "broken/ds-section-key", "format": "deepspeed", "gpus": 8,
             "text": ds.replacingOccurrences(of: "\"offload_optimizer\"", with: "\"offload_optimiser\"")],
            // A misspelt top-level key, which DeepSpeed would ignore silently.
            ["id": "broken/ds-top-key", "format": "deepspeed", "gpus": 8,
             "text": ds.replacingOccurrences(of: "\"gradient_clipping\"", with: "\"gradient_clip\"")],
            // train_batch_size checked against the world size: the same file on 4 GPUs.
            ["id": "broken/ds-world-size", "format": "deepspeed", "gpus": 4, "text": ds],
            // A misspelt FSDP key, which `accelerate launch` would ignore silently.
            ["id": "broken/accelerate-fsdp-key", "format": "accelerate",
             "text": acc.replacingOccurrences(of: "fsdp_offload_params", with: "fsdp_offload_parameters")],
            // A misspelt SFTConfig argument.
            ["id": "broken/trl-argument", "format": "trl",
             "text": trl.replacingOccurrences(of: "per_device_train_batch_size", with: "per_device_batch_size")],
            // Accelerate's spelling of CPU offload in Transformers' fsdp_config, which it ignores.
            ["id": "broken/trl-fsdp-key", "format": "trl",
             "text": fsdpTRL.replacingOccurrences(of: "\"cpu_offload\"", with: "\"offload_params\"")],
        ]
    }()

    /// A train.py beside a ds_config.json planned with another accumulation: both load, and
    /// Transformers' cross-check must report the difference.
    nonisolated(unsafe) static let disagreeing: [String: Any] = {
        let c = EmitCase.all.first { $0.id == "full-zero3-optoffload-8gpu" }!
        var other = c.spec
        other.training.gradAccum += 1
        return ["id": "control/trl-ds-disagrees", "format": "trl", "gpus": c.spec.scale.gpus, "text": c.text(.trl)!,
                "files": [EmitFormat.deepspeed.fileName: try! Emitter.emit(other, as: .deepspeed)]]
    }()
}

/// The real libraries' reading of every emitted file, computed once per test run.
nonisolated(unsafe) let emitReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "validate_emitted.py",
                        input: EmitCase.all.flatMap(\.pythonInputs) + BrokenEmit.inputs + [BrokenEmit.disagreeing])

/// What one emitted file parsed to, or a recorded failure naming the library's error.
func parsed(_ c: EmitCase, _ format: EmitFormat) throws -> [String: Any] {
    let reference = try emitReference.get()
    let result = try #require(reference[c.key(format)] as? [String: Any], "no result for \(c.key(format))")
    if let error = result["error"] as? String {
        throw Refused(message: "\(format.rawValue) refused the emitted file: \(error)\n\(c.text(format) ?? "")")
    }
    return result
}

/// A real library refused an emitted file; the message carries its error and the file.
struct Refused: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension Dictionary where Key == String, Value == Any {
    func sub(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
    func double(_ key: String) -> Double? { (self[key] as? NSNumber)?.doubleValue }
    func bool(_ key: String) -> Bool? { (self[key] as? NSNumber)?.boolValue }
    func string(_ key: String) -> String? { self[key] as? String }
}

/// The dtype names the plan's precision maps to (Transformers' `dtype=`, bitsandbytes'
/// compute and storage dtypes), written out here from the precisions the README lists.
private func expectedLoadDtype(_ p: Precision) -> String {
    switch p {
    case .bf16: return "bfloat16"
    case .fp16: return "float16"
    case .fp32, .mixedBF16, .mixedFP16: return "float32"
    }
}

/// Autocast as the engines must see it: the precision's 16-bit type, except full
/// fine-tuning in pure 16 bits under FSDP, where Accelerate would add fp32 master copies
/// (accelerate/utils/fsdp_utils.py) that a pure-precision plan does not hold.
private func expectedAutocast(_ s: RunSpec) -> String {
    // Accelerate's FSDP upcasts trainable parameters under autocast: off where they are 16-bit
    let trains16 = s.method == .full || ([.lora, .qlora].contains(s.method) && s.methodOptions.adapterDtype == .model)
    if trains16 && s.scale.sharding == .fsdp && [.bf16, .fp16].contains(s.training.precision) { return "no" }
    switch s.training.precision {
    case .bf16, .mixedBF16: return "bf16"
    case .fp16, .mixedFP16: return "fp16"
    case .fp32: return "no"
    }
}

@Suite("Emitted configs load in the real engines and carry the plan")
struct EmitTests {
    @Test("DeepSpeed's DeepSpeedConfig parses the planned batch, ZeRO stage, offload and precision",
          arguments: EmitCase.all.filter { $0.spec.scale.sharding != .fsdp })
    func deepspeed(_ c: EmitCase) throws {
        let r = try parsed(c, .deepspeed), s = c.spec, t = s.training
        #expect(r.int("world_size") == s.scale.gpus)
        #expect(r.int("train_micro_batch_size_per_gpu") == t.batch)
        #expect(r.int("gradient_accumulation_steps") == t.gradAccum)
        #expect(r.int("train_batch_size") == t.batch * t.gradAccum * s.scale.gpus)
        #expect(r.int("zero_stage") == s.scale.sharding.zeroStage)
        #expect(r.string("offload_optimizer_device") == (s.scale.offload == .none ? "none" : "cpu"))
        #expect(r.string("offload_param_device") == (s.scale.offload == .params ? "cpu" : "none"))
        #expect(r.bool("bf16_enabled") == [.bf16, .mixedBF16].contains(t.precision))
        #expect(r.bool("fp16_enabled") == [.fp16, .mixedFP16].contains(t.precision))
        #expect(r.double("gradient_clipping") == s.maxGradNorm)
        switch t.optimizer {
        case .adamw, .lion:
            #expect(r.string("optimizer_name") == (t.optimizer == .adamw ? "adamw" : "lion"))
            #expect(r.sub("optimizer_params")?.double("lr") == s.learningRate)
        default:
            #expect(r["optimizer_name"] is NSNull, "the Trainer builds \(t.optimizer.rawValue), not DeepSpeed")
            // Offloaded states stepped by a torch optimizer need DeepSpeed's opt-out.
            #expect(r.bool("zero_force_ds_cpu_optimizer") == (s.scale.offload == .none))
        }
        if s.scale.sharding == .zero3 { #expect(r.bool("gather_16bit_weights_on_model_save") == true) }
    }

    @Test("Accelerate's loader and launcher parse the planned processes, precision, FSDP and ZeRO settings",
          arguments: EmitCase.all)
    func accelerate(_ c: EmitCase) throws {
        let r = try parsed(c, .accelerate), s = c.spec
        let distributed: String
        switch s.scale.sharding {
        case .none: distributed = s.scale.gpus > 1 ? "MULTI_GPU" : "NO"
        case .fsdp: distributed = "FSDP"
        case .zero1, .zero2, .zero3: distributed = "DEEPSPEED"
        }
        #expect(r.string("distributed_type") == distributed)
        #expect(r.int("num_processes") == s.scale.gpus)
        #expect(r.string("mixed_precision") == expectedAutocast(s))
        #expect(r.string("env_mixed_precision") == expectedAutocast(s), "what the launched processes see")
        if s.scale.sharding == .fsdp {
            let f = try #require(r.sub("fsdp"), "no FSDP plugin built")
            #expect(f.int("version") == 2)
            #expect(f.bool("reshard_after_forward") == true, "FULL_SHARD")
            #expect(f.bool("offload_params") == (s.scale.offload == .params))
            #expect(f.bool("activation_checkpointing") == (s.training.gradCheckpointing || s.method == .qlora))
            #expect(f.string("auto_wrap_policy") == "transformer_auto_wrap_policy")
            #expect(f.string("state_dict_type") == (s.method == .full ? "SHARDED_STATE_DICT" : "FULL_STATE_DICT"))
            #expect(f.bool("cpu_ram_efficient_loading") == true)
        }
        if let stage = s.scale.sharding.zeroStage, s.scale.sharding != .none {
            let d = try #require(r.sub("deepspeed"), "no DeepSpeed plugin built")
            #expect(d.int("zero_stage") == stage)
            #expect(d.string("offload_optimizer_device") == (s.scale.offload == .none ? "none" : "cpu"))
            #expect(d.string("offload_param_device") == (s.scale.offload == .params ? "cpu" : "none"))
            #expect(d.int("gradient_accumulation_steps") == s.training.gradAccum)
            #expect(d.double("gradient_clipping") == s.maxGradNorm)
            #expect(d.bool("zero3_init_flag") == (stage == 3))
            #expect(d.sub("config")?.sub("zero_optimization")?.int("stage") == stage, "the config DeepSpeed gets")
        }
    }

    @Test("TRL's SFTConfig and PEFT's configs carry the plan, and train exactly the parameters it counted",
          arguments: EmitCase.all.filter { $0.spec.method != .adapter })
    func trl(_ c: EmitCase) throws {
        let r = try parsed(c, .trl), s = c.spec, t = s.training, o = s.methodOptions
        let fsdp = s.scale.sharding == .fsdp
        let checkpointing = t.gradCheckpointing || s.method == .qlora

        let a = try #require(r.sub("training_args"))
        let tr = t.trainer
        #expect(a.string("class") == tr.kind.configClass)
        #expect(a.int("per_device_train_batch_size") == t.batch)
        #expect(a.int("gradient_accumulation_steps") == t.gradAccum)
        #expect(a.double("num_train_epochs") == s.epochs)
        // --steps: max_steps, which the Trainer takes over the epochs; -1 (its default) otherwise
        #expect(a.int("max_steps") == (s.maxSteps ?? -1))
        #expect(a.double("learning_rate") == s.learningRate)
        #expect(a.double("max_grad_norm") == s.maxGradNorm)
        #expect(a.string("mixed_precision") == expectedAutocast(s))
        #expect(a.bool("bf16") == (expectedAutocast(s) == "bf16"))
        #expect(a.bool("fp16") == (expectedAutocast(s) == "fp16"))
        #expect(a.bool("activation_checkpointing") == (checkpointing && !fsdp), "under FSDP it is FSDP's own")
        // reentrant checkpointing travels in activation_checkpointing_kwargs; unset otherwise
        #expect(a.bool("use_reentrant") == (checkpointing && !fsdp && t.checkpointStyle == .reentrant ? true : nil))
        #expect(a.bool("selective") == (checkpointing && !fsdp && t.checkpointStyle == .selective ? true : nil))
        #expect(a.bool("activation_offloading") == t.activationOffloading)
        #expect(a.bool("use_liger_kernel") == (t.kernels == .liger))
        switch tr.kind {
        case .sft:
            #expect(a.bool("padding_free") == s.packing)
            #expect(a.bool("packing") == s.packing)
        case .dpo:
            #expect(a.bool("padding_free") == false, "DPO's padding-free batches fall back to padding in TRL 1.16")
        default:
            #expect(a["padding_free"] is NSNull && a["packing"] is NSNull)
        }
        // GRPO's rows are prompt + completion, its prompts never truncated: no max_length
        #expect(a.int("max_length") == (tr.kind == .grpo ? nil : t.seq))
        switch tr.kind {
        case .sft: break
        case .dpo, .kto:
            #expect(a.double("beta") == tr.effectiveBeta)
            #expect(a.bool("precompute_ref_log_probs") == tr.precomputeRef)
        case .orpo:
            #expect(a.double("beta") == tr.effectiveBeta)
        case .simpo:
            #expect(a.string("loss_type") == "simpo")
            #expect(a.double("cpo_alpha") == 0, "the planned SimPO keeps no NLL term")
            #expect(a.double("beta") == tr.effectiveBeta)
        case .grpo:
            #expect(a.int("num_generations") == tr.numGenerations)
            #expect(a.int("num_iterations") == tr.numIterations)
            #expect(a.int("max_completion_length") == tr.completion)
            #expect(a.double("beta") == tr.effectiveBeta)
            #expect(a.bool("use_vllm") == tr.generation.usesVLLM)
            if tr.generation.usesVLLM { #expect(a.string("vllm_mode") == (tr.generation == .vllmColocate ? "colocate" : "server")) }
            if tr.generation == .vllmColocate {
                #expect(a.double("vllm_gpu_memory_utilization") == tr.effectiveVLLMMemory)
                #expect(a.int("vllm_max_model_length") == t.seq, "vLLM sized for the planned row")
            }
            // the generation batch TRL derives: per-device batch × GPUs × steps_per_generation (= accumulation)
            #expect(a.int("steps_per_generation") == t.gradAccum)
            #expect(a.int("generation_batch_size") == t.batch * s.scale.gpus * t.gradAccum)
        }
        #expect(r.sub("model_kwargs")?.string("dtype") == expectedLoadDtype(t.precision))
        #expect(r.string("model_id") == c.model)

        // The optimizer Transformers builds for `optim` (Trainer.get_optimizer_cls_and_kwargs).
        let opt = try #require(r.sub("optimizer")), kwargs = opt.sub("kwargs") ?? [:]
        switch t.optimizer {
        case .adamw:
            #expect(opt.string("class") == "torch.optim.adamw.AdamW")
            #expect(kwargs.bool("fused") == true)
        case .adamw8bit, .pagedAdamw8bit:
            #expect(opt.string("class") == "bitsandbytes.optim.adamw.AdamW")
            #expect(kwargs.int("optim_bits") == 8)
            #expect(kwargs.bool("is_paged") == (t.optimizer == .pagedAdamw8bit))
        case .sgd, .sgdMomentum:
            #expect(opt.string("class") == "torch.optim.sgd.SGD")
            #expect(kwargs.double("momentum") == (t.optimizer == .sgdMomentum ? 0.9 : nil))
        case .adafactor:
            #expect(opt.string("class") == "transformers.optimization.Adafactor")
        case .lion:
            #expect(opt.string("class") == "bitsandbytes.optim.lion.Lion")
            #expect(kwargs.int("optim_bits") == 32)
        }
        #expect(kwargs.double("lr") == s.learningRate)

        if s.usesDeepSpeed {
            #expect(a.string("deepspeed") == EmitFormat.deepspeed.fileName)
            let d = try #require(r.sub("deepspeed"))
            #expect(d.int("zero_stage") == s.scale.sharding.zeroStage)
            // Transformers compares ds_config.json with the arguments at the planned world size
            // (HfTrainerDeepSpeedConfig.trainer_config_process) and refuses any difference.
            let mismatches = d["mismatches"] as? [String]
            #expect(mismatches == [], "ds_config.json disagrees with SFTConfig: \(mismatches ?? [])")
        } else {
            #expect(a["deepspeed"] is NSNull)
        }
        #expect(a.bool("fsdp") == fsdp)
        if fsdp {
            let f = try #require(r.sub("fsdp"), "no FSDP plugin built from fsdp_plugin_args")
            #expect(f.int("version") == 2)
            #expect(f.bool("offload_params") == (s.scale.offload == .params))
            #expect(f.bool("activation_checkpointing") == checkpointing)
        }

        if s.method == .qlora {
            let b = try #require(r.sub("bnb"), "QLoRA without a BitsAndBytesConfig")
            #expect(b.bool("load_in_4bit") == true)
            #expect(b.string("quant_type") == o.quant.rawValue)
            #expect(b.bool("double_quant") == o.doubleQuant)
            #expect(b.string("compute_dtype") == ([.fp16, .mixedFP16].contains(t.precision) ? "float16" : t.precision == .fp32 ? "float32" : "bfloat16"))
            // FSDP and ZeRO-3 need the 4-bit weights stored in the model's float dtype;
            // otherwise bitsandbytes' default uint8 storage.
            #expect(b.string("quant_storage") == (s.scale.sharding.shardsParameters || o.adapterDtype == .model ? expectedLoadDtype(t.precision) : "uint8"))
        } else {
            #expect(r["bnb"] == nil)
        }

        guard s.method != .full else {
            #expect(r["peft"] == nil)
            return
        }
        let p = try #require(r.sub("peft"))
        #expect(p.string("task_type") == "CAUSAL_LM")
        switch s.method {
        case .lora, .qlora:
            #expect(p.string("class") == "LoraConfig")
            #expect(p.int("r") == o.loraR)
            #expect(p.int("lora_alpha") == o.loraAlpha)
            #expect(p.double("lora_dropout") == o.loraDropout)
            #expect(p.bool("use_dora") == o.dora)
            let targets: Any? = p["target_modules"]
            switch o.loraTargets {
            case .allLinear: #expect(targets as? String == "all-linear")
            case let .list(names): #expect(targets as? [String] == names.sorted())
            case let .pattern(p): #expect(targets as? String == p)
            case .languageModel: Issue.record("language-model targets are emitted as the model's pattern")
            case .default:
                let defaults = try Presets.resolve(c.model).family.spec.loraTargets?.sorted()
                #expect(targets as? [String] == defaults)
            }
        case .ia3:
            #expect(p.string("class") == "IA3Config")
            let d = try #require(try Presets.resolve(c.model).family.spec.ia3Targets)
            #expect(p["target_modules"] as? [String] == d.targets.sorted())
            #expect(p["feedforward_modules"] as? [String] == d.feedforward.sorted())
        case .prefix:
            #expect(p.string("class") == "PrefixTuningConfig")
            #expect(p.int("num_virtual_tokens") == o.prefixTokens)
            #expect(p.bool("prefix_projection") == (o.prefixProjection > 0))
            if o.prefixProjection > 0 { #expect(p.int("encoder_hidden_size") == o.prefixProjection) }
        case .prompt:
            #expect(p.string("class") == "PromptTuningConfig")
            #expect(p.int("num_virtual_tokens") == o.promptTokens)
        case .ptuning:
            #expect(p.string("class") == "PromptEncoderConfig")
            #expect(p.int("num_virtual_tokens") == o.promptTokens)
            #expect(p.int("encoder_hidden_size") == o.ptuningHidden)
        case .full, .adapter:
            Issue.record("unexpected method")
        }
        // The emitted config applied to the real model (meta device): the trainable and total
        // parameters are those the plan counted.
        let counts = try #require(p.sub("counts"))
        let account = try ParameterAccounting.account(try Presets.resolve(c.model), method: s.method, options: o)
        #expect(counts.int("trainable") == account.trainableParams)
        #expect(counts.int("all") == account.totalParams)
        if s.method.spec.wrapper == .lowRank {
            // and their bytes, with the adapters in fp32 or (--adapter-dtype model) in the model's dtype
            #expect(counts.int("trainable_bytes") == MemoryComponents.trainableWeights(account, precision: t.precision, options: o))
            let kwargs = r.sub("peft_model_kwargs") ?? [:]
            #expect(kwargs.bool("autocast_adapter_dtype") == (o.adapterDtype == .model ? false : nil))
        }
    }

    @Test("Transformers' cross-check reports a ds_config.json that disagrees with the arguments")
    func disagreeingDeepSpeedConfigIsReported() throws {
        let result = try #require(try emitReference.get()["control/trl-ds-disagrees"] as? [String: Any])
        let mismatches = try #require(result.sub("deepspeed")?["mismatches"] as? [String], "\(result)")
        #expect(mismatches.contains { $0.contains("gradient_accumulation_steps") }, "\(mismatches)")
    }

    @Test("the validator refuses broken files: misspelt keys, arguments and a batch for the wrong world size",
          arguments: BrokenEmit.inputs.map { $0["id"] as! String })
    func brokenFilesAreRefused(_ id: String) throws {
        let result = try #require(try emitReference.get()[id] as? [String: Any])
        #expect(result["error"] is String, "accepted: \(result)")
    }
}

@Suite("Emit refusals are one clear line")
struct EmitErrorTests {
    /// The refusal for `spec` as `format`: a PlanError whose one-line message names `mentions`.
    func refusal(_ spec: RunSpec, as format: EmitFormat, mentions: [String]) {
        let error = #expect(throws: PlanError.self) { try Emitter.emit(spec, as: format) }
        guard let error else { return }
        let text = error.description
        #expect(!text.contains("\n"), "one line: \(text)")
        for m in mentions { #expect(text.contains(m), "'\(text)' does not mention \(m)") }
    }

    func spec(_ method: Method = .lora, gpus: Int = 4, sharding: Sharding = .none, offload: Offload = .none,
              training: (inout TrainingOptions) -> Void = { _ in }) -> RunSpec {
        var t = TrainingOptions()
        training(&t)
        return RunSpec(modelName: "llama-3.1-8b", family: .llama, method: method, training: t,
                       scale: ScaleOptions(gpus: gpus, sharding: sharding, offload: offload))
    }

    /// TRL 1.16's SFTTrainer never calls prepare_model_for_kbit_training (trl/trainer/sft_trainer.py
    /// at 1.16.0: no such call, checked by grep below against the installed TRL), so a QLoRA plan
    /// with its rest in fp32 (the default) writes the call into train.py, and one with
    /// `--qlora-rest model` does not; a sharded model (FSDP, ZeRO-3) keeps one dtype and is not upcast.
    @Test func qloraRestInTheScript() throws {
        let lib = repoRoot.appendingPathComponent(".venv/lib")
        let python = try #require(try FileManager.default.contentsOfDirectory(atPath: lib.path).first { $0.hasPrefix("python3") },
                                  "the project's .venv (scripts/setup.sh)")
        let trl = lib.appendingPathComponent("\(python)/site-packages/trl/trainer/sft_trainer.py")
        let source = try String(contentsOf: trl, encoding: .utf8)
        #expect(source.contains("class SFTTrainer"))
        #expect(!source.contains("prepare_model_for_kbit_training"), "TRL's SFTTrainer now upcasts QLoRA's rest itself")
        func script(_ rest: QLoRARest, gpus: Int = 1, sharding: Sharding = .none, adapters: AdapterDtype = .fp32) throws -> String {
            var o = MethodOptions()
            o.qloraRest = rest
            o.adapterDtype = adapters
            var t = TrainingOptions()
            t.precision = .bf16
            return try Emitter.emit(RunSpec(modelName: "llama-3.1-8b", family: .llama, method: .qlora, methodOptions: o, training: t,
                                            scale: ScaleOptions(gpus: gpus, sharding: sharding)), as: .trl)
        }
        let call = "model = prepare_model_for_kbit_training(model"
        #expect(try script(.fp32).contains(call))
        #expect(try script(.fp32, adapters: .model).contains(call))
        #expect(!(try script(.model).contains(call)))
        #expect(!(try script(.model, adapters: .model).contains(call)))
        #expect(!(try script(.fp32, gpus: 2, sharding: .fsdp).contains(call)))
    }

    @Test func fsdpCannotBeADeepSpeedConfig() {
        refusal(spec(sharding: .fsdp), as: .deepspeed, mentions: ["--sharding fsdp", "--emit accelerate", "zero3"])
        #expect(throws: Never.self) { try Emitter.emit(spec(sharding: .fsdp), as: .accelerate) }
    }

    @Test func offloadNeedsSharding() {
        for format in EmitFormat.allCases {
            refusal(spec(offload: .optimizer), as: format, mentions: ["--offload optimizer", "--sharding"])
        }
    }

    @Test func parameterOffloadNeedsStage3OrFSDP() {
        refusal(spec(sharding: .zero2, offload: .params), as: .deepspeed, mentions: ["--offload params", "zero3", "--sharding zero2"])
    }

    @Test func fsdpOffloadsEverythingOrNothing() {
        refusal(spec(sharding: .fsdp, offload: .optimizer), as: .accelerate, mentions: ["--sharding fsdp", "--offload params"])
    }

    @Test func eightBitOptimizersStayOnTheGPU() {
        refusal(spec(.qlora, sharding: .zero3, offload: .optimizer, training: { $0.optimizer = .pagedAdamw8bit }),
                as: .deepspeed, mentions: ["paged-adamw-8bit", "--offload optimizer"])
    }

    @Test func bottleneckAdaptersAreNotPEFT() {
        refusal(spec(.adapter), as: .trl, mentions: ["--method adapter", "PEFT"])
        #expect(throws: Never.self) { try Emitter.emit(spec(.adapter, sharding: .zero2), as: .deepspeed) }
    }

    @Test func pureFP16FullFineTuningNeedsDeepSpeed() {
        refusal(spec(.full, gpus: 1, training: { $0.precision = .fp16 }), as: .trl, mentions: ["--precision fp16", "mixed-fp16"])
        #expect(throws: Never.self) { try Emitter.emit(spec(.full, sharding: .zero2, training: { $0.precision = .fp16 }), as: .trl) }
    }

    @Test func modelsWithoutDefaultTargetsNeedThem() {
        var s = spec()
        s.family = .phi3
        refusal(s, as: .trl, mentions: ["phi3", "--lora-targets"])
    }

    @Test func nonsenseNumbersAreRefused() {
        refusal(spec(training: { $0.gradAccum = 0 }), as: .deepspeed, mentions: ["--grad-accum", "'0'"])
        var s = spec()
        s.learningRate = -1
        refusal(s, as: .trl, mentions: ["--learning-rate"])
    }

    @Test("default learning rates: 2e-5 for full fine-tuning, 2e-4 for PEFT methods")
    func defaultLearningRates() {
        #expect(RunSpec(modelName: "7b", method: .full).learningRate == 2e-5)
        for m in Method.allCases where m != .full { #expect(RunSpec(modelName: "7b", method: m).learningRate == 2e-4) }
    }
}
