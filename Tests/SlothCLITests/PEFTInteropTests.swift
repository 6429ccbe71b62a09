import Testing
import Foundation
import Sloth

/// True when `python3` can import every module in `modules`; prints why the dependent tests skip otherwise.
func pythonCanImport(_ modules: String, skipping what: String, hint: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import \(modules)"]
    p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    if p.terminationStatus != 0 { print("skipping \(what): python3 lacks \(modules) (\(hint))") }
    return p.terminationStatus == 0
}

/// True when Python has torch + transformers + peft (installed by scripts/setup.d/python-reference.sh).
let pythonReferenceAvailable = pythonCanImport("torch, transformers, peft, safetensors", skipping: "PEFT interop",
                                               hint: "run scripts/setup.d/python-reference.sh")

/// An adapter trained and written by `sloth train` loads in PEFT and gives Sloth's logits there.
@Test(.enabled(if: pythonReferenceAvailable), arguments: ["llama", "mistral", "qwen2", "gemma"])
func slothAdapterLoadsInPEFT(name: String) throws {
    let dir = TrainFixtures.models.appendingPathComponent(name)
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let adapter = tmp.appendingPathComponent("adapter")
    let targets = name == "gemma" ? "q_proj,o_proj,up_proj" : "all-linear"
    let (status, _, err) = try CLI.run(["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path,
                                        "--output", adapter.path, "--max-steps", "3", "--learning-rate", "0.01",
                                        "--lora-rank", "3", "--lora-alpha", "5", "--target-modules", targets, "--quiet"])
    try #require(status == 0, "\(err)")
    // Sloth's logits for row 0 with the adapter it wrote.
    let model = try LanguageModel.load(folder: dir)
    try PEFTAdapter.load(adapter, into: model)
    let rows = try DatasetLoader.load(dir.appendingPathComponent("data.jsonl"))
    let logits = try Engine(model: model).logits(TokenBatch(rows: [(rows[0].ids, rows[0].labels)]))
    let out = tmp.appendingPathComponent("logits.safetensors")
    try SafeTensorsWriter.write([WritableTensor(name: "logits", shape: [1, rows[0].ids.count, model.config.vocabSize], floats: logits.array)], to: out)
    let script = TrainFixtures.models.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/golden/check_peft_adapter.py")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", script.path, "--model", dir.path, "--adapter", adapter.path,
                   "--data", dir.appendingPathComponent("data.jsonl").path, "--expect-logits", out.path]
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    print("\(name): PEFT check of Sloth's adapter: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
    #expect(p.terminationStatus == 0)
}

/// An adapter with modules_to_save (embed_tokens and lm_head trained beside LoRA by `sloth train --modules-to-save`)
/// loads in PEFT and gives Sloth's logits there; `sloth export merged` folds the saved modules in (check_merged.py).
@Test(.enabled(if: pythonReferenceAvailable))
func modulesToSaveAdapterLoadsInPEFT() throws {
    let dir = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let adapter = tmp.appendingPathComponent("adapter")
    let (status, _, err) = try CLI.run(["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path,
                                        "--output", adapter.path, "--max-steps", "3", "--learning-rate", "0.01", "--embedding-learning-rate", "0.001",
                                        "--modules-to-save", "embed_tokens,lm_head", "--quiet", "--no-report"])
    try #require(status == 0, "\(err)")
    let model = try LanguageModel.load(folder: dir)
    try PEFTAdapter.load(adapter, into: model)
    #expect(model.modulesToSave == [.embedTokens, .lmHead])
    let rows = try DatasetLoader.load(dir.appendingPathComponent("data.jsonl"))
    let logits = try Engine(model: model).logits(TokenBatch(rows: [(rows[0].ids, rows[0].labels)]))
    let out = tmp.appendingPathComponent("logits.safetensors")
    try SafeTensorsWriter.write([WritableTensor(name: "logits", shape: [1, rows[0].ids.count, model.config.vocabSize], floats: logits.array)], to: out)
    let (code, text) = try runReferenceScript("scripts/golden/check_peft_adapter.py", ["--model", dir.path, "--adapter", adapter.path,
                                                "--data", dir.appendingPathComponent("data.jsonl").path, "--expect-logits", out.path])
    print("llama modules_to_save: PEFT check of Sloth's adapter: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
    #expect(code == 0)
    let merged = tmp.appendingPathComponent("merged")
    let (s2, _, e2) = try CLI.run(["export", "merged", "--model", dir.path, "--adapter", adapter.path, "--output", merged.path, "--quiet"])
    try #require(s2 == 0, "\(e2)")
    let (c3, t3) = try runReferenceScript("scripts/golden/export/check_merged.py", ["--model", dir.path, "--adapter", adapter.path, "--merged", merged.path,
                                            "--data", dir.appendingPathComponent("data.jsonl").path])
    print("llama modules_to_save merged: " + t3.split(separator: "\n").filter { !$0.contains("Loading") }.joined(separator: "\n  "))
    #expect(c3 == 0)
}
