import Foundation

/// How the model's own messages and notes write quantities (the output module's tables use
/// the same functions). GiB are binary and labelled so; GB never stands for GiB.
public enum Units {
    /// Bytes in GiB, labelled GiB (binary), never "GB".
    public static func gib(_ bytes: Int) -> String {
        let g = Double(bytes) / Double(1 << 30)
        if bytes == 0 { return "0" }
        if g < 0.1 { return String(format: "%.0f MiB", Double(bytes) / Double(1 << 20)) }
        return g < 10 ? String(format: "%.2f GiB", g) : String(format: "%.1f GiB", g)
    }

    /// A card's capacity to the hundredth of a GiB, as PyTorch's messages print it
    /// ("23.49 GiB"); MiB below 0.1 GiB.
    public static func capacity(_ bytes: Int) -> String {
        bytes < (1 << 30) / 10 ? gib(bytes) : String(format: "%.2f GiB", Double(bytes) / Double(1 << 30))
    }

    /// A number for a message: integers without a fraction, others as given.
    public static func plain(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    /// Large counts as people say them: 100 million, 1.5 billion, 52,000.
    public static func count(_ d: Double) -> String {
        if d >= 1e12 { return String(format: "%.3g", d) }
        if d >= 1e9 { return String(format: "%g billion", (d / 1e7).rounded() / 100) }
        if d >= 1e6 { return String(format: "%g million", (d / 1e4).rounded() / 100) }
        return String(format: "%.0f", d)
    }
}
