import ArgumentParser
import Foundation
import PEFTOutput
import PEFTPlan

/// The command line, as a library: `peft-plan`'s main calls ``CommandLineTool/main()``;
/// the fuzz target and the tests reach the parser through ``CommandLineTool/check(_:)``.
public enum CommandLineTool {
    /// Runs the tool on the process's arguments and exits.
    public static func main() -> Never {
        PeftPlan.main()
        exit(0)
    }

    /// Parses `arguments` as the tool would and, for the planning commands (plan, report),
    /// builds the request and plans it, without printing or writing anything. Throws the
    /// error the tool would report; never traps.
    public static func check(_ arguments: [String]) throws {
        let command = try PeftPlan.parseAsRoot(arguments)
        if let plan = command as? Plan {
            let request = try plan.options.request()
            _ = try plan.options.outputFormat()
            if plan.cheapest || plan.serve != nil || plan.emit != nil { return }
            _ = try Planner.plan(request)
        } else if let report = command as? ReportCommand {
            _ = try Planner.plan(try report.options.request())
        }
    }
}

struct PeftPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peft-plan",
        abstract: "Will a fine-tuning job fit, how long will it take, what will it cost, and with which method? Exact parameter counts, a phase-aware memory model and a FLOPs-based time model for full fine-tuning, LoRA, QLoRA, adapters, prefix/prompt tuning and IA³.",
        discussion: """
            Examples:
              peft-plan --model 7b --gpu 24GB
              peft-plan plan --model ./config.json --method qlora --seq 4096 --format json
              peft-plan models        (presets and their aliases)
              peft-plan gpus          (hardware profiles)
              peft-plan prices        (dated GPU prices by provider; plan --provider NAME)
              peft-plan plan --model 70b --gpu 80GB --cheapest
              peft-plan bench --model tiny --method lora
              peft-plan calibrate --backend engine
              peft-plan report --model 8b --gpu 24GB --out plan.pdf
              peft-plan claims        (published claims, checked)

            Exit status:
              0    done (without --require-fit, also when a plan does not fit: the output says so)
              1    the output could not be written, or an error outside peft-plan's checks
              2    bad input: an option's value, a file, a model or GPU name, an unknown command
              3    --require-fit: a planned method does not fit a GPU named (output still printed)
              64   the command line itself: an unknown option or a missing value
              130  calibrate interrupted by Ctrl-C (its --resume command is printed)
            """,
        subcommands: [Plan.self, Models.self, GPUs.self, Prices.self, Bench.self, Calibrate.self, ReportCommand.self, ClaimsCommand.self, BenchPlanner.self, BenchSearch.self, LedgerCheckCommand.self],
        defaultSubcommand: Plan.self)

    /// Errors become one line on stderr and a non-zero status; help goes to stdout.
    static func main() {
        signal(SIGPIPE, SIG_IGN)   // a closed pipe becomes a write error, handled in `emit`
        let args = Array(CommandLine.arguments.dropFirst())
        let commands = configuration.subcommands.map { $0._commandName }
        if args.isEmpty {
            fail("missing --model: give a preset such as 7b (see `peft-plan models`) or a config.json; `peft-plan --help` shows every option", code: 2)
        }
        if let first = args.first, !first.hasPrefix("-"), !commands.contains(first), first != "help" {
            let shown = configuration.subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
            fail("unknown command '\(first)'; commands: \(shown.joined(separator: ", ")) (plan is the default)", code: 2)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as PlanError {
            fail(CommandLineNames.message(error), code: 2)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            fail(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message, code: code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    /// Writes the command's output to stdout; a failed write is an error, not a silent loss.
    static func emit(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { Foundation.exit(1) }   // the reader went away (`| head`): stop quietly
                fail("cannot write the output: \(String(cString: strerror(errno)))", code: 1)
            }
            offset += n
        }
    }

    /// The exit status of `plan --require-fit` when the plan does not fit.
    static let doesNotFitStatus: Int32 = 3

    /// `--require-fit` refused: one line on stderr, status 3 (the output is already out).
    static func doesNotFit(_ what: String) -> Never {
        FileHandle.standardError.write(Data("peft-plan: does not fit (--require-fit): \(what)\n".utf8))
        Foundation.exit(doesNotFitStatus)
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("peft-plan: error: \(message)\n".utf8))
        Foundation.exit(code)
    }
}
