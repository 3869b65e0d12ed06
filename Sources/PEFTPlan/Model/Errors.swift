import Foundation

/// Everything that can go wrong while planning, as a closed set.
///
/// Each case's `description` is one sentence a user can act on: it names the value that
/// was refused and what is accepted, with a suggestion where one is close. The executable
/// prints it on one line of stderr and exits non-zero; tests match cases exactly.
public enum PlanError: Error, Equatable, CustomStringConvertible, Sendable {
    /// `--model` named no preset and no readable file; `suggestion` is the closest preset name.
    case unknownModel(String, suggestion: String?)
    /// A config.json could not be read from disk.
    case unreadableConfig(path: String, reason: String)
    /// A config.json is not a JSON object or is truncated.
    case malformedConfig(path: String, reason: String)
    /// A Hub id whose config.json could not be had from the caches or the Hub; `reason` says
    /// what to do (accept a licence, set a token, check the id, go online).
    case hub(model: String, reason: String)
    /// A config.json names a `model_type` peft-plan does not model.
    case unsupportedModelType(String, supported: [String])
    /// A required dimension is missing, zero, negative, wrongly typed or absurdly large.
    case invalidDimension(field: String, value: String, reason: String)
    /// A front end's own option (a file to write, an output format) has a value it refuses;
    /// the model itself uses ``invalidSetting(_:value:accepted:)``.
    case invalidOption(option: String, value: String, accepted: String)
    /// A front end's options that cannot be used together; the model uses ``conflict(_:)``.
    case contradictoryOptions(String)
    /// A planner input is outside what makes sense.
    case invalidSetting(PlanField, value: String, accepted: PlanText)
    /// Planner inputs that cannot be used together.
    case conflict(PlanText)
    /// `--gpu` matched no profile.
    case unknownGPU(String, suggestion: String?)
    /// `--gpu` matched several profiles by name.
    case ambiguousGPU(String, candidates: [String])
    /// A hardware profile file is unreadable or wrong.
    case invalidHardwareProfile(path: String, reason: String)
    /// PEFT would refuse this target list (no match, or a module type it cannot wrap).
    case invalidTargets(method: String, reason: PlanText)
    /// The planner was asked for a quantity it cannot represent (overflow).
    case overflow(String)
    /// The family's block recipe needs a module the architecture does not have: a reader
    /// and its recipe disagree (a bug in peft-plan, never a cost of zero).
    case incompleteArchitecture(model: String, role: ModuleRole)

    /// The message with planner inputs written as `name` and `set` write them (the command
    /// line: its flags).
    public func message(name: (PlanField) -> String, set: (PlanField, String) -> String) -> String {
        text.rendered(name: name, set: set)
    }

    /// The message as a sentence that names planner inputs by field.
    public var text: PlanText {
        switch self {
        case let .invalidSetting(field, value, accepted): return "invalid value '\(value)' for \(field: field): \(accepted)"
        case let .conflict(text): return text
        case let .invalidTargets(method, reason): return "\(method): \(reason)"
        default: return PlanText(stringLiteral: description)
        }
    }

    public var description: String {
        switch self {
        case .invalidSetting, .conflict, .invalidTargets:
            return text.description
        case let .unknownModel(name, suggestion):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "unknown model '\(name)': not a preset (see `peft-plan models`) nor a config.json file or folder\(hint)"
        case let .unreadableConfig(path, reason):
            return "cannot read config '\(path)': \(reason)"
        case let .malformedConfig(path, reason):
            return "malformed config '\(path)': \(reason)"
        case let .hub(model, reason):
            return "cannot read '\(model)' from the Hugging Face Hub: \(reason)"
        case let .unsupportedModelType(type, supported):
            return "unsupported model_type '\(type)'; supported: \(supported.joined(separator: ", "))"
        case let .invalidDimension(field, value, reason):
            return "invalid '\(field)' = \(value) in the model config: \(reason)"
        case let .invalidOption(option, value, accepted):
            return "invalid value '\(value)' for \(option): \(accepted)"
        case let .contradictoryOptions(text):
            return text
        case let .unknownGPU(name, suggestion):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "unknown GPU '\(name)': no hardware profile matches (see `peft-plan gpus`; or give NNGB or a JSON file)\(hint)"
        case let .ambiguousGPU(name, candidates):
            return "GPU '\(name)' is ambiguous: it matches \(candidates.joined(separator: ", ")); name one"
        case let .invalidHardwareProfile(path, reason):
            return "invalid hardware profile '\(path)': \(reason)"
        case let .overflow(what):
            return "\(what) is too large to compute"
        case let .incompleteArchitecture(model, role):
            return "cannot plan '\(model)': its block needs a module with the role '\(role.rawValue)', which the architecture lacks (a peft-plan bug: please report it with the config)"
        }
    }
}

/// Closest candidate by edit distance, if it is close enough to be a useful suggestion.
func closest(to word: String, among candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    var best: (String, Int)?
    for c in candidates {
        let d = levenshtein(w, Array(c.lowercased()))
        if best == nil || d < best!.1 { best = (c, d) }
    }
    guard let (name, distance) = best, distance <= max(2, w.count / 3) else { return nil }
    return name
}

func levenshtein(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
