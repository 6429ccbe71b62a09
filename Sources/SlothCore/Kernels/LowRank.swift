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

    /// g (R, width) += alpha C^T X, C (N, R), X (N, width). Threaded over column blocks of 32.
    public static func outer(g: UnsafeMutablePointer<Float>, ldg: Int, c: UnsafePointer<Float>, ldc: Int, x: UnsafePointer<Float>, ldx: Int,
                             rows: Int, rank: Int, width: Int, alpha: Float = 1) {
        let blocks = (width + 31) / 32
        Parallel.forRange(blocks, minChunk: rows >= 256 ? 2 : blocks) { r in
            let c0 = r.lowerBound * 32, c1 = min(width, r.upperBound * 32)
            sloth_lowrank_outer(g + c0, Int32(ldg), c, Int32(ldc), x + c0, Int32(ldx), Int32(rows), Int32(rank), Int32(c1 - c0), alpha)
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
