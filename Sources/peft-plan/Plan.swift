import ArgumentParser
import PEFTPlan

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameters, memory by component and phase, and fit verdicts for methods × GPUs (the default command).")

    @OptionGroup var options: PlanningOptions

    func run() throws {
        let format = try options.outputFormat()
        let result = try Planner.plan(options.request())
        PeftPlan.emit(PlanOutput.render(result, as: format))
    }
}
