import Foundation
import PEFTOutput
import PEFTPlan

// Hand-over to the real engines: the planned run written as the files DeepSpeed,
// Accelerate and TRL read. Every key below was checked against the library that reads it,
// at the versions scripts/setup.sh pins for the tests (DeepSpeed 0.19.8, Accelerate 1.15.0,
// TRL 1.16.0, Transformers 5.23.0, PEFT 0.21.2, bitsandbytes 0.50.2), and
// Tests/PEFTPlanTests/EmitTests.swift loads each emitted file with those libraries' own
// loaders (scripts/validate_emitted.py) and compares what they parsed with the plan.

/// What the planner chose for one run: everything the emitted configs carry.
public struct RunSpec: Sendable, Equatable {
    /// The preset name or config path the plan was made for. The engines need a Hugging Face
    /// model id instead; the TRL snippet puts this name where the user writes the id.
    public var modelName: String
    /// The model's family, when known: default LoRA/IA³ targets are then written out as the
    /// module names PEFT would pick (`FamilySpec.loraTargets`); unknown leaves PEFT to pick them.
    public var family: ModelFamily?
    public var method: Method
    public var methodOptions: MethodOptions
    public var training: TrainingOptions
    public var scale: ScaleOptions
    /// TRL's `packing`: sequences are packed into `training.seq`-token blocks.
    public var packing: Bool
    public var epochs: Double
    /// Peak learning rate; ``defaultLearningRate(for:)`` when not given.
    public var learningRate: Double
    /// Gradient-norm clipping: `TrainingArguments.max_grad_norm` and DeepSpeed's
    /// `gradient_clipping`, which Transformers requires to be equal (1.0 is its default).
    public var maxGradNorm: Double
    /// Optimizer steps planned (`--steps`): `max_steps`, which overrides the epochs.
    public var maxSteps: Int?

    public init(modelName: String, family: ModelFamily? = nil, method: Method,
                methodOptions: MethodOptions = MethodOptions(), training: TrainingOptions = TrainingOptions(),
                scale: ScaleOptions = ScaleOptions(), packing: Bool = false, epochs: Double = 1,
                learningRate: Double? = nil, maxGradNorm: Double = 1.0, maxSteps: Int? = nil) {
        self.modelName = modelName
        self.family = family
        self.method = method
        self.methodOptions = methodOptions
        self.training = training
        self.scale = scale
        self.packing = packing
        self.epochs = epochs
        self.learningRate = learningRate ?? RunSpec.defaultLearningRate(for: method)
        self.maxGradNorm = maxGradNorm
        self.maxSteps = maxSteps
    }

    /// 2e-5 for full fine-tuning (TRL's `SFTConfig` default), 2e-4 for the PEFT methods
    /// (the QLoRA paper's rate for 7B–13B models, Dettmers et al. 2023, Table 9; the usual
    /// LoRA starting point): adapters start at or near zero and need the larger steps.
    public static func defaultLearningRate(for method: Method) -> Double {
        method.spec.trainsBase ? 2e-5 : 2e-4
    }

    /// Whether the plan recomputes activations: asked for, or QLoRA, where PEFT's
    /// `prepare_model_for_kbit_training` turns it on (the memory model assumes the same).
    var checkpointing: Bool { method.spec.checkpointing(requested: training.gradCheckpointing) }

    /// A DeepSpeed ZeRO stage (1–3) runs the job.
    var usesDeepSpeed: Bool { [.zero1, .zero2, .zero3].contains(scale.sharding) }
}

/// The files peft-plan can write for a planned run.
public enum EmitFormat: String, CaseIterable, Sendable {
    /// A DeepSpeed JSON config (`deepspeed --deepspeed_config`, `TrainingArguments(deepspeed=)`).
    case deepspeed
    /// An Accelerate config (`accelerate launch --config_file`).
    case accelerate
    /// A TRL `SFTTrainer` script with the PEFT and bitsandbytes configs.
    case trl

    /// The name the other emitted files refer to this one by.
    public var fileName: String {
        switch self {
        case .deepspeed: return "ds_config.json"
        case .accelerate: return "accelerate.yaml"
        case .trl: return "train.py"
        }
    }
}

/// Writes a ``RunSpec`` as the configuration files of the real engines.
///
/// Pure and deterministic: the same spec gives the same bytes. Combinations the engines
/// cannot run as planned are refused with a ``PlanError`` naming the options and what works.
public enum Emitter {
    public static func emit(_ spec: RunSpec, as format: EmitFormat) throws -> String {
        try validate(spec)
        switch format {
        case .deepspeed: return try deepSpeedConfig(spec).render() + "\n"
        case .accelerate: return try accelerateConfig(spec)
        case .trl: return try trlScript(spec)
        }
    }

    // MARK: Checks shared by every format

    static func validate(_ s: RunSpec) throws {
        let t = s.training
        for (flag, value) in [("--batch", t.batch), ("--seq", t.seq), ("--grad-accum", t.gradAccum), ("--gpus", s.scale.gpus)] where value < 1 {
            throw PlanError.invalidOption(option: flag, value: String(value), accepted: "an integer of at least 1")
        }
        guard s.epochs.isFinite, s.epochs > 0 else {
            throw PlanError.invalidOption(option: "--epochs", value: String(s.epochs), accepted: "a number above 0")
        }
        guard s.learningRate.isFinite, s.learningRate > 0 else {
            throw PlanError.invalidOption(option: "--learning-rate", value: String(s.learningRate), accepted: "a number above 0")
        }
        guard s.maxGradNorm.isFinite, s.maxGradNorm >= 0 else {
            throw PlanError.invalidOption(option: "--max-grad-norm", value: String(s.maxGradNorm), accepted: "a number of at least 0")
        }
        switch (s.scale.sharding, s.scale.offload) {
        case (_, .none): break
        case (.none, let o):
            throw PlanError.contradictoryOptions("--offload \(o.rawValue) needs a sharded run: use --sharding zero1|zero2|zero3 (DeepSpeed ZeRO-Offload) or fsdp with --offload params")
        case (.zero1, .params), (.zero2, .params):
            throw PlanError.contradictoryOptions("--offload params needs --sharding zero3 or fsdp (DeepSpeed offloads parameters only at ZeRO stage 3); with --sharding \(s.scale.sharding.rawValue) use --offload optimizer")
        case (.fsdp, .optimizer):
            throw PlanError.contradictoryOptions("--sharding fsdp cannot offload the optimizer alone: FSDP's CPU offload (fsdp_offload_params) moves parameters, gradients and optimizer states together; use --offload params, or --sharding zero1|zero2|zero3 with --offload optimizer")
        default: break
        }
        if s.scale.offload != .none {
            // Offloaded states are stepped on the CPU (DeepSpeedCPUAdam/CPULion, or the torch
            // optimizer on FSDP's host shards); bitsandbytes' optimizers step on the GPU only.
            var gpuOnly: [Optimizer] = [.adamw8bit, .pagedAdamw8bit]
            if s.scale.sharding == .fsdp { gpuOnly.append(.lion) } // TRL's lion is bitsandbytes' lion_32bit
            if gpuOnly.contains(t.optimizer) {
                throw PlanError.contradictoryOptions("--optimizer \(t.optimizer.rawValue) cannot run with --offload \(s.scale.offload.rawValue): bitsandbytes optimizers step on the GPU, offloaded states are stepped on the CPU; use --optimizer adamw, sgd, sgd-momentum or adafactor\(s.scale.sharding == .fsdp ? "" : ", lion") with offload")
            }
        }
    }

    /// Pure fp16 full fine-tuning outside DeepSpeed trains fp16 weights under
    /// `fp16=True`, and PyTorch's GradScaler refuses to unscale fp16 gradients
    /// (torch/amp/grad_scaler.py: "Attempting to unscale FP16 gradients").
    static func refusePureFP16Full(_ s: RunSpec, format: EmitFormat) throws {
        if s.method.spec.trainsBase, s.training.precision == .fp16, !s.usesDeepSpeed {
            throw PlanError.contradictoryOptions("--emit \(format.rawValue) cannot run --method full with --precision fp16 outside DeepSpeed: PyTorch's GradScaler refuses fp16 gradients; use --precision mixed-fp16 or bf16, or --sharding zero1|zero2|zero3")
        }
    }

    // MARK: Precision, as each engine spells it

    /// The 16-bit autocast flag (`TrainingArguments.bf16/fp16`, Accelerate's
    /// `mixed_precision`): nil for none.
    ///
    /// Pure bf16 normally keeps the flag on (autocast over bf16 weights changes nothing and
    /// adds no fp32 copy). The exception is full fine-tuning under FSDP: Accelerate then
    /// upcasts every trainable parameter to an fp32 master copy whenever mixed precision is
    /// on (accelerate/utils/fsdp_utils.py, `fsdp2_prepare_model`: "Upcast to fp32 master
    /// weights"), which the plan for pure bf16 does not hold; so the flag is off there.
    /// PEFT's fp32 adapters are fp32 already, so that upcast changes nothing for them; LoRA's
    /// adapters planned in the model's dtype would be upcast, so the flag is off for them too.
    static func autocast(_ s: RunSpec) -> String? {
        let trains16 = s.method.spec.trainsBase || s.method.adaptersInModelDtype(s.methodOptions)
        switch s.training.precision {
        case .fp32: return nil
        case .bf16 where trains16 && s.scale.sharding == .fsdp: return nil
        case .fp16 where trains16 && s.scale.sharding == .fsdp: return nil
        case .bf16, .mixedBF16: return "bf16"
        case .fp16, .mixedFP16: return "fp16"
        }
    }

    /// The dtype the model is loaded in (`from_pretrained(dtype=)`): 16-bit for pure
    /// precisions, fp32 for mixed ones (autocast computes in 16 bits from fp32 weights).
    static func loadDtype(_ p: Precision) -> String {
        switch p {
        case .bf16: return "bfloat16"
        case .fp16: return "float16"
        case .fp32, .mixedBF16, .mixedFP16: return "float32"
        }
    }

    /// QLoRA's `bnb_4bit_compute_dtype`: the precision's 16-bit type, or fp32.
    static func computeDtype(_ p: Precision) -> String {
        switch p {
        case .bf16, .mixedBF16: return "bfloat16"
        case .fp16, .mixedFP16: return "float16"
        case .fp32: return "float32"
        }
    }

    // MARK: DeepSpeed

    /// The DeepSpeed config (keys of deepspeed/runtime/config.py, zero/config.py,
    /// zero/offload_config.py and precision_config.py, DeepSpeed 0.19.8).
    ///
    /// - Batch: `train_batch_size` = micro-batch × accumulation × GPUs, which DeepSpeed asserts
    ///   (`DeepSpeedConfig._batch_assertion`) and Transformers recomputes and compares
    ///   (transformers/integrations/deepspeed.py, `trainer_config_process`).
    /// - Precision: `bf16.enabled` for bf16 and mixed-bf16, `fp16.enabled` for fp16 and
    ///   mixed-fp16. DeepSpeed's 16-bit modes always keep fp32 master weights and optimizer
    ///   states, so a pure bf16/fp16 plan runs as its mixed counterpart here.
    /// - Offload: `offload_optimizer` for `--offload optimizer|params` (stages 1–3),
    ///   `offload_param` only at stage 3 (`validate` refuses the rest).
    /// - Optimizer: AdamW and Lion get DeepSpeed's own section, whose fused GPU or CPU
    ///   (offload) kernels DeepSpeed picks (runtime/engine.py, `_configure_basic_optimizer`);
    ///   its values equal `TrainingArguments`' defaults, as Transformers requires. The others
    ///   are built by the Trainer, which then sets `zero_allow_untested_optimizer` itself;
    ///   with offload they need `zero_force_ds_cpu_optimizer: false`.
    /// - Activation checkpointing is Transformers' (`activation_checkpointing` in
    ///   `TrainingArguments`), not DeepSpeed's `activation_checkpointing` section.
    static func deepSpeedConfig(_ s: RunSpec) throws -> JSONValue {
        guard let stage = s.scale.sharding.zeroStage else {
            throw PlanError.contradictoryOptions("--emit deepspeed cannot express --sharding fsdp (PyTorch FSDP is not a DeepSpeed ZeRO stage); use --emit accelerate or --emit trl for FSDP, or --sharding none|zero1|zero2|zero3")
        }
        let t = s.training, p = t.precision
        var zero: [(String, JSONValue)] = [("stage", .int(stage))]
        if s.scale.offload != .none {
            zero.append(("offload_optimizer", .object([("device", .string("cpu")), ("pin_memory", .bool(true))])))
        }
        if s.scale.offload == .params {
            zero.append(("offload_param", .object([("device", .string("cpu")), ("pin_memory", .bool(true))])))
        }
        if stage == 3 {
            // save_model() writes whole 16-bit weights instead of per-rank shards.
            zero.append(("stage3_gather_16bit_weights_on_model_save", .bool(true)))
        }
        var pairs: [(String, JSONValue)] = [
            ("train_micro_batch_size_per_gpu", .int(t.batch)),
            ("gradient_accumulation_steps", .int(t.gradAccum)),
            ("train_batch_size", .int(t.batch * t.gradAccum * s.scale.gpus)),
            ("gradient_clipping", .double(s.maxGradNorm)),
            ("bf16", .object([("enabled", .bool(p == .bf16 || p == .mixedBF16))])),
            ("fp16", .object([("enabled", .bool(p == .fp16 || p == .mixedFP16))])),
            ("zero_optimization", .object(zero)),
        ]
        // TrainingArguments' defaults: adam_beta1 0.9, adam_beta2 0.999, adam_epsilon 1e-8,
        // weight_decay 0 (transformers/training_args.py).
        let betas: JSONValue = .array([.double(0.9), .double(0.999)])
        switch t.optimizer {
        case .adamw:
            pairs.append(("optimizer", .object([("type", .string("AdamW")), ("params", .object([
                ("lr", .double(s.learningRate)), ("betas", betas), ("eps", .double(1e-8)), ("weight_decay", .double(0))]))])))
        case .lion:
            pairs.append(("optimizer", .object([("type", .string("Lion")), ("params", .object([
                ("lr", .double(s.learningRate)), ("betas", betas), ("weight_decay", .double(0))]))])))
        case .sgd, .sgdMomentum, .adafactor, .adamw8bit, .pagedAdamw8bit:
            if s.scale.offload != .none { pairs.append(("zero_force_ds_cpu_optimizer", .bool(false))) }
        }
        return .object(pairs)
    }

    // MARK: Accelerate

    /// The Accelerate config: `ClusterConfig`'s fields (accelerate/commands/config/config_args.py),
    /// with `fsdp_config` and `deepspeed_config` keys named as `accelerate launch`'s options
    /// (accelerate/commands/launch.py), Accelerate 1.15.0.
    ///
    /// FSDP is FSDP2 (`fsdp_version: 2`): Transformers 5.23 deprecates FSDP1
    /// (training_args.py, `_process_fsdp_args`), and FSDP2 shards QLoRA's 4-bit weights when
    /// their storage dtype is a float (accelerate/utils/fsdp_utils.py). FSDP1's
    /// `fsdp_sharding_strategy`, `fsdp_use_orig_params` and `fsdp_sync_module_states` are
    /// obsolete there: `fsdp_reshard_after_forward: true` is FULL_SHARD.
    static func accelerateConfig(_ s: RunSpec) throws -> String {
        try refusePureFP16Full(s, format: .accelerate)
        let distributed: String
        switch s.scale.sharding {
        case .none: distributed = s.scale.gpus > 1 ? "MULTI_GPU" : "NO"
        case .zero1, .zero2, .zero3: distributed = "DEEPSPEED"
        case .fsdp: distributed = "FSDP"
        }
        var top: [(String, YAML)] = [
            ("compute_environment", .plain("LOCAL_MACHINE")),
            ("debug", .bool(false)),
            ("distributed_type", .plain(distributed)),
            ("machine_rank", .int(0)),
            ("main_training_function", .plain("main")),
            ("mixed_precision", .plain(autocast(s) ?? "no")),
            ("num_machines", .int(1)),
            ("num_processes", .int(s.scale.gpus)),
            ("rdzv_backend", .plain("static")),
            ("same_network", .bool(true)),
            ("use_cpu", .bool(false)),
        ]
        if s.usesDeepSpeed, let stage = s.scale.sharding.zeroStage {
            var ds: [(String, YAML)] = [
                ("deepspeed_multinode_launcher", .plain("standard")),
                ("gradient_accumulation_steps", .int(s.training.gradAccum)),
                ("gradient_clipping", .double(s.maxGradNorm)),
                ("offload_optimizer_device", .plain(s.scale.offload == .none ? "none" : "cpu")),
                ("offload_param_device", .plain(s.scale.offload == .params ? "cpu" : "none")),
                // ZeRO-3 builds the model already partitioned (deepspeed.zero.Init) and saves
                // whole 16-bit weights; Accelerate turns the flag off below stage 3.
                ("zero3_init_flag", .bool(stage == 3)),
            ]
            if stage == 3 { ds.append(("zero3_save_16bit_model", .bool(true))) }
            ds.append(("zero_stage", .int(stage)))
            top.append(("deepspeed_config", .map(ds)))
        }
        if s.scale.sharding == .fsdp {
            top.append(("fsdp_config", .map(fsdpConfig(s).map { ($0.accelerate, $0.value) })))
        }
        var out = header(s, lines: [
            "Accelerate launch config planned by peft-plan (Accelerate 1.15).",
            "Run: accelerate launch --config_file \(EmitFormat.accelerate.fileName) \(EmitFormat.trl.fileName)",
        ], comment: "#")
        out += YAML.map(top).render(indent: 0)
        return out
    }

    /// FSDP2 settings, each under the key `accelerate launch` reads (its `fsdp_*` options,
    /// accelerate/commands/launch.py) and the key Transformers' `fsdp_config` reads
    /// (`TrainingArguments._process_fsdp_args`, transformers/training_args.py). The two differ
    /// for CPU offload (`fsdp_offload_params` / `cpu_offload`), and Transformers ignores keys
    /// it does not know, so neither spelling is derived from the other.
    static func fsdpConfig(_ s: RunSpec) -> [(accelerate: String, transformers: String, value: YAML)] {
        [
            ("fsdp_version", "version", .int(2)),
            ("fsdp_auto_wrap_policy", "auto_wrap_policy", .plain("TRANSFORMER_BASED_WRAP")),
            ("fsdp_reshard_after_forward", "reshard_after_forward", .bool(true)),
            // FSDP's CPU offload moves parameters, gradients and optimizer states together.
            ("fsdp_offload_params", "cpu_offload", .bool(s.scale.offload == .params)),
            // Rank 0 reads the checkpoint, the others receive it by broadcast.
            ("fsdp_cpu_ram_efficient_loading", "cpu_ram_efficient_loading", .bool(true)),
            // One adapter file for PEFT (what save_pretrained writes); per-rank shards for
            // full fine-tuning, where gathering every weight on rank 0 costs host RAM.
            ("fsdp_state_dict_type", "state_dict_type", .plain(s.method.spec.trainsBase ? "SHARDED_STATE_DICT" : "FULL_STATE_DICT")),
            // FSDP's own checkpointing; Transformers refuses it together with the
            // `activation_checkpointing` training argument (trainer.py).
            ("fsdp_activation_checkpointing", "activation_checkpointing", .bool(s.checkpointing)),
        ]
    }

    // MARK: TRL

    /// A TRL `SFTTrainer` script: module-level `model_id`, `model_kwargs`, `bnb_config`,
    /// `peft_config` and `training_args`, and the trainer built only under
    /// `if __name__ == "__main__":`, so the configs can be loaded without a model or data.
    ///
    /// `SFTConfig` fields are TRL 1.16's and Transformers 5.23's `TrainingArguments`
    /// (`activation_checkpointing` replaced `gradient_checkpointing`; TRL's own defaults,
    /// `gradient_checkpointing=True` and `bf16=True`, are overridden explicitly). Optimizer
    /// names are `transformers.training_args.OptimizerNames`; PEFT classes are PEFT 0.21's.
    static func trlScript(_ s: RunSpec) throws -> String {
        try refusePureFP16Full(s, format: .trl)
        // TRL 1.16's SFTTrainer installs its own chunked LM head (trl/trainer/sft_trainer.py,
        // add_fused_lm_head) and refuses Liger's fused linear cross-entropy beside it; no TRL
        // or Transformers option selects Cut Cross-Entropy (docs/loss.md).
        if s.training.optimizerInBackward {
            throw PlanError.contradictoryOptions("--emit trl cannot run --optimizer-in-backward: TRL and Transformers fuse the step into backward only for their GaLore, APOLLO and LOMO optimizers (optim=\"*_layerwise\", \"lomo\"), not for the planned --optimizer; plan without it to emit")
        }
        if s.training.kernels == .unsloth {
            throw PlanError.contradictoryOptions("--emit trl writes a Transformers + PEFT script, and --kernels unsloth runs under Unsloth's FastLanguageModel (its kernels, loss and offloaded checkpointing), which the script does not load; plan with --kernels none or liger to emit")
        }
        switch s.training.loss {
        case .standard, .chunked: break
        case .unsloth:
            throw PlanError.contradictoryOptions("--emit trl cannot run --loss unsloth, Unsloth's own loss; plan with --loss chunked (what the script runs)")
        case .liger:
            throw PlanError.contradictoryOptions("--emit trl cannot run --loss liger: TRL 1.16's SFTTrainer computes the loss with its own chunked LM head and refuses Liger's fused linear cross-entropy; plan with --loss chunked (what the script runs)")
        case .cce:
            throw PlanError.contradictoryOptions("--emit trl cannot run --loss cce: TRL 1.16's SFTTrainer computes the loss with its own chunked LM head and has no option for Cut Cross-Entropy; plan with --loss chunked (what the script runs)")
        }
        let o = s.methodOptions, t = s.training
        let kind = t.trainer.kind
        let trainerClass = trainerClassName(kind)
        var py = header(s, lines: [
            "TRL \(trainerClass) script planned by peft-plan (TRL 1.16, Transformers 5.23, PEFT 0.21).",
            "Fill in model_id and the dataset, then run:",
            s.scale.gpus > 1 || s.scale.sharding != .none
                ? "  accelerate launch --config_file \(EmitFormat.accelerate.fileName) \(EmitFormat.trl.fileName)   (peft-plan ... --emit accelerate)"
                : "  python \(EmitFormat.trl.fileName)",
        ] + (s.usesDeepSpeed ? ["  with \(EmitFormat.deepspeed.fileName) (peft-plan ... --emit deepspeed) in the same folder."] : [])
          + notes(s), comment: "#")

        var imports = ["import torch"]
        let config = try peftConfig(s)
        if let c = config.className { imports.append("from peft import \(c)") }
        if s.method.spec.quantisesBase { imports.append("from transformers import BitsAndBytesConfig") }
        imports.append("from \(trainerModule(kind)) import \(kind.configClass), \(trainerClass)")
        py += imports.joined(separator: "\n") + "\n\n"

        py += "# peft-plan planned for '\(oneLine(s.modelName))': replace with its Hugging Face model id or local folder.\n"
        py += "model_id = \(pyString(s.modelName))\n\n"

        // QLoRA: 4-bit base weights (bitsandbytes via Transformers' BitsAndBytesConfig).
        if s.method.spec.quantisesBase {
            var args = [
                "load_in_4bit=True",
                "bnb_4bit_quant_type=\(pyString(o.quant.rawValue))",
                "bnb_4bit_use_double_quant=\(pyBool(o.doubleQuant))",
                "bnb_4bit_compute_dtype=torch.\(computeDtype(t.precision))",
            ]
            if s.scale.sharding.shardsParameters || o.adapterDtype == .model {
                // FSDP and ZeRO-3 shard the packed 4-bit weights only when they are stored in
                // the same float dtype as the rest of the model (PEFT docs, "FSDP + QLoRA");
                // LoRA's adapters take the 4-bit weights' dtype when PEFT does not upcast them.
                args.append("bnb_4bit_quant_storage=torch.\(loadDtype(t.precision))")
            }
            py += "bnb_config = BitsAndBytesConfig(\n" + args.map { "    \($0),\n" }.joined() + ")\n"
        } else {
            py += "bnb_config = None\n"
        }

        var modelKwargs = [
            "\"dtype\": torch.\(loadDtype(t.precision))",
            "\"attn_implementation\": \(pyString(attnImplementation(t.attention)))",
        ]
        if s.method.spec.quantisesBase { modelKwargs.append("\"quantization_config\": bnb_config") }
        py += "model_kwargs = {" + modelKwargs.joined(separator: ", ") + "}\n\n"

        py += config.code
        let ownPeftModel = s.method.adaptersInModelDtype(o)
        if ownPeftModel {
            py += "# LoRA's adapters stay in the model's dtype (planned with --adapter-dtype model): PEFT upcasts them to fp32 otherwise.\n"
            py += "peft_model_kwargs = {\"autocast_adapter_dtype\": False}\n"
        } else if s.method.spec.quantisesBase && s.method.spec.wrapper == .lowRank {
            // TRL 1.16's SFTTrainer casts a quantised model's trainable weights to bf16 (but DoRA's
            // magnitude), whoever built the PEFT model (trl/trainer/sft_trainer.py, `_is_quantized_model`)
            py += "# TRL's trainer casts QLoRA's LoRA weights (not DoRA's magnitudes) to bf16; the plan counted them in fp32 (PEFT's default):\n"
            py += "# plan with --adapter-dtype model to match what this script trains.\n"
        }
        py += "\n"

        py += "training_args = \(kind.configClass)(\n" + trainingArguments(s).map { "    \($0),\n" }.joined() + ")\n\n"
        // vision-language types that Transformers does not map for causal LM load as image-text models
        let auto = s.family?.spec.autoModelClass ?? "AutoModelForCausalLM"

        py += """
            if __name__ == "__main__":
                from datasets import load_dataset
                from transformers import \(auto)

                # Your data: \(datasetColumns(kind)) (TRL's dataset formats).
                train_dataset = load_dataset("json", data_files="train.jsonl", split="train")

            """
        if kind == .grpo {
            py += """

                    # Your reward: one float per completion (GRPOTrainer's reward_funcs).
                    def reward(completions, **kwargs):
                        return [0.0 for _ in completions]

                """
        }
        if s.method.spec.quantisesBase && !s.scale.sharding.shardsParameters {
            // A 4-bit model is placed at load time, one whole copy per process.
            py += """
                    from accelerate import PartialState
                    model_kwargs["device_map"] = {"": PartialState().local_process_index}

                """
        }
        if s.scale.sharding == .zero3 {
            py += "    # Loaded after training_args, so DeepSpeed ZeRO-3 partitions the model while loading it.\n"
        }
        // QLoRA planned with its rest in fp32 (--qlora-rest fp32): TRL 1.16's SFTTrainer does not call
        // prepare_model_for_kbit_training (trl/trainer/sft_trainer.py), so the script does; a
        // sharded model keeps one dtype in its flat parameters and is not upcast.
        let upcast = s.method.spec.quantisesBase && o.qloraRest == .fp32 && !s.scale.sharding.shardsParameters
        if ownPeftModel {
            // SFTTrainer's own get_peft_model upcasts the adapters: build the PEFT model here.
            py += "    from peft import get_peft_model\n"
            if upcast { py += "    from peft import prepare_model_for_kbit_training\n" }
            py += "\n    model = \(auto).from_pretrained(model_id, **model_kwargs)\n"
            if upcast {
                py += "    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=\(pyBool(s.checkpointing)))\n"
            }
            py += """
                    model = get_peft_model(model, peft_config, **peft_model_kwargs)
                    trainer = \(trainerClass)(model=model, \(kind == .grpo ? "reward_funcs=reward, " : "")args=training_args, train_dataset=train_dataset)
                    trainer.train()
                    trainer.save_model()

                """
            return py
        }
        if upcast {
            py += "    # QLoRA as planned: embeddings, norms and lm_head upcast to fp32 (the trainer does not do it).\n"
            py += "    from peft import prepare_model_for_kbit_training\n\n"
        }
        py += "    model = \(auto).from_pretrained(model_id, **model_kwargs)\n"
        if upcast {
            py += "    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=\(pyBool(s.checkpointing)))\n"
        }
        py += """
                trainer = \(trainerClass)(model=model, \(kind == .grpo ? "reward_funcs=reward, " : "")args=training_args, train_dataset=train_dataset, peft_config=peft_config)
                trainer.train()
                trainer.save_model()

            """
        return py
    }

    /// The PEFT config, mirroring scripts/peft_reference.py (which the parameter counts are
    /// checked with), so the emitted config trains the parameters the plan counted.
    /// The PEFT config class the method's config is (nil for full fine-tuning), and the
    /// code that builds it; the one place a method's PEFT config is written.
    static func peftConfig(_ s: RunSpec) throws -> (className: String?, code: String) {
        let o = s.methodOptions
        func call(_ name: String, _ args: [String]) -> (className: String?, code: String) {
            (name, "peft_config = \(name)(\n" + (["task_type=\"CAUSAL_LM\""] + args).map { "    \($0),\n" }.joined() + ")\n")
        }
        switch s.method {
        case .full:
            return (nil, "peft_config = None  # full fine-tuning: every weight trains\n")
        case .lora, .qlora:
            let targets: String
            switch o.loraTargets {
            case .allLinear: targets = pyString("all-linear")
            case let .list(names): targets = pyList(names)
            case let .pattern(p): targets = pyString(p)
            case .languageModel:
                throw PlanError.invalidTargets(method: s.method.title, reason: "language-model targets must be resolved to the model's pattern before emitting")
            case .default:
                if let family = s.family, let pattern = family.spec.loraTargetPattern {
                    targets = pyString(pattern)
                } else if let family = s.family {
                    guard let names = family.spec.loraTargets else {
                        throw PlanError.invalidTargets(method: s.method.title, reason: "PEFT has no default LoRA target modules for model_type '\(family.rawValue)'; pass --lora-targets all-linear or module names")
                    }
                    targets = pyList(names)
                } else {
                    targets = "None  # PEFT's default for the model type"
                }
            }
            return call("LoraConfig", [
                "r=\(o.loraR)",
                "lora_alpha=\(o.loraAlpha)",
                "lora_dropout=\(pyFloat(o.loraDropout))",
                "target_modules=\(targets)",
                "use_dora=\(pyBool(o.dora))",
            ])
        case .ia3:
            var targets = "None", feedforward = "None"
            switch o.ia3Targets {
            case .allLinear: targets = pyString("all-linear")
            case let .list(names): targets = pyList(names)
            case let .pattern(p): targets = pyString(p)
            case .languageModel:
                throw PlanError.invalidTargets(method: s.method.title, reason: "language-model targets must be resolved to the model's pattern before emitting")
            case .default:
                if let family = s.family {
                    guard let d = family.spec.ia3Targets else {
                        throw PlanError.invalidTargets(method: s.method.title, reason: "PEFT has no default IA³ target modules for model_type '\(family.rawValue)'; pass --ia3-targets and --ia3-feedforward")
                    }
                    targets = pyList(d.targets)
                    if o.ia3Feedforward == nil { feedforward = pyList(d.feedforward) }
                }
            }
            if let ff = o.ia3Feedforward { feedforward = pyList(ff) }
            return call("IA3Config", ["target_modules=\(targets)", "feedforward_modules=\(feedforward)"])
        case .prefix:
            var args = ["num_virtual_tokens=\(o.prefixTokens)", "prefix_projection=\(pyBool(o.prefixProjection > 0))"]
            if o.prefixProjection > 0 { args.append("encoder_hidden_size=\(o.prefixProjection)") }
            return call("PrefixTuningConfig", args)
        case .prompt:
            return call("PromptTuningConfig", ["num_virtual_tokens=\(o.promptTokens)"])
        case .ptuning:
            var args = ["num_virtual_tokens=\(o.promptTokens)"]
            if o.ptuningHidden > 0 { args.append("encoder_hidden_size=\(o.ptuningHidden)") }
            return call("PromptEncoderConfig", args)
        case .adapter:
            throw PlanError.contradictoryOptions("--emit trl writes Hugging Face PEFT configs, and PEFT has no bottleneck adapters (--method adapter is AdapterHub's adapters library); use --method lora, qlora, prefix, prompt or ia3 with --emit trl, or --emit deepspeed|accelerate for the launcher config alone")
        }
    }

    /// `SFTConfig(...)` arguments, one per line.
    /// TRL 1.16's trainer class for a trainer, and where it is imported from (ORPO and CPO
    /// live in `trl.experimental`).
    static func trainerClassName(_ k: TrainerKind) -> String {
        switch k {
        case .sft: return "SFTTrainer"
        case .dpo: return "DPOTrainer"
        case .orpo: return "ORPOTrainer"
        case .kto: return "KTOTrainer"
        case .simpo: return "CPOTrainer"
        case .grpo: return "GRPOTrainer"
        }
    }

    static func trainerModule(_ k: TrainerKind) -> String {
        switch k {
        case .orpo: return "trl.experimental.orpo"
        case .simpo: return "trl.experimental.cpo"
        default: return "trl"
        }
    }

    static func datasetColumns(_ k: TrainerKind) -> String {
        switch k {
        case .sft: return "a \"text\" column, or \"messages\" / \"prompt\" + \"completion\""
        case .dpo, .orpo, .simpo: return "\"prompt\", \"chosen\" and \"rejected\" columns"
        case .kto: return "\"prompt\", \"completion\" and a boolean \"label\" column"
        case .grpo: return "a \"prompt\" column"
        }
    }

    /// The trainer's own config fields with the planned values (TRL 1.16's names).
    static func trainerArguments(_ t: TrainingOptions) -> [String] {
        let tr = t.trainer
        var args: [String] = []
        switch tr.kind {
        case .sft: return []
        case .dpo, .kto:
            args.append("beta=\(pyFloat(tr.effectiveBeta))")
            args.append("precompute_ref_log_probs=\(pyBool(tr.precomputeRef))")
        case .orpo:
            args.append("beta=\(pyFloat(tr.effectiveBeta))")
        case .simpo:
            // the paper's SimPO: no NLL term (cpo_alpha's default 1.0 adds CPO's)
            args += ["loss_type=\"simpo\"", "cpo_alpha=0.0", "beta=\(pyFloat(tr.effectiveBeta))"]
        case .grpo:
            args.append("num_generations=\(tr.numGenerations)")
            args.append("max_completion_length=\(tr.completion ?? 512)")
            args.append("beta=\(pyFloat(tr.effectiveBeta))")
            args.append("num_iterations=\(tr.numIterations)")
            args.append("use_vllm=\(pyBool(tr.generation.usesVLLM))")
            if tr.generation.usesVLLM {
                args.append("vllm_mode=\(pyString(tr.generation == .vllmColocate ? "colocate" : "server"))")
                if tr.generation == .vllmColocate {
                    args.append("vllm_gpu_memory_utilization=\(pyFloat(tr.effectiveVLLMMemory))")
                    // the planned row, not the model's whole context, is what vLLM's KV cache must hold
                    args.append("vllm_max_model_length=\(t.seq)")
                }
            }
        }
        return args
    }

    static func trainingArguments(_ s: RunSpec) -> [String] {
        let t = s.training
        let flag = autocast(s)
        let fsdp = s.scale.sharding == .fsdp
        var args = [
            "output_dir=\"peft-plan-run\"",
            "per_device_train_batch_size=\(t.batch)",
            "gradient_accumulation_steps=\(t.gradAccum)",
            "num_train_epochs=\(pyFloat(s.epochs))",
            "learning_rate=\(pyFloat(s.learningRate))",
            "max_grad_norm=\(pyFloat(s.maxGradNorm))",
            "bf16=\(pyBool(flag == "bf16"))",
            "fp16=\(pyBool(flag == "fp16"))",
            // Under FSDP the checkpointing is FSDP's own (fsdp_config below).
            "activation_checkpointing=\(pyBool(s.checkpointing && !fsdp))",
        ]
        if t.activationOffloading { args.append("activation_offloading=True") }
        // Transformers' Trainer applies Liger's layer kernels to the model (integrations/liger.py);
        // TRL 1.16 turns Liger's fused linear cross-entropy off beside its own head
        // (sft_trainer.py, liger_kernel_config) and warns that the flag is deprecated.
        if t.kernels == .liger { args.append("use_liger_kernel=True") }
        if s.checkpointing && !fsdp && t.checkpointStyle == .reentrant {
            args.append("activation_checkpointing_kwargs={\"use_reentrant\": True}")
        }
        // TRL 1.16 reads the key from gradient_checkpointing_kwargs, the same dict in
        // Transformers 5.25's TrainingArguments (a deprecated alias), and wraps the model's
        // gradient_checkpointing_enable with its SAC policy (sft_trainer.py).
        if s.checkpointing && !fsdp && t.checkpointStyle == .selective {
            args.append("activation_checkpointing_kwargs={\"selective\": True}")
        }
        let (optim, optimArgs) = optimizerName(t.optimizer)
        args.append("optim=\(pyString(optim))")
        if let optimArgs { args.append("optim_args=\(pyString(optimArgs))") }
        if let m = s.maxSteps { args.append("max_steps=\(m)") }
        let kind = t.trainer.kind
        // GRPO's rows are prompt + generated completion: no max_length (prompts are not truncated)
        if kind != .grpo { args.append("max_length=\(t.seq)") }
        if kind == .sft { args.append("packing=\(pyBool(s.packing))") }
        args += trainerArguments(t)
        // TRL 1.16 turns padding-free batches on with packing's default "bfd" strategy
        // (sft_trainer.py: padding_free or packing with bfd/bfd_split): written out, as planned.
        if s.packing { args.append("padding_free=True") }
        if s.usesDeepSpeed {
            args.append("deepspeed=\(pyString(EmitFormat.deepspeed.fileName))")
        } else if fsdp {
            args.append("fsdp=True")
            let entries = fsdpConfig(s).map { "\(pyString($0.transformers)): \($0.value.python)" }
            args.append("fsdp_config={" + entries.joined(separator: ", ") + "}")
        }
        return args
    }

    /// `TrainingArguments.optim` (transformers/training_args.py `OptimizerNames`) and
    /// `optim_args` for each `--optimizer`. SGD's momentum travels in `optim_args`
    /// (transformers/trainer_optimizer.py `_get_sgd`); Lion is bitsandbytes' 32-bit Lion.
    static func optimizerName(_ o: Optimizer) -> (String, String?) {
        switch o {
        case .adamw: return ("adamw_torch_fused", nil)
        case .adamw8bit: return ("adamw_bnb_8bit", nil)
        case .pagedAdamw8bit: return ("paged_adamw_8bit", nil)
        case .sgd: return ("sgd", nil)
        case .sgdMomentum: return ("sgd", "momentum=0.9")
        case .adafactor: return ("adafactor", nil)
        case .lion: return ("lion_32bit", nil)
        }
    }

    static func attnImplementation(_ a: AttentionChoice) -> String {
        switch a {
        case .sdpa: return "sdpa"
        case .flash: return "flash_attention_2"
        case .eager: return "eager"
        }
    }

    /// Where the engines will not run exactly what the plan counted, said in the script.
    static func notes(_ s: RunSpec) -> [String] {
        var n: [String] = []
        let tr = s.training.trainer
        if tr.kind == .grpo && tr.generation == .vllmServer {
            n.append("Start vLLM first on \(tr.vllmGPUs) other GPU(s): trl vllm-serve --model <model_id> --tensor-parallel-size \(tr.vllmGPUs) --gpu-memory-utilization \(Units.plain(tr.effectiveVLLMMemory)) --max-model-len \(s.training.seq) (as planned).")
        }
        if s.training.loss == .standard && s.training.trainer.kind == .sft {
            n.append("Note: TRL's SFTTrainer computes the loss with its chunked LM head, which keeps no full logits: less memory than this plan (--loss standard) counts; --loss chunked plans what runs.")
        }
        if s.packing && s.training.attention != .flash {
            n.append("Note: packing runs padding-free rows; under \(attnImplementation(s.training.attention)) Transformers 5.25 separates the packed sequences with a block-diagonal mask over the whole row (--attention flash attends within each sequence without it).")
        }
        let p = s.training.precision
        if s.usesDeepSpeed && (p == .bf16 || p == .fp16) {
            n.append("Note: DeepSpeed keeps fp32 master weights and optimizer states in \(p.rawValue) mode, more than a pure \(p.rawValue) plan holds.")
        }
        if s.usesDeepSpeed && [.adamw, .lion].contains(s.training.optimizer) {
            n.append("Note: \(EmitFormat.deepspeed.fileName) names the optimizer, so DeepSpeed builds it and `optim` is not used.")
        }
        if s.scale.sharding == .fsdp && s.checkpointing {
            n.append("Note: activation checkpointing is FSDP's (fsdp_config), as Transformers asks under FSDP.")
        }
        if s.packing && s.training.attention != .flash {
            n.append("Note: TRL packs padding-free (one long row with position_ids), which TRL documents for FlashAttention; consider --attention flash.")
        }
        return n
    }

    // MARK: Text helpers

    static func header(_ s: RunSpec, lines: [String], comment: String) -> String {
        let what = "\(s.method.title) on '\(oneLine(s.modelName))', \(s.scale.gpus) GPU\(s.scale.gpus == 1 ? "" : "s")"
            + (s.scale.sharding == .none ? "" : ", \(s.scale.sharding.rawValue)")
            + (s.scale.offload == .none ? "" : ", offload \(s.scale.offload.rawValue)")
            + ", micro-batch \(s.training.batch) × accumulation \(s.training.gradAccum), seq \(s.training.seq), \(s.training.precision.rawValue)"
        return ([lines[0], what] + lines.dropFirst()).map { "\(comment) \($0)\n" }.joined() + "\n"
    }

    /// A name fit for a one-line comment.
    static func oneLine(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : Character($0) })
    }

    /// A Python string literal: JSON's escapes (\", \\, \n, \r, \t, \uXXXX) mean the same
    /// in a double-quoted Python string.
    static func pyString(_ s: String) -> String { JSONValue.quote(s) }

    static func pyList(_ items: [String]) -> String { "[" + items.map(pyString).joined(separator: ", ") + "]" }
    static func pyBool(_ b: Bool) -> String { b ? "True" : "False" }

    /// The same digits as the JSON (``JSONValue`` renders doubles with six significant
    /// digits), so the learning rate in train.py and ds_config.json compare equal in Python.
    static func pyFloat(_ d: Double) -> String { JSONValue.double(d).render() }
}

/// The little YAML the Accelerate config needs: a map of scalars and one level of maps.
/// Strings YAML 1.1 would read as something else (`no`, `on`, numbers) are quoted.
enum YAML {
    case plain(String)
    case int(Int)
    case bool(Bool)
    case double(Double)
    indirect case map([(String, YAML)])

    func render(indent: Int) -> String {
        guard case let .map(pairs) = self else { return scalar }
        let pad = String(repeating: " ", count: indent)
        return pairs.map { key, value in
            if case .map = value { return "\(pad)\(key):\n" + value.render(indent: indent + 2) }
            return "\(pad)\(key): \(value.scalar)\n"
        }.joined()
    }

    var scalar: String {
        switch self {
        case let .plain(s):
            let reserved: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]
            let safe = s.range(of: "^[A-Za-z_][A-Za-z0-9_.-]*$", options: .regularExpression) != nil
            return safe && !reserved.contains(s.lowercased()) ? s : "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
        case let .int(i): return String(i)
        case let .bool(b): return b ? "true" : "false"
        case let .double(d): return JSONValue.double(d).render()
        case .map: return "{}"
        }
    }

    /// The same value as a Python literal (for Transformers' `fsdp_config` dict).
    var python: String {
        switch self {
        case let .plain(s): return Emitter.pyString(s)
        case let .int(i): return String(i)
        case let .bool(b): return Emitter.pyBool(b)
        case let .double(d): return Emitter.pyFloat(d)
        case let .map(pairs): return "{" + pairs.map { "\(Emitter.pyString($0.0)): \($0.1.python)" }.joined(separator: ", ") + "}"
        }
    }
}
