import ArgumentParser
import Foundation
import Sloth

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a Hugging Face model folder on a JSONL dataset: LoRA, QLoRA (4-bit base) or every weight (--full).",
        discussion: """
        Rows of --data (one format per file, detected): pre-tokenized {"input_ids": [...], "labels": [...]}
        (labels optional, aligned with input_ids as in transformers; -100 is ignored); {"text"};
        {"prompt", "completion"} (trained on the completion); {"messages": [{"role", "content"}]} and ShareGPT
        {"conversations": [{"from", "value"}]} (rendered with the chat template); Alpaca {"instruction", "input", "output"}.

        Examples:
          sloth train --model models/demo --data data/demo.jsonl --output out/demo-adapter --max-steps 60
          sloth train --model ./Llama-3.2-1B --data chat.jsonl --output out/a --lora-rank 16 --lora-alpha 32 \\
                      --target-modules q_proj,v_proj --learning-rate 1e-4 --lr-scheduler cosine --warmup-steps 10
          sloth train --model ./m --adapter ./previous-adapter --data more.jsonl --output out/b --metrics out/b/metrics.jsonl
          sloth train --model ./Qwen2.5-0.5B --data chats.jsonl --output out/c --chat-template chatml --train-on-responses-only --packing
          sloth train --model ./Llama-3.1-8B --data chat.jsonl --output out/q --load-in-4bit --optim adamw_8bit   # QLoRA
          sloth train --model ./llama-bnb-4bit --data text.jsonl --output out/e --modules-to-save embed_tokens,lm_head \
                      --embedding-learning-rate 5e-6
          sloth train --model ./SmolLM-135M --data d.jsonl --output out/f --full --learning-rate 2e-5 --save-steps 100
          sloth train --model ./SmolLM-135M --data d.jsonl --output out/f --full --learning-rate 2e-5 --save-steps 100 \
                      --resume-from-checkpoint latest                       # after a crash: continues exactly
          sloth train --config run.yaml --learning-rate 1e-4        # every flag as a YAML key; the command line wins
          sloth train --config run.yaml --print-config              # the resolved configuration, nothing trained

        The output folder gets the adapter, metrics.jsonl, run.json (configuration, memory plan, environment) and
        report.html (plots of the run; sloth report DIR rebuilds it).
        """)

    @Option(help: "A YAML file whose keys are this command's flags (snake_case or kebab-case); command-line flags override it.") var config: String?
    @Flag(help: "Print the resolved configuration as YAML and exit.") var printConfig = false

    @Option(help: "Model folder (config.json, *.safetensors).") var model: String
    @Option(help: "Training data (JSONL or a JSON array).") var data: String
    @Option(help: "Where the adapter is written.") var output: String
    @Flag(name: .customLong("load-in-4bit"), help: "QLoRA: quantize the base's linear weights to 4 bits while loading (bitsandbytes NF4, double quantization). bnb-4bit model folders are 4-bit without it.") var loadIn4bit = false
    @Option(name: .customLong("bnb-4bit-quant-type"), help: "nf4 | fp4 (with --load-in-4bit).") var bnb4bitQuantType: String = "nf4"
    @Flag(name: .customLong("no-double-quant"), help: "Keep 4-bit absmax in fp32 (with --load-in-4bit).") var noDoubleQuant = false
    @Option(help: "Start from this PEFT adapter folder; its adapter_config.json gives rank, alpha, targets and rsLoRA.") var adapter: String?

    @Flag(help: "Full fine-tuning: every weight trained (no LoRA); OUTPUT gets the whole model (fp32 safetensors, config, tokenizer).") var full = false
    @Option(help: "LoRA rank r.") var loraRank: Int = 8
    @Option(help: "LoRA alpha (scale = alpha / r).") var loraAlpha: Double = 16
    @Option(help: "Dropout on LoRA inputs (default 0, or the adapter's).") var loraDropout: Double?
    @Option(help: "Comma-separated modules to adapt, or all-linear.") var targetModules: String = "all-linear"
    @Flag(help: "rsLoRA scaling: alpha / sqrt(r).") var useRslora = false
    @Option(help: "Train these whole modules beside LoRA and save them in the adapter (PEFT modules_to_save): embed_tokens, lm_head (one tensor in tied models).") var modulesToSave: String?
    @Option(help: "Comma-separated new tokens for the tokenizer; embed_tokens and lm_head grow, the new rows start at the mean of the trained rows (needs --modules-to-save embed_tokens,lm_head or --full). OUTPUT gets the extended tokenizer.json.") var addTokens: String?
    @Flag(help: "With --add-tokens: the new tokens are special (never split, skipped when decoding with skip_special_tokens).") var addSpecialTokens = false
    @Option(help: "Learning rate of --modules-to-save (Unsloth's embedding_learning_rate; default: --learning-rate).") var embeddingLearningRate: Double?

    @Option(help: "adamw | adamw_8bit (bitsandbytes' 8-bit states) | sgd.") var optim: String = "adamw"
    @Option(help: "Peak learning rate.") var learningRate: Double = 2e-4
    @Option(help: "Decoupled weight decay.") var weightDecay: Double = 0
    @Option var adamBeta1: Double = 0.9
    @Option var adamBeta2: Double = 0.999
    @Option var adamEpsilon: Double = 1e-8
    @Option(help: "Clip the global gradient norm (0 disables).") var maxGradNorm: Double = 1.0
    @Option(help: "constant | linear | cosine") var lrScheduler: String = "linear"
    @Option var warmupSteps: Int = 0
    @Option(help: "Optimizer steps to run.") var maxSteps: Int = 100
    @Option(help: "Rows per micro-batch.") var batchSize: Int = 1
    @Option(help: "Micro-batches per optimizer step.") var gradientAccumulationSteps: Int = 1
    @Option(help: "Rows longer than this are truncated.") var maxSeqLength: Int = 2048
    @Option(help: "Seed for LoRA init, shuffling and dropout.") var seed: UInt64 = 3407
    @Flag(help: "Keep the data order (no shuffling).") var noShuffle = false
    @Option(help: "auto | none | recompute | offload. auto: the fastest policy whose memory plan fits.") var gradientCheckpointing: String = "auto"
    @Option(help: "Memory cap (e.g. 8GiB); default: the memory available now. The run is refused up front when its plan does not fit.") var maxMemory: String?
    @Option(help: "Folder for offloaded checkpoints (default: the system temporary folder).") var offloadDir: String?
    @Option(help: "Where --gradient-checkpointing offload puts layer inputs: disk (a file; no resident memory) or compressed (lossless Zstandard in host memory).") var offloadTier: String = "disk"
    @Option(help: ArgumentHelp("Layer inputs smaller than this are not offloaded (the step runs as recompute).", visibility: .hidden)) var offloadMinBytes: Int = CheckpointPolicy.minimumOffloadBytes
    @Option(help: "Write one JSON object per optimizer step to this file (default: OUTPUT/metrics.jsonl).") var metrics: String?
    @Option(help: "Save a checkpoint OUTPUT/checkpoint-N (adapter, optimizer and trainer state) every N steps (0: only the adapter at the end).") var saveSteps: Int = 0
    @Option(help: "Continue from OUTPUT/checkpoint-N (or 'latest': the newest in OUTPUT); the loss curve continues exactly as without the stop.") var resumeFromCheckpoint: String?
    @Option(help: "Keep at most this many checkpoint-N folders (the best by eval loss is always kept; 0: all).") var saveTotalLimit: Int = 0
    @Option(help: "Evaluation data (same formats as --data): loss and perplexity logged beside the training metrics.") var evalData: String?
    @Option(help: "Evaluate every N steps (0: only at the end).") var evalSteps: Int = 0
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "No progress output.") var quiet = false
    @Option(help: "text (a live line on a terminal, plain lines otherwise) or json (one JSON object per step on stderr).") var logFormat: String = "text"
    @Flag(help: "Do not write report.html.") var noReport = false
    @Option(help: "Profile the steps after the first: time and FLOPs per kernel family, the step's required FLOPs, the GEMM rate measured at its shapes and the limit (required FLOPs / rate). Printed, and written to this JSON file.") var profile: String?

    func validate() throws {
        guard FourBitType(rawValue: bnb4bitQuantType) != nil else { throw ValidationError("--bnb-4bit-quant-type must be nf4 or fp4") }
        _ = try savedModules()
        if let e = embeddingLearningRate, e < 0 { throw ValidationError("--embedding-learning-rate must be >= 0") }
        guard OptimizerKind(rawValue: optim) != nil else { throw ValidationError("--optim must be adamw, adamw_8bit or sgd") }
        guard LRSchedule(rawValue: lrScheduler) != nil else { throw ValidationError("--lr-scheduler must be constant, linear or cosine") }
        guard gradientCheckpointing == "auto" || CheckpointPolicy(rawValue: gradientCheckpointing) != nil else {
            throw ValidationError("--gradient-checkpointing must be auto, none, recompute or offload")
        }
        guard ["disk", "compressed"].contains(offloadTier) else { throw ValidationError("--offload-tier must be disk or compressed") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard saveSteps >= 0, saveTotalLimit >= 0, evalSteps >= 0 else { throw ValidationError("--save-steps, --save-total-limit and --eval-steps must be >= 0") }
        if let maxMemory, ByteCount.parse(maxMemory) == nil { throw ValidationError("--max-memory: '\(maxMemory)' is not a size (e.g. 8GiB)") }
        guard loraRank >= 1 else { throw ValidationError("--lora-rank must be at least 1") }
        guard (loraDropout ?? 0) >= 0 && (loraDropout ?? 0) < 1 else { throw ValidationError("--lora-dropout must be in [0, 1)") }
        guard maxSteps >= 1, batchSize >= 1, gradientAccumulationSteps >= 1, maxSeqLength >= 2 else {
            throw ValidationError("--max-steps, --batch-size, --gradient-accumulation-steps must be >= 1 and --max-seq-length >= 2")
        }
    }

    func run() throws {
        if printConfig {
            print(ConfigFile.yaml(ConfigFile.values(of: self)), terminator: "")
            return
        }
        do { try train() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func targets() throws -> [LinearModule] {
        if targetModules == "all-linear" { return LinearModule.allCases }
        return try targetModules.split(separator: ",").map {
            let name = $0.trimmingCharacters(in: .whitespaces)
            guard let m = LinearModule(rawValue: name) else {
                throw ValidationError("--target-modules: '\(name)' is not one of \(LinearModule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return m
        }
    }

    /// --add-tokens: the folder's tokenizer with the new tokens, and the model's vocabulary grown to hold them.
    func extendedTokenizer(_ lm: LanguageModel, _ modelURL: URL) throws -> Tokenizer? {
        guard let addTokens else { return nil }
        let new = addTokens.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !new.isEmpty else { throw ValidationError("--add-tokens: no token given") }
        guard full || (lm.embedGrad != nil && lm.lmHeadGrad != nil) else {
            throw ValidationError("--add-tokens: the new tokens' embeddings must be trained: add --modules-to-save embed_tokens,lm_head (or use --full)")
        }
        guard FileManager.default.fileExists(atPath: modelURL.appendingPathComponent("tokenizer.json").path)
                || FileManager.default.fileExists(atPath: modelURL.appendingPathComponent("tokenizer.model").path) else {
            throw ValidationError("--add-tokens: \(model) has no tokenizer.json or tokenizer.model to add tokens to")
        }
        let tok = try Tokenizer.load(from: modelURL)
        tok.addTokens(new, special: addSpecialTokens)
        lm.resizeVocabulary(to: max(lm.config.vocabSize, tok.vocabSize))
        return tok
    }

    func savedModules() throws -> [SavedModule] {
        guard let modulesToSave else { return [] }
        return try modulesToSave.split(separator: ",").map {
            let n = $0.trimmingCharacters(in: .whitespaces)
            guard let m = SavedModule(rawValue: n) else { throw ValidationError("--modules-to-save: '\(n)' is not embed_tokens or lm_head") }
            return m
        }
    }

    private func train() throws {
        let modelURL = URL(fileURLWithPath: model)
        let resume = try resumeFromCheckpoint.map { try resolveCheckpoint($0) }
        // A full fine-tune resumes from the weights in its checkpoint.
        let lm = try LanguageModel.load(folder: full ? (resume ?? modelURL) : modelURL,
                                        quantize: loadIn4bit ? QuantizeOnLoad(type: FourBitType(rawValue: bnb4bitQuantType)!, doubleQuant: !noDoubleQuant) : nil)
        if full {
            guard !loadIn4bit, lm.config.quantization == nil else { throw ValidationError("--full trains fp32 weights; drop --load-in-4bit (or use a 16/32-bit model folder)") }
            guard adapter == nil, modulesToSave == nil else { throw ValidationError("--full trains every weight; --adapter and --modules-to-save are for LoRA runs") }
            try lm.enableFullTraining()
        } else if let resume {
            try PEFTAdapter.load(resume, into: lm, seed: seed)
            if let loraDropout { lm.setDropout(loraDropout) }
        } else if let adapter {
            try PEFTAdapter.load(URL(fileURLWithPath: adapter), into: lm, seed: seed)
            if let loraDropout { lm.setDropout(loraDropout) }
        } else {
            lm.addLoRA(LoRAConfig(rank: loraRank, alpha: loraAlpha, dropout: loraDropout ?? 0, useRSLoRA: useRslora, targets: try targets()), seed: seed)
        }
        if modulesToSave != nil && !full { lm.trainModules(try savedModules()) }
        let tokenizer = try extendedTokenizer(lm, modelURL)
        let rows = try dataOptions.load(URL(fileURLWithPath: data), model: modelURL, maxLength: maxSeqLength, vocabSize: lm.config.vocabSize,
                                        tokenizer: tokenizer)
        var p = TrainingParameters()
        p.learningRate = learningRate; p.weightDecay = weightDecay; p.adamBeta1 = adamBeta1; p.adamBeta2 = adamBeta2
        p.adamEpsilon = adamEpsilon; p.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
        p.scheduler = LRSchedule(rawValue: lrScheduler)!; p.warmupSteps = warmupSteps; p.maxSteps = maxSteps
        p.batchSize = batchSize; p.gradientAccumulationSteps = gradientAccumulationSteps; p.maxSeqLength = maxSeqLength
        p.seed = seed; p.shuffle = !noShuffle
        p.packing = dataOptions.packing
        p.optimizer = OptimizerKind(rawValue: optim)!
        p.embeddingLearningRate = embeddingLearningRate
        // The memory plan decides the policy (auto) and refuses runs that cannot fit.
        let longest = min(maxSeqLength, rows.map(\.ids.count).max() ?? maxSeqLength)
        let tokens = dataOptions.packing ? maxSeqLength : longest
        let budget = maxMemory.flatMap(ByteCount.parse) ?? MemoryPlanner.availableMemory().map { $0 + MemoryStats.peakRSS() } ?? Int.max
        let fileBytes = weightFileBytes(modelURL)
        func planFor(_ policy: CheckpointPolicy, _ t: Int) -> MemoryPlan {
            MemoryPlanner.plan(config: lm.config, lora: lm.lora ?? LoRAConfig(rank: 1, targets: []), batch: batchSize, tokens: t, policy: policy, fileBytes: fileBytes, fourBit: lm.fourBit,
                               savedModuleParameters: lm.wholeTrainedParameterCount)
        }
        let candidates = gradientCheckpointing == "auto" ? CheckpointPolicy.allCases : [CheckpointPolicy(rawValue: gradientCheckpointing)!]
        guard let chosen = candidates.first(where: { planFor($0, tokens).peakBytes <= budget }) else {
            let fits = candidates.map { pol in (pol, MemoryPlanner.maxTokens(budget: budget) { planFor(pol, $0).peakBytes }) }
            let best = fits.max { $0.1 < $1.1 }!
            if best.1 == 0 {
                throw ValidationError("the model alone needs \(ByteCount.format(planFor(.offload, 64).peakBytes)) with 64 tokens, more than the \(ByteCount.format(budget)) available (--max-memory).")
            }
            throw ValidationError("batches of \(batchSize) x \(tokens) tokens need \(ByteCount.format(planFor(candidates.last!, tokens).peakBytes)) under --gradient-checkpointing \(candidates.last!.rawValue), more than the \(ByteCount.format(budget)) available. The longest context that fits is \(best.1) tokens (policy \(best.0.rawValue)): pass --max-seq-length \(best.1)\(gradientCheckpointing == "auto" ? "" : " or another --gradient-checkpointing").")
        }
        p.checkpointing = chosen
        let plan = planFor(chosen, tokens)
        // Untrained token rows the data uses (Unsloth's fix_untrained_tokens); a resumed run's weights already hold the fix.
        let fixedTokens = resume == nil ? try UntrainedTokens.check(lm, rows: rows, file: data) : []
        let trainer = try Trainer(model: lm, rows: rows, params: p)
        if let resume { try trainer.restoreState(from: resume) }
        if let offloadDir { trainer.engine.offloadDirectory = URL(fileURLWithPath: offloadDir) }
        trainer.engine.minimumOffloadBytes = offloadMinBytes
        let compressedTier = offloadTier == "compressed" ? CompressedHostTier() : nil
        if let compressedTier { trainer.engine.offloadTier = compressedTier }
        let out = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let evalRows = try evalData.map { try dataOptions.load(URL(fileURLWithPath: $0), model: modelURL, maxLength: maxSeqLength, vocabSize: lm.config.vocabSize) }
        let progress = Progress(total: maxSteps, quiet: quiet, json: logFormat == "json")
        progress.header("sloth train: \(lm.config.architecture.rawValue), \(lm.config.numHiddenLayers) layers, \(rows.count) rows, " +
                        (full ? "\(lm.trainableParameterCount) trainable parameters (full fine-tuning)"
                              : "\(lm.trainableParameterCount) trainable parameters (LoRA r=\(lm.lora!.rank), alpha=\(lm.lora!.alpha)" +
                        (lm.modulesToSave.isEmpty ? ")" : "; modules_to_save \(lm.modulesToSave.map(\.rawValue).joined(separator: ",")))")))
        let wb = lm.weightBytes
        progress.header(String(format: "weights: %@ (decoder linears %@%@, other %@ fp32)", ByteCount.format(wb.linear + wb.other), ByteCount.format(wb.linear),
                               lm.fourBit != nil ? String(format: " in 4 bits = %.4f bytes per parameter", Double(wb.linear) / Double(wb.linearParameters)) : " fp32",
                               ByteCount.format(wb.other)))
        progress.header("memory plan: \(ByteCount.format(plan.peakBytes)) peak with --gradient-checkpointing \(chosen.rawValue) at \(batchSize) x \(tokens) tokens" +
                        (budget < Int.max ? " (budget \(ByteCount.format(budget)))" : ""))
        if !fixedTokens.isEmpty {
            progress.header("warning: \(fixedTokens.count) token(s) the data uses had untrained embeddings (ids \(fixedTokens.prefix(8).map(String.init).joined(separator: ", "))\(fixedTokens.count > 8 ? "..." : "")); their embed_tokens and lm_head rows were set to the mean of the trained rows")
        }
        let metricsPath = metrics ?? out.appendingPathComponent("metrics.jsonl").path
        let metricsWriter = try MetricsWriter(path: metricsPath, keepThrough: resume == nil ? nil : trainer.step)
        var run = RunRecord(configuration: ConfigFile.display(ConfigFile.values(of: self)), plan: plan, policy: chosen.rawValue, metricsFile: metricsPath)
        try run.write(to: out)
        var failure: Error?
        var checkpoints: [Int] = resume == nil ? [] : Self.checkpointSteps(in: out).filter { $0 <= trainer.step }
        if let resume { progress.header("resumed from \(resume.path) at step \(trainer.step)") }
        let firstStep = trainer.step + 1
        var profiledSeconds: [Double] = []
        var rates: [BLAS.MeasuredRate] = []
        try trainer.run { step in
            var m = step
            if profile != nil {
                if m.step == firstStep { Profile.reset(); Profile.enabled = true } else { profiledSeconds.append(m.elapsed_seconds) }
                // Between steps (a step's elapsed time does not include it): the limit's GEMM rate, timed beside the steps.
                if let r = StepProfile.sampleRate(trainer: trainer) { rates.append(r) }
            }
            do {
                if let evalRows, (evalSteps > 0 && m.step % evalSteps == 0) || m.step == maxSteps {
                    let e = try evaluationLoss(model: lm, rows: evalRows, batchSize: max(batchSize, 8)).loss
                    m.eval_loss = e; m.eval_perplexity = exp(e)
                }
                progress.update(m)
                try metricsWriter.write(m)
                if saveSteps > 0, m.step % saveSteps == 0, m.step < maxSteps {
                    try saveCheckpoint(trainer, lm, to: out, step: m.step, tokenizer: tokenizer)
                    checkpoints.append(m.step)
                    if let e = m.eval_loss, run.bestEvalLoss.map({ e < $0 }) ?? true { run.bestCheckpoint = "checkpoint-\(m.step)"; run.bestEvalLoss = e }
                    // --save-total-limit: drop the oldest, never the best.
                    while saveTotalLimit > 0 && checkpoints.count > saveTotalLimit,
                          let victim = checkpoints.first(where: { "checkpoint-\($0)" != run.bestCheckpoint }) {
                        try? FileManager.default.removeItem(at: out.appendingPathComponent("checkpoint-\(victim)"))
                        checkpoints.removeAll { $0 == victim }
                    }
                    try run.write(to: out)
                }
            } catch { failure = error; return false }
            return true
        }
        if let failure { throw failure }
        progress.finish()
        if let profile {
            Profile.enabled = false
            try StepProfile.write(path: profile, trainer: trainer, stepSeconds: profiledSeconds, rates: rates, policy: chosen, progress: progress)
        }
        if let t = compressedTier, t.rawBytes > 0 {
            progress.header(String(format: "compressed offload tier: %.3f of the checkpoint bytes (%@ -> %@ stored over the run)",
                                   Double(t.compressedBytes) / Double(t.rawBytes), ByteCount.format(t.rawBytes), ByteCount.format(t.compressedBytes)))
        }
        try saveTrained(lm, to: out, tokenizer: tokenizer)
        run.finished = true
        try run.write(to: out)
        progress.header("adapter written to \(out.path)" + (run.bestCheckpoint.map { "; best checkpoint by eval loss: \($0)" } ?? ""))
        if !noReport {
            let report = try TrainingReport.write(folder: out)
            progress.header("report: \(report.path)")
        }
    }
}

extension TrainCommand {
    /// OUTPUT/checkpoint-N: the adapter, optimizer.safetensors and trainer_state.json, written into a hidden folder
    /// and renamed when complete, so a checkpoint is never half-written (a kill leaves only the hidden folder).
    func saveCheckpoint(_ trainer: Trainer, _ lm: LanguageModel, to out: URL, step: Int, tokenizer: Tokenizer?) throws {
        let fm = FileManager.default
        let final = out.appendingPathComponent("checkpoint-\(step)")
        let tmp = out.appendingPathComponent(".checkpoint-\(step).partial")
        try? fm.removeItem(at: tmp)
        try saveTrained(lm, to: tmp, tokenizer: tokenizer)
        try trainer.saveState(to: tmp)
        try? fm.removeItem(at: final)
        guard rename(tmp.path, final.path) == 0 else { throw ValidationError("cannot rename \(tmp.path) to \(final.path): \(String(cString: strerror(errno)))") }
    }

    /// The adapter (LoRA), or with --full the whole model: fp32 safetensors under HF names (sharded at 5 GB) beside
    /// the source folder's config (dtype float32), generation config and tokenizer files.
    func saveTrained(_ lm: LanguageModel, to dir: URL, tokenizer: Tokenizer?) throws {
        defer { if let tokenizer { try? TokenizerWriter.write(tokenizer, to: dir.appendingPathComponent("tokenizer.json")) } }
        guard full else { try PEFTAdapter.save(lm, to: dir, baseModel: model); return }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let writer = try ShardedSafeTensorsWriter(directory: dir, maxShardBytes: 5_000_000_000, metadata: ["format": "pt"])
        for p in lm.fullParameters { try writer.add(WritableTensor(name: p.name, shape: p.param.shape, floats: p.param.array)) }
        try writer.finish()
        for f in try MergedExport.copiedFiles(URL(fileURLWithPath: model)) {
            var data = try Data(contentsOf: f.url)
            if f.url.lastPathComponent == "config.json" {
                data = try MergedExport.configFor(data, dtype: "float32", quantization: nil, file: f.url.path, vocabSize: lm.config.vocabSize)
            }
            if tokenizer != nil && f.url.lastPathComponent == "tokenizer.json" { continue }
            try writeAtomically(data, to: dir.appendingPathComponent(f.url.lastPathComponent))
        }
    }

    /// Steps of the complete checkpoint-N folders in `out`.
    static func checkpointSteps(in out: URL) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        return names.compactMap { n -> Int? in
            guard n.hasPrefix("checkpoint-"), let s = Int(n.dropFirst("checkpoint-".count)),
                  FileManager.default.fileExists(atPath: out.appendingPathComponent(n).appendingPathComponent(Trainer.stateFile).path) else { return nil }
            return s
        }.sorted()
    }

    /// --resume-from-checkpoint: a folder, or 'latest' (the newest complete checkpoint in --output).
    func resolveCheckpoint(_ arg: String) throws -> URL {
        if arg == "latest" {
            let out = URL(fileURLWithPath: output)
            guard let last = Self.checkpointSteps(in: out).last else {
                throw ValidationError("--resume-from-checkpoint latest: \(output) holds no complete checkpoint-N folder (written by --save-steps)")
            }
            return out.appendingPathComponent("checkpoint-\(last)")
        }
        let url = URL(fileURLWithPath: arg)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent(Trainer.stateFile).path) else {
            throw ValidationError("--resume-from-checkpoint: \(arg) has no \(Trainer.stateFile); give a checkpoint-N folder written by --save-steps, or 'latest'")
        }
        return url
    }
}

/// Appends one JSON object per line.
final class MetricsWriter {
    let handle: FileHandle
    /// `keepThrough`: on resume, the rows of steps up to this one are kept and later ones dropped.
    init(path: String, keepThrough: Int? = nil) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var kept = Data()
        if let keepThrough, let old = FileManager.default.contents(atPath: path) {
            for line in old.split(separator: 0x0A) {
                if let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let st = o["step"] as? Int, st <= keepThrough {
                    kept.append(Data(line)); kept.append(0x0A)
                }
            }
        }
        FileManager.default.createFile(atPath: path, contents: kept)
        guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("--metrics: cannot write \(path)") }
        handle = h
        h.seekToEndOfFile()
    }
    func write(_ m: StepMetrics) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var d = try enc.encode(m)
        d.append(0x0A)
        handle.write(d)
    }
}

/// A live progress line on a terminal, plain lines otherwise.
final class Progress {
    let total: Int, quiet: Bool, json: Bool
    let tty = isatty(fileno(stderr)) != 0
    let start = Date()
    init(total: Int, quiet: Bool, json: Bool = false) { self.total = total; self.quiet = quiet; self.json = json }
    func header(_ s: String) {
        guard !quiet else { return }
        if json {
            let d = (try? JSONSerialization.data(withJSONObject: ["message": s], options: [.sortedKeys])) ?? Data()
            FileHandle.standardError.write(d + Data("\n".utf8))
        } else {
            FileHandle.standardError.write(Data((s + "\n").utf8))
        }
    }
    func update(_ m: StepMetrics) {
        guard !quiet else { return }
        if json {
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            FileHandle.standardError.write(((try? enc.encode(m)) ?? Data()) + Data("\n".utf8))
            return
        }
        let elapsed = Date().timeIntervalSince(start)
        let eta = elapsed / Double(m.step) * Double(total - m.step)
        var line = String(format: "step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  ETA %@  mem %@",
                          m.step, total, m.loss, m.learning_rate, m.grad_norm, m.tokens_per_second, Progress.time(eta), Progress.bytes(m.peak_memory_bytes))
        if let e = m.eval_loss { line += String(format: "  eval %.4f (ppl %.2f)", e, exp(e)) }
        // On a terminal one live line, kept when an evaluation result appears; plain lines otherwise.
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line + (m.eval_loss != nil ? "\n" : "") : line + "\n").utf8))
    }
    func finish() { if !quiet && !json && tty { FileHandle.standardError.write(Data("\n".utf8)) } }
    static func time(_ s: Double) -> String { s < 60 ? String(format: "%.0fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
    static func bytes(_ b: Int) -> String { String(format: "%.2f GB", Double(b) / 1e9) }
}

/// Total size of a folder's .safetensors files.
func weightFileBytes(_ folder: URL) -> Int {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    return files.filter { $0.hasSuffix(".safetensors") }.reduce(0) { acc, f in
        acc + ((try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(f).path)[.size] as? Int) ?? 0)
    }
}
