import Foundation
import PEFTPlan

/// Renders the published claims checked (`peft-plan claims`).
public enum ClaimsOutput {
    static let conventions = Claims.conventions

    /// The claims as text, JSON or Markdown.
    public static func render(_ claims: [Claim], as format: OutputFormat) -> String {
        switch format {
        case .json:
            return JSONValue.object([
                ("conventions", .string(conventions)),
                ("claims", .array(claims.map { c in
                    .object([("id", .string(c.id)), ("claim", .string(c.claim)), ("source", .string(c.source)),
                             ("computed", .string(c.computed)), ("assumptions", .string(c.assumptions)),
                             ("verdict", .string(c.verdict.rawValue)), ("condition", c.condition.map(JSONValue.string) ?? .null),
                             ("figures", .object(c.figures.map { ($0.0, .double($0.1)) }))])
                })),
            ]).render() + "\n"
        case .markdown:
            var s = "| claim | peft-plan computes | verdict |\n|---|---|---|\n"
            for c in claims {
                s += "| \(c.claim) (\(c.source)) | \(c.computed) (\(c.assumptions)) | **\(c.verdict.rawValue)**\(c.phrase) |\n"
            }
            return s
        case .csv:
            func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            return "id,claim,verdict,condition,computed\n" + claims.map { [$0.id, q($0.claim), $0.verdict.rawValue, q($0.condition ?? ""), q($0.computed)].joined(separator: ",") }.joined(separator: "\n") + "\n"
        case .table:
            var s = ""
            for (i, c) in claims.enumerated() {
                s += "\(i + 1). \"\(c.claim)\" (\(c.source))\n"
                s += "   computed:    \(c.computed)\n"
                s += "   assuming:    \(c.assumptions)\n"
                s += "   verdict:     \(c.verdict.rawValue.uppercased())\(c.phrase)\n\n"
            }
            return s + conventions + "\n"
        }
    }

}
