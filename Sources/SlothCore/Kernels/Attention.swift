import Foundation
import CSlothKernels

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

    /// FLOPs of the products attention computes: `matmuls` (Q x E x keys) products per computed tile
    /// (forward 2: scores and P V; backward 5: scores again, dP, dQ, dK, dV). Whole tiles count.
    public static func attentionFLOPs(_ s: Shape, matmuls: Int) -> Double {
        let T = s.tokens, Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        var keys = 0.0
        starts.withUnsafeBufferPointerOrNil { seg in
            for b in 0..<s.batch {
                for qb in 0..<blocks {
                    let q0 = qb * Q, q1 = min(T, q0 + Q)
                    var lo = q1
                    for i in q0..<q1 { lo = min(lo, firstKey(i, row: b, s, segmentStart: seg)) }
                    keys += Double((q1 - q0) * (q1 - lo))
                }
            }
        }
        return 2 * keys * Double(s.heads * s.headDim * matmuls)
    }

    /// FLOPs attention must do for one product over (query, key) pairs the mask allows, exactly
    /// (no tile rounding): 2 x pairs x H x E. Forward needs 2 such products, backward 4.
    public static func requiredFLOPsPerProduct(_ s: Shape) -> Double {
        let starts = segmentStarts(s)
        var pairs = 0.0
        starts.withUnsafeBufferPointerOrNil { seg in
            for b in 0..<s.batch {
                for i in 0..<s.tokens { pairs += Double(i - firstKey(i, row: b, s, segmentStart: seg) + 1) }
            }
        }
        return 2 * pairs * Double(s.heads * s.headDim)
    }

    /// Floats of workspace forward (`backward: false`) or backward allocates with `threads` workers: a Q x T
    /// score block per worker, and backward also dP and, for each worker after the first, its own dK and dV.
    public static func workspaceFloats(batch: Int, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, backward: Bool,
                                       threads: Int = Parallel.threads) -> Int {
        let Q = blockSize, tasks = batch * heads * ((tokens + Q - 1) / Q)
        let workers = min(threads, max(tasks, 1))
        if !backward { return workers * Q * tokens }
        return workers * 2 * Q * tokens + (workers - 1) * 2 * batch * tokens * kvHeads * headDim
    }

    /// The query block and the keys it meets: rows q0..<q1 see keys lo...(i) (lo the smallest first key).
    @inline(__always)
    static func block(_ task: Int, blocks: Int, _ s: Shape, segStart: UnsafePointer<Int32>?) -> (b: Int, h: Int, q0: Int, q1: Int, lo: Int) {
        let Q = blockSize, T = s.tokens
        let qb = task % blocks, h = (task / blocks) % s.heads, b = task / (blocks * s.heads)
        let q0 = qb * Q, q1 = min(T, q0 + Q)
        var lo = q1
        for i in q0..<q1 { lo = min(lo, firstKey(i, row: b, s, segmentStart: segStart)) }
        return (b, h, q0, q1, lo)
    }

    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, shape s: Shape) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .attentionForward, flops: attentionFLOPs(s, matmuls: 2)) }
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let group = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        let tasks = s.batch * H * blocks
        starts.withUnsafeBufferPointerOrNil { segStart in
            BLAS.singleThreaded {
                Parallel.forRange(tasks) { range in
                    let S = UnsafeMutablePointer<Float>.allocate(capacity: Q * T)
                    defer { S.deallocate() }
                    for task in range {
                        let (b, h, q0, q1, lo) = block(task, blocks: blocks, s, segStart: segStart)
                        let nq = q1 - q0, nk = q1 - lo, kvh = h / group
                        let qp = q + (b * T + q0) * H * E + h * E
                        let kp = k + (b * T + lo) * K * E + kvh * E
                        let vp = v + (b * T + lo) * K * E + kvh * E
                        BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E, alpha: s.scale,
                                   a: qp, lda: H * E, b: kp, ldb: K * E, c: S, ldc: nk)
                        for r in 0..<nq {
                            let i = q0 + r
                            let first = firstKey(i, row: b, s, segmentStart: segStart) - lo
                            lse[(b * H + h) * T + i] = sloth_softmax_row(S + r * nk, Int32(nk), Int32(first), Int32(i - lo))
                        }
                        BLAS.sgemm(transA: false, transB: false, m: nq, n: E, k: nk,
                                   a: S, lda: nk, b: vp, ldb: K * E, c: out + (b * T + q0) * H * E + h * E, ldc: H * E)
                    }
                }
            }
        }
    }

    /// dq, dk and dv are assigned. Query blocks of every head are spread over the workers (interleaved, so causal
    /// blocks of every length reach each); each worker owns the dQ rows of its blocks and adds into its own dK, dV
    /// (the first worker into dk, dv), summed at the end.
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>, shape s: Shape) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .attentionBackward, flops: attentionFLOPs(s, matmuls: 5)) }
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let group = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        let tasks = s.batch * H * blocks
        let workers = min(Parallel.threads, max(tasks, 1))
        let kvCount = s.batch * T * K * E
        let extra = UnsafeMutablePointer<Float>.allocate(capacity: max(1, (workers - 1) * 2 * kvCount))
        defer { extra.deallocate() }
        dk.update(repeating: 0, count: kvCount)
        dv.update(repeating: 0, count: kvCount)
        extra.update(repeating: 0, count: (workers - 1) * 2 * kvCount)
        starts.withUnsafeBufferPointerOrNil { segStart in
            BLAS.singleThreaded {
                Parallel.forEach(workers) { w in
                    let dkw = w == 0 ? dk : extra + (w - 1) * 2 * kvCount, dvw = w == 0 ? dv : dkw + kvCount
                    let P = UnsafeMutablePointer<Float>.allocate(capacity: 2 * Q * T)
                    defer { P.deallocate() }
                    let dP = P + Q * T
                    var task = w
                    while task < tasks {
                        defer { task += workers }
                        let (b, h, q0, q1, lo) = block(task, blocks: blocks, s, segStart: segStart)
                        let nq = q1 - q0, nk = q1 - lo, kvh = h / group
                        let qOff = (b * T + q0) * H * E + h * E
                        let kOff = (b * T + lo) * K * E + kvh * E
                        BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E, alpha: s.scale,
                                   a: q + qOff, lda: H * E, b: k + kOff, ldb: K * E, c: P, ldc: nk)
                        BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: E,
                                   a: dOut + qOff, lda: H * E, b: v + kOff, ldb: K * E, c: dP, ldc: nk)
                        for r in 0..<nq {
                            let i = q0 + r
                            let o = out + qOff + r * H * E, g = dOut + qOff + r * H * E
                            var d: Float = 0
                            for e in 0..<E { d += o[e] * g[e] }
                            let first = firstKey(i, row: b, s, segmentStart: segStart) - lo
                            sloth_softmax_grad_row(P + r * nk, dP + r * nk, Int32(nk), Int32(first), Int32(i - lo), lse[(b * H + h) * T + i], d)
                        }
                        // dQ = scale * dS K ; dK += scale * dS^T Q ; dV += P^T dO
                        BLAS.sgemm(transA: false, transB: false, m: nq, n: E, k: nk, alpha: s.scale,
                                   a: dP, lda: nk, b: k + kOff, ldb: K * E, beta: 0, c: dq + qOff, ldc: H * E)
                        BLAS.sgemm(transA: true, transB: false, m: nk, n: E, k: nq, alpha: s.scale,
                                   a: dP, lda: nk, b: q + qOff, ldb: H * E, beta: 1, c: dkw + kOff, ldc: K * E)
                        BLAS.sgemm(transA: true, transB: false, m: nk, n: E, k: nq,
                                   a: P, lda: nk, b: dOut + qOff, ldb: H * E, beta: 1, c: dvw + kOff, ldc: K * E)
                    }
                }
            }
        }
        if workers > 1 {
            Parallel.forRange(kvCount, minChunk: 1 << 14) { r in
                for w in 1..<workers {
                    let dkw = extra + (w - 1) * 2 * kvCount, dvw = dkw + kvCount
                    for i in r { dk[i] += dkw[i]; dv[i] += dvw[i] }
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
