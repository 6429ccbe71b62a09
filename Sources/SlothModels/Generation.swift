import Foundation
import SlothCore

// B = sequences, D = hidden, H = heads, K = kv heads, E = head dim, F = intermediate, V = vocab.

/// How the next token is chosen (HF `generate` semantics and order: repetition penalty, then
/// temperature, top-k, top-p, min-p). temperature 0 = greedy.
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Double = 0
    public var topK: Int = 0
    public var topP: Double = 1
    public var minP: Double = 0
    public var repetitionPenalty: Double = 1
    public var seed: UInt64 = 0
    public var maxNewTokens: Int = 128
    public var ignoreEOS = false
    public init() {}
}

/// One sequence's state: its ids and per-layer key/value caches (positions 0..<length).
final class SequenceState {
    var ids: [Int32]
    var length = 0               // tokens already in the cache
    var k: [Tensor], v: [Tensor] // per layer (capacity, K*E)
    var capacity: Int
    var rng: SplitMix64
    var finished = false
    var generated: [Int32] = []

    init(prompt: [Int32], layers: Int, kvWidth: Int, capacity: Int, seed: UInt64) {
        ids = prompt; self.capacity = capacity
        k = (0..<layers).map { _ in Tensor([capacity, kvWidth]) }
        v = (0..<layers).map { _ in Tensor([capacity, kvWidth]) }
        rng = SplitMix64(seed: seed)
    }

    func grow(to n: Int, layers: Int, kvWidth: Int) {
        guard n > capacity else { return }
        let cap = max(n, capacity * 2)
        for l in 0..<layers {
            let nk = Tensor([cap, kvWidth]), nv = Tensor([cap, kvWidth])
            nk.data.update(from: k[l].data, count: length * kvWidth); nv.data.update(from: v[l].data, count: length * kvWidth)
            k[l] = nk; v[l] = nv
        }
        capacity = cap
    }
}

/// Generation with a key/value cache: prefill, then one token per step for every unfinished sequence.
/// Sequences of different lengths are batched without padding (each keeps its own cache and positions),
/// so every sequence's output equals generating it alone.
public final class Generator {
    public let model: LanguageModel
    public var eosIds: Set<Int32>
    let scratch = Scratch()

    public init(model: LanguageModel, eosIds: [Int]) {
        self.model = model
        self.eosIds = Set(eosIds.map(Int32.init))
    }

    var config: ModelConfig { model.config }

    /// Runs new tokens of several sequences through the model, appending to their caches;
    /// returns the logits (B, V) of each sequence's last new token.
    func step(_ seqs: [SequenceState], newTokens: [[Int32]]) -> Tensor {
        let c = config, D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        let counts = newTokens.map(\.count)
        let n = counts.reduce(0, +)
        var offsets = [0]; for cnt in counts { offsets.append(offsets.last! + cnt) }
        var positions: [Int32] = []
        for (s, seq) in seqs.enumerated() {
            seq.grow(to: seq.length + counts[s], layers: model.layers.count, kvWidth: KE)
            for i in 0..<counts[s] { positions.append(Int32(seq.length + i)) }
        }
        let ids = newTokens.flatMap { $0 }
        let (cos, sin) = c.rope.tables(positions: positions)
        var x = Tensor([n, D])
        let xn = Tensor([n, D]), rstd = Tensor([n]), q = Tensor([n, HE]), k = Tensor([n, KE]), v = Tensor([n, KE])
        let attn = Tensor([n, HE]), h = Tensor([n, D]), gate = Tensor([n, F]), up = Tensor([n, F]), act = Tensor([n, F])
        var y = Tensor([n, D])
        let scale: Float = c.architecture.scalesEmbeddings ? Float(D).squareRoot() : 1
        ids.withUnsafeBufferPointer { Embedding.forward(out: x.data, ids: $0.baseAddress!, table: model.embedTokens.data, tokens: n, dim: D, scale: scale) }
        let off = c.architecture.normOffset
        let xaMax = Tensor([n, 256])
        for (l, L) in model.layers.enumerated() {
            func lin(_ layer: LinearLayer, _ out: Tensor, _ input: Tensor) {
                let xa = layer.lora.map { $0.rank <= 256 ? xaMax.data : scratch.buffer(.a, n * $0.rank) }
                let saved = layer.lora?.dropout ?? 0
                layer.lora?.dropout = 0
                layer.forward(out: out.data, input: input.data, rows: n, xa: xa, scratch: scratch)
                layer.lora?.dropout = saved
            }
            RMSNorm.forward(out: xn.data, rstd: rstd.data, input: x.data, weight: L.inputNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: off)
            lin(L.q, q, xn); lin(L.k, k, xn); lin(L.v, v, xn)
            RoPE.apply(q.data, cos: cos, sin: sin, tokens: n, heads: c.numAttentionHeads, headDim: c.headDim, rotaryDim: c.rope.rotaryDim)
            RoPE.apply(k.data, cos: cos, sin: sin, tokens: n, heads: c.numKeyValueHeads, headDim: c.headDim, rotaryDim: c.rope.rotaryDim)
            for (s, seq) in seqs.enumerated() where counts[s] > 0 {
                let o = offsets[s]
                (seq.k[l].data + seq.length * KE).update(from: k.data + o * KE, count: counts[s] * KE)
                (seq.v[l].data + seq.length * KE).update(from: v.data + o * KE, count: counts[s] * KE)
                Attention.forwardCached(out: attn.data + o * HE, q: q.data + o * HE, queries: counts[s], firstPosition: seq.length,
                                        kCache: seq.k[l].data, vCache: seq.v[l].data, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads,
                                        headDim: c.headDim, window: c.slidingWindow, scale: c.attentionScale)
            }
            lin(L.o, h, attn)
            Elementwise.add(h.data, x.data, count: n * D)
            RMSNorm.forward(out: xn.data, rstd: rstd.data, input: h.data, weight: L.postAttentionNorm.data, rows: n, dim: D, eps: c.rmsNormEps, offset: off)
            lin(L.gate, gate, xn); lin(L.up, up, xn)
            c.activation.forward(out: act.data, gate: gate.data, up: up.data, count: n * F)
            lin(L.down, y, act)
            Elementwise.add(y.data, h.data, count: n * D)
            swap(&x, &y)
        }
        for (s, seq) in seqs.enumerated() { seq.length += counts[s] }
        // Final norm and logits for each sequence's last new token.
        let lastRows = Tensor([seqs.count, D]), normed = Tensor([seqs.count, D]), r2 = Tensor([seqs.count])
        for s in seqs.indices { (lastRows.data + s * D).update(from: x.data + (offsets[s + 1] - 1) * D, count: D) }
        RMSNorm.forward(out: normed.data, rstd: r2.data, input: lastRows.data, weight: model.finalNorm.data, rows: seqs.count, dim: D, eps: c.rmsNormEps, offset: off)
        let logits = Tensor([seqs.count, c.vocabSize])
        CrossEntropy.logits(out: logits.data, hidden: normed.data, weight: model.lmHead.data, tokens: seqs.count, dim: D, vocab: c.vocabSize)
        return logits
    }

    /// Generates for each prompt; `onToken(sequence, token)` streams tokens as they are chosen and
    /// returns false to stop that sequence (stop strings).
    public func generate(prompts: [[Int32]], parameters p: SamplingParameters,
                         onToken: (Int, Int32) -> Bool = { _, _ in true }) throws -> [[Int32]] {
        let v = config.vocabSize
        for (i, pr) in prompts.enumerated() {
            guard !pr.isEmpty else { throw ModelError.badData(file: "prompt", line: i + 1, detail: "the prompt is empty") }
            if let bad = pr.first(where: { $0 < 0 || Int($0) >= v }) {
                throw ModelError.badData(file: "prompt", line: i + 1, detail: "token id \(bad) is outside the vocabulary (0..<\(v))")
            }
        }
        let KE = config.numKeyValueHeads * config.headDim
        let seqs = prompts.enumerated().map { i, pr in
            SequenceState(prompt: pr, layers: model.layers.count, kvWidth: KE, capacity: pr.count + p.maxNewTokens, seed: p.seed &+ UInt64(i))
        }
        var logits = step(seqs, newTokens: prompts)
        var active = Array(seqs.indices)
        for _ in 0..<p.maxNewTokens {
            var next: [Int32] = []
            for (row, s) in active.enumerated() {
                let seq = seqs[s]
                let tok = Sampler.choose(logits: logits.data + row * v, vocab: v, history: seq.ids, parameters: p, rng: &seq.rng)
                seq.ids.append(tok); seq.generated.append(tok)
                if !onToken(s, tok) { seq.finished = true }
                if !p.ignoreEOS && eosIds.contains(tok) { seq.finished = true }
                next.append(tok)
            }
            let keep = active.indices.filter { !seqs[active[$0]].finished }
            if keep.isEmpty || seqs.allSatisfy({ $0.finished || $0.generated.count >= p.maxNewTokens }) { break }
            active = keep.map { active[$0] }
            logits = step(active.map { seqs[$0] }, newTokens: keep.map { [next[$0]] })
        }
        return seqs.map(\.generated)
    }
}

/// Chooses the next token from logits with HF's processors.
public enum Sampler {
    public static func choose(logits: UnsafeMutablePointer<Float>, vocab v: Int, history: [Int32], parameters p: SamplingParameters,
                              rng: inout SplitMix64) -> Int32 {
        if p.repetitionPenalty != 1 {
            let pen = Float(p.repetitionPenalty)
            for t in Set(history) where Int(t) < v {
                let x = logits[Int(t)]
                logits[Int(t)] = x < 0 ? x * pen : x / pen
            }
        }
        if p.temperature <= 0 {
            var best = 0
            for j in 1..<v where logits[j] > logits[best] { best = j }
            return Int32(best)
        }
        let temp = Float(p.temperature)
        var items = (0..<v).map { (id: $0, logit: logits[$0] / temp) }
        items.sort { $0.logit > $1.logit }
        if p.topK > 0 && p.topK < items.count { items.removeSubrange(p.topK...) }
        let m = items[0].logit
        var probs = items.map { Double(Foundation.exp($0.logit - m)) }
        var total = probs.reduce(0, +)
        if p.topP < 1 {
            var cum = 0.0, cut = probs.count
            for (i, pr) in probs.enumerated() {
                cum += pr / total
                if cum >= p.topP { cut = i + 1; break }
            }
            probs.removeSubrange(cut...); items.removeSubrange(cut...)
            total = probs.reduce(0, +)
        }
        if p.minP > 0 {
            let threshold = p.minP * probs[0]
            let keep = probs.indices.filter { probs[$0] >= threshold }
            probs = keep.map { probs[$0] }; items = keep.map { items[$0] }
            total = probs.reduce(0, +)
        }
        var u = Double(rng.next() >> 11) / Double(1 << 53) * total
        for (i, pr) in probs.enumerated() {
            u -= pr
            if u <= 0 { return Int32(items[i].id) }
        }
        return Int32(items[items.count - 1].id)
    }
}
