import Foundation
import SlothCore
import SlothFormats

// N = tokens, I = in features, O = out features, R = rank.

/// The linear modules of a decoder layer that LoRA can target, named as in HF / PEFT.
public enum LinearModule: String, CaseIterable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj", gate = "gate_proj", up = "up_proj", down = "down_proj"
    /// "self_attn" or "mlp".
    public var parent: String { switch self { case .q, .k, .v, .o: return "self_attn"; default: return "mlp" } }
}

/// LoRA hyper-parameters (PEFT's names in adapter_config.json).
public struct LoRAConfig: Sendable, Equatable {
    public var rank: Int = 8
    public var alpha: Double = 16
    public var dropout: Double = 0
    public var useRSLoRA: Bool = false
    public var targets: [LinearModule] = LinearModule.allCases
    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, useRSLoRA: Bool = false, targets: [LinearModule] = LinearModule.allCases) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.useRSLoRA = useRSLoRA; self.targets = targets
    }
    /// s = alpha / r, or alpha / sqrt(r) with rsLoRA.
    public var scale: Float { Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }
}

/// One LoRA pair on a frozen linear: y = x W^T + s * dropout(x) A^T B^T. A (R, I), B (O, R).
public final class LoRAPair: @unchecked Sendable {
    public let a: Tensor, b: Tensor          // (R, I), (O, R)
    public let gradA: Tensor, gradB: Tensor
    public let scale: Float
    public var dropout: Float
    /// Seeds the dropout masks of this module (masks are recomputed from (seed, step, index), never stored).
    public let dropoutSeed: UInt64
    public var rank: Int { a.shape[0] }

    public init(a: Tensor, b: Tensor, scale: Float, dropout: Float = 0, dropoutSeed: UInt64 = 0) {
        self.a = a; self.b = b; self.scale = scale; self.dropout = dropout; self.dropoutSeed = dropoutSeed
        gradA = Tensor(a.shape); gradB = Tensor(b.shape)
    }

    /// PEFT's default init: A kaiming-uniform (a = sqrt(5), bound 1/sqrt(I)), B zero.
    public static func initialised(inFeatures: Int, outFeatures: Int, config: LoRAConfig, rng: inout SplitMix64, dropoutSeed: UInt64) -> LoRAPair {
        let a = Tensor([config.rank, inFeatures])
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in 0..<a.count { a[i] = (rng.nextFloat() * 2 - 1) * bound }
        return LoRAPair(a: a, b: Tensor([outFeatures, config.rank]), scale: config.scale, dropout: Float(config.dropout), dropoutSeed: dropoutSeed)
    }
}

/// A frozen linear's weight: fp32, or 4-bit (bitsandbytes NF4/FP4) dequantized a tile of rows at a time.
public enum LinearWeight: @unchecked Sendable {
    case dense(Tensor)
    case fourBit(FourBitTensor)

    /// Bytes held by the weight.
    public var bytes: Int {
        switch self {
        case .dense(let t): return t.count * 4
        case .fourBit(let q): return q.bytes
        }
    }
}

/// A frozen linear (W (O, I), optional bias) with an optional LoRA pair.
public final class LinearLayer: @unchecked Sendable {
    public let storage: LinearWeight
    public let bias: Tensor?
    public var lora: LoRAPair?
    /// Full fine-tuning: dW (O, I) and db (O), accumulated by backward when present.
    public internal(set) var gradWeight: Tensor?
    public internal(set) var gradBias: Tensor?
    public let inFeatures: Int
    public let outFeatures: Int

    public init(weight: Tensor, bias: Tensor?) {
        storage = .dense(weight); self.bias = bias; outFeatures = weight.shape[0]; inFeatures = weight.shape[1]
    }

    public init(fourBit q: FourBitTensor, bias: Tensor?) {
        precondition(q.shape.count == 2) // programmer error: loaders check shapes
        storage = .fourBit(q); self.bias = bias; outFeatures = q.shape[0]; inFeatures = q.shape[1]
    }

    /// The weight in fp32: the tensor itself, or a dequantized copy (for merging and tests, not the hot path).
    public var weight: Tensor {
        switch storage {
        case .dense(let t): return t
        case .fourBit(let q): return Tensor(q.shape, q.dequantized())
        }
    }

    public var isQuantized: Bool { if case .fourBit = storage { return true }; return false }

    /// Rows of W dequantized per tile: about 1M values (4 MiB), enough rows that each tile's GEMM runs at full rate.
    nonisolated(unsafe) public private(set) static var tileValues = 1 << 20
    public var tileRows: Int { max(1, min(outFeatures, LinearLayer.tileValues / max(inFeatures, 1))) }

    /// Runs `body` with another tile size (tests of the tiling).
    static func withTileValues<R>(_ v: Int, _ body: () throws -> R) rethrows -> R {
        let before = tileValues
        tileValues = v
        defer { tileValues = before }
        return try body()
    }

    /// Calls `body(rows, tile)` for each tile of W's rows, dequantized to fp32 in `tile` ((rows.count) x I).
    func forEachDequantizedTile(_ q: FourBitTensor, scratch: Scratch, _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let tr = tileRows, i = inFeatures, buf = scratch.buffer(.dequant, tr * i)
        var o0 = 0
        while o0 < outFeatures {
            let o1 = min(outFeatures, o0 + tr), lo = o0 * i
            Parallel.forRange((o1 - o0) * i, minChunk: 1 << 15) { r in q.dequantize((lo + r.lowerBound)..<(lo + r.upperBound), into: buf + r.lowerBound) }
            body(o0..<o1, buf)
            o0 = o1
        }
    }

    /// Whether the LoRA pair is folded into the frozen weight for the products of `rows` rows: with no dropout,
    /// y = x (W + s B A)^T and dx = dy (W + s B A) are the base products on W' = W + s B A, built for each (a pass
    /// over O x I), in place of adding s (x A^T) B^T into y and (dy B) A into dx (passes over N x O and N x I). Folds
    /// when those passes are the larger: N (I + O) >= 2 I O (a 2048-token step; not 512 tokens of this model).
    func foldsLoRA(rows n: Int) -> Bool {
        guard let lora, lora.dropout == 0 else { return false }
        return n * (inFeatures + outFeatures) >= 2 * inFeatures * outFeatures
    }

    /// W' rows = W rows + s B[rows] A into `out` (rows.count x I); `base` nil when `out` already holds W's rows.
    private func fold(_ lora: LoRAPair, rows: Range<Int>, base: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .lora, flops: 2 * Double(rows.count * lora.rank * inFeatures)) }
        let r = lora.rank
        LowRank.update(y: out, ldy: inFeatures, base: base ?? UnsafePointer(out), ldb: inFeatures, c: lora.b.data + rows.lowerBound * r, ldc: r,
                       w: lora.a.data, ldw: inFeatures, rows: rows.count, rank: r, width: inFeatures, alpha: lora.scale)
    }

    /// W itself, or W' = W + s B A built in scratch when `folded` is given.
    private func denseWeight(_ w: Tensor, folded: LoRAPair?, scratch: Scratch) -> UnsafePointer<Float> {
        guard let folded else { return UnsafePointer(w.data) }
        let wf = scratch.buffer(.fold, outFeatures * inFeatures)
        fold(folded, rows: 0..<outFeatures, base: w.data, into: wf)
        return UnsafePointer(wf)
    }

    /// y (N, O) = x W'^T: the base product, on W' = W + s B A when `folded` is given.
    public func baseForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows n: Int, folded: LoRAPair? = nil, scratch: Scratch) {
        switch storage {
        case .dense(let w):
            let weight = denseWeight(w, folded: folded, scratch: scratch)
            let profiled = Profile.start()
            defer { Profile.stop(profiled, .linear, flops: 2 * Double(n) * Double(inFeatures) * Double(outFeatures)) }
            Linear.forward(out: out, input: input, weight: weight, bias: nil, rows: n, inFeatures: inFeatures, outFeatures: outFeatures)
        case .fourBit(let q):
            // Dequantization and the fold count toward the product (profile regions do not nest).
            let profiled = Profile.start()
            defer { Profile.stop(profiled, .linear, flops: 2 * Double(n) * Double(inFeatures) * Double(outFeatures)) }
            forEachDequantizedTile(q, scratch: scratch) { rows, tile in
                if let folded { fold(folded, rows: rows, base: nil, into: tile) }
                BLAS.sgemm(transA: false, transB: true, m: n, n: rows.count, k: inFeatures, a: input, lda: inFeatures, b: tile, ldb: inFeatures,
                           c: out + rows.lowerBound, ldc: outFeatures)
            }
        }
    }

    /// dx (N, I) = dy W', assigned or accumulated; W' = W + s B A when `folded` is given.
    public func baseBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, rows n: Int, accumulate: Bool,
                             folded: LoRAPair? = nil, scratch: Scratch) {
        switch storage {
        case .dense(let w):
            let weight = denseWeight(w, folded: folded, scratch: scratch)
            let profiled = Profile.start()
            defer { Profile.stop(profiled, .linear, flops: 2 * Double(n) * Double(inFeatures) * Double(outFeatures)) }
            Linear.backwardInput(dInput: dInput, dOut: dOut, weight: weight, rows: n, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        case .fourBit(let q):
            let profiled = Profile.start()
            defer { Profile.stop(profiled, .linear, flops: 2 * Double(n) * Double(inFeatures) * Double(outFeatures)) }
            forEachDequantizedTile(q, scratch: scratch) { rows, tile in
                if let folded { fold(folded, rows: rows, base: nil, into: tile) }
                BLAS.sgemm(transA: false, transB: false, m: n, n: inFeatures, k: rows.count, a: dOut + rows.lowerBound, lda: outFeatures, b: tile, ldb: inFeatures,
                           beta: accumulate || rows.lowerBound > 0 ? 1 : 0, c: dInput, ldc: inFeatures)
            }
        }
    }

    /// y (N, O) = x W^T + b + s * drop(x) A^T B^T. `xa` (N, R) receives drop(x) A^T for backward.
    public func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows n: Int,
                        xa: UnsafeMutablePointer<Float>?, dropoutStep: UInt64 = 0, scratch: Scratch) {
        let pair = xa == nil ? nil : lora
        let folds = pair != nil && foldsLoRA(rows: n)
        baseForward(out: out, input: input, rows: n, folded: folds ? pair : nil, scratch: scratch)
        if let bias { Elementwise.addBias(out, bias.data, rows: n, width: outFeatures) }
        guard let lora = pair, let xa else { return }
        loraInput(xa: xa, input: input, rows: n, dropoutStep: dropoutStep, scratch: scratch)
        if folds { return }
        let r = lora.rank
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .lora, flops: 2 * Double(n * r * outFeatures)) }
        let bt = scratch.buffer(.loraBT, r * outFeatures)
        LowRank.transpose(bt, lora.b.data, rows: outFeatures, columns: r)
        LowRank.update(y: out, ldy: outFeatures, base: out, ldb: outFeatures, c: xa, ldc: r, w: bt, ldw: outFeatures,
                       rows: n, rank: r, width: outFeatures, alpha: lora.scale)
    }

    /// Only the LoRA input product xa (N, R) = drop(x) A^T (what backward needs when the output is not recomputed).
    public func loraInput(xa: UnsafeMutablePointer<Float>?, input: UnsafePointer<Float>, rows n: Int, dropoutStep: UInt64 = 0, scratch: Scratch) {
        guard let lora, let xa else { return }
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .lora, flops: 2 * Double(n * lora.rank * inFeatures)) }
        let x = lora.dropout > 0 ? dropped(input, rows: n, step: dropoutStep, scratch: scratch) : input
        LowRank.dots(out: xa, ldo: lora.rank, x: x, ldx: inFeatures, w: lora.a.data, ldw: inFeatures, rows: n, rank: lora.rank, k: inFeatures)
    }

    /// dx (N, I) = dy W + drop'((s dy B) A), assigned or accumulated; accumulates LoRA gradients.
    public func backward(dInput: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                         xa: UnsafePointer<Float>?, rows n: Int, accumulate: Bool, dropoutStep: UInt64 = 0, scratch: Scratch) {
        let pair = xa == nil ? nil : lora
        let folds = pair != nil && foldsLoRA(rows: n)
        if let dInput { baseBackward(dInput: dInput, dOut: dOut, rows: n, accumulate: accumulate, folded: folds ? pair : nil, scratch: scratch) }
        if let gw = gradWeight {
            let profiled = Profile.start()
            defer { Profile.stop(profiled, .linearWeightGrad, flops: 2 * Double(n) * Double(inFeatures) * Double(outFeatures)) }
            Linear.backwardWeight(dWeight: gw.data, dOut: dOut, input: input, rows: n, inFeatures: inFeatures, outFeatures: outFeatures)
        }
        if let gb = gradBias {
            let o = outFeatures, gbp = gb.data
            for r in 0..<n { for j in 0..<o { gbp[j] += dOut[r * o + j] } }
        }
        guard let lora = pair, let xa else { return }
        let r = lora.rank, o = outFeatures
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .lora, flops: 2 * Double(n * r) * Double(2 * o + (dInput == nil || folds ? 1 : 2) * inFeatures)) }
        // g = s dy B (N, R) and dB += s dy^T xa (as dB^T += s xa^T dy), in one pass over dy
        let bt = scratch.buffer(.loraBT, r * o), dbt = scratch.buffer(.loraGradBT, r * o), g = scratch.buffer(.loraGrad, n * r)
        let partials = scratch.buffer(.loraPartials, max(1, LowRank.partialFloats(rows: n, rank: r, width: max(o, inFeatures))))
        LowRank.transpose(bt, lora.b.data, rows: o, columns: r)
        dbt.update(repeating: 0, count: r * o)
        LowRank.dotsOuter(out: g, ldo: r, w: bt, ldw: o, alphaDots: lora.scale, g: dbt, ldg: o, c: xa, ldc: r, alphaOuter: lora.scale,
                          x: dOut, ldx: o, rows: n, rank: r, width: o, partials: partials)
        LowRank.addTransposed(lora.gradB.data, dbt, rows: r, columns: o)
        let x = lora.dropout > 0 ? dropped(input, rows: n, step: dropoutStep, scratch: scratch) : input
        // dA += g^T drop(x)
        LowRank.outer(g: lora.gradA.data, ldg: inFeatures, c: g, ldc: r, x: x, ldx: inFeatures, rows: n, rank: r, width: inFeatures,
                      partials: partials)
        guard let dInput, !folds else { return }
        if lora.dropout > 0 {
            let t = scratch.buffer(.loraInput, n * inFeatures)
            LowRank.update(y: t, ldy: inFeatures, base: nil, ldb: inFeatures, c: g, ldc: r, w: lora.a.data, ldw: inFeatures,
                           rows: n, rank: r, width: inFeatures)
            applyDropout(t, rows: n, step: dropoutStep)
            Elementwise.add(dInput, t, count: n * inFeatures)
        } else {
            LowRank.update(y: dInput, ldy: inFeatures, base: dInput, ldb: inFeatures, c: g, ldc: r, w: lora.a.data, ldw: inFeatures,
                           rows: n, rank: r, width: inFeatures)
        }
    }

    /// drop(x) into scratch: each element kept with probability 1-p and scaled by 1/(1-p); the mask is a hash of (seed, step, index).
    private func dropped(_ x: UnsafePointer<Float>, rows n: Int, step: UInt64, scratch: Scratch) -> UnsafePointer<Float> {
        let t = scratch.buffer(.loraInput, n * inFeatures)
        t.update(from: x, count: n * inFeatures)
        applyDropout(t, rows: n, step: step)
        return UnsafePointer(t)
    }

    private func applyDropout(_ t: UnsafeMutablePointer<Float>, rows n: Int, step: UInt64) {
        guard let lora else { return }
        let p = lora.dropout, keep = 1 / (1 - p)
        let seed = lora.dropoutSeed &+ step &* 0x9E37_79B9_7F4A_7C15
        for i in 0..<(n * inFeatures) {
            let u = Float(SplitMix64.hash(seed &+ UInt64(i)) >> 40) / Float(1 << 24)
            t[i] = u < p ? 0 : t[i] * keep
        }
    }

    /// W + s B A: the plain linear this LoRA layer equals (for merging and tests).
    public func fusedWeight() -> Tensor {
        let w = Tensor([outFeatures, inFeatures])
        w.copy(from: weight)
        if let lora {
            BLAS.sgemm(transA: false, transB: false, m: outFeatures, n: inFeatures, k: lora.rank, alpha: lora.scale,
                       a: lora.b.data, b: lora.a.data, beta: 1, c: w.data)
        }
        return w
    }
}

/// A small deterministic generator (SplitMix64) for initialisation, shuffling and dropout.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }
    /// Uniform in [0, 1).
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
    @inlinable static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A stateless hash of x (counter-based randomness).
    public static func hash(_ x: UInt64) -> UInt64 { mix(x &+ 0x9E37_79B9_7F4A_7C15) }
}

/// Reusable scratch buffers, keyed by purpose, grown on demand (no per-step allocation once warm).
public final class Scratch: @unchecked Sendable {
    public enum Slot: Int, CaseIterable { case loraGrad, loraInput, loraBT, loraGradBT, loraPartials, fold, dequant, a, b, c, d, e, f, g }
    private var buffers: [UnsafeMutablePointer<Float>?] = Array(repeating: nil, count: Slot.allCases.count)
    private var sizes: [Int] = Array(repeating: 0, count: Slot.allCases.count)
    public init() {}
    public func buffer(_ slot: Slot, _ count: Int) -> UnsafeMutablePointer<Float> {
        let i = slot.rawValue
        if sizes[i] < count {
            buffers[i]?.deallocate()
            buffers[i] = UnsafeMutablePointer<Float>.allocate(capacity: count)
            sizes[i] = count
        }
        return buffers[i]!
    }
    /// Bytes held.
    public var bytes: Int { sizes.reduce(0, +) * 4 }
    deinit { for b in buffers { b?.deallocate() } }
}
