import Foundation
import Testing
import PEFTCalibration
@testable import PEFTPlan

/// The time model against the throughput collection (issue 16): each source held out in
/// turn, the coefficients fitted on the others, the held-out runs' error reported by source,
/// GPU and method; and the shipped coefficients are the fit on every run.
@Suite("Time model fitted to published throughput, checked on held-out sources")
struct TimeFitTests {
    /// The collection's runs as the fit sees them; runs the collection marks excluded (a
    /// criterion of the collection their source does not meet, or a figure the stated setup
    /// cannot produce) are left out, each with its reason in runs.json.
    static func samples() throws -> [TimeFit.Sample] {
        // TIME_FIT_ALL=1 keeps the excluded runs too (docs/time-model.md quotes both figures)
        let runs = ProcessInfo.processInfo.environment["TIME_FIT_ALL"] != nil
            ? try ThroughputCollection.published() + ThroughputCollection.own() : try ThroughputCollection.usable()
        return try runs.map { r in
            let gpu = try HardwareCatalog.select(r.gpu, from: HardwareCatalog.bundled())[0]
            let ctx = try r.context()
            return TimeFit.Sample(id: r.id, source: r.source, work: ctx.stepWork(gpu: gpu), gpu: gpu, precision: ctx.training.precision,
                                  compile: r.compile, tokensPerSecond: r.tokensPerSecond, method: r.method.rawValue)
        }
    }

    static func median(_ v: [Double]) -> Double { TimeFit.quantile(v, 0.5) }

    @Test("leave-one-source-out: the held-out error, by source, GPU and method")
    func heldOut() throws {
        let samples = try Self.samples()
        #expect(Set(samples.map(\.source)).count >= 5)
        let held = TimeFit.leaveOneSourceOut(samples)
        #expect(held.count == samples.count)
        let errors = held.map(\.error)
        let medianAbs = Self.median(errors.map(abs))
        print(String(format: "time model, held out by source: %d runs, median |error| %.1f%%, median %+.1f%%, P10–P90 of measured/predicted time %.2f–%.2f",
                     errors.count, medianAbs * 100, Self.median(errors) * 100,
                     TimeFit.quantile(errors.map { 1 + $0 }, 0.1), TimeFit.quantile(errors.map { 1 + $0 }, 0.9)))
        if ProcessInfo.processInfo.environment["TIME_FIT_RUNS"] != nil {
            for h in held.sorted(by: { $0.error < $1.error }) {
                print(String(format: "  %+6.1f%%  %@ (%@, %@)", h.error * 100, h.sample.id, h.sample.gpu.name, h.sample.method))
            }
        }
        var worst = 0.0
        for (name, key) in [("source", { (s: TimeFit.Sample) in s.source }), ("GPU", { $0.gpu.name }), ("method", { $0.method })] {
            let groups = Dictionary(grouping: held, by: { key($0.sample) })
            for k in groups.keys.sorted() {
                let e = groups[k]!.map(\.error)
                print(String(format: "  %@ %@: %d runs, median %+.1f%%, median |error| %.1f%%", name, k, e.count, Self.median(e) * 100, Self.median(e.map(abs)) * 100))
                if name != "source", e.count >= 3 { worst = max(worst, abs(Self.median(e))) }
            }
        }
        // Issue 16's bar: a median |error| of 12% on the held-out runs, and no GPU type or
        // method (with three runs or more) biased beyond ±10%.
        // TIME_FIT_ALL=1 (the excluded runs kept in) prints the figures without holding them
        if ProcessInfo.processInfo.environment["TIME_FIT_ALL"] != nil { return }
        #expect(medianAbs <= 0.12, "held-out median |error| \(medianAbs)")
        #expect(worst <= 0.10, "largest held-out median bias of a GPU type or method: \(worst)")
    }

    /// The coefficients hf-cuda ships are the fit on every run of the collection (so a change
    /// to the collection or the model must refit them), and their range is the held-out one.
    @Test("the shipped coefficients are the fit on the whole collection")
    func shippedIsTheFit() throws {
        let samples = try Self.samples()
        #expect(samples.count == TimeCoefficients.fittedRuns, "the plan's notes say how many runs the coefficients were fitted on")
        let all = TimeFit.fit(samples)
        let shipped = TimeCoefficients.fitted
        for p in TimeFit.parameters {
            let a = all[keyPath: p.path], s = shipped[keyPath: p.path]
            print(String(format: "  %@ = %.4g (prior %.4g)", p.name, a, p.prior))
            #expect(abs(s / a - 1) < 0.02, "\(p.name): shipped \(s), fitted \(a)")
        }
        let ratios = TimeFit.leaveOneSourceOut(samples).map { 1 + $0.error }
        let p10 = TimeFit.quantile(ratios, 0.1), p90 = TimeFit.quantile(ratios, 0.9)
        print(String(format: "  time_ratio_p10 = %.3f, time_ratio_p90 = %.3f", p10, p90))
        #expect(abs(shipped.timeRatioP10 - p10) < 0.01 && abs(shipped.timeRatioP90 - p90) < 0.01)
        let inSample = samples.map { abs(TimeFit.predicted($0, all) / $0.tokensPerSecond - 1) }
        print(String(format: "  in-sample median |error| %.1f%% (the held-out figure is the one to quote)", Self.median(inSample) * 100))
    }
}
