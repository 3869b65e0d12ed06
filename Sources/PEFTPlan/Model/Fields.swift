import Foundation

/// The planner's inputs, by name. Errors, notes and advice name these and never a front
/// end's spelling: the command line renders each as its flag (`PEFTOutput`'s
/// `CommandLineNames`), a library user as it likes.
public enum PlanField: String, CaseIterable, Sendable {
    case model, gpu, gpus, method, batch, seq, gradAccum, gradCheckpointing, checkpointing, activationOffloading, precision, optimizer, loss, kernels, attention, optimizerInBackward, compileActivationFactor
    case sharding, offload, runtime
    case loraR, loraAlpha, loraDropout, loraTargets, adapterDtype, qloraRest, ia3Targets, ia3Feedforward
    case adapterReduction, prefixTokens, prefixProjection, promptTokens
    case tokens, epochs, examples, avgTokens, lengths, price, mfu, setupMinutes
    case trainer, numGenerations, maxCompletion, generation, vllmMemory, vllmGpus, beta, precomputeRef, steps
}

/// A sentence of the model's that may name planner inputs (``PlanField``) and settings of
/// them; a front end renders the names in its own vocabulary.
///
/// Written as a string literal with interpolations: `"\(field: .seq) not given"`, or
/// `"\(setting: .optimizer, "adamw-8bit")"` for an input with its value.
public struct PlanText: Equatable, Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public enum Part: Equatable, Sendable {
        case text(String)
        case field(PlanField)
        /// A field set to a value (the command line: `--optimizer adamw-8bit`).
        case setting(PlanField, String)
    }

    public private(set) var parts: [Part]

    public init(stringLiteral value: String) { parts = [.text(value)] }
    public init(stringInterpolation: StringInterpolation) { parts = stringInterpolation.parts }
    init(parts: [Part]) { self.parts = parts }

    public struct StringInterpolation: StringInterpolationProtocol {
        var parts: [Part] = []
        public init(literalCapacity: Int, interpolationCount: Int) {}
        public mutating func appendLiteral(_ literal: String) { if !literal.isEmpty { parts.append(.text(literal)) } }
        public mutating func appendInterpolation(_ value: some CustomStringConvertible) { parts.append(.text(value.description)) }
        public mutating func appendInterpolation(field: PlanField) { parts.append(.field(field)) }
        public mutating func appendInterpolation(setting field: PlanField, _ value: String) { parts.append(.setting(field, value)) }
        public mutating func appendInterpolation(_ text: PlanText) { parts += text.parts }
    }

    /// The sentence with each field and setting written by `name` and `set`.
    public func rendered(name: (PlanField) -> String, set: (PlanField, String) -> String) -> String {
        parts.map { part in
            switch part {
            case let .text(t): return t
            case let .field(f): return name(f)
            case let .setting(f, v): return set(f, v)
            }
        }.joined()
    }

    /// Fields as their names in backquotes (`seq`), settings as `name=value`.
    public var description: String { rendered(name: { "`\($0.rawValue)`" }, set: { "`\($0.rawValue)=\($1)`" }) }

    public static func + (a: PlanText, b: PlanText) -> PlanText { PlanText(parts: a.parts + b.parts) }
    public static func += (a: inout PlanText, b: PlanText) { a = a + b }
}
