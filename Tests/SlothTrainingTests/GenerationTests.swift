import Testing
import Foundation
@testable import SlothModels
import SlothTraining

/// Greedy generation against transformers' generate (scripts/golden/models/make_generate.py).
@Test(arguments: modelNames)
func greedyGenerationMatchesTransformers(name: String) throws {
    let model = try Fixtures.model(name)
    let g = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.dir(name).appendingPathComponent("generate.json"))) as! [String: Any]
    let prompts = (g["prompts"] as! [[Int]]).map { $0.map(Int32.init) }
    let expected = (g["greedy"] as! [[Int]]).map { $0.map(Int32.init) }
    var p = SamplingParameters()
    p.maxNewTokens = g["max_new_tokens"] as! Int
    p.ignoreEOS = true
    let gen = Generator(model: model, eosIds: [])
    // Batched: all prompts (different lengths) together.
    let batched = try gen.generate(prompts: prompts, parameters: p)
    for (i, prompt) in prompts.enumerated() {
        let alone = try gen.generate(prompts: [prompt], parameters: p)[0]
        print("\(name) prompt \(i): sloth \(batched[i]) transformers \(expected[i])")
        #expect(alone == expected[i], "\(name) prompt \(i) alone")
        #expect(batched[i] == alone, "\(name) prompt \(i): batched differs from alone")
    }
}

@Test func seededSamplingIsReproducible() throws {
    let model = try Fixtures.model("llama")
    var p = SamplingParameters()
    p.temperature = 0.9; p.topK = 50; p.topP = 0.95; p.minP = 0.01; p.repetitionPenalty = 1.1; p.seed = 42; p.maxNewTokens = 16
    p.ignoreEOS = true
    let gen = Generator(model: model, eosIds: [])
    let a = try gen.generate(prompts: [[5, 6, 7]], parameters: p)
    let b = try gen.generate(prompts: [[5, 6, 7]], parameters: p)
    p.seed = 43
    let c = try gen.generate(prompts: [[5, 6, 7]], parameters: p)
    #expect(a == b)
    #expect(a != c)
}

@Test func generationStopsAtEOS() throws {
    let model = try Fixtures.model("llama")
    let g = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.dir("llama").appendingPathComponent("generate.json"))) as! [String: Any]
    let first = (g["greedy"] as! [[Int]])[0]
    var p = SamplingParameters()
    p.maxNewTokens = 12
    // Declare the 3rd greedy token an EOS: generation stops right after it.
    let out = try Generator(model: model, eosIds: [first[2]]).generate(prompts: [[5, 17, 200, 33]], parameters: p)[0]
    #expect(out == first.prefix(3).map(Int32.init))
}
