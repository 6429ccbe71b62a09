import Foundation
import SlothCore

// B = batch, T = tokens, N = B*T, D = hidden, H = heads, K = kv heads, E = head dim, F = intermediate,
// V = vocab, R = LoRA rank, M = MLP tile rows, L = layers.

/// The buffers one training step allocates, by name and size: the engine carves its arena from exactly
/// this list, and the planner sums it. Changing one changes the other.
public struct ActivationLayout: Sendable {
    public let config: ModelConfig
    public let ranks: [LinearModule: Int]
    public let batch: Int, tokens: Int
    public let policy: CheckpointPolicy
    /// N
    public var rows: Int { batch * tokens }
    /// M: the MLP tile (all rows under `none`).
    public let mlpRows: Int

    public init(config: ModelConfig, ranks: [LinearModule: Int], batch: Int, tokens: Int, policy: CheckpointPolicy, mlpTile: Int) {
        self.config = config; self.ranks = ranks; self.batch = batch; self.tokens = tokens; self.policy = policy
        mlpRows = policy == .none ? batch * tokens : max(1, min(mlpTile, batch * tokens))
    }

    /// One layer cache's buffers (float counts).
    public func cacheBuffers(prefix p: String) -> [(name: String, count: Int)] {
        let c = config, n = rows, m = mlpRows
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        var out: [(String, Int)] = [
            (p + "rstd1", n), (p + "xn1", n * D), (p + "q", n * HE), (p + "k", n * KE), (p + "v", n * KE),
            (p + "attn", n * HE), (p + "lse", batch * c.numAttentionHeads * tokens), (p + "h1", n * D), (p + "rstd2", n), (p + "xn2", n * D),
            (p + "gate", m * F), (p + "up", m * F), (p + "act", m * F),
        ]
        for mod in LinearModule.allCases { if let r = ranks[mod] { out.append((p + "xa." + mod.rawValue, (mod.parent == "mlp" ? m : n) * r)) } }
        return out
    }

    /// Every buffer of a training step, in arena order.
    public var buffers: [(name: String, count: Int)] {
        let c = config, n = rows, m = mlpRows, L = c.numHiddenLayers
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        var out: [(name: String, count: Int)] = []
        let hiddenCount = policy == .offload ? 2 : L + 1
        for l in 0..<hiddenCount { out.append(("hidden.\(l)", n * D)) }
        if policy == .none {
            for l in 0..<L { out += cacheBuffers(prefix: "cache.\(l).") }
        } else if L > 0 {
            out += cacheBuffers(prefix: "cache.")
        }
        out += [("final.xf", n * D), ("final.rstd", n), ("final.dxf", n * D), ("grad.dOut", n * D), ("grad.dIn", n * D),
                ("grad.dh1", n * D), ("grad.dAttn", n * HE), ("grad.dq", n * HE), ("grad.dk", n * KE), ("grad.dv", n * KE),
                ("grad.dAct", m * F), ("grad.dGate", m * F), ("grad.dUp", m * F), ("grad.dxn", n * D)]
        return out
    }

    /// Bytes of the arena (each buffer padded to 16 floats, as `Arena` lays them out).
    public var arenaBytes: Int { buffers.reduce(0) { $0 + ($1.count + 15) / 16 * 16 } * 4 }

    /// Bytes that leave memory under `offload` (layer inputs 0..<L-1 on the slower tier).
    public var offloadedBytes: Int { policy == .offload ? max(0, config.numHiddenLayers - 1) * rows * config.hiddenSize * 4 : 0 }
}
