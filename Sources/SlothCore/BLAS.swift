import CBLAS

/// Matrix products through OpenBLAS (row-major). The only file that imports CBLAS.
public enum BLAS {
    /// C (m x n) = alpha * op(A) * op(B) + beta * C, row-major; lda/ldb/ldc default to packed rows.
    @inlinable
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Sets the number of threads BLAS uses.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}

extension BLAS {
    /// Number of threads OpenBLAS uses now.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with OpenBLAS single-threaded: for regions that parallelise over small products themselves.
    @inlinable
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        let before = threads
        if before == 1 { return try body() }
        setThreads(1)
        defer { setThreads(before) }
        return try body()
    }
}
