import Foundation

// Vectorised elementwise kernels for the engine's non-GEMM work: an exp in SIMD lanes
// (the softmaxes and SwiGLU's sigmoid spend most of their time in expf otherwise) and a
// small helper that spreads independent rows over the cores while OpenBLAS is idle.

/// Lanes per vector in the engine's elementwise kernels.
public typealias FloatVector = SIMD16<Float>
let vectorLanes = FloatVector.scalarCount

@inline(__always) func loadVector(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) func storeVector(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}

/// e^x in every lane: Cody–Waite range reduction x = n·ln2 + r (|r| ≤ ln2/2), Cephes'
/// degree-6 polynomial for e^r, and 2^n applied in two halves so results down into the
/// subnormals are formed without overflow. Within 2 ulp of `expf` for x in
/// [−87.3, 88.7] (the test checks it); x > 88.72 gives +∞, x < −103.9 (and −∞, used as a
/// mask) gives 0, NaN gives NaN. Rounding to n uses the 1.5·2²³ trick, so no SSE4.1
/// rounding instruction is needed.
@inline(__always) public func vexp(_ xIn: FloatVector) -> FloatVector {
    let hi = FloatVector(repeating: 88.72283), lo = FloatVector(repeating: -103.9)
    var x = xIn
    x.replace(with: hi, where: x .> hi)
    x.replace(with: lo, where: x .< lo)
    let shifter = FloatVector(repeating: 12_582_912)   // 1.5 · 2^23
    let t = x * FloatVector(repeating: 1.442695040888963) + shifter
    let n = t - shifter
    var r = x - n * FloatVector(repeating: 0.693359375)
    r = r - n * FloatVector(repeating: -2.12194440e-4)
    var p = FloatVector(repeating: 1.9875691500e-4)
    p = p * r + FloatVector(repeating: 1.3981999507e-3)
    p = p * r + FloatVector(repeating: 8.3334519073e-3)
    p = p * r + FloatVector(repeating: 4.1665795894e-2)
    p = p * r + FloatVector(repeating: 1.6666665459e-1)
    p = p * r + FloatVector(repeating: 5.0000001201e-1)
    p = p * (r * r) + r + FloatVector(repeating: 1)
    // n from the low mantissa bits of t (t = 1.5·2^23 + n exactly)
    let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: FloatVector.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: FloatVector.self)
    var result = p * s1 * s2
    result.replace(with: FloatVector(repeating: 0), where: xIn .< lo)
    result.replace(with: FloatVector(repeating: .infinity), where: xIn .> hi)
    result.replace(with: xIn, where: xIn .!= xIn)
    return result
}

/// The scalar form of ``vexp`` (one lane), for loop tails: the same numbers as the lanes.
@inline(__always) public func sexp(_ x: Float) -> Float {
    vexp(FloatVector(repeating: x))[0]
}

/// out[i] = e^(x[i]) for `count` elements (in place allowed).
public func vexpArray(_ out: FloatPointer, _ x: ConstFloatPointer, count: Int) {
    var i = 0
    while i + vectorLanes <= count {
        storeVector(vexp(loadVector(x + i)), out + i)
        i += vectorLanes
    }
    while i < count { out[i] = sexp(x[i]); i += 1 }
}

/// Runs `body(range)` over `0..<count` split into contiguous chunks, on both cores when
/// the work is large enough to pay for the hand-off (`grain`: the least elements per
/// chunk), else inline. The bodies must write disjoint memory.
@inline(__always) func parallelChunks(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    let workers = min(EngineThreads.count, max(1, count / max(grain, 1)))
    if workers <= 1 { body(0..<count); return }
    let chunk = (count + workers - 1) / workers
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let start = w * chunk, end = min(count, start + chunk)
            if start < end { shared.value(start..<end) }
        }
    }
}

/// Hands a value the compiler cannot prove thread-safe to worker threads: the engine's
/// parallel loops give each worker disjoint memory (raw pointers, closures over them).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// How many threads the engine's own elementwise loops use (the cores, at most 2 by
/// default: the same parallelism OpenBLAS uses for the GEMMs).
public enum EngineThreads {
    nonisolated(unsafe) public static var count: Int = {
        if let s = ProcessInfo.processInfo.environment["PEFT_ENGINE_THREADS"], let n = Int(s), n >= 1 { return n }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount, BLASInfo.threads))
    }()
}

/// A vector from `count` (< lanes) floats at `p`, the other lanes `pad`.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, pad: Float) -> FloatVector {
    var v = FloatVector(repeating: pad)
    for i in 0..<count { v[i] = p[i] }
    return v
}

/// Stores the first `count` (< lanes) lanes of `v` at `p`.
@inline(__always) func storePartial(_ v: FloatVector, _ p: FloatPointer, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

/// out[0..<count] = softmax(x[0..<count]) (in place allowed), in vector lanes with ``vexp``.
/// (The running maximum uses a compare-and-select: `pointwiseMax` is not lowered to one
/// instruction for 16 lanes and costs more than the exp.)
@inline(__always) func softmaxRow(_ out: FloatPointer, _ x: ConstFloatPointer, count: Int) {
    let full = count / vectorLanes * vectorLanes, rest = count - full
    var mv = FloatVector(repeating: -.infinity)
    var i = 0
    while i < full { let l = loadVector(x + i); mv.replace(with: l, where: l .> mv); i += vectorLanes }
    if rest > 0 { let l = loadPartial(x + full, rest, pad: -.infinity); mv.replace(with: l, where: l .> mv) }
    let m = FloatVector(repeating: mv.max())
    var sv = FloatVector(repeating: 0)
    i = 0
    while i < full {
        let e = vexp(loadVector(x + i) - m)
        storeVector(e, out + i)
        sv += e
        i += vectorLanes
    }
    if rest > 0 {
        let e = vexp(loadPartial(x + full, rest, pad: -.infinity) - m)
        storePartial(e, out + full, rest)
        sv += e
    }
    let inv = FloatVector(repeating: 1 / sv.sum())
    i = 0
    while i < full { storeVector(loadVector(out + i) * inv, out + i); i += vectorLanes }
    for j in full..<count { out[j] *= inv[0] }
}

/// A causal attention row in place: softmax over its first `visible` entries, zeros after
/// them up to `length`. When the row has room, the entries up to the next whole vector
/// are set to −∞ first so the softmax runs in whole vectors (e^−∞ = 0 fills them).
@inline(__always) func softmaxMaskedRow(_ row: FloatPointer, visible: Int, length: Int) {
    let padded = (visible + vectorLanes - 1) / vectorLanes * vectorLanes
    if padded <= length {
        (row + visible).update(repeating: -.infinity, count: padded - visible)
        softmaxRow(row, row, count: padded)
        (row + padded).update(repeating: 0, count: length - padded)
    } else {
        softmaxRow(row, row, count: visible)
        (row + visible).update(repeating: 0, count: length - visible)
    }
}

/// Hands out task indices 0..<count to workers that ask for the next one.
final class TaskCounter: @unchecked Sendable {
    private var nextTask = 0
    private let count: Int
    private let lock = NSLock()
    init(_ count: Int) { self.count = count }
    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard nextTask < count else { return nil }
        nextTask += 1
        return nextTask - 1
    }
}
