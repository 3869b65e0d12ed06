import Foundation
import PEFTHub
import PEFTPlan

/// What `--model` names: a preset, a config.json (or a folder holding one), or a Hugging Face
/// Hub id `ORG/NAME[@REVISION]`, tried in that order.
enum ModelResolver {
    /// The architecture, and for a Hub id a note saying where its config came from.
    static func resolve(_ model: String, environment: HubEnvironment = HubEnvironment()) throws -> (Architecture, PlanText?) {
        if let a = try Presets.architecture(named: model) { return (a, nil) }
        if FileManager.default.fileExists(atPath: model) { return (try ConfigReader.read(path: model), nil) }
        if !model.lowercased().hasSuffix(".json"), let id = HubModel(model) {
            let (arch, source) = try HubReader.read(id, environment: environment)
            return (arch, note(id, source))
        }
        return (try Presets.resolve(model), nil)   // the unknown-model error, with a suggestion
    }

    static func note(_ id: HubModel, _ s: HubSource) -> PlanText {
        let at = id.revision == "main" ? "" : "@\(id.revision)"
        let commit = s.commit.map { " (commit \($0.prefix(12)))" } ?? ""
        let text: String
        switch s.origin {
        case .huggingFaceCache:
            text = "model \(id.id)\(at): config.json from Hugging Face's local cache\(commit), \(s.location)"
        case .peftPlanCache:
            text = "model \(id.id)\(at): config.json fetched earlier from the Hub, kept in \(s.location)"
        case let .fetched(saved):
            text = "model \(id.id)\(at): config.json fetched from \(s.location)\(commit)" + (saved.map { ", kept in \($0)" } ?? " (it could not be kept)")
        }
        return PlanText(stringLiteral: text)
    }
}
