import Testing
import Foundation
import Sloth

/// True when Python has llama-cpp-python and gguf (installed by scripts/interop/setup.sh, `make test-interop`).
let llamaCppAvailable = pythonReferenceAvailable && pythonCanImport("llama_cpp, gguf", skipping: "llama.cpp interop", hint: "run make test-interop")

enum GGUFCases {
    /// (model, quant): every type on the demo model (D 128, so ffn_down rows are whole K-quant blocks) and the
    /// tiny models of each architecture (D 64: their K-quant rows fall back as llama.cpp does).
    static let export: [String] = ["demo/f32", "demo/f16", "demo/bf16", "demo/q8_0", "demo/q4_0", "demo/q4_k_m", "demo/q5_k_m", "demo/q6_k"]
        + ["llama", "mistral", "qwen2", "gemma"].flatMap { m in ["f32", "f16", "q8_0", "q4_k_m"].map { "\(m)/\($0)" } }

    /// A model folder llama.cpp can read: the fixture (+ its adapter) with the 256-byte tokenizer, or the demo model.
    static func model(_ name: String, in tmp: URL) throws -> (dir: URL, adapter: URL?, data: URL) {
        let root = TrainFixtures.models.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        if name == "demo" {
            let data = tmp.appendingPathComponent("demo-rows.jsonl")
            let tok = try Tokenizer.load(from: root.appendingPathComponent("models/demo"))
            let rows = ["User: what is the capital of France?\nAssistant: Paris.", "The quick brown fox jumps over the lazy dog 12345!"]
            try rows.map { "{\"input_ids\": \(tok.encode($0))}\n" }.joined().write(to: data, atomically: true, encoding: .utf8)
            return (root.appendingPathComponent("models/demo"), nil, data)
        }
        let dir = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: TrainFixtures.models.appendingPathComponent(name), to: dir)
        try FileManager.default.copyItem(at: TrainFixtures.models.appendingPathComponent("byte-tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        return (dir, dir.appendingPathComponent("adapter"), dir.appendingPathComponent("data.jsonl"))
    }
}

/// Each GGUF opens with the gguf package (every key and tensor), loads in llama.cpp, and gives logits close to
/// transformers + PEFT: f32 within 1e-3 relative; f16 within 1e-3 (bf16 1e-2) of the reference with its weights
/// rounded the same way; every 16-bit and quantized file holds exactly the tensor types and bytes llama.cpp's own quantizer
/// writes from Sloth's f32 export (so its error is llama.cpp's own).
@Test(.enabled(if: llamaCppAvailable), arguments: GGUFCases.export)
func ggufExportLoadsInLlamaCpp(_ spec: String) throws {
    let parts = spec.split(separator: "/").map(String.init), name = parts[0], quant = parts[1]
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let (dir, adapter, data) = try GGUFCases.model(name, in: tmp)
    func export(_ q: String) throws -> URL {
        let out = tmp.appendingPathComponent("\(name)-\(q).gguf")
        let (status, _, err) = try CLI.run(["export", "gguf", "--model", dir.path, "--output", out.path, "--quant", q, "--quiet"]
                                           + (adapter.map { ["--adapter", $0.path] } ?? []))
        try #require(status == 0, "\(err)")
        return out
    }
    let file = try export(quant)
    var args = ["--gguf", file.path, "--model", dir.path, "--data", data.path] + (adapter.map { ["--adapter", $0.path] } ?? [])
    if name == "mistral" { args += ["--positions", "6"] }   // llama.cpp's llama architecture has no sliding window
    switch quant {
    case "f32": args += ["--tolerance", "1e-3"]
    // llama.cpp multiplies 16-bit weights with activations rounded to the same type: bf16 leaves ~3e-3.
    case "f16", "bf16": args += ["--f32", try export("f32").path, "--ftype", quant, "--round-weights", quant, "--tolerance", quant == "f16" ? "1e-3" : "1e-2"]
    default: args += ["--f32", try export("f32").path, "--ftype", quant, "--tolerance", "0.3"]
    }
    let (code, text) = try runReferenceScript("scripts/golden/export/check_gguf.py", args)
    let report = text.split(separator: "\n").filter { $0.hasPrefix("gguf:") || $0.hasPrefix("logits:") || $0.hasPrefix("llama.cpp quantizer") || $0.hasPrefix("rounding") || $0.contains("differs") || $0.hasPrefix("OK") || $0.hasPrefix("FAIL") || $0.contains("rror") }
    print("\(spec): " + report.joined(separator: "\n  "))
    #expect(code == 0)
}

/// The adapter as a llama.cpp LoRA GGUF, applied by llama.cpp to the base model's f32 GGUF, gives PEFT's logits.
@Test(.enabled(if: llamaCppAvailable), arguments: ["llama", "mistral", "qwen2", "gemma"])
func ggufLoRAAppliedByLlamaCpp(name: String) throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let (dir, adapter, data) = try GGUFCases.model(name, in: tmp)
    let base = tmp.appendingPathComponent("base.gguf"), lora = tmp.appendingPathComponent("lora.gguf")
    var (status, _, err) = try CLI.run(["export", "gguf", "--model", dir.path, "--output", base.path, "--quant", "f32", "--quiet"])
    try #require(status == 0, "\(err)")
    (status, _, err) = try CLI.run(["export", "gguf-lora", "--adapter", adapter!.path, "--model", dir.path, "--output", lora.path, "--quiet"])
    try #require(status == 0, "\(err)")
    let (code, text) = try runReferenceScript("scripts/golden/export/check_gguf.py", [
        "--gguf", base.path, "--lora", lora.path, "--model", dir.path, "--adapter", adapter!.path, "--data", data.path,
        "--tolerance", "1e-3"] + (name == "mistral" ? ["--positions", "6"] : []))
    print("\(name) LoRA GGUF: " + text.split(separator: "\n").filter { $0.hasPrefix("logits:") || $0.hasPrefix("OK") || $0.hasPrefix("FAIL") || $0.contains("rror") }.joined(separator: " "))
    #expect(code == 0)
}

/// Under `make test-interop` (SLOTH_REQUIRE_INTEROP=1) the llama.cpp checks must run, not skip.
@Test func ggufExportLoadsInLlamaCppToolsPresent() {
    if ProcessInfo.processInfo.environment["SLOTH_REQUIRE_INTEROP"] == "1" {
        #expect(llamaCppAvailable, "make test-interop needs torch/transformers/peft and llama_cpp/gguf in python3")
    }
}
