import Foundation

/// Plain scalar versions of the kernels: the oracles for tests and the readable definition of each.
public enum Reference {
    /// C (m x n) = A (m x k) B^T (n x k).
    public static func matmulABt(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Double = 0
            for p in 0..<k { s += Double(a[i * k + p]) * Double(b[j * k + p]) }
            c[i * n + j] = Float(s)
        } }
        return c
    }

    /// Full-matrix causal attention (materialises T x T); same layouts as `Attention.forward`.
    public static func attention(q: [Float], k: [Float], v: [Float], shape s: Attention.Shape) -> [Float] {
        let T = s.tokens, H = s.heads, K = s.kvHeads, E = s.headDim, group = H / K
        var out = [Float](repeating: 0, count: s.batch * T * H * E)
        for b in 0..<s.batch { for h in 0..<H {
            let kvh = h / group
            for i in 0..<T {
                var scores = [Double](repeating: -Double.infinity, count: T)
                for j in 0...i {
                    if let w = s.window, i - j >= w { continue }
                    if let seg = s.segments, seg[b * T + i] != seg[b * T + j] { continue }
                    var d: Double = 0
                    for e in 0..<E { d += Double(q[(b * T + i) * H * E + h * E + e]) * Double(k[(b * T + j) * K * E + kvh * E + e]) }
                    scores[j] = d * Double(s.scale)
                }
                let m = scores.max()!
                let ex = scores.map { $0 == -Double.infinity ? 0 : Foundation.exp($0 - m) }
                let sum = ex.reduce(0, +)
                for e in 0..<E {
                    var acc: Double = 0
                    for j in 0..<T where ex[j] != 0 { acc += ex[j] / sum * Double(v[(b * T + j) * K * E + kvh * E + e]) }
                    out[(b * T + i) * H * E + h * E + e] = Float(acc)
                }
            }
        } }
        return out
    }

    /// SwiGLU h = silu(e) * g and its backward (dE, dG) from dH, in Double through Foundation's exp.
    public static func swiglu(gate e: [Float], up g: [Float], dOut dh: [Float]) -> (h: [Float], dGate: [Float], dUp: [Float]) {
        var h = e, de = e, dg = e
        for i in 0..<e.count {
            let x = Double(e[i]), s = 1 / (1 + Foundation.exp(-x))
            h[i] = Float(x * s * Double(g[i]))
            dg[i] = Float(Double(dh[i]) * x * s)
            de[i] = Float(Double(dh[i]) * Double(g[i]) * s * (1 + x * (1 - s)))
        }
        return (h, de, dg)
    }

    /// Softmax of x[first...last] (0 elsewhere) and its logsumexp, in Double.
    public static func softmaxRow(_ x: [Float], first: Int, last: Int) -> (p: [Float], lse: Float) {
        let m = x[first...last].map(Double.init).max()!
        let sum = x[first...last].reduce(0.0) { $0 + Foundation.exp(Double($1) - m) }
        var p = [Float](repeating: 0, count: x.count)
        for j in first...last { p[j] = Float(Foundation.exp(Double(x[j]) - m) / sum) }
        return (p, Float(m + Foundation.log(sum)))
    }

    /// RMSNorm rows: x * r * (w + offset).
    public static func rmsnorm(_ x: [Float], _ w: [Float], rows: Int, dim: Int, eps: Float, offset: Float) -> [Float] {
        var y = x
        for i in 0..<rows {
            var ss: Double = 0
            for j in 0..<dim { ss += Double(x[i * dim + j]) * Double(x[i * dim + j]) }
            let r = 1 / (ss / Double(dim) + Double(eps)).squareRoot()
            for j in 0..<dim { y[i * dim + j] = Float(Double(x[i * dim + j]) * r * Double(w[j] + offset)) }
        }
        return y
    }

    /// Mean cross-entropy of logits (N, V) against targets (-100 ignored).
    public static func crossEntropy(logits: [Float], targets: [Int32], vocab v: Int) -> Double {
        var total: Double = 0, count = 0
        for (t, y) in targets.enumerated() where y != -100 {
            let row = logits[(t * v)..<(t * v + v)].map(Double.init)
            let m = row.max()!
            let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            total += lse - row[Int(y)]; count += 1
        }
        return count == 0 ? 0 : total / Double(count)
    }
}
