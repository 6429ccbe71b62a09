import Foundation
import SlothCore

/// AdamW with PyTorch's semantics: decoupled weight decay applied first, lerp for the first moment,
/// bias corrections, eps added after dividing by sqrt(bias correction 2). fp32 states.
public final class AdamW: @unchecked Sendable {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public private(set) var step = 0
    let params: [Tensor], grads: [Tensor]
    let m: [Tensor], v: [Tensor]

    public init(params: [Tensor], grads: [Tensor], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        precondition(params.count == grads.count) // programmer error
        self.params = params; self.grads = grads
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = params.map { Tensor($0.shape) }; v = params.map { Tensor($0.shape) }
    }

    /// One update with learning rate `lr`.
    public func update(lr: Float) {
        step += 1
        let bc1 = 1 - powf(beta1, Float(step))
        let bc2Sqrt = (1 - powf(beta2, Float(step))).squareRoot()
        let stepSize = lr / bc1
        let decay = 1 - lr * weightDecay
        let b1 = beta1, b2 = beta2, eps = eps
        for i in params.indices {
            let p = params[i].data, g = grads[i].data, m = m[i].data, v = v[i].data
            let n = params[i].count
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
        }
    }

    /// The optimizer state for checkpoints: step, then m and v per parameter.
    public var state: (step: Int, m: [Tensor], v: [Tensor]) { (step, m, v) }

    public func restore(step: Int, m: [[Float]], v: [[Float]]) {
        self.step = step
        for i in params.indices {
            _ = self.m[i].buffer.update(fromContentsOf: m[i]); _ = self.v[i].buffer.update(fromContentsOf: v[i])
        }
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
