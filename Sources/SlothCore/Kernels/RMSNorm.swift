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
                let x = input + i * dim, y = out + i * dim
                var ss: Float = 0
                for j in 0..<dim { ss += x[j] * x[j] }
                let r = 1 / (ss / Float(dim) + eps).squareRoot()
                rstd[i] = r
                for j in 0..<dim { y[j] = x[j] * r * (weight[j] + offset) }
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
                let x = input + i * dim, dy = dOut + i * dim, dx = dInput + i * dim
                let r = rstd[i]
                var dot: Float = 0
                for j in 0..<dim { dot += dy[j] * (weight[j] + offset) * x[j] * r }
                let m = dot / Float(dim)
                for j in 0..<dim {
                    let g = dy[j] * (weight[j] + offset)
                    let v = r * (g - x[j] * r * m)
                    if accumulate { dx[j] += v } else { dx[j] = v }
                }
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
