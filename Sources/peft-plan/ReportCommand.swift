import ArgumentParser
import Foundation
import PEFTPlan
import PEFTReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The plan as a document for a budget review: PDF (question and answer, memory chart, the numbers, assumptions), or the memory chart as SVG or PNG.",
        discussion: "Takes every planning option of `plan`. PDF output is byte-reproducible (pinned creation date); the file is written whole or not at all.")

    @OptionGroup var options: PlanningOptions
    @Option(help: "Output file: .pdf (every page), .svg or .png (the memory chart).") var out: String

    func run() throws {
        guard CanvasFormat(path: out) != nil else {
            throw PlanError.invalidOption(option: "--out", value: out, accepted: "a file ending in .pdf, .svg or .png")
        }
        let result = try Planner.plan(try options.request())
        try Report.write(result, to: out)
        FileHandle.standardError.write(Data("wrote \(out)\n".utf8))
    }
}
