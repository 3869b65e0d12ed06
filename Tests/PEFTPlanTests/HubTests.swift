import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTHub
@testable import PEFTPlan

/// `--model ORG/NAME[@REVISION]` against a stand-in Hub on loopback
/// (`scripts/hub_test_server.py`) and a Hugging Face cache laid out in a temporary folder.
/// No test touches the internet; each runs the binary with an environment of its own.
@Suite("Models by Hub id", .serialized)
struct HubTests {
    /// The token the tests use; no output and no file may ever contain it.
    static let secret = "hf_TESTSECRETtoken0123456789"

    /// A running stand-in Hub serving the bundled Llama-3.1-8B config (a real one, and the
    /// plan it gives is the preset's).
    final class Server: @unchecked Sendable {
        let process = Process()
        let port: Int
        let seenFile = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-hub-seen-\(UUID().uuidString)")
        var endpoint: String { "http://127.0.0.1:\(port)" }

        init(serving preset: String = "llama-3.1-8b") throws {
            let config = try Presets.directory.appendingPathComponent("\(preset).json").path
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [PythonReference.python, repoRoot.appendingPathComponent("scripts/hub_test_server.py").path, config, seenFile.path]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            var line = Data()
            while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
            port = Int(String(decoding: line, as: UTF8.self)) ?? 0
        }

        /// Whether each request that followed the cross-host redirect carried Authorization.
        func seen() -> [Bool] {
            let text = (try? String(contentsOf: seenFile, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").map { $0 == "authorization" }
        }

        /// Stops the server (SIGKILL: a child of the test runner may inherit a mask that
        /// blocks SIGTERM). Each test defers it, which also keeps the server alive to the end.
        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: seenFile)
        }
    }

    /// A fresh home with empty caches, the server as the endpoint, and `extra` on top.
    static func environment(_ server: Server?, _ extra: [String: String] = [:]) throws -> (env: [String: String], home: URL) {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-hub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        var env = ["PATH": "/usr/bin:/bin", "HOME": home.path, "PEFT_PLAN_HUB_TIMEOUT": "2"]
        if let server { env["HF_ENDPOINT"] = server.endpoint }
        env.merge(extra) { $1 }
        return (env, home)
    }

    /// The table's notes with their wrapping undone.
    static func flat(_ text: String) -> String { text.replacingOccurrences(of: "\n  ", with: " ") }

    /// Every file under `folder`, as text.
    static func contents(of folder: URL) -> String {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return "" }
        var all = ""
        for case let url as URL in walker { if let d = FileManager.default.contents(atPath: url.path) { all += String(decoding: d, as: UTF8.self) } }
        return all
    }

    @Test("Hub ids parse as the Hub names repositories; paths and presets do not")
    func parsing() {
        #expect(HubModel("Qwen/Qwen3.5-9B") == HubModel("Qwen/Qwen3.5-9B@main"))
        #expect(HubModel("meta-llama/Llama-3.1-8B@refs/pr/12")?.revisionInURL == "refs%2Fpr%2F12")
        #expect(HubModel("org/name@0123456789abcdef0123456789abcdef01234567")?.revisionIsCommit == true)
        for bad in ["7b", "a/b/c", "/abs/config.json", "../x", "org/..", "org/", "/name", "org/na me", "org/name@", "org/name@../x", "ørg/name", "-org/name"] {
            #expect(HubModel(bad) == nil, "\(bad)")
        }
    }

    @Test("a model in Hugging Face's cache plans offline, and says where its config came from")
    func fromHuggingFaceCache() throws {
        let (env, home) = try Self.environment(nil, ["HF_HUB_OFFLINE": "1"])
        let commit = "89abcdef0123456789abcdef0123456789abcdef"
        let root = home.appendingPathComponent(".cache/huggingface/hub/models--acme--Llama-Copy")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("snapshots/\(commit)"), withIntermediateDirectories: true)
        try Data((commit + "\n").utf8).write(to: root.appendingPathComponent("refs/main"))
        // as huggingface_hub lays it out: the snapshot entry links to a blob
        try FileManager.default.createDirectory(at: root.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Presets.directory.appendingPathComponent("llama-3.1-8b.json"), to: root.appendingPathComponent("blobs/0a1b"))
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("snapshots/\(commit)/config.json").path, withDestinationPath: "../../blobs/0a1b")
        let hub = try CLI.run(["--model", "acme/Llama-Copy", "--method", "lora", "--gpu", "24GB", "--format", "json"], environment: env)
        let preset = try CLI.run(["--model", "llama-3.1-8b", "--method", "lora", "--gpu", "24GB", "--format", "json"])
        #expect(hub.status == 0, "\(hub.stderr)")
        let h = try JSONSerialization.jsonObject(with: Data(hub.stdout.utf8)) as? [String: Any]
        let p = try JSONSerialization.jsonObject(with: Data(preset.stdout.utf8)) as? [String: Any]
        #expect((h?["plans"] as? [[String: Any]])?.first?["memory"] as? [String: Int] == (p?["plans"] as? [[String: Any]])?.first?["memory"] as? [String: Int])
        #expect(hub.stdout.contains("Hugging Face's local cache (commit 89abcdef0123)"), "\(hub.stdout.prefix(300))")
        // a revision that is a commit reads its snapshot directly
        let pinned = try CLI.run(["--model", "acme/Llama-Copy@\(commit)", "--method", "lora", "--gpu", "24GB"], environment: env)
        #expect(pinned.status == 0, "\(pinned.stderr)")
    }

    /// The headline: the model people ask about by the name they know it by, answered from
    /// Hugging Face's cache (offline) and from the Hub (the stand-in), both as its preset.
    @Test("`peft-plan --model Qwen/Qwen3.5-9B --gpu 24GB` answers from the cache and from the Hub")
    func headlineQwen35() throws {
        let preset = try CLI.run(["--model", "qwen3.5-9b", "--gpu", "24GB", "--format", "json"])
        #expect(preset.status == 0, "\(preset.stderr)")
        let expected = try JSONSerialization.jsonObject(with: Data(preset.stdout.utf8)) as? [String: Any]
        func samePlans(_ r: CLI.Output) throws {
            #expect(r.status == 0, "\(r.stderr)")
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let plans = (j?["plans"] as? [[String: Any]])?.map { $0["memory"] as? [String: Int] }
            #expect(plans != nil && plans! == (expected?["plans"] as? [[String: Any]])?.map { $0["memory"] as? [String: Int] })
            #expect((j?["model"] as? [String: Any])?["model_type"] as? String == "qwen3_5")
        }
        // from Hugging Face's local cache, offline
        let (env, home) = try Self.environment(nil, ["HF_HUB_OFFLINE": "1"])
        let commit = "c0ffee0123456789abcdef0123456789abcdef01"
        let root = home.appendingPathComponent(".cache/huggingface/hub/models--Qwen--Qwen3.5-9B")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("snapshots/\(commit)"), withIntermediateDirectories: true)
        try Data(commit.utf8).write(to: root.appendingPathComponent("refs/main"))
        try FileManager.default.copyItem(at: Presets.directory.appendingPathComponent("qwen3.5-9b.json"),
                                         to: root.appendingPathComponent("snapshots/\(commit)/config.json"))
        try samePlans(try CLI.run(["--model", "Qwen/Qwen3.5-9B", "--gpu", "24GB", "--format", "json"], environment: env))
        // from the Hub (the stand-in on loopback)
        let server = try Server(serving: "qwen3.5-9b")
        defer { server.stop() }
        let (hubEnv, _) = try Self.environment(server)
        try samePlans(try CLI.run(["--model", "Qwen/Qwen3.5-9B", "--gpu", "24GB", "--format", "json"], environment: hubEnv))
        let table = try CLI.run(["--model", "Qwen/Qwen3.5-9B", "--gpu", "24GB"], environment: hubEnv)
        #expect(table.status == 0 && table.stdout.contains("On RTX 4090"), "\(table.stderr)")
    }

    @Test("a model fetched from the Hub is kept, and plans offline afterwards")
    func fetchedAndKept() throws {
        let server = try Server()
        defer { server.stop() }
        let (env, home) = try Self.environment(server)
        let first = try CLI.run(["--model", "ok/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(Self.flat(first.stdout).contains("fetched from \(server.endpoint)/ok/Llama-Copy/resolve/main/config.json (commit 0123456789ab)"))
        let kept = home.appendingPathComponent(".cache/peft-plan/hub/models--ok--Llama-Copy/main/config.json")
        #expect(FileManager.default.contents(atPath: kept.path) == FileManager.default.contents(atPath: try Presets.directory.appendingPathComponent("llama-3.1-8b.json").path))
        var offline = env
        offline["HF_HUB_OFFLINE"] = "1"
        offline["HF_ENDPOINT"] = "http://127.0.0.1:9"   // nothing listens: only the cache can answer
        let again = try CLI.run(["--model", "ok/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: offline)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(Self.flat(again.stdout).contains("fetched earlier from the Hub, kept in \(kept.path)"))
    }

    @Test("a gated model: no token, a wrong one, one without the licence, a good one")
    func gated() throws {
        let server = try Server()
        defer { server.stop() }
        let cases: [(token: String?, mentions: String?)] = [
            (nil, "accept the licence on \(server.endpoint)/gated/Llama-Copy and set HF_TOKEN"),
            ("wrong-\(Self.secret)", "the Hub refused the token"),
            ("nolicence", "gated: accept the licence"),
            ("good", nil),
        ]
        for c in cases {
            let (env, home) = try Self.environment(server, c.token.map { ["HF_TOKEN": $0] } ?? [:])
            let r = try CLI.run(["--model", "gated/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: env)
            if let mentions = c.mentions {
                #expect(r.status == 2 && r.stdout.isEmpty, "\(c.token ?? "no token")")
                #expect(r.stderr.contains(mentions) && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            } else {
                #expect(r.status == 0, "\(r.stderr)")
            }
            #expect(!(r.stdout + r.stderr).contains(Self.secret) && !Self.contents(of: home).contains(Self.secret))
        }
    }

    @Test("the token file huggingface-cli login writes is read, and never copied anywhere")
    func tokenFile() throws {
        let server = try Server()
        defer { server.stop() }
        let (env, home) = try Self.environment(server)
        let tokenFile = home.appendingPathComponent(".cache/huggingface/token")
        try FileManager.default.createDirectory(at: tokenFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("good\n".utf8).write(to: tokenFile)
        let r = try CLI.run(["--model", "gated/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!(r.stdout + r.stderr).contains("good"))
    }

    @Test("a redirect to another host does not carry the token; one on the same host does")
    func redirects() throws {
        let server = try Server()
        defer { server.stop() }
        let (env, home) = try Self.environment(server, ["HF_TOKEN": Self.secret])
        let away = try CLI.run(["--model", "away/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: env)
        #expect(away.status == 0, "\(away.stderr)")
        #expect(server.seen() == [false])
        var good = env
        good["HF_TOKEN"] = "good"
        let renamed = try CLI.run(["--model", "renamed/Llama-Copy", "--method", "lora", "--gpu", "24GB"], environment: good)
        #expect(renamed.status == 0, "\(renamed.stderr)")
        #expect(!Self.contents(of: home).contains(Self.secret))
    }

    @Test("every other Hub failure is one line on stderr that says what to do", arguments: [
        ("missing/x", [:], "not found on the Hub: check the id"),
        ("norev/x@v9", [:], "revision 'v9' not found: check the id and the revision"),
        ("rate/x", [:], "rate-limiting"),
        ("slow/x", [:], "did not answer within 2 s"),
        ("cut/x", [:], "cut short"),
        ("huge/x", [:], "more than 16 MiB"),
        ("bigheader/x", [:], "more than 16 MiB"),
        ("html/x", [:], "not valid JSON"),
        ("ok/x", ["HF_HUB_OFFLINE": "1"], "HF_HUB_OFFLINE is set"),
        ("ok/x", ["HF_ENDPOINT": "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
        ("ok/x", ["HF_ENDPOINT": "ftp://example"], "is not an http(s) URL"),
        ("gated/x", ["HF_TOKEN": "good\r\nX-Injected: 1"], "characters no Hugging Face token has"),
    ] as [(String, [String: String], String)])
    func failures(_ model: String, _ extra: [String: String], _ mentions: String) throws {
        let server = try Server()
        defer { server.stop() }
        let (env, home) = try Self.environment(server, extra)
        let r = try CLI.run(["--model", model, "--gpu", "24GB"], environment: env)
        #expect(r.status == 2 && !r.signalled && r.stdout.isEmpty, "\(model): status \(r.status)")
        #expect(r.stderr.hasPrefix("peft-plan: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(mentions), "\(model): \(r.stderr)")
        // nothing that failed is kept
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent(".cache/peft-plan").path) || Self.contents(of: home.appendingPathComponent(".cache/peft-plan")).isEmpty)
    }
}
