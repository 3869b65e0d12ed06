import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// One row of Fixtures/trainer-cases.json: a TRL trainer's step that scripts/trainer_trace.py
/// runs for real on the CPU.
struct TrainerCase: CustomTestStringConvertible, Sendable {
    let id: String
    let model: String
    let kind: TrainerKind
    let method: Method
    let batch: Int
    let completion: Int
    let precision: Precision
    let checkpointing: Bool
    let numGenerations: Int
    let beta: Double?
    let precomputeRef: Bool
    let gradAccum: Int
    let numIterations: Int
    /// TRL's fused head scoring only the labelled positions, as on CUDA (the case runs it so on the CPU).
    let compact: Bool
    var testDescription: String { id }

    nonisolated(unsafe) static let rows: [[String: Any]] = Fixtures.json("trainer-cases.json") as! [[String: Any]]
    static let all: [TrainerCase] = rows.map { d in
        TrainerCase(id: d["id"] as! String, model: d["model"] as! String, kind: TrainerKind(rawValue: d["trainer"] as! String)!,
                    method: Method(rawValue: d["method"] as! String)!, batch: d["batch"] as! Int, completion: d["completion"] as! Int,
                    precision: Precision(rawValue: d["dtype"] as! String)!, checkpointing: d["grad_checkpointing"] as? Bool ?? false,
                    numGenerations: d["num_generations"] as? Int ?? 8, beta: d["beta"] as? Double,
                    precomputeRef: d["precompute_ref"] as? Bool ?? false, gradAccum: d["grad_accum"] as? Int ?? 1,
                    numIterations: d["num_iterations"] as? Int ?? 1,
                    compact: d["compact"] as? Bool ?? false)
    }

    /// The traced result; nil (with the failure recorded) when the trace failed.
    func traced() throws -> [String: Any]? {
        let reference = try trainerReference.get()
        let result = try #require(reference[id] as? [String: Any], "no trace result for \(id)")
        if let error = result["error"] as? String { Issue.record("the trainer step failed: \(error)"); return nil }
        return result
    }

    /// The plan of the step the trace ran, at the row length TRL's collator made
    /// (prompt + completion, and any end-of-sequence token it appends).
    func context(seq: Int) throws -> PlanContext {
        var t = TrainingOptions()
        t.batch = batch
        t.seq = seq
        t.precision = precision
        t.gradCheckpointing = checkpointing
        t.loss = kind.fusedHead ? .chunked : .standard
        t.trainer.kind = kind
        t.trainer.numGenerations = numGenerations
        t.trainer.beta = beta
        t.trainer.precomputeRef = precomputeRef
        t.gradAccum = gradAccum
        t.trainer.numIterations = numIterations
        if kind == .grpo || compact { t.trainer.completion = completion }
        var o = MethodOptions()
        if method == .lora { o.loraTargets = .list(["q_proj", "v_proj"]) }
        // the CPU's kernels: PyTorch's flash SDPA, and TRL's fused head scoring every position
        // (only the completion's where the case has it score as on CUDA)
        var runtime = RuntimeProfile.hfMeta
        runtime.sdpaKernel = .flash
        runtime.compactScoring = compact
        return try PlanContext(arch: Fixtures.architecture(model), method: method, methodOptions: o, training: t, runtime: runtime)
    }
}

nonisolated(unsafe) let trainerReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "trainer_trace.py", input: TrainerCase.all.map { Fixtures.pythonInput(TrainerCase.rows, id: $0.id, model: $0.model) })

/// The trainers' steps against TRL 1.16 itself: DPO, KTO, ORPO, SimPO (CPO) and GRPO with
/// Transformers' generate, one optimizer step each on the CPU (scripts/trainer_trace.py).
@Suite("TRL trainers against the real step")
struct TrainerTraceTests {
    static let tolerance = 0.03

    /// The policy's forward with gradients: its rows and row length as TRL built them.
    static func policyShape(_ r: [String: Any]) throws -> (rows: Int, seq: Int) {
        let forwards = try #require(r["forwards"] as? [[String: Any]])
        let grad = try #require(forwards.first { $0["grad"] as? Bool == true }?["shape"] as? [Int])
        return (grad[0], grad[1])
    }

    @Test("rows, extra forwards, weights, gradients and optimizer states exactly; saved bytes within 3%", arguments: TrainerCase.all)
    func step(_ c: TrainerCase) throws {
        guard let r = try c.traced() else { return }
        let shape = try Self.policyShape(r)
        let ctx = try c.context(seq: shape.seq)
        // chosen and rejected stacked (DPO, ORPO, SimPO), or not (KTO, GRPO)
        #expect(ctx.layout(batch: c.batch, seq: shape.seq).batch == shape.rows, "rows")
        // the reference, KL and old-log-probability forwards over the same rows, without gradients
        let forwards = try #require(r["forwards"] as? [[String: Any]])
        let noGrad = forwards.filter { $0["grad"] as? Bool == false && ($0["shape"] as? [Int]) == [shape.rows, shape.seq] }.count
        #expect(noGrad == ctx.training.trainer.extraForwards, "no-grad forwards over the rows: \(noGrad)")
        let m = ctx.memory(batch: c.batch, seq: shape.seq)
        let trainable = try #require(r.int("trainable_bytes")), frozen = try #require(r.int("frozen_bytes"))
        let reference = try #require(r.int("reference_bytes")), gradients = try #require(r.int("gradient_bytes"))
        let states = try #require(r.int("optimizer_state_bytes"))
        #expect(m.trainableWeights == trainable, "trainable")
        #expect(m.frozenWeights == frozen + reference, "frozen and reference")
        #expect(m.referenceWeights == reference, "reference model")
        #expect(m.gradients == gradients, "gradients")
        #expect(m.optimizerStates == states, "optimizer states")
        let measured = Double(try #require(r.int("saved_bytes")))
        let predicted = Double(m.activations + m.logits)
        let error = abs(predicted - measured) / measured
        print(String(format: "trainer trace %@: saved predicted %d, traced %d (%+.2f%%)", c.id, Int(predicted), Int(measured), (predicted / measured - 1) * 100))
        #expect(error <= Self.tolerance, "saved: predicted \(Int(predicted)) vs traced \(Int(measured)) bytes: \(String(format: "%.2f", error * 100))%")
        if c.kind == .grpo {
            // Transformers' cache at the end of generate: the generation batch's prompt + completion − 1 tokens
            let cache = try #require(r.int("generation_cache_bytes"))
            #expect(m.generationCache == cache, "generation KV cache")
        }
    }
}
