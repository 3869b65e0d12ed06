import Foundation
import PEFTPlan

/// The charts of a plan (PEFTReport/README.md), each drawn into a rectangle of a canvas.
public enum PlanCharts {
    static let gib = Double(1 << 30)
    static let capacityColor = Canvas.Color(0x444444)

    /// The memory components a bar stacks, in drawing order: only what is allocated at the
    /// peak (`live_at_peak`), so a bar's height is exactly `device_total`.
    static let components: [(String, Canvas.Color, @Sendable (MemoryBreakdown) -> Int)] = [
        ("weights", Canvas.Color(0x0072B2), { $0.frozenWeights + $0.trainableWeights + $0.masterWeights }),
        ("gradients", Canvas.Color(0xE69F00), { $0.live.contains(.gradients) ? $0.gradients : 0 }),
        ("optimizer states", Canvas.Color(0x009E73), { $0.optimizerStates - $0.pageableBytes }),
        ("activations", Canvas.Color(0x56B4E9), { $0.live.contains(.saved) ? $0.activations : 0 }),
        ("logits", Canvas.Color(0xCC79A7), { $0.live.contains(.saved) ? $0.logits : 0 }),
        ("transient", Canvas.Color(0xF0E442), { $0.transient }),
        ("allocator and CUDA context", Canvas.Color(0x999999), { $0.reservedPeak - $0.allocatedPeak + $0.runtimeOverhead }),
    ]

    /// The card that stands for each nominal GPU size of the request, smallest size first:
    /// of the cards that can run the plan's precision (all of them where none can), the one
    /// with the least usable memory — what every such card of that size holds. Capacity
    /// lines are drawn at its usable memory.
    static func capacities(_ r: PlanResult) -> [(gb: Int, bytes: Int, label: String, gpu: GPUProfile)] {
        let blocked = r.blockedGPUs
        let sizes = Array(Set(r.request.gpus.map(\.nominalMemoryGB))).sorted()
        return sizes.map { gb in
            let sized = r.request.gpus.filter { $0.nominalMemoryGB == gb }
            let runnable = sized.filter { !blocked.contains($0.name) }
            let g = (runnable.isEmpty ? sized : runnable).min { $0.usableMemoryBytes < $1.usableMemoryBytes }!
            return (gb, g.usableMemoryBytes, "\(gb) GB", g)
        }
    }

    /// Dashed lines at each GPU size across a plot, labelled at the right.
    static func capacityLines(_ r: PlanResult, _ p: Plot) {
        var lastY = -1e9
        for cap in capacities(r).reversed() {
            let yy = p.py(Double(cap.bytes) / gib)
            guard yy >= p.y - 1, yy <= p.y + p.h + 1 else { continue }
            p.c.line(p.x, yy, p.x + p.w, yy, capacityColor, width: 0.9, dash: true)
            if abs(yy - lastY) >= 9 {
                p.c.text(cap.label, p.x + p.w + 4, yy + 3, size: 7, color: capacityColor)
                lastY = yy
            }
        }
    }

    /// Stacked memory bars per method with each GPU size as a dashed line.
    public static func memory(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let plans = r.plans
        let maxTotal = plans.map { Double($0.memory.deviceTotal) }.max() ?? 1
        let top = max(maxTotal, Double(capacities(r).last?.bytes ?? 1)) / gib * 1.06
        let ticks = niceTicks(maximum: top)
        c.text("Memory of one training step, by method", x, y + 11, size: 11, bold: true)
        let legendH = 30.0
        let p = Plot(c, x: x + 40, y: y + 34, w: w - 40 - 56, h: h - 34 - 30 - legendH, xKind: .linear, xRange: (0, Double(max(plans.count, 1))),
                     yKind: .linear, yRange: (0, ticks.last ?? top))
        p.axes(xTicks: [], yTicks: ticks.map { ($0, short($0)) }, xTitle: "", yTitle: "GiB on each GPU")
        let slot = p.w / Double(max(plans.count, 1)), barW = min(48, slot * 0.62)
        for (i, plan) in plans.enumerated() {
            let cx = p.x + slot * (Double(i) + 0.5)
            var acc = 0.0
            for comp in components {
                let v = Double(max(0, comp.2(plan.memory))) / gib
                guard v > 0 else { continue }
                c.fill(cx - barW / 2, p.py(acc + v), barW, p.py(acc) - p.py(acc + v), comp.1)
                acc += v
            }
            c.text(plan.method.rawValue, cx, p.y + p.h + 11, size: 8, align: .center)
            c.text(String(format: "%.1f", Double(plan.memory.deviceTotal) / gib), cx, p.py(acc) - 3, size: 7, align: .center)
        }
        capacityLines(r, p)
        let items = components.map { LegendItem(key: .box($0.1), label: $0.0) } + [LegendItem(key: .line(capacityColor, dashed: true), label: "GPU memory usable (least of each size)")]
        legend(items, on: c, x: p.x, y: p.y + p.h + 28, width: w - 40)
    }

    /// The order every "cheapest" in the report uses: lower cost, then more memory to spare.
    static func cheaper(_ a: GPUVerdict, _ b: GPUVerdict) -> Bool {
        (a.time.costUSD, -a.headroomBytes, a.gpu.name) < (b.time.costUSD, -b.headroomBytes, b.gpu.name)
    }

    /// A method's cheapest GPU that fits, if any.
    static func cheapest(_ p: MethodPlan) -> GPUVerdict? { p.verdicts.filter(\.fits).min(by: cheaper) }

    // MARK: - Fit matrix

    enum Fit { case roomy, tight, near, far, blocked }

    static func fitClass(_ v: GPUVerdict) -> Fit {
        if v.blocker != nil { return .blocked }
        let cap = Double(v.gpu.usableMemoryBytes)
        if v.fits { return Double(v.headroomBytes) >= 0.2 * cap ? .roomy : .tight }
        return Double(v.shortfallBytes) <= 0.2 * cap ? .near : .far
    }

    static func fitColor(_ f: Fit) -> (fill: Canvas.Color, text: Canvas.Color) {
        switch f {
        case .roomy: return (Canvas.Color(0x009E73), Canvas.Color(0xFFFFFF))
        case .tight: return (Canvas.Color(0xA8DCCB), .black)
        case .near: return (Canvas.Color(0xF3C67A), .black)
        case .far: return (Canvas.Color(0xD55E00), Canvas.Color(0xFFFFFF))
        case .blocked: return (Canvas.Color(0xDDDDDD), .black)
        }
    }

    /// The GPUs of a plan in the order the verdicts list them (one row each).
    static func gpuRows(_ r: PlanResult) -> [GPUProfile] {
        var seen = Set<String>(), rows: [GPUProfile] = []
        for g in r.request.gpus where seen.insert(g.name).inserted { rows.append(g) }
        return rows
    }

    /// Width of the GPU-name column of the row charts.
    static func labelWidth(_ rows: [GPUProfile], on c: Canvas) -> Double {
        min(110, rows.map { c.textWidth($0.name, size: 7.5) }.max() ?? 60) + 8
    }

    /// Height the fit matrix needs for `r` at `rowHeight` per GPU.
    public static func fitHeight(_ r: PlanResult, compact: Bool) -> Double {
        Double(gpuRows(r).count) * (compact ? 14 : 22) + 80
    }

    /// GPU × method, each cell coloured by headroom (fits with ≥ 20% to spare, fits tightly,
    /// misses by ≤ 20%, misses by more) and labelled with the headroom or shortfall; the full
    /// form adds the largest micro-batch that fits.
    public static func fitMatrix(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, compact: Bool = false) {
        let rows = gpuRows(r), plans = r.plans
        let rowH = compact ? 14.0 : 22.0
        let labelW = labelWidth(rows, on: c)
        let cellW = (w - labelW) / Double(max(plans.count, 1))
        c.text(compact ? "Fits? (GiB to spare or missing)" : "Fit matrix: does each method fit each GPU?", x, y + 11, size: 11, bold: true)
        let top = y + 34
        for (j, p) in plans.enumerated() {
            c.text(p.method.rawValue, x + labelW + cellW * (Double(j) + 0.5), top - 5, size: 7.5, bold: true, align: .center)
        }
        for (i, g) in rows.enumerated() {
            let ry = top + Double(i) * rowH
            c.text(g.name, x + labelW - 6, ry + rowH / 2 + 3, size: 7.5, align: .right)
            for (j, p) in plans.enumerated() {
                guard let v = p.verdicts.first(where: { $0.gpu.name == g.name }) else { continue }
                let f = fitClass(v), col = fitColor(f)
                let cx = x + labelW + cellW * Double(j)
                c.fill(cx + 1, ry + 1, cellW - 2, rowH - 2, col.fill)
                let gibs = Double(v.fits ? v.headroomBytes : v.shortfallBytes) / gib
                let main = f == .blocked ? "no bf16" : (v.fits ? "+" : "−") + short(gibs)
                if compact {
                    c.text(main, cx + cellW / 2, ry + rowH / 2 + 2.7, size: 7, align: .center, color: col.text)
                } else {
                    c.text(main + (f == .blocked ? "" : " GiB"), cx + cellW / 2, ry + 9.5, size: 7.5, align: .center, color: col.text)
                    if v.fits { c.text("batch ≤ \(v.maxMicroBatch)", cx + cellW / 2, ry + 18.5, size: 6.5, align: .center, color: col.text) }
                }
            }
        }
        let items: [LegendItem] = [
            LegendItem(key: .box(fitColor(.roomy).fill), label: "fits, ≥ 20% spare"),
            LegendItem(key: .box(fitColor(.tight).fill), label: "fits, < 20% spare"),
            LegendItem(key: .box(fitColor(.near).fill), label: "misses by ≤ 20%"),
            LegendItem(key: .box(fitColor(.far).fill), label: "misses by more"),
        ] + (plans.contains { $0.verdicts.contains { $0.blocker != nil } } ? [LegendItem(key: .box(fitColor(.blocked).fill), label: "precision not supported")] : [])
        legend(items, on: c, x: x, y: top + Double(rows.count) * rowH + 16, width: w, size: 7)
    }

    // MARK: - Curves

    static func contexts(_ r: PlanResult) -> [(MethodPlan, PlanContext)] {
        r.plans.compactMap { p in
            (try? PlanContext(arch: r.request.arch, account: p.account, methodOptions: r.request.methodOptions,
                              training: r.request.training, runtime: r.request.runtime, scale: r.request.scale)).map { (p, $0) }
        }
    }

    /// The sequence lengths the curve samples: powers of two from 128 to four times the
    /// request (at least 8192), within the model's limit, and the requested length.
    public static func seqPoints(_ r: PlanResult) -> [Int] {
        let s = r.request.training.seq
        let limit = min(Planner.seqSearchLimit(r.request.arch, requested: s), max(4 * s, 8192))
        var pts = Set([s])
        var v = 128
        while v <= limit { pts.insert(v); v *= 2 }
        return pts.filter { $0 <= limit || $0 == s }.sorted()
    }

    /// The micro-batches the curve samples: 1, 2, 4, … up to four times the request (at least 64).
    public static func batchPoints(_ r: PlanResult) -> [Int] {
        let b = r.request.training.batch
        let limit = min(Planner.batchSearchLimit, max(4 * b, 64))
        var pts = Set([b])
        var v = 1
        while v <= limit { pts.insert(v); v *= 2 }
        return pts.sorted()
    }

    enum Sweep { case seq, batch }

    /// Device total per method against sequence length or micro-batch, with the GPU sizes.
    static func curve(_ r: PlanResult, _ sweep: Sweep, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let t = r.request.training
        let xs = sweep == .seq ? seqPoints(r) : batchPoints(r)
        let series: [(MethodPlan, [(Double, Double)])] = contexts(r).map { p, ctx in
            (p, xs.compactMap { v in
                let b = sweep == .batch ? v : t.batch, s = sweep == .seq ? v : t.seq
                guard ctx.representable(batch: b, seq: s) else { return nil }
                return (Double(v), Double(ctx.deviceTotal(batch: b, seq: s)) / gib)
            })
        }
        let biggest = Double(capacities(r).last?.bytes ?? 1) / gib
        let atRequest = r.plans.map { Double($0.memory.deviceTotal) / gib }.max() ?? biggest
        let all = series.flatMap { $0.1.map(\.1) }.max() ?? biggest
        let ceiling = min(all, max(biggest * 1.5, atRequest * 1.15)) * 1.04
        let ticks = niceTicks(maximum: ceiling)
        let title = sweep == .seq ? "Memory against sequence length (micro-batch \(t.batch))" : "Memory against micro-batch (\(t.seq) tokens)"
        c.text(title, x, y + 11, size: 11, bold: true)
        let lo = Double(xs.first ?? 1) / 1.25, hi = Double(xs.last ?? 2) * 1.25
        let p = Plot(c, x: x + 40, y: y + 34, w: w - 40 - 56, h: h - 34 - 62, xKind: .log, xRange: (lo, max(hi, lo * 2)),
                     yKind: .linear, yRange: (0, ticks.last ?? ceiling))
        let xTicks = xs.filter { $0 & ($0 - 1) == 0 }.map { (Double($0), $0 >= 1024 ? "\($0 / 1024)k" : "\($0)") }
        p.axes(xTicks: xTicks, yTicks: ticks.map { ($0, short($0)) }, xTitle: sweep == .seq ? "tokens per sequence (log scale)" : "micro-batch (log scale)",
               yTitle: "GiB on each GPU")
        let requested = Double(sweep == .seq ? t.seq : t.batch)
        c.line(p.px(requested), p.y, p.px(requested), p.y + p.h, .grey, width: 0.8, dash: true)
        c.text("requested", p.px(requested) + 3, p.y + 9, size: 6.5, color: .grey)
        c.clip(p.x, p.y, p.w, p.h)
        for (plan, pts) in series {
            let st = methodStyle(plan.method)
            c.polyline(pts.map { (p.px($0.0), p.py($0.1)) }, st.color)
            for q in pts { c.marker(st.marker, p.px(q.0), p.py(q.1), st.color, size: 4.5) }
        }
        c.unclip()
        capacityLines(r, p)
        if all > (ticks.last ?? ceiling) { c.text("lines leave the chart above \(short(ticks.last ?? ceiling)) GiB", p.x + p.w, p.y - 6, size: 6.5, align: .right, color: .grey) }
        let items = series.map { LegendItem(key: .marker(methodStyle($0.0.method).marker, methodStyle($0.0.method).color), label: $0.0.method.rawValue) }
            + [LegendItem(key: .line(capacityColor, dashed: true), label: "GPU memory usable (least of each size)")]
        let used = legend(items, on: c, x: p.x, y: p.y + p.h + 40, width: w - 40)
        // lines that lie on top of each other are named, so no method seems missing
        var groups: [[String]] = []
        var seen = Set<Int>()
        for (i, a) in series.enumerated() where !seen.contains(i) {
            var g = [a.0.method.rawValue]
            for (j, b) in series.enumerated() where j > i && !seen.contains(j) && a.1.count == b.1.count
                && zip(a.1, b.1).allSatisfy({ $0.0 == $1.0 && abs($0.1 - $1.1) <= 0.005 * max($0.1, $1.1, 1e-9) }) {
                g.append(b.0.method.rawValue)
                seen.insert(j)
            }
            if g.count > 1 { groups.append(g) }
        }
        if !groups.isEmpty {
            c.text("Coinciding lines (within 0.5%): " + groups.map { $0.joined(separator: " = ") }.joined(separator: "; "), p.x, p.y + p.h + 46 + used, size: 7, color: .grey)
        }
    }

    public static func seqCurve(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        curve(r, .seq, on: c, x: x, y: y, w: w, h: h)
    }

    public static func batchCurve(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        curve(r, .batch, on: c, x: x, y: y, w: w, h: h)
    }

    // MARK: - Time and cost

    /// Height the time and cost chart needs.
    public static func timeHeight(_ r: PlanResult) -> Double { max(Double(gpuRows(r).count) * 20, 140) + 110 }

    /// Hours and dollars of the whole run per GPU (rows) and method (markers), for the
    /// methods that fit; log scales, since they span orders of magnitude.
    public static func timeCost(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double) {
        let rows = gpuRows(r), n = r.request.scale.gpus
        let title = "Time and cost of the run per GPU type" + (n > 1 ? " (× \(n) GPUs)" : "")
        c.text(title, x, y + 11, size: 11, bold: true)
        let labelW = labelWidth(rows, on: c)
        let plotH = max(Double(rows.count) * 20, 140), rowH = plotH / Double(max(rows.count, 1)), top = y + 40
        let panelW = (w - labelW - 24) / 2
        let fitting = r.plans.flatMap { p in p.verdicts.filter(\.fits).map { (p.method, $0) } }
        func panel(_ k: Int, _ value: (GPUVerdict) -> Double, _ title: String, _ label: (Double) -> String) {
            let vals = fitting.map { value($0.1) }.filter { $0 > 0 && $0.isFinite }
            let (lo, hi) = logRange(max((vals.min() ?? 1) / 1.3, 1e-3), max((vals.max() ?? 10) * 1.3, 1e-2))
            let px0 = x + labelW + Double(k) * (panelW + 24)
            let p = Plot(c, x: px0, y: top, w: panelW, h: plotH, xKind: .log, xRange: (lo, hi), yKind: .linear, yRange: (0, Double(rows.count)))
            p.axes(xTicks: logTicks(lo, hi, most: 6).map { ($0, label($0)) }, yTicks: [], xTitle: title + " (log scale)", yTitle: "")
            for (i, g) in rows.enumerated() {
                let ry = top + (Double(i) + 0.5) * rowH
                if k == 0 { c.text(g.name, x + labelW - 6, ry + 3, size: 7.5, align: .right) }
                c.line(p.x, ry, p.x + p.w, ry, Canvas.Color(0xF2F2F2), width: 0.5)
                let here = fitting.filter { $0.1.gpu.name == g.name }
                if here.isEmpty { c.text("no method fits", p.x + 4, ry + 2.5, size: 6.5, color: .grey) }
                // methods sharing a value stay visible: each keeps its own small vertical offset
                c.clip(p.x, p.y, p.w, p.h)
                defer { c.unclip() }
                for (m, v) in here where value(v) > 0 && value(v).isFinite {   // a free GPU has no place on a log axis
                    let st = methodStyle(m), j = Double(r.plans.firstIndex { $0.method == m } ?? 0)
                    c.marker(st.marker, p.px(value(v)), ry + (j - Double(r.plans.count - 1) / 2) * min(2.2, rowH * 0.7 / Double(max(r.plans.count, 1))), st.color, size: 5)
                }
            }
        }
        panel(0, { $0.time.hours }, "hours", { short($0) + " h" })
        panel(1, { $0.time.costUSD }, "US dollars", { "$" + short($0) })
        let items = r.plans.filter { p in fitting.contains { $0.0 == p.method } }
            .map { LegendItem(key: .marker(methodStyle($0.method).marker, methodStyle($0.method).color), label: $0.method.rawValue) }
        let used = legend(items, on: c, x: x + labelW, y: top + plotH + 40, width: w - labelW)
        c.text("One row per GPU type; methods sit slightly apart so that equal values stay visible.",
               x + labelW, top + plotH + 46 + used, size: 7, color: .grey)
    }

    // MARK: - Scaling

    /// Whether a plan spans GPUs (several, or sharded), so that a GPU-count chart says something.
    public static func isSharded(_ r: PlanResult) -> Bool { r.request.scale.gpus > 1 || r.request.scale.sharding != .none }

    /// The GPU counts the scaling chart samples.
    public static func gpuCounts(_ r: PlanResult) -> [Int] {
        let n = r.request.scale.gpus
        return Array(Set([1, 2, 4, 8, 16, 32, 64].filter { $0 <= max(8, 2 * n) } + [n])).sorted()
    }

    /// For each method, on the GPU type its cheapest fitting plan uses at the requested count
    /// (or the largest GPU when none fits), hours and dollars against the number of GPUs.
    public static func scaling(_ r: PlanResult, on c: Canvas, x: Double, y: Double, w: Double, h: Double) {
        let counts = gpuCounts(r)
        var replans: [Int: PlanResult] = [:]
        for n in counts {
            var q = r.request
            q.scale.gpus = n
            if n == r.request.scale.gpus { replans[n] = r } else { replans[n] = try? Planner.plan(q) }
        }
        var series: [(Method, String, [(Double, Double, Double)])] = []
        for p in r.plans {
            let chosen = cheapest(p)?.gpu
                ?? p.verdicts.max { $0.gpu.usableMemoryBytes < $1.gpu.usableMemoryBytes }?.gpu
            guard let g = chosen else { continue }
            let pts: [(Double, Double, Double)] = counts.compactMap { n in
                guard let v = replans[n]?.plans.first(where: { $0.method == p.method })?.verdicts.first(where: { $0.gpu.name == g.name }), v.fits else { return nil }
                return (Double(n), v.time.hours, v.time.costUSD)
            }
            if !pts.isEmpty { series.append((p.method, g.name, pts)) }
        }
        c.text("Time and cost against the number of GPUs (\(r.request.scale.sharding.rawValue))", x, y + 11, size: 11, bold: true)
        let panelW = (w - 40 - 30) / 2, top = y + 34, plotH = h - 34 - 100
        let lo = Double(counts.first ?? 1) / 1.3, hi = Double(max(counts.last ?? 2, 2)) * 1.3
        let perNode = r.request.runtime.gpusPerNode
        func panel(_ k: Int, _ pick: ((Double, Double, Double)) -> Double, _ title: String, _ label: (Double) -> String) {
            let vals = series.flatMap { $0.2.map(pick) }.filter { $0 > 0 }
            let (vlo, vhi) = logRange(max((vals.min() ?? 1) / 1.2, 1e-3), max((vals.max() ?? 10) * 1.2, 1e-2))
            let p = Plot(c, x: x + 40 + Double(k) * (panelW + 30), y: top, w: panelW, h: plotH, xKind: .log, xRange: (lo, hi), yKind: .log, yRange: (vlo, vhi))
            p.axes(xTicks: counts.filter { $0 & ($0 - 1) == 0 }.map { (Double($0), "\($0)") }, yTicks: logTicks(vlo, vhi, most: 7).map { ($0, label($0)) },
                   xTitle: "GPUs (log scale)", yTitle: title)
            let n = Double(r.request.scale.gpus)
            c.line(p.px(n), p.y, p.px(n), p.y + p.h, .grey, width: 0.8, dash: true)
            if Double(perNode) < hi / 1.3 {
                let nx = p.px(Double(perNode) * 1.4)
                c.line(nx, p.y, nx, p.y + p.h, Canvas.Color(0xB0B0B0), width: 0.6)
                c.text("more than one node →", nx + 3, p.y + 10, size: 6.5, color: .grey)
            }
            c.clip(p.x, p.y, p.w, p.h)
            for s in series {
                let st = methodStyle(s.0)
                let pts = s.2.filter { pick($0) > 0 && pick($0).isFinite }
                c.polyline(pts.map { (p.px($0.0), p.py(pick($0))) }, st.color)
                for q in pts { c.marker(st.marker, p.px(q.0), p.py(pick(q)), st.color, size: 4.5) }
            }
            c.unclip()
        }
        panel(0, { $0.1 }, "hours", { short($0) + " h" })
        panel(1, { $0.2 }, "US dollars", { "$" + short($0) })
        let items = series.map { LegendItem(key: .marker(methodStyle($0.0).marker, methodStyle($0.0).color), label: "\($0.0.rawValue) on \($0.1)") }
        let used = legend(items, on: c, x: x + 40, y: top + plotH + 42, width: w - 40)
        c.text("Missing points: the method does not fit that many GPUs of that type. The dashed line marks the requested count.",
               x + 40, top + plotH + 48 + used, size: 7, color: .grey)
        c.text("Past \(perNode) GPUs per node the collectives cross the network (\(Int(r.request.runtime.networkBytesPerSecondPerGPU / 1e9)) GB/s per GPU, runtime \(r.request.runtime.name)), which can make more GPUs slower.",
               x + 40, top + plotH + 60 + used, size: 7, color: .grey)
    }
}
