import Foundation
import PEFTPlan

/// How the command line spells the planner's inputs: each ``PlanField`` is the option of
/// the same name in kebab case (`gradAccum` → `--grad-accum`), as the argument parser names
/// the properties of `PlanningOptions`; a setting is the option and its value.
public enum CommandLineNames {
    public static func flag(_ field: PlanField) -> String {
        var out = "--"
        for ch in field.rawValue {
            if ch.isUppercase { out += "-" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    public static func setting(_ field: PlanField, _ value: String) -> String { "\(flag(field)) \(value)" }

    /// A model sentence as the command line prints it.
    public static func text(_ t: PlanText) -> String { t.rendered(name: flag, set: setting) }

    /// An error as the command line prints it (one line on stderr).
    public static func message(_ e: PlanError) -> String { e.message(name: flag, set: setting) }
}

extension PlanText {
    /// The sentence with the command line's flags.
    public var forCommandLine: String { CommandLineNames.text(self) }
}
