import Foundation
import CSlothKernels

// N*F elements: gate e, up g, hidden h = act(e) * g.

/// Gated MLP activations: SwiGLU (Llama, Mistral, Qwen 2) and GeGLU with tanh GELU (Gemma).
public enum GatedActivation: String, Sendable {
    case swiglu
    case gegluTanh

    /// h = act(gate) * up over n elements.
    public func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .activation) }
        switch self {
        case .swiglu:
            Parallel.forRange(n, minChunk: 1 << 14) { r in
                sloth_swiglu_forward(out + r.lowerBound, gate + r.lowerBound, up + r.lowerBound, r.count)
            }
        case .gegluTanh:
            Parallel.forRange(n, minChunk: 1 << 14) { r in
                for i in r {
                    let e = gate[i]
                    let t = Foundation.tanh(GatedActivation.c * (e + 0.044715 * e * e * e))
                    out[i] = 0.5 * e * (1 + t) * up[i]
                }
            }
        }
    }

    /// dGate, dUp assigned from dOut.
    public func backward(dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                         gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int) {
        let profiled = Profile.start()
        defer { Profile.stop(profiled, .activation) }
        switch self {
        case .swiglu:
            Parallel.forRange(n, minChunk: 1 << 14) { r in
                sloth_swiglu_backward(dGate + r.lowerBound, dUp + r.lowerBound, dOut + r.lowerBound, gate + r.lowerBound, up + r.lowerBound, r.count)
            }
        case .gegluTanh:
            Parallel.forRange(n, minChunk: 1 << 14) { r in
                for i in r {
                    let e = gate[i], g = up[i], dh = dOut[i]
                    let inner = GatedActivation.c * (e + 0.044715 * e * e * e)
                    let t = Foundation.tanh(inner)
                    let f = 0.5 * e * (1 + t)
                    let df = 0.5 * (1 + t) + 0.5 * e * (1 - t * t) * GatedActivation.c * (1 + 3 * 0.044715 * e * e)
                    dUp[i] = dh * f
                    dGate[i] = dh * g * df
                }
            }
        }
    }

    @usableFromInline static let c: Float = (2 / Float.pi).squareRoot()
}
