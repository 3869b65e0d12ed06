import Foundation
import PEFTPlan

/// Fits the time model's coefficients (``TimeCoefficients``) to measured training throughput
/// and measures how well the fit carries to runs it has not seen (docs/time-model.md).
///
/// The fit is a maximum a-posteriori estimate: it minimises the squared log ratio of predicted
/// to measured tokens/s over the runs, plus, for each coefficient, the squared log distance
/// from its prior in units of the prior's width. A coefficient the runs say nothing about (no
/// run compiled, no run over PCIe) stays at its prior instead of drifting, which is what makes
/// the leave-one-source-out check meaningful: a source's GPUs or stack absent from the other
/// sources are predicted from the priors, as a user's new GPU would be.
public enum TimeFit {
    /// One measured run: the plan's work, the GPU it ran on and what it reached.
    public struct Sample: Sendable {
        public var id: String
        public var source: String
        public var work: StepWork
        public var gpu: GPUProfile
        public var precision: Precision
        public var compile: Bool
        public var tokensPerSecond: Double
        public var method: String
        public init(id: String, source: String, work: StepWork, gpu: GPUProfile, precision: Precision, compile: Bool, tokensPerSecond: Double, method: String) {
            (self.id, self.source, self.work, self.gpu, self.precision, self.compile, self.tokensPerSecond, self.method) =
                (id, source, work, gpu, precision, compile, tokensPerSecond, method)
        }
    }

    /// A fitted coefficient: where it sits in ``TimeCoefficients``, its prior and the prior's
    /// width (a standard deviation of its natural logarithm), and its upper bound.
    public struct Parameter: Sendable {
        public var name: String
        public nonisolated(unsafe) var path: WritableKeyPath<TimeCoefficients, Double>
        public var prior: Double
        public var width: Double
        public var upper: Double
    }

    /// The fitted coefficients, their priors and why (docs/time-model.md has the sources).
    public static let parameters: [Parameter] = [
        // "Usually when one scores around 50% MFU it's considered a win" (stas00/ml-engineering,
        // compute/accelerator/README.md @744d01e1): 50% of the H100's peak is 62% of its
        // measured achievable matmul rate (794.5 of 989.5 TFLOPS).
        Parameter(name: "matmul_efficiency", path: \.matmulEfficiency, prior: 0.62, width: 0.3, upper: 1),
        // forward writes the saved tensors, backward reads them and writes their gradients
        Parameter(name: "activation_traffic", path: \.activationTraffic, prior: 3, width: 0.7, upper: 50),
        Parameter(name: "adapter_traffic", path: \.adapterTraffic, prior: 1, width: 0.5, upper: 10),
        // a dequantising kernel moves ½ + 2 bytes per weight at ~80% of the bandwidth
        Parameter(name: "dequant_bytes_per_weight", path: \.dequantBytesPerWeight, prior: 3, width: 0.7, upper: 50),
        Parameter(name: "quantised_call_seconds", path: \.quantisedCallSeconds, prior: 2.5e-4, width: 0.7, upper: 0.01),
        // ten to twenty kernel launches of 5–10 µs per block and pass
        Parameter(name: "block_pass_seconds", path: \.blockPassSeconds, prior: 1e-4, width: 1, upper: 0.01),
        Parameter(name: "step_fixed_seconds", path: \.stepFixedSeconds, prior: 0.05, width: 1, upper: 5),
        // NCCL reaches about 80% of a link's bandwidth; PCIe without peer-to-peer far less
        Parameter(name: "nvlink_efficiency", path: \.nvlinkEfficiency, prior: 0.8, width: 0.2, upper: 1),
        Parameter(name: "pcie_efficiency", path: \.pcieEfficiency, prior: 0.5, width: 0.5, upper: 1),
        Parameter(name: "communication_overlap", path: \.communicationOverlap, prior: 0.8, width: 0.3, upper: 1),
        // "43% faster in training on an NVIDIA A100" (PyTorch 2.0 announcement, pytorch.org,
        // December 2022): 1 / 1.43
        Parameter(name: "compile_factor", path: \.compileFactor, prior: 0.70, width: 0.2, upper: 1.5),
    ]

    /// Predicted tokens/s of `s` under `c`.
    public static func predicted(_ s: Sample, _ c: TimeCoefficients, runtime: RuntimeProfile = .hfCUDA) -> Double {
        let t = c.seconds(s.work, gpu: s.gpu, precision: s.precision, matmulEfficiency: c.matmulEfficiency(s.gpu), compile: s.compile, runtime: runtime)
        return s.work.tokensPerStep / t.step
    }

    /// The coefficients that fit `samples` best, starting from (and drawn towards) the priors.
    public static func fit(_ samples: [Sample], base: TimeCoefficients = .unfitted) -> TimeCoefficients {
        var c = base
        for p in parameters { c[keyPath: p.path] = p.prior }
        let start = parameters.map { log($0.prior) }
        func coefficients(_ z: [Double]) -> TimeCoefficients {
            var k = c
            for (p, v) in zip(parameters, z) { k[keyPath: p.path] = exp(v) }
            return k
        }
        func loss(_ z: [Double]) -> Double {
            var total = 0.0
            for (p, v) in zip(parameters, z) {
                if exp(v) > p.upper { return .infinity }
                let d = (v - log(p.prior)) / p.width
                total += d * d
            }
            let k = coefficients(z)
            for s in samples {
                let r = log(predicted(s, k) / s.tokensPerSecond)
                guard r.isFinite else { return .infinity }
                total += r * r
            }
            return total
        }
        var z = start
        for _ in 0..<4 { z = nelderMead(loss, from: z, iterations: 3000) }
        return coefficients(z)
    }

    /// Nelder–Mead simplex descent (standard reflection 1, expansion 2, contraction and
    /// shrink ½) from `x0`, with a first simplex of steps of 0.3 in each coordinate.
    static func nelderMead(_ f: ([Double]) -> Double, from x0: [Double], iterations: Int) -> [Double] {
        let n = x0.count
        var points = [x0] + (0..<n).map { i in var y = x0; y[i] += 0.3; return y }
        var values = points.map(f)
        for _ in 0..<iterations {
            let order = values.indices.sorted { values[$0] < values[$1] }
            points = order.map { points[$0] }
            values = order.map { values[$0] }
            let centroid = (0..<n).map { j in points.dropLast().reduce(0) { $0 + $1[j] } / Double(n) }
            func toward(_ t: Double) -> [Double] { (0..<n).map { centroid[$0] + t * (points[n][$0] - centroid[$0]) } }
            let reflected = toward(-1), fr = f(reflected)
            if fr < values[0] {
                let expanded = toward(-2), fe = f(expanded)
                (points[n], values[n]) = fe < fr ? (expanded, fe) : (reflected, fr)
            } else if fr < values[n - 1] {
                (points[n], values[n]) = (reflected, fr)
            } else {
                let contracted = toward(0.5), fc = f(contracted)
                if fc < values[n] {
                    (points[n], values[n]) = (contracted, fc)
                } else {
                    for i in 1...n {
                        points[i] = (0..<n).map { points[0][$0] + 0.5 * (points[i][$0] - points[0][$0]) }
                        values[i] = f(points[i])
                    }
                }
            }
        }
        return points[values.indices.min { values[$0] < values[$1] }!]
    }

    /// Each source held out in turn: fitted on the other sources, the held-out runs' signed
    /// error of predicted over measured tokens/s.
    public static func leaveOneSourceOut(_ samples: [Sample]) -> [(sample: Sample, error: Double)] {
        var out: [(Sample, Double)] = []
        for source in Set(samples.map(\.source)).sorted() {
            let k = fit(samples.filter { $0.source != source })
            for s in samples where s.source == source { out.append((s, predicted(s, k) / s.tokensPerSecond - 1)) }
        }
        return out
    }

    /// The `q` quantile (0…1) of `values`, linearly interpolated between order statistics.
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        let x = q * Double(s.count - 1)
        let i = Int(x.rounded(.down)), j = min(i + 1, s.count - 1)
        return s[i] + (x - Double(i)) * (s[j] - s[i])
    }
}
