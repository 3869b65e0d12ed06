import Foundation
import PEFTOutput
import PEFTPlan

/// Text laid out down A4 pages: paragraphs wrapped to a width, tables, and a new page
/// whenever the next line would run past the bottom margin.
final class Pages {
    let c: Canvas
    var y: Double
    let left = 50.0, width = 495.0, bottom = 800.0, top = 60.0
    var page = 1
    let footer: String

    init(_ c: Canvas, footer: String) {
        self.c = c
        self.footer = footer
        y = top
    }

    func newPage() {
        finish()
        c.newPage()
        page += 1
        y = top
    }

    /// The current page's footer (the last page's, before the file is finished).
    func finish() { c.text(footer + "  ·  page \(page)", left + width, 822, size: 7, align: .right, color: .grey) }

    /// Room for `h` points, or a new page.
    func need(_ h: Double) { if y + h > bottom { newPage() } }

    /// Words wrapped to `width` points at `size`.
    func wrap(_ s: String, width: Double, size: Double, bold: Bool = false) -> [String] {
        var lines: [String] = [], line = ""
        for word in s.split(separator: " ", omittingEmptySubsequences: true) {
            let candidate = line.isEmpty ? String(word) : line + " " + word
            if !line.isEmpty && c.textWidth(candidate, size: size, bold: bold) > width {
                lines.append(line)
                line = String(word)
            } else {
                line = candidate
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }

    func heading(_ s: String) {
        need(40)
        y += 8
        c.text(s, left, y, size: 14, bold: true)
        y += 20
    }

    func paragraph(_ s: String, size: Double = 9.5, indent: Double = 0, bullet: String? = nil, bold: Bool = false, color: Canvas.Color = .black) {
        let lines = wrap(s, width: width - indent - (bullet == nil ? 0 : 10), size: size, bold: bold)
        for (i, l) in lines.enumerated() {
            need(size + 3)
            if i == 0, let bullet { c.text(bullet, left + indent, y, size: size, color: color) }
            c.text(l, left + indent + (bullet == nil ? 0 : 10), y, size: size, bold: bold, color: color)
            y += size + 3.5
        }
    }

    /// A table: column x offsets, right-aligned numeric columns, a bold header row.
    /// A table; `dim(row, column)` greys a cell out. The header repeats on every page.
    func table(_ header: [String], _ rows: [[String]], xs: [Double], rightAligned: Set<Int> = [], size: Double = 8,
               dim: (Int, Int) -> Bool = { _, _ in false }) {
        need(size * 3)
        func row(_ cells: [String], bold: Bool, index: Int) {
            for (i, cell) in cells.enumerated() where i < xs.count {
                let right = rightAligned.contains(i)
                let lastWidth = xs.count > 1 ? xs[xs.count - 1] - xs[xs.count - 2] : width
                let x = right ? left + (i + 1 < xs.count ? xs[i + 1] - 8 : xs[i] + lastWidth - 8) : left + xs[i]
                c.text(cell, x, y, size: size, bold: bold, align: right ? .right : .left, color: index >= 0 && dim(index, i) ? Canvas.Color(0x9A9A9A) : .black)
            }
            y += size + 4
        }
        func headerRow() {
            row(header, bold: true, index: -1)
            c.line(left, y - size - 1, left + width, y - size - 1, .light, width: 0.5)
        }
        headerRow()
        for (k, r) in rows.enumerated() {
            if y + size + 4 > bottom { newPage(); headerRow() }
            row(r, bold: false, index: k)
        }
        y += 6
    }

    /// Space for a chart of height `h` (a new page if it does not fit); returns its top.
    func chart(_ h: Double) -> Double {
        need(h)
        let top = y
        y += h
        return top
    }
}

/// The budget-review document (PEFTReport/README.md), drawn from a plan: the question and the recommendation,
/// the charts with the numbers behind them, the published claims checked, the assumptions
/// and the sources of the hardware figures.
public enum Report {
    static let gib = Double(1 << 30)

    static func gibs(_ b: Int) -> String { String(format: "%.2f", Double(b) / gib) }

    /// Dollars with cents below $100, so that close plans do not read as ties.
    static func money(_ d: Double) -> String { d < 100 ? String(format: "$%.2f", d) : String(format: "$%.0f", d) }

    /// A file size with three significant figures: 312 KiB, 12.5 MiB, 15.0 GiB.
    static func fileSize(_ b: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var x = Double(b), u = 0
        while x >= 1024 && u < units.count - 1 { x /= 1024; u += 1 }
        return (x >= 100 || u == 0 ? String(format: "%.0f", x) : String(format: x >= 10 ? "%.1f" : "%.2f", x)) + " " + units[u]
    }

    /// The cheapest plan that fits, over every method and GPU of the request.
    public static func recommendation(_ r: PlanResult) -> (method: Method, verdict: GPUVerdict)? {
        r.plans.compactMap { p in PlanCharts.cheapest(p).map { (p.method, $0) } }.min { PlanCharts.cheaper($0.1, $1.1) }
    }

    /// The size of a chart drawn on its own (SVG or PNG), in points.
    public static func size(of chart: ChartName, _ r: PlanResult) -> (Double, Double) {
        switch chart {
        case .summary: return (900, max(420, PlanCharts.fitHeight(r, compact: true) + 40))
        case .memory: return (640, 400)
        case .fit: return (640, PlanCharts.fitHeight(r, compact: false) + 20)
        case .seq, .batch, .scaling: return (640, 420)
        case .time: return (640, PlanCharts.timeHeight(r) + 20)
        }
    }

    /// Draws one chart to fill a canvas.
    public static func draw(_ chart: ChartName, _ r: PlanResult, on c: Canvas) {
        let w = c.width - 32, h = c.height - 32
        switch chart {
        case .summary:
            PlanCharts.memory(r, on: c, x: 16, y: 16, w: 520, h: min(h, 400))
            PlanCharts.fitMatrix(r, on: c, x: 556, y: 16, w: c.width - 556 - 16, compact: true)
        case .memory: PlanCharts.memory(r, on: c, x: 16, y: 16, w: w, h: h)
        case .fit: PlanCharts.fitMatrix(r, on: c, x: 16, y: 16, w: w)
        case .seq: PlanCharts.seqCurve(r, on: c, x: 16, y: 16, w: w, h: h)
        case .batch: PlanCharts.batchCurve(r, on: c, x: 16, y: 16, w: w, h: h)
        case .time: PlanCharts.timeCost(r, on: c, x: 16, y: 16, w: w)
        case .scaling: PlanCharts.scaling(r, on: c, x: 16, y: 16, w: w, h: h)
        }
    }

    /// Writes the report: every page to a PDF, or one chart (`chart`, default the summary
    /// figure) to an SVG or PNG.
    public static func write(_ r: PlanResult, to path: String, chart: ChartName? = nil, claims: [Claim] = []) throws {
        guard let format = CanvasFormat(path: path) else {
            throw PlanError.invalidOption(option: "--out", value: path, accepted: "a file ending in .pdf, .svg or .png")
        }
        if format != .pdf {
            let name = chart ?? .summary
            let (w, h) = size(of: name, r)
            let c = try Canvas(format: format, path: path, width: w, height: h)
            draw(name, r, on: c)
            return try c.finish()
        }
        if chart != nil {
            throw PlanError.contradictoryOptions("--chart picks one chart for an .svg or .png file; a PDF holds every chart")
        }
        let c = try Canvas(format: .pdf, path: path, width: 595, height: 842)
        document(r, claims: claims, on: c)
        try c.finish()
    }

    static func document(_ r: PlanResult, claims: [Claim], on c: Canvas) {
        let t = r.request.training, a = r.request.arch
        let pg = Pages(c, footer: "peft-plan · \(a.name)")
        // Page 1: the question and the answer
        c.text("Fine-tuning plan: \(a.name)", pg.left, 80, size: 20, bold: true)
        pg.y = 108
        let n = r.request.scale.gpus
        let gpuWords = r.request.gpus.count > 6 ? "\(r.request.gpus.count) GPU types (\(PlanCharts.capacities(r).map(\.label).joined(separator: ", ")))" : r.request.gpus.map(\.name).joined(separator: ", ")
        pg.paragraph("Question. Which fine-tuning methods fit \(a.name) (\(String(format: "%.2f", Double(a.totalParams) / 1e9)) B parameters) at micro-batch \(t.batch) × \(t.seq) tokens in \(t.precision.rawValue) with \(t.optimizer.rawValue)"
            + (n > 1 ? " on \(n) GPUs (sharding \(r.request.scale.sharding.rawValue))" : "")
            + (t.trainer.kind != .sft ? " under TRL's \(t.trainer.kind.title) trainer" : "") + ", on \(gpuWords); how long does each take and what does it cost?", size: 11)
        pg.y += 8
        pg.heading("Recommendation")
        if let best = recommendation(r) {
            let v = best.verdict
            pg.paragraph("\(best.method.rawValue) on \(v.gpu.name)\(n > 1 ? " × \(n)" : ""): " + String(format: "%.1f h, ", v.time.hours) + money(v.time.costUSD)
                + " (P10–P90 \(PlanOutput.range(v.time)))"
                + ", \(gibs(v.gpu.usableMemoryBytes - v.headroomBytes)) of \(gibs(v.gpu.usableMemoryBytes)) GiB usable (\(v.gpu.nominalMemoryGB) GB card) used, micro-batch up to \(v.maxMicroBatch).", size: 11, bold: true)
            // the best plan on each GPU size, for a question asked about smaller cards
            let sizes = PlanCharts.capacities(r)
            if sizes.count > 1 {
                for s in sizes {
                    let here = r.plans.flatMap { p in p.verdicts.filter { $0.fits && $0.gpu.nominalMemoryGB == s.gb }.map { (p.method, $0) } }
                    let line = here.min { PlanCharts.cheaper($0.1, $1.1) }
                        .map { "\($0.0.rawValue) on \($0.1.gpu.name), " + String(format: "%.1f h, ", $0.1.time.hours) + money($0.1.time.costUSD) } ?? "no method fits"
                    pg.paragraph("On \(s.label) cards: \(line)", size: 9.5, indent: 10)
                }
            }
            pg.paragraph("The rule: the cheapest plan that fits, over every method and GPU type asked about (ties: the one with more memory to spare). peft-plan predicts memory, time and cost, not the quality of the fine-tuned model: "
                + "when full fine-tuning or a larger adapter is needed for quality, read its line below.", size: 8.5, color: .grey)
        } else {
            pg.paragraph("No method fits any of these GPUs at this setting. See the advice in `peft-plan plan`, or plan with gradient checkpointing, QLoRA, a shorter sequence or more GPUs with sharding.", size: 11, bold: true)
        }
        pg.heading("Answer per method")
        for p in r.plans {
            let fits = p.verdicts.filter(\.fits)
            var line = "\(p.method.rawValue): " + String(format: "%.2f GiB", Double(p.memory.deviceTotal) / gib)
            if let best = PlanCharts.cheapest(p) {
                line += " — fits \(fits.count) of \(p.verdicts.count) GPU types; cheapest \(best.gpu.name), " + String(format: "%.1f h, ", best.time.hours) + money(best.time.costUSD)
            } else {
                line += " — fits none of these GPU types"
            }
            pg.paragraph(line, size: 9.5, indent: 10)
        }
        for (m, why) in r.skipped { pg.paragraph("\(m.rawValue): left out — \(why.forCommandLine)", size: 9, indent: 10, color: .grey) }
        let trainer = PlanOutput.trainerLines(r)
        if !trainer.isEmpty {
            pg.heading("Trainer: \(t.trainer.kind.title)")
            for line in trainer { pg.paragraph(line.text, size: 9, indent: line.level == 0 ? 0 : 10) }
        }
        pg.y += 10
        let summaryH = PlanCharts.fitHeight(r, compact: true)
        if pg.y + summaryH <= pg.bottom { PlanCharts.fitMatrix(r, on: c, x: pg.left, y: pg.chart(summaryH), w: pg.width, compact: true) }
        pg.newPage()

        // Memory: the chart and the numbers
        PlanCharts.memory(r, on: c, x: pg.left - 10, y: pg.chart(380), w: pg.width + 10, h: 380)
        pg.heading("The numbers behind it (GiB)")
        pg.table(["method", "weights", "grads", "optimizer", "activ.", "logits", "transient", "allocated", "device", "peak in"],
                 r.plans.map { p in
                     let m = p.memory
                     return [p.method.rawValue] + [m.frozenWeights + m.trainableWeights + m.masterWeights, m.gradients, m.optimizerStates, m.activations,
                                                   m.logits, m.transient, m.allocatedPeak, m.deviceTotal].map(gibs) + [m.peakPhase.rawValue]
                 }, xs: [0, 62, 110, 158, 212, 256, 300, 350, 404, 452], rightAligned: Set(1...8), dim: { row, col in
                     let m = r.plans[row].memory
                     return (col == 2 && !m.live.contains(.gradients)) || ((col == 4 || col == 5) && !m.live.contains(.saved))
                 })
        if let paged = r.plans.first(where: { $0.memory.pageableBytes > 0 }) {
            pg.paragraph("Paged optimizer states (\(gibs(paged.memory.pageableBytes)) GiB for \(paged.method.rawValue)) may move to host memory: the optimizer column counts them, the bar and the allocated peak do not.", size: 7.5, color: .grey)
        }
        pg.paragraph("Each column is that component's own size. Grey: not allocated at the step's peak (\"peak in\"), so not in the bar. The bar stacks what is: weights, optimizer states, the live ones among gradients, activations and logits, transient buffers, and the allocator's cache with the CUDA context, adding up to the device total.",
                     size: 7.5, color: .grey)
        pg.heading("Parameters")
        pg.table(["method", "trainable", "of all", "adapter file", "checkpointing"],
                 r.plans.map { p in
                     let pct = Double(p.account.trainableParams) / Double(max(1, p.account.totalParams)) * 100
                     let file = p.method.spec.trainsBase ? p.account.totalParams * t.precision.bytes : p.account.adapterFileBytes
                     return [p.method.rawValue, PlanOutput.params(p.account.trainableParams), String(format: pct < 0.1 ? "%.4f%%" : "%.2f%%", pct),
                             fileSize(file), p.checkpointing ? "on" : "off"]
                 }, xs: [0, 70, 160, 230, 330], rightAligned: [1, 2, 3])
        pg.newPage()

        // Fit matrix and the limits behind it
        let fitH = PlanCharts.fitHeight(r, compact: false)
        PlanCharts.fitMatrix(r, on: c, x: pg.left, y: pg.chart(fitH), w: pg.width)
        pg.heading("Longest sequence at micro-batch \(t.batch) (tokens), per GPU size")
        let sizes = PlanCharts.capacities(r)
        // per size, the card the capacity lines stand for
        let bySize: [(String, GPUProfile)] = sizes.map { ($0.label, $0.gpu) }
        // the largest sizes matter most to the question: with more than six, the six largest
        let shown = Array(bySize.suffix(6))
        pg.table(["method"] + shown.map(\.0), r.plans.map { p in
            [p.method.rawValue] + shown.map { _, g in
                p.verdicts.first { $0.gpu.name == g.name }.map { $0.blocker != nil ? "no bf16" : ($0.maxSeq > 0 ? "\($0.maxSeq)" : "none") } ?? ""
            }
        }, xs: [0] + shown.indices.map { 90 + Double($0) * 68 }, rightAligned: Set(1...max(1, shown.count)))
        let cards = shown.map { "\($0.1.name), " + PlanOutput.capacity($0.1.usableMemoryBytes) }.joined(separator: "; ")
        pg.paragraph((bySize.count > shown.count ? "The six largest of \(bySize.count) GPU sizes. " : "")
            + "Each column is the card of that size with the least usable memory among those that run \(t.precision.rawValue) (\(cards)): what every such card of the size holds.", size: 7.5, color: .grey)
        pg.newPage()

        // Curves
        PlanCharts.seqCurve(r, on: c, x: pg.left - 10, y: pg.chart(350), w: pg.width + 10, h: 350)
        pg.y += 20
        PlanCharts.batchCurve(r, on: c, x: pg.left - 10, y: pg.chart(350), w: pg.width + 10, h: 350)
        pg.newPage()

        // Time and cost
        let timeH = PlanCharts.timeHeight(r)
        PlanCharts.timeCost(r, on: c, x: pg.left - 10, y: pg.chart(timeH), w: pg.width + 10)
        pg.heading("Cheapest fitting GPU per method")
        pg.table(["method", "GPU", "tokens/s", "MFU set", "hours", "P10–P90 h", "$/GPU-h", "cost", "P10–P90 $"], r.plans.map { p in
            guard let v = PlanCharts.cheapest(p) else { return [p.method.rawValue, "fits none", "", "", "", "", "", "", ""] }
            let tm = v.time
            return [p.method.rawValue, v.gpu.name, String(format: "%.0f", tm.tokensPerSecond), String(format: "%.2f", tm.mfuUsed), PlanOutput.hours(tm.hours),
                    PlanOutput.hours(tm.hoursP10) + "–" + PlanOutput.hours(tm.hoursP90), String(format: "%.2f", tm.pricePerGPUHour), money(tm.costUSD),
                    money(tm.costP10USD) + "–" + money(tm.costP90USD)]
        }, xs: [0, 50, 135, 180, 218, 258, 330, 375, 432], rightAligned: [2, 3, 4, 5, 6, 7])
        pg.paragraph("MFU set: the fraction of the GPU's dense 16-bit peak the time model assumes for the matmuls (its fitted figure for the GPU, or --mfu); checkpointing's recompute is counted as extra work, not as a lower MFU. "
            + "P10–P90: \(PlanOutput.rangeBasis(r.request.runtime.time, generation: r.plans.first?.verdicts.first?.time.generationRange)).", size: 7.5, color: .grey)
        // the providers compared (--provider): each method's cheapest plan at every offer of its GPU
        let compared = r.plans.compactMap { p in PlanCharts.cheapest(p).map { (p.method, $0) } }.filter { !$0.1.time.quotes.isEmpty }
        if !compared.isEmpty {
            pg.heading("Cost by provider")
            var rows: [[String]] = []
            for (method, v) in compared {
                for q in v.time.quotes.prefix(8) {
                    rows.append([method.rawValue, v.gpu.name, q.provider + (q.tier == "on-demand" ? "" : " (\(q.tier))"), String(format: "%.2f", q.usdPerGPUHour),
                                 "\(q.chargedGPUs)", PlanOutput.hours(q.billedHours), money(q.costUSD), money(q.costP10USD) + "–" + money(q.costP90USD), q.date])
                }
            }
            pg.table(["method", "GPU", "provider", "$/GPU-h", "GPUs", "billed h", "cost", "P10–P90 $", "price date"], rows,
                     xs: [0, 45, 120, 225, 262, 300, 345, 392, 462], rightAligned: [3, 4, 5, 6])
            let spot = r.request.budget.spot.map { String(format: " Interruptible offers add the expected time lost to interruptions (%.3g per instance-hour, a checkpoint every %g min, %g min to restart).", $0.interruptionsPerHour, $0.checkpointMinutes, $0.restartMinutes) } ?? ""
            pg.paragraph("Each provider's cheapest offer of the GPU, billed in its own increments (rounded up, minimum charge) for whole instances; prices with their pages under Hardware figures and in `peft-plan prices`." + spot, size: 7.5, color: .grey)
        }
        if PlanCharts.isSharded(r) {
            pg.newPage()
            PlanCharts.scaling(r, on: c, x: pg.left - 10, y: pg.chart(420), w: pg.width + 10, h: 420)
        }

        // Claims
        if !claims.isEmpty {
            pg.newPage()
            pg.heading("Published claims, checked")
            pg.paragraph(Claims.conventions + " Each is computed by the same model as this plan (`peft-plan claims`).", size: 8, color: .grey)
            pg.y += 4
            for (i, cl) in claims.enumerated() {
                pg.need(60)
                pg.paragraph("\(i + 1). \"\(cl.claim)\" — \(cl.source)", size: 9, bold: true)
                pg.paragraph("Verdict: \(cl.verdict.rawValue)\(cl.phrase)", size: 9, indent: 12,
                             color: cl.verdict == .holds ? Canvas.Color(0x006B4F) : (cl.verdict == .doesNotHold ? Canvas.Color(0xA33D00) : Canvas.Color(0x7A5200)))
                pg.paragraph("peft-plan: \(cl.computed).", size: 8.5, indent: 12)
                pg.paragraph("Assuming \(cl.assumptions).", size: 7.5, indent: 12, color: .grey)
                pg.y += 4
            }
        }

        // Assumptions and sources
        pg.newPage()
        pg.heading("Assumptions")
        pg.paragraph("Every figure in this document comes from the same plan as `peft-plan plan --format json` with these options.", size: 8, color: .grey)
        for note in r.notes { pg.paragraph(note.forCommandLine, size: 8, bullet: "•") }
        pg.heading("Hardware figures and their sources")
        for g in PlanCharts.gpuRows(r) {
            let bf16 = g.denseTflops["bf16"].map { String(format: "%.0f", $0) } ?? "—"
            // the price the plan used: a provider's offer (its instance, date and page), else the profile's
            let offer = r.plans.first.flatMap { p in p.verdicts.first { $0.gpu.name == g.name } }.map(\.time).flatMap { t in
                t.offering.map { String(format: "$%.2f/GPU-hour", t.pricePerGPUHour) + " (\(t.provider ?? ""), \($0), \(t.priceDate), \(t.priceSource))" }
            }
            pg.paragraph("\(g.name) (\(g.formFactor)): \(g.nominalMemoryGB) GB \(g.memoryType), " + String(format: "%.0f GB/s", g.memoryBandwidthBytesPerSecond / 1e9)
                + ", \(bf16) dense bf16 TFLOP/s, \(g.interconnect.name); "
                + (offer ?? String(format: "$%.2f/GPU-hour", g.price.usdPerHour) + " (\(g.price.date), \(g.price.source))") + ". Source: \(g.source). "
                + (g.usableMemory.map { "Usable: " + PlanOutput.capacity($0.bytes) + " (\($0.basis.rawValue): \($0.source))." } ?? "Usable: the nominal size (the profile gives no usable figure)."),
                size: 7.5, bullet: "•")
        }
        pg.finish()
    }
}
