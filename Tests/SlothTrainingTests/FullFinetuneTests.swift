import Testing
import Foundation
@testable import SlothTraining
@testable import SlothModels
import SlothFormats
import SlothCore

/// Full fine-tuning (every weight trained) against PyTorch (Tests/Fixtures/models/<name>/full_finetune.safetensors,
/// scripts/golden/models/make_full_finetune.py): first-batch gradients of every parameter, a 6-step AdamW curve with
/// weight decay and clipping, and every weight after it. Gemma covers tied embeddings, (1 + w) norms and the
/// sqrt(D) embedding scale.
@Suite struct FullFinetuneTests {
    @Test(arguments: ["llama", "gemma"], [CheckpointPolicy.none, .recompute])
    func fullFinetuneMatchesPyTorch(_ name: String, _ policy: CheckpointPolicy) throws {
        let g = try SafeTensorsFile(url: Fixtures.dir(name).appendingPathComponent("full_finetune.safetensors"))
        let model = try LanguageModel.load(folder: Fixtures.dir(name))
        try model.enableFullTraining()
        let rows = try Fixtures.rows(name)
        // Gradients of the first batch.
        let first = TokenBatch(rows: [(rows[0].ids, rows[0].labels), (rows[1].ids, rows[1].labels)])
        _ = try Engine(model: model).forwardBackward(first, gradScale: 1 / Float(first.validTargets), policy: policy)
        var worstGrad: (String, Float) = ("", 0)
        for p in model.fullParameters {
            let d = relDiff(p.grad.array, try g.floats("grad." + p.name))
            if d > worstGrad.1 { worstGrad = (p.name, d) }
            p.grad.zero()
        }
        #expect(model.fullParameters.count == g.names.filter { $0.hasPrefix("final.") }.count)
        // The 6-step curve and the final weights.
        var p = TrainingParameters()
        p.learningRate = 1e-3; p.weightDecay = 0.01; p.maxSteps = 6; p.batchSize = 2; p.shuffle = false; p.scheduler = .constant
        p.maxGradNorm = 1.0; p.checkpointing = policy
        let t = try Trainer(model: model, rows: rows, params: p)
        var losses: [Float] = [], norms: [Float] = []
        try t.run { losses.append(Float($0.loss)); norms.append(Float($0.grad_norm)); return true }
        let dl = relDiff(losses, try g.floats("curve")), dn = relDiff(norms, try g.floats("grad_norm"))
        // Final weights, as a fraction of the largest move AdamW can make in 6 steps (lr per step): where a gradient
        // is near zero, Adam's m / sqrt(v) turns fp32 rounding differences into visible steps.
        var worstFinal: (String, Float) = ("", 0)
        for q in model.fullParameters {
            let want = try g.floats("final." + q.name)
            let d = zip(q.param.array, want).map { abs($0 - $1) }.max()! / Float(6 * p.learningRate)
            if d > worstFinal.1 { worstFinal = (q.name, d) }
        }
        print("\(name) full fine-tune (\(policy)) vs PyTorch: grads max rel \(worstGrad.1) (\(worstGrad.0)); 6-step losses \(dl), grad norms \(dn); final weights max |diff| = \(worstFinal.1) x (6 lr) (\(worstFinal.0))")
        #expect(worstGrad.1 < 1e-4)
        #expect(dl < 1e-5 && dn < 1e-4)
        #expect(worstFinal.1 < 0.01)
    }
}
