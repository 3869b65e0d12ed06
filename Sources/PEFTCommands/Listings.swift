import ArgumentParser
import PEFTOutput
import PEFTPlan

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the model presets, their aliases and parameter counts.")
    @Option(help: "table|json") var format: String = "table"

    func run() throws {
        PeftPlan.emit(try Listings.models(json: try listingJSON(format)))
    }
}

struct GPUs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gpus", abstract: "List the bundled hardware profiles.")
    @Option(help: "table|json") var format: String = "table"

    func run() throws {
        PeftPlan.emit(try Listings.gpus(json: try listingJSON(format)))
    }
}

struct Prices: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prices", abstract: "List the dated GPU price catalogue: providers, billing and offers.")
    @Option(help: "table|json") var format: String = "table"
    @Option(parsing: .unconditional, help: "A price catalogue of your own to check and list instead.") var priceFile: String?

    func run() throws {
        PeftPlan.emit(try Listings.prices(json: try listingJSON(format), file: priceFile))
    }
}

/// Listings print a table or JSON; anything else is refused.
func listingJSON(_ format: String) throws -> Bool {
    switch format.lowercased() {
    case "table": return false
    case "json": return true
    default: throw PlanError.invalidOption(option: "--format", value: format, accepted: "table or json")
    }
}
