import CSlothKernels

// N = rows, R = rank (small), K / width = the long side. Row-major with leading dimensions.

/// LoRA's low-rank products, threaded: a BLAS packs its operands for every product, which costs more than the
/// 2R FLOPs per element these do (bench/lowrank.sh compares them with OpenBLAS product by product).
public enum LowRank {
    /// out (N, R) = alpha X (N, K) W^T, W (R, K). Threaded over rows.
    public static func dots(out: UnsafeMutablePointer<Float>, ldo: Int, x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, ldw: Int,
                            rows: Int, rank: Int, k: Int, alpha: Float = 1) {
        Parallel.forRange(rows, minChunk: 64) { r in
            sloth_lowrank_dots(out + r.lowerBound * ldo, Int32(ldo), x + r.lowerBound * ldx, Int32(ldx), w, Int32(ldw),
                               Int32(r.count), Int32(rank), Int32(k), alpha)
        }
    }

    /// y (N, width) = base + alpha C (N, R) W (R, width); `base` nil assigns, `base == y` accumulates. Threaded over rows.
    public static func update(y: UnsafeMutablePointer<Float>, ldy: Int, base: UnsafePointer<Float>?, ldb: Int,
                              c: UnsafePointer<Float>, ldc: Int, w: UnsafePointer<Float>, ldw: Int,
                              rows: Int, rank: Int, width: Int, alpha: Float = 1) {
        Parallel.forRange(rows, minChunk: 32) { r in
            sloth_lowrank_update(y + r.lowerBound * ldy, Int32(ldy), base.map { $0 + r.lowerBound * ldb }, Int32(ldb),
                                 c + r.lowerBound * ldc, Int32(ldc), w, Int32(ldw), Int32(r.count), Int32(rank), Int32(width), alpha)
        }
    }

    /// g (R, width) += alpha C^T X, C (N, R), X (N, width). Threaded over row ranges (see `rowSplit`).
    public static func outer(g: UnsafeMutablePointer<Float>, ldg: Int, c: UnsafePointer<Float>, ldc: Int, x: UnsafePointer<Float>, ldx: Int,
                             rows: Int, rank: Int, width: Int, alpha: Float = 1, partials: UnsafeMutablePointer<Float>? = nil) {
        rowSplit(rows: rows, rank: rank, width: width, g: g, ldg: ldg, partials: partials) { r, acc, lda in
            sloth_lowrank_outer(acc, Int32(lda), c + r.lowerBound * ldc, Int32(ldc), x + r.lowerBound * ldx, Int32(ldx),
                                Int32(r.count), Int32(rank), Int32(width), alpha)
        }
    }

    /// out (N, R) = alphaDots X Wr^T, Wr (R, width), and g (R, width) += alphaOuter C^T X, C (N, R), in one pass over
    /// X (N, width): LoRA's backward g = s dY B and dB^T += s xa^T dY, which would otherwise each read dY.
    public static func dotsOuter(out: UnsafeMutablePointer<Float>, ldo: Int, w: UnsafePointer<Float>, ldw: Int, alphaDots: Float,
                                 g: UnsafeMutablePointer<Float>, ldg: Int, c: UnsafePointer<Float>, ldc: Int, alphaOuter: Float,
                                 x: UnsafePointer<Float>, ldx: Int, rows: Int, rank: Int, width: Int, partials: UnsafeMutablePointer<Float>? = nil) {
        rowSplit(rows: rows, rank: rank, width: width, g: g, ldg: ldg, partials: partials) { r, acc, lda in
            sloth_lowrank_dots_outer(out + r.lowerBound * ldo, Int32(ldo), w, Int32(ldw), alphaDots, acc, Int32(lda),
                                     c + r.lowerBound * ldc, Int32(ldc), alphaOuter, x + r.lowerBound * ldx, Int32(ldx),
                                     Int32(r.count), Int32(rank), Int32(width))
        }
    }

    /// Workers for a row-split sum over `rows` rows: one per 128 rows up to the thread count.
    static func rowWorkers(_ rows: Int) -> Int { min(Parallel.threads, max(1, rows / 128)) }

    /// Floats of `partials` the row-split sums need for (R, width) accumulators over `rows` rows.
    public static func partialFloats(rows: Int, rank: Int, width: Int) -> Int { (rowWorkers(rows) - 1) * rank * width }

    /// Runs `body(rows, accumulator, ld)` over contiguous row ranges in parallel: each worker streams its rows (one
    /// contiguous run of memory, which the prefetchers follow) into its own (R, width) sum: the first worker's is g,
    /// the others' are zeroed slices of `partials` (`partialFloats`; allocated here when nil), added into g after, in
    /// worker order (the same sums for the same thread count).
    static func rowSplit(rows: Int, rank: Int, width: Int, g: UnsafeMutablePointer<Float>, ldg: Int, partials: UnsafeMutablePointer<Float>?,
                         _ body: (Range<Int>, UnsafeMutablePointer<Float>, Int) -> Void) {
        let workers = rowWorkers(rows)
        if workers <= 1 { body(0..<rows, g, ldg); return }
        let size = rank * width
        let owned = partials == nil ? UnsafeMutablePointer<Float>.allocate(capacity: (workers - 1) * size) : nil
        defer { owned?.deallocate() }
        let p = partials ?? owned!
        Parallel.forEach(workers) { w in
            let lo = rows * w / workers, hi = rows * (w + 1) / workers
            if w == 0 { body(lo..<hi, g, ldg); return }
            let acc = p + (w - 1) * size
            acc.update(repeating: 0, count: size)
            body(lo..<hi, acc, width)
        }
        for w in 1..<workers {
            let acc = p + (w - 1) * size
            for j in 0..<rank { for i in 0..<width { g[j * ldg + i] += acc[j * width + i] } }
        }
    }

    /// dst (C, R) += src^T for src (R, C): a transposed add.
    public static func addTransposed(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows r: Int, columns c: Int) {
        for i in 0..<c { for j in 0..<r { dst[i * r + j] += src[j * c + i] } }
    }

    /// dst (C, R) = src^T for src (R, C).
    public static func transpose(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows r: Int, columns c: Int) {
        for j in 0..<r { for i in 0..<c { dst[i * r + j] = src[j * c + i] } }
    }
}
