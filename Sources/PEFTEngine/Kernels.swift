import COpenBLAS
import Foundation

/// Time and FLOPs spent in GEMM, for `peft-plan bench`'s "share of time in GEMM" and
/// achieved GFLOP/s. The engine is single-threaded at the Swift level (OpenBLAS threads
/// inside each call), so plain counters suffice.
public enum GEMMStats {
    nonisolated(unsafe) public static var seconds = 0.0
    nonisolated(unsafe) public static var flops = 0.0
    nonisolated(unsafe) public static var calls = 0

    public static func reset() { seconds = 0; flops = 0; calls = 0 }
}

/// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major, through OpenBLAS's `cblas_sgemm`.
/// op(A) is m×k (A is k×m when `transA`), op(B) is k×n (B is n×k when `transB`).
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0 && n > 0 else { return }
    let start = DispatchTime.now().uptimeNanoseconds
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    GEMMStats.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    GEMMStats.flops += 2 * Double(m) * Double(n) * Double(k)
    GEMMStats.calls += 1
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
