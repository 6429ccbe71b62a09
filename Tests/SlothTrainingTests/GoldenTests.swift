import Testing
import Foundation
@testable import SlothTraining
@testable import SlothModels
import SlothFormats
import SlothCore

/// Fixtures made by scripts/golden/models/make_tiny.py (torch + transformers + PEFT, pinned in requirements-models.txt).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")
    static func dir(_ name: String) -> URL { root.appendingPathComponent(name) }
    static func golden(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(url: dir(name).appendingPathComponent("golden.safetensors")) }
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir(name).appendingPathComponent("golden.json"))) as! [String: Any]
    }
    static func rows(_ name: String) throws -> [TokenizedRow] {
        try DatasetLoader.load(dir(name).appendingPathComponent("data.jsonl"))
    }
    static func model(_ name: String) throws -> LanguageModel {
        let m = try LanguageModel.load(folder: dir(name))
        try PEFTAdapter.load(dir(name).appendingPathComponent("adapter"), into: m)
        return m
    }
}

/// max |a - b| / max |b|
func relDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    let scale = max(b.map { abs($0) }.max() ?? 0, 1e-12)
    return (zip(a, b).map { abs($0 - $1) }.max() ?? 0) / scale
}

let modelNames = ["llama", "mistral", "qwen2", "gemma"]

@Test(arguments: modelNames)
func logitsMatchPEFT(name: String) throws {
    let model = try Fixtures.model(name)
    let rows = try Fixtures.rows(name)
    let engine = Engine(model: model)
    let batch = TokenBatch(rows: [(rows[0].ids, rows[0].labels)])
    let logits = try engine.logits(batch)
    let g = try Fixtures.golden(name)
    let d = relDiff(logits.array, try g.floats("logits"))
    print("\(name): logits vs transformers+PEFT: max rel diff \(d)")
    #expect(d < 1e-4)
}

@Test(arguments: modelNames)
func lossAndGradientsMatchPEFT(name: String) throws {
    let model = try Fixtures.model(name)
    let rows = try Fixtures.rows(name)
    let engine = Engine(model: model)
    let batch = TokenBatch(rows: [(rows[0].ids, rows[0].labels), (rows[1].ids, rows[1].labels)], padId: 0)
    let valid = batch.validTargets
    let loss = try engine.forwardBackward(batch, gradScale: 1 / Float(valid), policy: .recompute) / Double(valid)
    let g = try Fixtures.golden(name)
    let expected = try g.floats("loss")[0]
    print("\(name): loss \(loss) vs transformers+PEFT \(expected): rel diff \(abs(Float(loss) - expected) / expected)")
    #expect(abs(Float(loss) - expected) / expected < 1e-5)
    var worst: Float = 0, worstName = ""
    for (path, pair) in model.loraPairs {
        for (suffix, grad) in [("lora_A", pair.gradA), ("lora_B", pair.gradB)] {
            let key = "base_model.model.\(path).\(suffix).weight"
            let d = relDiff(grad.array, try g.floats(key))
            if d > worst { worst = d; worstName = key }
        }
    }
    print("\(name): \(model.loraPairs.count * 2) LoRA gradients vs PEFT: max rel diff \(worst) (\(worstName))")
    #expect(worst < 1e-4)
}

func goldenParams(_ t: [String: Any]) -> TrainingParameters {
    var p = TrainingParameters()
    p.learningRate = t["lr"] as! Double
    let betas = t["betas"] as! [Double]
    p.adamBeta1 = betas[0]; p.adamBeta2 = betas[1]
    p.adamEpsilon = t["eps"] as! Double
    p.weightDecay = t["weight_decay"] as! Double
    p.maxGradNorm = t["max_grad_norm"] as? Double
    p.warmupSteps = t["warmup_steps"] as! Int
    p.maxSteps = t["total_steps"] as! Int
    p.batchSize = t["batch_size"] as! Int
    p.gradientAccumulationSteps = t["gradient_accumulation_steps"] as! Int
    p.scheduler = (t["schedule"] as! String).contains("cosine") ? .cosine : .linear
    p.shuffle = false
    return p
}

func checkCurve(_ name: String, key: String, policy: CheckpointPolicy) throws {
    let model = try Fixtures.model(name)
    let t = try Fixtures.json(name)[key] as! [String: Any]
    var p = goldenParams(t)
    p.checkpointing = policy
    let trainer = try Trainer(model: model, rows: try Fixtures.rows(name), params: p)
    var losses: [Float] = [], norms: [Float] = [], lrs: [Float] = []
    try trainer.run { m in
        losses.append(Float(m.loss)); norms.append(Float(m.grad_norm)); lrs.append(Float(m.learning_rate)); return true
    }
    let el = (t["losses"] as! [Double]).map(Float.init), en = (t["grad_norms"] as! [Double]).map(Float.init)
    let elr = (t["learning_rates"] as! [Double]).map(Float.init)
    let dl = zip(losses, el).map { abs($0 - $1) / abs($1) }.max()!
    let dn = zip(norms, en).map { abs($0 - $1) / abs($1) }.max()!
    let dlr = zip(lrs, elr).map { abs($0 - $1) / max(abs($1), 1e-12) }.max()!
    print("\(name) \(key) (\(policy)): 10-step loss curve vs PyTorch: max rel diff \(dl); grad norms \(dn); lr \(dlr)")
    print("  sloth   \(losses.map { String(format: "%.6f", $0) }.joined(separator: " "))")
    print("  pytorch \(el.map { String(format: "%.6f", $0) }.joined(separator: " "))")
    #expect(dl < 1e-4)
    #expect(dn < 1e-4)
    #expect(dlr < 1e-6)
}

@Test(arguments: modelNames)
func lossCurveMatchesPyTorch(name: String) throws {
    try checkCurve(name, key: "train", policy: .recompute)
}

@Test func lossCurveWithoutCheckpointing() throws {
    try checkCurve("llama", key: "train", policy: .none)
}

/// Gradient accumulation (2 micro-batches of 1 row, cosine schedule) normalised as transformers' Trainer:
/// every token of the optimizer step weighs the same (num_items_in_batch).
@Test func accumulationCurveMatchesTrainer() throws {
    try checkCurve("llama", key: "train_accum", policy: .recompute)
}
