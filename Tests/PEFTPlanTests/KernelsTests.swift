import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// `--kernels liger|unsloth` and Unsloth's offloaded checkpointing (docs/kernels.md). Liger's
/// and Unsloth's kernels are Triton (CUDA only): what they keep for backward is read off their
/// `save_for_backward` calls (Liger-Kernel @ead96b61, unsloth @015bdef0, unsloth-zoo
/// @ce232d6c) and set against what Transformers' own modules keep (its RMSNorm keeps an fp32
/// copy of its input; its MLP keeps the gate output, the activation's output and the up
/// output — both measured with PyTorch's saved-tensor hooks on the CPU). The expected bytes
/// below are worked out by hand from those lists, tensor by tensor; no GPU burst yet.
@Suite("Kernel stacks and offloaded checkpointing")
struct KernelsTests {
    static let allSeven = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    /// The context of one LoRA plan at 1 × `seq`, without checkpointing unless asked.
    static func context(_ model: String, kernels: KernelStack, targets: [String]? = nil, loss: LossKind? = nil,
                        method: Method = .lora, seq: Int = 4096, checkpoint: CheckpointStyle? = nil) throws -> PlanContext {
        var o = MethodOptions()
        if let targets { o.loraTargets = .list(targets) }
        var t = TrainingOptions()
        t.seq = seq
        t.kernels = kernels
        t.loss = loss ?? (kernels == .unsloth ? .unsloth : .chunked)
        if let checkpoint { t.gradCheckpointing = true; t.checkpointStyle = checkpoint }
        return try PlanContext(arch: try Presets.resolve(model), method: method, methodOptions: o, training: t)
    }

    static var allLinear: MethodOptions {
        var o = MethodOptions()
        o.loraTargets = .allLinear
        return o
    }

    /// One steady layer's saved bytes at 1 × `seq`.
    static func layer(_ c: PlanContext, seq: Int = 4096) -> Double { c.steady.bytes(batch: 1, sq: seq, skv: seq) }

    /// Llama-3.1-8B (h 4096, intermediate 14336), LoRA on q and v, frozen norms and MLP. Per
    /// token and layer, Liger keeps less:
    /// - each of the two RMSNorms: Transformers keeps its fp32 input copy (4h) and the fp32
    ///   reciprocal (4); LigerRMSNorm keeps its 16-bit input (2h) and RSTD (4): 2h less each;
    /// - the MLP: Transformers keeps gate (2I), silu(gate) (2I) and up (2I); LigerSiLUMulFunction
    ///   keeps gate and up: 2I less.
    /// 4h + 2I = 16,384 + 28,672 = 45,056 bytes per token: 184,549,376 at 4,096 tokens.
    @Test func ligerKeepsLessPerLayer() throws {
        let none = try Self.context("llama-3.1-8b", kernels: .none), liger = try Self.context("llama-3.1-8b", kernels: .liger)
        #expect(Self.layer(none) - Self.layer(liger) == 184_549_376)
        // Qwen3-8B (intermediate 12288): Liger's instance patch leaves q_norm and k_norm to
        // Transformers (monkey_patch.py, apply_liger_kernel_to_qwen3 walks the block norms and
        // the MLP only): 4h + 2I = 16,384 + 24,576 = 40,960 bytes per token.
        let q0 = try Self.context("qwen3-8b", kernels: .none), q1 = try Self.context("qwen3-8b", kernels: .liger)
        #expect(Self.layer(q0) - Self.layer(q1) == 40_960 * 4096)
    }

    /// Llama-3.1-8B under Unsloth with LoRA on all seven projections (its default), no
    /// checkpointing. Per token and layer (h 4096, q 4096, k and v 1024, 32 heads, I 14336):
    /// - input norm, Fast_RMS_Layernorm: X (the block input, 2h) and r (4): 8,196
    /// - LoRA_QKV: X (the norm's output, 2h): 8,192
    /// - flash attention (PyTorch's kernel): q 8,192, k 2,048, v 2,048, output 8,192, fp32
    ///   log-sum-exp per head 128: 20,608
    /// - LoRA_W on o_proj: X is the attention output, already kept: 0
    /// - post-attention norm: X (the residual sum, 2h) and r: 8,196
    /// - LoRA_MLP: X (the norm's output, 2h) 8,192, e and g (2I each) 57,344
    /// Total 110,728 bytes per token: 453,541,888 at 4,096 tokens (flash's two 8-byte RNG
    /// words aside).
    @Test func unslothKeepsItsInputs() throws {
        let c = try Self.context("llama-3.1-8b", kernels: .unsloth, targets: Self.allSeven)
        #expect(abs(Self.layer(c) - 453_541_888) <= 64, "\(Self.layer(c))")
        // With only q and v wrapped nothing is fused (LoRA_QKV needs q, k and v; LoRA_MLP
        // gate, up and down): Unsloth's norms alone keep less, and on Qwen3 its q_norm and
        // k_norm too (qwen3.py): 2 × 2h + 2·q + 2·k = 16,384 + 8,192 + 2,048 per token.
        let q0 = try Self.context("qwen3-8b", kernels: .none), q1 = try Self.context("qwen3-8b", kernels: .unsloth)
        #expect(Self.layer(q0) - Self.layer(q1) == 26_624 * 4096)
    }

    /// Unsloth keeps QLoRA's frozen embeddings, norms and lm_head in 16 bits, where PEFT's
    /// prepare_model_for_kbit_training makes them fp32: Qwen3-8B's untied embedding and head
    /// (151,936 × 4,096 each) and its norms (36 layers × (2 × 4,096 + 2 × 128) + 4,096):
    /// 1,244,659,712 + 308,224 = 1,244,967,936 parameters, 2 bytes each less.
    @Test func unslothQLoRAWeightsStay16Bit() throws {
        let hf = try Self.context("qwen3-8b", kernels: .none, method: .qlora)
        let u = try Self.context("qwen3-8b", kernels: .unsloth, method: .qlora)
        #expect(hf.frozenWeights - u.frozenWeights == 2 * 1_244_967_936)
    }

    /// Unsloth's offloaded checkpointing, Llama-3.1-8B at 1 × 4096: each of the 32 block inputs
    /// (4096 × 4096 bf16 = 32 MiB) in its own pinned host buffer; on the GPU the last layer's
    /// input and the two staging buffers (double buffering) instead of all 32; below 512 tokens
    /// nothing is offloaded; the copies back cost time.
    @Test func offloadedCheckpointing() throws {
        let input = 4096.0 * 4096 * 2
        let reentrant = try Self.context("llama-3.1-8b", kernels: .unsloth, targets: Self.allSeven, checkpoint: .reentrant)
        let offloaded = try Self.context("llama-3.1-8b", kernels: .unsloth, targets: Self.allSeven, checkpoint: .offloaded)
        let r = reentrant.memory(batch: 1, seq: 4096), o = offloaded.memory(batch: 1, seq: 4096)
        #expect(o.offloadedActivations == 32 * 33_554_432)
        #expect(r.offloadedActivations == 0)
        let k = offloaded.activationScale
        #expect(abs(Double(r.activations - o.activations) - k * 29 * input) <= 2, "\(r.activations - o.activations)")
        let short = try Self.context("llama-3.1-8b", kernels: .unsloth, targets: Self.allSeven, seq: 256, checkpoint: .offloaded)
        #expect(short.memory(batch: 1, seq: 256).offloadedActivations == 0)
        let gpu = try HardwareCatalog.select("H100 SXM", from: HardwareCatalog.bundled())[0]
        let hours = { (c: PlanContext) in TimeModel.estimate(c, gpu: gpu, dataset: Dataset(), budget: BudgetOptions()).hours }
        #expect(hours(offloaded) > hours(reentrant))
        #expect(offloaded.stepWork(gpu: gpu).exposedHostBytesPerMicroBatch == k * 31 * input)
    }

    /// Every family with a Liger patch or Unsloth kernels plans under them wherever it plans
    /// without them (the same method and targets), and keeps no more.
    @Test func everyPatchedFamilyPlans() throws {
        for arch in FamilyRegistryTests.onePerFamily {
            var t = TrainingOptions()
            t.seq = 64
            t.loss = .chunked
            let stacks: [KernelStack] = (arch.family.spec.plansLiger ? [.liger] : []) + (arch.family.spec.unslothKernels ? [.unsloth] : [])
            for method in [Method.lora, .qlora, .full] {
                for options in [MethodOptions(), Self.allLinear] {
                    guard let plain = try? PlanContext(arch: arch, method: method, methodOptions: options, training: t) else { continue }
                    for stack in stacks where stack == .liger || method != .full {
                        var k = t
                        k.kernels = stack
                        if stack == .unsloth { k.loss = .unsloth }
                        let patched = try PlanContext(arch: arch, method: method, methodOptions: options, training: k)
                        #expect(Self.layer(patched, seq: 64) <= Self.layer(plain, seq: 64), "\(arch.name) \(method) \(stack)")
                    }
                }
            }
        }
    }

    /// Without --method, a technique that serves some methods only plans those and lists the
    /// others with the reason, rather than failing the whole plan.
    @Test func everyMethodSkipsWhatATechniqueCannotRun() throws {
        for (args, planned) in [(["--kernels", "unsloth"], ["lora", "qlora"]), (["--checkpointing", "selective"], ["full"])] {
            let r = try CLI.run(["--model", "llama-3.1-8b", "--gpu", "H100 SXM", "--format", "json"] + args)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let plans = try #require(obj["plans"] as? [[String: Any]]).compactMap { $0["method"] as? String }
            #expect(plans == planned, "\(args)")
            let skipped = ((obj["assumptions"] as? [String: Any])?["skipped_methods"] as? [[String: Any]]) ?? []
            #expect(skipped.count == 7 - planned.count, "\(args): \(skipped)")
        }
    }

    /// The command line's defaults under Unsloth: its targets, loss and offloaded
    /// checkpointing, each said in the notes; host_bytes carries the offloaded inputs.
    @Test func unslothDefaultsAreStated() throws {
        let r = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--gpu", "H100 SXM", "--kernels", "unsloth", "--format", "json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let a = try #require(obj["assumptions"] as? [String: Any])
        #expect(a["kernels"] as? String == "unsloth")
        #expect(a["loss"] as? String == "unsloth")
        #expect(a["checkpoint_style"] as? String == "offloaded")
        #expect(a["lora_targets"] as? String == Self.allSeven.joined(separator: ","))
        let notes = (a["notes"] as? [String]) ?? []
        #expect(notes.contains { $0.contains("Unsloth's default") && $0.contains("LoRA targets") })
        #expect(notes.contains { $0.hasPrefix("checkpointing offloaded: Unsloth's default") })
        let p = try #require((obj["plans"] as? [[String: Any]])?.first)
        #expect(p["host_bytes"] as? Int == 32 * 2048 * 4096 * 2, "the default 2,048 tokens: 32 inputs of 2048 × 4096 × 2 bytes")
    }
}

/// `--optimizer-in-backward` against PyTorch: scripts/optimizer_in_backward_reference.py trains
/// one step on the CPU with one AdamW per parameter stepped from its post-accumulate-grad
/// hook and records the gradient bytes alive at each hook. The plan's `gradients` term must
/// equal the largest measured. (Untied models only: with a tied embedding autograd holds the
/// head's share of its gradient in its own buffer, which `.grad` does not show; the plan adds
/// it from the source of the engine's accumulation, not from this measurement.)
@Suite("The optimizer step in backward against PyTorch")
struct OptimizerInBackwardTests {
    static let cases: [(id: String, model: String, method: Method, batch: Int, seq: Int)] = [
        ("tiny-full", "tiny", .full, 2, 64),
        ("tiny-lora", "tiny", .lora, 2, 64),
    ]

    nonisolated(unsafe) static let reference = PythonReference.run(
        script: "optimizer_in_backward_reference.py",
        input: cases.map { ["id": $0.id, "config_path": Fixtures.modelPath($0.model), "method": $0.method.rawValue,
                            "batch": $0.batch, "seq": $0.seq] as [String: Any] })

    @Test func gradientsAliveAtOnce() throws {
        let measured = try Self.reference.get()
        for c in Self.cases {
            let r = try #require(measured[c.id] as? [String: Any], "no result for \(c.id)")
            if let error = r["error"] as? String { Issue.record("\(c.id): \(error)"); continue }
            var t = TrainingOptions()
            t.batch = c.batch
            t.seq = c.seq
            let plain = try PlanContext(arch: try Presets.resolve(c.model), method: c.method, methodOptions: MethodOptions(), training: t)
            t.optimizerInBackward = true
            let fused = try PlanContext(arch: try Presets.resolve(c.model), method: c.method, methodOptions: MethodOptions(), training: t)
            #expect(fused.gradients == r["peak_gradient_bytes"] as? Int, "\(c.id)")
            #expect(plain.gradients == r["all_gradient_bytes"] as? Int, "\(c.id): every gradient without it")
        }
    }
}
