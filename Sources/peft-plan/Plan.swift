import ArgumentParser
import PEFTPlan

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameters, memory by component and phase, and fit verdicts for methods × GPUs (the default command).")

    @OptionGroup var options: PlanningOptions

    @Flag(help: "Search methods × GPU types × 1–64 GPUs × sharding × offload × micro-batch × checkpointing for the cheapest and fastest plans that fit.")
    var cheapest = false

    @Option(parsing: .unconditional, help: "With --cheapest: sequences per optimizer step every candidate trains (default 16).")
    var globalBatch: String?

    @Option(parsing: .unconditional, help: "Serving instead of training: memory of one base model with this many LoRA adapters plus the KV cache (with --context, --concurrency).")
    var serve: String?
    @Option(parsing: .unconditional, help: "With --serve: tokens of context per request (default --seq).") var context: String?
    @Option(parsing: .unconditional, help: "With --serve: requests served at once (default 16).") var concurrency: String?

    func run() throws {
        let format = try options.outputFormat()
        let request = try options.request()
        if let serve {
            if cheapest || globalBatch != nil { throw PlanError.contradictoryOptions("--serve plans serving; --cheapest and --global-batch plan training") }
            let n = try PlanningOptions.integer(serve, "--serve", default: 1)
            let ctx = try PlanningOptions.integer(context, "--context", default: request.training.seq)
            let conc = try PlanningOptions.integer(concurrency, "--concurrency", default: 16)
            for (flag, v, r) in [("--serve", n, 0...100_000), ("--context", ctx, 1...(1 << 22)), ("--concurrency", conc, 1...(1 << 20))] where !r.contains(v) {
                throw PlanError.invalidOption(option: flag, value: "\(v)", accepted: "an integer from \(r.lowerBound) to \(r.upperBound)")
            }
            let quantised = request.methods == [.qlora]
            guard quantised || request.methodsFromAll || request.methods == [.lora] else {
                throw PlanError.contradictoryOptions("--serve plans LoRA adapters: use --method lora (16-bit base) or qlora (4-bit base)")
            }
            let sr = ServeRequest(arch: request.arch, adapters: n, context: ctx, concurrency: conc, methodOptions: request.methodOptions,
                                  quantisedBase: quantised, gpus: request.gpus, runtime: request.runtime)
            PeftPlan.emit(try Serving.render(sr, as: format))
            return
        }
        if context != nil || concurrency != nil { throw PlanError.contradictoryOptions("--context and --concurrency apply to --serve") }
        if cheapest {
            var space = SearchSpace()
            space.globalBatch = try PlanningOptions.integer(globalBatch, "--global-batch", default: 16)
            guard (1...65536).contains(space.globalBatch) else {
                throw PlanError.invalidOption(option: "--global-batch", value: "\(space.globalBatch)", accepted: "an integer from 1 to 65536")
            }
            PeftPlan.emit(SearchOutput.render(try Search.run(request, space: space), as: format))
            return
        }
        if globalBatch != nil { throw PlanError.contradictoryOptions("--global-batch applies to --cheapest") }
        let result = try Planner.plan(request)
        PeftPlan.emit(PlanOutput.render(result, as: format))
    }
}
