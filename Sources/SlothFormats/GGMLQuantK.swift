import Foundation

// K-quants: super-blocks of 256 values.
// Q4_K (144 bytes): d f16, dmin f16, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128] (4-bit).
// Q5_K (176 bytes): d, dmin, scales[12], qh[32] (5th bits), qs[128].
// Q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (i8), d f16.
// The quantizers follow ggml's `quantize_row_q{4,5,6}_K_ref` step by step (same float operation
// order), which is what llama.cpp's quantizer runs when no importance matrix is given.

/// K-quant block quantizers and dequantizers (one super-block per call).
enum KQuants {
    /// ggml's `nearest_int`: round half to even through the 1.5 * 2^23 trick (|x| < 2^22).
    @inline(__always) static func nearestInt(_ x: Float) -> Int {
        let v = x + 12582912
        return Int(Int32(bitPattern: v.bitPattern) & 0x007F_FFFF) - 0x0040_0000
    }

    /// Packs 8 six-bit scales and mins into 12 bytes (ggml's layout), and unpacks them.
    static func packScalesMins(_ ls: [UInt8], _ lm: [UInt8], into q: UnsafeMutablePointer<UInt8>) {
        for j in 0..<12 { q[j] = 0 }
        for j in 0..<8 {
            if j < 4 {
                q[j] = ls[j]; q[j + 4] = lm[j]
            } else {
                q[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
                q[j - 4] |= (ls[j] >> 4) << 6
                q[j] |= (lm[j] >> 4) << 6
            }
        }
    }

    @inline(__always) static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    /// ggml's `make_qkx2_quants`: an asymmetric scale and min for `n` values with a grid search; returns (scale, -min).
    static func makeQKX2(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>,
                         _ laux: UnsafeMutablePointer<UInt8>, rmin: Float, rdelta: Float, nstep: Int) -> (Float, Float) {
        var mn = x[0], mx = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < mn { mn = x[i] }
            if x[i] > mx { mx = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if mn > 0 { mn = 0 }
        if mx == mn {
            for i in 0..<n { L[i] = 0 }
            return (0, -mn)
        }
        var iscale = Float(nmax) / (mx - mn)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = nearestInt(iscale * (x[i] - mn))
            L[i] = UInt8(max(0, min(nmax, l)))
            var diff = scale * Float(L[i]) + mn - x[i]
            diff = diff * diff
            bestError += weights[i] * diff
        }
        if nstep < 1 { return (scale, -mn) }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (mx - mn)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
                laux[i] = UInt8(l)
                let w = weights[i], lf = Float(l)
                sumL += w * lf
                sumL2 += w * lf * lf
                sumXL += w * lf * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var curError: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(laux[i]) + thisMin - x[i]
                    diff = diff * diff
                    curError += weights[i] * diff
                }
                if curError < bestError {
                    for i in 0..<n { L[i] = laux[i] }
                    bestError = curError
                    scale = thisScale
                    mn = thisMin
                }
            }
        }
        return (scale, -mn)
    }

    /// ggml's `make_qx_quants` with rmse_type 1 and no importance weights: a symmetric scale for `n` values.
    static func makeQX(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        var mx: Float = 0, amax: Float = 0
        for i in 0..<n where abs(x[i]) > amax { amax = abs(x[i]); mx = x[i] }
        if amax < 1e-15 {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        var iscale = -Float(nmax) / mx
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
            L[i] = Int8(l + nmax)
            let w = x[i] * x[i], lf = Float(l)
            sumlx += w * x[i] * lf
            suml2 += w * lf * lf
        }
        var scale = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / mx
            sumlx = 0; suml2 = 0
            for i in 0..<n {
                let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
                let w = x[i] * x[i], lf = Float(l)
                sumlx += w * x[i] * lf
                suml2 += w * lf * lf
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n { L[i] = Int8(nmax + max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))) }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    /// Shared first half of Q4_K / Q5_K: per 32-value sub-block scales and mins, packed, then the levels.
    private static func quantizeScaledMin(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, nmax: Int, rmin: Float, nstep: Int,
                                          _ L: UnsafeMutablePointer<UInt8>) {
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        var weights = [Float](repeating: 0, count: 32)
        var laux = [UInt8](repeating: 0, count: 32)
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
            let avX = (sumX2 / 32).squareRoot()
            for l in 0..<32 { weights[l] = avX + abs(x[32 * j + l]) }
            let (s, m) = weights.withUnsafeBufferPointer { w in
                laux.withUnsafeMutableBufferPointer { la in
                    makeQKX2(32, nmax, x + 32 * j, w.baseAddress!, L + 32 * j, la.baseAddress!, rmin: rmin, rdelta: 0.1, nstep: nstep)
                }
            }
            scales[j] = s; mins[j] = m
            if s > maxScale { maxScale = s }
            if m > maxMin { maxMin = m }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        var ls = [UInt8](repeating: 0, count: 8), lm = [UInt8](repeating: 0, count: 8)
        for j in 0..<8 {
            ls[j] = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
            lm[j] = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
        }
        GGMLQuant.storeHalf(maxScale / 63, out, 0)
        GGMLQuant.storeHalf(maxMin / 63, out, 2)
        packScalesMins(ls, lm, into: (out + 4).assumingMemoryBound(to: UInt8.self))
        let d0 = GGMLQuant.half(out, 0), m0 = GGMLQuant.half(out, 2)
        for j in 0..<8 {
            let (sc, m) = scaleMin(j, out + 4)
            let d = d0 * Float(sc)
            if d == 0 { continue }
            let dm = m0 * Float(m)
            for i in 0..<32 { L[32 * j + i] = UInt8(max(0, min(nmax, nearestInt((x[32 * j + i] + dm) / d)))) }
        }
    }

    static func quantizeQ4_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var L = [UInt8](repeating: 0, count: 256)
        L.withUnsafeMutableBufferPointer { quantizeScaledMin(x, out, nmax: 15, rmin: -1, nstep: 20, $0.baseAddress!) }
        let q = (out + 16).assumingMemoryBound(to: UInt8.self)
        for (c, j) in stride(from: 0, to: 256, by: 64).enumerated() {
            for l in 0..<32 { q[32 * c + l] = L[j + l] | (L[j + l + 32] << 4) }
        }
    }

    static func quantizeQ5_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var L = [UInt8](repeating: 0, count: 256)
        L.withUnsafeMutableBufferPointer { quantizeScaledMin(x, out, nmax: 31, rmin: -0.5, nstep: 15, $0.baseAddress!) }
        let qh = (out + 16).assumingMemoryBound(to: UInt8.self)
        let ql = (out + 48).assumingMemoryBound(to: UInt8.self)
        for j in 0..<32 { qh[j] = 0 }
        var m1: UInt8 = 1, m2: UInt8 = 2
        for (c, n) in stride(from: 0, to: 256, by: 64).enumerated() {
            for j in 0..<32 {
                var l1 = L[n + j], l2 = L[n + j + 32]
                if l1 > 15 { l1 -= 16; qh[j] |= m1 }
                if l2 > 15 { l2 -= 16; qh[j] |= m2 }
                ql[32 * c + j] = l1 | (l2 << 4)
            }
            m1 <<= 2; m2 <<= 2
        }
    }

    static func quantizeQ6_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var L = [Int8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        var maxScale: Float = 0, maxAbsScale: Float = 0
        L.withUnsafeMutableBufferPointer { lp in
            for ib in 0..<16 {
                let s = makeQX(16, 32, x + 16 * ib, lp.baseAddress! + 16 * ib)
                scales[ib] = s
                if abs(s) > maxAbsScale { maxAbsScale = abs(s); maxScale = s }
            }
        }
        let bytes = out.assumingMemoryBound(to: UInt8.self)
        if maxAbsScale < 1e-15 {
            for i in 0..<210 { bytes[i] = 0 }
            return
        }
        let iscale = -128 / maxScale
        GGMLQuant.storeHalf(1 / iscale, out, 208)
        let sc = (out + 192).assumingMemoryBound(to: Int8.self)
        for ib in 0..<16 { sc[ib] = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib]))) }
        let d0 = GGMLQuant.half(out, 208)
        for j in 0..<16 {
            let d = d0 * Float(sc[j])
            if d == 0 { continue }
            for i in 0..<16 { L[16 * j + i] = Int8(max(-32, min(31, nearestInt(x[16 * j + i] / d))) + 32) }
        }
        let ql = bytes, qh = bytes + 128
        for (c, j) in stride(from: 0, to: 256, by: 128).enumerated() {
            for l in 0..<32 {
                let q1 = UInt8(L[j + l]) & 0xF, q2 = UInt8(L[j + l + 32]) & 0xF
                let q3 = UInt8(L[j + l + 64]) & 0xF, q4 = UInt8(L[j + l + 96]) & 0xF
                ql[64 * c + l] = q1 | (q3 << 4)
                ql[64 * c + l + 32] = q2 | (q4 << 4)
                qh[32 * c + l] = (UInt8(L[j + l]) >> 4) | ((UInt8(L[j + l + 32]) >> 4) << 2)
                    | ((UInt8(L[j + l + 64]) >> 4) << 4) | ((UInt8(L[j + l + 96]) >> 4) << 6)
            }
        }
    }

    static func dequantizeQ4_K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLQuant.half(p, 0), mn = GGMLQuant.half(p, 2)
        let q = p + 16
        for c in 0..<4 {
            let (s1, m1) = scaleMin(2 * c, p + 4), (s2, m2) = scaleMin(2 * c + 1, p + 4)
            let d1 = d * Float(s1), mm1 = mn * Float(m1), d2 = d * Float(s2), mm2 = mn * Float(m2)
            for l in 0..<32 {
                let b = q.load(fromByteOffset: 32 * c + l, as: UInt8.self)
                y[64 * c + l] = d1 * Float(b & 0xF) - mm1
                y[64 * c + 32 + l] = d2 * Float(b >> 4) - mm2
            }
        }
    }

    static func dequantizeQ5_K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLQuant.half(p, 0), mn = GGMLQuant.half(p, 2)
        let qh = p + 16, ql = p + 48
        var u1: UInt8 = 1, u2: UInt8 = 2
        for c in 0..<4 {
            let (s1, m1) = scaleMin(2 * c, p + 4), (s2, m2) = scaleMin(2 * c + 1, p + 4)
            let d1 = d * Float(s1), mm1 = mn * Float(m1), d2 = d * Float(s2), mm2 = mn * Float(m2)
            for l in 0..<32 {
                let b = ql.load(fromByteOffset: 32 * c + l, as: UInt8.self), h = qh.load(fromByteOffset: l, as: UInt8.self)
                y[64 * c + l] = d1 * Float(Int(b & 0xF) + (h & u1 != 0 ? 16 : 0)) - mm1
                y[64 * c + 32 + l] = d2 * Float(Int(b >> 4) + (h & u2 != 0 ? 16 : 0)) - mm2
            }
            u1 <<= 2; u2 <<= 2
        }
    }

    static func dequantizeQ6_K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLQuant.half(p, 208)
        for c in 0..<2 {
            let ql = p + 64 * c, qh = p + 128 + 32 * c, sc = p + 192 + 8 * c
            for l in 0..<32 {
                let g = l / 16
                let a = ql.load(fromByteOffset: l, as: UInt8.self), b = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                let q1 = Int((a & 0xF) | ((h & 3) << 4)) - 32
                let q2 = Int((b & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                func s(_ i: Int) -> Float { Float(Int8(bitPattern: sc.load(fromByteOffset: i, as: UInt8.self))) }
                y[128 * c + l] = d * s(g) * Float(q1)
                y[128 * c + l + 32] = d * s(g + 2) * Float(q2)
                y[128 * c + l + 64] = d * s(g + 4) * Float(q3)
                y[128 * c + l + 96] = d * s(g + 6) * Float(q4)
            }
        }
    }
}
