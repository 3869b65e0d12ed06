import Foundation

/// bitsandbytes' 4-bit NormalFloat storage (QLoRA, Dettmers et al. 2023, appendix E;
/// `bitsandbytes/functional.py`): a weight is cut into blocks of 64 values; each block keeps
/// its absolute maximum and, per value, the index of the nearest of 16 code values after
/// dividing by that maximum; two indices per byte, the first in the high nibble. With double
/// quantisation the fp32 maxima are themselves stored as 8-bit indices into bitsandbytes'
/// signed dynamic map, in blocks of 256 with an fp32 scale each, after subtracting their mean
/// (one fp32 offset per tensor).
public enum NF4 {
    public static let blockSize = 64
    public static let absmaxBlockSize = 256

    /// The 16 NF4 values: quantiles of N(0, 1) scaled to [-1, 1], with an exact zero
    /// (the QLoRA paper's NormalFloat; the fp32 literals bitsandbytes uses).
    public static let code: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    /// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True,
    /// max_exponent_bits=7, total_bits=8)`; Dettmers 2015, "8-Bit Approximations for
    /// Parallelism in Deep Learning"): for each decade e = 10⁻⁶ … 10⁰, 2^k values
    /// (k = 0 … 6) at the midpoints of an even split of [0.1, 1] times e, both signs, plus 0
    /// and 1; 256 values, ascending.
    public static let dynamicMap: [Float] = {
        var values: [Float] = []
        for k in 0..<7 {
            let pieces = 1 << k
            let decade = pow(10.0, Double(k - 6))
            for j in 0..<pieces {
                // midpoint of the j-th of `pieces` equal parts of [0.1, 1]
                let lo = Float(0.1 + 0.9 * Double(j) / Double(pieces))
                let hi = Float(0.1 + 0.9 * Double(j + 1) / Double(pieces))
                let mid = Double((lo + hi) / 2)
                values.append(Float(decade * mid))
                values.append(Float(-decade * mid))
            }
        }
        values += [0, 1]
        return values.sorted()
    }()

    /// The index of the code value nearest to `x` in an ascending table (ties to the lower).
    @inline(__always)
    static func nearest(_ x: Float, in table: UnsafeBufferPointer<Float>) -> Int {
        var lo = 0, hi = table.count - 1
        while hi - lo > 1 {   // table[lo] ≤ x ≤ table[hi] once x is inside the range
            let mid = (lo + hi) / 2
            if x < table[mid] { hi = mid } else { lo = mid }
        }
        if x <= table[lo] { return lo }
        if x >= table[hi] { return hi }
        return x - table[lo] <= table[hi] - x ? lo : hi
    }
}

/// One weight tensor stored in NF4, in ledger-counted buffers (category frozen weights).
public final class NF4Tensor: @unchecked Sendable {
    public let count: Int
    public let doubleQuant: Bool
    /// Two 4-bit code indices per byte, the first value in the high nibble.
    public let packed: Buffer<UInt8>
    /// One fp32 absmax per block of 64 (without double quantisation).
    public let absmax: Buffer<Float>?
    /// With double quantisation: per block of 64 an 8-bit index into ``NF4/dynamicMap``,
    /// per block of 256 of those an fp32 scale, and the mean of the absmax values.
    public let absmaxCodes: Buffer<UInt8>?
    public let absmaxScales: Buffer<Float>?
    /// With double quantisation: the mean of the absmax values (one fp32, as bitsandbytes
    /// keeps it in a tensor of its own).
    private let offsetStorage: Buffer<Float>?
    public var offset: Float { offsetStorage?[0] ?? 0 }

    public var blocks: Int { (count + NF4.blockSize - 1) / NF4.blockSize }
    /// The bytes this tensor occupies (what the planner's 4.5 or ≈4.127 bits per value count).
    public var bytes: Int { packed.bytes + (absmax?.bytes ?? 0) + (absmaxCodes?.bytes ?? 0) + (absmaxScales?.bytes ?? 0) + (offsetStorage?.bytes ?? 0) }

    /// Quantises `values` (`count` fp32 numbers).
    public init(_ values: UnsafePointer<Float>, count: Int, doubleQuant: Bool, ledger: Ledger) {
        self.count = count
        self.doubleQuant = doubleQuant
        let layout = NF4.Layout(count: count, doubleQuant: doubleQuant)
        let blocks = layout.blocks
        let packed = ledger.allocate(UInt8.self, count: layout.packedBytes, category: .frozenWeights)
        self.packed = packed
        var maxima = [Float](repeating: 0, count: blocks)
        NF4.code.withUnsafeBufferPointer { code in
            for b in 0..<blocks {
                let start = b * NF4.blockSize, end = min(count, start + NF4.blockSize)
                var m: Float = 0
                for i in start..<end { m = max(m, abs(values[i])) }
                maxima[b] = m
                // bitsandbytes (CPU) multiplies a full block by the reciprocal of its (clamped)
                // maximum and divides the last, partial one by it; then clamps to [-1, 1]
                let clamped = max(m, 1e-38), inv = 1 / clamped, partial = end - start < NF4.blockSize
                for i in start..<end {
                    let scaled = partial ? values[i] / clamped : values[i] * inv
                    let q = UInt8(NF4.nearest(min(1, max(-1, scaled)), in: code))
                    if i % 2 == 0 { packed[i / 2] = q << 4 } else { packed[i / 2] |= q }
                }
            }
        }
        // an odd count's last byte is padded with the code of 0.0 (index 7)
        if count % 2 == 1 { packed[count / 2] |= UInt8(NF4.code.firstIndex(of: 0)!) }
        if doubleQuant {
            let mean = Float(maxima.reduce(0.0) { $0 + Double($1) } / Double(max(1, blocks)))
            let groups = layout.groups
            let codes = ledger.allocate(UInt8.self, count: layout.codes, category: .frozenWeights)
            let scales = ledger.allocate(Float.self, count: groups, category: .frozenWeights)
            NF4.dynamicMap.withUnsafeBufferPointer { map in
                for g in 0..<groups {
                    let start = g * NF4.absmaxBlockSize, end = min(blocks, start + NF4.absmaxBlockSize)
                    var m: Float = 0
                    for i in start..<end { m = max(m, abs(maxima[i] - mean)) }
                    scales[g] = m
                    for i in start..<end { codes[i] = UInt8(NF4.nearest(m > 0 ? (maxima[i] - mean) / m : 0, in: map)) }
                }
            }
            absmaxCodes = codes
            absmaxScales = scales
            absmax = nil
            let o = ledger.allocate(Float.self, count: 1, category: .frozenWeights)
            o[0] = mean
            offsetStorage = o
        } else {
            let a = ledger.allocate(Float.self, count: blocks, category: .frozenWeights, zeroed: false)
            for b in 0..<blocks { a[b] = maxima[b] }
            absmax = a
            absmaxCodes = nil
            absmaxScales = nil
            offsetStorage = nil
        }
    }

    /// The absmax of block `b` as dequantisation uses it.
    @inline(__always)
    public func blockScale(_ b: Int) -> Float {
        if let absmax { return absmax[b] }
        return NF4.dynamicMap[Int(absmaxCodes![b])] * absmaxScales![b / NF4.absmaxBlockSize] + offsetStorage![0]
    }

    /// Writes the `count` dequantised fp32 values to `out`: code[index] × the block's absmax.
    public func dequantize(into out: UnsafeMutablePointer<Float>) {
        NF4.code.withUnsafeBufferPointer { code in
            for b in 0..<blocks {
                let scale = blockScale(b)
                let start = b * NF4.blockSize, end = min(count, start + NF4.blockSize)
                var i = start
                while i + 1 < end {
                    let byte = packed[i / 2]
                    out[i] = code[Int(byte >> 4)] * scale
                    out[i + 1] = code[Int(byte & 0x0F)] * scale
                    i += 2
                }
                if i < end { out[i] = code[Int(i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 0x0F)] * scale }
            }
        }
    }
}
