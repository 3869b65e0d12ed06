import ArgumentParser
import Foundation
import PEFTOutput
import PEFTPlan
import PEFTReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The plan as a document for a budget review: a PDF with every chart, the numbers behind them, the published claims checked, the assumptions and the hardware sources; or one chart as SVG or PNG.",
        discussion: """
            Takes every planning option of `plan`. PDF pages: the question and the recommendation; \
            memory per method with the numbers; the fit matrix (GPU × method, coloured by headroom) \
            with the longest sequences; memory against sequence length and micro-batch; time and \
            cost per GPU; time and cost against the number of GPUs (sharded plans); the published \
            claims (`peft-plan claims`); assumptions and hardware sources.

            SVG and PNG hold one chart: --chart \(ChartName.allCases.map(\.rawValue).joined(separator: "|")) \
            (default summary). Output is byte-reproducible (pinned PDF creation date) and written \
            whole or not at all.
            """)

    @OptionGroup var options: PlanningOptions
    @Option(help: "Output file: .pdf (every page), .svg or .png (one chart).") var out: String
    @Option(help: "With .svg or .png: \(ChartName.allCases.map { "\($0.rawValue) (\($0.description))" }.joined(separator: ", ")).") var chart: String?

    func run() throws {
        guard let format = CanvasFormat(path: out) else {
            throw PlanError.invalidOption(option: "--out", value: out, accepted: "a file ending in .pdf, .svg or .png")
        }
        var name: ChartName?
        if let chart {
            guard let c = ChartName(rawValue: chart.lowercased()) else {
                throw PlanError.invalidOption(option: "--chart", value: chart, accepted: "one of " + ChartName.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if format == .pdf { throw PlanError.contradictoryOptions("--chart picks one chart for an .svg or .png file; a PDF holds every chart") }
            name = c
        }
        let result = try Planner.plan(try options.request())
        try Report.write(result, to: out, chart: name, claims: format == .pdf ? try Claims.check() : [])
        FileHandle.standardError.write(Data("wrote \(out)\n".utf8))
    }
}

struct ClaimsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claims",
        abstract: "Common published claims about fine-tuning memory and parameters, each beside what peft-plan computes, under which assumptions, with a verdict: holds, holds only if …, does not hold.",
        discussion: Claims.conventions)

    @Option(help: "table|json|csv|markdown") var format: String = "table"

    func run() throws {
        guard let f = OutputFormat(rawValue: format.lowercased()) else {
            throw PlanError.invalidOption(option: "--format", value: format, accepted: "one of table, json, csv, markdown")
        }
        PeftPlan.emit(ClaimsOutput.render(try Claims.check(), as: f))
    }
}
