// N = rows (tokens), D = width. Elementwise passes, threaded over rows.

/// Elementwise helpers used between the matrix products.
public enum Elementwise {
    /// y += x over n elements.
    @inlinable
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .elementwise) }
        Parallel.forRange(n, minChunk: 1 << 15) { r in
            for i in r { y[i] += x[i] }
        }
    }

    /// out = a + b over n elements.
    @inlinable
    public static func sum(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .elementwise) }
        Parallel.forRange(n, minChunk: 1 << 15) { r in
            for i in r { out[i] = a[i] + b[i] }
        }
    }

    /// y *= s over n elements.
    @inlinable
    public static func scale(_ y: UnsafeMutablePointer<Float>, by s: Float, count n: Int) {
        for i in 0..<n { y[i] *= s }
    }

    /// Adds a bias (width) to each of `rows` rows of out (rows, width).
    @inlinable
    public static func addBias(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, width: Int) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .elementwise) }
        Parallel.forRange(rows, minChunk: 64) { r in
            for i in r {
                let o = out + i * width
                for j in 0..<width { o[j] += bias[j] }
            }
        }
    }

    /// Sum of squares over n elements, in Double.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        var s: Double = 0
        var i = 0
        while i < n {
            let hi = min(n, i + 4096)
            var part: Float = 0
            for j in i..<hi { part += x[j] * x[j] }
            s += Double(part)
            i = hi
        }
        return s
    }
}
