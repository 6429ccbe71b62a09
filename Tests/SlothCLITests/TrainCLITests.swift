import Testing
import Foundation

/// End-to-end tests of `sloth train` through the built binary.
enum TrainFixtures {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")
    static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

@Test(arguments: ["llama", "gemma"])
func trainCommandReproducesPyTorchCurve(name: String) throws {
    let dir = TrainFixtures.models.appendingPathComponent(name)
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let (status, _, err) = try CLI.run([
        "train", "--model", dir.path, "--adapter", dir.appendingPathComponent("adapter").path,
        "--data", dir.appendingPathComponent("data.jsonl").path, "--output", tmp.appendingPathComponent("out").path,
        "--learning-rate", "0.002", "--weight-decay", "0.01", "--max-grad-norm", "1.0", "--lr-scheduler", "linear",
        "--warmup-steps", "2", "--max-steps", "10", "--batch-size", "2", "--no-shuffle",
        "--metrics", tmp.appendingPathComponent("metrics.jsonl").path, "--quiet"])
    #expect(status == 0, "\(err)")
    let lines = try String(contentsOf: tmp.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
    let losses = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("golden.json"))) as! [String: Any]
    let expected = (golden["train"] as! [String: Any])["losses"] as! [Double]
    #expect(losses.count == 10)
    for key in ["step", "loss", "learning_rate", "grad_norm", "tokens_per_second", "peak_memory_bytes"] {
        #expect(losses.first?[key] != nil, "metrics row lacks \(key)")
    }
    let d = zip(losses.map { $0["loss"] as! Double }, expected).map { abs($0 - $1) / $1 }.max() ?? 1
    print("sloth train \(name): loss curve vs PyTorch max rel diff \(d)")
    #expect(d < 1e-4)
    // The written adapter is PEFT's layout.
    let out = tmp.appendingPathComponent("out")
    #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter_model.safetensors").path))
    let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as! [String: Any]
    #expect(cfg["peft_type"] as? String == "LORA")
    #expect(cfg["r"] as? Int == 4)
}

/// Copies a fixture model into a temporary folder so a test can break one file.
func brokenCopy(_ name: String, _ breakIt: (URL) throws -> Void) throws -> URL {
    let tmp = TrainFixtures.tempDir().appendingPathComponent(name)
    try FileManager.default.copyItem(at: TrainFixtures.models.appendingPathComponent(name), to: tmp)
    try breakIt(tmp)
    return tmp
}

func trainError(model: URL, data: URL? = nil) throws -> (Int32, String) {
    let d = data ?? TrainFixtures.models.appendingPathComponent("mistral/data.jsonl")
    let (status, _, err) = try CLI.run(["train", "--model", model.path, "--data", d.path,
                                        "--output", TrainFixtures.tempDir().path, "--max-steps", "1", "--quiet"])
    return (status, err)
}

@Test func truncatedSafetensorsIsAClearError() throws {
    let m = try brokenCopy("mistral") { dir in
        let f = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: f)
        try data.prefix(data.count / 2).write(to: f)
    }
    let (status, err) = try trainError(model: m)
    print(err)
    #expect(status == 1)
    #expect(err.contains("model.safetensors"))
}

@Test func lyingHeaderIsAClearError() throws {
    let m = try brokenCopy("mistral") { dir in
        let f = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: f)
        // Claim a header length far beyond the file.
        data.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        try data.write(to: f)
    }
    let (status, err) = try trainError(model: m)
    print(err)
    #expect(status == 1)
    #expect(err.contains("model.safetensors"))
}

@Test func wrongDtypeIsAClearError() throws {
    // Rewrite one tensor's dtype in the header to I32 (same byte size): the loader must refuse it, naming the tensor.
    let m = try brokenCopy("mistral") { dir in
        let f = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: f)
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: data[8..<(8 + n)], as: UTF8.self)
        let key = "\"model.norm.weight\":{\"dtype\":\"F32\""
        #expect(header.contains(key))
        header = header.replacingOccurrences(of: key, with: "\"model.norm.weight\":{\"dtype\":\"I32\"")
        data.replaceSubrange(8..<(8 + n), with: Data(header.utf8))
        try data.write(to: f)
    }
    let (status, err) = try trainError(model: m)
    print(err)
    #expect(status == 1)
    #expect(err.contains("model.norm.weight"))
}

@Test func badConfigJSONIsAClearError() throws {
    let m = try brokenCopy("mistral") { dir in
        try Data("{\"model_type\": \"mistral\", \"hidden_size\": ".utf8).write(to: dir.appendingPathComponent("config.json"))
    }
    let (status, err) = try trainError(model: m)
    print(err)
    #expect(status == 1)
    #expect(err.contains("config.json"))
}

@Test func missingTensorIsAClearError() throws {
    let m = try brokenCopy("mistral") { dir in
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        cfg["num_hidden_layers"] = 3
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    }
    let (status, err) = try trainError(model: m)
    print(err)
    #expect(status == 1)
    #expect(err.contains("model.layers.2."))
}

@Test(arguments: [
    ("{\"input_ids\": [1, 2, 3]}\nnot json\n", "row 2"),
    ("{\"input_ids\": [1, 2, \"x\"]}\n", "input_ids'[2]"),
    ("{\"input_ids\": [1, 2, 3], \"labels\": [1, 2]}\n", "must align"),
    ("{\"input_ids\": [1, 2, 99999]}\n", "outside the model's vocabulary"),
    ("{\"input_ids\": [1, 2, 3], \"labels\": [-100, -100, -100]}\n", "nothing to learn"),
    ("{\"prompt\": \"hi\"}\n", "expected"),
    ("", "no rows"),
])
func badDataRowsAreClearErrors(content: String, expected: String) throws {
    let tmp = TrainFixtures.tempDir().appendingPathComponent("data.jsonl")
    try Data(content.utf8).write(to: tmp)
    let (status, err) = try trainError(model: TrainFixtures.models.appendingPathComponent("mistral"), data: tmp)
    print(err)
    #expect(status == 1)
    #expect(err.contains(expected))
    #expect(err.contains("data.jsonl"))
}

@Test func evalLossEqualsTheGoldenTrainingLoss() throws {
    let dir = TrainFixtures.models.appendingPathComponent("qwen2")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    // Rows 0 and 1: the batch the golden loss was computed on.
    let lines = try String(contentsOf: dir.appendingPathComponent("data.jsonl"), encoding: .utf8).split(separator: "\n").prefix(2)
    let data = tmp.appendingPathComponent("two.jsonl")
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data)
    let (status, out, err) = try CLI.run(["eval", "--model", dir.path, "--adapter", dir.appendingPathComponent("adapter").path,
                                          "--data", data.path, "--per-token", tmp.appendingPathComponent("nll.jsonl").path])
    #expect(status == 0, "\(err)")
    let loss = Double(out.split(separator: " ")[1])!
    let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("golden.json"))) as! [String: Any]
    let expected = ((golden["train"] as! [String: Any])["losses"] as! [Double])[0]  // step 1 = rows 0,1 before any update
    print("sloth eval: \(loss) vs PyTorch loss \(expected)")
    #expect(abs(loss - expected) / expected < 1e-5)
    let nll = try String(contentsOf: tmp.appendingPathComponent("nll.jsonl"), encoding: .utf8).split(separator: "\n")
    #expect(nll.count == 2)
}

/// The demo model with an adapter trained on the demo data (shared by the generation CLI tests).
enum DemoAdapter {
    static let repo = TrainFixtures.models.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let model = repo.appendingPathComponent("models/demo")
    static let adapter: URL? = {
        let out = TrainFixtures.tempDir().appendingPathComponent("demo-adapter")
        let r = try? CLI.run(["train", "--model", model.path, "--data", repo.appendingPathComponent("data/demo.jsonl").path,
                              "--output", out.path, "--max-steps", "30", "--batch-size", "8", "--learning-rate", "2e-3", "--quiet"])
        return r?.0 == 0 ? out : nil
    }()
}

@Test func generateChatAndStopStrings() throws {
    let adapter = try #require(DemoAdapter.adapter)
    let m = DemoAdapter.model.path
    var (status, out, err) = try CLI.run(["generate", "--model", m, "--adapter", adapter.path, "--chat", "--prompt", "Tell me about Anna and her white fish."])
    #expect(status == 0, "\(err)")
    #expect(out == " Anna has a white fish. The fish likes to swim.\n")
    (status, out, err) = try CLI.run(["generate", "--model", m, "--prompt", "Tom has", "--stop", "cat.", "--max-new-tokens", "30"])
    #expect(status == 0, "\(err)")
    #expect(out == " a green \n")
    let prompts = TrainFixtures.tempDir().appendingPathComponent("p.jsonl")
    try Data("{\"prompt\": \"Tom has\"}\n{\"prompt\": \"Snow is\"}\n".utf8).write(to: prompts)
    (status, out, err) = try CLI.run(["generate", "--model", m, "--prompts", prompts.path, "--stop", "cat.", "--max-new-tokens", "30"])
    #expect(status == 0, "\(err)")
    let rows = out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    #expect(rows.count == 2)
    #expect(rows[0]["text"] as? String == " a green ")
    #expect(rows[1]["text"] as? String == " white. Bees make honey. Cows give milk.")
}

@Test func chatKeepsHistoryAndResets() throws {
    let adapter = try #require(DemoAdapter.adapter)
    let input = "Tell me about Anna and her white fish.\n/reset\nTell me about Max and his red dog.\n/exit\n"
    let (status, out, err) = try CLI.run(["chat", "--model", DemoAdapter.model.path, "--adapter", adapter.path], stdin: Data(input.utf8))
    #expect(status == 0, "\(err)")
    #expect(out == " Anna has a white fish. The fish likes to swim.\n(history cleared)\n Max has a red dog. The dog likes to run.\n")
}

/// `sloth train --profile`: the families' seconds add up to at most the step, the required FLOPs are the parts' sum,
/// the limit is required FLOPs over the harmonic mean of the GEMM rates sampled between steps (one after each step),
/// and step / limit is the step over that limit.
@Test func profileWritesTheStepAgainstItsLimit() throws {
    let dir = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let path = tmp.appendingPathComponent("profile.json")
    let (status, _, err) = try CLI.run([
        "train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path, "--output", tmp.appendingPathComponent("out").path,
        "--max-steps", "3", "--batch-size", "2", "--no-report", "--profile", path.path])
    #expect(status == 0, "\(err)")
    #expect(err.contains("step / limit"), "\(err)")
    let p = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as! [String: Any]
    let step = p["step_seconds"] as! Double, limit = p["limit_seconds"] as! Double, required = p["required_flops"] as! Double
    let samples = p["gemm_rate_samples"] as! [Double], rate = p["gemm_rate_flops_per_second"] as! Double
    #expect(p["steps_profiled"] as? Int == 2)
    #expect(samples.count == 3 && samples.allSatisfy { $0 > 0 })
    let harmonic = Double(samples.count) / samples.reduce(0) { $0 + 1 / $1 }
    #expect(abs(rate - harmonic) <= 1e-9 * harmonic)
    let parts = (p["required_parts"] as! [[String: Any]]).map { $0["flops"] as! Double }
    #expect(abs(parts.reduce(0, +) - required) <= 1e-9 * required && required > 0)
    #expect(abs(limit - required / rate) <= 1e-9 * limit)
    #expect(abs((p["step_over_limit"] as! Double) - step / limit) <= 1e-9 * step / limit)
    let families = (p["families"] as! [[String: Any]]).map { $0["seconds_per_step"] as! Double }
    #expect(families.reduce(0, +) <= step * 1.0001 && families.contains { $0 > 0 })
}
