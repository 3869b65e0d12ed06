import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

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
        let info = try Self.tool("pdfinfo", [a])
        let pages = info.split(separator: "\n").first { $0.hasPrefix("Pages:") }.map { Int($0.split(separator: " ").last!) ?? 0 } ?? 0
        #expect(pages >= 3, "\(pages) pages")
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
        #expect(be32(16) == 1280 && be32(20) == 800, "PNG size \(be32(16)) × \(be32(20))")
        // nothing but the two outputs is left in the folder (no partial files)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["m.png", "m.svg"])
    }
}
