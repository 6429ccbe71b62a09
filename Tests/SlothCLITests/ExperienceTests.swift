import Testing
import Foundation
import Sloth

/// Metrics rows without the fields that depend on the clock.
func timelessMetrics(_ url: URL) throws -> [[String: String]] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
        let d = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        return d.filter { !["elapsed_seconds", "tokens_per_second", "peak_memory_bytes"].contains($0.key) }.mapValues { "\($0)" }
    }
}

/// A run configured by YAML and the same run configured by flags log identical metrics; flags override the file.
@Test func yamlConfigEqualsFlags() throws {
    let dir = TrainFixtures.models.appendingPathComponent("llama")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let yaml = tmp.appendingPathComponent("run.yaml")
    try """
    model: \(dir.path)
    data: \(dir.appendingPathComponent("data.jsonl").path)
    lora_rank: 4
    lora-alpha: 8
    target_modules: [q_proj, v_proj, down_proj]
    learning_rate: 0.003
    lr_scheduler: cosine
    warmup_steps: 1
    max_steps: 6
    batch_size: 2
    no_shuffle: true
    use_rslora: false
    seed: 7

    """.write(to: yaml, atomically: true, encoding: .utf8)
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    var r = try CLI.run(["train", "--config", yaml.path, "--output", a.path, "--max-steps", "5", "--quiet", "--no-report"])
    try #require(r.0 == 0, "\(r.2)")
    r = try CLI.run(["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path, "--output", b.path,
                     "--lora-rank", "4", "--lora-alpha", "8", "--target-modules", "q_proj,v_proj,down_proj", "--learning-rate", "0.003",
                     "--lr-scheduler", "cosine", "--warmup-steps", "1", "--max-steps", "5", "--batch-size", "2", "--no-shuffle", "--seed", "7",
                     "--quiet", "--no-report"])
    try #require(r.0 == 0, "\(r.2)")
    let ma = try timelessMetrics(a.appendingPathComponent("metrics.jsonl")), mb = try timelessMetrics(b.appendingPathComponent("metrics.jsonl"))
    print("YAML run: \(ma.count) steps, last loss \(ma.last?["loss"] ?? "-"); flags run: last loss \(mb.last?["loss"] ?? "-")")
    #expect(ma.count == 5 && ma == mb)
    #expect(try Data(contentsOf: a.appendingPathComponent("adapter_model.safetensors")) == Data(contentsOf: b.appendingPathComponent("adapter_model.safetensors")))
    // --print-config shows the resolved values: the file's, the command line's override, and defaults.
    let (s, out, err) = try CLI.run(["train", "--config", yaml.path, "--output", a.path, "--max-steps", "5", "--print-config"])
    #expect(s == 0, "\(err)")
    for line in ["max_steps: 5", "lora_rank: 4", "learning_rate: 0.003", "target_modules: \"q_proj,v_proj,down_proj\"", "adam_beta2: 0.999", "no_shuffle: true"] {
        #expect(out.contains(line + "\n"), "\(line) missing from:\n\(out)")
    }
}

/// Unknown keys are errors naming the key and the closest known one; wrong value types are explained.
@Test func yamlConfigErrors() throws {
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let yaml = tmp.appendingPathComponent("bad.yaml")
    try "learning_rat: 0.1\n".write(to: yaml, atomically: true, encoding: .utf8)
    var (s, _, err) = try CLI.run(["train", "--config", yaml.path])
    print("error text: \(err)")
    #expect(s != 0 && err.contains("unknown key 'learning_rat'") && err.contains("did you mean 'learning_rate'"))
    try "no_shuffle: 3\n".write(to: yaml, atomically: true, encoding: .utf8)
    (s, _, err) = try CLI.run(["train", "--config", yaml.path])
    #expect(s != 0 && err.contains("'no_shuffle' is a switch"))
    try "[1, 2\n".write(to: yaml, atomically: true, encoding: .utf8)
    (s, _, err) = try CLI.run(["train", "--config", yaml.path])
    print("error text: \(err)")
    #expect(s != 0 && err.contains("not valid YAML"))
    (s, _, err) = try CLI.run(["train", "--config", tmp.appendingPathComponent("missing.yaml").path])
    #expect(s != 0 && err.contains("cannot read"))
}

/// --eval-data logs eval loss and perplexity at --eval-steps and at the end; --save-total-limit keeps the newest
/// checkpoints and the best one; report.html and run.json are written, and `sloth report` rebuilds the page.
@Test func evaluationCheckpointsAndReport() throws {
    let dir = TrainFixtures.models.appendingPathComponent("mistral")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = tmp.appendingPathComponent("out")
    let data = dir.appendingPathComponent("data.jsonl").path
    let r = try CLI.run(["train", "--model", dir.path, "--data", data, "--eval-data", data, "--eval-steps", "2", "--save-steps", "2",
                         "--save-total-limit", "1", "--max-steps", "7", "--learning-rate", "0.01", "--output", out.path, "--quiet"])
    try #require(r.0 == 0, "\(r.2)")
    let rows = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    let evalSteps = rows.filter { $0["eval_loss"] != nil }.map { $0["step"] as! Int }
    #expect(evalSteps == [2, 4, 6, 7])
    let e = rows.compactMap { $0["eval_loss"] as? Double }
    let ppl = rows.compactMap { $0["eval_perplexity"] as? Double }
    #expect(zip(e, ppl).allSatisfy { abs(exp($0) - $1) < 1e-9 * $1 })
    // The eval loss is sloth eval's number on the same adapter (the final one).
    let (s, evalOut, _) = try CLI.run(["eval", "--model", dir.path, "--adapter", out.path, "--data", data])
    #expect(s == 0 && abs(Double(evalOut.split(separator: " ")[1])! - e.last!) < 1e-5)
    let run = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("run.json"))) as! [String: Any]
    let best = run["best_checkpoint"] as! String
    let kept = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("checkpoint-") }.sorted()
    print("eval at steps \(evalSteps), losses \(e); best \(best); kept \(kept)")
    #expect(kept.contains(best) && kept.contains("checkpoint-6") && kept.count <= 2)
    let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
    #expect(html.contains("<svg") && html.contains("eval") && html.contains("Memory plan") && !html.contains("<script"))
    try FileManager.default.removeItem(at: out.appendingPathComponent("report.html"))
    let (rs, _, rerr) = try CLI.run(["report", out.path])
    #expect(rs == 0 && FileManager.default.fileExists(atPath: out.appendingPathComponent("report.html").path), "\(rerr)")
}

/// --log-format json: one JSON object per step on stderr.
@Test func jsonLogFormat() throws {
    let dir = TrainFixtures.models.appendingPathComponent("qwen2")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let (s, _, err) = try CLI.run(["train", "--model", dir.path, "--data", dir.appendingPathComponent("data.jsonl").path,
                                   "--max-steps", "3", "--output", tmp.appendingPathComponent("o").path, "--log-format", "json", "--no-report"])
    #expect(s == 0)
    let objects = err.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    #expect(objects.count == err.split(separator: "\n").count)
    #expect(objects.filter { $0["step"] != nil }.count == 3)
}

/// The README's Swift API example is the file the package builds as `sloth-api-example`, and it runs.
@Test func readmeSwiftExampleCompilesAndRuns() throws {
    let repo = DemoAdapter.repo
    let readme = try String(contentsOf: repo.appendingPathComponent("README.md"), encoding: .utf8)
    let source = try String(contentsOf: repo.appendingPathComponent("Examples/APIExample/main.swift"), encoding: .utf8)
    let block = readme.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```").first
    #expect(block == source, "README's ```swift block must equal Examples/APIExample/main.swift")
    let exe = CLI.binary.deletingLastPathComponent().appendingPathComponent("sloth-api-example")
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let p = Process()
    p.executableURL = exe
    p.arguments = [repo.appendingPathComponent("models/demo").path, repo.appendingPathComponent("data/demo.jsonl").path, tmp.path]
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    print(text)
    #expect(p.terminationStatus == 0)
    #expect(text.contains("step 1 ") && text.contains("reply:") && text.contains("wrote"))
    #expect(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("model-q8_0.gguf").path))
}
