import Foundation
import ArgumentParser
import PEFTEmit
import PEFTOutput
import PEFTPlan

/// A note on stderr that is not an error (the command still succeeds).
enum FileHandleOutput {
    static func note(_ text: String) {
        FileHandle.standardError.write(Data("peft-plan: note: \(text)\n".utf8))
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameters, memory by component and phase, fit verdicts, hours and dollars for methods × GPUs (the default command); --cheapest searches, --emit writes engine configs, --serve sizes a server.")

    @OptionGroup var options: PlanningOptions

    @Flag(help: "Search methods × GPU types × 1–64 GPUs × sharding × offload × micro-batch × checkpointing for the cheapest and fastest plans that fit.")
    var cheapest = false

    @Option(parsing: .unconditional, help: "With --cheapest: sequences per optimizer step every candidate trains (default 16).")
    var globalBatch: String?

    @Option(parsing: .unconditional, help: "Serving instead of training: memory of one base model with this many LoRA adapters plus the KV cache (with --context, --concurrency).")
    var serve: String?
    @Option(parsing: .unconditional, help: "With --serve: tokens of context per request (default --seq).") var context: String?
    @Option(parsing: .unconditional, help: "With --serve: requests served at once (default 16).") var concurrency: String?

    @Option(help: "Instead of the plan, print the config that runs it: deepspeed (ds_config.json), accelerate (accelerate.yaml) or trl (train.py). Needs one --method.")
    var emit: String?
    @Option(parsing: .unconditional, help: "With --emit: peak learning rate (default 2e-5 for full fine-tuning, 2e-4 for PEFT methods).")
    var learningRate: String?
    @Option(parsing: .unconditional, help: "With --emit: gradient clipping norm (default 1.0).")
    var maxGradNorm: String?

    @Flag(help: "Exit with status 3 (after printing the output as usual) unless every planned method fits on every GPU named with --gpu (a card without the precision does not fit); with --serve, unless the server fits each GPU; with --cheapest, unless some configuration fits. For CI and launch scripts.")
    var requireFit = false

    func run() throws {
        let format = try options.outputFormat()
        if requireFit && options.gpu.isEmpty {
            throw PlanError.contradictoryOptions("--require-fit checks the GPUs a job launches on: name them with --gpu (without it a plan covers every 16, 24, 48 and 80 GB card)")
        }
        let request = try options.request()
        if let emit {
            if cheapest || serve != nil { throw PlanError.contradictoryOptions("--emit writes one plan's config; it cannot be combined with --cheapest or --serve") }
            let kind = try options.choice(emit, "--emit", as: EmitFormat.self)
            guard request.methods.count == 1, !request.methodsFromAll else {
                throw PlanError.contradictoryOptions("--emit needs exactly one --method (the config is for one run)")
            }
            // The same checks as a plan (ranges, targets, learned positions), then the config.
            let planned = try Planner.plan(request)
            if !requireFit && !planned.plans.contains(where: { $0.verdicts.contains(where: \.fits) }) {
                FileHandleOutput.note("this plan fits none of the GPUs named (see `peft-plan` without --emit); the config is written as planned")
            }
            var emitted = request.methodOptions
            // PEFT takes the language model's Linears as a pattern over module names
            if let pattern = request.arch.languageModelTargetPattern ?? (request.arch.isVisionLanguage ? nil : "") {
                if emitted.loraTargets == .languageModel { emitted.loraTargets = pattern.isEmpty ? .allLinear : .pattern(pattern) }
                if emitted.ia3Targets == .languageModel { emitted.ia3Targets = pattern.isEmpty ? .allLinear : .pattern(pattern) }
            }
            let spec = RunSpec(modelName: options.model, family: request.arch.family, method: request.methods[0],
                               methodOptions: emitted, training: request.training, scale: request.scale,
                               packing: request.dataset.packing, epochs: request.dataset.epochs,
                               learningRate: try PlanningOptions.real(learningRate, "--learning-rate"),
                               maxGradNorm: try PlanningOptions.real(maxGradNorm, "--max-grad-norm") ?? 1.0,
                               maxSteps: request.budget.steps)
            PeftPlan.emit(try Emitter.emit(spec, as: kind))
            if requireFit { Self.gate(planned) }
            return
        }
        if learningRate != nil || maxGradNorm != nil { throw PlanError.contradictoryOptions("--learning-rate and --max-grad-norm apply to --emit") }
        let scaled = options.gpus != nil || options.sharding != "none" || options.offload != "none"
        if (cheapest || serve != nil) && (format == .csv || format == .markdown) {
            throw PlanError.invalidOption(option: "--format", value: format.rawValue, accepted: "table or json with \(cheapest ? "--cheapest" : "--serve")")
        }
        if let serve {
            if cheapest || globalBatch != nil { throw PlanError.contradictoryOptions("--serve plans serving; --cheapest and --global-batch plan training") }
            if scaled { throw PlanError.contradictoryOptions("--serve sizes one GPU's memory: --gpus, --sharding and --offload plan training") }
            let n = try PlanningOptions.integer(serve, "--serve", default: 1)
            let ctx = try PlanningOptions.integer(context, "--context", default: request.training.seq)
            let conc = try PlanningOptions.integer(concurrency, "--concurrency", default: 16)
            for (flag, v, r) in [("--serve", n, 0...100_000), ("--context", ctx, 1...(1 << 22)), ("--concurrency", conc, 1...(1 << 20))] where !r.contains(v) {
                throw PlanError.invalidOption(option: flag, value: "\(v)", accepted: "an integer from \(r.lowerBound) to \(r.upperBound)")
            }
            if request.arch.hasLearnedPositions && ctx > request.arch.maxPositions {
                throw PlanError.invalidOption(option: "--context", value: "\(ctx)", accepted: "at most \(request.arch.maxPositions): \(request.arch.name) has \(request.arch.maxPositions) learned positions")
            }
            let quantised = request.methods == [.qlora]
            guard quantised || request.methodsFromAll || request.methods == [.lora] else {
                throw PlanError.contradictoryOptions("--serve plans LoRA adapters: use --method lora (16-bit base) or qlora (4-bit base)")
            }
            let sr = ServeRequest(arch: request.arch, adapters: n, context: ctx, concurrency: conc, methodOptions: request.methodOptions,
                                  quantisedBase: quantised, gpus: request.gpus, runtime: request.runtime)
            PeftPlan.emit(try ServingOutput.render(sr, as: format))
            if requireFit {
                let misses = try Serving.verdicts(sr).filter { !$0.fits }
                if !misses.isEmpty {
                    PeftPlan.doesNotFit("the server does not fit " + misses.map { "\($0.gpu.name) (\($0.gpu.capacityLabel))" }.joined(separator: ", "))
                }
            }
            return
        }
        if context != nil || concurrency != nil { throw PlanError.contradictoryOptions("--context and --concurrency apply to --serve") }
        if cheapest {
            if scaled || options.gradCheckpointing || options.batch != nil || options.gradAccum != nil {
                throw PlanError.contradictoryOptions("--cheapest searches GPU counts, sharding, offload, micro-batch, accumulation and checkpointing itself: drop --gpus/--sharding/--offload/--batch/--grad-accum/--grad-checkpointing and set --global-batch")
            }
            var space = SearchSpace()
            space.globalBatch = try PlanningOptions.integer(globalBatch, "--global-batch", default: 16)
            guard (1...65536).contains(space.globalBatch) else {
                throw PlanError.invalidOption(option: "--global-batch", value: "\(space.globalBatch)", accepted: "an integer from 1 to 65536")
            }
            let found = try Search.run(request, space: space)
            PeftPlan.emit(SearchOutput.render(found, as: format))
            if requireFit && found.cheapest.isEmpty { PeftPlan.doesNotFit("no configuration searched fits") }
            return
        }
        if globalBatch != nil { throw PlanError.contradictoryOptions("--global-batch applies to --cheapest") }
        let result = try Planner.plan(request)
        PeftPlan.emit(PlanOutput.render(result, as: format))
        if requireFit { Self.gate(result) }
    }

    /// `--require-fit`: exits with ``PeftPlan/doesNotFitStatus`` naming what does not fit
    /// (every planned method on every GPU named must fit; a method left out of `all` is not
    /// planned); returns when all fit.
    static func gate(_ result: PlanResult) {
        var misses: [String] = []
        for p in result.plans {
            for v in p.verdicts where !v.fits {
                let why = v.blocker != nil ? "no bf16 support" : "\(PlanOutput.gib(v.shortfallBytes)) short of \(v.gpu.capacityLabel)"
                misses.append("\(p.method.rawValue) on \(v.gpu.name) (\(why))")
            }
        }
        if result.plans.isEmpty { misses.append("no method could be planned") }
        guard !misses.isEmpty else { return }
        let shown = misses.prefix(3).joined(separator: "; ")
        PeftPlan.doesNotFit(shown + (misses.count > 3 ? "; and \(misses.count - 3) more" : ""))
    }
}
