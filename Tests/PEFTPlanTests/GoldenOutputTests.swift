import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// Golden outputs (issue 14): what the command line prints for a grid of questions — every
/// model family × every method at two shapes, sharded plans, the search, the config writers,
/// serving, the claims, the listings and every output format — recorded from the binary
/// before the code is reorganised, and compared byte for byte after. A difference is either
/// a regression or a fix, which the commit that re-records names.
///
/// Re-record with `RECORD_GOLDEN=1 swift test --filter GoldenOutput`; the files live in
/// Tests/PEFTPlanTests/Fixtures/golden/ (read from the source tree, so a re-record needs no
/// rebuild).
@Suite("Golden outputs of the command line")
struct GoldenOutputTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let args: [String]
        var testDescription: String { name }
    }

    /// One preset per family (both OPT layouts), each planned with every method.
    static let families = ["llama-2-7b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen3-8b", "gemma-7b", "gemma-2-9b",
                           "phi-3-mini", "gpt2", "pythia-1.4b", "opt-350m", "opt-1.3b", "falcon-7b", "bloom-560m"]
    static let gpus = ["--gpu", "T4", "--gpu", "RTX 4090", "--gpu", "H100 SXM"]

    static let cases: [Case] = {
        var c: [Case] = []
        for m in families {
            c.append(Case(name: "\(m)-all", args: ["plan", "--model", m, "--format", "json"] + gpus))
            c.append(Case(name: "\(m)-all-b4-s512-ckpt-mixed", args: ["plan", "--model", m, "--batch", "4", "--seq", "512", "--grad-checkpointing",
                                                                      "--precision", "mixed-bf16", "--optimizer", "adamw-8bit", "--format", "json"] + gpus))
        }
        c += [
            Case(name: "llama-2-7b-ptuning-prefix-mlp", args: ["plan", "--model", "7b", "--method", "p-tuning,prefix", "--prefix-projection", "512", "--format", "json"] + gpus),
            Case(name: "llama-2-7b-lora-options", args: ["plan", "--model", "7b", "--method", "lora,qlora", "--lora-r", "64", "--lora-alpha", "128", "--lora-targets", "all-linear",
                                                         "--lora-dropout", "0.05", "--dora", "--quant", "fp4", "--no-double-quant", "--format", "json"] + gpus),
            Case(name: "llama-2-7b-adapter-ia3-options", args: ["plan", "--model", "7b", "--method", "adapter,ia3", "--adapter", "houlsby", "--adapter-reduction", "8",
                                                                "--ia3-targets", "q_proj,v_proj,down_proj", "--ia3-feedforward", "down_proj", "--format", "json"] + gpus),
            Case(name: "llama-2-7b-fp16-eager-paged", args: ["plan", "--model", "7b", "--precision", "fp16", "--attention", "eager", "--optimizer", "paged-adamw-8bit",
                                                             "--grad-accum", "4", "--format", "json"] + gpus),
            Case(name: "llama-3.1-70b-zero3-8", args: ["plan", "--model", "70b", "--gpus", "8", "--sharding", "zero3", "--grad-checkpointing", "--gpu", "80GB", "--format", "json"]),
            Case(name: "llama-3.1-70b-fsdp-offload-16", args: ["plan", "--model", "70b", "--method", "full,lora", "--gpus", "16", "--sharding", "fsdp", "--offload", "params", "--gpu", "H100 SXM", "--format", "json"]),
            Case(name: "llama-3.1-8b-zero2-offload", args: ["plan", "--model", "8b", "--method", "full", "--gpus", "2", "--sharding", "zero2", "--offload", "optimizer", "--gpu", "RTX 4090", "--format", "json"]),
            Case(name: "llama-3.1-8b-budget", args: ["plan", "--model", "8b", "--method", "lora", "--examples", "50000", "--avg-tokens", "700", "--packing", "--epochs", "3",
                                                     "--price", "1.5", "--mfu", "0.3", "--setup-minutes", "20", "--format", "json"] + gpus),
            Case(name: "search-8b", args: ["plan", "--model", "8b", "--method", "lora,qlora", "--gpu", "24GB", "--gpu", "80GB", "--cheapest", "--format", "json"]),
            Case(name: "search-70b-table", args: ["plan", "--model", "70b", "--cheapest", "--global-batch", "32"]),
            Case(name: "emit-deepspeed-70b", args: ["plan", "--model", "70b", "--method", "full", "--gpus", "16", "--sharding", "zero3", "--offload", "optimizer",
                                                    "--batch", "2", "--grad-accum", "4", "--grad-checkpointing", "--emit", "deepspeed"]),
            Case(name: "emit-accelerate-fsdp", args: ["plan", "--model", "8b", "--method", "qlora", "--gpus", "4", "--sharding", "fsdp", "--emit", "accelerate"]),
            Case(name: "emit-trl-lora", args: ["plan", "--model", "qwen2.5-7b", "--method", "lora", "--lora-r", "16", "--packing", "--emit", "trl"]),
            Case(name: "emit-trl-ia3", args: ["plan", "--model", "gpt2", "--method", "ia3", "--precision", "fp16", "--emit", "trl"]),
            Case(name: "serve-8b-lora", args: ["plan", "--model", "8b", "--method", "lora", "--serve", "8", "--context", "4096", "--concurrency", "4", "--format", "json"] + gpus),
            Case(name: "serve-70b-qlora-table", args: ["plan", "--model", "70b", "--method", "qlora", "--serve", "2"] + gpus),
            Case(name: "headline-table", args: ["--model", "7b", "--gpu", "24GB"]),
            Case(name: "headline-csv", args: ["--model", "7b", "--gpu", "24GB", "--format", "csv"]),
            Case(name: "headline-markdown", args: ["--model", "7b", "--gpu", "24GB", "--format", "markdown"]),
            Case(name: "claims-json", args: ["claims", "--format", "json"]),
            Case(name: "claims-markdown", args: ["claims", "--format", "markdown"]),
            Case(name: "gpus-json", args: ["gpus", "--format", "json"]),
            Case(name: "models-json", args: ["models", "--format", "json"]),
        ]
        return c
    }()

    static let folder = repoRoot.appendingPathComponent("Tests/PEFTPlanTests/Fixtures/golden")
    static var recording: Bool { ProcessInfo.processInfo.environment["RECORD_GOLDEN"] == "1" }

    @Test("the output is byte-identical to the recorded one", arguments: cases)
    func output(_ c: Case) throws {
        let r = try CLI.run(c.args)
        #expect(r.status == 0, "\(r.stderr)")
        let file = Self.folder.appendingPathComponent(c.name + ".txt")
        if Self.recording {
            try FileManager.default.createDirectory(at: Self.folder, withIntermediateDirectories: true)
            try Data(r.stdout.utf8).write(to: file)
            return
        }
        let expected = try #require(try? String(contentsOf: file, encoding: .utf8), "no golden file \(file.lastPathComponent): record with RECORD_GOLDEN=1")
        guard r.stdout != expected else { return }
        // name the first line that differs
        let a = r.stdout.split(separator: "\n", omittingEmptySubsequences: false), b = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let i = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        Issue.record("\(c.name) differs from its golden file at line \(i + 1):\n  now:      \(i < a.count ? String(a[i].prefix(300)) : "<end>")\n  recorded: \(i < b.count ? String(b[i].prefix(300)) : "<end>")")
    }

    /// Every golden file belongs to a case (a renamed case leaves no stale file behind).
    @Test func noStaleFiles() throws {
        guard !Self.recording else { return }
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".txt") }
        #expect(Set(files) == Set(Self.cases.map { $0.name + ".txt" }))
    }

    /// The committed sample reports are what the binary renders now (scripts/make_reports.sh
    /// wrote them): the PDF document and the SVG summary of the 8B plan on 24 and 80 GB cards.
    @Test(arguments: ["llama-3.1-8b-on-24gb.pdf", "llama-3.1-8b-on-24gb.svg"])
    func sampleReport(_ name: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent(name)
        let r = try CLI.run(["report", "--model", "llama-3.1-8b", "--gpu", "24GB", "--gpu", "80GB", "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let committed = repoRoot.appendingPathComponent("reports/\(name)")
        #expect(try Data(contentsOf: out) == Data(contentsOf: committed), "\(name) renders differently from reports/\(name) (bash scripts/make_reports.sh regenerates it)")
    }
}
