import Foundation
import PEFTPlan

/// Fits a runtime's free coefficients to measured PyTorch bursts (PEFTCalibration/README.md): the
/// allocator's reserved/allocated factor (least squares through the origin), the memory
/// outside the allocator (median), a per-method scale of the saved activations and logits
/// and the MFU (each minimising the squared relative error of the predicted allocated peak,
/// or step time, by golden-section search on the real model). Every other burst is held out and the error on those
/// is reported beside the base profile's.
public enum RuntimeFit {
    /// A like-for-like CUDA burst: its job entry (defaults filled in) and its measurement,
    /// with both peaks measured.
    public struct Burst: Sendable {
        public var id: String
        public var config: TorchBurst
        public var measured: TorchMeasurement
        public var allocatedPeak: Int
        public var reservedPeak: Int
    }

    public struct Row: Sendable {
        public var id: String
        public var heldOut: Bool
        public var peakErrorBase: Double, peakError: Double
        public var stepErrorBase: Double?, stepError: Double?
    }

    public struct Result: Sendable {
        public var profile: CalibrationProfile
        public var base: RuntimeProfile
        public var rows: [Row]
        /// Methods whose activation scale ran to the search's bound (left at 1).
        public var unfittedScales: [String] = []
    }

    /// The like-for-like CUDA bursts of a results file and its job.
    public static func bursts(results: TorchResults, job: TorchJob) -> [Burst] {
        let configs = job.resolved
        return results.bursts.compactMap { r in
            guard r.ran, let c = configs[r.id], TorchCalibration.likeForLike(c),
                  let allocated = r.allocatedPeak, let reserved = r.reservedPeak, allocated > 0, reserved > 0 else { return nil }
            return Burst(id: r.id, config: c, measured: r, allocatedPeak: allocated, reservedPeak: reserved)
        }.sorted { $0.id < $1.id }
    }

    /// The relative error of a prediction against a measurement that is positive.
    static func error(_ predicted: Double, _ measured: Double) -> Double {
        relativeError(predicted: predicted, measured: measured) ?? .infinity
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    static func predictedPeak(_ b: Burst, _ rt: RuntimeProfile) throws -> (peak: Double, saved: Double) {
        let ctx = try TorchCalibration.context(b.config, runtime: rt)
        let m = ctx.memory(batch: ctx.training.batch, seq: ctx.training.seq)
        return (Double(m.allocatedPeak), Double(m.activations + m.logits))
    }

    static func predictedStep(_ b: Burst, _ rt: RuntimeProfile, gpu: GPUProfile) throws -> Double {
        let ctx = try TorchCalibration.context(b.config, runtime: rt)
        return TimeModel.estimate(ctx, gpu: gpu, dataset: Dataset(), budget: BudgetOptions()).stepSeconds
    }

    /// Fits on the even-numbered bursts (in id order) and holds out the odd ones (all are
    /// fitted when there are fewer than four). `gpu`: the profile the time model uses for the
    /// MFU fit (none: MFU is not fitted).
    public static func fit(_ all: [Burst], base: RuntimeProfile, environment: [String: String], gpu: GPUProfile?, name: String) throws -> Result {
        guard !all.isEmpty else {
            throw PlanError.invalidOption(option: "--fit", value: name, accepted: "results with at least one like-for-like CUDA burst (allocated and reserved peaks measured)")
        }
        let holdOut = all.count >= 4
        let fitSet = all.enumerated().filter { !holdOut || $0.offset % 2 == 0 }.map(\.element)
        let heldSet = holdOut ? all.enumerated().filter { $0.offset % 2 == 1 }.map(\.element) : []

        var rt = base
        var unfitted: [String] = []
        // reserved ≈ f · allocated, least squares through the origin
        let pairs = fitSet.map { (Double($0.allocatedPeak), Double($0.reservedPeak)) }
        let f = pairs.reduce(0) { $0 + $1.0 * $1.1 } / max(1, pairs.reduce(0) { $0 + $1.0 * $1.0 })
        rt.reservedOverAllocated = max(1, f)
        let outside = fitSet.compactMap(\.measured.outsideAllocator).map(Double.init)
        if !outside.isEmpty { rt.outsideAllocatorBytes = max(0, Int(median(outside))) }

        /// The minimum of `loss` on [lo, hi] by golden-section search (the losses here are
        /// sums of squared relative errors, smooth and single-dipped in their coefficient).
        func minimise(_ lo0: Double, _ hi0: Double, _ loss: (Double) throws -> Double) rethrows -> Double {
            var lo = lo0, hi = hi0
            let g = (5.0.squareRoot() - 1) / 2
            for _ in 0..<60 {
                let a = hi - g * (hi - lo), b = lo + g * (hi - lo)
                if try loss(a) < loss(b) { hi = b } else { lo = a }
            }
            return (lo + hi) / 2
        }

        // per method, the scale of the saved activations and logits that minimises the
        // squared relative error of the predicted allocated peak (the real model evaluated:
        // the scale reaches only the phases where saved tensors are alive)
        // Scales are searched in [0.5, 2]; one that ends at a bound is not an activation term
        // (the error lies elsewhere, as full fine-tuning's optimizer-phase excess does): it is
        // left at 1 and named in `unfitted`.
        var scales: [String: Double] = [:]
        for method in Set(fitSet.compactMap(\.config.method)).sorted() {
            let group = fitSet.filter { $0.config.method == method }
            let k = try minimise(0.5, 2.0) { k in
                var r = rt
                r.activationScale[method] = k
                return try group.reduce(0) { acc, b in
                    let e = error(try predictedPeak(b, r).peak, Double(b.allocatedPeak))
                    return acc + e * e
                }
            }
            if k < 0.505 || k > 1.99 {
                unfitted.append(method)
                rt.activationScale[method] = nil
                continue
            }
            scales[method] = k
            rt.activationScale[method] = k
        }

        // MFU: minimise Σ (predicted / measured − 1)² over the fit set
        var mfu: Double?
        let timed = fitSet.filter { $0.measured.stepSeconds != nil }
        if let gpu, !timed.isEmpty {
            func loss(_ m: Double) throws -> Double {
                var r = rt
                r.mfu = m
                return try timed.reduce(0) { acc, b in
                    let e = error(try predictedStep(b, r, gpu: gpu), b.measured.stepSeconds!)
                    return acc + e * e
                }
            }
            mfu = try minimise(0.02, 1.0, loss)
            rt.mfu = mfu!
        }

        var rows: [Row] = []
        for b in all {
            let held = heldSet.contains { $0.id == b.id }
            let m = Double(b.allocatedPeak)
            var row = Row(id: b.id, heldOut: held, peakErrorBase: error(try predictedPeak(b, base).peak, m), peakError: error(try predictedPeak(b, rt).peak, m))
            if let gpu, let seconds = b.measured.stepSeconds {
                row.stepErrorBase = error(try predictedStep(b, base, gpu: gpu), seconds)
                row.stepError = error(try predictedStep(b, rt, gpu: gpu), seconds)
            }
            rows.append(row)
        }
        func worst(_ rs: [Row], _ key: (Row) -> Double?) -> Double? {
            let v = rs.compactMap(key).map(abs)
            return v.max()
        }
        let held = rows.filter(\.heldOut)
        let fitRows = rows.filter { !$0.heldOut }
        let profile = CalibrationProfile(
            name: name, base: base.name, environment: environment,
            coefficients: .init(reservedOverAllocated: rt.reservedOverAllocated, outsideAllocatorBytes: rt.outsideAllocatorBytes, mfu: mfu,
                                activationScale: scales),
            fit: .init(fittedOn: fitSet.map(\.id), heldOut: heldSet.map(\.id), fitPeakError: worst(fitRows) { $0.peakError } ?? 0,
                       holdoutPeakError: worst(held) { $0.peakError }, holdoutPeakErrorBase: worst(held) { $0.peakErrorBase },
                       holdoutStepError: worst(held) { $0.stepError }, holdoutStepErrorBase: worst(held) { $0.stepErrorBase }))
        return Result(profile: profile, base: base, rows: rows, unfittedScales: unfitted)
    }
}
