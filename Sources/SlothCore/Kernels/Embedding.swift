// N = tokens, D = hidden, V = vocab

/// Token embedding lookup.
public enum Embedding {
    /// out (N, D) = table[ids] * scale. Ids must already be validated against V.
    public static func forward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, table: UnsafePointer<Float>,
                               tokens n: Int, dim d: Int, scale: Float = 1) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .embedding) }
        Parallel.forRange(n, minChunk: 16) { r in
            for t in r {
                let src = table + Int(ids[t]) * d, dst = out + t * d
                if scale == 1 { dst.update(from: src, count: d) } else { for j in 0..<d { dst[j] = src[j] * scale } }
            }
        }
    }

    /// dTable[ids] += dOut * scale (serial over tokens: rows may repeat).
    public static func backward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
                                tokens n: Int, dim d: Int, scale: Float = 1) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .embedding) }
        for t in 0..<n {
            let dst = dTable + Int(ids[t]) * d, src = dOut + t * d
            for j in 0..<d { dst[j] += src[j] * scale }
        }
    }
}
