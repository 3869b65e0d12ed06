import Foundation

/// A dataset's token lengths (`--lengths FILE`), as a histogram: how many examples have each
/// length. `scripts/token_lengths.py` writes one from a JSONL dataset with the model's tokenizer.
///
/// What the plan takes from it (docs/lengths.md):
/// - Without packing, TRL's collator pads each micro-batch to its longest example
///   (`DataCollatorForLanguageModeling`, `pad_to_multiple_of` unset), truncated at `max_length`
///   (`--seq`): the memory peak is the longest micro-batch the sampler can build, `batch` ×
///   the longest example; the time is that of micro-batches padded to the expected longest of
///   `batch` examples drawn at random (the Trainer's sampler shuffles).
/// - With packing, examples (truncated at `--seq`) fill sequences of `--seq` tokens: the peak
///   is `batch` × `--seq`, the time follows the total tokens.
public struct TokenLengths: Equatable, Sendable {
    /// (length, count), shortest first, lengths distinct, counts above 0.
    public let histogram: [(length: Int, count: Int)]

    public static func == (a: TokenLengths, b: TokenLengths) -> Bool {
        a.histogram.map(\.length) == b.histogram.map(\.length) && a.histogram.map(\.count) == b.histogram.map(\.count)
    }

    /// Reads a lengths file: one length per line, or "LENGTH COUNT" per line (spaces, a tab
    /// or a comma between them), or a JSON array of lengths, or a JSON object mapping each
    /// length to its count. Lines starting with `#` are comments. Throws a message naming the
    /// line for anything else, an empty file, or a length or count that is not a positive integer.
    public init(parsing text: String) throws {
        var counts: [Int: Int] = [:]
        func add(_ length: Int, _ count: Int, _ where_: String) throws {
            guard length > 0 else { throw LengthsError("\(where_): a length must be a whole number of tokens above 0, not \(length)") }
            guard count > 0 else { throw LengthsError("\(where_): a count must be a whole number above 0, not \(count)") }
            let (sum, overflow) = counts[length, default: 0].addingReportingOverflow(count)
            guard !overflow, sum <= 1 << 40 else { throw LengthsError("\(where_): more than 2^40 examples") }
            counts[length] = sum
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            guard let json = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) else {
                throw LengthsError("not valid JSON (a JSON lengths file is an array of lengths or an object of length: count)")
            }
            if let list = json as? [Any] {
                for (i, v) in list.enumerated() {
                    guard let n = Self.integer(v) else { throw LengthsError("entry \(i + 1): not a whole number (\(v))") }
                    try add(n, 1, "entry \(i + 1)")
                }
            } else if let object = json as? [String: Any] {
                for (k, v) in object.sorted(by: { $0.key < $1.key }) {
                    guard let n = Int(k.trimmingCharacters(in: .whitespaces)) else { throw LengthsError("key \"\(k)\": not a whole number of tokens") }
                    guard let c = Self.integer(v) else { throw LengthsError("key \"\(k)\": its count is not a whole number (\(v))") }
                    try add(n, c, "key \"\(k)\"")
                }
            }
        } else {
            for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
                if line.isEmpty || line.hasPrefix("#") { continue }
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
                guard (1...2).contains(fields.count), let n = Int(fields[0]), fields.count == 1 || Int(fields[1]) != nil else {
                    throw LengthsError("line \(i + 1): expected a length, or a length and a count (\"\(line.prefix(40))\")")
                }
                try add(n, fields.count == 2 ? Int(fields[1])! : 1, "line \(i + 1)")
            }
        }
        guard !counts.isEmpty else { throw LengthsError("no lengths in it") }
        histogram = counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    static func integer(_ v: Any) -> Int? {
        if let n = v as? Int { return n }
        if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        return nil
    }

    public var examples: Int { histogram.reduce(0) { $0 + $1.count } }
    public var longest: Int { histogram.last!.length }
    public var shortest: Int { histogram.first!.length }

    /// Tokens kept after truncation at `cap`.
    public func tokens(cap: Int) -> Double {
        histogram.reduce(0.0) { $0 + Double($1.count) * Double(min($1.length, cap)) }
    }

    /// The expected longest of `batch` lengths drawn at random (with replacement), each
    /// truncated at `cap`: Σ x · (F(x)^b − F(x⁻)^b) over the distinct lengths x, F the
    /// histogram's cumulative share.
    public func expectedLongest(of batch: Int, cap: Int) -> Double {
        let n = Double(examples), b = Double(max(1, batch))
        var below = 0.0, e = 0.0
        for (length, count) in histogram {
            let upTo = below + Double(count)
            e += Double(min(length, cap)) * (pow(upTo / n, b) - pow(below / n, b))
            below = upTo
        }
        return e
    }
}

/// A lengths file that cannot be read; the message says where.
public struct LengthsError: Error, Equatable, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
}
