import Testing
import Foundation
import Sloth

/// A GGUF written by `sloth export gguf` loads back as a model: at f32 its logits equal the merged model's (base +
/// adapter in Sloth) and `sloth eval` on it gives the loss of the folder + adapter; quantized files load too.
@Test(arguments: ["llama", "mistral", "qwen2", "gemma"])
func ggufLoadsBackAsTheMergedModel(name: String) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let dir = tmp.appendingPathComponent(name)
    try FileManager.default.copyItem(at: TrainFixtures.models.appendingPathComponent(name), to: dir)
    try FileManager.default.copyItem(at: TrainFixtures.models.appendingPathComponent("byte-tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
    let adapter = dir.appendingPathComponent("adapter"), data = dir.appendingPathComponent("data.jsonl")
    let reference = try LanguageModel.load(folder: dir)
    try PEFTAdapter.load(adapter, into: reference)
    let rows = try DatasetLoader.load(data)
    let batch = TokenBatch(rows: [(rows[0].ids, rows[0].labels)])
    let want = try Engine(model: reference).logits(batch).array
    for quant in ["f32", "q8_0"] {
        let file = tmp.appendingPathComponent("\(name)-\(quant).gguf")
        let (status, _, err) = try CLI.run(["export", "gguf", "--model", dir.path, "--adapter", adapter.path, "--output", file.path, "--quant", quant, "--quiet"])
        try #require(status == 0, "\(err)")
        let got = try Engine(model: try LanguageModel.load(gguf: file)).logits(batch).array
        let scale = max(1, want.map { abs($0) }.max()!)
        let d = zip(got, want).map { abs($0 - $1) }.max()! / scale
        print("\(name) \(quant) GGUF loaded back: max relative logit diff vs folder + adapter \(d)")
        #expect(d <= (quant == "f32" ? 1e-5 : 0.1))
    }
    let f32 = tmp.appendingPathComponent("\(name)-f32.gguf").path
    let (s1, out1, e1) = try CLI.run(["eval", "--model", f32, "--data", data.path])
    let (s2, out2, e2) = try CLI.run(["eval", "--model", dir.path, "--adapter", adapter.path, "--data", data.path])
    try #require(s1 == 0 && s2 == 0, "\(e1)\(e2)")
    let l1 = Double(out1.split(separator: " ")[1])!, l2 = Double(out2.split(separator: " ")[1])!
    print("\(name): sloth eval on the GGUF \(l1), on the folder + adapter \(l2)")
    #expect(abs(l1 - l2) / l2 < 1e-5)
}

/// The tokenizer a GGUF carries (gpt2 vocabulary, GPT-2 pre-tokenizer) encodes and decodes as the folder's
/// tokenizer.json it came from, and `sloth generate --model F.gguf --prompt` produces the folder's greedy text.
@Test func ggufTokenizerAndGenerationMatchTheFolder() throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let file = tmp.appendingPathComponent("demo.gguf")
    let (status, _, err) = try CLI.run(["export", "gguf", "--model", DemoAdapter.model.path, "--output", file.path, "--quant", "f32", "--quiet"])
    try #require(status == 0, "\(err)")
    let folderTok = try Tokenizer.load(from: DemoAdapter.model)
    let ggufTok = try #require(try TextEncoding.ggufTokenizer(file))
    let texts = ["User: Tell me about Max.\nAssistant:", "  two  spaces, digits 12345 and ünïcödé!", "</s><s>special <pad> tokens"]
    for t in texts {
        #expect(ggufTok.encode(t) == folderTok.encode(t), "\(t)")
        #expect(ggufTok.decode(folderTok.encode(t)) == folderTok.decode(folderTok.encode(t)))
    }
    #expect(ggufTok.chatTemplate == folderTok.chatTemplate && ggufTok.eosTokenId == folderTok.eosTokenId)
    let prompt = "User: Tell me about Max.\nAssistant:"
    let a = try CLI.run(["generate", "--model", DemoAdapter.model.path, "--prompt", prompt, "--max-new-tokens", "12"])
    let b = try CLI.run(["generate", "--model", file.path, "--prompt", prompt, "--max-new-tokens", "12"])
    print("folder: \(a.1.debugDescription)\ngguf:   \(b.1.debugDescription)")
    #expect(a.0 == 0 && b.0 == 0 && a.1 == b.1, "\(a.2)\(b.2)")
}
