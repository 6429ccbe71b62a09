import Foundation
import SlothCore
import SlothModels
import SlothFormats

/// Everything that shapes a training run (defaults as transformers' TrainingArguments where they apply).
public struct TrainingParameters: Sendable, Equatable {
    public var learningRate: Double = 2e-4
    public var weightDecay: Double = 0
    public var adamBeta1: Double = 0.9
    public var adamBeta2: Double = 0.999
    public var adamEpsilon: Double = 1e-8
    /// Clip the global gradient norm to this; nil or 0 disables clipping.
    public var maxGradNorm: Double? = 1.0
    public var scheduler: LRSchedule = .linear
    public var warmupSteps: Int = 0
    public var maxSteps: Int = 100
    public var batchSize: Int = 1
    public var gradientAccumulationSteps: Int = 1
    public var maxSeqLength: Int = 2048
    public var seed: UInt64 = 3407
    public var shuffle: Bool = true
    public var checkpointing: CheckpointPolicy = .recompute
    public var optimizer: OptimizerKind = .adamw
    /// Learning rate of the modules trained in full (embed_tokens, lm_head); nil: `learningRate`. Unsloth's embedding_learning_rate.
    public var embeddingLearningRate: Double? = nil
    /// Pack several rows into each sequence of `maxSeqLength` tokens (attention confined to each row).
    public var packing = false
    public init() {}
}

/// One optimizer step's report (the keys of `--metrics` rows).
public struct StepMetrics: Codable, Sendable {
    public var step: Int
    public var loss: Double
    public var learning_rate: Double
    public var grad_norm: Double
    public var tokens: Int
    public var tokens_per_second: Double
    public var peak_memory_bytes: Int
    public var elapsed_seconds: Double
    /// Loss and perplexity on the evaluation data, on the steps where it ran.
    public var eval_loss: Double? = nil
    public var eval_perplexity: Double? = nil
}

/// The mean loss over every predicted token (label not -100) of `rows`, in batches of `batchSize` (no dropout,
/// no gradients): `sloth eval`'s number, and the evaluation loss of `--eval-data`.
public func evaluationLoss(model: LanguageModel, rows: [TokenizedRow], batchSize: Int = 8) throws -> (loss: Double, tokens: Int) {
    let engine = Engine(model: model)
    var sum = 0.0, count = 0, start = 0
    while start < rows.count {
        let chunk = rows[start..<min(rows.count, start + max(1, batchSize))]
        let (s, n) = try engine.loss(TokenBatch(rows: chunk.map { ($0.ids, $0.labels) }))
        sum += s; count += n
        start += chunk.count
    }
    return (count > 0 ? sum / Double(count) : .nan, count)
}

/// Runs the training loop: lr, micro-batches, clip, step, zero, report. The callback returns false to stop.
public final class Trainer {
    public let model: LanguageModel
    public let engine: Engine
    public let params: TrainingParameters
    /// The training examples: one row each, or packed sequences with `packing`.
    public let rows: [PackedRow]
    public let optimizer: Optimizer
    private var order: [Int] = []
    private var cursor = 0
    private var epoch = 0
    public private(set) var step = 0

    public init(model: LanguageModel, rows: [TokenizedRow], params: TrainingParameters) throws {
        guard (model.lora != nil && !model.loraPairs.isEmpty) || model.isFullTraining else {
            throw DatasetError(file: "trainer", row: nil, message: "the model has no LoRA layers to train; check --target-modules")
        }
        guard params.batchSize >= 1, params.gradientAccumulationSteps >= 1, params.maxSteps >= 1 else {
            throw DatasetError(file: "trainer", row: nil, message: "batch size, accumulation steps and max steps must be at least 1")
        }
        self.model = model
        self.engine = Engine(model: model)
        self.params = params
        let truncated = rows.map { r in
            r.ids.count <= params.maxSeqLength ? r : TokenizedRow(ids: Array(r.ids.prefix(params.maxSeqLength)), labels: Array(r.labels.prefix(params.maxSeqLength)))
        }
        self.rows = params.packing ? Packing.pack(truncated, maxLength: params.maxSeqLength) : truncated.map(PackedRow.init)
        let trained = Trainer.trainedTensors(model)
        optimizer = Optimizer(params.optimizer, params: trained.map(\.param), grads: trained.map(\.grad),
                              beta1: Float(params.adamBeta1), beta2: Float(params.adamBeta2), eps: Float(params.adamEpsilon),
                              weightDecay: Float(params.weightDecay))
        if let e = params.embeddingLearningRate, params.learningRate > 0 {
            for (i, t) in trained.enumerated() where t.embedding { optimizer.lrScales[i] = Float(e / params.learningRate) }
        }
        newEpoch()
    }

    private var grads: [Tensor] { optimizer.grads }

    /// What the optimizer updates: every weight of a full fine-tune (PyTorch's named_parameters order), or the LoRA
    /// pairs (A, B per module) then the modules to save. `embedding`: embed_tokens / lm_head (embedding_learning_rate).
    static func trainedTensors(_ model: LanguageModel) -> [(param: Tensor, grad: Tensor, embedding: Bool)] {
        if model.isFullTraining {
            return model.fullParameters.map { ($0.param, $0.grad, $0.name == "model.embed_tokens.weight" || $0.name == "lm_head.weight") }
        }
        return model.loraPairs.flatMap { [($0.pair.a, $0.pair.gradA, false), ($0.pair.b, $0.pair.gradB, false)] }
            + model.savedModuleParameters.map { ($0.param, $0.grad, true) }
    }

    private func newEpoch() {
        order = Array(rows.indices)
        if params.shuffle {
            var rng = SplitMix64(seed: params.seed &+ UInt64(epoch) &* 7919)
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        epoch += 1
        cursor = 0
    }

    private func nextRows(_ k: Int) -> [PackedRow] {
        var out: [PackedRow] = []
        while out.count < k {
            if cursor >= order.count { newEpoch() }
            out.append(rows[order[cursor]]); cursor += 1
        }
        return out
    }

    /// The learning rate used by 0-based step `s`.
    public func learningRate(at s: Int) -> Double {
        params.learningRate * params.scheduler.factor(step: s, warmup: params.warmupSteps, total: params.maxSteps)
    }

    /// Runs one optimizer step and returns its metrics.
    public func trainStep() throws -> StepMetrics {
        let start = Date()
        let lr = learningRate(at: step)
        let micro = (0..<params.gradientAccumulationSteps).map { _ in
            TokenBatch(packed: nextRows(params.batchSize))
        }
        let valid = micro.reduce(0) { $0 + $1.validTargets }
        var lossSum = 0.0
        if valid > 0 {
            for b in micro {
                lossSum += try engine.forwardBackward(b, gradScale: 1 / Float(valid), policy: params.checkpointing)
            }
        }
        let norm = Profile.measure(.optimizer) { () -> Float in
            let norm = GradientClipping.clip(grads, maxNorm: params.maxGradNorm.map(Float.init))
            optimizer.update(lr: Float(lr))
            for g in grads { g.zero() }
            return norm
        }
        step += 1
        let elapsed = Date().timeIntervalSince(start)
        let tokens = micro.reduce(0) { acc, b in acc + b.ids.count }
        return StepMetrics(step: step, loss: valid > 0 ? lossSum / Double(valid) : 0, learning_rate: lr, grad_norm: Double(norm),
                           tokens: tokens, tokens_per_second: Double(tokens) / max(elapsed, 1e-9),
                           peak_memory_bytes: MemoryStats.peakRSS(), elapsed_seconds: elapsed)
    }

    /// What a training checkpoint records beside the adapter and the optimizer state (`trainer_state.json`).
    public struct State: Codable, Equatable, Sendable {
        public var step: Int
        public var epoch: Int
        public var cursor: Int
        public var microSteps: UInt64
        /// The settings the rest of the run depends on; a resume with others is refused.
        public var rows: Int
        public var seed: UInt64
        public var maxSteps: Int
        public var batchSize: Int
        public var gradientAccumulationSteps: Int
        public var learningRate: Double
        public var optimizer: String
    }

    public var state: State {
        State(step: step, epoch: epoch, cursor: cursor, microSteps: engine.dropoutStep, rows: rows.count, seed: params.seed, maxSteps: params.maxSteps,
              batchSize: params.batchSize, gradientAccumulationSteps: params.gradientAccumulationSteps, learningRate: params.learningRate,
              optimizer: params.optimizer.rawValue)
    }

    public static let stateFile = "trainer_state.json", optimizerFile = "optimizer.safetensors"

    /// Writes `trainer_state.json` and `optimizer.safetensors` into `dir` (each atomically).
    public func saveState(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(optimizer.stateTensors(), metadata: ["format": "sloth", "step": String(step)], to: dir.appendingPathComponent(Trainer.optimizerFile))
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try enc.encode(state), to: dir.appendingPathComponent(Trainer.stateFile))
    }

    /// Continues from a checkpoint written by `saveState` (the adapter weights are loaded by the caller): step, data
    /// order, dropout counter and optimizer state, so the run goes on exactly as if it had not stopped.
    public func restoreState(from dir: URL) throws {
        let file = dir.appendingPathComponent(Trainer.stateFile)
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw DatasetError(file: file.path, row: nil, message: "not found: --resume-from-checkpoint needs a checkpoint-N folder written by sloth train --save-steps")
        }
        let saved: State
        do { saved = try JSONDecoder().decode(State.self, from: data) } catch {
            throw DatasetError(file: file.path, row: nil, message: "not a Sloth trainer state (\(error)); the checkpoint is damaged")
        }
        let mine = state
        var differs: [String] = []
        if saved.rows != mine.rows { differs.append("training rows \(saved.rows) (now \(mine.rows))") }
        if saved.seed != mine.seed { differs.append("--seed \(saved.seed)") }
        if saved.maxSteps != mine.maxSteps { differs.append("--max-steps \(saved.maxSteps)") }
        if saved.batchSize != mine.batchSize { differs.append("--batch-size \(saved.batchSize)") }
        if saved.gradientAccumulationSteps != mine.gradientAccumulationSteps { differs.append("--gradient-accumulation-steps \(saved.gradientAccumulationSteps)") }
        if saved.learningRate != mine.learningRate { differs.append("--learning-rate \(saved.learningRate)") }
        if saved.optimizer != mine.optimizer { differs.append("--optim \(saved.optimizer)") }
        guard differs.isEmpty else {
            throw DatasetError(file: file.path, row: nil, message: "the checkpoint was written with \(differs.joined(separator: ", ")); resume with the same settings and data")
        }
        guard saved.step >= 0, saved.step <= params.maxSteps, saved.epoch >= 1, saved.cursor >= 0, saved.cursor <= rows.count else {
            throw DatasetError(file: file.path, row: nil, message: "step \(saved.step), epoch \(saved.epoch), cursor \(saved.cursor) are out of range; the checkpoint is damaged")
        }
        try optimizer.restore(step: saved.step, from: try SafeTensorsFile(url: dir.appendingPathComponent(Trainer.optimizerFile)))
        epoch = saved.epoch - 1
        newEpoch()
        cursor = saved.cursor
        step = saved.step
        engine.dropoutStep = saved.microSteps
    }

    /// Trains until `maxSteps`, calling `onStep` after each step; it returns false to stop early. The step's arena and
    /// the kernels' workspace are freed when it returns (an export may follow in the same process).
    public func run(onStep: (StepMetrics) -> Bool = { _ in true }) throws {
        defer { engine.releaseArena() }
        while step < params.maxSteps {
            let m = try trainStep()
            if !onStep(m) { break }
        }
    }
}
