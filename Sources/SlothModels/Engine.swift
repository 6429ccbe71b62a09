import Foundation
import SlothCore

// B = batch, T = tokens per row, N = B*T, D = hidden, H = heads, K = kv heads, E = head dim,
// F = intermediate, V = vocab, R = LoRA rank.

/// How a training step keeps what backward needs.
public enum CheckpointPolicy: String, Sendable, CaseIterable {
    /// Keep every layer's activations.
    case none
    /// Keep each layer's input only; recompute the layer's forward in backward (MLP in token tiles).
    case recompute
    /// As recompute, but each layer's input goes to a slower tier (disk) while the next layer computes
    /// and comes back, double-buffered, ahead of its backward; the last layer's input stays.
    case offload

    /// Under `offload`, layer inputs smaller than this stay in memory and the step runs as `recompute`: the
    /// memory freed is at most this much a layer. (Unsloth's floor. On this CPU `bench/offload.sh` found no
    /// step-time cost of the disk tier at any length, 256 tokens included, so the floor is about memory, not speed.)
    public static let minimumOffloadBytes = 2 << 20

    /// The policy a step of `rows` x `hidden` activations really runs: `offload` falls back to `recompute`
    /// below `minimumOffloadBytes` per layer input.
    public func effective(rows: Int, hidden: Int, minimumOffloadBytes: Int = CheckpointPolicy.minimumOffloadBytes) -> CheckpointPolicy {
        self == .offload && rows * hidden * 4 < minimumOffloadBytes ? .recompute : self
    }
}

/// A batch of token rows, all of length T (right-padded), with next-token targets already shifted.
public struct TokenBatch: Sendable {
    public var batch: Int, tokens: Int
    /// (N) input ids.
    public var ids: [Int32]
    /// (N) the id each position must predict (labels shifted left by one), -100 to ignore.
    public var targets: [Int32]
    /// (N) position ids (0... per row, or per packed segment).
    public var positions: [Int32]
    /// (N) packed-segment ids, nil when each row is one sequence.
    public var segments: [Int32]?

    /// Builds a right-padded batch from rows of (input_ids, labels) where labels are aligned with
    /// input_ids (as in transformers, shifted inside the loss). Padding uses `padId` and label -100.
    public init(rows: [(ids: [Int32], labels: [Int32])], padId: Int32 = 0, padTo: Int? = nil) {
        batch = rows.count
        tokens = max(padTo ?? 0, rows.map(\.ids.count).max() ?? 0)
        ids = []; targets = []; positions = []
        ids.reserveCapacity(batch * tokens)
        for r in rows {
            for t in 0..<tokens {
                ids.append(t < r.ids.count ? r.ids[t] : padId)
                targets.append(t + 1 < r.labels.count ? r.labels[t + 1] : -100)
                positions.append(Int32(t))
            }
        }
        segments = nil
    }

    public init(batch: Int, tokens: Int, ids: [Int32], targets: [Int32], positions: [Int32], segments: [Int32]? = nil) {
        self.batch = batch; self.tokens = tokens; self.ids = ids; self.targets = targets; self.positions = positions; self.segments = segments
    }

    /// Number of positions that contribute to the loss.
    public var validTargets: Int { targets.reduce(0) { $0 + ($1 == -100 ? 0 : 1) } }
}

/// What one layer's forward keeps for its backward: views into the step's arena.
final class LayerCache {
    let n: Int, m: Int              // rows, MLP rows (n, or the MLP tile)
    var x: Tensor                   // (N, D) input (a hidden-state buffer)
    let rstd1: Tensor, xn1: Tensor  // (N), (N, D)
    let q: Tensor, k: Tensor, v: Tensor  // (N, H*E), (N, K*E), (N, K*E), after RoPE
    let attn: Tensor, lse: Tensor   // (N, H*E), (B*H*T)
    let h1: Tensor                  // (N, D) residual after attention
    let rstd2: Tensor, xn2: Tensor  // (N), (N, D)
    let gate: Tensor, up: Tensor, act: Tensor  // (M, F)
    var xa: [LinearModule: Tensor] = [:]       // (N or M, R) LoRA intermediates

    init(arena: Arena, prefix p: String, layout l: ActivationLayout, x: Tensor) {
        let c = l.config, D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        n = l.rows; m = l.mlpRows; self.x = x
        rstd1 = arena.tensor(p + "rstd1", [n]); xn1 = arena.tensor(p + "xn1", [n, D])
        q = arena.tensor(p + "q", [n, HE]); k = arena.tensor(p + "k", [n, KE]); v = arena.tensor(p + "v", [n, KE])
        attn = arena.tensor(p + "attn", [n, HE]); lse = arena.tensor(p + "lse", [l.batch * c.numAttentionHeads * l.tokens])
        h1 = arena.tensor(p + "h1", [n, D]); rstd2 = arena.tensor(p + "rstd2", [n]); xn2 = arena.tensor(p + "xn2", [n, D])
        gate = arena.tensor(p + "gate", [m, F]); up = arena.tensor(p + "up", [m, F]); act = arena.tensor(p + "act", [m, F])
        for (mod, r) in l.ranks { xa[mod] = arena.tensor(p + "xa." + mod.rawValue, [mod.parent == "mlp" ? m : n, r]) }
    }

    /// A cache in its own small arena (inference: one layer at a time).
    static func standalone(_ c: ModelConfig, ranks: [LinearModule: Int], batch: Int, tokens: Int, x: Tensor) -> LayerCache {
        let l = ActivationLayout(config: c, ranks: ranks, batch: batch, tokens: tokens, policy: .recompute, mlpTile: batch * tokens)
        let arena = Arena(l.cacheBuffers(prefix: "cache."))
        return LayerCache(arena: arena, prefix: "cache.", layout: l, x: x)
    }
}

/// Gradient buffers for one layer's backward, reused across layers (views into the arena).
final class LayerGrads {
    let dh1: Tensor, dAttn: Tensor, dq: Tensor, dk: Tensor, dv: Tensor, dAct: Tensor, dGate: Tensor, dUp: Tensor, dxn: Tensor
    init(arena: Arena, layout l: ActivationLayout) {
        let c = l.config, n = l.rows, m = l.mlpRows
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        dh1 = arena.tensor("grad.dh1", [n, D]); dAttn = arena.tensor("grad.dAttn", [n, HE])
        dq = arena.tensor("grad.dq", [n, HE]); dk = arena.tensor("grad.dk", [n, KE]); dv = arena.tensor("grad.dv", [n, KE])
        dAct = arena.tensor("grad.dAct", [m, F]); dGate = arena.tensor("grad.dGate", [m, F]); dUp = arena.tensor("grad.dUp", [m, F])
        dxn = arena.tensor("grad.dxn", [n, D])
    }
}

/// Runs forward and backward passes of a `LanguageModel`: training steps (loss + LoRA gradients) and logits.
/// A training step's activations live in one arena laid out by `ActivationLayout` (the memory plan).
public final class Engine: @unchecked Sendable {
    public let model: LanguageModel
    /// The micro-batch forwardBackward ran last (for `stepCost`).
    public private(set) var lastBatch: TokenBatch?
    let scratch = Scratch()
    /// Dropout masks change every micro-step; this counts them.
    /// Micro-batches run so far: seeds LoRA dropout masks (a resumed run sets it back).
    public var dropoutStep: UInt64 = 0
    /// Token rows per MLP tile under recompute/offload (the N x F intermediates never exist at once).
    public var mlpTile = 1024
    /// Where `offload` puts checkpoints (a disk file by default).
    public var offloadTier: OffloadTier?
    /// Layer inputs under this many bytes are not offloaded (`CheckpointPolicy.effective`).
    public var minimumOffloadBytes = CheckpointPolicy.minimumOffloadBytes
    /// Directory for the disk tier's file.
    public var offloadDirectory = FileManager.default.temporaryDirectory
    private var arena: Arena?
    private var arenaKey: String = ""

    public init(model: LanguageModel) { self.model = model }

    var config: ModelConfig { model.config }

    func ranks() -> [LinearModule: Int] {
        var r: [LinearModule: Int] = [:]
        for layer in model.layers { for m in LinearModule.allCases { if let p = layer.linear(m).lora { r[m] = max(r[m] ?? 0, p.rank) } } }
        return r
    }

    /// The activation layout of a step with this batch shape and policy.
    public func layout(batch: Int, tokens: Int, policy: CheckpointPolicy) -> ActivationLayout {
        ActivationLayout(config: config, ranks: ranks(), batch: batch, tokens: tokens, policy: policy, mlpTile: mlpTile)
    }

    private func arenaFor(_ l: ActivationLayout) -> Arena {
        let key = "\(l.batch)x\(l.tokens)/\(l.policy)/\(l.mlpRows)"
        if let a = arena, arenaKey == key { return a }
        arena = nil
        let a = Arena(l.buffers)
        arena = a; arenaKey = key
        return a
    }

    /// Frees the step's activation arena and the kernels' workspace (`Workspace.shared`) until the next step.
    public func releaseArena() { arena = nil; arenaKey = ""; Workspace.shared.release() }

    private func attentionShape(_ b: TokenBatch) -> Attention.Shape {
        Attention.Shape(batch: b.batch, tokens: b.tokens, heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads,
                        headDim: config.headDim, window: config.slidingWindow, scale: config.attentionScale, segments: b.segments)
    }

    /// Attention half of a layer: cache.x -> h1 (residual) and xn2 (normed), filling the cache.
    private func attentionForward(_ L: DecoderLayer, cache: LayerCache, batch: TokenBatch, cos: [Float], sin: [Float]) {
        let c = config, n = cache.n, D = c.hiddenSize
        let off = c.architecture.normOffset, step = dropoutStep
        RMSNorm.forward(out: cache.xn1.data, rstd: cache.rstd1.data, input: cache.x.data, weight: L.inputNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: off)
        L.q.forward(out: cache.q.data, input: cache.xn1.data, rows: n, xa: cache.xa[.q]?.data, dropoutStep: step, scratch: scratch)
        L.k.forward(out: cache.k.data, input: cache.xn1.data, rows: n, xa: cache.xa[.k]?.data, dropoutStep: step, scratch: scratch)
        L.v.forward(out: cache.v.data, input: cache.xn1.data, rows: n, xa: cache.xa[.v]?.data, dropoutStep: step, scratch: scratch)
        let rope = c.rope
        RoPE.apply(cache.q.data, cos: cos, sin: sin, tokens: n, heads: c.numAttentionHeads, headDim: c.headDim, rotaryDim: rope.rotaryDim)
        RoPE.apply(cache.k.data, cos: cos, sin: sin, tokens: n, heads: c.numKeyValueHeads, headDim: c.headDim, rotaryDim: rope.rotaryDim)
        Attention.forward(out: cache.attn.data, lse: cache.lse.data, q: cache.q.data, k: cache.k.data, v: cache.v.data, shape: attentionShape(batch))
        L.o.forward(out: cache.h1.data, input: cache.attn.data, rows: n, xa: cache.xa[.o]?.data, dropoutStep: step, scratch: scratch)
        Elementwise.add(cache.h1.data, cache.x.data, count: n * D)
        RMSNorm.forward(out: cache.xn2.data, rstd: cache.rstd2.data, input: cache.h1.data, weight: L.postAttentionNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: off)
    }

    /// MLP of rows s..<s+m: gate, up, act into the cache's (M, F) buffers; out rows (if given) = h1 + down(act).
    private func mlpForward(_ L: DecoderLayer, cache: LayerCache, rows s: Int, count m: Int, out: Tensor?) {
        let c = config, D = c.hiddenSize, F = c.intermediateSize, step = dropoutStep &+ UInt64(s) << 32
        let xn = cache.xn2.data + s * D
        L.gate.forward(out: cache.gate.data, input: xn, rows: m, xa: cache.xa[.gate]?.data, dropoutStep: step, scratch: scratch)
        L.up.forward(out: cache.up.data, input: xn, rows: m, xa: cache.xa[.up]?.data, dropoutStep: step, scratch: scratch)
        c.activation.forward(out: cache.act.data, gate: cache.gate.data, up: cache.up.data, count: m * F)
        if let out {
            L.down.forward(out: out.data + s * D, input: cache.act.data, rows: m, xa: cache.xa[.down]?.data, dropoutStep: step, scratch: scratch)
            Elementwise.add(out.data + s * D, cache.h1.data + s * D, count: m * D)
        } else {
            L.down.loraInput(xa: cache.xa[.down]?.data, input: cache.act.data, rows: m, dropoutStep: step, scratch: scratch)
        }
    }

    /// Forward of one layer: cache.x -> out (N, D). The MLP runs in tiles of the cache's M rows.
    private func layerForward(_ L: DecoderLayer, cache: LayerCache, out: Tensor, batch: TokenBatch, cos: [Float], sin: [Float]) {
        attentionForward(L, cache: cache, batch: batch, cos: cos, sin: sin)
        var s = 0
        while s < cache.n {
            let m = min(cache.m, cache.n - s)
            mlpForward(L, cache: cache, rows: s, count: m, out: out)
            s += m
        }
    }

    /// Backward of one layer: dOut (N, D) -> dIn (N, D), LoRA grads accumulated. With `tiledMLP` the MLP
    /// intermediates of each tile are recomputed here (the cache holds one tile); otherwise the cache holds them all.
    private func layerBackward(_ L: DecoderLayer, cache: LayerCache, dOut: Tensor, dIn: Tensor, g: LayerGrads, batch: TokenBatch,
                               cos: [Float], sin: [Float], tiledMLP: Bool) {
        let c = config, n = cache.n, D = c.hiddenSize, F = c.intermediateSize
        let off = c.architecture.normOffset, step = dropoutStep
        var s = 0
        while s < n {
            let m = min(cache.m, n - s)
            if tiledMLP { mlpForward(L, cache: cache, rows: s, count: m, out: nil) }
            let dstep = step &+ UInt64(s) << 32
            L.down.backward(dInput: g.dAct.data, dOut: dOut.data + s * D, input: cache.act.data, xa: cache.xa[.down]?.data, rows: m, accumulate: false, dropoutStep: dstep, scratch: scratch)
            c.activation.backward(dGate: g.dGate.data, dUp: g.dUp.data, dOut: g.dAct.data, gate: cache.gate.data, up: cache.up.data, count: m * F)
            L.gate.backward(dInput: g.dxn.data + s * D, dOut: g.dGate.data, input: cache.xn2.data + s * D, xa: cache.xa[.gate]?.data, rows: m, accumulate: false, dropoutStep: dstep, scratch: scratch)
            L.up.backward(dInput: g.dxn.data + s * D, dOut: g.dUp.data, input: cache.xn2.data + s * D, xa: cache.xa[.up]?.data, rows: m, accumulate: true, dropoutStep: dstep, scratch: scratch)
            s += m
        }
        g.dh1.copy(from: dOut)
        RMSNorm.backward(dInput: g.dh1.data, dWeight: L.postAttentionNormGrad?.data, dOut: g.dxn.data, input: cache.h1.data, weight: L.postAttentionNorm.data,
                         rstd: cache.rstd2.data, rows: n, dim: D, offset: off, accumulate: true)
        L.o.backward(dInput: g.dAttn.data, dOut: g.dh1.data, input: cache.attn.data, xa: cache.xa[.o]?.data, rows: n, accumulate: false, dropoutStep: step, scratch: scratch)
        Attention.backward(dq: g.dq.data, dk: g.dk.data, dv: g.dv.data, dOut: g.dAttn.data, q: cache.q.data, k: cache.k.data, v: cache.v.data,
                           out: cache.attn.data, lse: cache.lse.data, shape: attentionShape(batch))
        let rotary = c.rope.rotaryDim
        RoPE.apply(g.dq.data, cos: cos, sin: sin, tokens: n, heads: c.numAttentionHeads, headDim: c.headDim, rotaryDim: rotary, inverse: true)
        RoPE.apply(g.dk.data, cos: cos, sin: sin, tokens: n, heads: c.numKeyValueHeads, headDim: c.headDim, rotaryDim: rotary, inverse: true)
        L.q.backward(dInput: g.dxn.data, dOut: g.dq.data, input: cache.xn1.data, xa: cache.xa[.q]?.data, rows: n, accumulate: false, dropoutStep: step, scratch: scratch)
        L.k.backward(dInput: g.dxn.data, dOut: g.dk.data, input: cache.xn1.data, xa: cache.xa[.k]?.data, rows: n, accumulate: true, dropoutStep: step, scratch: scratch)
        L.v.backward(dInput: g.dxn.data, dOut: g.dv.data, input: cache.xn1.data, xa: cache.xa[.v]?.data, rows: n, accumulate: true, dropoutStep: step, scratch: scratch)
        dIn.copy(from: g.dh1)
        RMSNorm.backward(dInput: dIn.data, dWeight: L.inputNormGrad?.data, dOut: g.dxn.data, input: cache.x.data, weight: L.inputNorm.data,
                         rstd: cache.rstd1.data, rows: n, dim: D, offset: off, accumulate: true)
    }

    private func embed(_ batch: TokenBatch, into x: Tensor) {
        let c = config
        let scale: Float = c.architecture.scalesEmbeddings ? Float(c.hiddenSize).squareRoot() : 1
        batch.ids.withUnsafeBufferPointer { ids in
            Embedding.forward(out: x.data, ids: ids.baseAddress!, table: model.embedTokens.data, tokens: batch.batch * batch.tokens, dim: c.hiddenSize, scale: scale)
        }
    }

    /// Checks ids against the vocabulary (ids come from users' files).
    public func validate(_ batch: TokenBatch) throws {
        let v = config.vocabSize
        if let bad = batch.ids.first(where: { $0 < 0 || Int($0) >= v }) {
            throw ModelError.badData(file: "batch", line: 0, detail: "token id \(bad) is outside the vocabulary (0..<\(v))")
        }
        if let bad = batch.targets.first(where: { $0 != -100 && ($0 < 0 || Int($0) >= v) }) {
            throw ModelError.badData(file: "batch", line: 0, detail: "label \(bad) is outside the vocabulary (0..<\(v)) and is not -100")
        }
    }

    /// Runs forward and backward on one micro-batch: returns the summed token loss and accumulates
    /// LoRA gradients of (sum loss) * gradScale. `gradScale` is 1 / (valid targets in the whole step).
    @discardableResult
    public func forwardBackward(_ batch: TokenBatch, gradScale: Float, policy: CheckpointPolicy) throws -> Double {
        try validate(batch)
        lastBatch = batch
        dropoutStep &+= 1
        let c = config, n = batch.batch * batch.tokens, D = c.hiddenSize, L = model.layers.count
        let policy = policy.effective(rows: n, hidden: D, minimumOffloadBytes: minimumOffloadBytes)
        let lay = layout(batch: batch.batch, tokens: batch.tokens, policy: policy)
        let arena = arenaFor(lay)
        let (cos, sin) = c.rope.tables(positions: batch.positions)
        // Hidden states between layers: none/recompute keep every layer input; offload keeps a ring of two.
        let ring = policy == .offload
        let hidden: [Tensor] = ring ? [arena.tensor("hidden.0", [n, D]), arena.tensor("hidden.1", [n, D])]
                                    : (0...L).map { arena.tensor("hidden.\($0)", [n, D]) }
        func h(_ l: Int) -> Tensor { ring ? hidden[l % 2] : hidden[l] }
        var tier: OffloadTier? = nil
        if ring {
            if offloadTier == nil { offloadTier = try DiskTier(directory: offloadDirectory) }
            tier = offloadTier
        }
        embed(batch, into: h(0))
        let caches: [LayerCache] = policy == .none
            ? (0..<L).map { LayerCache(arena: arena, prefix: "cache.\($0).", layout: lay, x: hidden[$0]) }
            : (L > 0 ? [LayerCache(arena: arena, prefix: "cache.", layout: lay, x: h(0))] : [])
        for (l, layer) in model.layers.enumerated() {
            let cache = policy == .none ? caches[l] : caches[0]
            cache.x = h(l)
            // Offload: this layer's input goes to the tier while the layer computes; the last layer's stays.
            if let tier, l < L - 1 { tier.store(slot: l, from: h(l).data, count: n * D) }
            // The output buffer is layer l-1's input: its copy must be done.
            if let tier, l >= 1, l - 1 < L - 1 { try tier.wait(slot: l - 1) }
            layerForward(layer, cache: cache, out: h(l + 1), batch: batch, cos: cos, sin: sin)
        }
        let last = h(L)
        let xf = arena.tensor("final.xf", [n, D]), rstdf = arena.tensor("final.rstd", [n]), dxf = arena.tensor("final.dxf", [n, D])
        RMSNorm.forward(out: xf.data, rstd: rstdf.data, input: last.data, weight: model.finalNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: c.architecture.normOffset)
        let lossSum = CrossEntropy.forwardBackward(hidden: xf.data, weight: model.lmHead.data, targets: batch.targets, tokens: n, dim: D,
                                                   vocab: c.vocabSize, gradScale: gradScale, dHidden: dxf.data, dWeight: model.lmHeadGrad?.data)
        var dOut = arena.tensor("grad.dOut", [n, D]), dIn = arena.tensor("grad.dIn", [n, D])
        RMSNorm.backward(dInput: dOut.data, dWeight: model.finalNormGrad?.data, dOut: dxf.data, input: last.data, weight: model.finalNorm.data, rstd: rstdf.data,
                         rows: n, dim: D, offset: c.architecture.normOffset)
        let grads = LayerGrads(arena: arena, layout: lay)
        // Offload: the last layer's input is still in its buffer; the one before it is fetched into the
        // buffer the final output used, and each layer's backward overlaps the fetch of the layer below.
        if let tier, L >= 2 { tier.load(slot: L - 2, into: h(L - 2).data, count: n * D) }
        for l in stride(from: L - 1, through: 0, by: -1) {
            let layer = model.layers[l]
            let cache: LayerCache
            if policy == .none { cache = caches[l] } else {
                cache = caches[0]
                if let tier, l < L - 1 {
                    try tier.wait(slot: l)
                    if l >= 1 { tier.load(slot: l - 1, into: h(l - 1).data, count: n * D) }
                }
                cache.x = h(l)
                attentionForward(layer, cache: cache, batch: batch, cos: cos, sin: sin)
            }
            layerBackward(layer, cache: cache, dOut: dOut, dIn: dIn, g: grads, batch: batch, cos: cos, sin: sin, tiledMLP: policy != .none)
            swap(&dOut, &dIn)
        }
        if let g = model.embedGrad {
            // dOut is the gradient of the embedding output; rows of repeated ids add up.
            let scale: Float = c.architecture.scalesEmbeddings ? Float(c.hiddenSize).squareRoot() : 1
            batch.ids.withUnsafeBufferPointer { ids in
                Embedding.backward(dTable: g.data, dOut: dOut.data, ids: ids.baseAddress!, tokens: n, dim: D, scale: scale)
            }
        }
        return lossSum
    }

    /// Final hidden states (N, D) after the final norm, for logits and generation.
    public func hiddenStates(_ batch: TokenBatch) throws -> Tensor {
        try validate(batch)
        // Inference: LoRA dropout is off (as PyTorch's eval mode).
        let pairs = model.loraPairs.map(\.pair)
        let rates = pairs.map(\.dropout)
        for p in pairs { p.dropout = 0 }
        defer { for (p, r) in zip(pairs, rates) { p.dropout = r } }
        let c = config, n = batch.batch * batch.tokens, D = c.hiddenSize
        let (cos, sin) = c.rope.tables(positions: batch.positions)
        var x = Tensor([n, D]), y = Tensor([n, D])
        embed(batch, into: x)
        if !model.layers.isEmpty {
            let cache = LayerCache.standalone(c, ranks: ranks(), batch: batch.batch, tokens: batch.tokens, x: x)
            for layer in model.layers {
                cache.x = x
                layerForward(layer, cache: cache, out: y, batch: batch, cos: cos, sin: sin)
                swap(&x, &y)
            }
        }
        let out = Tensor([n, D]), rstd = Tensor([n])
        RMSNorm.forward(out: out.data, rstd: rstd.data, input: x.data, weight: model.finalNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: c.architecture.normOffset)
        return out
    }

    /// Logits (N, V) for every position of the batch.
    public func logits(_ batch: TokenBatch) throws -> Tensor {
        let h = try hiddenStates(batch)
        let n = batch.batch * batch.tokens
        let out = Tensor([n, config.vocabSize])
        CrossEntropy.logits(out: out.data, hidden: h.data, weight: model.lmHead.data, tokens: n, dim: config.hiddenSize, vocab: config.vocabSize)
        return out
    }

    /// Mean loss over valid targets (no gradients).
    public func loss(_ batch: TokenBatch) throws -> (sum: Double, count: Int) {
        let h = try hiddenStates(batch)
        let n = batch.batch * batch.tokens
        let s = CrossEntropy.forwardBackward(hidden: h.data, weight: model.lmHead.data, targets: batch.targets, tokens: n, dim: config.hiddenSize,
                                             vocab: config.vocabSize, gradScale: 0, dHidden: nil)
        return (s, batch.validTargets)
    }
}

extension Engine {
    /// Negative log-likelihood of each position's target (N); 0 where the target is -100.
    public func tokenLosses(_ batch: TokenBatch) throws -> [Double] {
        let h = try hiddenStates(batch)
        let n = batch.batch * batch.tokens
        var out = [Double](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { buf in
            _ = CrossEntropy.forwardBackward(hidden: h.data, weight: model.lmHead.data, targets: batch.targets, tokens: n, dim: config.hiddenSize,
                                             vocab: config.vocabSize, gradScale: 0, dHidden: nil, perToken: buf.baseAddress)
        }
        return out
    }
}
