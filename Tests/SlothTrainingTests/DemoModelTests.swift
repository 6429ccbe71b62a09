import Testing
import Foundation
@testable import SlothModels
import SlothTraining
import SlothTokenizers
import SlothFormats

/// The shipped demo model (bf16 weights, BPE tokenizer) against transformers
/// (scripts/golden/models/make_demo_golden.py): logits, a padded-batch loss, and greedy text generation.
enum Demo {
    static let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let model = repo.appendingPathComponent("models/demo")
    static let golden = Fixtures.root.appendingPathComponent("demo-golden")
}

@Test func demoModelLogitsAndLossMatchTransformers() throws {
    let lm = try LanguageModel.load(folder: Demo.model)
    let rows = try DatasetLoader.load(Demo.repo.appendingPathComponent("data/demo.jsonl"))
    let g = try SafeTensorsFile(url: Demo.golden.appendingPathComponent("golden.safetensors"))
    let engine = Engine(model: lm)
    let logits = try engine.logits(TokenBatch(rows: [(rows[0].ids, rows[0].labels)]))
    let d = relDiff(logits.array, try g.floats("logits"))
    let batch = TokenBatch(rows: rows.prefix(8).map { ($0.ids, $0.labels) })
    let (sum, n) = try engine.loss(batch)
    let expected = try g.floats("loss")[0]
    print("demo model: logits max rel diff \(d); loss \(sum / Double(n)) vs \(expected)")
    #expect(d < 1e-4)
    #expect(abs(Float(sum / Double(n)) - expected) / expected < 1e-5)
}

@Test func demoModelGreedyTextMatchesTransformers() throws {
    let lm = try LanguageModel.load(folder: Demo.model)
    let tok = try Tokenizer.load(from: Demo.model)
    let g = try JSONSerialization.jsonObject(with: Data(contentsOf: Demo.golden.appendingPathComponent("golden.json"))) as! [String: Any]
    let cases = g["greedy"] as! [[String: Any]]
    var p = SamplingParameters()
    p.maxNewTokens = 32
    let gen = Generator(model: lm, eosIds: lm.config.eosTokenIds)
    let prompts = try cases.map { c -> [Int32] in
        let ids = tok.encode(c["prompt"] as! String).map(Int32.init)
        #expect(ids.map(Int.init) == c["prompt_ids"] as! [Int])
        return ids
    }
    let outs = try gen.generate(prompts: prompts, parameters: p)
    for (c, out) in zip(cases, outs) {
        let text = tok.decode(out.map(Int.init), skipSpecialTokens: false)
        print("demo greedy: \(c["prompt"]!) -> \(text)")
        #expect(out.map(Int.init) == c["generated_ids"] as! [Int])
        #expect(text == c["generated_text"] as! String)
    }
}
