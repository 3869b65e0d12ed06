import Foundation
import PEFTPlan

/// A JSON value of any shape, for the config.json a job carries inline and the free-form
/// environment a results file reports.
public enum JSONTree: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONTree])
    case object([String: JSONTree])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONTree].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONTree].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(b): try c.encode(b)
        case let .int(i): try c.encode(i)
        case let .double(d): try c.encode(d)
        case let .string(s): try c.encode(s)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        }
    }

    /// The value as text (a string as itself, null as nil), for an environment line.
    public var text: String? {
        switch self {
        case .null: return nil
        case let .bool(b): return "\(b)"
        case let .int(i): return "\(i)"
        case let .double(d): return "\(d)"
        case let .string(s): return s
        case .array, .object: return String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self)
        }
    }
}

/// One burst of a `torch_bursts.py` job: what to train and how, under the keys the script
/// reads (job.json is snake_case: `grad_checkpointing`, `config_path`, `double_quant`). A
/// job's `defaults` is the same type; ``over(_:)`` fills a burst in from it.
public struct TorchBurst: Codable, Sendable, Equatable {
    public var id: String?
    public var method: String?
    public var batch: Int?
    public var seq: Int?
    public var gradCheckpointing: Bool?
    /// LoRA rank and alpha; `targets` "all-linear" or absent (PEFT's default).
    public var r: Int?
    public var alpha: Int?
    public var targets: String?
    /// Prefix, prompt tuning: virtual tokens; prefix: the reparameterisation MLP's width.
    public var tokens: Int?
    public var projection: Int?
    /// "bf16" (default), "fp16" or "fp32"; the Trainer's autocast; the attention kernel.
    public var dtype: String?
    public var autocast: Bool?
    public var attention: String?
    public var quant: String?
    public var doubleQuant: Bool?
    public var warmup: Int?
    public var steps: Int?
    /// The model: a config.json inline, or the path of one (a bundled preset's file name).
    public var config: JSONTree?
    public var configPath: String?

    public init(id: String? = nil, method: String? = nil) {
        self.id = id
        self.method = method
    }

    /// This burst with every field it leaves out taken from `defaults`.
    public func over(_ defaults: TorchBurst) -> TorchBurst {
        var b = self
        b.id = id ?? defaults.id
        b.method = method ?? defaults.method
        b.batch = batch ?? defaults.batch
        b.seq = seq ?? defaults.seq
        b.gradCheckpointing = gradCheckpointing ?? defaults.gradCheckpointing
        b.r = r ?? defaults.r
        b.alpha = alpha ?? defaults.alpha
        b.targets = targets ?? defaults.targets
        b.tokens = tokens ?? defaults.tokens
        b.projection = projection ?? defaults.projection
        b.dtype = dtype ?? defaults.dtype
        b.autocast = autocast ?? defaults.autocast
        b.attention = attention ?? defaults.attention
        b.quant = quant ?? defaults.quant
        b.doubleQuant = doubleQuant ?? defaults.doubleQuant
        b.warmup = warmup ?? defaults.warmup
        b.steps = steps ?? defaults.steps
        b.config = config ?? defaults.config
        b.configPath = configPath ?? defaults.configPath
        return b
    }
}

/// A job for `torch_bursts.py` (job.json).
public struct TorchJob: Codable, Sendable, Equatable {
    /// "cuda", "cpu" or "meta".
    public var device: String?
    public var model: String?
    public var defaults: TorchBurst
    public var bursts: [TorchBurst]

    public init(device: String?, model: String?, defaults: TorchBurst, bursts: [TorchBurst]) {
        self.device = device
        self.model = model
        self.defaults = defaults
        self.bursts = bursts
    }

    /// A job without `defaults` has none (every burst says everything).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decodeIfPresent(String.self, forKey: .device)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        defaults = try c.decodeIfPresent(TorchBurst.self, forKey: .defaults) ?? TorchBurst()
        bursts = try c.decode([TorchBurst].self, forKey: .bursts)
    }

    /// Each burst filled in from the defaults, by id (bursts without one are left out).
    public var resolved: [String: TorchBurst] {
        var out: [String: TorchBurst] = [:]
        for b in bursts { if let id = b.id { out[id] = b.over(defaults) } }
        return out
    }
}

/// One burst's record in a results file: the measured bytes (the plan's component names),
/// the step time, or why it did not run.
public struct TorchMeasurement: Codable, Sendable, Equatable {
    public var id: String
    public var error: String?
    public var oom: Bool?
    public var frozenWeights: Int?
    public var trainableWeights: Int?
    public var gradients: Int?
    public var optimizerStates: Int?
    /// What autograd saved (activations and logits together).
    public var activations: Int?
    public var allocatedPeak: Int?
    public var reservedPeak: Int?
    public var outsideAllocator: Int?
    public var peakPhase: String?
    public var stepMs: Double?
    public var tokensPerSecond: Double?

    public init(id: String) { self.id = id }

    /// The measured bytes of a component the bursts measure; nil for the others.
    public subscript(_ c: MemoryComponent) -> Int? {
        switch c {
        case .frozenWeights: return frozenWeights
        case .trainableWeights: return trainableWeights
        case .gradients: return gradients
        case .optimizerStates: return optimizerStates
        case .activations: return activations
        case .allocatedPeak: return allocatedPeak
        case .reservedPeak: return reservedPeak
        default: return nil
        }
    }

    /// Whether the burst ran to the end (no error, no out-of-memory).
    public var ran: Bool { error == nil && oom != true }
    /// The measured step time in seconds, when it is a usable one.
    public var stepSeconds: Double? { stepMs.flatMap { $0.isFinite && $0 > 0 ? $0 / 1000 : nil } }
}

/// A results file as `torch_bursts.py` writes it.
public struct TorchResults: Codable, Sendable, Equatable {
    public var environment: [String: JSONTree]?
    public var bursts: [TorchMeasurement]

    public init(environment: [String: JSONTree]?, bursts: [TorchMeasurement]) {
        self.environment = environment
        self.bursts = bursts
    }

    /// The environment's values as text (nulls left out).
    public var environmentText: [String: String] {
        var out: [String: String] = [:]
        for (k, v) in environment ?? [:] { if let t = v.text { out[k] = t } }
        return out
    }
}

extension TorchCalibration {
    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    /// Decodes a job or results file's bytes; `option` and `path` name it in errors.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, option: String, path: String) throws -> T {
        guard let value = try? decoder.decode(T.self, from: data) else {
            throw PlanError.invalidOption(option: option, value: path, accepted: "a JSON object as torch_bursts.py \(T.self == TorchJob.self ? "reads" : "writes") it")
        }
        return value
    }

    /// Reads a job or results file.
    public static func load<T: Decodable>(_ type: T.Type, path: String, option: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlanError.invalidOption(option: option, value: path, accepted: "a readable JSON file")
        }
        return try decode(type, from: data, option: option, path: path)
    }

    /// The bytes of a job as the script reads it.
    public static func encoded(_ job: TorchJob) throws -> Data { try encoder.encode(job) }
}
