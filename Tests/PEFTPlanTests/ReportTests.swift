import Foundation
import PEFTTestSupport
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import PEFTPlan

/// `peft-plan report`: valid PDF (several pages, read back by poppler), SVG (XML) and PNG
/// (header and size) for a plan; byte-identical across two runs; the figures on the pages
/// are the JSON plan's.
@Suite("Reports")
struct ReportTests {
    static let args = ["report", "--model", "8b", "--gpu", "24GB", "--gpu", "80GB"]

    static func tool(_ name: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [name] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
        return String(decoding: data, as: UTF8.self)
    }

    /// The page count poppler reads from a PDF.
    static func pages(_ path: String) throws -> Int {
        let info = try tool("pdfinfo", [path])
        return info.split(separator: "\n").first { $0.hasPrefix("Pages:") }.map { Int($0.split(separator: " ").last!) ?? 0 } ?? 0
    }

    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-plan-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func pdfPagesFiguresAndReproducibility() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.pdf").path, b = dir.appendingPathComponent("b.pdf").path
        for out in [a, b] {
            let r = try CLI.run(Self.args + ["--out", out])
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)), "two renders differ")
        let pages = try Self.pages(a)
        #expect(pages >= 6, "\(pages) pages")
        // every method's device total, as the JSON plan has it, appears on the pages
        let text = try Self.tool("pdftotext", ["-layout", a, "-"])
        let json = try CLI.run(["--model", "8b", "--gpu", "24GB", "--gpu", "80GB", "--format", "json"])
        let plans = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["plans"] as? [[String: Any]])
        #expect(plans.count == 7)
        for p in plans {
            let total = try #require((p["memory"] as? [String: Any])?["device_total"] as? Int)
            let figure = String(format: "%.2f GiB", Double(total) / Double(1 << 30))
            #expect(text.contains("\(p["method"]!): \(figure)"), "page 1 lacks \(p["method"]!): \(figure)")
        }
    }

    /// The plan JSON of `args` (without the report-only options).
    static func planJSON(_ args: [String]) throws -> [[String: Any]] {
        let r = try CLI.run(args + ["--format", "json"])
        return try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["plans"] as? [[String: Any]])
    }

    /// The tables behind the charts carry the JSON plan's figures: the longest sequence per
    /// GPU size (fit matrix page), the cheapest fitting GPU's cost per method (time page), and
    /// the claims page carries every verdict `peft-plan claims` gives.
    /// With the default GPUs, each size's column stands for a card that runs bf16 (the
    /// 16 GB cards include the T4 and V100, which do not): no column reads "no bf16".
    @Test func sizeColumnsStandForCardsThatRunThePlan() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pdf = dir.appendingPathComponent("d.pdf").path
        let r = try CLI.run(["report", "--model", "8b", "--method", "qlora", "--out", pdf])
        #expect(r.status == 0, "\(r.stderr)")
        let text = try Self.tool("pdftotext", ["-layout", pdf, "-"])
        let table = try #require(text.range(of: "Longest sequence at micro-batch").map { String(text[$0.upperBound...].prefix(1500)) })
        #expect(table.contains("16 GB") && table.contains("48 GB"), "\(table)")
        #expect(!table.contains("no bf16"), "\(table)")
        #expect(table.contains("RTX 5070 Ti, 15.47 GiB") || table.contains("RTX 5080, 15.47 GiB"), "\(table)")
    }

    @Test func tablesAndClaimsMatchTheJSON() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pdf = dir.appendingPathComponent("r.pdf").path
        let r = try CLI.run(Self.args + ["--out", pdf])
        #expect(r.status == 0, "\(r.stderr)")
        let text = try Self.tool("pdftotext", ["-layout", pdf, "-"])
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let plans = try Self.planJSON(["--model", "8b", "--gpu", "24GB", "--gpu", "80GB"])
        for p in plans {
            let method = try #require(p["method"] as? String)
            let gpus = try #require(p["gpus"] as? [[String: Any]])
            // the longest-sequence table: one row per method, per size the first GPU with the
            // least usable memory among those that run the precision
            func leastUsable(_ gb: Int) throws -> [String: Any] {
                let sized = gpus.filter { ($0["memory_bytes"] as? Int) == gb << 30 && $0["blocker"] is NSNull }
                let least = try #require(sized.compactMap { $0["usable_memory_bytes"] as? Int }.min())
                return try #require(sized.first { ($0["usable_memory_bytes"] as? Int) == least })
            }
            let small = try leastUsable(24), big = try leastUsable(80)
            let cells = [small, big].map { g in (g["max_seq"] as? Int).map { $0 > 0 ? "\($0)" : "none" } ?? "?" }
            #expect(lines.contains { l in
                let words = l.split(separator: " ").map(String.init)
                return words.first == method && words.count == 3 && Array(words.dropFirst()) == cells
            }, "no row '\(method) \(cells.joined(separator: " "))' in the longest-sequence table")
            // the cheapest fitting GPU and its cost, as the JSON has them
            if let best = gpus.filter({ $0["fits"] as? Bool == true }).min(by: { ($0["cost_usd"] as! Double) < ($1["cost_usd"] as! Double) }) {
                let name = try #require(best["name"] as? String)
                let cost = best["cost_usd"] as! Double
                let figure = cost < 100 ? String(format: "$%.2f", cost) : String(format: "$%.0f", cost)
                #expect(lines.contains { $0.hasPrefix(method + " ") && $0.contains(name) && $0.contains(figure) },
                        "the time table lacks \(method) on \(name) at \(figure)")
            }
        }
        let claims = try CLI.run(["claims", "--format", "json"])
        let list = try #require((try JSONSerialization.jsonObject(with: Data(claims.stdout.utf8)) as? [String: Any])?["claims"] as? [[String: Any]])
        let flat = text.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        #expect(flat.contains("Published claims, checked"))
        for c in list {
            let claim = try #require(c["claim"] as? String), verdict = try #require(c["verdict"] as? String)
            // the verdict printed right after this claim is this claim's, with its condition
            let after = try #require(flat.range(of: claim).map { flat[$0.upperBound...] }, "the claims page lacks \"\(claim)\"")
            let printed = try #require(after.range(of: "Verdict: ").map { after[$0.upperBound...] })
            let expected = verdict + ((c["condition"] as? String).map { verdict == "holds only if" ? " " + $0 : " — " + $0 } ?? "")
            #expect(printed.hasPrefix(expected.prefix(60)), "\(claim): the page says \(printed.prefix(60)), the JSON \(expected.prefix(60))")
        }
    }

    @Test func svgAndPNG() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let svg = dir.appendingPathComponent("m.svg"), png = dir.appendingPathComponent("m.png")
        for out in [svg, png] {
            let r = try CLI.run(Self.args + ["--out", out.path])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let parser = XMLParser(data: try Data(contentsOf: svg))
        #expect(parser.parse(), "the SVG is not well-formed XML")
        let bytes = [UInt8](try Data(contentsOf: png))
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "PNG signature")
        func be32(_ o: Int) -> Int { bytes[o..<o + 4].reduce(0) { $0 << 8 | Int($1) } }
        // the summary figure: 900 points wide at 2 pixels per point, at least 420 high
        #expect(be32(16) == 1800 && be32(20) >= 840, "PNG size \(be32(16)) × \(be32(20))")
        // nothing but the two outputs is left in the folder (no partial files)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["m.png", "m.svg"])
    }

    /// Every chart on its own, as SVG, for a sharded plan (so the GPU-count chart has data):
    /// well-formed XML with drawing in it (Cairo writes text as glyph outlines, so the
    /// subject cannot be read back from the SVG).
    @Test func everyChartAsSVG() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let charts = ["summary", "memory", "fit", "seq", "batch", "time", "scaling"]
        for name in charts {
            let out = dir.appendingPathComponent("\(name).svg")
            let r = try CLI.run(["report", "--model", "70b", "--gpu", "80GB", "--gpus", "8", "--sharding", "zero3", "--grad-checkpointing",
                                 "--out", out.path, "--chart", name])
            #expect(r.status == 0, "--chart \(name): \(r.stderr)")
            let data = try Data(contentsOf: out)
            #expect(XMLParser(data: data).parse(), "--chart \(name): not well-formed XML")
            #expect(data.count > 2000, "--chart \(name): \(data.count) bytes")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).count == charts.count)
    }

    /// `calibrate --compare … --report`: a PDF of two or more pages whose worst error per
    /// component is the JSON comparison's, byte-identical twice; the residual chart as SVG.
    @Test func calibrationReport() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let results = repoRoot.appendingPathComponent("reports/calibration/cuda-llama-3.1-8b.json").path
        let a = dir.appendingPathComponent("a.pdf").path, b = dir.appendingPathComponent("b.pdf").path
        for out in [a, b] {
            let r = try CLI.run(["calibrate", "--compare", results, "--report", out])
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)), "two renders differ")
        let pages = try Self.pages(a)
        #expect(pages >= 2, "\(pages) pages")
        let text = try Self.tool("pdftotext", ["-layout", a, "-"])
        let json = try CLI.run(["calibrate", "--compare", results, "--format", "json"])
        let runs = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["runs"] as? [[String: Any]])
        for component in ["allocated_peak", "reserved_peak", "activations"] {
            let errors = runs.filter { $0["note"] is NSNull }.compactMap { ($0["error"] as? [String: Any])?[component] as? Double }
            let worst = try #require(errors.max { abs($0) < abs($1) })
            let figure = String(format: "%+.3f%%", worst * 100).replacingOccurrences(of: "-", with: "−")
            let row = component.replacingOccurrences(of: "_", with: " ")
            #expect(text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.contains { $0.hasPrefix(row) && $0.contains(figure) }, "no '\(row) … \(figure)' row")
        }
        let svg = dir.appendingPathComponent("r.svg")
        let r = try CLI.run(["calibrate", "--compare", results, "--report", svg.path, "--chart", "residuals"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(XMLParser(data: try Data(contentsOf: svg)).parse())
    }
}
