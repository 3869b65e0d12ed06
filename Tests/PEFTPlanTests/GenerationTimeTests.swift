import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// The per-step overhead of Transformers' generate (GRPO's default generation) against the
/// published decode speeds in Fixtures/published-generation/runs.json: fitted on one source,
/// its error reported on the others (docs/trainers.md).
@Suite("Transformers' generate against published decode speeds")
struct GenerationTimeTests {
    struct Run {
        let source: String
        let traffic: Double, rows: Int, measured: Double
    }

    /// Every run with its memory-traffic seconds: the fp16 weights and the KV cache read once per
    /// step (mean context: the prompt and half the new tokens) at the A100-SXM4-80GB profile's
    /// bandwidth and the time model's memory-bound efficiency.
    static func runs() throws -> [Run] {
        let data = try #require(Fixtures.json("published-generation/runs.json") as? [String: Any])
        let rows = try #require(data["runs"] as? [[String: Any]])
        let gpu = try #require(try HardwareCatalog.bundled().first { $0.name == "A100 80GB SXM" })
        let bandwidth = gpu.memoryBandwidthBytesPerSecond * TimeCoefficients.fitted.bandwidthEfficiency
        return try rows.map { r in
            let arch = try Presets.resolve(try #require(r["model"] as? String))
            let batch = try #require(r["batch"] as? Int)
            let context = Double(try #require(r["prompt"] as? Int)) + Double(try #require(r["new"] as? Int)) / 2
            let bytes = Double(arch.totalParams * 2) + Double(batch) * context * Double(Generation.kvBytesPerToken(arch, bytes: 2, vllm: false))
            return Run(source: try #require(r["source"] as? String), traffic: bytes / bandwidth, rows: batch,
                       measured: try #require(r["ms_per_step"] as? Double) / 1000)
        }
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    @Test("the committed overhead is the fit on S1, and held out it is within 12% (median) of the other sources")
    func heldOut() throws {
        let all = try Self.runs()
        let fitted = GenerationTime.fitGenerateOverhead(all.filter { $0.source == "S1" }.map { ($0.traffic, $0.rows, $0.measured) })
        #expect(abs(fitted.step - GenerationTime.generateStepOverhead) < 1e-9, "fit \(fitted.step)")
        #expect(abs(fitted.row - GenerationTime.generateRowOverhead) < 1e-9, "fit \(fitted.row)")
        let held = all.filter { $0.source != "S1" }
        #expect(Set(held.map(\.source)).count == 4)
        let errors = held.map { GenerationTime.generateStep(bytes: $0.traffic, rows: $0.rows, bandwidth: 1) / $0.measured - 1 }
        let medianAbs = Self.median(errors.map(abs))
        #expect(medianAbs <= 0.12, "held-out median |error| \(medianAbs)")
        let bySource = Dictionary(grouping: zip(held, errors), by: { $0.0.source }).mapValues { Self.median($0.map(\.1)) }
        print(String(format: "generate overhead: held-out median |error| %.1f%%, median %+.1f%%; ", medianAbs * 100, Self.median(errors) * 100)
              + bySource.keys.sorted().map { String(format: "%@ %+.1f%%", $0, bySource[$0]! * 100) }.joined(separator: ", "))
        // the spread plans print: the 10th and 90th percentiles of measured ÷ predicted, held out
        let ratios = zip(held, errors).map { 1 / (1 + $0.1) }.sorted()
        func percentile(_ q: Double) -> Double {
            let x = q * Double(ratios.count - 1), i = Int(x), f = x - Double(i)
            return i + 1 < ratios.count ? ratios[i] * (1 - f) + ratios[i + 1] * f : ratios[i]
        }
        print(String(format: "generate overhead: measured ÷ predicted P10 %.4f, P90 %.4f", percentile(0.1), percentile(0.9)))
        #expect(abs(percentile(0.1) - GenerationTime.generateRatioP10) < 5e-4 && abs(percentile(0.9) - GenerationTime.generateRatioP90) < 5e-4,
                "P10 \(percentile(0.1)), P90 \(percentile(0.9))")
        // without the overhead (memory traffic alone) the runs are far faster than measured
        let bare = Self.median(held.map { abs($0.traffic / $0.measured - 1) })
        #expect(bare > 0.5, "memory traffic alone: \(bare)")
    }
}
