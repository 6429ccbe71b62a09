import Testing
import Foundation
import CSlothKernels
@testable import SlothCore

// The C SIMD kernels against the scalar references, over lengths that exercise the vector body and every
// tail, for each copy this CPU can run (AVX-512, AVX2+FMA, baseline). One serialized suite: the level is global
// (and `forEachISA` holds `kernelSettingsLock`, so tests elsewhere that need it fixed do not see it change).

/// Runs body once per ISA copy the CPU supports.
/// Holds `kernelSettingsLock` throughout: the level is process-wide, and tests of other suites run meanwhile.
func forEachISA(_ body: (String) -> Void) {
    withKernelSettingsHeld {
        let best = sloth_kernels_set_level(-1)
        defer { _ = sloth_kernels_set_level(-1) }
        for level in stride(from: best, through: 0, by: -1) {
            _ = sloth_kernels_set_level(Int32(level))
            body(String(cString: sloth_kernels_isa()))
        }
    }
}

@Suite(.serialized) struct SIMDKernelTests {
@Test func simdExpIsWithinTwoUlp() {
    var worst = 0.0, at: Float = 0
    var x: Float = -87
    while x < 88 {
        let got = Double(sloth_exp(x)), want = Foundation.exp(Double(x))
        let rel = abs(got - want) / want
        if rel > worst { worst = rel; at = x }
        x += 0.00173
    }
    print("sloth_exp (\(String(cString: sloth_kernels_isa()))): max rel error \(worst) at \(at) over [-87, 88]")
    #expect(worst < 2.4e-7)
}

@Test(arguments: [1, 7, 16, 17, 33, 64, 130, 1000])
func simdSoftmaxRowMatchesReference(n: Int) {
    forEachISA { isa in
        var r = Rand(UInt64(n))
        for (first, last) in [(0, n - 1), (n / 3, n - 1), (0, n / 2), (n / 4, (3 * n) / 4)] where first <= last {
            let x = r.array(n, scale: 8)
            var y = x
            // One block from an empty state, then normalised: the forward's row.
        var m = -Float.infinity, l: Float = 0
        _ = sloth_softmax_block_row(&y, Int32(n), Int32(first), Int32(last), &m, &l)
        for j in 0..<n { y[j] /= l }
        let lse = m + Foundation.log(l)
            let ref = Reference.softmaxRow(x, first: first, last: last)
            #expect(maxRelDiff(y, ref.p) < 1e-6, "\(isa) n \(n) [\(first), \(last)]")
            #expect(abs(lse - ref.lse) <= 1e-6 * max(1, abs(ref.lse)))
            // Backward row: p = exp(s - lse), ds = p (dp - d).
            let dp = r.array(n), d: Float = 0.3
            var s = x, g = dp
            sloth_softmax_grad_row(&s, &g, Int32(n), Int32(first), Int32(last), ref.lse, d)
            let wantDS = (0..<n).map { j in j < first || j > last ? Float(0) : ref.p[j] * (dp[j] - d) }
            #expect(maxRelDiff(s, ref.p) < 1e-6)
            #expect(maxRelDiff(g, wantDS) < 1e-6)
        }
    }
}

@Test(arguments: [1, 15, 16, 17, 100, 1027])
func simdSwiGLUMatchesReference(n: Int) {
    forEachISA { isa in
        var r = Rand(UInt64(40 + n))
        let e = r.array(n, scale: 12), g = r.array(n, scale: 2), dh = r.array(n)
        var h = [Float](repeating: 0, count: n), de = h, dg = h
        sloth_swiglu_forward(&h, e, g, n)
        sloth_swiglu_backward(&de, &dg, dh, e, g, n)
        let ref = Reference.swiglu(gate: e, up: g, dOut: dh)
        print("swiglu \(isa) n \(n): h \(maxRelDiff(h, ref.h)) dGate \(maxRelDiff(de, ref.dGate)) dUp \(maxRelDiff(dg, ref.dUp))")
        #expect(maxRelDiff(h, ref.h) < 1e-6)
        #expect(maxRelDiff(de, ref.dGate) < 1e-6)
        #expect(maxRelDiff(dg, ref.dUp) < 1e-6)
    }
}

@Test(arguments: [1, 16, 31, 576])
func simdRMSNormMatchesReference(dim: Int) {
    forEachISA { isa in
        var r = Rand(UInt64(dim))
        let rows = 3
        let x = r.array(rows * dim), w = r.array(dim)
        var y = [Float](repeating: 0, count: x.count), rstd = [Float](repeating: 0, count: rows)
        RMSNorm.forward(out: &y, rstd: &rstd, input: x, weight: w, rows: rows, dim: dim, eps: 1e-6, offset: 1)
        let d = maxRelDiff(y, Reference.rmsnorm(x, w, rows: rows, dim: dim, eps: 1e-6, offset: 1))
        print("rmsnorm \(isa) dim \(dim): max rel diff \(d)")
        #expect(d < 1e-6)
    }
}

/// LoRA's low-rank kernels against Double loops: ranks below, at and above the 8-rank chunk, widths with vector
/// bodies and tails, row counts around the row blocks, leading dimensions wider than the data; threaded wrappers too.
@Test(arguments: [(rows: 1, rank: 1, k: 5), (rows: 7, rank: 8, k: 33), (rows: 70, rank: 12, k: 64), (rows: 130, rank: 16, k: 100),
                  (rows: 300, rank: 8, k: 40)])
func lowRankKernelsMatchReference(rows n: Int, rank r: Int, k: Int) {
    forEachISA { isa in
        var g = Rand(UInt64(n * 100 + r))
        let ld = k + 3, ldr = r + 2
        let x = g.array(n * ld), w = g.array(r * ld), c = g.array(n * ldr), base = g.array(n * ld)
        let alpha: Float = 0.7
        // dots: out (n, r) = alpha x w^T
        var out = [Float](repeating: 0, count: n * ldr)
        LowRank.dots(out: &out, ldo: ldr, x: x, ldx: ld, w: w, ldw: ld, rows: n, rank: r, k: k, alpha: alpha)
        var want = out
        for i in 0..<n {
            for j in 0..<r {
                var s = 0.0
                for t in 0..<k { s += Double(x[i * ld + t]) * Double(w[j * ld + t]) }
                want[i * ldr + j] = Float(Double(alpha) * s)
            }
        }
        #expect(maxRelDiff(out, want) < 1e-6, "dots \(isa) \(n)x\(r)x\(k)")
        // update: y (n, k) = base + alpha c w, assigned (no base), from a base, and accumulated
        for mode in 0..<3 {
            var y = mode == 2 ? base : [Float](repeating: 9, count: n * ld)
            let before = y
            y.withUnsafeMutableBufferPointer { yp in
                base.withUnsafeBufferPointer { bp in
                    let src: UnsafePointer<Float>? = mode == 0 ? nil : mode == 1 ? bp.baseAddress! : UnsafePointer(yp.baseAddress!)
                    LowRank.update(y: yp.baseAddress!, ldy: ld, base: src, ldb: ld, c: c, ldc: ldr, w: w, ldw: ld, rows: n, rank: r, width: k, alpha: alpha)
                }
            }
            var wantY = before
            for i in 0..<n {
                for j in 0..<k {
                    var s = 0.0
                    for t in 0..<r { s += Double(c[i * ldr + t]) * Double(w[t * ld + j]) }
                    let b0: Double = mode == 0 ? 0 : Double(base[i * ld + j])
                    wantY[i * ld + j] = Float(b0 + Double(alpha) * s)
                }
            }
            #expect(maxRelDiff(y, wantY) < 1e-6, "update \(isa) mode \(mode) \(n)x\(r)x\(k)")
        }
        // outer: gr (r, k) += alpha c^T x; the reference is start + scale c^T x in Double
        func outerReference(_ start: [Float], _ scale: Float) -> [Float] {
            var want = start
            for j in 0..<r {
                for i in 0..<k {
                    var s = 0.0
                    for t in 0..<n { s += Double(c[t * ldr + j]) * Double(x[t * ld + i]) }
                    want[j * ld + i] = Float(Double(start[j * ld + i]) + Double(scale) * s)
                }
            }
            return want
        }
        var gr = g.array(r * ld)
        let wantG = outerReference(gr, alpha)
        LowRank.outer(g: &gr, ldg: ld, c: c, ldc: ldr, x: x, ldx: ld, rows: n, rank: r, width: k, alpha: alpha)
        #expect(maxRelDiff(gr, wantG) < 1e-6, "outer \(isa) \(n)x\(r)x\(k)")
        // dotsOuter: out = alpha x w^T with gr += beta c^T x, one pass (row-split over workers at 300 rows)
        var out2 = [Float](repeating: 0, count: n * ldr), gr2 = gr
        let beta: Float = -1.3
        LowRank.dotsOuter(out: &out2, ldo: ldr, w: w, ldw: ld, alphaDots: alpha, g: &gr2, ldg: ld, c: c, ldc: ldr, alphaOuter: beta,
                          x: x, ldx: ld, rows: n, rank: r, width: k)
        #expect(maxRelDiff(out2, want) < 1e-6, "dotsOuter dots \(isa) \(n)x\(r)x\(k)")
        #expect(maxRelDiff(gr2, outerReference(gr, beta)) < 1e-6, "dotsOuter outer \(isa) \(n)x\(r)x\(k)")
    }
}

/// sloth_gemm (attention's product kernel) against a double-precision product, for each ISA copy: row blocks and row
/// tails, whole 64-column panels (copied into the per-thread panel buffer when there are 4+ row blocks), vector and
/// scalar column tails, K in several chunks with a remainder, A or A^T, padded strides, assign and accumulate.
@Test(arguments: [(5, 16, 3, false, false), (24, 64, 64, false, false), (37, 150, 150, false, true), (53, 64, 192, true, true),
                  (192, 512, 64, false, false), (512, 64, 192, true, true), (30, 70, 1, false, true), (25, 129, 65, true, false)])
func slothGemmMatchesReference(m: Int, n: Int, k: Int, transA: Bool, accumulate: Bool) {
    forEachISA { isa in
        var r = Rand(UInt64(m * 131 + n * 7 + k))
        let lda = (transA ? m : k) + 3, ldb = n + 5, ldc = n + 2
        let a = r.array((transA ? k : m) * lda), b = r.array(k * ldb), c0 = r.array(m * ldc)
        let alpha: Float = 0.75
        var want = c0
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for t in 0..<k { sum += Double(transA ? a[t * lda + i] : a[i * lda + t]) * Double(b[t * ldb + j]) }
                want[i * ldc + j] = Float((accumulate ? Double(c0[i * ldc + j]) : 0) + Double(alpha) * sum)
            }
        }
        var c = c0
        sloth_gemm(&c, Int32(ldc), a, transA ? 1 : lda, transA ? lda : 1, b, Int32(ldb), Int32(m), Int32(n), Int32(k), alpha, accumulate ? 1 : 0)
        let d = maxRelDiff(c, want)
        print("sloth_gemm \(isa) \(m)x\(n)x\(k) transA \(transA) accumulate \(accumulate): max rel diff \(d)")
        #expect(d < 1e-5, "sloth_gemm \(isa) \(m)x\(n)x\(k) transA \(transA) accumulate \(accumulate): max rel diff \(d)")
    }
}
}
