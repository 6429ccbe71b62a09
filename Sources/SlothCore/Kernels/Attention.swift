import Foundation

// B = batch, T = tokens per row, H = query heads, K = kv heads, E = head dim, Q = query block.
// q (B*T, H*E), k and v (B*T, K*E), out (B*T, H*E), lse (B, H, T).

/// Causal attention with GQA, sliding window and packed segments, tiled by query blocks:
/// a block of Q query rows meets only the keys it may see (causal tiles above the diagonal and
/// tiles left of the window are never computed), through BLAS. Memory is Q x T per worker;
/// the T x T matrix never exists. Backward recomputes the probabilities from the saved logsumexp.
public enum Attention {
    /// Shape and masking of one attention call.
    public struct Shape: Sendable {
        public var batch: Int, tokens: Int, heads: Int, kvHeads: Int, headDim: Int
        /// Keys with `i - j >= window` are masked (HF sliding_window); nil for none.
        public var window: Int?
        public var scale: Float
        /// Segment id per token (B*T) for packed rows: attention stays inside a segment. nil for none.
        public var segments: [Int32]?
        public init(batch: Int, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int? = nil, scale: Float, segments: [Int32]? = nil) {
            self.batch = batch; self.tokens = tokens; self.heads = heads; self.kvHeads = kvHeads
            self.headDim = headDim; self.window = window; self.scale = scale; self.segments = segments
        }
    }

    /// Query rows per block.
    public static var blockSize = 64

    /// First key index query i may see in row b.
    @inline(__always)
    static func firstKey(_ i: Int, row b: Int, _ s: Shape, segmentStart: UnsafePointer<Int32>?) -> Int {
        var lo = 0
        if let w = s.window { lo = max(0, i - w + 1) }
        if let seg = segmentStart { lo = max(lo, Int(seg[b * s.tokens + i])) }
        return lo
    }

    /// Start index (within the row) of each token's segment, or nil without segments.
    static func segmentStarts(_ s: Shape) -> [Int32]? {
        guard let seg = s.segments else { return nil }
        var starts = [Int32](repeating: 0, count: seg.count)
        for b in 0..<s.batch {
            var start = 0
            for t in 0..<s.tokens {
                let idx = b * s.tokens + t
                if t > 0 && seg[idx] != seg[idx - 1] { start = t }
                starts[idx] = Int32(start)
            }
        }
        return starts
    }

    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, shape s: Shape) {
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let group = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        let tasks = s.batch * H * blocks
        starts.withUnsafeBufferPointerOrNil { segStart in
            BLAS.singleThreaded {
                Parallel.forRange(tasks) { range in
                    var scores = [Float](repeating: 0, count: Q * T)
                    scores.withUnsafeMutableBufferPointer { sbuf in
                        let S = sbuf.baseAddress!
                        for task in range {
                            let qb = task % blocks, h = (task / blocks) % H, b = task / (blocks * H)
                            let q0 = qb * Q, q1 = min(T, q0 + Q), nq = q1 - q0
                            var lo = q1
                            for i in q0..<q1 { lo = min(lo, firstKey(i, row: b, s, segmentStart: segStart)) }
                            let nk = q1 - lo
                            let kvh = h / group
                            let qp = q + (b * T + q0) * H * E + h * E
                            let kp = k + (b * T + lo) * K * E + kvh * E
                            let vp = v + (b * T + lo) * K * E + kvh * E
                            BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E, alpha: s.scale,
                                       a: qp, lda: H * E, b: kp, ldb: K * E, c: S, ldc: nk)
                            for r in 0..<nq {
                                let i = q0 + r
                                let first = firstKey(i, row: b, s, segmentStart: segStart) - lo
                                let last = i - lo  // inclusive
                                let row = S + r * nk
                                var m = -Float.infinity
                                for j in first...last { m = max(m, row[j]) }
                                var sum: Float = 0
                                for j in 0..<nk {
                                    if j < first || j > last { row[j] = 0 } else {
                                        let e = Foundation.exp(row[j] - m)
                                        row[j] = e; sum += e
                                    }
                                }
                                let inv = 1 / sum
                                for j in first...last { row[j] *= inv }
                                lse[(b * H + h) * T + i] = m + Foundation.log(sum)
                            }
                            BLAS.sgemm(transA: false, transB: false, m: nq, n: E, k: nk,
                                       a: S, lda: nk, b: vp, ldb: K * E, c: out + (b * T + q0) * H * E + h * E, ldc: H * E)
                        }
                    }
                }
            }
        }
    }

    /// dq is assigned; dk and dv are assigned (zeroed here, then accumulated over the heads of each group).
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>, shape s: Shape) {
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let group = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        dk.update(repeating: 0, count: s.batch * T * K * E)
        dv.update(repeating: 0, count: s.batch * T * K * E)
        starts.withUnsafeBufferPointerOrNil { segStart in
            BLAS.singleThreaded {
                Parallel.forRange(s.batch * K) { range in
                    var P = [Float](repeating: 0, count: Q * T)
                    var dP = [Float](repeating: 0, count: Q * T)
                    var D = [Float](repeating: 0, count: Q)
                    P.withUnsafeMutableBufferPointer { pbuf in
                    dP.withUnsafeMutableBufferPointer { dpbuf in
                        let Pp = pbuf.baseAddress!, dPp = dpbuf.baseAddress!
                        for task in range {
                            let kvh = task % K, b = task / K
                            for h in kvh * group..<(kvh + 1) * group {
                                for qb in 0..<blocks {
                                    let q0 = qb * Q, q1 = min(T, q0 + Q), nq = q1 - q0
                                    var lo = q1
                                    for i in q0..<q1 { lo = min(lo, firstKey(i, row: b, s, segmentStart: segStart)) }
                                    let nk = q1 - lo
                                    let qOff = (b * T + q0) * H * E + h * E
                                    let kOff = (b * T + lo) * K * E + kvh * E
                                    BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E, alpha: s.scale,
                                               a: q + qOff, lda: H * E, b: k + kOff, ldb: K * E, c: Pp, ldc: nk)
                                    BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E,
                                               a: dOut + qOff, lda: H * E, b: v + kOff, ldb: K * E, c: dPp, ldc: nk)
                                    for r in 0..<nq {
                                        let i = q0 + r
                                        let o = out + qOff + r * H * E, g = dOut + qOff + r * H * E
                                        var d: Float = 0
                                        for e in 0..<E { d += o[e] * g[e] }
                                        D[r] = d
                                        let first = firstKey(i, row: b, s, segmentStart: segStart) - lo
                                        let last = i - lo
                                        let l = lse[(b * H + h) * T + i]
                                        let prow = Pp + r * nk, dprow = dPp + r * nk
                                        for j in 0..<nk {
                                            if j < first || j > last { prow[j] = 0; dprow[j] = 0 } else {
                                                let p = Foundation.exp(prow[j] - l)
                                                prow[j] = p
                                                dprow[j] = p * (dprow[j] - d)   // dS
                                            }
                                        }
                                    }
                                    // dQ = scale * dS K ; dK += scale * dS^T Q ; dV += P^T dO
                                    BLAS.sgemm(transA: false, transB: false, m: nq, n: E, k: nk, alpha: s.scale,
                                               a: dPp, lda: nk, b: k + kOff, ldb: K * E, beta: 0, c: dq + qOff, ldc: H * E)
                                    BLAS.sgemm(transA: true, transB: false, m: nk, n: E, k: nq, alpha: s.scale,
                                               a: dPp, lda: nk, b: q + qOff, ldb: H * E, beta: 1, c: dk + kOff, ldc: K * E)
                                    BLAS.sgemm(transA: true, transB: false, m: nk, n: E, k: nq,
                                               a: Pp, lda: nk, b: dOut + qOff, ldb: H * E, beta: 1, c: dv + kOff, ldc: K * E)
                                }
                            }
                        }
                    }
                    }
                }
            }
        }
    }
}

extension Optional where Wrapped == [Int32] {
    @inline(__always)
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Int32>?) -> R) -> R {
        switch self {
        case .none: return body(nil)
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}
