import Testing
import Foundation
import Sloth

enum QuantFixtures {
    static let root = TrainFixtures.models.deletingLastPathComponent().appendingPathComponent("quant")
    static let repo = TrainFixtures.models.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// True when Python has transformers + bitsandbytes (installed by scripts/setup.d/python-reference.sh).
let pythonBitsandbytesAvailable = pythonCanImport("torch, transformers, peft, bitsandbytes", skipping: "bitsandbytes interop",
                                                  hint: "run scripts/setup.d/python-reference.sh")

func metricsLosses(_ dir: URL) throws -> [Double] {
    try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
        (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["loss"] as! Double
    }
}

/// kill -9 in the middle of training, then --resume-from-checkpoint latest: the loss curve and the final adapter are
/// exactly those of the uninterrupted run; every checkpoint-N folder is complete. Once with fp32 AdamW on the fp32
/// model, once as QLoRA with 8-bit AdamW and LoRA dropout (the dropout counter and 8-bit states resume too).
@Test(arguments: [["--optim", "adamw"], ["--optim", "adamw_8bit", "--load-in-4bit", "--lora-dropout", "0.1", "--lora-rank", "32"],
                  ["--full", "--optim", "adamw_8bit", "--learning-rate", "1e-4"]])
func killAndResumeContinuesExactly(_ extra: [String]) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let args = ["train", "--model", QuantFixtures.repo.appendingPathComponent("models/demo").path,
                "--data", QuantFixtures.repo.appendingPathComponent("data/demo.jsonl").path, "--max-steps", "24", "--save-steps", "3",
                "--batch-size", "2", "--learning-rate", "1e-3", "--quiet", "--no-report"] + extra
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    let (s0, _, e0) = try CLI.run(args + ["--output", a.path])
    try #require(s0 == 0, "\(e0)")
    // The same run, killed with SIGKILL once its second checkpoint is complete.
    let p = Process()
    p.executableURL = CLI.binary
    p.arguments = args + ["--output", b.path]
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(120)
    while !FileManager.default.fileExists(atPath: b.appendingPathComponent("checkpoint-6/trainer_state.json").path) && p.isRunning && Date() < deadline {
        usleep(2_000)
    }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    let killedAt = try metricsLosses(b).count
    for n in try FileManager.default.contentsOfDirectory(atPath: b.path) where n.hasPrefix("checkpoint-") {
        for f in (extra.contains("--full") ? ["model.safetensors", "config.json"] : ["adapter_model.safetensors", "adapter_config.json"]) + ["optimizer.safetensors", "trainer_state.json"] {
            #expect(FileManager.default.fileExists(atPath: b.appendingPathComponent(n).appendingPathComponent(f).path), "\(n)/\(f)")
        }
    }
    let (s1, _, e1) = try CLI.run(args + ["--output", b.path, "--resume-from-checkpoint", "latest"])
    try #require(s1 == 0, "\(e1)")
    let la = try metricsLosses(a), lb = try metricsLosses(b)
    print("kill -9 after \(killedAt) of 24 steps (\(extra.joined(separator: " "))), resumed: \(lb.count) losses, identical: \(la == lb)")
    #expect(la.count == 24)
    #expect(la == lb)
    let result = extra.contains("--full") ? "model.safetensors" : "adapter_model.safetensors"
    #expect(try Data(contentsOf: a.appendingPathComponent(result)) == Data(contentsOf: b.appendingPathComponent(result)))
}

@Test func resumeWithOtherSettingsIsAClearError() throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let dir = TrainFixtures.models.appendingPathComponent("llama")
    let args = ["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path, "--output", tmp.path,
                "--max-steps", "4", "--save-steps", "2", "--quiet", "--no-report"]
    let (s0, _, e0) = try CLI.run(args)
    try #require(s0 == 0, "\(e0)")
    let (s1, _, e1) = try CLI.run(args + ["--resume-from-checkpoint", "latest", "--learning-rate", "1e-3", "--optim", "sgd"])
    #expect(s1 != 0)
    #expect(e1.contains("trainer_state.json") && e1.contains("--learning-rate") && e1.contains("--optim adamw"), "\(e1)")
    let (s2, _, e2) = try CLI.run(args + ["--resume-from-checkpoint", tmp.appendingPathComponent("nope").path])
    #expect(s2 != 0 && e2.contains("trainer_state.json"), "\(e2)")
}

/// `sloth export bnb-4bit` of a tiny fixture model (fp32 compute) into DIR/q.
func exportBnb4bit(_ arch: String, into tmp: URL) throws -> URL {
    let out = tmp.appendingPathComponent("q")
    let (s, _, e) = try CLI.run(["export", "bnb-4bit", "--model", TrainFixtures.models.appendingPathComponent(arch).path, "--output", out.path, "--quiet",
                                 "--compute-dtype", "float32"])
    try #require(s == 0, "\(e)")
    return out
}

/// `sloth export bnb-4bit` writes exactly what transformers + bitsandbytes save for the same model: every tensor byte
/// for byte (Tests/Fixtures/quant/<arch>-bnb-4bit); Sloth loads it back as 4-bit.
@Test(arguments: ["llama", "gemma", "qwen2"])
func bnb4bitExportEqualsTransformers(_ arch: String) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = try exportBnb4bit(arch, into: tmp)
    let mine = try SafeTensorsCollection(path: out), theirs = try SafeTensorsCollection(path: QuantFixtures.root.appendingPathComponent("\(arch)-bnb-4bit"))
    #expect(mine.names == theirs.names)
    var differing: [String] = []
    for n in theirs.names {
        let same = try Array(mine.rawBytes(n)) == Array(theirs.rawBytes(n)) && mine.entry(n)?.shape == theirs.entry(n)?.shape
        if !same { differing.append(n) }
    }
    print("\(arch) bnb-4bit export: \(theirs.names.count) tensors, \(differing.count) differ from transformers + bitsandbytes")
    #expect(differing.isEmpty, "\(differing.prefix(5))")
    let cfg = try ModelConfig.load(from: out)
    #expect(cfg.quantization == BNB4BitConfig(type: .nf4, doubleQuant: true, computeDtype: "float32", skipModules: nil))
    let lm = try LanguageModel.load(folder: out)
    #expect(lm.fourBit == QuantizeOnLoad())
}

/// transformers + bitsandbytes load Sloth's bnb-4bit export and give the per-token losses of their own 4-bit model
/// (scripts/interop/check_bnb.py; fp32 compute).
@Test(.enabled(if: pythonBitsandbytesAvailable), arguments: ["llama", "gemma", "qwen2"])
func bnb4bitExportLoadsInTransformers(_ arch: String) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = try exportBnb4bit(arch, into: tmp)
    let (code, text) = try runReferenceScript("scripts/interop/check_bnb.py", ["--model", out.path, "--losses",
                                                QuantFixtures.root.appendingPathComponent("\(arch)-bnb-4bit/losses.json").path])
    print("\(arch): " + text.split(separator: "\n").filter { !$0.contains("Loading") && !$0.contains("kernels") }.joined(separator: "\n  "))
    #expect(code == 0)
}

/// Merging into a 4-bit base: `sloth export merged` from the bnb-4bit checkpoint dequantizes W and adds s B A; the
/// result loads in transformers and gives PEFT's logits for the adapter on the 4-bit base, for a PEFT-written
/// adapter and for one Sloth trained by QLoRA on that base.
@Test(.enabled(if: pythonBitsandbytesAvailable), arguments: ["llama", "gemma"], ["fixture", "qlora"])
func mergedFromNF4BaseMatchesPEFT(_ arch: String, _ adapterKind: String) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let base = QuantFixtures.root.appendingPathComponent("\(arch)-bnb-4bit"), src = TrainFixtures.models.appendingPathComponent(arch)
    var adapter = src.appendingPathComponent("adapter")
    if adapterKind == "qlora" {
        adapter = tmp.appendingPathComponent("adapter")
        let (s, _, e) = try CLI.run(["train", "--model", base.path, "--data", src.appendingPathComponent("data.jsonl").path, "--output", adapter.path,
                                     "--max-steps", "4", "--learning-rate", "0.01", "--lora-rank", "4", "--quiet", "--no-report"])
        try #require(s == 0, "\(e)")
    }
    let out = tmp.appendingPathComponent("merged")
    let (s, _, e) = try CLI.run(["export", "merged", "--model", base.path, "--adapter", adapter.path, "--output", out.path, "--quiet"])
    try #require(s == 0, "\(e)")
    let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
    #expect(cfg["quantization_config"] == nil, "a merged 16/32-bit checkpoint has no quantization_config")
    let (code, text) = try runReferenceScript("scripts/golden/export/check_merged.py", [
        "--model", base.path, "--adapter", adapter.path, "--merged", out.path, "--data", src.appendingPathComponent("data.jsonl").path])
    print("\(arch) \(adapterKind) on NF4: " + text.split(separator: "\n").filter { !$0.contains("Loading") && !$0.contains("kernels") }.joined(separator: "\n  "))
    #expect(code == 0)
}

/// `sloth train --full` writes a whole model that transformers loads and that gives Sloth's logits there.
@Test(.enabled(if: pythonReferenceAvailable), arguments: ["llama", "gemma"])
func fullFinetuneOutputLoadsInTransformers(_ name: String) throws {
    let dir = TrainFixtures.models.appendingPathComponent(name)
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = tmp.appendingPathComponent("full")
    let (s, _, e) = try CLI.run(["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path, "--output", out.path,
                                 "--full", "--max-steps", "3", "--learning-rate", "1e-3", "--quiet", "--no-report"])
    try #require(s == 0, "\(e)")
    let model = try LanguageModel.load(folder: out)
    let rows = try DatasetLoader.load(dir.appendingPathComponent("data.jsonl"))
    let logits = try Engine(model: model).logits(TokenBatch(rows: [(rows[0].ids, rows[0].labels)]))
    let before = try Engine(model: try LanguageModel.load(folder: dir)).logits(TokenBatch(rows: [(rows[0].ids, rows[0].labels)]))
    #expect(logits.array != before.array, "the weights changed")
    let file = tmp.appendingPathComponent("logits.safetensors")
    try SafeTensorsWriter.write([WritableTensor(name: "logits", shape: [1, rows[0].ids.count, model.config.vocabSize], floats: logits.array)], to: file)
    let (code, text) = try runReferenceScript("scripts/golden/check_peft_adapter.py", ["--model", out.path, "--data", dir.appendingPathComponent("data.jsonl").path,
                                                "--expect-logits", file.path])
    print("\(name) --full output in transformers: \(text.split(separator: "\n").filter { !$0.contains("kernels") }.joined(separator: " "))")
    #expect(code == 0)
}

/// Untrained token rows the data uses (Unsloth's fix_untrained_tokens): a clear error when the embeddings are frozen;
/// with --modules-to-save they are set to the mean of the trained rows before training.
@Test func untrainedTokensAreFixedOrRefused() throws {
    let src = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let model = tmp.appendingPathComponent("model")
    try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
    let st = try SafeTensorsCollection(path: src)
    let rows = try DatasetLoader.load(src.appendingPathComponent("data.jsonl"))
    let bad = Int(rows[0].ids[5]), D = 64
    var tensors: [WritableTensor] = []
    for n in st.names {
        var v = try st.floats(n)
        if n == "model.embed_tokens.weight" { for j in 0..<D { v[bad * D + j] = 0 } }
        tensors.append(WritableTensor(name: n, shape: try st.entry(n)!.shape, floats: v))
    }
    try SafeTensorsWriter.write(tensors, to: model.appendingPathComponent("model.safetensors"))
    try FileManager.default.copyItem(at: src.appendingPathComponent("config.json"), to: model.appendingPathComponent("config.json"))
    let args = ["train", "--model", model.path, "--data", src.appendingPathComponent("data.jsonl").path, "--max-steps", "2", "--no-report"]
    let (s1, _, e1) = try CLI.run(args + ["--output", tmp.appendingPathComponent("a").path])
    #expect(s1 != 0)
    #expect(e1.contains("never trained") && e1.contains("\(bad)") && e1.contains("--modules-to-save embed_tokens,lm_head"), "\(e1)")
    let out = tmp.appendingPathComponent("b")
    let (s2, _, e2) = try CLI.run(args + ["--output", out.path, "--modules-to-save", "embed_tokens,lm_head", "--learning-rate", "0"])
    try #require(s2 == 0, "\(e2)")
    #expect(e2.contains("untrained embeddings") && e2.contains("\(bad)"), "\(e2)")
    // With lr 0 the saved embed_tokens row is exactly the fix: the mean of the other rows.
    let saved = try SafeTensorsFile(url: out.appendingPathComponent("adapter_model.safetensors")).floats("base_model.model.model.embed_tokens.weight")
    let orig = try st.floats("model.embed_tokens.weight")
    let V = orig.count / D
    for j in [0, 17, 63] {
        let mean = (0..<V).filter { $0 != bad }.reduce(0.0) { $0 + Double(orig[$1 * D + j]) } / Double(V - 1)
        #expect(abs(Double(saved[bad * D + j]) - mean) < 1e-6)
    }
}

/// --add-tokens: the tokenizer gets the new tokens (next ids), embed_tokens and lm_head grow with rows at the mean of
/// the trained rows, the adapter and its tokenizer.json carry them; Sloth loads the adapter onto the base (growing it),
/// PEFT on the resized base gives Sloth's logits, and the merged model (vocab_size and tokenizer updated) loads in
/// transformers with the same logits.
@Test func addTokensGrowTheVocabulary() throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let demo = QuantFixtures.repo.appendingPathComponent("models/demo")
    let data = tmp.appendingPathComponent("data.jsonl")
    try (0..<8).map { "{\"prompt\": \"<|think|> Tell me about \($0).\", \"completion\": \" It is \($0). <|done|>\"}" }.joined(separator: "\n")
        .write(to: data, atomically: true, encoding: .utf8)
    let out = tmp.appendingPathComponent("a")
    let (s, _, e) = try CLI.run(["train", "--model", demo.path, "--data", data.path, "--output", out.path, "--max-steps", "2", "--learning-rate", "0",
                                 "--add-tokens", "<|think|>,<|done|>", "--add-special-tokens", "--modules-to-save", "embed_tokens,lm_head", "--quiet", "--no-report"])
    try #require(s == 0, "\(e)")
    let tok = try Tokenizer.load(from: out.appendingPathComponent("tokenizer.json"))
    #expect(tok.tokenToId("<|think|>") == 512 && tok.tokenToId("<|done|>") == 513 && tok.vocabSize == 514)
    let st = try SafeTensorsFile(url: out.appendingPathComponent("adapter_model.safetensors"))
    let embed = try st.floats("base_model.model.model.embed_tokens.weight")
    #expect(st.entry("base_model.model.model.embed_tokens.weight")?.shape == [514, 128])
    // lr 0: the new rows are still the mean of the base's rows.
    let base = try LanguageModel.load(folder: demo)
    for j in [0, 64, 127] {
        let mean = (0..<512).reduce(0.0) { $0 + Double(base.embedTokens[$1 * 128 + j]) } / 512
        #expect(abs(Double(embed[512 * 128 + j]) - mean) < 1e-6 && abs(Double(embed[513 * 128 + j]) - mean) < 1e-6)
    }
    // Missing --modules-to-save: refused.
    let (s2, _, e2) = try CLI.run(["train", "--model", demo.path, "--data", data.path, "--output", tmp.appendingPathComponent("b").path, "--max-steps", "1",
                                   "--add-tokens", "<|think|>", "--quiet", "--no-report"])
    #expect(s2 != 0 && e2.contains("--modules-to-save embed_tokens,lm_head"), "\(e2)")
    try PEFTAdapter.load(out, into: base)
    #expect(base.config.vocabSize == 514)
    guard pythonReferenceAvailable else { return }
    let ids = tok.encode("<|think|> Tell me about 3. It is 3. <|done|>").map(Int32.init)
    let logits = try Engine(model: base).logits(TokenBatch(rows: [(ids, ids)]))
    let row = tmp.appendingPathComponent("row.jsonl"), lf = tmp.appendingPathComponent("logits.safetensors")
    try "{\"input_ids\": [\(ids.map(String.init).joined(separator: ", "))]}\n".write(to: row, atomically: true, encoding: .utf8)
    try SafeTensorsWriter.write([WritableTensor(name: "logits", shape: [1, ids.count, 514], floats: logits.array)], to: lf)
    let (c1, t1) = try runReferenceScript("scripts/golden/check_peft_adapter.py", ["--model", demo.path, "--adapter", out.path, "--resize-vocab", "514",
                                            "--data", row.path, "--expect-logits", lf.path])
    print("added tokens, PEFT on the resized base: \(t1.split(separator: "\n").filter { $0.contains("logit") || $0.contains("OK") || $0.contains("FAIL") }.joined(separator: " "))")
    #expect(c1 == 0)
    let merged = tmp.appendingPathComponent("merged")
    let (s3, _, e3) = try CLI.run(["export", "merged", "--model", demo.path, "--adapter", out.path, "--output", merged.path, "--dtype", "f32", "--quiet"])
    try #require(s3 == 0, "\(e3)")
    #expect(try ModelConfig.load(from: merged).vocabSize == 514)
    #expect(try Tokenizer.load(from: merged).tokenToId("<|done|>") == 513)
    let (c2, t2) = try runReferenceScript("scripts/golden/check_peft_adapter.py", ["--model", merged.path, "--data", row.path, "--expect-logits", lf.path])
    print("added tokens, merged model in transformers: \(t2.split(separator: "\n").filter { !$0.contains("kernels") }.joined(separator: " "))")
    #expect(c2 == 0)
}
