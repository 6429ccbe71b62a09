import Foundation

/// Time and FLOPs per kernel family over training steps, for `sloth train --profile` and docs/performance.md.
///
/// Regions are opened only by the thread that drives a step (kernels' own workers never open one) and do
/// not nest: a region opened inside another (a bias add inside a linear) counts toward the outer one.
/// Disabled, `start` is one load and a branch.
public enum Profile {
    public enum Family: Int, CaseIterable, Sendable {
        case linear, lora, linearWeightGrad, attentionForward, attentionBackward, crossEntropy, norm, rope, activation,
             elementwise, embedding, optimizer

        public var name: String {
            switch self {
            case .linear: return "frozen linears (x W^T, dY W)"
            case .lora: return "LoRA products"
            case .linearWeightGrad: return "linear dW (full fine-tune)"
            case .attentionForward: return "attention forward"
            case .attentionBackward: return "attention backward"
            case .crossEntropy: return "lm_head + cross-entropy"
            case .norm: return "RMSNorm"
            case .rope: return "RoPE"
            case .activation: return "SwiGLU / GeGLU"
            case .elementwise: return "residual adds, copies"
            case .embedding: return "embedding"
            case .optimizer: return "optimizer + clipping"
            }
        }
    }

    public struct Entry: Sendable {
        public var seconds: Double = 0, flops: Double = 0, calls: Int = 0
    }

    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var open = false
    nonisolated(unsafe) public private(set) static var entries = [Entry](repeating: Entry(), count: Family.allCases.count)

    public static func reset() { entries = [Entry](repeating: Entry(), count: Family.allCases.count) }

    @inline(__always)
    public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// Opens a region; returns 0 (nothing to stop) when disabled or inside another region.
    @inline(__always)
    public static func start() -> UInt64 {
        guard enabled, !open else { return 0 }
        open = true
        return now()
    }

    /// Closes the region `start` opened, charging it to `family` with the FLOPs it performed.
    @inline(__always)
    public static func stop(_ t0: UInt64, _ family: Family, flops: @autoclosure () -> Double = 0) {
        guard t0 != 0 else { return }
        let dt = Double(now() &- t0) * 1e-9
        entries[family.rawValue].seconds += dt
        entries[family.rawValue].flops += flops()
        entries[family.rawValue].calls += 1
        open = false
    }

    /// Runs body as one region.
    @inline(__always)
    public static func measure<R>(_ family: Family, flops: @autoclosure () -> Double = 0, _ body: () throws -> R) rethrows -> R {
        let t = start()
        defer { stop(t, family, flops: flops()) }
        return try body()
    }
}
