import Foundation
import PEFTPlan

/// Axis ticks at 1, 2 or 5 × 10ᵏ, about `target` of them from 0 up to `maximum`.
public func niceTicks(maximum: Double, target: Int = 6) -> [Double] {
    guard maximum.isFinite, maximum > 0 else { return [0, 1] }
    let raw = maximum / Double(max(target, 1))
    let magnitude = pow(10, floor(log10(raw)))
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var ticks: [Double] = []
    var v = 0.0
    while v < maximum + step * 0.999 {
        ticks.append(v)
        v += step
    }
    return ticks
}

/// Ticks for a logarithmic axis over [lo, hi]: 1, 2 and 5 × 10ᵏ when that gives at most
/// `most` of them, else the powers of ten alone.
public func logTicks(_ lo: Double, _ hi: Double, most: Int = 9) -> [Double] {
    guard lo > 0, hi > lo, lo.isFinite, hi.isFinite else { return [] }
    let k0 = Int(floor(log10(lo))), k1 = Int(ceil(log10(hi)))
    for mantissas in [[1.0, 2, 5], [1.0, 3], [1.0]] {
        let t = (k0...k1).flatMap { k in mantissas.map { $0 * pow(10, Double(k)) } }.filter { $0 >= lo * 0.999 && $0 <= hi * 1.001 }
        if t.count <= most || mantissas.count == 1 { return t }
    }
    return []
}

/// A log axis range that starts and ends on a 1-2-5 tick around [lo, hi].
func logRange(_ lo: Double, _ hi: Double) -> (Double, Double) {
    let steps = (-12...15).flatMap { k in [1.0, 2, 5].map { $0 * pow(10, Double(k)) } }
    let a = steps.last { $0 <= lo } ?? lo, b = steps.first { $0 >= hi } ?? hi
    return (a, b > a ? b : a * 10)
}

/// A figure formatted with as few digits as keep it readable: 0.42, 3.1, 27, 1,200.
func short(_ v: Double) -> String {
    let a = abs(v)
    if a >= 1000 { return v.formatted(.number.precision(.fractionLength(0))) }
    if a >= 100 || a == a.rounded() { return String(format: "%.0f", v) }
    if a >= 10 { return String(format: "%.1f", v) }
    if a >= 0.1 { return String(format: "%.2f", v) }
    return String(format: "%.2g", v)
}

/// The bytes 2ⁿ as a label: 512 B, 1 KiB, 32 MiB, 4 GiB.
func byteLabel(_ v: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var x = v, u = 0
    while x >= 1024 && u < units.count - 1 { x /= 1024; u += 1 }
    return short(x) + " " + units[u]
}

/// One axis's mapping from data to page.
struct Scale {
    enum Kind { case linear, log }
    let kind: Kind
    let lo: Double, hi: Double
    let from: Double, to: Double

    func map(_ v: Double) -> Double {
        switch kind {
        case .linear: return from + (v - lo) / (hi - lo) * (to - from)
        case .log: return from + (log(max(v, lo * 1e-3)) - log(lo)) / (log(hi) - log(lo)) * (to - from)
        }
    }
}

/// A plotting area on a canvas: the frame, grid, tick labels and axis titles, and the
/// mapping from data to page.
struct Plot {
    let c: Canvas
    let x: Double, y: Double, w: Double, h: Double
    let sx: Scale, sy: Scale

    init(_ c: Canvas, x: Double, y: Double, w: Double, h: Double, xKind: Scale.Kind, xRange: (Double, Double),
         yKind: Scale.Kind, yRange: (Double, Double)) {
        self.c = c
        self.x = x; self.y = y; self.w = w; self.h = h
        sx = Scale(kind: xKind, lo: xRange.0, hi: xRange.1, from: x, to: x + w)
        sy = Scale(kind: yKind, lo: yRange.0, hi: yRange.1, from: y + h, to: y)
    }

    func px(_ v: Double) -> Double { sx.map(v) }
    func py(_ v: Double) -> Double { sy.map(v) }

    /// Grid lines and labels for the given ticks, the frame, and the axis titles.
    func axes(xTicks: [(Double, String)], yTicks: [(Double, String)], xTitle: String, yTitle: String) {
        for (v, label) in yTicks {
            c.line(x, py(v), x + w, py(v), .light, width: 0.5)
            c.text(label, x - 4, py(v) + 3, size: 7.5, align: .right)
        }
        for (v, label) in xTicks {
            c.line(px(v), y, px(v), y + h, .light, width: 0.5)
            c.text(label, px(v), y + h + 11, size: 7.5, align: .center)
        }
        c.stroke(x, y, w, h, .grey, width: 0.6)
        c.text(xTitle, x + w / 2, y + h + 24, size: 8, align: .center)
        c.text(yTitle, x - 4, y - 6, size: 8, color: .black)
    }
}

/// One legend entry: a label drawn after a swatch, a line or a marker.
struct LegendItem {
    enum Key { case box(Canvas.Color), line(Canvas.Color, dashed: Bool), marker(Canvas.Marker, Canvas.Color) }
    let key: Key
    let label: String
}

/// Draws legend items in rows from (x, y) within `width`; returns the height used.
@discardableResult
func legend(_ items: [LegendItem], on c: Canvas, x: Double, y: Double, width: Double, size: Double = 7.5) -> Double {
    var lx = x, ly = y
    for item in items {
        let wText = c.textWidth(item.label, size: size)
        if lx > x && lx + 16 + wText > x + width { lx = x; ly += size + 6 }
        switch item.key {
        case let .box(col): c.fill(lx, ly - size + 1, size, size, col)
        case let .line(col, dashed): c.line(lx - 1, ly - size / 2 + 1, lx + size + 1, ly - size / 2 + 1, col, width: 1.4, dash: dashed)
        case let .marker(m, col): c.marker(m, lx + size / 2, ly - size / 2 + 1, col, size: size * 0.75)
        }
        c.text(item.label, lx + size + 4, ly, size: size)
        lx += size + 4 + wText + 12
    }
    return ly - y + size + 4
}

/// Every method keeps one colour and one marker in every chart (Okabe & Ito's palette, with
/// black for full fine-tuning where the palette's yellow is too pale for a line).
func methodStyle(_ m: Method) -> (color: Canvas.Color, marker: Canvas.Marker) {
    switch m {
    case .full: return (Canvas.Color(0x000000), .circle)
    case .lora: return (Canvas.Color(0xE69F00), .square)
    case .qlora: return (Canvas.Color(0x56B4E9), .diamond)
    case .adapter: return (Canvas.Color(0x009E73), .triangle)
    case .prefix: return (Canvas.Color(0x0072B2), .down)
    case .prompt: return (Canvas.Color(0xD55E00), .cross)
    case .ia3: return (Canvas.Color(0xCC79A7), .plus)
    case .ptuning: return (Canvas.Color(0x999999), .ring)
    }
}

/// The names of the charts a report can draw on its own (`--chart NAME`).
public enum ChartName: String, CaseIterable, Sendable {
    case summary, memory, fit, seq, batch, time, scaling
    public var description: String {
        switch self {
        case .summary: return "the memory chart beside the fit matrix"
        case .memory: return "stacked memory per method with each GPU size as a line"
        case .fit: return "the fit matrix: GPU × method, coloured by headroom"
        case .seq: return "memory against sequence length, with the GPU sizes"
        case .batch: return "memory against micro-batch, with the GPU sizes"
        case .time: return "hours and dollars per GPU and method"
        case .scaling: return "hours and dollars against the number of GPUs"
        }
    }
}
