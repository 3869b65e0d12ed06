import COpenBLAS
import Foundation

/// Time and FLOPs spent in GEMM, for `peft-plan bench`'s "share of time in GEMM" and
/// achieved GFLOP/s. Only the calling thread updates these; work spread over the cores
/// counts into per-worker ``GEMMTally``s first.
public enum GEMMStats {
    nonisolated(unsafe) public static var seconds = 0.0
    nonisolated(unsafe) public static var flops = 0.0
    nonisolated(unsafe) public static var calls = 0

    /// Both under ``blasLock``: trainers side by side (the tests) commit while another resets.
    public static func reset() {
        blasLock.lock()
        defer { blasLock.unlock() }
        seconds = 0; flops = 0; calls = 0
    }
    public static func snapshot() -> (seconds: Double, flops: Double, calls: Int) {
        blasLock.lock()
        defer { blasLock.unlock() }
        return (seconds, flops, calls)
    }
}

/// OpenBLAS's thread count is process-wide, and changing it while another thread's GEMM runs
/// can corrupt that GEMM; ``GEMMStats`` is process-wide too. Every GEMM entry point and every
/// parallel region holds this lock, so trainers running side by side (as the tests run them)
/// take turns at BLAS; a single trainer never waits on it.
let blasLock = NSLock()

/// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major, through OpenBLAS's `cblas_sgemm`.
/// op(A) is m×k (A is k×m when `transA`), op(B) is k×n (B is n×k when `transB`).
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    blasLock.lock()
    defer { blasLock.unlock() }
    var tally = GEMMTally()
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
          tally: &tally)
    tally.commit()
}

/// GEMM time and FLOPs counted by one thread, added to ``GEMMStats`` once its work is done
/// (``GEMMStats`` itself is only touched from the calling thread).
struct GEMMTally {
    var seconds = 0.0, flops = 0.0, calls = 0

    /// Adds this tally to ``GEMMStats``; `concurrent` tallies that ran side by side count
    /// their seconds divided by their number (the wall-clock time they shared).
    func commit(concurrent: Int = 1) {
        GEMMStats.seconds += seconds / Double(max(concurrent, 1))
        GEMMStats.flops += flops
        GEMMStats.calls += calls
    }
}

/// ``sgemm`` counting into a caller's tally, for the bodies of ``parallelWorkers`` (which
/// hold ``blasLock`` for them). Inside such a body only this form may be called: the public
/// one takes ``blasLock`` again and would wait forever.
@inline(__always)
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, tally: inout GEMMTally) {
    guard m > 0 && n > 0 else { return }
    let start = DispatchTime.now().uptimeNanoseconds
    // Small or skinny products (LoRA's rank-r factors) lose more to OpenBLAS's thread
    // hand-off than a second core gives back: those run on one thread.
    let threads = GEMMThreading.singleThreaded(m: m, n: n, k: k) ? openblas_get_num_threads() : 1
    if threads > 1 { openblas_set_num_threads(1) }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    if threads > 1 { openblas_set_num_threads(threads) }
    tally.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    tally.flops += 2 * Double(m) * Double(n) * Double(k)
    tally.calls += 1
}

/// Runs `body(worker, tally)` for workers 0..<count on their own threads, each BLAS call
/// inside single-threaded (OpenBLAS's own threads stay idle: the parallelism is ours),
/// then restores OpenBLAS's thread count and adds the workers' GEMM tallies to
/// ``GEMMStats``. With one worker it runs inline, BLAS threading untouched.
func parallelWorkers(_ count: Int, _ body: (Int, inout GEMMTally) -> Void) {
    blasLock.lock()
    defer { blasLock.unlock() }
    if count <= 1 {
        var tally = GEMMTally()
        body(0, &tally)
        tally.commit()
        return
    }
    let saved = openblas_get_num_threads()
    openblas_set_num_threads(1)
    let tallies = UnsafeMutablePointer<GEMMTally>.allocate(capacity: count)
    tallies.initialize(repeating: GEMMTally(), count: count)
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable((body, tallies))
        DispatchQueue.concurrentPerform(iterations: count) { w in shared.value.0(w, &shared.value.1[w]) }
    }
    openblas_set_num_threads(saved)
    var total = GEMMTally()
    for w in 0..<count { total.seconds += tallies[w].seconds; total.flops += tallies[w].flops; total.calls += tallies[w].calls }
    total.commit(concurrent: count)
    tallies.deinitialize(count: count)
    tallies.deallocate()
}

/// Which GEMMs run on a single OpenBLAS thread even when OpenBLAS has more.
public enum GEMMThreading {
    /// Products with fewer multiply-adds (m·n·k) than this run single-threaded.
    nonisolated(unsafe) public static var singleThreadBelow: Double = {
        if let s = ProcessInfo.processInfo.environment["PEFT_GEMM_SINGLE_BELOW"], let v = Double(s) { return v }
        return 4_194_304
    }()
    /// Products with a side at most this long (a LoRA rank) run single-threaded.
    nonisolated(unsafe) public static var singleThreadSide: Int = {
        if let s = ProcessInfo.processInfo.environment["PEFT_GEMM_SINGLE_SIDE"], let v = Int(s) { return v }
        return 32
    }()

    @inline(__always) static func singleThreaded(m: Int, n: Int, k: Int) -> Bool {
        min(m, n, k) <= singleThreadSide || Double(m) * Double(n) * Double(k) < singleThreadBelow
    }
}

/// The reference for ``sgemm``: the same contract in three plain loops (Double
/// accumulation), used by the tests.
public func sgemmNaive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let x = transA ? a[p * lda + i] : a[i * lda + p]
                let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(x) * Double(y)
            }
            let old = beta == 0 ? 0 : beta * c[i * ldc + j]
            c[i * ldc + j] = alpha * Float(sum) + old
        }
    }
}

/// The BLAS the engine runs on, for every measurement's record.
public enum BLASInfo {
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
    public static var threads: Int { Int(openblas_get_num_threads()) }
    public static var config: String {
        guard let c = openblas_get_config() else { return "unknown" }
        return String(cString: c).trimmingCharacters(in: .whitespaces)
    }
}
