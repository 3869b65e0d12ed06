import Foundation
import PEFTPlan

/// A calibration run as `peft-plan calibrate --format json` writes it, read for the parity
/// and residual charts: predicted and measured bytes per burst and component.
public struct CalibrationData: Sendable {
    public struct Run: Sendable {
        public var id: String
        public var predicted: [String: Double]
        public var measured: [String: Double]
        /// Why the burst is not like for like (then it is listed, not plotted).
        public var note: String?
    }

    public var backend: String
    public var runtime: String
    public var environment: [(String, String)]
    public var runs: [Run]

    /// The JSON as it is written, decoded: engine runs carry a label and a shape, torch runs
    /// an id; numbers and environment values of any JSON kind.
    private struct File: Decodable {
        struct Entry: Decodable {
            var id: String?
            var label: String?
            var batch: Int?
            var seq: Int?
            var gradCheckpointing: Bool?
            var predicted: [String: Number]?
            var measured: [String: Number]?
            var note: String?
        }
        /// A JSON value read as a number where it is one, as text where it is a scalar.
        struct Number: Decodable {
            var value: Double?
            var text: String?
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if c.decodeNil() { return }
                if let b = try? c.decode(Bool.self) { text = "\(b)"; return }
                if let i = try? c.decode(Int.self) { value = Double(i); text = "\(i)"; return }
                if let d = try? c.decode(Double.self) { value = d; text = "\(d)"; return }
                text = try? c.decode(String.self)
            }
        }
        var backend: String?
        var runtime: String?
        var environment: [String: Number]?
        var runs: [Entry]
    }

    /// Reads a calibration's JSON; nil when it is not a calibration result.
    public init?(data: Data) {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        guard let f = try? d.decode(File.self, from: data) else { return nil }
        backend = f.backend ?? "?"
        runtime = f.runtime ?? "?"
        let env = f.environment ?? [:]
        environment = env.keys.sorted().compactMap { k in env[k]?.text.map { (k, $0) } }
        func numbers(_ o: [String: File.Number]?) -> [String: Double] { (o ?? [:]).compactMapValues(\.value) }
        runs = f.runs.map { r in
            var id = r.id ?? r.label ?? "burst"
            if r.id == nil, let b = r.batch, let s = r.seq { id += "-b\(b)-s\(s)" + (r.gradCheckpointing == true ? "-ckpt" : "") }
            return Run(id: id, predicted: numbers(r.predicted), measured: numbers(r.measured), note: r.note)
        }
    }

    /// The components present in any run, in a fixed order (the known ones first).
    public var components: [String] {
        let known = ["frozen_weights", "trainable_weights", "gradients", "optimizer_states", "activations", "activation_gradients", "logits",
                     "transient", "allocated_peak", "reserved_peak"]
        let present = Set(runs.flatMap { Array($0.predicted.keys) + Array($0.measured.keys) })
        return known.filter(present.contains) + present.subtracting(known).sorted()
    }

    /// (run, component, predicted, measured) for every like-for-like pair with bytes on both sides.
    public var points: [(run: String, component: String, predicted: Double, measured: Double)] {
        runs.filter { $0.note == nil }.flatMap { r in
            components.compactMap { k in
                // bytes on both sides, finite: a results file with 1e308 or inf has no place on a log axis
                guard let p = r.predicted[k], let m = r.measured[k], p > 0, m > 0, p.isFinite, m.isFinite else { return nil }
                return (r.id, k, p, m)
            }
        }
    }
}

/// The calibration document: parity plot (predicted against measured) and residuals per
/// component, with the table behind them.
public enum CalibrationReport {
    public enum Chart: String, CaseIterable, Sendable { case parity, residuals }

    /// Short component names for narrow columns and axis labels.
    static let abbreviations = ["frozen_weights": "frozen w.", "trainable_weights": "trainable w.", "gradients": "gradients", "optimizer_states": "optim. st.",
                                "activations": "activations", "activation_gradients": "act. grads", "logits": "logits", "transient": "transient",
                                "allocated_peak": "alloc. peak", "reserved_peak": "resv. peak"]

    static func shortName(_ k: String) -> String { abbreviations[k] ?? String(k.replacingOccurrences(of: "_", with: " ").prefix(11)) }

    /// A signed percentage with a true minus sign.
    static func percent(_ e: Double, _ digits: Int = 3) -> String {
        let s = String(format: "%+.\(digits)f%%", e * 100)
        return s.hasPrefix("-") ? "−" + s.dropFirst() : s
    }

    /// The relative errors of some pairs and the largest by magnitude (0 when none).
    static func errors(_ pairs: [(run: String, component: String, predicted: Double, measured: Double)]) -> (all: [Double], worst: Double, worstRun: String) {
        let e = pairs.map { relativeError(predicted: $0.predicted, measured: $0.measured) ?? .infinity }
        guard let i = e.indices.max(by: { abs(e[$0]) < abs(e[$1]) }) else { return ([], 0, "") }
        return (e, e[i], pairs[i].run)
    }

    static let colors = [0x0072B2, 0xE69F00, 0x009E73, 0xCC79A7, 0x56B4E9, 0xD55E00, 0x000000, 0x999999, 0xF0E442, 0x6A3D9A].map(Canvas.Color.init)

    static func style(_ d: CalibrationData, _ k: String) -> (Canvas.Color, Canvas.Marker) {
        let i = d.components.firstIndex(of: k) ?? 0
        return (colors[i % colors.count], Canvas.Marker.allCases[i % Canvas.Marker.allCases.count])
    }

    /// Predicted against measured bytes on log axes, the line of equality and ±10% lines.
    public static func parity(_ d: CalibrationData, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let pts = d.points
        let all = pts.flatMap { [$0.predicted, $0.measured] }
        let lo = pow(2, floor(log2(all.min() ?? 1))), hi = pow(2, ceil(log2(all.max() ?? 2)))
        c.text("Predicted against measured bytes (\(pts.count) pairs, \(d.runs.filter { $0.note == nil }.count) bursts)", x, y + 11, size: 11, bold: true)
        let side = min(w - 60 - 150, h - 34 - 40)
        let p = Plot(c, x: x + 60, y: y + 34, w: side, h: side, xKind: .log, xRange: (lo, max(hi, lo * 2)), yKind: .log, yRange: (lo, max(hi, lo * 2)))
        let span = log2(max(hi, lo * 2) / lo), step = max(1, (span / 7).rounded(.up))
        let ticks = stride(from: log2(lo), through: log2(max(hi, lo * 2)), by: step).map { (pow(2, $0), byteLabel(pow(2, $0))) }
        p.axes(xTicks: ticks, yTicks: ticks, xTitle: "measured", yTitle: "predicted")
        c.clip(p.x, p.y, p.w, p.h)
        c.polyline([(p.px(lo), p.py(lo)), (p.px(hi), p.py(hi))], .grey, width: 0.8)
        for f in [1.1, 1 / 1.1] { c.polyline([(p.px(lo), p.py(lo * f)), (p.px(hi), p.py(hi * f))], .grey, width: 0.5, dash: true) }
        for q in pts {
            let st = style(d, q.component)
            c.marker(st.1, p.px(q.measured), p.py(q.predicted), st.0, size: 4.5)
        }
        c.unclip()
        let items = d.components.filter { k in pts.contains { $0.component == k } }.map { LegendItem(key: .marker(style(d, $0).1, style(d, $0).0), label: $0.replacingOccurrences(of: "_", with: " ")) }
            + [LegendItem(key: .line(.grey, dashed: false), label: "equal"), LegendItem(key: .line(.grey, dashed: true), label: "±10%")]
        var ly = p.y + 8
        for item in items {
            legend([item], on: c, x: p.x + p.w + 16, y: ly, width: 150)
            ly += 13
        }
    }

    /// (predicted − measured) / measured per component, one point per burst.
    public static func residuals(_ d: CalibrationData, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let pts = d.points
        let comps = d.components.filter { k in pts.contains { $0.component == k } }
        let errors = pts.map { ($0.predicted / $0.measured - 1) * 100 }
        let m = max(errors.map(abs).max() ?? 0, 0.5) * 1.1
        let ticks = niceTicks(maximum: m, target: 4)
        let top = ticks.last ?? m
        c.text("Prediction error per component, (predicted − measured) / measured", x, y + 11, size: 11, bold: true)
        let p = Plot(c, x: x + 50, y: y + 34, w: w - 60, h: h - 34 - 70, xKind: .linear, xRange: (0, Double(max(comps.count, 1))),
                     yKind: .linear, yRange: (-top, top))
        let yt = ticks.flatMap { $0 == 0 ? [(0.0, "0")] : [($0, "+" + short($0) + "%"), (-$0, "−" + short($0) + "%")] }
        p.axes(xTicks: [], yTicks: yt, xTitle: "", yTitle: "error")
        c.line(p.x, p.py(0), p.x + p.w, p.py(0), .black, width: 0.8)
        let slot = p.w / Double(max(comps.count, 1))
        for (i, k) in comps.enumerated() {
            let here = pts.filter { $0.component == k }
            let st = style(d, k), cx = p.x + slot * (Double(i) + 0.5)
            for (j, q) in here.enumerated() {
                // a deterministic spread across the slot so that equal errors do not hide each other
                let dx = (Double(j % 9) - 4) / 4 * slot * 0.3
                c.marker(st.1, cx + dx, p.py((q.predicted / q.measured - 1) * 100), st.0, size: 4)
            }
            let worst = Self.errors(here).worst
            c.text(shortName(k), cx, p.y + p.h + 12, size: 7, align: .center)
            c.text("worst " + (worst == 0 ? "0" : percent(worst)), cx, p.y + p.h + 22, size: 6.5, align: .center, color: .grey)
        }
    }

    /// Writes the document (PDF) or one chart (SVG, PNG; `chart`, default parity).
    public static func write(_ d: CalibrationData, title: String, to path: String, chart: Chart? = nil) throws {
        guard let format = CanvasFormat(path: path) else {
            throw PlanError.invalidOption(option: "--report", value: path, accepted: "a file ending in .pdf, .svg or .png")
        }
        guard !d.points.isEmpty else {
            throw PlanError.invalidOption(option: "--report", value: path, accepted: "a calibration with at least one like-for-like burst to chart")
        }
        if format != .pdf {
            let which = chart ?? .parity
            let c = try Canvas(format: format, path: path, width: 640, height: which == .parity ? 440 : 400)
            if which == .parity { parity(d, on: c, x: 16, y: 16, w: 608, h: 408) } else { residuals(d, on: c, x: 16, y: 16, w: 608, h: 368) }
            return try c.finish()
        }
        if chart != nil { throw PlanError.contradictoryOptions("--chart picks one chart for an .svg or .png file; a PDF holds every chart") }
        let c = try Canvas(format: .pdf, path: path, width: 595, height: 842)
        let pg = Pages(c, footer: "peft-plan · " + title.replacingOccurrences(of: "Calibration: ", with: "calibration: "))
        pg.y = 80
        for line in pg.wrap(title, width: pg.width, size: 17, bold: true) {
            c.text(line, pg.left, pg.y, size: 17, bold: true)
            pg.y += 22
        }
        pg.y += 4
        pg.paragraph("Backend \(d.backend), predicted by the \(d.runtime) model. " + d.environment.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ".", size: 10)
        let notLike = d.runs.filter { $0.note != nil }
        pg.paragraph("\(d.runs.count) bursts, \(d.runs.count - notLike.count) like for like, \(d.points.count) predicted–measured pairs.", size: 10)
        pg.heading("Error per component")
        let pts = d.points
        pg.table(["component", "pairs", "exact", "median |error|", "worst error", "worst burst"], d.components.compactMap { k in
            let here = pts.filter { $0.component == k }
            guard !here.isEmpty else { return nil }
            let (e, worst, worstRun) = Self.errors(here)
            let sorted = e.map(abs).sorted()
            return [k.replacingOccurrences(of: "_", with: " "), "\(here.count)", "\(e.filter { $0 == 0 }.count)",
                    String(format: "%.3f%%", sorted[sorted.count / 2] * 100), percent(worst), worst == 0 ? "—" : worstRun]
        }, xs: [0, 115, 160, 200, 280, 350], rightAligned: [1, 2, 3, 4])
        pg.y += 6
        parity(d, on: c, x: pg.left - 10, y: pg.chart(420), w: pg.width + 10, h: 420)
        pg.newPage()
        residuals(d, on: c, x: pg.left - 10, y: pg.chart(330), w: pg.width + 10, h: 330)
        pg.heading("Every burst (error per component)")
        let shown = d.components.filter { k in pts.contains { $0.component == k } }
        let like = d.runs.filter { $0.note == nil }
        if like.allSatisfy({ r in shown.allSatisfy { k in r.predicted[k] == r.measured[k] } }) {
            pg.paragraph("All \(like.count) bursts: every component (\(shown.map(shortName).joined(separator: ", "))) predicted exactly, to the byte.", size: 9)
        } else {
            let step = min(58.0, (pg.width - 140) / Double(max(shown.count, 1)))
            let xs = [0.0] + shown.indices.map { 140 + Double($0) * step }
            pg.table(["burst"] + shown.map(shortName), like.map { r in
                [r.id] + shown.map { k in
                    guard let p = r.predicted[k], let m = r.measured[k], m > 0 else { return "—" }
                    let e = p / m - 1
                    return p == m ? "exact" : (abs(e) < 0.000005 ? "< 0.001%" : percent(e))
                }
            }, xs: xs, rightAligned: Set(1...max(1, shown.count)), size: shown.count > 7 ? 6.5 : 7)
            pg.paragraph("—: the component is not in that burst (full fine-tuning freezes no weights).", size: 7, color: .grey)
        }
        if !notLike.isEmpty {
            pg.heading("Not like for like (not charted)")
            for r in notLike { pg.paragraph("\(r.id): \(r.note ?? "")", size: 8, bullet: "•") }
        }
        pg.finish()
        try c.finish()
    }
}
