import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// One row of Fixtures/trace-cases.json.
struct TraceCase: CustomTestStringConvertible, Sendable {
    let id: String
    let model: String
    let method: Method
    let batch: Int
    let seq: Int
    let raw: [String: String]
    var testDescription: String { id }

    nonisolated(unsafe) static let rows: [[String: Any]] = Fixtures.json("trace-cases.json") as! [[String: Any]]
    static let all: [TraceCase] = rows.map { d in
        TraceCase(id: d["id"] as! String, model: d["model"] as! String, method: Method(rawValue: d["method"] as! String)!,
                  batch: d["batch"] as! Int, seq: d["seq"] as! Int, raw: d.mapValues { "\($0)" })
    }

    var training: TrainingOptions {
        var t = TrainingOptions()
        t.batch = batch
        t.seq = seq
        t.precision = raw["dtype"].flatMap(Precision.init(rawValue:)) ?? .bf16
        t.attention = raw["attention"].flatMap(AttentionChoice.init(rawValue:)) ?? .sdpa
        t.gradCheckpointing = raw["grad_checkpointing"] == "1" || raw["grad_checkpointing"] == "true"
        t.imageTokens = raw["image_tokens"].flatMap(Int.init) ?? 0
        t.loss = raw["loss"].flatMap(LossKind.init(rawValue:)) ?? .standard
        if raw["reentrant"] == "1" || raw["reentrant"] == "true" { t.checkpointStyle = .reentrant }
        if raw["selective"] == "1" || raw["selective"] == "true" { t.checkpointStyle = .selective }
        t.paddingFree = raw["padding_free"] == "1" || raw["padding_free"] == "true"
        return t
    }

    var options: MethodOptions {
        var o = MethodOptions()
        if let t = raw["targets"] { o.loraTargets = try! .parse(t, field: .loraTargets) }
        if raw["dora"] == "1" || raw["dora"] == "true" { o.dora = true }
        if let d = raw["dropout"] { o.loraDropout = Double(d)! }
        if let d = raw["adapter_dtype"] { o.adapterDtype = AdapterDtype(rawValue: d)! }
        if let r = raw["qlora_rest"] { o.qloraRest = QLoRARest(rawValue: r)! }
        return o
    }

    /// The trace of this case; nil (with the failure recorded) when the trace failed.
    func traced() throws -> [String: Any]? {
        let reference = try traceReference.get()
        let expected = try #require(reference[id] as? [String: Any], "no trace result for \(id)")
        if let error = expected["error"] as? String { Issue.record("the trace failed: \(error)"); return nil }
        return expected
    }

    var pythonInput: [String: Any] { Fixtures.pythonInput(TraceCase.rows, id: id, model: model) }

    /// The plan context of this case under `runtime`.
    func context(runtime: RuntimeProfile) throws -> PlanContext {
        try PlanContext(arch: Fixtures.architecture(model), method: method, methodOptions: options, training: training, runtime: runtime)
    }

    /// `hf-meta`, with PyTorch's CPU flash kernel for sdpa where the case runs on the CPU with
    /// real tensors (the math kernel where attention has dropout, which that kernel lacks).
    func traceRuntime() throws -> RuntimeProfile {
        var runtime = RuntimeProfile.hfMeta
        let arch = try Fixtures.architecture(model)
        if raw["device"] == "cpu" && arch.attentionDropout == 0 { runtime.sdpaKernel = .flash }
        return runtime
    }
}

nonisolated(unsafe) let traceReference: Result<[String: Any], PythonReference.ReferenceError> =
    PythonReference.run(script: "saved_tensors_trace.py", input: TraceCase.all.map(\.pythonInput))

/// The activation and logits terms against what Transformers really saves for backward,
/// measured on the meta device (scripts/saved_tensors_trace.py). The model is evaluated
/// with the `hf-meta` runtime profile, which differs from `hf-cuda` only where the
/// kernels differ (math SDPA and dtype-sized dropout masks on meta; see RuntimeProfile).
/// Falcon-7B is traced at batch 2: its multi-query keys are a broadcast view inside the
/// math kernel at batch 1 only, an artefact of that kernel that CUDA's flash kernel lacks.
/// Gradient-checkpointing cases run on the CPU with real weights (checkpoint cannot run on
/// meta), so they use small models.
@Suite("Activations and logits against the real saved-tensor trace")
struct ActivationTraceTests {
    /// Aim stated in the issue: within 3% per case.
    static let tolerance = 0.03

    @Test("saved bytes within 3%", arguments: TraceCase.all)
    func savedBytes(_ c: TraceCase) throws {
        guard let expected = try c.traced() else { return }
        let m = try c.context(runtime: c.traceRuntime()).memory(batch: c.batch, seq: c.seq)
        let measured = Double(try #require(expected.int("saved_bytes")))
        let predicted = Double(m.activations + m.logits)
        let error = abs(predicted - measured) / measured
        #expect(error <= Self.tolerance, "predicted \(Int(predicted)) vs traced \(Int(measured)) bytes: \(String(format: "%.2f", error * 100))%")
        let logitsMeasured = Double(try #require(expected.int("logits_bytes")))
        #expect(abs(Double(m.logits) - logitsMeasured) <= Self.tolerance * logitsMeasured,
                "logits \(m.logits) vs traced \(Int(logitsMeasured))")
    }

    /// The trainable weights' bytes equal what PEFT's model holds (LoRA's adapters in fp32,
    /// or in the model's dtype with `autocast_adapter_dtype=False`), exactly.
    @Test("trainable bytes equal the traced model's", arguments: TraceCase.all.filter { $0.method == .lora || $0.method == .qlora })
    func trainableBytes(_ c: TraceCase) throws {
        guard let expected = try c.traced() else { return }
        let ctx = try c.context(runtime: c.traceRuntime())
        #expect(ctx.unsharded.trainableWeights == (try #require(expected.int("trainable_bytes"))), "\(c.id)")
    }
}

/// Matmul FLOPs of forward and backward against PyTorch's FlopCounterMode over the same
/// runs (scripts/saved_tensors_trace.py). Checkpointed cases count the recompute in backward.
/// QLoRA's cases are left out: bitsandbytes runs its 4-bit matmuls as its own ops, which the
/// counter has no formula for (it counts only the adapters, attention and the head there).
@Suite("FLOPs against PyTorch's FlopCounterMode")
struct FlopTests {
    static let tolerance = 0.001

    @Test("forward and backward FLOPs within 0.1%", arguments: TraceCase.all.filter { $0.method != .qlora })
    func flops(_ c: TraceCase) throws {
        guard let expected = try c.traced() else { return }
        let f = try c.context(runtime: c.traceRuntime()).flops(batch: c.batch, seq: c.seq)
        let fwd = Double(try #require(expected.int("forward_flops")))
        let bwd = Double(try #require(expected.int("backward_flops")))
        let compare = {
            #expect(abs(f.forward - fwd) <= Self.tolerance * fwd, "forward \(Int(f.forward)) vs \(Int(fwd))")
            #expect(abs(f.backward + f.recompute - bwd) <= Self.tolerance * bwd, "backward \(Int(f.backward + f.recompute)) vs \(Int(bwd))")
        }
        // FlopCounterMode has no formula for torch._grouped_mm (the Transformers v5 MoE's
        // experts); saved_tensors_trace.py gives it one from the shapes each call really gets.
        compare()
    }
}
