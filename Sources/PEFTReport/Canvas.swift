import CCairo
import Foundation
import PEFTPlan

/// Where a drawing goes: a multi-page PDF, one SVG, or one PNG.
public enum CanvasFormat: String, Sendable {
    case pdf, svg, png

    /// The format a file name asks for, from its extension.
    public init?(path: String) {
        self.init(rawValue: URL(fileURLWithPath: path).pathExtension.lowercased())
    }
}

/// A Cairo surface and its drawing context, owned together: created with a checked status,
/// destroyed in `deinit`, written to a temporary file that `finish()` renames into place, so
/// an interrupted or failed render never leaves a half-written file. PDF output carries a
/// pinned creation date, so the same plan renders to the same bytes.
public final class Canvas {
    public let format: CanvasFormat
    public let width: Double, height: Double
    let surface: OpaquePointer
    let cr: OpaquePointer
    private let target: URL, temporary: URL
    private var finished = false

    /// The creation date every PDF carries (ISO 8601), so renders are byte-reproducible.
    public static let pinnedDate = "2026-01-01T00:00:00Z"

    /// A canvas of `width` × `height` points (PNG: pixels at 2× for print-size text).
    public init(format: CanvasFormat, path: String, width: Double, height: Double) throws {
        self.format = format
        self.width = width
        self.height = height
        target = URL(fileURLWithPath: path)
        let directory = target.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue,
              FileManager.default.isWritableFile(atPath: directory.path) else {
            throw PlanError.invalidOption(option: "--out", value: path, accepted: "a file in an existing folder you can write to")
        }
        temporary = directory.appendingPathComponent(".\(target.lastPathComponent).\(UUID().uuidString).partial")
        let s: OpaquePointer?
        switch format {
        case .pdf: s = cairo_pdf_surface_create(temporary.path, width, height)
        case .svg: s = cairo_svg_surface_create(temporary.path, width, height)
        case .png: s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(width * 2), Int32(height * 2))
        }
        guard let s, cairo_surface_status(s) == CAIRO_STATUS_SUCCESS else {
            if let s { cairo_surface_destroy(s) }
            throw PlanError.invalidOption(option: "--out", value: path, accepted: "a file Cairo can create")
        }
        if format == .pdf {
            cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, Self.pinnedDate)
            cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "peft-plan")
        }
        if format == .svg { cairo_svg_surface_restrict_to_version(s, CAIRO_SVG_VERSION_1_2) }
        surface = s
        cr = cairo_create(s)!
        if format == .png {
            cairo_scale(cr, 2, 2)
            cairo_set_source_rgb(cr, 1, 1, 1)
            cairo_paint(cr)
        }
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
        if !finished { try? FileManager.default.removeItem(at: temporary) }
    }

    /// Ends the current page and starts the next (PDF only).
    public func newPage() { if format == .pdf { cairo_show_page(cr) } }

    /// Completes the file and moves it into place; any Cairo error becomes one clear error.
    public func finish() throws {
        if format == .pdf { cairo_show_page(cr) }
        cairo_surface_flush(surface)
        var status = cairo_status(cr)
        if format == .png, status == CAIRO_STATUS_SUCCESS { status = cairo_surface_write_to_png(surface, temporary.path) }
        cairo_surface_finish(surface)
        if status == CAIRO_STATUS_SUCCESS { status = cairo_surface_status(surface) }
        guard status == CAIRO_STATUS_SUCCESS else {
            try? FileManager.default.removeItem(at: temporary)
            throw PlanError.invalidOption(option: "--out", value: target.path, accepted: "a file Cairo can write (\(String(cString: cairo_status_to_string(status))))")
        }
        // rename(2) replaces the target atomically (same folder, same file system)
        guard rename(temporary.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw PlanError.invalidOption(option: "--out", value: target.path, accepted: "a path that can be written (\(reason))")
        }
        finished = true
    }

    // MARK: - Drawing

    public struct Color: Sendable {
        public var r, g, b: Double
        public init(_ hex: UInt32) { r = Double(hex >> 16 & 0xFF) / 255; g = Double(hex >> 8 & 0xFF) / 255; b = Double(hex & 0xFF) / 255 }
        public static let black = Color(0x000000), grey = Color(0x666666), light = Color(0xDDDDDD)
        /// Okabe & Ito's colour-blind-safe palette (2008).
        public static let palette = [0xE69F00, 0x56B4E9, 0x009E73, 0xF0E442, 0x0072B2, 0xD55E00, 0xCC79A7, 0x999999].map(Color.init)
    }

    public func fill(_ x: Double, _ y: Double, _ w: Double, _ h: Double, _ c: Color) {
        cairo_set_source_rgb(cr, c.r, c.g, c.b)
        cairo_rectangle(cr, x, y, w, h)
        cairo_fill(cr)
    }

    public func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: Color, width: Double = 1, dash: Bool = false) {
        cairo_set_source_rgb(cr, c.r, c.g, c.b)
        cairo_set_line_width(cr, width)
        var pattern: [Double] = [4, 3]
        cairo_set_dash(cr, &pattern, dash ? 2 : 0, 0)
        cairo_move_to(cr, x0, y0)
        cairo_line_to(cr, x1, y1)
        cairo_stroke(cr)
        cairo_set_dash(cr, &pattern, 0, 0)
    }

    /// A stroked outline of a rectangle.
    public func stroke(_ x: Double, _ y: Double, _ w: Double, _ h: Double, _ c: Color, width: Double = 0.8) {
        cairo_set_source_rgb(cr, c.r, c.g, c.b)
        cairo_set_line_width(cr, width)
        cairo_rectangle(cr, x, y, w, h)
        cairo_stroke(cr)
    }

    /// A line through the points, optionally dashed.
    public func polyline(_ points: [(Double, Double)], _ c: Color, width: Double = 1.4, dash: Bool = false) {
        guard let first = points.first, points.count > 1 else { return }
        cairo_set_source_rgb(cr, c.r, c.g, c.b)
        cairo_set_line_width(cr, width)
        var pattern: [Double] = [4, 3]
        cairo_set_dash(cr, &pattern, dash ? 2 : 0, 0)
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        cairo_move_to(cr, first.0, first.1)
        for p in points.dropFirst() { cairo_line_to(cr, p.0, p.1) }
        cairo_stroke(cr)
        cairo_set_dash(cr, &pattern, 0, 0)
    }

    /// Marker shapes, so that series differ by more than colour.
    public enum Marker: CaseIterable, Sendable { case circle, square, diamond, triangle, down, cross, plus, ring }

    /// A marker of `size` points centred on (x, y).
    public func marker(_ m: Marker, _ x: Double, _ y: Double, _ c: Color, size: Double = 5) {
        let r = size / 2
        cairo_new_path(cr)   // no line from a text's end point to the marker
        cairo_set_source_rgb(cr, c.r, c.g, c.b)
        cairo_set_line_width(cr, 1.2)
        switch m {
        case .circle: cairo_arc(cr, x, y, r, 0, 2 * .pi); cairo_fill(cr)
        case .ring: cairo_arc(cr, x, y, r, 0, 2 * .pi); cairo_stroke(cr)
        case .square: cairo_rectangle(cr, x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8); cairo_fill(cr)
        case .diamond:
            cairo_move_to(cr, x, y - r * 1.2); cairo_line_to(cr, x + r * 1.2, y); cairo_line_to(cr, x, y + r * 1.2); cairo_line_to(cr, x - r * 1.2, y)
            cairo_close_path(cr); cairo_fill(cr)
        case .triangle:
            cairo_move_to(cr, x, y - r * 1.2); cairo_line_to(cr, x + r * 1.1, y + r * 0.9); cairo_line_to(cr, x - r * 1.1, y + r * 0.9)
            cairo_close_path(cr); cairo_fill(cr)
        case .down:
            cairo_move_to(cr, x, y + r * 1.2); cairo_line_to(cr, x + r * 1.1, y - r * 0.9); cairo_line_to(cr, x - r * 1.1, y - r * 0.9)
            cairo_close_path(cr); cairo_fill(cr)
        case .cross:
            cairo_move_to(cr, x - r, y - r); cairo_line_to(cr, x + r, y + r); cairo_move_to(cr, x - r, y + r); cairo_line_to(cr, x + r, y - r)
            cairo_stroke(cr)
        case .plus:
            cairo_move_to(cr, x - r * 1.2, y); cairo_line_to(cr, x + r * 1.2, y); cairo_move_to(cr, x, y - r * 1.2); cairo_line_to(cr, x, y + r * 1.2)
            cairo_stroke(cr)
        }
    }

    /// Limits drawing to a rectangle until `unclip()`.
    public func clip(_ x: Double, _ y: Double, _ w: Double, _ h: Double) {
        cairo_save(cr)
        cairo_rectangle(cr, x, y, w, h)
        cairo_clip(cr)
    }

    public func unclip() { cairo_restore(cr) }

    public enum Align { case left, center, right }

    /// Text with its baseline at `y`; returns its width.
    @discardableResult
    public func text(_ s: String, _ x: Double, _ y: Double, size: Double, bold: Bool = false, align: Align = .left, color: Color = .black) -> Double {
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
        var e = cairo_text_extents_t()
        cairo_text_extents(cr, s, &e)
        let dx = align == .left ? 0 : (align == .center ? -e.x_advance / 2 : -e.x_advance)
        cairo_set_source_rgb(cr, color.r, color.g, color.b)
        cairo_move_to(cr, x + dx, y)
        cairo_show_text(cr, s)
        cairo_new_path(cr)
        return e.x_advance
    }

    public func textWidth(_ s: String, size: Double, bold: Bool = false) -> Double {
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
        var e = cairo_text_extents_t()
        cairo_text_extents(cr, s, &e)
        return e.x_advance
    }
}
