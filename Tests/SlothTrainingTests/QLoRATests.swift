import Testing
import Foundation
@testable import SlothModels
import SlothTraining
import SlothFormats

/// QLoRA on the shipped demo model (pretrained, so its weights look like a real model's): the 4-bit run's losses
/// track the fp32 LoRA run's on the same data and the same adapter init, within the gap quantization opens on the
/// base model itself.
@Suite struct QLoRATests {
    static func run(_ quantize: QuantizeOnLoad?, rows: [TokenizedRow], steps: Int = 30, optim: OptimizerKind = .adamw) throws -> (losses: [Double], model: LanguageModel) {
        let lm = try LanguageModel.load(folder: Demo.model, quantize: quantize)
        lm.addLoRA(LoRAConfig(rank: 8, alpha: 16), seed: 3407)
        var p = TrainingParameters()
        p.learningRate = 2e-4; p.maxSteps = steps; p.batchSize = 4; p.shuffle = false; p.scheduler = .constant
        p.optimizer = optim
        let t = try Trainer(model: lm, rows: rows, params: p)
        var losses: [Double] = []
        try t.run { losses.append($0.loss); return true }
        return (losses, lm)
    }

    @Test func qloraTracksFP32LoRA() throws {
        let rows = Array(try DatasetLoader.load(Demo.repo.appendingPathComponent("data/demo.jsonl")).prefix(64))
        let fp32Base = try LanguageModel.load(folder: Demo.model), q4Base = try LanguageModel.load(folder: Demo.model, quantize: QuantizeOnLoad())
        let gap = abs(try evaluationLoss(model: q4Base, rows: rows).loss - evaluationLoss(model: fp32Base, rows: rows).loss)
        let (f, _) = try Self.run(nil, rows: rows)
        let (q, _) = try Self.run(QuantizeOnLoad(), rows: rows)
        let diffs = zip(f, q).map { abs($0 - $1) }
        let meanDiff = diffs.reduce(0, +) / Double(diffs.count)
        let maxRel = diffs.max()! / gap
        print(String(format: "QLoRA vs fp32 LoRA (demo model, lr 2e-4, 30 steps): base-model quantization gap %.4f; per-step |diff| mean %.4f max %.4f (%.1fx the gap); first %.4f -> last %.4f (fp32) vs %.4f -> %.4f (4-bit)",
                     gap, meanDiff, diffs.max()!, maxRel, f.first!, f.last!, q.first!, q.last!))
        #expect(f.last! < f.first! - 0.3 && q.last! < q.first! - 0.3, "both runs learn")
        #expect(meanDiff <= 2 * gap, "the curves stay within the quantization gap")
        #expect(maxRel <= 4)
    }

    /// 8-bit AdamW against fp32 AdamW on the same QLoRA run: rank 32 makes most LoRA tensors large enough (>= 4096
    /// values) for 8-bit states. The gap is the states' quantization error; it must stay a small fraction of the loss.
    @Test func adamw8bitTracksAdamW() throws {
        let rows = Array(try DatasetLoader.load(Demo.repo.appendingPathComponent("data/demo.jsonl")).prefix(64))
        func run(_ o: OptimizerKind) throws -> ([Double], Optimizer) {
            let lm = try LanguageModel.load(folder: Demo.model, quantize: QuantizeOnLoad())
            lm.addLoRA(LoRAConfig(rank: 32, alpha: 32), seed: 3407)
            var p = TrainingParameters()
            p.learningRate = 2e-3; p.maxSteps = 30; p.batchSize = 4; p.shuffle = false; p.scheduler = .constant; p.optimizer = o
            let t = try Trainer(model: lm, rows: rows, params: p)
            var losses: [Double] = []
            try t.run { losses.append($0.loss); return true }
            return (losses, t.optimizer)
        }
        let (f, of) = try run(.adamw), (e, oe) = try run(.adamw8bit)
        let rel = zip(f, e).map { abs($0 - $1) / f[0] }
        let mean = rel.reduce(0, +) / Double(rel.count)
        print(String(format: "8-bit AdamW vs AdamW (QLoRA, demo model, r=32, lr 2e-3, 30 steps): state %d vs %d bytes; per-step |loss diff| / first loss: mean %.2e max %.2e; last %.4f vs %.4f",
                     oe.stateBytes, of.stateBytes, mean, rel.max()!, e.last!, f.last!))
        #expect(oe.stateBytes * 2 < of.stateBytes, "8-bit states (2 bytes per value, small tensors fp32) against 8")
        #expect(mean < 0.01 && rel.max()! < 0.03)
        #expect(e.last! < e.first! - 0.3)
    }
}
