import CSlothKernels

// N = rows, D = width. y = x * r * (w + offset), r = 1/sqrt(mean(x^2) + eps); offset 1 for Gemma.

/// Root-mean-square normalisation, forward and backward.
public enum RMSNorm {
    /// out (N, D), rstd (N) saved for backward.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float, offset: Float = 0) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .norm) }
        Parallel.forRange(rows, minChunk: 16) { range in
            for i in range {
                rstd[i] = sloth_rmsnorm_row(out + i * dim, input + i * dim, weight, Int32(dim), eps, offset)
            }
        }
    }

    /// dInput (N, D) is assigned (or accumulated when `accumulate`); dWeight (D) accumulated when given.
    public static func backward(dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
                                dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, rows: Int, dim: Int, offset: Float = 0, accumulate: Bool = false) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .norm) }
        Parallel.forRange(rows, minChunk: 16) { range in
            for i in range {
                sloth_rmsnorm_backward_row(dInput + i * dim, dOut + i * dim, input + i * dim, weight, Int32(dim), rstd[i], offset, accumulate ? 1 : 0)
            }
        }
        if let dWeight {
            for i in 0..<rows {
                let x = input + i * dim, dy = dOut + i * dim, r = rstd[i]
                for j in 0..<dim { dWeight[j] += dy[j] * x[j] * r }
            }
        }
    }
}
