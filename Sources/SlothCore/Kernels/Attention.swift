import Foundation
import CSlothKernels

// B = batch, T = tokens per row, H = query heads, K = kv heads, E = head dim, Q = query block.
// q (B*T, H*E), k and v (B*T, K*E), out (B*T, H*E), lse (B, H, T).

/// Causal attention with GQA, sliding window and packed segments, tiled by query blocks:
/// a block of Q query rows meets only the keys it may see (causal tiles above the diagonal and
/// tiles left of the window are never computed), through BLAS. Memory is G Q x T per worker (the G query heads of a kv head are stacked, so each product has G Q rows);
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
    /// Keys per block (forward: scores of G Q x keyBlock floats; backward: P and dP of that size each).
    public static var keyBlock = 512

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
        let blocks = (s.tokens + blockSize - 1) / blockSize
        var keys = 0.0
        segmentStarts(s).withUnsafeBufferPointerOrNil { seg in
            for task in 0..<(s.batch * s.kvHeads * blocks) {
                let t = block(task, blocks: blocks, s, segStart: seg)
                keys += Double((t.q1 - t.q0) * (t.q1 - t.lo))
            }
        }
        // Each task computes its tile for the G query heads of its kv head.
        return 2 * keys * Double(s.heads / s.kvHeads * s.headDim * matmuls)
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

    /// Floats of workspace (`Workspace.shared`) forward (`backward: false`) or backward takes with `threads` workers. A
    /// task is one query block of one kv head with the block's rows of every query head in the group stacked (G Q rows):
    /// per worker a G Q x keyBlock score block (backward also dP) and G Q x E packed rows (forward: Q and O; backward: Q,
    /// dO, dQ); in backward each class of query blocks after the first its own dK and dV; with Sloth's product kernel,
    /// the transposed K (and in backward V) of `transposedHeads`.
    public static func workspaceFloats(batch: Int, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, backward: Bool,
                                       threads: Int = Parallel.threads) -> Int {
        let l = layout(batch: batch, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, backward: backward, threads: threads)
        return l.transposed + l.extra + l.workers * l.perWorker
    }

    /// How `workspaceFloats` is carved: `transposed` floats of transposed K (and in backward then V, each
    /// `transposedEach` floats), then `extra` of per-class dK, dV, then `workers` blocks of `perWorker` floats (each
    /// part a multiple of 16 floats, so that every part starts 64-byte aligned).
    static func layout(batch: Int, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, backward: Bool, threads: Int)
        -> (transposed: Int, transposedEach: Int, extra: Int, workers: Int, perWorker: Int) {
        let Q = blockSize, blocks = (tokens + Q - 1) / Q, M = heads / max(kvHeads, 1) * Q, KB = min(keyBlock, tokens)
        let kv = batch * tokens * kvHeads * headDim
        // transposedStride is a multiple of 16, so each copy is too.
        let each = fastProducts ? batch * kvHeads * headDim * transposedStride(tokens) : 0
        func aligned(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        // As many scratch blocks as forward's tasks (backward's groups) have workers (`Parallel.claiming`).
        if !backward {
            return (each, each, 0, Parallel.workers(for: batch * kvHeads * blocks, threads: threads), aligned(M * (KB + 2 * headDim + 2)))
        }
        let parities = backwardParities(blocks: blocks)
        return (2 * each, each, aligned((parities - 1) * 2 * kv), Parallel.workers(for: batch * kvHeads * parities, threads: threads),
                aligned(M * (2 * KB + 3 * headDim + 1)))
    }

    /// Single-threaded C (m x n) (+)= alpha op(A) B with n the head dimension: Sloth's register-blocked kernel on
    /// AVX-512 (1.0-1.5x OpenBLAS's rate at these shapes, bench/gemm.sh), BLAS elsewhere.
    @inline(__always)
    static func product(c: UnsafeMutablePointer<Float>, ldc: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool,
                        b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, alpha: Float, accumulate: Bool) {
        if fastProducts {
            sloth_gemm(c, Int32(ldc), a, transA ? 1 : lda, transA ? lda : 1, b, Int32(ldb), Int32(m), Int32(n), Int32(k), alpha, accumulate ? 1 : 0)
        } else {
            BLAS.sgemm(transA: transA, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }

    /// Row stride of `transposedHeads`: T rounded up to 16 floats, plus 16, so that consecutive rows start one cache
    /// line apart within a page. With a stride of T itself (a multiple of 4 KiB at 1024, 2048, 8192 tokens) the E
    /// rows a product walks all fall into the same L1 sets and evict each other (Intel Xeon, one thread, Q K^T at
    /// 192 x 512 x 64: 72-76 GFLOP/s at stride 2048 against 87-97 at 2064).
    static func transposedStride(_ tokens: Int) -> Int { (tokens + 15) / 16 * 16 + 16 }

    /// k or v (B*T, K*E) with each kv head's rows transposed: (B, K, E, T) with rows `transposedStride` apart, so
    /// that Q K^T and dO V^T are plain products for `product` (a BLAS multiplies by a transposed operand as fast,
    /// Sloth's kernel does not), written to `out` (B K E `transposedStride` floats). Nil when `product` is BLAS.
    static func transposedHeads(_ x: UnsafePointer<Float>, _ s: Shape, into out: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>? {
        guard fastProducts else { return nil }
        let T = s.tokens, K = s.kvHeads, E = s.headDim, ld = transposedStride(T)
        Parallel.forRange(s.batch * K, minChunk: 1) { r in
            for bk in r {
                let b = bk / K, h = bk % K, dst = out + bk * E * ld
                for t in 0..<T {
                    let src = x + (b * T + t) * K * E + h * E
                    for e in 0..<E { dst[e * ld + t] = src[e] }
                }
            }
        }
        return out
    }

    /// S (m x nk) = alpha A (m x E) X^T for X the nk keys (or values) from k0 of kv head kvh in row b: through
    /// `product` on the transposed copy when there is one, else a BLAS product on x itself.
    @inline(__always)
    static func scores(_ S: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, m: Int, x: UnsafePointer<Float>,
                       transposed xt: UnsafeMutablePointer<Float>?, b: Int, kvh: Int, k0: Int, nk: Int, alpha: Float, _ s: Shape) {
        let T = s.tokens, K = s.kvHeads, E = s.headDim
        if let xt {
            let ld = transposedStride(T)
            product(c: S, ldc: nk, a: a, lda: E, transA: false, b: xt + (b * K + kvh) * E * ld + k0, ldb: ld, m: m, n: nk, k: E,
                    alpha: alpha, accumulate: false)
        } else {
            BLAS.sgemm(transA: false, transB: true, m: m, n: nk, k: E, alpha: alpha, a: a, lda: E, b: x + (b * T + k0) * K * E + kvh * E,
                       ldb: K * E, c: S, ldc: nk)
        }
    }

    /// Whether attention's products run on Sloth's kernel (its AVX-512 copy) rather than BLAS. Fixed per build and
    /// CPU, never timed at start-up, so the same machine always runs the same arithmetic (a resumed run stays
    /// bit-identical). With AVX-512 Sloth's kernel is faster at these shapes than OpenBLAS's SkylakeX kernels on the
    /// Intel Xeon and AMD Zen 4 / Zen 5 hosts measured (Xeon, one thread, alternated best-of-40: P V 87 vs 79 GFLOP/s,
    /// dS^T Q 85-93 vs 79, Q K^T on the padded transposed K 95-97 vs 72-74; whole attention 13-18% faster); the AVX2
    /// and baseline copies are slower than BLAS everywhere. `SLOTH_ATTENTION_PRODUCTS=sloth|blas` overrides it
    /// (AVX-512 needed for sloth).
    static var fastProducts: Bool { sloth_kernels_level() == 2 && prefersSlothProducts }

    nonisolated(unsafe) static var prefersSlothProducts: Bool = ProcessInfo.processInfo.environment["SLOTH_ATTENTION_PRODUCTS"] != "blas"

    /// Backward's query blocks of a kv head fall into this many classes (block index mod the count); each class adds
    /// into its own dK, dV (the first into dk, dv), summed in class order at the end. A (row, kv head, class) group is
    /// claimed by whichever worker is free and runs its blocks in order, so the sums, and the results, never depend
    /// on which worker ran what or how many there are, while a worker on a faster core takes more groups (the two
    /// vCPUs of a shared host ran the same product at 100 and 135 GFLOP/s in the same minute).
    static func backwardParities(blocks: Int) -> Int { max(1, min(4, blocks)) }

    /// Task `task` = (row b, kv head, query block q0..<q1) and lo, the first key any of its rows sees.
    @inline(__always)
    static func block(_ task: Int, blocks: Int, _ s: Shape, segStart: UnsafePointer<Int32>?) -> (b: Int, kvh: Int, q0: Int, q1: Int, lo: Int) {
        let Q = blockSize, T = s.tokens
        let qb = task % blocks, kvh = (task / blocks) % s.kvHeads, b = task / (blocks * s.kvHeads)
        let q0 = qb * Q, q1 = min(T, q0 + Q)
        var lo = q1
        for i in q0..<q1 { lo = min(lo, firstKey(i, row: b, s, segmentStart: segStart)) }
        return (b, kvh, q0, q1, lo)
    }

    /// Copies rows q0..<q1 of the group's heads from x (B*T, H*E) into packed (G*nq, E): head g's rows at g*nq.
    @inline(__always)
    static func gather(_ dst: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, b: Int, kvh: Int, q0: Int, nq: Int, _ s: Shape) {
        let H = s.heads, E = s.headDim, G = H / s.kvHeads
        for g in 0..<G {
            let h = kvh * G + g
            for r in 0..<nq { (dst + (g * nq + r) * E).update(from: x + (b * s.tokens + q0 + r) * H * E + h * E, count: E) }
        }
    }

    /// The inverse of `gather`: packed rows back into x (B*T, H*E).
    @inline(__always)
    static func scatter(_ x: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, b: Int, kvh: Int, q0: Int, nq: Int, _ s: Shape) {
        let H = s.heads, E = s.headDim, G = H / s.kvHeads
        for g in 0..<G {
            let h = kvh * G + g
            for r in 0..<nq { (x + (b * s.tokens + q0 + r) * H * E + h * E).update(from: src + (g * nq + r) * E, count: E) }
        }
    }

    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, shape s: Shape) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .attentionForward, flops: attentionFLOPs(s, matmuls: 2)) }
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let G = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        let tasks = s.batch * K * blocks
        let rows = s.batch * K
        let lay = layout(batch: s.batch, tokens: T, heads: H, kvHeads: K, headDim: E, backward: false, threads: Parallel.threads)
        Workspace.shared.withFloats(lay.transposed + lay.workers * lay.perWorker) { ws in
            let kt = transposedHeads(k, s, into: ws)
            starts.withUnsafeBufferPointerOrNil { segStart in
                BLAS.singleThreaded {
                    // Workers claim tasks as they come free, the last query blocks (the most keys) first; every task
                    // writes only its own rows.
                    Parallel.claiming(tasks, flushingDenormals: true) { w, claim in
                        let KB = min(keyBlock, T)
                        let S = ws + lay.transposed + w * lay.perWorker
                        let qs = S + G * Q * KB, os = qs + G * Q * E, mx = os + G * Q * E, l = mx + G * Q
                        while let i = claim() {
                            let task = i % rows * blocks + (blocks - 1 - i / rows)
                            let (b, kvh, q0, q1, lo) = block(task, blocks: blocks, s, segStart: segStart)
                            let nq = q1 - q0, M = G * nq
                            gather(qs, q, b: b, kvh: kvh, q0: q0, nq: nq, s)
                            mx.update(repeating: -Float.infinity, count: M)
                            l.update(repeating: 0, count: M)
                            os.update(repeating: 0, count: M * E)
                            // Keys in blocks of KB with an online softmax (running max and sum per row; earlier blocks'
                            // output rescaled): the scores of a block stay in cache.
                            var k0 = lo
                            while k0 < q1 {
                                let nk = min(KB, q1 - k0)
                                defer { k0 += nk }
                                let vp = v + (b * T + k0) * K * E + kvh * E
                                scores(S, qs, m: M, x: k, transposed: kt, b: b, kvh: kvh, k0: k0, nk: nk, alpha: s.scale, s)
                                for r in 0..<nq {
                                    let i = q0 + r
                                    let first = max(firstKey(i, row: b, s, segmentStart: segStart), k0) - k0, last = min(i, k0 + nk - 1) - k0
                                    for g in 0..<G {
                                        let row = g * nq + r
                                        if first > last { (S + row * nk).update(repeating: 0, count: nk); continue }
                                        let f = sloth_softmax_block_row(S + row * nk, Int32(nk), Int32(first), Int32(last), mx + row, l + row)
                                        if f != 1 { let o = os + row * E; for e in 0..<E { o[e] *= f } }
                                    }
                                }
                                product(c: os, ldc: E, a: S, lda: nk, transA: false, b: vp, ldb: K * E, m: M, n: E, k: nk, alpha: 1, accumulate: true)
                            }
                            for g in 0..<G {
                                for r in 0..<nq {
                                    let row = g * nq + r, inv = 1 / l[row], o = os + row * E
                                    for e in 0..<E { o[e] *= inv }
                                    lse[(b * H + kvh * G + g) * T + q0 + r] = mx[row] + Foundation.log(l[row])
                                }
                            }
                            scatter(out, os, b: b, kvh: kvh, q0: q0, nq: nq, s)
                        }
                    }
                }
            }
        }
    }

    /// dq, dk and dv are assigned. Tasks (a query block of a kv head's group) run in groups of one row, one kv head
    /// and one class of query blocks (`backwardParities`), claimed by free workers; a task owns the dQ rows of its
    /// block, and its group's class adds into that class's dK, dV (the first class into dk, dv), summed at the end.
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>, shape s: Shape) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .attentionBackward, flops: attentionFLOPs(s, matmuls: 5)) }
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim
        let G = H / K
        let Q = blockSize, blocks = (T + Q - 1) / Q
        let starts = segmentStarts(s)
        let parities = backwardParities(blocks: blocks), groups = s.batch * K * parities
        let kvCount = s.batch * T * K * E
        let lay = layout(batch: s.batch, tokens: T, heads: H, kvHeads: K, headDim: E, backward: true, threads: Parallel.threads)
        Workspace.shared.withFloats(lay.transposed + lay.extra + lay.workers * lay.perWorker) { ws in
            let extra = ws + lay.transposed
            dk.update(repeating: 0, count: kvCount)
            dv.update(repeating: 0, count: kvCount)
            extra.update(repeating: 0, count: (parities - 1) * 2 * kvCount)
            let kt = transposedHeads(k, s, into: ws), vt = transposedHeads(v, s, into: ws + lay.transposedEach)
            // Groups are claimed largest first (longest processing time first), so that the last ones claimed, which
            // decide how long one worker waits for the other, are the smallest: at 2048 tokens a kv head's four classes
            // hold 120 to 144 tiles of 64 x 64 (query, key) pairs, and claimed in index order the largest came last. The bench
            // model at 2048 tokens, AMD EPYC (Zen 4), 2 threads: the claiming region's wall time less the workers' mean
            // busy time, per step, 0.070-0.094 s in index order and 0.032-0.055 s largest first (2 runs of 2 steps each).
            let order = starts.withUnsafeBufferPointerOrNil { segStart in
                let cost = (0..<groups).map { group in
                    stride(from: group % parities, to: blocks, by: parities).reduce(0) { sum, qb in
                        let t = block(group / parities * blocks + qb, blocks: blocks, s, segStart: segStart)
                        return sum + (t.q1 - t.q0) * (t.q1 - t.lo)
                    }
                }
                return (0..<groups).sorted { cost[$0] != cost[$1] ? cost[$0] > cost[$1] : $0 < $1 }
            }
            starts.withUnsafeBufferPointerOrNil { segStart in
                BLAS.singleThreaded {
                    Parallel.claiming(groups, flushingDenormals: true) { w, claim in
                        let KB = min(keyBlock, T)
                        let P = ws + lay.transposed + lay.extra + w * lay.perWorker
                        let dP = P + G * Q * KB, qs = dP + G * Q * KB, dos = qs + G * Q * E, dqs = dos + G * Q * E, D = dqs + G * Q * E
                        while let claimed = claim() {
                            let group = order[claimed], parity = group % parities, rowHead = group / parities
                            let dkw = parity == 0 ? dk : extra + (parity - 1) * 2 * kvCount, dvw = parity == 0 ? dv : dkw + kvCount
                            for qb in stride(from: parity, to: blocks, by: parities) {
                                let task = rowHead * blocks + qb
                                let (b, kvh, q0, q1, lo) = block(task, blocks: blocks, s, segStart: segStart)
                                let nq = q1 - q0, M = G * nq
                                gather(qs, q, b: b, kvh: kvh, q0: q0, nq: nq, s)
                                gather(dos, dOut, b: b, kvh: kvh, q0: q0, nq: nq, s)
                                for g in 0..<G {
                                    for r in 0..<nq {
                                        let o = out + (b * T + q0 + r) * H * E + (kvh * G + g) * E, gr = dos + (g * nq + r) * E
                                        var d: Float = 0
                                        for e in 0..<E { d += o[e] * gr[e] }
                                        D[g * nq + r] = d
                                    }
                                }
                                // Keys in blocks of KB: P and dP of a block stay in cache; with the saved logsumexp the
                                // blocks are independent (dQ accumulates over them).
                                var k0 = lo
                                while k0 < q1 {
                                    let nk = min(KB, q1 - k0)
                                    defer { k0 += nk }
                                    let kOff = (b * T + k0) * K * E + kvh * E
                                    scores(P, qs, m: M, x: k, transposed: kt, b: b, kvh: kvh, k0: k0, nk: nk, alpha: s.scale, s)
                                    scores(dP, dos, m: M, x: v, transposed: vt, b: b, kvh: kvh, k0: k0, nk: nk, alpha: 1, s)
                                    for r in 0..<nq {
                                        let i = q0 + r
                                        let first = max(firstKey(i, row: b, s, segmentStart: segStart), k0) - k0, last = min(i, k0 + nk - 1) - k0
                                        for g in 0..<G {
                                            let row = g * nq + r
                                            if first > last {
                                                (P + row * nk).update(repeating: 0, count: nk); (dP + row * nk).update(repeating: 0, count: nk)
                                            } else {
                                                sloth_softmax_grad_row(P + row * nk, dP + row * nk, Int32(nk), Int32(first), Int32(last),
                                                                       lse[(b * H + kvh * G + g) * T + i], D[row])
                                            }
                                        }
                                    }
                                    // dQ += scale * dS K ; dK += scale * dS^T Q ; dV += P^T dO (the group's heads summed by the products)
                                    product(c: dqs, ldc: E, a: dP, lda: nk, transA: false, b: k + kOff, ldb: K * E, m: M, n: E, k: nk, alpha: s.scale, accumulate: k0 > lo)
                                    product(c: dkw + kOff, ldc: K * E, a: dP, lda: nk, transA: true, b: qs, ldb: E, m: nk, n: E, k: M, alpha: s.scale, accumulate: true)
                                    product(c: dvw + kOff, ldc: K * E, a: P, lda: nk, transA: true, b: dos, ldb: E, m: nk, n: E, k: M, alpha: 1, accumulate: true)
                                }
                                scatter(dq, dqs, b: b, kvh: kvh, q0: q0, nq: nq, s)
                            }
                        }
                    }
                }
            }
            if parities > 1 {
                Parallel.forRange(kvCount, minChunk: 1 << 14) { r in
                    for p in 1..<parities {
                        let dkw = extra + (p - 1) * 2 * kvCount, dvw = dkw + kvCount
                        for i in r { dk[i] += dkw[i]; dv[i] += dvw[i] }
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
