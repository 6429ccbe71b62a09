import Testing
import Foundation
@testable import SlothTraining
@testable import SlothModels
import SlothFormats
import SlothCore

/// embed_tokens and lm_head trained beside LoRA (PEFT modules_to_save) against PEFT
/// (Tests/Fixtures/models/llama/modules_to_save.safetensors, scripts/golden/models/make_modules_to_save.py).
@Suite struct ModulesToSaveTests {
    static func golden() throws -> SafeTensorsFile {
        try SafeTensorsFile(url: Fixtures.dir("llama").appendingPathComponent("modules_to_save.safetensors"))
    }

    @Test func gradientsMatchPEFT() throws {
        let model = try Fixtures.model("llama")
        model.trainModules([.embedTokens, .lmHead])
        let rows = try Fixtures.rows("llama")
        let batch = TokenBatch(rows: [(rows[0].ids, rows[0].labels), (rows[1].ids, rows[1].labels)])
        let loss = try Engine(model: model).forwardBackward(batch, gradScale: 1 / Float(batch.validTargets), policy: .recompute) / Double(batch.validTargets)
        let g = try Self.golden()
        let dE = relDiff(model.embedGrad!.array, try g.floats("grad.embed_tokens")), dH = relDiff(model.lmHeadGrad!.array, try g.floats("grad.lm_head"))
        print("modules_to_save vs PEFT: loss \(loss) vs \(try g.floats("loss")[0]); embed_tokens grad max rel \(dE); lm_head grad \(dH)")
        #expect(abs(Float(loss) - (try g.floats("loss")[0])) < 1e-5)
        #expect(dE < 1e-5 && dH < 1e-5)
    }

    @Test func curveWithEmbeddingLearningRateMatchesPEFT() throws {
        let model = try Fixtures.model("llama")
        model.trainModules([.embedTokens, .lmHead])
        var p = TrainingParameters()
        p.learningRate = 1e-3; p.embeddingLearningRate = 1e-4; p.maxSteps = 6; p.batchSize = 2; p.shuffle = false
        p.scheduler = .constant; p.maxGradNorm = nil
        let t = try Trainer(model: model, rows: try Fixtures.rows("llama"), params: p)
        var losses: [Float] = []
        try t.run { losses.append(Float($0.loss)); return true }
        let g = try Self.golden()
        let dl = relDiff(losses, try g.floats("curve"))
        let dE = relDiff(model.embedTokens.array, try g.floats("final.embed_tokens")), dH = relDiff(model.lmHead.array, try g.floats("final.lm_head"))
        print("modules_to_save 6 AdamW steps (lr 1e-3, embedding lr 1e-4) vs PEFT: losses max rel \(dl); final embed_tokens \(dE), lm_head \(dH)")
        #expect(dl < 1e-5 && dE < 1e-5 && dH < 1e-5)
    }

    /// Saved in PEFT's layout and loaded back (modules replace the base's); the loaded model gives the trained logits.
    @Test func savedModulesRoundTrip() throws {
        let model = try Fixtures.model("llama")
        model.trainModules([.embedTokens, .lmHead])
        for i in 0..<model.embedTokens.count { model.embedTokens[i] += 0.01 }
        for i in 0..<model.lmHead.count { model.lmHead[i] -= 0.01 }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-mts-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try PEFTAdapter.save(model, to: dir, baseModel: "llama")
        let st = try SafeTensorsFile(url: dir.appendingPathComponent("adapter_model.safetensors"))
        #expect(st.entry("base_model.model.model.embed_tokens.weight") != nil && st.entry("base_model.model.lm_head.weight") != nil)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        #expect(cfg["modules_to_save"] as? [String] == ["embed_tokens", "lm_head"])
        let back = try LanguageModel.load(folder: Fixtures.dir("llama"))
        try PEFTAdapter.load(dir, into: back)
        #expect(back.modulesToSave == [.embedTokens, .lmHead])
        #expect(back.embedTokens.array == model.embedTokens.array && back.lmHead.array == model.lmHead.array)
    }
}
