import Foundation
import SlothCore
import SlothFormats

/// `--optim`: the optimizers Sloth trains with.
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
    /// torch.optim.AdamW, fp32 states.
    case adamw
    /// bitsandbytes' AdamW8bit: both moments blockwise 8-bit (dynamic maps, blocks of 256), tensors under 4096 values fp32.
    case adamw8bit = "adamw_8bit"
    /// Plain SGD (torch.optim.SGD without momentum): p -= lr (g + weight_decay p).
    case sgd
}

/// AdamW, 8-bit AdamW or SGD over a fixed list of parameters.
///
/// AdamW has PyTorch's semantics: decoupled weight decay applied first, lerp for the first moment, bias
/// corrections, eps added after dividing by sqrt(bias correction 2). 8-bit AdamW follows bitsandbytes 0.50's
/// `optimizer_update_8bit_blockwise` (CPU): per block of 256, dequantize m (signed map) and v (unsigned map), update in
/// fp32 (m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p *= 1 - lr wd, p -= lr/c1 * m / (sqrt(v)/c2 + eps)), quantize back.
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public internal(set) var step = 0
    let params: [Tensor], grads: [Tensor]
    /// Per parameter: its learning rate as a multiple of the step's (e.g. embedding_learning_rate / learning_rate).
    public var lrScales: [Float]
    /// Per parameter: fp32 moments, 8-bit moments, or none (SGD).
    enum State {
        case none
        case fp32(m: Tensor, v: Tensor)
        case eightBit(m: UnsafeMutablePointer<UInt8>, mAbsmax: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<UInt8>, vAbsmax: UnsafeMutablePointer<Float>)
    }
    var states: [State]
    /// bitsandbytes' `min_8bit_size`: smaller tensors keep fp32 states.
    public static let min8bitSize = 4096
    public static let blocksize = 256

    public init(_ kind: OptimizerKind = .adamw, params: [Tensor], grads: [Tensor], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0) {
        precondition(params.count == grads.count) // programmer error
        self.kind = kind
        self.params = params; self.grads = grads
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        lrScales = Array(repeating: 1, count: params.count)
        states = params.map { p in
            switch kind {
            case .sgd: return .none
            case .adamw: return .fp32(m: Tensor(p.shape), v: Tensor(p.shape))
            case .adamw8bit:
                guard p.count >= Optimizer.min8bitSize else { return .fp32(m: Tensor(p.shape), v: Tensor(p.shape)) }
                let blocks = (p.count + Optimizer.blocksize - 1) / Optimizer.blocksize
                func codes() -> UnsafeMutablePointer<UInt8> { let c = UnsafeMutablePointer<UInt8>.allocate(capacity: p.count); c.initialize(repeating: 0, count: p.count); return c }
                func absmax() -> UnsafeMutablePointer<Float> { let a = UnsafeMutablePointer<Float>.allocate(capacity: blocks); a.initialize(repeating: 0, count: blocks); return a }
                return .eightBit(m: codes(), mAbsmax: absmax(), v: codes(), vAbsmax: absmax())
            }
        }
    }

    deinit {
        for s in states { if case .eightBit(let m, let ma, let v, let va) = s { m.deallocate(); ma.deallocate(); v.deallocate(); va.deallocate() } }
    }

    /// Bytes of optimizer state.
    public var stateBytes: Int {
        zip(states, params).reduce(0) { acc, e in
            switch e.0 {
            case .none: return acc
            case .fp32: return acc + e.1.count * 8
            case .eightBit: return acc + e.1.count * 2 + (e.1.count + Optimizer.blocksize - 1) / Optimizer.blocksize * 8
            }
        }
    }

    /// One update with learning rate `lr`.
    public func update(lr stepLR: Float) {
        step += 1
        let b1 = beta1, b2 = beta2, eps = eps, wd = weightDecay
        for i in params.indices {
            let lr = stepLR * lrScales[i]
            let p = params[i].data, g = grads[i].data, n = params[i].count
            switch states[i] {
            case .none:
                Parallel.forRange(n, minChunk: 1 << 14) { r in for j in r { p[j] -= lr * (g[j] + wd * p[j]) } }
            case .fp32(let mt, let vt):
                let m = mt.data, v = vt.data
                if kind == .adamw {
                    let bc1 = 1 - powf(b1, Float(step)), bc2Sqrt = (1 - powf(b2, Float(step))).squareRoot()
                    let stepSize = lr / bc1, decay = 1 - lr * wd
                    Parallel.forRange(n, minChunk: 1 << 14) { r in
                        for j in r {
                            p[j] *= decay
                            let gj = g[j]
                            m[j] += (1 - b1) * (gj - m[j])          // torch: exp_avg.lerp_(grad, 1 - beta1)
                            v[j] = v[j] * b2 + (1 - b2) * gj * gj
                            let denom = v[j].squareRoot() / bc2Sqrt + eps
                            p[j] += -stepSize * (m[j] / denom)
                        }
                    }
                } else {
                    // bitsandbytes' 32-bit path for small tensors of an 8-bit optimizer.
                    let (c1, c2) = bnbCorrections()
                    Parallel.forRange(n, minChunk: 1 << 14) { r in for j in r { Optimizer.bnbAdam(p + j, g[j], m + j, v + j, b1, b2, eps, lr, wd, c1, c2) } }
                }
            case .eightBit(let mc, let ma, let vc, let va):
                let (c1, c2) = bnbCorrections(), bs = Optimizer.blocksize
                let blocks = (n + bs - 1) / bs
                let sMap = Blockwise8.signed, uMap = Blockwise8.unsigned
                Parallel.forRange(blocks, minChunk: 16) { r in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * bs) { tmp in
                        let m = tmp.baseAddress!, v = m + bs
                        for b in r {
                            let lo = b * bs, len = min(bs, n - lo)
                            for j in 0..<len {
                                m[j] = sMap.map[Int(mc[lo + j])] * ma[b]
                                v[j] = uMap.map[Int(vc[lo + j])] * va[b]
                            }
                            for j in 0..<len { Optimizer.bnbAdam(p + lo + j, g[lo + j], m + j, v + j, b1, b2, eps, lr, wd, c1, c2) }
                            sMap.quantize(UnsafeBufferPointer(start: m, count: len), blocksize: bs, codes: mc + lo, absmax: ma + b)
                            uMap.quantize(UnsafeBufferPointer(start: v, count: len), blocksize: bs, codes: vc + lo, absmax: va + b)
                        }
                    }
                }
            }
        }
    }

    /// bitsandbytes computes the corrections in Python floats (double) and passes them as float32.
    private func bnbCorrections() -> (Float, Float) {
        (Float(1 - pow(Double(beta1), Double(step))), Float((1 - pow(Double(beta2), Double(step))).squareRoot()))
    }

    @inline(__always)
    static func bnbAdam(_ p: UnsafeMutablePointer<Float>, _ g: Float, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
                        _ b1: Float, _ b2: Float, _ eps: Float, _ lr: Float, _ wd: Float, _ c1: Float, _ c2: Float) {
        m.pointee = m.pointee * b1 + (1 - b1) * g
        v.pointee = v.pointee * b2 + (1 - b2) * g * g
        let denom = v.pointee.squareRoot() / c2 + eps
        if wd > 0 { p.pointee *= 1 - lr * wd }
        p.pointee += (-lr / c1) * (m.pointee / denom)
    }

    /// The state as named tensors for a training checkpoint (`optimizer.safetensors`): `<i>.m`/`<i>.v` (fp32) or
    /// `<i>.m.codes`, `<i>.m.absmax`, `<i>.v.codes`, `<i>.v.absmax` (8-bit), per parameter index.
    public func stateTensors() -> [WritableTensor] {
        var out: [WritableTensor] = []
        for (i, s) in states.enumerated() {
            let n = params[i].count, blocks = (n + Optimizer.blocksize - 1) / Optimizer.blocksize
            switch s {
            case .none: break
            case .fp32(let m, let v):
                out.append(WritableTensor(name: "\(i).m", shape: m.shape, floats: m.array))
                out.append(WritableTensor(name: "\(i).v", shape: v.shape, floats: v.array))
            case .eightBit(let mc, let ma, let vc, let va):
                out.append(WritableTensor(name: "\(i).m.codes", dtype: .u8, shape: [n], bytes: Array(UnsafeBufferPointer(start: mc, count: n))))
                out.append(WritableTensor(name: "\(i).m.absmax", shape: [blocks], floats: Array(UnsafeBufferPointer(start: ma, count: blocks))))
                out.append(WritableTensor(name: "\(i).v.codes", dtype: .u8, shape: [n], bytes: Array(UnsafeBufferPointer(start: vc, count: n))))
                out.append(WritableTensor(name: "\(i).v.absmax", shape: [blocks], floats: Array(UnsafeBufferPointer(start: va, count: blocks))))
            }
        }
        return out
    }

    /// Restores `step` and the state written by `stateTensors()`; every tensor is checked against this optimizer.
    public func restore(step: Int, from f: SafeTensorsFile) throws {
        func need(_ name: String, _ dtype: DType, _ count: Int) throws {
            guard let e = f.entry(name) else { throw DatasetError(file: f.url.path, row: nil, message: "optimizer state '\(name)' is missing; the checkpoint was written by another configuration (--optim, model or LoRA settings)") }
            guard e.dtype == dtype, e.count == count else { throw DatasetError(file: f.url.path, row: nil, message: "optimizer state '\(name)' has \(e.count) \(e.dtype) values, expected \(count) \(dtype): the checkpoint belongs to another configuration") }
        }
        for (i, s) in states.enumerated() {
            let n = params[i].count, blocks = (n + Optimizer.blocksize - 1) / Optimizer.blocksize
            switch s {
            case .none: break
            case .fp32(let m, let v):
                try need("\(i).m", .f32, n); try need("\(i).v", .f32, n)
                try f.readFloats("\(i).m", into: m.buffer); try f.readFloats("\(i).v", into: v.buffer)
            case .eightBit(let mc, let ma, let vc, let va):
                try need("\(i).m.codes", .u8, n); try need("\(i).v.codes", .u8, n); try need("\(i).m.absmax", .f32, blocks); try need("\(i).v.absmax", .f32, blocks)
                _ = UnsafeMutableBufferPointer(start: mc, count: n).initialize(from: try f.rawBytes("\(i).m.codes"))
                _ = UnsafeMutableBufferPointer(start: vc, count: n).initialize(from: try f.rawBytes("\(i).v.codes"))
                try f.readFloats("\(i).m.absmax", into: UnsafeMutableBufferPointer(start: ma, count: blocks))
                try f.readFloats("\(i).v.absmax", into: UnsafeMutableBufferPointer(start: va, count: blocks))
            }
        }
        self.step = step
    }
}

/// Learning-rate schedules with linear warmup, as transformers' `get_*_schedule_with_warmup`.
public enum LRSchedule: String, Sendable, CaseIterable {
    case constant, linear, cosine

    /// The multiplier for 0-based optimizer step `step` of `total`.
    public func factor(step: Int, warmup: Int, total: Int) -> Double {
        if step < warmup { return Double(step) / Double(max(1, warmup)) }
        switch self {
        case .constant: return 1
        case .linear: return max(0, Double(total - step) / Double(max(1, total - warmup)))
        case .cosine:
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            return max(0, 0.5 * (1 + cos(Double.pi * 2 * 0.5 * progress)))
        }
    }
}

/// Gradient-norm clipping as torch.nn.utils.clip_grad_norm_: returns the total norm before clipping.
public enum GradientClipping {
    @discardableResult
    public static func clip(_ grads: [Tensor], maxNorm: Float?) -> Float {
        // torch: norm of the per-tensor norms, each in fp32.
        var sq: Float = 0
        for g in grads {
            let n = Float(Elementwise.sumOfSquares(g.data, count: g.count).squareRoot())
            sq += n * n
        }
        let total = sq.squareRoot()
        if let maxNorm, maxNorm > 0 {
            let coef = min(maxNorm / (total + 1e-6), 1)
            for g in grads { Elementwise.scale(g.data, by: coef, count: g.count) }
        }
        return total
    }
}
