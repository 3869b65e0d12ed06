import Foundation
import Testing
import PEFTCalibration
import PEFTTestSupport
@testable import PEFTPlan

/// One run of the collection the time model is validated on (issue 16): a published,
/// fully specified fine-tuning throughput (Fixtures/published-throughput/runs.json, each with
/// its source's table row), or one of our own H100 bursts (reports/calibration).
struct ThroughputRun: CustomTestStringConvertible, Sendable {
    var id: String
    var source: String
    var stack: String
    var arch: Architecture
    var method: Method
    var options: MethodOptions
    var training: TrainingOptions
    var gpu: String
    var scale: ScaleOptions
    var compile: Bool
    /// Whether the run's forward ran under the Trainer's autocast (runs.json `autocast`,
    /// true unless stated)
    var autocast = true
    var tokensPerSecond: Double
    var testDescription: String { id }

    /// The plan the time model estimates for the run.
    func context() throws -> PlanContext {
        var runtime = RuntimeProfile.hfCUDA
        runtime.autocast = autocast
        return try PlanContext(arch: arch, method: method, methodOptions: options, training: training, runtime: runtime, scale: scale)
    }

    /// hf-cuda's tokens/s over all GPUs for the run.
    func predicted() throws -> Double {
        let profile = try HardwareCatalog.select(gpu, from: HardwareCatalog.bundled())[0]
        var budget = BudgetOptions()
        budget.compile = compile
        return TimeModel.estimate(try context(), gpu: profile, dataset: Dataset(), budget: budget).tokensPerSecond
    }
}

enum ThroughputCollection {
    nonisolated(unsafe) static let file = Fixtures.json("published-throughput/runs.json") as! [String: Any]
    static var sources: [[String: Any]] { file["sources"] as! [[String: Any]] }

    /// The published runs, read into plans; a malformed run is a test failure, not a skip.
    static func published() throws -> [ThroughputRun] {
        try (file["runs"] as! [[String: Any]]).map { r in
            let id = try #require(r["id"] as? String)
            var o = MethodOptions()
            if let rank = r["lora_r"] as? Int { o.loraR = rank }
            if let alpha = r["lora_alpha"] as? Int { o.loraAlpha = alpha }
            if let d = r["adapter_dtype"] as? String { o.adapterDtype = try #require(AdapterDtype(rawValue: d), "\(id): adapter_dtype") }
            if let d = r["qlora_rest"] as? String { o.qloraRest = try #require(QLoRARest(rawValue: d), "\(id): qlora_rest") }
            if let targets = r["lora_targets"] as? String { o.loraTargets = try TargetSpec.parse(targets, field: .loraTargets) }
            var t = TrainingOptions()
            t.batch = try #require(r["batch"] as? Int, "\(id): batch")
            t.seq = try #require(r["seq"] as? Int, "\(id): seq")
            t.gradAccum = try #require(r["grad_accum"] as? Int, "\(id): grad_accum")
            t.gradCheckpointing = try #require(r["checkpointing"] as? Bool, "\(id): checkpointing")
            if let name = r["optimizer"] as? String { t.optimizer = try #require(Optimizer(rawValue: name), "\(id): optimizer") }
            let sharding = try #require(Sharding(rawValue: r["sharding"] as? String ?? ""), "\(id): sharding")
            let offload = try #require(Offload(rawValue: r["offload"] as? String ?? ""), "\(id): offload")
            return ThroughputRun(id: id, source: try #require(r["source"] as? String), stack: try #require(r["stack"] as? String),
                                 arch: try Fixtures.architecture(try #require(r["model"] as? String)), method: try #require(Method(rawValue: r["method"] as? String ?? ""), "\(id): method"),
                                 options: o, training: t, gpu: try #require(r["gpu"] as? String),
                                 scale: ScaleOptions(gpus: try #require(r["gpus"] as? Int), sharding: sharding, offload: offload),
                                 compile: r["compile"] as? Bool ?? false, autocast: r["autocast"] as? Bool ?? true, tokensPerSecond: try #require(r["tokens_per_second"] as? Double, "\(id): tokens/s"))
        }
    }

    /// The ids of runs the collection marks excluded: each says which of the collection's
    /// criteria its source does not meet (runs.json).
    static var excluded: Set<String> {
        Set((file["runs"] as! [[String: Any]]).compactMap { r in r["excluded"] != nil ? r["id"] as? String : nil })
    }

    /// The runs the time model is fitted on and checked against: published runs not excluded, and our own.
    static func usable() throws -> [ThroughputRun] {
        let out = excluded
        return try (published() + own()).filter { !out.contains($0.id) }
    }

    /// Our own H100 bursts (autocast, as the Trainer runs them), read as `calibrate --compare` reads them.
    static func own() throws -> [ThroughputRun] {
        var runs: [ThroughputRun] = []
        for path in file["own_bursts"] as! [String] {
            let results = try TorchCalibration.load(TorchResults.self, path: repoRoot.appendingPathComponent(path).path, option: "--compare")
            let jobPath = path.replacingOccurrences(of: ".json", with: ".job.json")
            let job = try TorchCalibration.load(TorchJob.self, path: repoRoot.appendingPathComponent(jobPath).path, option: "--job")
            let configs = job.resolved
            for r in results.bursts where r.error == nil {
                guard let c = configs[r.id], let tps = r.tokensPerSecond else { continue }
                let ctx = try TorchCalibration.context(c, runtime: .hfCUDA)
                runs.append(ThroughputRun(id: r.id, source: "own-h100", stack: "hf", arch: ctx.arch, method: ctx.account.method,
                                          options: ctx.methodOptions, training: ctx.training, gpu: "H100 SXM", scale: ScaleOptions(),
                                          compile: false, tokensPerSecond: tps))
            }
        }
        return runs
    }
}

/// The collection itself: cited, specified, and as broad as issue 16 asks (at least 40 runs
/// from at least 5 independent sources on at least 5 GPU types, single- and multi-GPU).
@Suite("Published throughput collection")
struct ThroughputCollectionTests {
    @Test("every published run is cited and specified, and the time model can plan it")
    func runsAreSpecified() throws {
        let sources = Dictionary(uniqueKeysWithValues: ThroughputCollection.sources.map { ($0["key"] as! String, $0) })
        for s in sources.values {
            let cited = (s["repository"] as? String).map { _ in (s["commit"] as? String)?.count == 40 && s["path"] != nil }
                ?? (s["path"] as? String == "reports/calibration/")
            #expect(cited, "\(s["key"]!): a repository, path and commit (or our own results)")
            #expect(!(s["setup"] as? String ?? "").isEmpty && !(s["figure"] as? String ?? "").isEmpty)
        }
        let raw = ThroughputCollection.file["runs"] as! [[String: Any]]
        for r in raw {
            let id = r["id"] as? String ?? "?"
            #expect(sources[r["source"] as? String ?? ""] != nil, "\(id): unknown source")
            #expect(!(r["quote"] as? String ?? "").isEmpty && !(r["derivation"] as? String ?? "").isEmpty, "\(id): quote and derivation")
        }
        #expect(Set(raw.compactMap { $0["id"] as? String }).count == raw.count, "run ids are unique")
        for run in try ThroughputCollection.published() {
            _ = try HardwareCatalog.select(run.gpu, from: HardwareCatalog.bundled())
            let p = try run.predicted()
            #expect(p.isFinite && p > 0, "\(run.id): predicted \(p)")
            #expect(run.tokensPerSecond > 0)
        }
    }

    @Test("at least 40 usable runs from 5 sources on 5 GPU types, single- and multi-GPU")
    func coverage() throws {
        let runs = try ThroughputCollection.usable()
        for r in ThroughputCollection.file["runs"] as! [[String: Any]] {
            if let why = r["excluded"] { #expect((why as? String ?? "").count >= 60, "\(r["id"]!): say which criterion the run does not meet") }
        }
        #expect(runs.count >= 40)
        #expect(Set(runs.map(\.source)).count >= 5)
        #expect(Set(runs.map(\.gpu)).count >= 5)
        #expect(runs.contains { $0.scale.gpus == 1 } && runs.contains { $0.scale.gpus > 1 })
        #expect(Set(runs.map(\.method)).isSuperset(of: [.full, .lora, .qlora]))
    }

    /// Where hf-cuda stands on the whole collection, in sample (TimeFitTests has the held-out figures): the
    /// signed error of predicted over published tokens/s, median and median magnitude, over
    /// all runs and by source, GPU and method (printed; the README quotes them).
    @Test("the time model's error on the collection, by source, GPU and method")
    func errorSummary() throws {
        let runs = try ThroughputCollection.usable()
        var errors: [(run: ThroughputRun, error: Double)] = []
        for r in runs {
            let p = try r.predicted()
            #expect(p.isFinite && p > 0, "\(r.id): predicted \(p)")
            errors.append((r, p / r.tokensPerSecond - 1))
        }
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        func line(_ name: String, _ e: [Double]) -> String {
            String(format: "%@: %d runs, median %+.0f%%, median |error| %.0f%%", name, e.count, median(e) * 100, median(e.map(abs)) * 100)
        }
        print("throughput collection, hf-cuda (in sample: its coefficients were fitted on these runs; TimeFitTests holds each source out): " + line("all", errors.map(\.error)))
        for (name, key) in [("source", { (r: ThroughputRun) in r.source }), ("GPU", { $0.gpu }), ("method", { $0.method.rawValue })] {
            let groups = Dictionary(grouping: errors, by: { key($0.run) })
            for k in groups.keys.sorted() { print("  \(name) " + line(k, groups[k]!.map(\.error))) }
        }
        #expect(errors.count == runs.count)
    }
}

