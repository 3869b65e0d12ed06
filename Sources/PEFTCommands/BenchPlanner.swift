import ArgumentParser
import Foundation
import PEFTPlan

struct BenchPlanner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-planner",
        abstract: "Time the memory model: full plans evaluated per second in a sweep, on one thread.")

    @Option(help: "Model preset or config.json.") var model: String = "llama-3.1-8b"
    @Option(help: "Timed rounds; the median is reported.") var rounds: Int = 7

    func run() throws {
        guard (1...1000).contains(rounds) else {
            throw PlanError.invalidOption(option: "--rounds", value: "\(rounds)", accepted: "an integer from 1 to 1000")
        }
        let r = try PlannerBenchmark.run(model: model, rounds: rounds)
        var out = ""
        out += ("model \(r.model): \(r.plansPerRound) plans per round (methods × \(PlannerBenchmark.batches.count) micro-batches × \(PlannerBenchmark.seqs.count) sequence lengths × GPU profiles), \(r.rounds) rounds, 1 thread\n")
        out += String(format: "full plans per second: median %.0f (min %.0f, max %.0f)\n", r.median, r.rates.min() ?? 0, r.rates.max() ?? 0)
        out += String(format: "plan contexts (parameter accounting + symbolic forward) per second: %.0f\n", r.contextsPerSecond)
        out += "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores visible; fits counted: \(r.fits)\n"
        PeftPlan.emit(out)
    }
}

struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-search",
        abstract: "Time the cheapest-plan search: configurations swept per second, on one thread.")

    @Option(help: "Model preset or config.json.") var model: String = "llama-3.1-70b"
    @Option(help: "Timed rounds; the median is reported.") var rounds: Int = 5

    func run() throws {
        guard (1...1000).contains(rounds) else {
            throw PlanError.invalidOption(option: "--rounds", value: "\(rounds)", accepted: "an integer from 1 to 1000")
        }
        let r = try SearchBenchmark.run(model: model, rounds: rounds)
        var out = "model \(r.model): \(r.configurations) configurations per search (every GPU profile × methods × 1–64 GPUs × sharding × offload × micro-batch × checkpointing × sequences of \(SearchBenchmark.seqs(try Presets.resolve(model)).map(String.init).joined(separator: " and ")) tokens; global batch 256), \(r.fitting) fit; \(rounds) rounds, 1 thread\n"
        out += String(format: "search time: median %.3f s (min %.3f, max %.3f); %.0f configurations per second\n",
                      r.medianSeconds, r.seconds.min() ?? 0, r.seconds.max() ?? 0, r.perSecond)
        out += "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores visible\n"
        PeftPlan.emit(out)
    }
}
