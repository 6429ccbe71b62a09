import Foundation
import SlothCore
import SlothFormats

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

/// A training configuration's memory, part by part. Resident parts are allocated in this process; the
/// offloaded part lives on the slower tier.
public struct MemoryPlan: Sendable, Codable {
    public struct Part: Sendable, Codable {
        public var name: String
        public var bytes: Int
        /// Counted in the peak (false for offloaded checkpoints).
        public var resident: Bool
        public init(name: String, bytes: Int, resident: Bool) { self.name = name; self.bytes = bytes; self.resident = resident }
    }
    public var policy: String
    public var batch: Int
    public var tokens: Int
    public var parts: [Part]
    /// Peak while loading the weights (fp32 copies + the file pages being read).
    public var loadingPeakBytes: Int

    public init(policy: String, batch: Int, tokens: Int, parts: [Part], loadingPeakBytes: Int) {
        self.policy = policy; self.batch = batch; self.tokens = tokens; self.parts = parts; self.loadingPeakBytes = loadingPeakBytes
    }

    /// The predicted peak resident memory of the run.
    public var peakBytes: Int { max(loadingPeakBytes, parts.filter(\.resident).reduce(0) { $0 + $1.bytes }) }
    public var offloadedBytes: Int { parts.filter { !$0.resident }.reduce(0) { $0 + $1.bytes } }
}

/// Computes memory plans: the same layout the engine allocates, plus weights, trainable state and workspaces.
public enum MemoryPlanner {
    /// Process memory before any model is loaded (Swift runtime, Foundation, OpenBLAS), measured on Linux x86-64.
    public static var runtimeBytes = 48 << 20

    /// Parameter counts of a config: (all weights, LoRA parameters for `lora`).
    public static func parameterCounts(_ c: ModelConfig, lora: LoRAConfig?) -> (weights: Int, lora: Int) {
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        let shapes: [(LinearModule, Int, Int)] = [(.q, HE, D), (.k, KE, D), (.v, KE, D), (.o, D, HE), (.gate, F, D), (.up, F, D), (.down, D, F)]
        var perLayer = 2 * D + shapes.reduce(0) { $0 + $1.1 * $1.2 }
        if c.qkvBias { perLayer += HE + 2 * KE }
        if c.mlpBias { perLayer += 2 * F + D }
        let weights = c.vocabSize * D * (c.tieWordEmbeddings ? 1 : 2) + D + c.numHiddenLayers * perLayer
        var loraCount = 0
        if let lora {
            for (m, o, i) in shapes where lora.targets.contains(m) { loraCount += lora.rank * (o + i) }
            loraCount *= c.numHiddenLayers
        }
        return (weights, loraCount)
    }

    /// The decoder's linear weight shapes (out, in), all layers.
    static func linearShapes(_ c: ModelConfig) -> [(Int, Int)] {
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        let one = [(HE, D), (KE, D), (KE, D), (D, HE), (F, D), (F, D), (D, F)]
        return Array(repeating: one, count: c.numHiddenLayers).flatMap { $0 }
    }

    /// The plan of one training step on the CPU engine (fp32 weights and activations; with `fourBit`, the decoder's
    /// linear weights 4-bit and a dequantization tile beside them).
    /// `fileBytes`: size of the weight files (their pages are resident while loading).
    public static func plan(config c: ModelConfig, lora: LoRAConfig, batch: Int, tokens: Int, policy: CheckpointPolicy,
                            mlpTile: Int = 1024, threads: Int = Parallel.threads, fileBytes: Int? = nil,
                            fourBit: QuantizeOnLoad? = nil, savedModuleParameters: Int = 0) -> MemoryPlan {
        let counts = parameterCounts(c, lora: lora)
        let linears = linearShapes(c)
        let linearCount = linears.reduce(0) { $0 + $1.0 * $1.1 }
        let linearBytes = fourBit.map { q in linears.reduce(0) { $0 + FourBitTensor.storageBytes(count: $1.0 * $1.1, doubleQuant: q.doubleQuant) } }
        let tile = fourBit == nil ? 0 : linears.map { max(1, min($0.0, LinearLayer.tileValues / $0.1)) * $0.1 }.max()! * 4
        let largestLinear = linears.map { $0.0 * $0.1 }.max() ?? 0
        var ranks: [LinearModule: Int] = [:]
        for m in lora.targets { ranks[m] = lora.rank }
        let policy = policy.effective(rows: batch * tokens, hidden: c.hiddenSize)
        let layout = ActivationLayout(config: c, ranks: ranks, batch: batch, tokens: tokens, policy: policy, mlpTile: mlpTile)
        let n = batch * tokens, D = c.hiddenSize, V = c.vocabSize
        // The kernels' scratch is one buffer (`Workspace`), kept between calls at the largest request: the largest one
        // counts (cross-entropy also holds the valid rows' indices and losses, n * 8 bytes at most, beside it).
        let attention = [false, true].map {
            Attention.workspaceFloats(batch: batch, tokens: tokens, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads,
                                      headDim: c.headDim, backward: $0, threads: threads)
        }.max()! * 4
        let crossEntropy = CrossEntropy.workspaceFloats(rows: n, dim: D, vocab: V) * 4 + n * 8
        let rotary = Int(Double(c.headDim) * c.partialRotaryFactor) / 2
        let perStep = n * rotary * 2 * 4 + n * 4 * 4   // cos/sin tables, batch arrays
        let widest = max(D, c.intermediateSize, c.numAttentionHeads * c.headDim)
        // g (N x r); B^T, dB^T and the row-split sums' partials (r x widest each, one per worker after the first).
        let loraScratch = n * lora.rank * 4 + lora.rank * widest * 4 * (1 + threads) + (lora.dropout > 0 ? n * widest * 4 : 0)
        var parts: [MemoryPlan.Part] = [
            .init(name: "runtime", bytes: runtimeBytes, resident: true),
        ]
        if let linearBytes {
            parts.append(.init(name: "linear weights (4-bit \(fourBit!.type.rawValue)\(fourBit!.doubleQuant ? "+dq" : ""))", bytes: linearBytes, resident: true))
            parts.append(.init(name: "other weights (fp32)", bytes: (counts.weights - linearCount) * 4, resident: true))
        } else {
            parts.append(.init(name: "weights (fp32)", bytes: counts.weights * 4, resident: true))
        }
        parts += [
            .init(name: "LoRA parameters", bytes: counts.lora * 4, resident: true),
            .init(name: "LoRA gradients", bytes: counts.lora * 4, resident: true),
            .init(name: "optimizer states (AdamW m, v)", bytes: counts.lora * 8, resident: true),
            .init(name: "activations (\(policy.rawValue))", bytes: layout.arenaBytes, resident: true),
            .init(name: "full / saved-module grads + AdamW", bytes: savedModuleParameters * 12, resident: true),
            // Writing a checkpoint of whole tensors holds the largest one twice more (an fp32 copy and its bytes).
            .init(name: "checkpoint writing", bytes: savedModuleParameters > 0 ? 2 * c.vocabSize * D * 4 : 0, resident: true),
            .init(name: "workspace", bytes: perStep + loraScratch + tile + max(attention, crossEntropy), resident: true),
        ]
        if policy == .offload { parts.append(.init(name: "checkpoints on disk", bytes: layout.offloadedBytes, resident: false)) }
        // Loading holds every weight as it will stay, one linear in fp32 while it is quantized, and the file pages.
        let weightBytes = linearBytes.map { $0 + (counts.weights - linearCount) * 4 + largestLinear * 4 } ?? counts.weights * 4
        let loading = runtimeBytes + weightBytes + (fileBytes ?? counts.weights * 2)
        return MemoryPlan(policy: policy.rawValue, batch: batch, tokens: tokens, parts: parts, loadingPeakBytes: loading)
    }

    /// The longest sequence (batch rows of `tokens`) whose plan fits in `budget` bytes, or 0.
    public static func maxTokens(budget: Int, step: Int = 64, limit: Int = 1 << 22, _ peak: (Int) -> Int) -> Int {
        guard peak(step) <= budget else { return 0 }
        var lo = step, hi = step
        while hi < limit && peak(hi * 2) <= budget { hi *= 2 }
        if hi >= limit { return limit }
        var h = hi * 2
        lo = hi
        while h - lo > step {
            let mid = (lo + h) / 2 / step * step
            if mid <= lo { break }
            if peak(mid) <= budget { lo = mid } else { h = mid }
        }
        return lo
    }

    /// Memory available to this process: MemAvailable from /proc/meminfo (Linux), or nil.
    public static func availableMemory() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            if let kb = line.split(separator: " ").compactMap({ Int($0) }).first { return kb * 1024 }
        }
        return nil
    }
}

/// Byte counts with binary units ("8GiB", "512MiB", "8GB" = 8e9, or plain bytes).
public enum ByteCount {
    public static func parse(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("TiB", 1099511627776), ("GiB", 1073741824), ("MiB", 1048576), ("KiB", 1024),
                                         ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("T", 1099511627776), ("G", 1073741824), ("M", 1048576), ("K", 1024), ("B", 1)]
        for (u, f) in units where t.hasSuffix(u) {
            guard let v = Double(t.dropLast(u.count).trimmingCharacters(in: .whitespaces)), v >= 0 else { return nil }
            return Int(v * f)
        }
        return Int(t)
    }
    public static func format(_ b: Int) -> String {
        let g = Double(b) / 1073741824
        if g >= 1 { return String(format: "%.2f GiB", g) }
        return String(format: "%.1f MiB", Double(b) / 1048576)
    }
}

/// The GPU memory model of `sloth plan --gpus`: what a CUDA build of this design would hold on the device.
/// Assumptions: decoder linear weights in 16-bit, or NF4 with double quantization (4.127 bits/weight) with
/// `--load-in-4bit`; embeddings, lm_head and norms in 16-bit; LoRA parameters, gradients and AdamW states in
/// fp32; activations and their gradients in bf16 with the CPU engine's layout (tiled attention and MLP,
/// chunked cross-entropy); under `offload` the layer inputs live in host RAM; 1 GiB of CUDA context and
/// allocator slack.
public enum GPUMemoryModel {
    public static let contextBytes = 1 << 30

    public static func peakBytes(config c: ModelConfig, lora: LoRAConfig, fourBit: Bool, batch: Int, tokens: Int, policy: CheckpointPolicy) -> Int {
        let counts = MemoryPlanner.parameterCounts(c, lora: lora)
        let D = c.hiddenSize, V = c.vocabSize
        let embed = V * D * (c.tieWordEmbeddings ? 1 : 2)
        let linear = counts.weights - embed
        let weights = fourBit ? Int(Double(linear) * 4.127 / 8) + embed * 2 : counts.weights * 2
        var ranks: [LinearModule: Int] = [:]
        for m in lora.targets { ranks[m] = lora.rank }
        let layout = ActivationLayout(config: c, ranks: ranks, batch: batch, tokens: tokens, policy: policy, mlpTile: 1024)
        let activations = layout.arenaBytes / 2
        let n = batch * tokens
        let ce = (2 * min(1024, n) * D + min(1024, n) * V) * 4
        return contextBytes + weights + counts.lora * 16 + activations + ce
    }
}
