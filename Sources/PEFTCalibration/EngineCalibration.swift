import Foundation
import PEFTEngine
import PEFTPlan

/// One burst of the engine calibration matrix: a method with its options, a shape, and
/// checkpointing on or off (PEFTCalibration/README.md).
public struct EngineBurst: Sendable, Equatable {
    public var method: EngineMethod
    /// A short label of the method and its options ("lora r8", "adapter houlsby/16", …).
    public var label: String
    public var batch: Int
    public var seq: Int
    public var checkpointing: Bool

    public var name: String { "\(label), \(batch) × \(seq)\(checkpointing ? ", checkpointing" : "")" }
}

/// The memory components compared per burst: the engine ledger's categories and the peak.
public let engineComponents: [String] = MemoryCategory.allCases.map(\.rawValue) + ["allocated_peak"]

/// A burst's measured and predicted bytes side by side.
public struct EngineComparison: Sendable {
    public var burst: EngineBurst
    public var record: BurstRecord
    public var predicted: [String: Int]
    public var measured: [String: Int]
    public var predictedPeakPhase: String
    public var measuredPeakPhase: String

    /// The component's ``relativeError(predicted:measured:)`` (a missing side counts 0).
    public func error(_ component: String) -> Double? {
        relativeError(predicted: predicted[component] ?? 0, measured: measured[component] ?? 0)
    }

    /// Whether every component is predicted to the byte and the peak phase agrees.
    public var exact: Bool { engineComponents.allSatisfy { predicted[$0] == measured[$0] } && predictedPeakPhase == measuredPeakPhase }
}

public enum EngineCalibration {
    /// The matrix: every method (LoRA and QLoRA r8 on wq, wv; Pfeiffer and Houlsby adapters,
    /// reduction 16; prefix tuning with 20 tokens, with and without a 128-wide MLP; prompt
    /// tuning with 20 tokens; IA³ on PEFT's Llama default) × micro-batch × sequence length ×
    /// checkpointing off and on. `quick` keeps one shape.
    public static func matrix(config c: EngineConfig, quick: Bool) -> [EngineBurst] {
        let methods: [(EngineMethod, String)] = [
            (.full, "full"),
            (.lora(rank: 8, alpha: 16, targets: [.wq, .wv]), "lora r8"),
            (.qlora(rank: 8, alpha: 16, targets: [.wq, .wv], doubleQuant: true), "qlora r8 nf4-dq"),
            (.adapter(houlsby: false, reduction: 16), "adapter pfeiffer/16"),
            (.adapter(houlsby: true, reduction: 16), "adapter houlsby/16"),
            (.prefix(tokens: 20), "prefix 20"),
            (.prefix(tokens: 20, projection: 128), "prefix 20 mlp128"),
            (.prompt(tokens: 20), "prompt 20"),
            (.ia3Default, "ia3"),
        ]
        let shapes = quick ? [(2, 32)] : [(1, 64), (1, 128), (4, 64), (4, 128)]
        var bursts: [EngineBurst] = []
        for (m, label) in methods where c.dim % 16 == 0 || !label.hasPrefix("adapter") {
            for (b, s) in shapes {
                for ckpt in [false, true] { bursts.append(EngineBurst(method: m, label: label, batch: b, seq: s, checkpointing: ckpt)) }
            }
        }
        return bursts
    }

    /// What the engine-cpu model predicts for a burst.
    public static func predict(_ burst: EngineBurst, config c: EngineConfig, workers: Int) -> EngineMemoryModel.Prediction {
        EngineMemoryModel.predict(c, method: burst.method, batch: burst.batch, seq: burst.seq,
                                         checkpointing: burst.checkpointing, workers: workers)
    }

    /// Runs one burst on the engine (one warm-up step, then `steps` measured ones, AdamW)
    /// and sets the model's prediction beside the ledger's measurement.
    public static func run(_ burst: EngineBurst, config c: EngineConfig, steps: Int) -> EngineComparison {
        let result = EngineBench.run(config: c, method: burst.method, batch: burst.batch, seq: burst.seq, steps: steps,
                                     checkpointing: burst.checkpointing)
        return compare(burst, record: BurstRecord(result), config: c)
    }

    /// Sets the model's prediction beside a burst's record (a fresh one, or one read back
    /// from a progress file).
    public static func compare(_ burst: EngineBurst, record: BurstRecord, config c: EngineConfig) -> EngineComparison {
        let p = predict(burst, config: c, workers: record.environment.engineThreads)
        var predicted: [String: Int] = [:]
        for (k, v) in p.peak { predicted[k.rawValue] = v }
        predicted["allocated_peak"] = p.allocatedPeak
        return EngineComparison(burst: burst, record: record, predicted: predicted, measured: record.measured,
                                predictedPeakPhase: p.peakPhase.rawValue, measuredPeakPhase: record.peakPhase)
    }
}
