import Foundation
import PEFTTestSupport
import Testing
import PEFTEngine

/// The engine's NF4 storage against bitsandbytes' own `quantize_4bit` / `dequantize_4bit`
/// on the CPU (scripts/nf4_reference.py): the code book and dynamic map, every packed byte,
/// every block maximum (or its 8-bit code, scale and offset under double quantisation), and
/// the dequantised values.
@Suite("Engine: NF4 matches bitsandbytes")
struct EngineNF4Tests {
    /// Weight-like values: normal with std 0.02 (Box–Muller over the seeded generator), a few
    /// outliers, an all-zero block, and sizes that are not multiples of 64 or of 2.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(state: seed)
        var out = (0..<n).map { _ -> Float in
            let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12), u2 = Double(rng.next() >> 11) / Double(1 << 53)
            return Float(0.02 * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        if n > 200 {
            for i in 64..<128 { out[i] = 0 }
            out[7] = 0.9
            out[n - 3] = -0.5
        }
        return out
    }

    static let sizes: [(count: Int, doubleQuant: Bool)] = [
        (64 * 4, false), (1001, false), (333, false), (64 * 300 + 17, false),
        (64 * 4, true), (1001, true), (64 * 300 + 17, true), (64 * 256 * 2, true),
    ]

    @Test func matchesBitsandbytes() throws {
        let inputs = Self.sizes.enumerated().map { (i, s) in Self.values(s.count, seed: UInt64(i + 1)) }
        let ref = try PythonReference.run(script: "nf4_reference.py", input: zip(inputs, Self.sizes).map { ["values": $0.0.map(Double.init), "double_quant": $0.1.doubleQuant] }).get()
        let code = (ref["code"] as! [Double]).map(Float.init)
        #expect(code == NF4.code, "NF4 code book differs")
        let map = (ref["dynamic_map"] as! [Double]).map(Float.init)
        try #require(map.count == NF4.dynamicMap.count)
        let mapWorst = zip(map, NF4.dynamicMap).map { abs($0 - $1) / max(abs($0), 1e-30) }.max()!
        #expect(mapWorst <= 2e-7, "dynamic map differs by \(mapWorst) relative")
        let results = ref["results"] as! [[String: Any]]
        let ledger = Ledger()
        for (k, (x, size)) in zip(inputs, Self.sizes).enumerated() {
            let r = results[k]
            let t = x.withUnsafeBufferPointer { NF4Tensor($0.baseAddress!, count: size.count, doubleQuant: size.doubleQuant, ledger: ledger) }
            let packed = (r["packed"] as! [Int]).map(UInt8.init)
            try #require(packed.count == t.packed.count, "case \(k): \(t.packed.count) packed bytes vs \(packed.count)")
            let byteDiff = (0..<packed.count).filter { packed[$0] != t.packed[$0] }.count
            #expect(byteDiff == 0, "case \(k) (\(size)): \(byteDiff) of \(packed.count) packed bytes differ")
            let absmax = r["absmax"] as! [Double]
            try #require(absmax.count == t.blocks)
            var sameScale = [Bool](repeating: true, count: t.blocks)
            if size.doubleQuant {
                // bitsandbytes' CPU 8-bit quantiser (csrc/cpu_ops.cpp) finds the code with an
                // approximate search that now and then stops one code short of the nearest; the
                // engine takes the nearest. Every difference must be that case, and rare.
                let codes = absmax.map { UInt8($0) }
                let scales = (r["absmax_scales"] as! [Double]).map(Float.init)
                try #require(scales.count == t.absmaxScales!.count, "case \(k): \(t.absmaxScales!.count) scales vs \(scales.count)")
                let offset = Float(r["offset"] as! Double)
                #expect(abs(offset - t.offset) <= 1e-6 * offset, "case \(k): offset \(t.offset) vs \(offset)")
                for g in 0..<scales.count {
                    #expect(abs(scales[g] - t.absmaxScales![g]) <= 1e-6 * scales[g], "case \(k): absmax scale \(g): \(t.absmaxScales![g]) vs \(scales[g])")
                }
                var differing = 0
                for i in 0..<codes.count where codes[i] != t.absmaxCodes![i] {
                    differing += 1
                    sameScale[i] = false
                    let mine = Int(t.absmaxCodes![i]), theirs = Int(codes[i])
                    let m = NF4.dynamicMap
                    let blockMax = x[(i * 64)..<min(x.count, i * 64 + 64)].map(abs).max()!
                    let v = (blockMax - t.offset) / t.absmaxScales![i / 256]
                    #expect(abs(mine - theirs) == 1 && abs(v - m[mine]) <= abs(v - m[theirs]),
                            "case \(k): absmax \(i): code \(mine) (\(m[mine])) vs bitsandbytes' \(theirs) (\(m[theirs])) for \(v)")
                }
                #expect(differing * 50 <= codes.count, "case \(k): \(differing) of \(codes.count) absmax codes differ")
            } else {
                #expect(absmax.map(Float.init) == (0..<t.blocks).map { t.absmax![$0] }, "case \(k): absmax differs")
            }
            let deq = (r["dequantized"] as! [Double]).map(Float.init)
            var ours = [Float](repeating: .nan, count: size.count)
            ours.withUnsafeMutableBufferPointer { t.dequantize(into: $0.baseAddress!) }
            let top = deq.map(abs).max()!
            let worst = (0..<deq.count).filter { sameScale[$0 / 64] }.map { abs(deq[$0] - ours[$0]) }.max()!
            #expect(worst <= 1e-6 * top, "case \(k): dequantised values differ by up to \(worst)")
            // the bytes the planner counts: 4 bits per value, 4 bytes per 64 (or 1 byte per 64, 4 per 16,384, and the offset)
            let blocks = (size.count + 63) / 64
            let expected = (size.count + 1) / 2 + (size.doubleQuant ? blocks + 4 * ((blocks + 255) / 256) + 4 : 4 * blocks)
            #expect(t.bytes == expected)
        }
    }
}
