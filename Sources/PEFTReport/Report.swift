import Foundation
import PEFTPlan

/// Axis ticks at 1, 2 or 5 × 10ᵏ, about `target` of them up to `maximum`.
public func niceTicks(maximum: Double, target: Int = 6) -> [Double] {
    guard maximum.isFinite, maximum > 0 else { return [0, 1] }
    let raw = maximum / Double(max(target, 1))
    let magnitude = pow(10, floor(log10(raw)))
    let step = [1.0, 2.0, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var ticks: [Double] = []
    var v = 0.0
    while v < maximum + step * 0.999 {
        ticks.append(v)
        v += step
    }
    return ticks
}

/// The charts and the document of DESIGN.md §7, drawn from a plan.
public enum Report {
    static let gib = Double(1 << 30)

    /// The memory components a bar stacks, in drawing order: only what is allocated at the
    /// peak (`live_at_peak`), so a bar's height is exactly `device_total`.
    static let components: [(String, @Sendable (MemoryBreakdown) -> Int)] = [
        ("weights", { $0.frozenWeights + $0.trainableWeights + $0.masterWeights }),
        ("gradients", { $0.live.contains(.gradients) ? $0.gradients : 0 }),
        ("optimizer", { $0.optimizerStates - $0.pageableBytes }),
        ("activations", { $0.live.contains(.saved) ? $0.activations : 0 }),
        ("logits", { $0.live.contains(.saved) ? $0.logits : 0 }),
        ("transient", { $0.transient }),
        ("runtime", { $0.reservedPeak - $0.allocatedPeak + $0.runtimeOverhead }),
    ]

    /// Stacked memory bars per method with each GPU size as a dashed line, in the rectangle
    /// (x, y, w, h) of `c`.
    public static func memoryChart(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let plans = r.plans
        let capacities = Array(Set(r.request.gpus.map(\.memoryBytes))).sorted()
        let top = max(plans.map { Double($0.memory.deviceTotal) }.max() ?? 1, Double(capacities.last ?? 1)) / gib * 1.08
        let ticks = niceTicks(maximum: top)
        let axisMax = ticks.last ?? top
        let left = x + 46, bottom = y + h - 48, plotH = h - 82, plotW = w - 46 - 60
        func yOf(_ g: Double) -> Double { bottom - g / axisMax * plotH }
        c.text("Memory of one training step per method (GiB, device total)", x, y + 12, size: 11, bold: true)
        for t in ticks {
            c.line(left, yOf(t), left + plotW, yOf(t), .light, width: 0.5)
            c.text(t.truncatingRemainder(dividingBy: 1) == 0 ? String(format: "%.0f", t) : String(format: "%.1f", t), left - 6, yOf(t) + 3, size: 8, align: .right)
        }
        c.line(left, bottom, left + plotW, bottom, .black, width: 0.8)
        let slot = plotW / Double(max(plans.count, 1)), barW = min(46, slot * 0.6)
        for (i, p) in plans.enumerated() {
            let cx = left + slot * (Double(i) + 0.5)
            var acc = 0.0
            for (k, comp) in components.enumerated() {
                let v = Double(max(0, comp.1(p.memory))) / gib
                guard v > 0 else { continue }
                c.fill(cx - barW / 2, yOf(acc + v), barW, yOf(acc) - yOf(acc + v), Canvas.Color.palette[k % Canvas.Color.palette.count])
                acc += v
            }
            c.text(p.method.rawValue, cx, bottom + 12, size: 8, align: .center)
            c.text(String(format: "%.1f", Double(p.memory.deviceTotal) / gib), cx, yOf(acc) - 3, size: 7, align: .center)
        }
        for cap in capacities {
            let g = Double(cap) / gib
            c.line(left, yOf(g), left + plotW, yOf(g), Canvas.Color(0xCC0000), width: 0.8, dash: true)
            c.text(String(format: "%.0f GiB GPU", g), left + plotW + 4, yOf(g) + 3, size: 7, color: Canvas.Color(0xCC0000))
        }
        // legend: one row under the method names
        var lx = left
        for (k, comp) in components.enumerated() {
            c.fill(lx, bottom + 26, 8, 8, Canvas.Color.palette[k % Canvas.Color.palette.count])
            lx += 12 + c.text(comp.0, lx + 11, bottom + 33, size: 8) + 10
        }
        c.text("GiB", x, y + 30, size: 8, color: .grey)
    }

    static func wrap(_ s: String, width: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in s.split(separator: " ") {
            if line.count + word.count + 1 > width, !line.isEmpty { lines.append(line); line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }

    /// The document: the question and the recommendation, the memory chart, the numbers
    /// behind it, and the assumptions. PDF gets every page; SVG and PNG the chart.
    public static func write(_ r: PlanResult, to path: String) throws {
        guard let format = CanvasFormat(path: path) else {
            throw PlanError.invalidOption(option: "--out", value: path, accepted: "a file ending in .pdf, .svg or .png")
        }
        let (w, h) = format == .pdf ? (595.0, 842.0) : (640.0, 400.0)
        let c = try Canvas(format: format, path: path, width: w, height: h)
        if format != .pdf {
            memoryChart(r, on: c, x: 16, y: 16, w: w - 32, h: h - 32)
            return try c.finish()
        }
        let t = r.request.training
        // page 1: the question and the answer
        c.text("Fine-tuning plan: \(r.request.arch.name)", 50, 80, size: 20, bold: true)
        var y = 110.0
        let question = "Which methods fit \(r.request.arch.name) (\(String(format: "%.2f", Double(r.request.arch.totalParams) / 1e9)) B parameters) "
            + "at micro-batch \(t.batch) × \(t.seq) tokens, \(t.precision.rawValue), on " + r.request.gpus.map(\.name).joined(separator: ", ") + "?"
        for l in wrap(question, width: 80) { c.text(l, 50, y, size: 11); y += 15 }
        y += 15
        c.text("Answer", 50, y, size: 14, bold: true)
        y += 20
        for p in r.plans {
            let fits = p.verdicts.filter(\.fits)
            let best = fits.min { $0.time.costUSD < $1.time.costUSD }
            var line = "\(p.method.rawValue): " + String(format: "%.2f GiB", Double(p.memory.deviceTotal) / gib)
            if let best {
                line += " — fits \(fits.count) of \(p.verdicts.count) GPUs; cheapest \(best.gpu.name), " + String(format: "%.1f h, $%.0f", best.time.hours, best.time.costUSD)
            } else {
                line += " — fits none of these GPUs"
            }
            for l in wrap(line, width: 86) { c.text(l, 60, y, size: 10); y += 14 }
        }
        c.text("Generated by peft-plan from the same plan as `peft-plan plan --format json`.", 50, 800, size: 8, color: .grey)
        c.newPage()
        // page 2: the chart
        memoryChart(r, on: c, x: 40, y: 60, w: w - 80, h: 380)
        c.newPage()
        // page 3: the numbers
        c.text("The numbers (GiB)", 50, 70, size: 14, bold: true)
        let headers = ["method", "weights", "grads", "optim", "activ", "logits", "transnt", "device", "peak at"]
        let xs = [50.0, 130, 185, 235, 285, 335, 385, 440, 495]
        y = 95
        for (i, hd) in headers.enumerated() { c.text(hd, xs[i], y, size: 9, bold: true) }
        y += 14
        for p in r.plans {
            let m = p.memory
            let values = [p.method.rawValue] + [m.frozenWeights + m.trainableWeights + m.masterWeights, m.gradients, m.optimizerStates, m.activations,
                                                m.logits, m.transient, m.deviceTotal].map { String(format: "%.2f", Double($0) / gib) } + [m.peakPhase.rawValue]
            for (i, v) in values.enumerated() { c.text(v, xs[i], y, size: 9) }
            y += 13
        }
        y += 20
        c.text("Assumptions", 50, y, size: 14, bold: true)
        y += 18
        for n in r.notes {
            for (j, l) in wrap(n, width: 95).enumerated() {
                if y > 800 { c.newPage(); y = 60 }
                c.text((j == 0 ? "• " : "  ") + l, 50, y, size: 8)
                y += 11
            }
        }
        try c.finish()
    }
}
