import Foundation
import CSlothKernels

// N = tokens, D = hidden, V = vocab, C = rows per chunk.

/// Cross-entropy over the LM head, chunked over tokens: the N x V logits never exist. Rows whose
/// target is -100 are dropped before the projection. Loss = -log softmax(h W^T)[target].
public enum CrossEntropy {
    /// Rows per chunk when set (tests); otherwise `rowsPerChunk(vocab:)`.
    public static var chunkRows: Int? = nil

    /// Rows per chunk: as many as keep the C x V logits within 192 MiB (multiples of 64, 64 to 1024), a bounded
    /// workspace the planner counts. Each chunk's two products read all of W (V x D) again, and BLAS packs it again:
    /// at the bench model's vocabulary (49152) 1024-row chunks ran the lm_head products of 2048 tokens 1.18x faster
    /// than 256-row chunks (median of 12 alternated pairs; 512 rows 1.10x; bench/ce_chunks.c).
    public static func rowsPerChunk(vocab v: Int) -> Int {
        if let c = chunkRows { return c }
        return min(1024, max(64, (192 << 20) / (4 * max(v, 1)) / 64 * 64))
    }

    /// Floats of workspace (`Workspace.shared`) `forwardBackward` takes for `rows` rows with a target: a chunk's x and
    /// dx (each rounded up to 16 floats) and its logits.
    public static func workspaceFloats(rows: Int, dim d: Int, vocab v: Int) -> Int {
        let l = layout(rows: rows, dim: d, vocab: v)
        return 2 * l.rowFloats + l.chunk * v
    }

    /// Rows per chunk for `rows` rows with a target, and the floats of a chunk's x (and of its dx) rounded up to 16.
    static func layout(rows: Int, dim d: Int, vocab v: Int) -> (chunk: Int, rowFloats: Int) {
        let c = min(rowsPerChunk(vocab: v), max(rows, 1))
        return (c, (c * d + 15) / 16 * 16)
    }

    /// Returns the summed loss over valid rows (and each row's loss into `perToken` when given). Writes dHidden (N, D) = dLoss/dh * gradScale (rows with
    /// no target get 0), and accumulates dWeight (V, D) when given.
    /// targets: (N) next-token ids already shifted, -100 to ignore.
    public static func forwardBackward(hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, targets: [Int32],
                                       tokens n: Int, dim d: Int, vocab v: Int, gradScale: Float,
                                       dHidden: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>? = nil,
                                       softcap: Float? = nil, perToken: UnsafeMutablePointer<Double>? = nil) -> Double {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .crossEntropy, flops: Double(2 * n * d * v) * Double(1 + (dHidden == nil ? 0 : 1) + (dWeight == nil ? 0 : 1))) }
        let valid = (0..<n).filter { targets[$0] != -100 }
        if let dHidden { dHidden.update(repeating: 0, count: n * d) }
        // x (C x D), dx (C x D), then the logits z (C x V), from the kernel workspace (the plan's "workspace" part).
        let (C, rowFloats) = layout(rows: valid.count, dim: d, vocab: v)
        return Workspace.shared.withFloats(workspaceFloats(rows: valid.count, dim: d, vocab: v)) { ws in
            let x = ws, dx = ws + rowFloats, z = dx + rowFloats
            var total: Double = 0
            var start = 0
            while start < valid.count {
                let rows = Array(valid[start..<min(valid.count, start + C)])
                let c = rows.count
                for (r, t) in rows.enumerated() { (x + r * d).update(from: hidden + t * d, count: d) }
                BLAS.sgemm(transA: false, transB: true, m: c, n: v, k: d, a: x, lda: d, b: weight, ldb: d, c: z, ldc: v)
                var losses = [Double](repeating: 0, count: c)
                losses.withUnsafeMutableBufferPointer { lossBuf in
                    Parallel.forRange(c) { range in
                        for r in range {
                            let row = z + r * v
                            let target = Int(targets[rows[r]])
                            guard let cap = softcap else {
                                let logit = row[target]
                                let lse = sloth_cross_entropy_row(row, Int32(v), Int32(target), gradScale, dHidden != nil || dWeight != nil ? 1 : 0)
                                lossBuf[r] = Double(lse - logit)
                                continue
                            }
                            for j in 0..<v { row[j] = cap * Foundation.tanh(row[j] / cap) }
                            var m = -Float.infinity
                            for j in 0..<v { m = max(m, row[j]) }
                            var sum: Float = 0
                            for j in 0..<v { sum += Foundation.exp(row[j] - m) }
                            let lse = m + Foundation.log(sum)
                            lossBuf[r] = Double(lse - row[target])
                            // dz = (softmax - onehot) * scale (through the softcap when present)
                            for j in 0..<v {
                                var g = Foundation.exp(row[j] - lse) * gradScale
                                if j == target { g -= gradScale }
                                let t = row[j] / cap
                                g *= (1 - t * t)
                                row[j] = g
                            }
                        }
                    }
                }
                total += losses.reduce(0, +)
                if let perToken { for (r, t) in rows.enumerated() { perToken[t] = losses[r] } }
                if let dHidden {
                    BLAS.sgemm(transA: false, transB: false, m: c, n: d, k: v, a: z, lda: v, b: weight, ldb: d, c: dx, ldc: d)
                    for (r, t) in rows.enumerated() { (dHidden + t * d).update(from: dx + r * d, count: d) }
                }
                if let dWeight {
                    BLAS.sgemm(transA: true, transB: false, m: v, n: d, k: c, a: z, lda: v, b: x, ldb: d, beta: 1, c: dWeight, ldc: d)
                }
                start += c
            }
            return total
        }
    }

    /// Logits (rows, V) = hidden rows W^T, for inference and tests.
    public static func logits(out: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              tokens n: Int, dim d: Int, vocab v: Int) {
        BLAS.sgemm(transA: false, transB: true, m: n, n: v, k: d, a: hidden, lda: d, b: weight, ldb: d, c: out, ldc: v)
    }
}
