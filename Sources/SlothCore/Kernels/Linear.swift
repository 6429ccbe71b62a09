// N = tokens, I = in features, O = out features. HF layout: W (O, I), y = x W^T + b.

/// A dense linear layer's products.
public enum Linear {
    /// y (N, O) = x (N, I) W^T (+ bias); `accumulate` adds into y.
    @inlinable
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, rows n: Int, inFeatures i: Int, outFeatures o: Int, accumulate: Bool = false) {
        BLAS.sgemm(transA: false, transB: true, m: n, n: o, k: i, a: input, lda: i, b: weight, ldb: i,
                   beta: accumulate ? 1 : 0, c: out, ldc: o)
        if let bias { Elementwise.addBias(out, bias, rows: n, width: o) }
    }

    /// dx (N, I) = dy W (assigned, or added when `accumulate`).
    @inlinable
    public static func backwardInput(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                     rows n: Int, inFeatures i: Int, outFeatures o: Int, accumulate: Bool) {
        BLAS.sgemm(transA: false, transB: false, m: n, n: i, k: o, a: dOut, lda: o, b: weight, ldb: i,
                   beta: accumulate ? 1 : 0, c: dInput, ldc: i)
    }

    /// dW (O, I) += dy^T x.
    @inlinable
    public static func backwardWeight(dWeight: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      rows n: Int, inFeatures i: Int, outFeatures o: Int) {
        BLAS.sgemm(transA: true, transB: false, m: o, n: i, k: n, a: dOut, lda: o, b: input, ldb: i, beta: 1, c: dWeight, ldc: i)
    }
}
