import Foundation

// N = tokens, H = heads, E = head dim (rotated dims R = E * partial factor, HF "rotate half" layout).

/// Rotary position embedding parameters as in HF `rope_parameters` / `rope_scaling`.
public struct RoPEScaling: Sendable, Equatable {
    public enum Kind: String, Sendable { case `default`, linear, dynamic, llama3, yarn }
    public var kind: Kind = .default
    public var factor: Double = 1
    public var lowFreqFactor: Double = 1
    public var highFreqFactor: Double = 4
    public var originalMaxPositionEmbeddings: Int? = nil
    public var attentionFactor: Double? = nil
    public var betaFast: Double = 32
    public var betaSlow: Double = 1
    public var mscale: Double? = nil
    public var mscaleAllDim: Double? = nil
    public var truncate: Bool = true
    /// Per-frequency divisors of the default frequencies (GGUF's `rope_freqs.weight`, llama3 scaling as
    /// llama.cpp stores it); used with `kind == .default`.
    public var frequencyDivisors: [Double]? = nil
    public init() {}
}

/// Rotary position embeddings: frequency tables and the rotation, forward and backward.
public struct RoPE: Sendable {
    public let headDim: Int
    public let rotaryDim: Int
    public let theta: Double
    public let scaling: RoPEScaling
    public let maxPositionEmbeddings: Int

    public init(headDim: Int, theta: Double, scaling: RoPEScaling = RoPEScaling(), maxPositionEmbeddings: Int, partialRotaryFactor: Double = 1) {
        self.headDim = headDim
        self.rotaryDim = Int(Double(headDim) * partialRotaryFactor)
        self.theta = theta
        self.scaling = scaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    /// Inverse frequencies (R/2) and the cos/sin multiplier, as transformers computes them in fp32,
    /// for a batch whose largest position id is `maxPosition` (dynamic NTK depends on it).
    public func inverseFrequencies(maxPosition: Int) -> (inv: [Float], attentionFactor: Float) {
        let dim = rotaryDim, half = dim / 2
        func defaultInv(base: Float) -> [Float] {
            (0..<half).map { i in 1 / powf(base, Float(2 * i) / Float(dim)) }
        }
        switch scaling.kind {
        case .default:
            let inv = defaultInv(base: Float(theta))
            if let d = scaling.frequencyDivisors, d.count == inv.count { return (zip(inv, d).map { $0 / Float($1) }, 1) }
            return (inv, 1)
        case .linear:
            return (defaultInv(base: Float(theta)).map { $0 / Float(scaling.factor) }, 1)
        case .dynamic:
            let seqLen = Double(max(maxPosition + 1, maxPositionEmbeddings))
            let f = scaling.factor
            let base = theta * pow(f * seqLen / Double(maxPositionEmbeddings) - (f - 1), Double(dim) / Double(dim - 2))
            return (defaultInv(base: Float(base)), 1)
        case .llama3:
            let inv = defaultInv(base: Float(theta))
            let orig = Float(scaling.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
            let factor = Float(scaling.factor), lo = Float(scaling.lowFreqFactor), hi = Float(scaling.highFreqFactor)
            let lowWave = orig / lo, highWave = orig / hi
            let out: [Float] = inv.map { f in
                let wave = 2 * Float.pi / f
                let scaled = wave > lowWave ? f / factor : f
                let smooth = (orig / wave - lo) / (hi - lo)
                let smoothed = (1 - smooth) * scaled / factor + smooth * scaled
                let medium = !(wave < highWave) && !(wave > lowWave)
                return medium ? smoothed : scaled
            }
            return (out, 1)
        case .yarn:
            let base = theta, factor = scaling.factor
            let orig = Double(scaling.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
            func mscaleOf(_ s: Double, _ m: Double = 1) -> Double { s <= 1 ? 1 : 0.1 * m * log(s) + 1 }
            var attn = scaling.attentionFactor
            if attn == nil {
                if let m = scaling.mscale, let a = scaling.mscaleAllDim, m != 0, a != 0 {
                    attn = mscaleOf(factor, m) / mscaleOf(factor, a)
                } else {
                    attn = mscaleOf(factor)
                }
            }
            func correctionDim(_ rot: Double) -> Double {
                Double(dim) * log(orig / (rot * 2 * Double.pi)) / (2 * log(base))
            }
            var low = correctionDim(scaling.betaFast), high = correctionDim(scaling.betaSlow)
            if scaling.truncate { low = floor(low); high = ceil(high) }
            low = max(low, 0); high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            let out: [Float] = (0..<half).map { i in
                let pos = powf(Float(base), Float(2 * i) / Float(dim))
                let extrapolation = 1 / pos, interpolation = 1 / (Float(factor) * pos)
                let ramp = min(max((Float(i) - Float(low)) / Float(high - low), 0), 1)
                let extrapolationFactor = 1 - ramp
                return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
            return (out, Float(attn ?? 1))
        }
    }

    /// cos and sin tables (N, R/2) for the given position ids.
    public func tables(positions: [Int32]) -> (cos: [Float], sin: [Float]) {
        let maxPos = Int(positions.max() ?? 0)
        let (inv, af) = inverseFrequencies(maxPosition: maxPos)
        let half = inv.count
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (t, p) in positions.enumerated() {
            for i in 0..<half {
                let a = Float(p) * inv[i]
                c[t * half + i] = Foundation.cos(a) * af
                s[t * half + i] = Foundation.sin(a) * af
            }
        }
        return (c, s)
    }

    /// Rotates x (N, heads*E) in place: for each head, halves x1 = x[0..<R/2], x2 = x[R/2..<R]:
    /// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin. Backward is the same call with `inverse: true`.
    public static func apply(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                             tokens n: Int, heads: Int, headDim e: Int, rotaryDim r: Int, inverse: Bool = false) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .rope) }
        let half = r / 2
        let sign: Float = inverse ? -1 : 1
        Parallel.forRange(n, minChunk: 8) { range in
            for t in range {
                let c = cos + t * half, s = sin + t * half
                for h in 0..<heads {
                    let v = x + (t * heads + h) * e
                    for i in 0..<half {
                        let x1 = v[i], x2 = v[i + half]
                        let si = sign * s[i]
                        v[i] = x1 * c[i] - x2 * si
                        v[i + half] = x2 * c[i] + x1 * si
                    }
                }
            }
        }
    }
}
