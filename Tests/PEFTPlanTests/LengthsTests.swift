import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// `--lengths FILE`: plans from a dataset's token lengths, checked on hand-built
/// distributions whose padded lengths are worked out by hand, and the script that writes
/// such a file from a JSONL dataset, run with a tiny word-level tokenizer shipped in
/// Fixtures/tiny-tokenizer (one token per whitespace-separated word).
@Suite("Plans from a lengths file")
struct LengthsTests {
    static func file(_ text: String) -> String { writeConfig(text, name: "lengths.txt") }

    /// device_total and hours of the first plan on the first GPU.
    static func plan(_ args: [String]) throws -> (device: Int, hours: Double, notes: [String]) {
        let r = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--gpu", "H100 SXM", "--format", "json"] + args)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let p = try #require((obj["plans"] as? [[String: Any]])?.first)
        let memory = try #require(p["memory"] as? [String: Any])
        let gpu = try #require((p["gpus"] as? [[String: Any]])?.first)
        let notes = ((obj["assumptions"] as? [String: Any])?["notes"] as? [String]) ?? []
        return (try #require(memory["device_total"] as? Int), try #require(gpu["hours"] as? Double), notes)
    }

    /// 1,000 examples of 512 tokens under --seq 4096 without packing: each micro-batch is
    /// padded to its longest example (512), not to 4096, so the plan is the padded plan at
    /// --seq 512 — memory and time — and says so.
    @Test func uniformLengthsPlanAtTheirLength() throws {
        let lengths = Self.file("512 1000\n")
        let fromFile = try Self.plan(["--seq", "4096", "--lengths", lengths])
        let padded = try Self.plan(["--seq", "512", "--examples", "1000", "--avg-tokens", "512"])
        let at4096 = try Self.plan(["--seq", "4096", "--examples", "1000", "--avg-tokens", "512"])
        #expect(fromFile.device == padded.device)
        #expect(abs(fromFile.hours - padded.hours) <= 1e-9 * padded.hours)
        #expect(fromFile.device < at4096.device && fromFile.hours < at4096.hours)
        #expect(fromFile.notes.contains { $0.contains("--lengths: 1000 examples") && $0.contains("1 × 512") })
    }

    /// Half the examples of 100 tokens, half of 1,000, micro-batches of 2: the longest
    /// micro-batch is 2 × 1000 (the memory peak), and a micro-batch drawn at random is padded
    /// to 1,000 unless both are short: 100 × ¼ + 1000 × ¾ = 775 tokens expected.
    @Test func mixedLengthsPadToTheExpectedLongest() throws {
        let lengths = Self.file("# two lengths\n100 500\n1000,500\n")
        let fromFile = try Self.plan(["--batch", "2", "--lengths", lengths])
        let peak = try Self.plan(["--batch", "2", "--seq", "1000"])
        let timed = try Self.plan(["--batch", "2", "--seq", "775", "--examples", "1000", "--avg-tokens", "775"])
        #expect(fromFile.device == peak.device)
        #expect(abs(fromFile.hours - timed.hours) <= 1e-9 * timed.hours)
        // micro-batches of 1 on two GPUs: each pads its own, the slower sets the pace, so a step
        // runs at the longer of two examples, 775 expected again
        let twoGPUs = try Self.plan(["--gpus", "2", "--lengths", lengths])
        let twoTimed = try Self.plan(["--gpus", "2", "--seq", "775", "--examples", "1000", "--avg-tokens", "775"])
        #expect(abs(twoGPUs.hours - twoTimed.hours) <= 1e-9 * twoTimed.hours)
    }

    /// Packed, the same 1,000 × 512 tokens fill 125 sequences of 4,096: memory at 1 × 4096,
    /// time from the 512,000 tokens, as --examples/--avg-tokens --packing plans them; longer
    /// examples are truncated at --seq first (3 × 5,000 count as 3 × 4,096).
    @Test func packedLengthsFollowTheTokens() throws {
        let fromFile = try Self.plan(["--seq", "4096", "--packing", "--lengths", Self.file("512 1000\n")])
        let packed = try Self.plan(["--seq", "4096", "--packing", "--examples", "1000", "--avg-tokens", "512"])
        #expect(fromFile.device == packed.device)
        #expect(abs(fromFile.hours - packed.hours) <= 1e-9 * packed.hours)
        let truncated = try Self.plan(["--seq", "4096", "--packing", "--lengths", Self.file("[5000, 5000, 5000]")])
        let same = try Self.plan(["--seq", "4096", "--packing", "--examples", "3", "--avg-tokens", "4096"])
        #expect(abs(truncated.hours - same.hours) <= 1e-9 * same.hours)
        #expect(truncated.notes.contains { $0.contains("3 longer than 4096 tokens truncated") })
    }

    /// The four ways to write the file give the same histogram; the expected longest of a
    /// micro-batch is worked out by hand.
    @Test func fileFormats() throws {
        let forms = ["100\n100\n300\n", "100 2\n300 1\n", "[100, 300, 100]", #"{"100": 2, "300": 1}"#, "# c\n100,2\n\n300\t1\n"]
        let parsed = try forms.map { try TokenLengths(parsing: $0) }
        for p in parsed { #expect(p.histogram.map(\.length) == [100, 300] && p.histogram.map(\.count) == [2, 1]) }
        // two draws: both 100 with probability (2/3)² = 4/9, else 300: 100·4/9 + 300·5/9 = 211.1
        #expect(abs(parsed[0].expectedLongest(of: 2, cap: 4096) - 1900.0 / 9) < 1e-9)
        #expect(abs(parsed[0].expectedLongest(of: 1, cap: 4096) - 500.0 / 3) < 1e-9)
        // truncated at 200: 100·4/9 + 200·5/9
        #expect(abs(parsed[0].expectedLongest(of: 2, cap: 200) - 1400.0 / 9) < 1e-9)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        let args: [String]
        let mentions: String
        var testDescription: String { args.joined(separator: " ") }
    }

    static let bad: [Bad] = [
        Bad(args: ["--lengths", file("")], mentions: "no lengths"),
        Bad(args: ["--lengths", file("100\nseveral\n")], mentions: "line 2"),
        Bad(args: ["--lengths", file("100 0\n")], mentions: "count must be"),
        Bad(args: ["--lengths", file("-5\n")], mentions: "above 0"),
        Bad(args: ["--lengths", file("[100, 2.5]")], mentions: "entry 2"),
        Bad(args: ["--lengths", file("{\"100\": 2")], mentions: "not valid JSON"),
        Bad(args: ["--lengths", file("200000\n")], mentions: "limit of 131072"),
        Bad(args: ["--lengths", "/no/such/lengths.txt"], mentions: "no such file"),
        Bad(args: ["--lengths", file("100\n"), "--tokens", "1000000"], mentions: "already sizes the dataset"),
    ]

    @Test("bad lengths input: one line, non-zero status", arguments: bad)
    func badInput(_ b: Bad) throws {
        let r = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora"] + b.args)
        #expect(r.status != 0)
        #expect(!r.signalled)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.contains(b.mentions), "\(r.stderr)")
    }

    /// scripts/token_lengths.py on a JSONL of the three shapes TRL reads, with the tiny
    /// tokenizer: a text of 5 words, one of 12, a conversation rendered by the chat template
    /// ("user: does it fit" and "assistant: the plan fits": 8 words), a prompt with its
    /// completion ("one two" + " three": 3), and a conversational prompt with its completion,
    /// rendered together by the template ("user: a b" and "assistant: c": 5). The tokenizer has
    /// no EOS token, so nothing is appended. The histogram it writes is read by --lengths.
    @Test func datasetScript() throws {
        let data = writeConfig("""
            {"text": "the plan fits the gpu"}
            {"text": "a b c d e f g h i j k l"}
            {"messages": [{"role": "user", "content": "does it fit"}, {"role": "assistant", "content": "the plan fits"}]}
            {"prompt": "one two", "completion": " three"}
            {"text": "the plan fits the gpu"}
            {"prompt": [{"role": "user", "content": "a b"}], "completion": [{"role": "assistant", "content": "c"}]}

            """, name: "data.jsonl")
        let out = URL(fileURLWithPath: data).deletingLastPathComponent().appendingPathComponent("lengths.txt").path
        let tokenizer = repoRoot.appendingPathComponent("Tests/PEFTPlanTests/Fixtures/tiny-tokenizer").path
        let ok = try Self.script(["--tokenizer", tokenizer, "--data", data, "--out", out])
        #expect(ok.status == 0, "stderr: \(ok.stderr)")
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let l = try TokenLengths(parsing: text)
        #expect(l.histogram.map(\.length) == [3, 5, 8, 12])
        #expect(l.histogram.map(\.count) == [1, 3, 1, 1])
        let plan = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--lengths", out])
        #expect(plan.status == 0, "stderr: \(plan.stderr)")
        #expect(plan.stdout.contains("1 × 12 tokens"))

        let broken = writeConfig("{\"text\": \"fine\"}\n{\"text\": \n", name: "broken.jsonl")
        let bad = try Self.script(["--tokenizer", tokenizer, "--data", broken])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("line 2"), "\(bad.stderr)")
        let missing = writeConfig("{\"body\": \"no text field\"}\n", name: "missing.jsonl")
        let noField = try Self.script(["--tokenizer", tokenizer, "--data", missing])
        #expect(noField.status == 1 && noField.stderr.contains("no \"text\" field"), "\(noField.stderr)")
    }

    static func script(_ args: [String]) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [PythonReference.python, repoRoot.appendingPathComponent("scripts/token_lengths.py").path] + args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }
}
