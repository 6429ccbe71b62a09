import Foundation
#if canImport(SlothCore)
import SlothCore
#endif

// n = values, B = blocks of 64 (the 4-bit block), NB = nested blocks of 256 absmax values.

/// bitsandbytes' 4-bit data types.
public enum FourBitType: String, Sendable, CaseIterable {
    case nf4, fp4

    /// The 16 values, indexed by the 4-bit code (`bitsandbytes.functional.get_4bit_type`).
    public var codebook: [Float] {
        switch self {
        case .nf4: return FourBitType.nf4Codebook
        case .fp4: return FourBitType.fp4Codebook
        }
    }

    static let nf4Codebook: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
        -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
        0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]
    /// 1 sign, 2 exponent, 1 mantissa bit (bias 2), in code order, divided by the largest magnitude (12) in float32.
    /// (bitsandbytes writes the second zero as the integer -0, so it is +0.)
    static let fp4Codebook: [Float] = [0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3].map { Float($0) / Float(12) }

    /// Codes in increasing value order (a stable sort: torch.argsort on 16 values) and the midpoints between
    /// neighbours in that order, computed in float32 as bitsandbytes does.
    var sortedCodes: (order: [UInt8], midpoints: [Float]) {
        let c = codebook
        let order = c.indices.sorted { c[$0] < c[$1] || (c[$0] == c[$1] && $0 < $1) }
        let mids = (0..<15).map { (c[order[$0]] + c[order[$0 + 1]]) / 2 }
        return (order.map(UInt8.init), mids)
    }
}

/// A float32 sum in PyTorch's CPU order (`SumKernel.cpp`'s cascade sum, 8-wide vectors, one thread), so that
/// `mean` here equals `torch.Tensor.mean` bit for bit: bitsandbytes' double-quantization offset is that mean.
/// (Above 32768 values torch splits the sum across threads and its own result depends on the thread count.)
public enum TorchSum {
    static let width = 8

    public static func sum(_ a: UnsafeBufferPointer<Float>) -> Float {
        let n = a.count, w = width
        let vecCount = n / w
        // row_sum over vectors with ilp 4: multi_row_sum over (vecCount / 4) rows of 4 vectors.
        let rows = vecCount / 4
        var partial = multiRowSum(a, rows: rows)
        for v in (rows * 4)..<vecCount { for l in 0..<w { partial[0][l] += a[v * w + l] } }
        for k in 1..<4 { for l in 0..<w { partial[0][l] += partial[k][l] } }
        var total: Float = 0
        for k in (vecCount * w)..<n { total += a[k] }
        for l in 0..<w { total += partial[0][l] }
        return 0 + total
    }

    public static func mean(_ a: UnsafeBufferPointer<Float>) -> Float { sum(a) / Float(a.count) }

    /// The 4-row, 4-level cascade of `multi_row_sum`: row i holds vectors 4i..4i+3.
    private static func multiRowSum(_ a: UnsafeBufferPointer<Float>, rows size: Int) -> [[Float]] {
        let w = width, levels = 4
        let levelPower = max(4, ceilLog2(size) / levels)
        let levelStep = 1 << levelPower, levelMask = levelStep - 1
        var acc = [[[Float]]](repeating: [[Float]](repeating: [Float](repeating: 0, count: w), count: 4), count: levels)
        func load(_ i: Int, _ k: Int, _ l: Int) -> Float { a[(i * 4 + k) * w + l] }
        var i = 0
        while i + levelStep <= size {
            for _ in 0..<levelStep {
                for k in 0..<4 { for l in 0..<w { acc[0][k][l] += load(i, k, l) } }
                i += 1
            }
            for j in 1..<levels {
                for k in 0..<4 { for l in 0..<w { acc[j][k][l] += acc[j - 1][k][l]; acc[j - 1][k][l] = 0 } }
                if i & (levelMask << (j * levelPower)) != 0 { break }
            }
        }
        while i < size {
            for k in 0..<4 { for l in 0..<w { acc[0][k][l] += load(i, k, l) } }
            i += 1
        }
        for j in 1..<levels { for k in 0..<4 { for l in 0..<w { acc[0][k][l] += acc[j][k][l] } } }
        return acc[0]
    }

    private static func ceilLog2(_ x: Int) -> Int { x <= 2 ? 1 : Int.bitWidth - (x - 1).leadingZeroBitCount }
}

/// bitsandbytes' blockwise 8-bit quantization with a 256-entry map (its CPU kernel `quantize_cpu_impl`):
/// per block absmax, then each value / absmax looked up in a 65536-entry table of nearest codes.
public struct Blockwise8 {
    public let map: [Float]
    private let lut: [UInt8]

    public init(map: [Float]) {
        precondition(map.count == 256) // programmer error: maps are bitsandbytes' constants
        self.map = map
        var mids = [Float](repeating: 0, count: 255)
        for i in 0..<255 { mids[i] = 0.5 * (map[i] + map[i + 1]) }
        var lut = [UInt8](repeating: 0, count: 65536)
        var code = 0
        for i in 0..<65536 {
            let v: Float = -1 + (2 * Float(i)) / Float(65535)
            while code < 255 && mids[code] < v { code += 1 }
            lut[i] = UInt8(code)
        }
        self.lut = lut
    }

    public static let signed = Blockwise8(map: DynamicMap.signed)
    public static let unsigned = Blockwise8(map: DynamicMap.unsigned)

    /// Quantizes `x` in blocks of `blocksize`: codes (one per value) and one absmax per block.
    public func quantize(_ x: UnsafeBufferPointer<Float>, blocksize: Int, codes: UnsafeMutablePointer<UInt8>, absmax: UnsafeMutablePointer<Float>) {
        let n = x.count, blocks = (n + blocksize - 1) / blocksize
        lut.withUnsafeBufferPointer { lut in
            for b in 0..<blocks {
                let lo = b * blocksize, hi = min(lo + blocksize, n)
                var m: Float = 0
                for i in lo..<hi { m = max(m, abs(x[i])) }
                absmax[b] = m
                if m == 0 { for i in lo..<hi { codes[i] = 0 }; continue }
                let inv = 1 / m
                for i in lo..<hi {
                    let v = min(max(x[i] * inv, -1), 1)
                    // (v + 1) * 0.5 * 65535 + 0.5, truncated to the table index; the kernel is compiled for FMA with
                    // GCC's default contraction, so the last multiply-add is fused. (No value in the goldens, nor
                    // any near a code boundary found by search, tells the two apart.)
                    let t = (v + 1) * 0.5
                    codes[i] = lut[Int(UInt16(fmaf(t, 65535, 0.5)))]
                }
            }
        }
    }

    public func quantize(_ x: [Float], blocksize: Int) -> (codes: [UInt8], absmax: [Float]) {
        var codes = [UInt8](repeating: 0, count: x.count)
        var absmax = [Float](repeating: 0, count: (x.count + blocksize - 1) / blocksize)
        x.withUnsafeBufferPointer { xp in
            codes.withUnsafeMutableBufferPointer { c in absmax.withUnsafeMutableBufferPointer { a in
                quantize(xp, blocksize: blocksize, codes: c.baseAddress!, absmax: a.baseAddress!)
            } }
        }
        return (codes, absmax)
    }

    /// map[code] * absmax of its block.
    public func dequantize(_ codes: UnsafeBufferPointer<UInt8>, absmax: UnsafeBufferPointer<Float>, blocksize: Int, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<codes.count { out[i] = map[Int(codes[i])] * absmax[i / blocksize] }
    }
}

/// How a 4-bit tensor's per-block absmax is stored.
public enum FourBitAbsmax: Sendable, Equatable {
    /// float32, one per block.
    case plain([Float])
    /// Double quantization: (absmax - offset) blockwise 8-bit quantized with `nestedMap` in blocks of `nestedBlocksize`.
    case nested(codes: [UInt8], nestedAbsmax: [Float], nestedMap: [Float], offset: Float, nestedBlocksize: Int)
}

/// A tensor quantized to 4 bits exactly as `bitsandbytes.functional.quantize_4bit` does (its CPU path):
/// blocks of `blocksize` values over the row-major flattening, two codes per byte, the even element in the high nibble.
public struct FourBitTensor: Sendable, Equatable {
    public let type: FourBitType
    public let shape: [Int]
    public let blocksize: Int
    public let packed: [UInt8]
    public let absmax: FourBitAbsmax
    /// The dtype the original weights had ("float32", "bfloat16", "float16"): bitsandbytes' quant_state keeps it.
    public let dtype: String

    public var count: Int { shape.reduce(1, *) }
    public var blocks: Int { (count + blocksize - 1) / blocksize }

    public init(type: FourBitType, shape: [Int], blocksize: Int, packed: [UInt8], absmax: FourBitAbsmax, dtype: String) {
        self.type = type; self.shape = shape; self.blocksize = blocksize; self.packed = packed; self.absmax = absmax; self.dtype = dtype
    }

    /// Bytes held (codes + absmax storage).
    public var bytes: Int {
        switch absmax {
        case .plain(let a): return packed.count + a.count * 4
        case .nested(let c, let na, let m, _, _): return packed.count + c.count + na.count * 4 + m.count * 4 + 4
        }
    }

    /// `bytes` of a tensor of `count` values quantized with these settings (the memory planner's number).
    public static func storageBytes(count n: Int, blocksize: Int = 64, doubleQuant: Bool = true, nestedBlocksize: Int = 256) -> Int {
        let blocks = (n + blocksize - 1) / blocksize
        if !doubleQuant { return (n + 1) / 2 + blocks * 4 }
        return (n + 1) / 2 + blocks + (blocks + nestedBlocksize - 1) / nestedBlocksize * 4 + 256 * 4 + 4
    }

    /// Quantizes `x` (row-major, `shape`). Values must be finite.
    public static func quantize(_ x: UnsafeBufferPointer<Float>, shape: [Int], type: FourBitType = .nf4, blocksize: Int = 64,
                                doubleQuant: Bool = true, dtype: String = "float32") -> FourBitTensor {
        let n = x.count
        let full = n - n % blocksize, fullBlocks = full / blocksize
        let blocks = (n + blocksize - 1) / blocksize
        var absmax = [Float](repeating: 0, count: blocks)
        var packed = [UInt8](repeating: 0, count: (n + 1) / 2)
        let (order, mids) = type.sortedCodes
        func code(_ s: Float) -> UInt8 {
            // torch.bucketize(s, mids, right=False): the number of midpoints strictly below s.
            var lo = 0, hi = mids.count
            while lo < hi { let m = (lo + hi) / 2; if mids[m] < s { lo = m + 1 } else { hi = m } }
            return order[lo]
        }
        packed.withUnsafeMutableBufferPointer { out in
            absmax.withUnsafeMutableBufferPointer { am in
                let outp = out.baseAddress!, amp = am.baseAddress!
                Parallel.forRange(blocks, minChunk: 256) { r in
                    for b in r {
                        let lo = b * blocksize, hi = min(lo + blocksize, n)
                        var m: Float = 0
                        for i in lo..<hi { m = max(m, abs(x[i])) }
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: blocksize) { scaled in
                        if b < fullBlocks {
                            amp[b] = m
                            let inv = 1 / max(m, 1e-38)
                            for i in lo..<hi { scaled[i - lo] = min(max(x[i] * inv, -1), 1) }
                        } else {
                            let c = max(m, 1e-38)  // the partial last block divides, and stores the clamped absmax
                            amp[b] = c
                            for i in lo..<hi { scaled[i - lo] = min(max(x[i] / c, -1), 1) }
                        }
                        // blocksize is even, so a block starts on a byte; an odd total pads with code(0).
                        var i = lo
                        while i < hi {
                            let hiCode = code(scaled[i - lo])
                            let loCode = i + 1 < hi ? code(scaled[i + 1 - lo]) : code(0)
                            outp[i / 2] = hiCode << 4 | loCode
                            i += 2
                        }
                        }
                    }
                }
            }
        }
        guard doubleQuant else {
            return FourBitTensor(type: type, shape: shape, blocksize: blocksize, packed: packed, absmax: .plain(absmax), dtype: dtype)
        }
        let offset = absmax.withUnsafeBufferPointer { TorchSum.mean($0) }
        let centered = absmax.map { $0 - offset }
        let (codes, nested) = Blockwise8.signed.quantize(centered, blocksize: 256)
        return FourBitTensor(type: type, shape: shape, blocksize: blocksize, packed: packed,
                             absmax: .nested(codes: codes, nestedAbsmax: nested, nestedMap: DynamicMap.signed, offset: offset, nestedBlocksize: 256),
                             dtype: dtype)
    }

    public static func quantize(_ x: [Float], shape: [Int], type: FourBitType = .nf4, blocksize: Int = 64, doubleQuant: Bool = true,
                                dtype: String = "float32") -> FourBitTensor {
        x.withUnsafeBufferPointer { quantize($0, shape: shape, type: type, blocksize: blocksize, doubleQuant: doubleQuant, dtype: dtype) }
    }

    /// Dequantizes values `range` (flat indices) into `out` (count = range.count): codebook[code] * absmax in fp32, what
    /// bitsandbytes' 4-bit matmul computes with for fp32 inputs (`F.dequantize_4bit` alone would round to `dtype`).
    /// Each block's absmax is computed as it is reached (nested: map[code] * nested_absmax + offset, in float32), so no
    /// per-tensor array is held.
    public func dequantize(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty else { return }
        switch absmax {
        case .plain(let a):
            a.withUnsafeBufferPointer { a in dequantize(range, into: out) { a[$0] } }
        case .nested(let codes, let na, let map, let offset, let nb):
            codes.withUnsafeBufferPointer { c in na.withUnsafeBufferPointer { na in map.withUnsafeBufferPointer { m in
                dequantize(range, into: out) { m[Int(c[$0])] * na[$0 / nb] + offset }
            } } }
        }
    }

    @inline(__always)
    private func dequantize(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>, scale: (Int) -> Float) {
        let bs = blocksize
        packed.withUnsafeBufferPointer { p in
            type.codebook.withUnsafeBufferPointer { cb in
                var i = range.lowerBound
                while i < range.upperBound {
                    let b = i / bs, s = scale(b)
                    let end = min(range.upperBound, (b + 1) * bs)
                    for j in i..<end {
                        let byte = p[j >> 1]
                        out[j - range.lowerBound] = cb[Int(j & 1 == 0 ? byte >> 4 : byte & 0xF)] * s
                    }
                    i = end
                }
            }
        }
    }

    /// All values, dequantized.
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            let op = o.baseAddress!
            Parallel.forRange(count, minChunk: 1 << 16) { r in dequantize(r, into: op + r.lowerBound) }
        }
        return out
    }
}
