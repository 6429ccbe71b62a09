import Testing
import Foundation
import Sloth

/// Runs a pinned Python reference script from scripts/golden; returns (status, output).
func runReferenceScript(_ relativePath: String, _ args: [String]) throws -> (Int32, String) {
    let root = TrainFixtures.models.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", root.appendingPathComponent(relativePath).path] + args
    var env = ProcessInfo.processInfo.environment
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    p.environment = env
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// A merged checkpoint loads in transformers and gives the logits of base + adapter in PEFT (fp32: to 1e-4;
/// bf16: equal to PEFT's merged weights rounded to bf16, within one ulp tensor by tensor), for every model type.
@Test(.enabled(if: pythonReferenceAvailable), arguments: ["llama", "mistral", "qwen2", "gemma"], ["keep", "bf16"])
func mergedCheckpointMatchesPEFT(name: String, dtype: String) throws {
    let dir = TrainFixtures.models.appendingPathComponent(name)
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = tmp.appendingPathComponent("merged")
    let (status, _, err) = try CLI.run(["export", "merged", "--model", dir.path, "--adapter", dir.appendingPathComponent("adapter").path,
                                        "--output", out.path, "--quiet"] + (dtype == "keep" ? [] : ["--dtype", dtype]))
    try #require(status == 0, "\(err)")
    let (code, text) = try runReferenceScript("scripts/golden/export/check_merged.py", [
        "--model", dir.path, "--adapter", dir.appendingPathComponent("adapter").path, "--merged", out.path,
        "--data", dir.appendingPathComponent("data.jsonl").path])
    print("\(name) \(dtype): " + text.split(separator: "\n").filter { !$0.contains("Loading weights") }.joined(separator: "\n  "))
    #expect(code == 0)
}

/// Too little free disk: the export fails before writing anything.
@Test func mergeRefusesWithoutDiskSpace() throws {
    let dir = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = tmp.appendingPathComponent("merged")
    var o = MergedExport.Options()
    o.freeBytesOverride = 10_000
    #expect {
        try MergedExport.run(model: dir, adapter: dir.appendingPathComponent("adapter"), output: out, options: o)
    } throws: { e in
        print("error text: \(e)")
        return "\(e)".contains("free disk") && "\(e)".contains("nothing was written")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).isEmpty)
}

/// A failure half way (the second source shard is cut short) leaves nothing under the output name and no
/// temporary files behind.
@Test func interruptedMergeLeavesNoOutput() throws {
    let src = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let model = tmp.appendingPathComponent("model")
    try FileManager.default.copyItem(at: src, to: model)
    let shard = model.appendingPathComponent("model-00002-of-00002.safetensors")
    let bytes = try Data(contentsOf: shard)
    try bytes.prefix(bytes.count - 100).write(to: shard)
    let out = tmp.appendingPathComponent("merged")
    let (status, _, err) = try CLI.run(["export", "merged", "--model", model.path, "--adapter", src.appendingPathComponent("adapter").path,
                                        "--output", out.path, "--quiet"])
    print("error text: \(err)")
    #expect(status == 1 && err.contains("model-00002-of-00002.safetensors"))
    #expect(Set(try FileManager.default.contentsOfDirectory(atPath: tmp.path)) == ["model"])
}

/// An adapter for another model is refused up front, naming the tensor.
@Test func mergeRefusesAdapterOfAnotherModel() throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let gemma = TrainFixtures.models.appendingPathComponent("gemma")
    let (status, _, err) = try CLI.run(["export", "merged", "--model", gemma.path,
                                        "--adapter", TrainFixtures.models.appendingPathComponent("llama/adapter").path,
                                        "--output", tmp.appendingPathComponent("m").path, "--quiet"])
    print("error text: \(err)")
    #expect(status == 1 && err.contains("adapter_model.safetensors") && err.contains("another model"))
    #expect(!FileManager.default.fileExists(atPath: tmp.appendingPathComponent("m").path))
}
