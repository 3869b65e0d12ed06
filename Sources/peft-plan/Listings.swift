import ArgumentParser
import PEFTPlan

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the model presets, their aliases and parameter counts.")
    @Option(help: "table|json.") var format: String = "table"

    func run() throws {
        PeftPlan.emit(try Listings.models(json: format.lowercased() == "json"))
    }
}

struct GPUs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gpus", abstract: "List the bundled hardware profiles.")
    @Option(help: "table|json.") var format: String = "table"

    func run() throws {
        PeftPlan.emit(try Listings.gpus(json: format.lowercased() == "json"))
    }
}
