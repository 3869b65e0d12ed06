import ArgumentParser
import Foundation
import PEFTOutput
import PEFTPlan

/// The options every planning command understands (docs/CONTRACT.md).
struct PlanningOptions: ParsableArguments {
    @Option(help: "A preset (7b, 13b, 70b, 8b, llama-3.1-8b, mistral-7b, qwen2.5-7b, …; see `peft-plan models`), a Hugging Face config.json or a folder holding one, or a Hub id ORG/NAME[@REVISION] (read from Hugging Face's cache, else the Hub; HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE honoured).")
    var model: String

    @Option(name: .long, help: "full|lora|qlora|adapter|prefix|prompt|ia3|p-tuning|all; repeatable or comma-separated. Default: all (the first seven).")
    var method: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: "GPU: a name (\"RTX 4090\", h100-sxm), a size (24GB: every profile of that size) or a profile JSON file; repeatable. Default: 16GB, 24GB, 48GB and 80GB.")
    var gpu: [String] = []

    @Option(help: "Runtime profile: hf-cuda (Transformers + PEFT on CUDA), hf-meta (what the meta-device trace sees), or a calibration profile (.json) from `calibrate --compare … --fit FILE`.")
    var runtime: String = "hf-cuda"

    // Numbers are read as text and checked here, so that "-3" or "abc" get a message
    // naming the value and the accepted range (the parser would take "-3" for a flag).

    // Training
    @Option(parsing: .unconditional, help: "Micro-batch size per GPU (default 1).") var batch: String?
    @Option(parsing: .unconditional, help: "Sequence length in tokens (default 2048, or the model's learned positions if fewer).") var seq: String?
    @Option(parsing: .unconditional, help: "Vision-language models: image tokens per sample, added to --seq (default 0: text only; the plan says how the model's processor counts them).") var imageTokens: String?
    @Option(parsing: .unconditional, help: "Gradient accumulation steps (default 1; gradients then stay allocated during forward).") var gradAccum: String?
    @Option(help: "bf16|fp16|fp32|mixed-bf16|mixed-fp16") var precision: String = "bf16"
    @Option(help: "adamw|adamw-8bit|paged-adamw-8bit|sgd|sgd-momentum|adafactor|lion") var optimizer: String = "adamw"
    @Flag(help: "Gradient checkpointing (QLoRA always has it, as prepare_model_for_kbit_training turns it on).") var gradCheckpointing = false
    @Option(help: "sdpa|flash|eager") var attention: String = "sdpa"
    @Flag(help: "TRL's activation offloading (SFTConfig activation_offloading=True): the blocks' saved tensors live in pinned host memory between forward and backward.") var activationOffloading = false
    @Option(help: "How checkpointing recomputes (turns --grad-checkpointing on): non-reentrant (default: use_reentrant=False, the recompute stops at each block's last saved tensor), reentrant (use_reentrant=True: each block's whole forward again), offloaded (Unsloth's use_gradient_checkpointing=\"unsloth\": reentrant, each block's input in pinned host memory; the default under --kernels unsloth), selective (TRL's selective activation checkpointing, full fine-tuning: the attention op's outputs kept, the rest recomputed), or off (no checkpointing; QLoRA's stays on).") var checkpointing: String?
    @Option(help: "The loss over the vocabulary: standard (default: Transformers' cross-entropy over the full logits), chunked (TRL's chunked LM head, what TRL 1.16's SFTTrainer runs), liger (Liger's fused linear cross-entropy), cce (Cut Cross-Entropy, Ampere or newer), unsloth (Unsloth's fused cross-entropy; the default under --kernels unsloth).") var loss: String?
    @Flag(help: "The optimizer step fused into backward (one optimizer per parameter, stepped by its post-accumulate-grad hook, which frees the gradient: torchtune's optimizer_in_bwd, Transformers' *_layerwise optimizers): one gradient alive at a time; one GPU, --grad-accum 1, no gradient clipping.") var optimizerInBackward = false
    @Option(help: "The kernels of the layer ops, which change what backward saves: none (default: Transformers' modules and PEFT's LoRA layers), liger (Liger-Kernel's RMSNorm, RoPE and SwiGLU/GeGLU, as TRL's use_liger_kernel applies them), unsloth (Unsloth's RMSNorm, RoPE and fused LoRA kernels for Llama, Mistral, Qwen2/3 and Gemma 1/2 under LoRA or QLoRA; its loss and offloaded checkpointing by default).") var kernels: String = "none"

    // LoRA / QLoRA
    @Option(parsing: .unconditional, help: "LoRA rank (default 8).") var loraR: String?
    @Option(parsing: .unconditional, help: "LoRA alpha (default 16; does not change memory).") var loraAlpha: String?
    @Option(help: "default|all-linear|q_proj,v_proj,… (PEFT's matching).") var loraTargets: String?
    @Option(parsing: .unconditional, help: "LoRA dropout probability (PEFT default 0; above 0 each wrapped module keeps a mask).") var loraDropout: String?
    @Option(parsing: .unconditional, help: "LoRA adapters' dtype: fp32 (default: PEFT ≥ 0.12 upcasts them, autocast_adapter_dtype=True) or model (the model's 16-bit dtype: autocast_adapter_dtype=False, PEFT before 0.12, Answer.AI's FSDP-QLoRA).") var adapterDtype: String?
    @Option(parsing: .unconditional, help: "QLoRA's unquantised weights (embeddings, norms, lm_head) and so its residual stream: fp32 (default: PEFT's prepare_model_for_kbit_training upcasts them) or model (kept in the model's 16-bit dtype, as stacks that skip that call run: TRL 1.16's SFTTrainer, Answer.AI's FSDP-QLoRA, torchtune).") var qloraRest: String?
    @Flag(help: "DoRA: one magnitude vector per wrapped module.") var dora = false
    @Option(help: "QLoRA storage: nf4|fp4.") var quant: String?
    @Flag(inversion: .prefixedNo, help: "QLoRA double quantisation of the absmax values (default on).") var doubleQuant = true

    // Adapters, prefix/prompt, IA³
    @Option(help: "Bottleneck adapter: pfeiffer|houlsby.") var adapter: String?
    @Option(parsing: .unconditional, help: "Bottleneck reduction factor (default 16; bottleneck = hidden / factor).") var adapterReduction: String?
    @Option(parsing: .unconditional, help: "Prefix tuning: virtual tokens (default 20).") var prefixTokens: String?
    @Option(parsing: .unconditional, help: "Prefix tuning: reparameterisation MLP width (default 0 = none).") var prefixProjection: String?
    @Option(parsing: .unconditional, help: "Prompt tuning / P-tuning: virtual tokens (default 20).") var promptTokens: String?
    @Option(help: "IA³ targets: default|all-linear|k_proj,v_proj,down_proj,…") var ia3Targets: String?
    @Option(help: "IA³ feed-forward modules (scaled at their input), comma-separated.") var ia3Feedforward: String?

    // Scale
    @Option(parsing: .unconditional, help: "Data-parallel GPUs (default 1).") var gpus: String?
    @Option(help: "none|zero1|zero2|zero3|fsdp: what is split over the GPUs (ZeRO stages; fsdp = FULL_SHARD). Default none.") var sharding: String = "none"
    @Option(help: "none|optimizer|params: what lives in host RAM (params needs zero3 or fsdp). Default none.") var offload: String = "none"

    // Budget
    @Option(parsing: .unconditional, help: "Training tokens per epoch (default 100 million if no --examples).") var tokens: String?
    @Option(parsing: .unconditional, help: "Number of training examples (with --avg-tokens).") var examples: String?
    @Option(parsing: .unconditional, help: "Average tokens per example (with --examples).") var avgTokens: String?
    @Option(parsing: .unconditional, help: "Epochs (default 1; fractions allowed).") var epochs: String?
    @Flag(help: "Examples are packed into full sequences (otherwise each is padded to --seq), in TRL's padding-free rows (packing's default strategy): under --attention sdpa or eager a row is one sequence to attention, with a block-diagonal mask over it; under flash each sequence attends to itself.") var packing = false
    @Option(help: "A file of the dataset's token lengths (one per line, 'LENGTH COUNT' lines, or JSON; scripts/token_lengths.py writes one): memory is planned at the longest micro-batch the sampler can build and time from the tokens, with each micro-batch padded to its longest example unless --packing.") var lengths: String?
    @Option(parsing: .unconditional, help: "USD per GPU-hour (default: the profile's dated typical price).") var price: String?
    @Option(parsing: .unconditional, help: "Price at this provider's on-demand offers, billed in its increments (`peft-plan prices` lists them); 'all' compares every provider and prices each GPU at the cheapest. Without --gpu, every GPU offered.") var provider: String?
    @Flag(help: "Price at interruptible offers (spot, interruptible) instead of on-demand, adding the expected time lost to interruptions (implies --provider all unless one is named).") var spot = false
    @Option(parsing: .unconditional, help: "With --spot: interruptions per instance-hour (default 0.000274: 20% of instances a month, AWS's highest band for H100 spot).") var interruptionsPerHour: Double?
    @Option(parsing: .unconditional, help: "With --spot: minutes of training between checkpoints (default 30).") var checkpointMinutes: Double?
    @Option(parsing: .unconditional, help: "With --spot: minutes from an interruption to training again (default 15).") var restartMinutes: Double?
    @Flag(help: "The training step runs under torch.compile (the time model's fitted compile factor).") var compile = false
    @Option(parsing: .unconditional, help: "With --compile: the saved activations' multiple under torch.compile, as you measured it (saved bytes compiled ÷ eager; default 1, none assumed: no source states what its partitioner keeps; docs/kernels.md lists measured ones).") var compileActivationFactor: String?
    @Option(parsing: .unconditional, help: "A price catalogue of your own (negotiated rates) in the bundled catalogue's JSON format, used with --provider.") var priceFile: String?
    @Option(parsing: .unconditional, help: "Fraction of the 16-bit peak the matmuls reach, 0–1 (default: the runtime profile's).") var mfu: String?
    @Option(parsing: .unconditional, help: "Fixed minutes per run for start-up, installs and tokenising (default 10).") var setupMinutes: String?

    // Trainer (TRL 1.16; docs/trainers.md)
    @Option(help: "The TRL trainer: sft (default), dpo, orpo, kto, simpo (CPOTrainer with loss_type=\"simpo\") or grpo. Under a trainer other than sft --batch counts pairs (dpo, orpo, simpo), examples (kto) or completions (grpo), --seq is a whole row of prompt and completion, and checkpointing is on as TRL's configs default.") var trainer: String = "sft"
    @Option(parsing: .unconditional, help: "GRPO: completions per prompt (num_generations; default 8, TRL's).") var numGenerations: String?
    @Option(parsing: .unconditional, help: "GRPO: optimizer steps each generation serves (num_iterations, μ; default 1, TRL's): the generation and its no-grad forwards are spread over them, and above 1 the old log-probabilities are computed.") var numIterations: String?
    @Option(parsing: .unconditional, help: "GRPO: tokens generated per completion (max_completion_length; default 512, TRL's; each completion is planned at full length). DPO and KTO: the completion's tokens in each row, the only positions TRL's fused head scores on CUDA (default: every position).") var maxCompletion: String?
    @Option(help: "GRPO: where completions are generated: transformers (default, TRL's use_vllm=False: the policy's generate, its KV cache on the training GPU), vllm-colocate (vLLM in the training process, holding --vllm-memory of the card), vllm-server (vLLM on --vllm-gpus GPUs of its own, billed too).") var generation: String?
    @Option(parsing: .unconditional, help: "GRPO with vLLM: the share of each of its cards vLLM claims (gpu_memory_utilization; default 0.3 colocated, TRL's, and 0.9 on a server, vllm serve's).") var vllmMemory: String?
    @Option(parsing: .unconditional, help: "GRPO with --generation vllm-server: GPUs of the planned kind the server runs on, tensor parallel (default 1).") var vllmGpus: String?
    @Option(parsing: .unconditional, help: "DPO, ORPO, KTO, SimPO, GRPO: beta (default the trainer's: 0.1; GRPO 0.0, so no reference model). GRPO plans a reference forward, and for full fine-tuning a reference copy of the weights, when it is not 0.") var beta: String?
    @Flag(help: "DPO, KTO: reference log-probabilities computed once before training (precompute_ref_log_probs): no reference forward or model in the step.") var precomputeRef = false
    @Option(parsing: .unconditional, help: "Optimizer steps to time (default: the dataset's; GRPO without a dataset: 500).") var steps: String?

    @Option(help: "table|json|csv|markdown") var format: String = "table"

    static let defaultGPUs = ["16GB", "24GB", "48GB", "80GB"]

    /// Reads a `--lengths` file: one line on stderr naming the file and the line for
    /// anything unreadable.
    static func readLengths(_ path: String) throws -> TokenLengths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw PlanError.invalidOption(option: "--lengths", value: path, accepted: "a file of token lengths (no such file)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw PlanError.invalidOption(option: "--lengths", value: path, accepted: "a readable UTF-8 text file of token lengths")
        }
        do {
            return try TokenLengths(parsing: text)
        } catch let e as LengthsError {
            throw PlanError.invalidOption(option: "--lengths", value: path, accepted: "token lengths (\(e.message))")
        }
    }

    /// `extra`: further accepted words the caller handles itself (named in the message).
    func choice<E: RawRepresentable & CaseIterable>(_ value: String, _ flag: String, as: E.Type, extra: [String] = []) throws -> E where E.RawValue == String {
        if let e = E(rawValue: value.lowercased()) { return e }
        let names = E.allCases.map(\.rawValue) + extra
        let near = names.min { levenshteinCount($0, value) < levenshteinCount($1, value) }
        throw PlanError.invalidOption(option: flag, value: value, accepted: "one of \(names.joined(separator: ", "))\(near.map { "; did you mean '\($0)'?" } ?? "")")
    }

    func levenshteinCount(_ a: String, _ b: String) -> Int {
        let x = Array(a.lowercased()), y = Array(b.lowercased())
        var prev = Array(0...y.count)
        for i in 1...max(1, x.count) where !x.isEmpty {
            var cur = [i] + Array(repeating: 0, count: y.count)
            for j in 1...max(1, y.count) where !y.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[y.count]
    }

    /// An integer option: its text, or the default. Only the parse is checked here; the
    /// ranges are the library's (`Planner.validate`), so they are stated once.
    static func integer(_ text: String?, _ flag: String, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw PlanError.invalidOption(option: flag, value: text, accepted: "an integer")
        }
        return n
    }

    /// A real-number option: its text, or nil. Ranges are the library's, which refuse nan and
    /// inf with the range in the message, so they are passed on rather than refused here.
    static func real(_ text: String?, _ flag: String) throws -> Double? {
        guard let text else { return nil }
        guard let v = Double(text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) else {
            throw PlanError.invalidOption(option: flag, value: text, accepted: "a number")
        }
        return v
    }

    /// Builds the library's request, refusing contradictory flags.
    func request() throws -> PlanRequest {
        let (arch, modelNote) = try ModelResolver.resolve(model)
        var methods: [Method] = []
        let words = method.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }
        if !method.isEmpty && words.isEmpty {
            throw PlanError.invalidOption(option: "--method", value: method.joined(separator: ","), accepted: "full, lora, qlora, adapter, prefix, prompt, ia3, p-tuning or all")
        }
        let fromAll = words.isEmpty || words.contains("all")
        if fromAll {
            methods = Method.standard
        } else {
            for w in words {
                guard let m = Method(rawValue: w) else {
                    throw PlanError.invalidOption(option: "--method", value: w, accepted: "full, lora, qlora, adapter, prefix, prompt, ia3, p-tuning or all")
                }
                if !methods.contains(m) { methods.append(m) }
            }
        }
        func uses(_ set: [Method]) -> Bool { methods.contains { set.contains($0) } }
        func refuse(_ flag: String, _ given: Bool, for set: [Method]) throws {
            if given && !fromAll && !uses(set) {
                throw PlanError.contradictoryOptions("\(flag) applies to \(set.map(\.rawValue).joined(separator: "/")), not to --method \(methods.map(\.rawValue).joined(separator: ","))")
            }
        }
        try refuse("--lora-r", loraR != nil, for: [.lora, .qlora])
        try refuse("--lora-alpha", loraAlpha != nil, for: [.lora, .qlora])
        try refuse("--lora-targets", loraTargets != nil, for: [.lora, .qlora])
        try refuse("--lora-dropout", loraDropout != nil, for: [.lora, .qlora])
        try refuse("--adapter-dtype", adapterDtype != nil, for: [.lora, .qlora])
        try refuse("--dora", dora, for: [.lora, .qlora])
        try refuse("--quant", quant != nil, for: [.qlora])
        try refuse("--qlora-rest", qloraRest != nil, for: [.qlora])
        try refuse("--no-double-quant", !doubleQuant, for: [.qlora])
        try refuse("--adapter", adapter != nil, for: [.adapter])
        try refuse("--adapter-reduction", adapterReduction != nil, for: [.adapter])
        try refuse("--prefix-tokens", prefixTokens != nil, for: [.prefix])
        try refuse("--prefix-projection", prefixProjection != nil, for: [.prefix])
        try refuse("--prompt-tokens", promptTokens != nil, for: [.prompt, .ptuning])
        try refuse("--ia3-targets", ia3Targets != nil, for: [.ia3])
        try refuse("--ia3-feedforward", ia3Feedforward != nil, for: [.ia3])

        var o = MethodOptions()
        o.loraR = try Self.integer(loraR, "--lora-r", default: o.loraR)
        o.loraAlpha = try Self.integer(loraAlpha, "--lora-alpha", default: o.loraAlpha)
        if let v = loraTargets { o.loraTargets = try TargetSpec.parse(v, field: .loraTargets) }
        // No targets given and PEFT has none for the type: plan all-linear, what PEFT's and
        // TRL's recipes recommend, and say so (an explicit `default` is still refused, as PEFT does).
        var targetsNote: PlanText?
        let kernelStack = try choice(kernels, "--kernels", as: KernelStack.self)
        if loraTargets == nil, kernelStack == .unsloth, arch.family.spec.unslothKernels, uses([.lora, .qlora]) {
            // Unsloth's get_peft_model defaults (unsloth @015bdef0 models/llama.py L3064–3075)
            let names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            o.loraTargets = .list(names)
            targetsNote = "LoRA targets: Unsloth's default (\(names.joined(separator: ","))), which its fused kernels cover; \(field: .loraTargets) chooses others"
        } else if loraTargets == nil, arch.family.spec.loraTargets == nil && arch.family.spec.loraTargetPattern == nil, uses([.lora, .qlora]) {
            o.loraTargets = .allLinear
            targetsNote = "LoRA targets: PEFT has no default target modules for model type '\(arch.family.rawValue)'; planning all-linear (what PEFT and TRL recipes recommend); \(field: .loraTargets) chooses others"
            let refused = arch.family.spec.loraRefusedModules ?? []
            if arch.isVisionLanguage {
                // the tower and projector stay frozen, as vision-language recipes keep them
                // (LLaMA-Factory's freeze_vision_tower); all-linear would wrap them too
                o.loraTargets = .languageModel
                targetsNote = "LoRA targets: PEFT has no default target modules for model type '\(arch.family.rawValue)'; planning every Linear of the language model (language-model), the vision tower and projector frozen as vision-language recipes keep them; all-linear would also wrap the tower's; \(field: .loraTargets) chooses others"
            } else if !arch.family.spec.loraFailingModules.isEmpty {
                // all-linear would wrap a module whose LoRA forward fails (DeepSeek-V4's o_a_proj)
                let failing = arch.family.spec.loraFailingModules
                let names = arch.blockLinearNames(excluding: Set(failing.keys).union(refused))
                o.loraTargets = .list(names)
                let why = failing.keys.sorted().map { "\($0), \(failing[$0] ?? $0)," }.joined(separator: " and ")
                targetsNote = "LoRA targets: PEFT has no default target modules for model type '\(arch.family.rawValue)', and all-linear would wrap \(why) on which LoRA fails in the forward; planning every other Linear (\(names.joined(separator: ","))); \(field: .loraTargets) chooses others"
            } else if !refused.isEmpty {
                // all-linear would wrap modules PEFT refuses (Mamba's out_proj): every other Linear of the blocks, by name
                let names = arch.blockLinearNames(excluding: refused)
                o.loraTargets = .list(names)
                let why = "PEFT refuses LoRA on \(refused.sorted().joined(separator: " and ")) for this type"
                targetsNote = "LoRA targets: PEFT has no default target modules for model type '\(arch.family.rawValue)', and \(why); planning every other Linear (\(names.joined(separator: ","))); \(field: .loraTargets) chooses others"
            }
        }
        if let tower = arch.vision, o.loraTargets == .allLinear, uses([.lora, .qlora]) {
            let linears = arch.modules.filter { $0.isVision && $0.kind == .linear }.reduce(0) { $0 + arch.instances($1) }
            targetsNote = "LoRA targets: all-linear also wraps the \(tower.title)'s and projector's \(linears) Linear modules, as PEFT does (their activations are kept when images are given); \(field: .loraTargets) language-model keeps the image side frozen"
        }
        if let text = loraDropout {
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 0, v < 1 else {
                throw PlanError.invalidOption(option: "--lora-dropout", value: text, accepted: "a probability in [0, 1)")
            }
            o.loraDropout = v == 0 ? 0 : v
        }
        o.dora = dora
        if let v = adapterDtype { o.adapterDtype = try choice(v, "--adapter-dtype", as: AdapterDtype.self) }
        if let v = quant { o.quant = try choice(v, "--quant", as: QuantType.self) }
        if let v = qloraRest { o.qloraRest = try choice(v, "--qlora-rest", as: QLoRARest.self) }
        if kernelStack == .unsloth, uses([.qlora]) {
            // Unsloth casts only the trainable parameters (unsloth-zoo @ce232d6c
            // training_utils.py L376–422): QLoRA's rest stays in the model's dtype
            if qloraRest != nil && o.qloraRest == .fp32 {
                throw PlanError.conflict("\(setting: .qloraRest, "fp32") cannot run under \(setting: .kernels, "unsloth"): Unsloth keeps QLoRA's embeddings, norms and lm_head in the model's 16-bit dtype (it casts only the trainable parameters); drop \(field: .qloraRest)")
            }
            o.qloraRest = .model
        }
        o.doubleQuant = doubleQuant
        if let v = adapter { o.adapter = try choice(v, "--adapter", as: AdapterKind.self) }
        o.adapterReduction = try Self.integer(adapterReduction, "--adapter-reduction", default: o.adapterReduction)
        o.prefixTokens = try Self.integer(prefixTokens, "--prefix-tokens", default: o.prefixTokens)
        o.prefixProjection = try Self.integer(prefixProjection, "--prefix-projection", default: o.prefixProjection)
        o.promptTokens = try Self.integer(promptTokens, "--prompt-tokens", default: o.promptTokens)
        if let v = ia3Targets { o.ia3Targets = try TargetSpec.parse(v, field: .ia3Targets) }
        if let v = ia3Feedforward {
            guard case let .list(names) = try TargetSpec.parse(v, field: .ia3Feedforward) else {
                throw PlanError.invalidOption(option: "--ia3-feedforward", value: v, accepted: "module names separated by commas (such as down_proj)")
            }
            o.ia3Feedforward = names
        }

        var t = TrainingOptions()
        var imageNote: PlanText?
        var kernelDefaults: [PlanText] = []
        t.batch = try Self.integer(batch, "--batch", default: 1)
        // prompt tuning, P-tuning and prefix tuning (also under `all`) take learned positions
        // for their virtual tokens: the default sequence leaves room for them
        t.seq = try Self.integer(seq, "--seq", default: Planner.defaultSeq(arch, methods: methods, options: o))
        var lengthsNote: PlanText?
        var tokenLengths: TokenLengths?
        if let path = lengths {
            let l = try Self.readLengths(path)
            tokenLengths = l
            let limit = arch.maxPositions
            if seq == nil && limit > 0 && l.longest > limit {
                throw PlanError.invalidOption(option: "--lengths", value: path, accepted: "lengths within \(arch.name)'s limit of \(limit) tokens (max_position_embeddings): its longest example has \(l.longest); drop the longer examples, or give --seq \(limit) or less to truncate them as TRL's max_length does")
            }
            if seq == nil && !packing { t.seq = l.longest }
            let truncated = l.histogram.filter { $0.length > t.seq }.reduce(0) { $0 + $1.count }
            if !packing { t.seq = min(t.seq, l.longest) }
            let cut: PlanText = truncated > 0 ? "; \(truncated) longer than \(t.seq) tokens truncated to it" : ""
            lengthsNote = packing
                ? "\(field: .lengths): \(l.examples) examples, \(l.shortest)–\(l.longest) tokens, packed into sequences of \(t.seq): memory planned at \(t.batch) × \(t.seq), time from their \(Units.count(l.tokens(cap: t.seq))) tokens\(cut)"
                : "\(field: .lengths): \(l.examples) examples, \(l.shortest)–\(l.longest) tokens; each micro-batch is padded to its longest example (TRL's collator), so memory is planned at the longest micro-batch, \(t.batch) × \(t.seq), and time at the expected longest example of a micro-batch (\(String(format: "%.0f", l.expectedLongest(of: t.batch, cap: t.seq))) tokens; with several GPUs the longest of batch × GPUs, as the slowest sets the pace)\(cut)"
        }
        if let text = imageTokens {
            guard let tower = arch.vision else {
                throw PlanError.invalidOption(option: "--image-tokens", value: text, accepted: "a count for a vision-language model; \(arch.name) (\(arch.family.rawValue)) reads text only")
            }
            let n = try Self.integer(text, "--image-tokens", default: 0)
            guard n >= 0, n <= 1 << 20 else {
                throw PlanError.invalidOption(option: "--image-tokens", value: text, accepted: "0 to 1,048,576 image tokens per sample")
            }
            t.imageTokens = n
            let total = t.seq.addingReportingOverflow(n)
            guard !total.overflow, total.partialValue <= 1 << 24 else {
                throw PlanError.invalidOption(option: "--image-tokens", value: text, accepted: "a count that keeps --seq + image tokens within 16,777,216")
            }
            t.seq = total.partialValue
            if n > 0 {
                imageNote = "images: \(n) image tokens per sample added to the \(t.seq - n) text tokens (sequence \(t.seq)); the \(tower.title) sees \(n * tower.patchesPerToken) patches (\(tower.tokensPerImage)); tower and projector frozen, attention over one image per sample"
            }
        } else if let tower = arch.vision {
            imageNote = "images: none (text-only samples); give --image-tokens for images: \(tower.tokensPerImage)"
        }
        t.gradAccum = try Self.integer(gradAccum, "--grad-accum", default: 1)
        t.precision = try choice(precision, "--precision", as: Precision.self)
        t.optimizer = try choice(optimizer, "--optimizer", as: Optimizer.self)
        t.kernels = kernelStack
        t.gradCheckpointing = gradCheckpointing
        if checkpointing?.lowercased() == "off" {
            if gradCheckpointing {
                throw PlanError.contradictoryOptions("--checkpointing off contradicts --grad-checkpointing; give one of them")
            }
        } else if let style = checkpointing {
            t.checkpointStyle = try choice(style, "--checkpointing", as: CheckpointStyle.self, extra: ["off"])
            t.gradCheckpointing = true
        } else if t.kernels == .unsloth {
            // Unsloth's get_peft_model defaults to use_gradient_checkpointing="unsloth"
            // (unsloth @015bdef0 models/llama.py L3064–3075)
            t.checkpointStyle = .offloaded
            t.gradCheckpointing = true
            kernelDefaults.append("checkpointing offloaded: Unsloth's default (use_gradient_checkpointing=\"unsloth\"); --checkpointing reentrant|non-reentrant|off for another")
        }
        t.attention = try choice(attention, "--attention", as: AttentionChoice.self)
        if let loss {
            t.loss = try choice(loss, "--loss", as: LossKind.self)
        } else if t.kernels == .unsloth {
            t.loss = .unsloth
            kernelDefaults.append("loss unsloth: Unsloth's default, its fused cross-entropy")
        } else if t.kernels == .liger {
            // Liger's layer kernels as TRL's use_liger_kernel applies them: TRL's own head
            t.loss = .chunked
            kernelDefaults.append("loss chunked: TRL's chunked LM head, which its SFTTrainer runs beside Liger's layer kernels (use_liger_kernel); --loss liger for Liger's fused loss under Transformers' Trainer")
        }
        t.activationOffloading = activationOffloading
        t.optimizerInBackward = optimizerInBackward
        var trainerDefaults: [PlanText] = []
        t.trainer = try trainerOptions(seqGiven: seq != nil, arch: arch, methods: methods, methodsFromAll: fromAll,
                                       training: &t, notes: &trainerDefaults)
        t.paddingFree = packing
        if let f = try Self.real(compileActivationFactor, "--compile-activation-factor") {
            guard compile else {
                throw PlanError.contradictoryOptions("--compile-activation-factor applies to a step under torch.compile: give --compile with it")
            }
            t.compiledActivationFactor = f
        }

        let rt: RuntimeProfile
        var calibration: CalibrationProfile?
        if let named = RuntimeProfile.named(runtime) {
            rt = named
        } else if runtime.hasSuffix(".json") || runtime.contains("/") {
            calibration = try CalibrationProfile.load(path: runtime)
            rt = calibration!.runtime
        } else {
            throw PlanError.invalidOption(option: "--runtime", value: runtime, accepted: RuntimeProfile.builtIn.map(\.name).joined(separator: " or ") + " or a calibration profile (.json)")
        }
        let catalog = try HardwareCatalog.bundled()
        var gpus: [GPUProfile] = []
        // --provider: the provider's offers price the GPUs (and, without --gpu, choose them)
        var pricing: (catalogue: PriceCatalogue, name: String, provider: PriceProvider?)?
        var pricingNote: PlanText?
        var spotPolicy: SpotPolicy?
        if spot {
            var sp = SpotPolicy()
            if let v = interruptionsPerHour {
                guard v.isFinite, v >= 0, v <= 10 else { throw PlanError.invalidOption(option: "--interruptions-per-hour", value: Units.plain(v), accepted: "interruptions per instance-hour from 0 to 10") }
                sp.interruptionsPerHour = v
            }
            if let v = checkpointMinutes {
                guard v.isFinite, v >= 1, v <= 10_080 else { throw PlanError.invalidOption(option: "--checkpoint-minutes", value: Units.plain(v), accepted: "minutes from 1 to 10080") }
                sp.checkpointMinutes = v
            }
            if let v = restartMinutes {
                guard v.isFinite, v >= 0, v <= 1440 else { throw PlanError.invalidOption(option: "--restart-minutes", value: Units.plain(v), accepted: "minutes from 0 to 1440") }
                sp.restartMinutes = v
            }
            spotPolicy = sp
        } else if interruptionsPerHour != nil || checkpointMinutes != nil || restartMinutes != nil {
            throw PlanError.contradictoryOptions("--interruptions-per-hour, --checkpoint-minutes and --restart-minutes describe --spot: add --spot")
        }
        let tiers = spotPolicy == nil ? ["on-demand"] : SpotPolicy.tiers
        let tierWords = spotPolicy == nil ? "on demand" : "interruptible (spot)"
        if provider != nil || priceFile != nil || spot {
            guard price == nil else {
                throw PlanError.contradictoryOptions("--price and --provider price the GPUs two ways: give one")
            }
            let catalogue = try priceFile.map { try PriceCatalogue.load(path: $0) } ?? PriceCatalogue.bundled()
            guard let name = provider ?? (catalogue.providers.count == 1 ? catalogue.providers[0].name : (spot ? BudgetOptions.allProviders : nil)) else {
                throw PlanError.contradictoryOptions("--price-file lists several providers (\(catalogue.providers.map(\.name).joined(separator: ", "))): choose one with --provider, or --provider all")
            }
            let all = name.lowercased() == BudgetOptions.allProviders
            guard all || catalogue.provider(named: name) != nil else {
                throw PlanError.invalidOption(option: "--provider", value: name, accepted: (catalogue.providers.map(\.name) + [BudgetOptions.allProviders]).joined(separator: ", "))
            }
            let info = catalogue.provider(named: name)
            let names = all ? catalogue.providers.map(\.name) : [info!.name]
            var offered: [String] = []
            for n in names { for t in tiers { for g in catalogue.gpus(provider: n, tier: t) where !offered.contains(g) { offered.append(g) } } }
            let who = all ? "no provider in the catalogue" : info!.name
            guard !offered.isEmpty else {
                let with = catalogue.providers.map(\.name).filter { n in tiers.contains { !catalogue.gpus(provider: n, tier: $0).isEmpty } }
                throw PlanError.contradictoryOptions("\(who) has no \(tierWords) offer in the price catalogue" + (with.isEmpty ? "" : "; these have: \(with.joined(separator: ", "))"))
            }
            pricing = (catalogue, all ? BudgetOptions.allProviders : info!.name, info)
            if gpu.isEmpty {
                gpus = catalog.filter { offered.contains($0.name) }
            } else {
                var asked: [GPUProfile] = []
                for q in gpu { for p in try HardwareCatalog.select(q, from: catalog) where !asked.contains(p) { asked.append(p) } }
                gpus = asked.filter { offered.contains($0.name) }
                let offerer = all ? "No provider in the catalogue offers" : "\(info!.name) offers"
                guard !gpus.isEmpty else {
                    throw PlanError.contradictoryOptions("\(offerer) none of \(asked.map(\.name).joined(separator: ", ")) \(tierWords); offered: \(offered.joined(separator: ", "))")
                }
                let left = asked.filter { !offered.contains($0.name) }
                if !left.isEmpty { pricingNote = "prices: \(all ? "no provider" : info!.name) offers \(left.map(\.name).joined(separator: ", ")) \(tierWords); left out" }
            }
        } else {
            for q in (gpu.isEmpty ? Self.defaultGPUs : gpu) {
                for p in try HardwareCatalog.select(q, from: catalog) where !gpus.contains(p) { gpus.append(p) }
            }
        }
        for w in calibration?.warnings(gpus: gpus) ?? [] { FileHandle.standardError.write(Data("peft-plan: warning: \(w)\n".utf8)) }
        var request = PlanRequest(arch: arch, methods: methods, methodsFromAll: fromAll, methodOptions: o, training: t, gpus: gpus, runtime: rt)
        if let modelNote { request.defaults.append(modelNote) }
        if let targetsNote { request.defaults.append(targetsNote) }
        if let imageNote { request.defaults.append(imageNote) }
        request.defaults += kernelDefaults
        request.defaults += trainerDefaults
        if let note = Planner.shippedQuantisationNote(arch) { request.defaults.append(note) }
        if let note = Planner.expertsUnderQLoRANote(arch, methods: methods, options: o, precision: t.precision) { request.defaults.append(note) }
        if let note = Planner.denseExpertDispatchNote(arch) { request.defaults.append(note) }
        if let note = Planner.fusedKernelNote(arch, methods: methods) { request.defaults.append(note) }
        if seq == nil, let note = Planner.defaultSeqNote(arch, methods: methods, options: o) { request.defaults.append(note) }
        request.scale = ScaleOptions(gpus: try Self.integer(self.gpus, "--gpus", default: 1),
                                     sharding: try choice(sharding, "--sharding", as: Sharding.self),
                                     offload: try choice(offload, "--offload", as: Offload.self))
        var d = Dataset(packing: packing)
        if t.trainer.kind == .grpo && (tokens != nil || lengths != nil || avgTokens != nil && examples == nil) {
            throw PlanError.contradictoryOptions("GRPO's dataset is prompts: give --examples (prompts, with --avg-tokens) or --steps, not --tokens or --lengths")
        }
        d.tokens = try Self.real(tokens, "--tokens")
        if let l = tokenLengths {
            guard tokens == nil, examples == nil, avgTokens == nil else {
                throw PlanError.contradictoryOptions("--lengths already sizes the dataset: give it without --tokens, --examples or --avg-tokens")
            }
            d.lengths = l
            if let n = lengthsNote { request.defaults.append(n) }
        }
        if examples != nil || avgTokens != nil {
            guard examples != nil, avgTokens != nil else {
                throw PlanError.contradictoryOptions("--examples and --avg-tokens go together: give both (or --tokens instead)")
            }
            guard d.tokens == nil else {
                throw PlanError.contradictoryOptions("give either --tokens or --examples with --avg-tokens, not both")
            }
            d.examples = try Self.integer(examples, "--examples", default: 0)
            d.avgTokens = try Self.integer(avgTokens, "--avg-tokens", default: 0)
        }
        if packing && d.examples == nil && d.lengths == nil && d.tokens != nil {
            throw PlanError.contradictoryOptions("--packing applies to --examples with --avg-tokens (--tokens already counts packed tokens)")
        }
        d.epochs = try Self.real(epochs, "--epochs") ?? 1
        request.dataset = d
        var budget = BudgetOptions()
        budget.pricePerGPUHour = try Self.real(price, "--price")
        budget.mfu = try Self.real(mfu, "--mfu")
        budget.setupMinutes = try Self.real(setupMinutes, "--setup-minutes") ?? budget.setupMinutes
        budget.compile = compile
        if let s = steps {
            budget.steps = try Self.integer(s, "--steps", default: 1)
            guard budget.steps! >= 1 && budget.steps! <= 100_000_000 else {
                throw PlanError.invalidOption(option: "--steps", value: s, accepted: "an integer from 1 to 100000000")
            }
        } else if t.trainer.kind == .grpo && d.isDefault {
            budget.steps = 500
            request.defaults.append("steps: 500 optimizer steps timed (no dataset given; --steps, or --examples as prompts)")
        }
        budget.spot = spotPolicy
        if let pricing {
            budget.provider = pricing.name
            budget.prices = pricing.catalogue
            if let info = pricing.provider {
                request.defaults.append("prices: \(info.name)'s \(spotPolicy == nil ? "on-demand" : "interruptible") offers, billed \(info.billing.summary) (\(info.billing.source)); each GPU's offer, page and date under Prices")
            } else {
                request.defaults.append("prices: every provider's \(spotPolicy == nil ? "on-demand" : "interruptible") offers in the catalogue, each billed in its own increments; each GPU priced at the cheapest, the others listed under Prices")
            }
        }
        if let sp = spotPolicy {
            request.defaults.append(PlanText(stringLiteral: String(format: "--spot: %.6g interruptions per instance-hour (%@), a checkpoint every %g min, %g min to restart; each interruption loses the restart and half a checkpoint interval",
                sp.interruptionsPerHour, interruptionsPerHour == nil ? "20% of instances a month: AWS Spot Instance Advisor's highest band for H100, 2025-05" : "--interruptions-per-hour", sp.checkpointMinutes, sp.restartMinutes)))
        }
        if compile {
            request.defaults.append(PlanText(stringLiteral: String(format: "--compile: compute time × %.2f (the time model's compile factor, fitted on torchtune's compiled runs)", rt.time.compileFactor)))
            request.defaults.append(t.compiledActivationFactor.map { PlanText(stringLiteral: String(format: "--compile-activation-factor %g: saved activations × %g under torch.compile, as given", $0, $0)) }
                ?? "--compile: saved activations as without it (torch.compile's partitioner decides what it keeps, which no source states; --compile-activation-factor applies one you measured)")
        }
        if let pricingNote { request.defaults.append(pricingNote) }
        request.budget = budget
        return request
    }

    /// The trainer's options, with TRL's defaults applied to `t` and stated in `notes`; an
    /// option that belongs to another trainer is refused.
    func trainerOptions(seqGiven: Bool, arch: Architecture, methods: [Method], methodsFromAll: Bool,
                        training t: inout TrainingOptions, notes: inout [PlanText]) throws -> TrainerOptions {
        let seqLimit = arch.maxPositions
        var tr = TrainerOptions()
        tr.kind = try choice(trainer, "--trainer", as: TrainerKind.self)
        func only(_ given: Bool, _ flag: String, _ kinds: [TrainerKind], _ what: String) throws {
            guard given, !kinds.contains(tr.kind) else { return }
            throw PlanError.contradictoryOptions("\(flag) is \(what) of --trainer \(kinds.map(\.rawValue).joined(separator: "|")), not of \(tr.kind.rawValue)")
        }
        try only(numGenerations != nil, "--num-generations", [.grpo], "an option")
        try only(numIterations != nil, "--num-iterations", [.grpo], "an option")
        try only(generation != nil, "--generation", [.grpo], "an option")
        try only(vllmMemory != nil, "--vllm-memory", [.grpo], "an option")
        try only(vllmGpus != nil, "--vllm-gpus", [.grpo], "an option")
        try only(maxCompletion != nil, "--max-completion", [.grpo, .dpo, .kto], "an option")
        try only(beta != nil, "--beta", [.dpo, .orpo, .kto, .simpo, .grpo], "an option")
        try only(precomputeRef, "--precompute-ref", [.dpo, .kto], "an option")
        guard tr.kind != .sft else { return tr }
        if let v = numGenerations {
            tr.numGenerations = try Self.integer(v, "--num-generations", default: 8)
            // GRPOConfig (TRL 1.16) refuses fewer than 2: the group's rewards are normalised
            guard (2...65536).contains(tr.numGenerations) else {
                throw PlanError.invalidOption(option: "--num-generations", value: v, accepted: "an integer from 2 to 65536 (GRPO compares each completion with the others of its prompt)")
            }
        }
        if let v = numIterations {
            tr.numIterations = try Self.integer(v, "--num-iterations", default: 1)
            guard (1...1024).contains(tr.numIterations) else {
                throw PlanError.invalidOption(option: "--num-iterations", value: v, accepted: "an integer from 1 to 1024 (optimizer steps per generation)")
            }
        }
        if let v = generation { tr.generation = try choice(v, "--generation", as: GenerationBackend.self) }
        if vllmMemory != nil && !tr.generation.usesVLLM {
            throw PlanError.contradictoryOptions("--vllm-memory sizes vLLM's share: give it with --generation vllm-colocate or vllm-server")
        }
        if vllmGpus != nil && tr.generation != .vllmServer {
            throw PlanError.contradictoryOptions("--vllm-gpus counts a vLLM server's GPUs: give it with --generation vllm-server")
        }
        tr.vllmMemory = try Self.real(vllmMemory, "--vllm-memory")
        if let v = vllmGpus { tr.vllmGPUs = try Self.integer(v, "--vllm-gpus", default: 1) }
        if let v = beta {
            guard let b = Double(v.trimmingCharacters(in: .whitespaces)), b.isFinite, b >= 0 else {
                throw PlanError.invalidOption(option: "--beta", value: v, accepted: "a number of 0 or more")
            }
            tr.beta = b
        }
        tr.precomputeRef = precomputeRef
        if let v = maxCompletion {
            let c = try Self.integer(v, "--max-completion", default: 512)
            guard (1...(1 << 20)).contains(c) else {
                throw PlanError.invalidOption(option: "--max-completion", value: v, accepted: "an integer from 1 to 1048576 (tokens per completion)")
            }
            tr.completion = c
        }
        if tr.kind == .kto && batch == nil {
            t.batch = 2
            notes.append("KTO micro-batch: 2 examples, the fewest TRL allows (its KL estimate pairs each prompt with another example's completion); \(field: .batch) sets it")
        }
        if tr.kind == .grpo {
            if batch == nil {
                // one prompt's group per micro-batch: always a whole number of groups
                t.batch = tr.numGenerations
                notes.append("GRPO micro-batch: \(t.batch) completions, one prompt's group (\(field: .batch) sets per_device_train_batch_size)")
            }
            // TRL's 512, or half a row given shorter than that
            let c = tr.completion ?? (seqGiven && t.seq <= 512 ? max(1, t.seq / 2) : 512)
            if tr.completion == nil && c != 512 {
                notes.append("GRPO completions: \(c) tokens, half the \(t.seq)-token row (TRL's max_completion_length 512 does not fit in it; \(field: .maxCompletion) sets it)")
            }
            tr.completion = c
            if !seqGiven {
                // 512 prompt tokens, fewer where the model's positions end sooner
                let limit = seqLimit > 0 ? seqLimit : Int.max
                t.seq = c < limit ? min(c + 512, limit) : c + 512
                notes.append("GRPO rows: \(t.seq) tokens, \(t.seq - c) of prompt (default; \(field: .seq) sets the whole row) and \(c) generated\(maxCompletion == nil ? " (max_completion_length 512, TRL's default)" : ""), each completion planned at full length")
            }
            if tr.generation.usesVLLM && seqLimit > t.seq {
                let kv = Double(Generation.kvBytesPerToken(arch, bytes: 2, vllm: true))
                notes.append("vLLM's max_model_len: the \(t.seq)-token row (\(tr.generation == .vllmColocate ? "--emit trl writes vllm_max_model_length=\(t.seq)" : "start the server with --max-model-len \(t.seq)")); left at TRL's default (None) vLLM must hold one request of the model's \(seqLimit) positions, \(Units.gib(Int(kv * Double(seqLimit)))) of KV cache, or refuses to start")
            }
            notes.append("GRPO: \(tr.numGenerations) generations per prompt\(numGenerations == nil ? " (TRL's default)" : ""); \(field: .batch) counts completions per micro-batch (per_device_train_batch_size), \(field: .batch) × \(field: .gradAccum) × \(field: .gpus) completions generated per step\(tr.numIterations > 1 ? "; each generation serves \(tr.numIterations) optimizer steps (num_iterations)" : ""); generation by \(tr.generation == .transformers ? "Transformers' generate in the training process (use_vllm=False, TRL's default)" : tr.generation == .vllmColocate ? "vLLM colocated (\(Units.plain(tr.effectiveVLLMMemory)) of the card)" : "a vLLM server on \(tr.vllmGPUs) GPU(s) of its own")")
        } else if tr.kind.fusedHead && tr.completion == nil {
            notes.append("\(tr.kind.title): every position of the row scored by TRL's fused head (\(field: .maxCompletion) for the completion's share, the only part scored on CUDA)")
        }
        if tr.kind.hasReference {
            let b = tr.effectiveBeta
            notes.append(PlanText(stringLiteral: "\(tr.kind.title): beta \(Units.plain(b))\(beta == nil ? " (TRL's default)" : "")") + (tr.referenceForward
                ? "; a reference forward per micro-batch (no saved activations): the base with the adapter disabled under PEFT, a second copy of the weights under full fine-tuning"
                : tr.kind == .grpo ? "; no reference model (GRPO runs one only when beta is not 0)" : "; reference log-probabilities precomputed: no reference in the step"))
        }
        if !gradCheckpointing && checkpointing == nil && t.kernels != .unsloth {
            if let refusing = methods.first(where: \.spec.refusesCheckpointing), !methodsFromAll {
                notes.append("checkpointing: off for \(refusing.title), which PEFT refuses to checkpoint (TRL's configs default to gradient_checkpointing=True)")
            } else {
                t.gradCheckpointing = true
                notes.append("checkpointing: on, as TRL's configs default (gradient_checkpointing=True); \(setting: .checkpointing, "off") for none")
            }
        }
        if loss == nil && tr.kind.fusedHead && t.kernels != .unsloth {
            t.loss = .chunked
            notes.append("loss: TRL's fused LM head (\(setting: .loss, "chunked")), which \(tr.kind.title) scores log-probabilities with")
        }
        return tr
    }

    func outputFormat() throws -> OutputFormat { try choice(format, "--format", as: OutputFormat.self) }
}
