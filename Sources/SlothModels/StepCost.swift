import Foundation
import SlothCore

// N = tokens in the batch, I/O = a linear's in/out features, R = LoRA rank, D = hidden, V = vocab.

/// The arithmetic a training step must do, and the GEMM shapes that carry most of it: the "limit" of
/// docs/performance.md is `requiredFLOPs / BLAS.measuredRate(gemms)`.
///
/// Required work is the forward, the backward through the frozen weights (dX of every linear whose input
/// gradient reaches a trained parameter), the LoRA products (forward 2NR(I+O), backward dB, dY B, dA, dX:
/// 4NR(I+O)), the lm_head and its dX (valid rows only), the weight gradients that are trained (--full,
/// modules_to_save), and causal attention over the (query, key) pairs the mask allows: scores and P V forward,
/// dP, dS K, dS^T Q, P^T dO backward. Recomputation (checkpointing, flash-style backward) is not required work.
public struct StepCost: Sendable {
    public var requiredFLOPs: Double { parts.reduce(0) { $0 + $1.flops } }
    public var parts: [(name: String, flops: Double)] = []
    /// The step's big products (shape, how many times a step runs it).
    public var gemms: [(shape: BLAS.Shape, count: Int)] = []
}

extension Engine {
    /// The required work of one forward + backward of `batch` (see StepCost).
    public func stepCost(_ batch: TokenBatch) -> StepCost {
        let c = config, n = Double(batch.batch * batch.tokens), N = batch.batch * batch.tokens
        var cost = StepCost()
        var frozen = 0.0, lora = 0.0, weightGrads = 0.0
        var shapes: [BLAS.Shape: Int] = [:]
        func addShape(_ s: BLAS.Shape) { shapes[s, default: 0] += 1 }
        let trainsEmbeddings = model.embedGrad != nil
        for (l, layer) in model.layers.enumerated() {
            let linears: [(LinearLayer, Bool)] = [(layer.q, true), (layer.k, true), (layer.v, true), (layer.o, false),
                                                  (layer.gate, false), (layer.up, false), (layer.down, false)]
            for (lin, feedsLayerInput) in linears {
                let io = Double(lin.inFeatures) * Double(lin.outFeatures)
                frozen += 2 * n * io
                addShape(BLAS.Shape(transA: false, transB: true, m: N, n: lin.outFeatures, k: lin.inFeatures))
                // dX of layer 0's q/k/v only reaches the embeddings.
                if !(l == 0 && feedsLayerInput && !trainsEmbeddings) {
                    frozen += 2 * n * io
                    addShape(BLAS.Shape(transA: false, transB: false, m: N, n: lin.inFeatures, k: lin.outFeatures))
                }
                if let r = lin.lora?.rank { lora += 6 * n * Double(r) * Double(lin.inFeatures + lin.outFeatures) }
                if lin.gradWeight != nil { weightGrads += 2 * n * io }
            }
        }
        let valid = Double(batch.validTargets), hv = Double(c.hiddenSize) * Double(c.vocabSize)
        let head = 2 * valid * hv * 2 + (model.lmHeadGrad != nil ? 2 * valid * hv : 0)
        addShape(BLAS.Shape(transA: false, transB: true, m: batch.validTargets, n: c.vocabSize, k: c.hiddenSize))
        addShape(BLAS.Shape(transA: false, transB: false, m: batch.validTargets, n: c.hiddenSize, k: c.vocabSize))
        let shape = Attention.Shape(batch: batch.batch, tokens: batch.tokens, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads,
                                    headDim: c.headDim, window: c.slidingWindow, scale: 1, segments: batch.segments)
        let attention = 6 * Attention.requiredFLOPsPerProduct(shape) * Double(model.layers.count)
        cost.parts = [("frozen linears (forward + dX)", frozen), ("LoRA", lora), ("lm_head (forward + dX)", head),
                      ("causal attention (2 forward + 4 backward products)", attention)]
        if weightGrads > 0 { cost.parts.append(("weight gradients (full fine-tune)", weightGrads)) }
        cost.gemms = shapes.map { ($0.key, $0.value) }.sorted { $0.shape.key < $1.shape.key }
        return cost
    }
}
