import Foundation

// H = query heads, K = kv heads, E = head dim, Q = new query tokens of one sequence, S = cached keys.

extension Attention {
    /// Attention of one sequence's new query tokens over its key/value cache (inference).
    /// q (Q, H*E) at absolute positions `firstPosition ..< firstPosition+Q`; kCache/vCache (S, K*E) hold
    /// keys for positions 0..<S (S >= firstPosition+Q); out (Q, H*E). Causal, with an optional sliding window.
    public static func forwardCached(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, queries nq: Int, firstPosition p0: Int,
                                     kCache: UnsafePointer<Float>, vCache: UnsafePointer<Float>,
                                     heads H: Int, kvHeads K: Int, headDim E: Int, window: Int?, scale: Float) {
        let group = H / K
        let last = p0 + nq          // keys 0..<last are visible to some query
        var lo = 0
        if let w = window { lo = max(0, p0 - w + 1) }
        let nk = last - lo
        BLAS.singleThreaded {
        Parallel.forEach(H) { h in
            var scores = [Float](repeating: 0, count: nq * nk)
            scores.withUnsafeMutableBufferPointer { sb in
                let S = sb.baseAddress!
                let kvh = h / group
                BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E, alpha: scale, a: q + h * E, lda: H * E,
                           b: kCache + lo * K * E + kvh * E, ldb: K * E, c: S, ldc: nk)
                for r in 0..<nq {
                    let i = p0 + r
                    var first = 0
                    if let w = window { first = max(0, i - w + 1) - lo }
                    let lastKey = i - lo
                    let row = S + r * nk
                    var m = -Float.infinity
                    for j in first...lastKey { m = max(m, row[j]) }
                    var sum: Float = 0
                    for j in 0..<nk {
                        if j < first || j > lastKey { row[j] = 0 } else { let e = Foundation.exp(row[j] - m); row[j] = e; sum += e }
                    }
                    let inv = 1 / sum
                    for j in first...lastKey { row[j] *= inv }
                }
                BLAS.sgemm(transA: false, transB: false, m: nq, n: E, k: nk, a: S, lda: nk, b: vCache + lo * K * E + kvh * E, ldb: K * E,
                           c: out + h * E, ldc: H * E)
            }
        }
        }
    }
}
