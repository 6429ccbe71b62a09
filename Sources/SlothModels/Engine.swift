import Foundation
import SlothCore

// B = batch, T = tokens per row, N = B*T, D = hidden, H = heads, K = kv heads, E = head dim,
// F = intermediate, V = vocab, R = LoRA rank.

/// How a training step keeps what backward needs.
public enum CheckpointPolicy: String, Sendable, CaseIterable {
    /// Keep every layer's activations.
    case none
    /// Keep each layer's input only; recompute the layer's forward in backward.
    case recompute
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

/// What one layer's forward keeps for its backward.
final class LayerCache {
    let n: Int
    var x: Tensor                  // (N, D) input (owned by the hidden-state list)
    let rstd1: Tensor, xn1: Tensor // (N), (N, D)
    let q: Tensor, k: Tensor, v: Tensor  // (N, H*E), (N, K*E), (N, K*E), after RoPE
    let attn: Tensor, lse: Tensor  // (N, H*E), (B*H*T)
    let h1: Tensor                 // (N, D) residual after attention
    let rstd2: Tensor, xn2: Tensor
    let gate: Tensor, up: Tensor, act: Tensor  // (N, F)
    var xa: [LinearModule: Tensor] = [:]       // (N, R) LoRA intermediates

    init(_ c: ModelConfig, n: Int, batch: Int, tokens: Int, x: Tensor, ranks: [LinearModule: Int]) {
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        self.n = n; self.x = x
        rstd1 = Tensor([n]); xn1 = Tensor([n, D])
        q = Tensor([n, HE]); k = Tensor([n, KE]); v = Tensor([n, KE])
        attn = Tensor([n, HE]); lse = Tensor([batch * c.numAttentionHeads * tokens])
        h1 = Tensor([n, D]); rstd2 = Tensor([n]); xn2 = Tensor([n, D])
        gate = Tensor([n, F]); up = Tensor([n, F]); act = Tensor([n, F])
        for (m, r) in ranks { xa[m] = Tensor([n, r]) }
    }
}

/// Runs forward and backward passes of a `LanguageModel`: training steps (loss + LoRA gradients) and logits.
public final class Engine: @unchecked Sendable {
    public let model: LanguageModel
    let scratch = Scratch()
    /// Dropout masks change every micro-step; this counts them.
    var dropoutStep: UInt64 = 0

    public init(model: LanguageModel) { self.model = model }

    var config: ModelConfig { model.config }

    private func ranks(_ layer: DecoderLayer) -> [LinearModule: Int] {
        var r: [LinearModule: Int] = [:]
        for m in LinearModule.allCases { if let p = layer.linear(m).lora { r[m] = p.rank } }
        return r
    }

    private func attentionShape(_ b: TokenBatch) -> Attention.Shape {
        Attention.Shape(batch: b.batch, tokens: b.tokens, heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads,
                        headDim: config.headDim, window: config.slidingWindow, scale: config.attentionScale, segments: b.segments)
    }

    /// Forward of one layer: cache.x -> out (N, D), filling the cache.
    private func layerForward(_ L: DecoderLayer, cache: LayerCache, out: Tensor, batch: TokenBatch, cos: [Float], sin: [Float]) {
        let c = config, n = cache.n, D = c.hiddenSize, F = c.intermediateSize
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
        L.gate.forward(out: cache.gate.data, input: cache.xn2.data, rows: n, xa: cache.xa[.gate]?.data, dropoutStep: step, scratch: scratch)
        L.up.forward(out: cache.up.data, input: cache.xn2.data, rows: n, xa: cache.xa[.up]?.data, dropoutStep: step, scratch: scratch)
        c.activation.forward(out: cache.act.data, gate: cache.gate.data, up: cache.up.data, count: n * F)
        L.down.forward(out: out.data, input: cache.act.data, rows: n, xa: cache.xa[.down]?.data, dropoutStep: step, scratch: scratch)
        Elementwise.add(out.data, cache.h1.data, count: n * D)
    }

    /// Gradient buffers for one layer's backward, reused across layers.
    final class Grads {
        let dh1: Tensor, dAttn: Tensor, dq: Tensor, dk: Tensor, dv: Tensor, dAct: Tensor, dGate: Tensor, dUp: Tensor, dxn: Tensor
        init(_ c: ModelConfig, n: Int) {
            let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
            dh1 = Tensor([n, D]); dAttn = Tensor([n, HE]); dq = Tensor([n, HE]); dk = Tensor([n, KE]); dv = Tensor([n, KE])
            dAct = Tensor([n, F]); dGate = Tensor([n, F]); dUp = Tensor([n, F]); dxn = Tensor([n, max(D, 1)])
        }
    }

    /// Backward of one layer: dOut (N, D) -> dIn (N, D) (may alias dOut's storage? no: distinct), LoRA grads accumulated.
    private func layerBackward(_ L: DecoderLayer, cache: LayerCache, dOut: Tensor, dIn: Tensor, g: Grads, batch: TokenBatch, cos: [Float], sin: [Float]) {
        let c = config, n = cache.n, D = c.hiddenSize, F = c.intermediateSize
        let off = c.architecture.normOffset, step = dropoutStep
        // MLP
        L.down.backward(dInput: g.dAct.data, dOut: dOut.data, input: cache.act.data, xa: cache.xa[.down]?.data, rows: n, accumulate: false, dropoutStep: step, scratch: scratch)
        c.activation.backward(dGate: g.dGate.data, dUp: g.dUp.data, dOut: g.dAct.data, gate: cache.gate.data, up: cache.up.data, count: n * F)
        L.gate.backward(dInput: g.dxn.data, dOut: g.dGate.data, input: cache.xn2.data, xa: cache.xa[.gate]?.data, rows: n, accumulate: false, dropoutStep: step, scratch: scratch)
        L.up.backward(dInput: g.dxn.data, dOut: g.dUp.data, input: cache.xn2.data, xa: cache.xa[.up]?.data, rows: n, accumulate: true, dropoutStep: step, scratch: scratch)
        g.dh1.copy(from: dOut)
        RMSNorm.backward(dInput: g.dh1.data, dWeight: nil, dOut: g.dxn.data, input: cache.h1.data, weight: L.postAttentionNorm.data,
                         rstd: cache.rstd2.data, rows: n, dim: D, offset: off, accumulate: true)
        // Attention
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
        RMSNorm.backward(dInput: dIn.data, dWeight: nil, dOut: g.dxn.data, input: cache.x.data, weight: L.inputNorm.data,
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
        dropoutStep &+= 1
        let c = config, n = batch.batch * batch.tokens, D = c.hiddenSize
        let (cos, sin) = c.rope.tables(positions: batch.positions)
        // Hidden states between layers: hidden[l] is layer l's input, hidden[L] the last output.
        var hidden: [Tensor] = (0...model.layers.count).map { _ in Tensor([n, D]) }
        embed(batch, into: hidden[0])
        var caches: [LayerCache] = []
        let shared = policy == .recompute && !model.layers.isEmpty
            ? LayerCache(c, n: n, batch: batch.batch, tokens: batch.tokens, x: hidden[0], ranks: ranks(model.layers[0])) : nil
        for (l, layer) in model.layers.enumerated() {
            let cache: LayerCache
            if let shared { shared.x = hidden[l]; cache = shared } else {
                cache = LayerCache(c, n: n, batch: batch.batch, tokens: batch.tokens, x: hidden[l], ranks: ranks(layer))
                caches.append(cache)
            }
            layerForward(layer, cache: cache, out: hidden[l + 1], batch: batch, cos: cos, sin: sin)
        }
        // Final norm + chunked cross-entropy
        let last = hidden[model.layers.count]
        let xf = Tensor([n, D]), rstdf = Tensor([n])
        RMSNorm.forward(out: xf.data, rstd: rstdf.data, input: last.data, weight: model.finalNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: c.architecture.normOffset)
        let dxf = Tensor([n, D])
        let lossSum = CrossEntropy.forwardBackward(hidden: xf.data, weight: model.lmHead.data, targets: batch.targets, tokens: n, dim: D,
                                                   vocab: c.vocabSize, gradScale: gradScale, dHidden: dxf.data)
        var dOut = Tensor([n, D]), dIn = Tensor([n, D])
        RMSNorm.backward(dInput: dOut.data, dWeight: nil, dOut: dxf.data, input: last.data, weight: model.finalNorm.data, rstd: rstdf.data,
                         rows: n, dim: D, offset: c.architecture.normOffset)
        let grads = Grads(c, n: n)
        for l in stride(from: model.layers.count - 1, through: 0, by: -1) {
            let layer = model.layers[l]
            let cache: LayerCache
            if let shared {
                shared.x = hidden[l]
                layerForward(layer, cache: shared, out: hidden[l + 1], batch: batch, cos: cos, sin: sin)
                cache = shared
            } else { cache = caches[l] }
            layerBackward(layer, cache: cache, dOut: dOut, dIn: dIn, g: grads, batch: batch, cos: cos, sin: sin)
            swap(&dOut, &dIn)
        }
        hidden.removeAll()
        return lossSum
    }

    /// Final hidden states (N, D) after the final norm, for logits and generation.
    public func hiddenStates(_ batch: TokenBatch) throws -> Tensor {
        try validate(batch)
        let c = config, n = batch.batch * batch.tokens, D = c.hiddenSize
        let (cos, sin) = c.rope.tables(positions: batch.positions)
        var x = Tensor([n, D]), y = Tensor([n, D])
        embed(batch, into: x)
        if !model.layers.isEmpty {
            let cache = LayerCache(c, n: n, batch: batch.batch, tokens: batch.tokens, x: x, ranks: ranks(model.layers[0]))
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
