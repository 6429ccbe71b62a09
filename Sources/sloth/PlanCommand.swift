import ArgumentParser
import Foundation
import Sloth

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print the memory plan of a training configuration, and the longest context that fits.",
        discussion: """
        The plan is the allocator: the activation buffers listed are exactly the ones sloth train allocates.
        No weights are needed: --config takes a config.json alone.

        Examples:
          sloth plan --model models/demo --max-seq-length 4096
          sloth plan --config llama-3.1-8b.json --max-seq-length 8192 --memory 8GiB
          sloth plan --config mistral-7b.json --lora-rank 32 --load-in-4bit --gpus
          sloth plan --model ./m --max-seq-length 16384 --memory 8GiB --json
        """)

    @Option(help: "Model folder (its config.json and weight files).") var model: String?
    @Option(help: "A config.json alone.") var config: String?
    @Option var maxSeqLength: Int = 2048
    @Option var batchSize: Int = 1
    @Option var loraRank: Int = 8
    @Option(help: "Comma-separated modules, or all-linear.") var targetModules: String = "all-linear"
    @Option(help: "Print the longest context that fits in this much memory (e.g. 8GiB) under each policy.") var memory: String?
    @Flag(help: "Print the longest context per GPU size (8-80 GB) under the GPU memory model.") var gpus = false
    @Flag(name: .customLong("load-in-4bit"), help: "4-bit NF4 base weights (QLoRA), in the CPU plan and the GPU model; a bnb-4bit --model implies it.") var loadIn4bit = false
    @Flag(help: "Full fine-tuning (every weight trained, AdamW fp32 states) instead of LoRA.") var full = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give exactly one of --model and --config") }
        guard maxSeqLength >= 2, batchSize >= 1, loraRank >= 1 else { throw ValidationError("--max-seq-length >= 2, --batch-size >= 1, --lora-rank >= 1") }
        if let memory, ByteCount.parse(memory) == nil { throw ValidationError("--memory: '\(memory)' is not a size (e.g. 8GiB, 512MiB)") }
    }

    func run() throws {
        do { try plan() } catch let e as ValidationError { throw e } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func plan() throws {
        let url = URL(fileURLWithPath: model ?? config!)
        let c = try ModelConfig.load(from: url)
        let targets = targetModules == "all-linear" ? LinearModule.allCases : targetModules.split(separator: ",").compactMap { LinearModule(rawValue: String($0)) }
        let lora = full ? LoRAConfig(rank: 1, targets: []) : LoRAConfig(rank: loraRank, alpha: Double(2 * loraRank), targets: targets)
        let trainedWhole = full ? MemoryPlanner.parameterCounts(c, lora: nil).weights : 0
        let fileBytes = model.map { weightFileBytes(URL(fileURLWithPath: $0)) }
        let budget = memory.flatMap(ByteCount.parse)
        let fourBit: QuantizeOnLoad? = c.quantization.map { QuantizeOnLoad(type: $0.type, doubleQuant: $0.doubleQuant) } ?? (loadIn4bit ? QuantizeOnLoad() : nil)
        var out: [String: Any] = [:]
        var policies: [String: Any] = [:]
        var lines: [String] = []
        lines.append("\(c.architecture.rawValue): \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), vocab \(c.vocabSize); LoRA r=\(loraRank) on \(targets.map(\.rawValue).joined(separator: ",")); batch \(batchSize) x \(maxSeqLength) tokens")
        for policy in CheckpointPolicy.allCases {
            let p = MemoryPlanner.plan(config: c, lora: lora, batch: batchSize, tokens: maxSeqLength, policy: policy, fileBytes: fileBytes, fourBit: fourBit, savedModuleParameters: trainedWhole)
            var entry: [String: Any] = ["peak_bytes": p.peakBytes, "parts": p.parts.map { ["name": $0.name, "bytes": $0.bytes, "resident": $0.resident] }]
            lines.append("")
            lines.append("policy \(policy.rawValue): peak \(ByteCount.format(p.peakBytes))")
            func row(_ name: String, _ bytes: Int, _ note: String = "") -> String {
                let b = ByteCount.format(bytes)
                return "  " + name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(repeating: " ", count: max(0, 12 - b.count)) + b + note
            }
            for part in p.parts { lines.append(row(part.name, part.bytes, part.resident ? "" : "  (not resident)")) }
            lines.append(row("loading peak", p.loadingPeakBytes))
            if let budget {
                let t = MemoryPlanner.maxTokens(budget: budget) { MemoryPlanner.plan(config: c, lora: lora, batch: batchSize, tokens: $0, policy: policy, fileBytes: fileBytes, fourBit: fourBit, savedModuleParameters: trainedWhole).peakBytes }
                entry["max_seq_length"] = t
                lines.append("  longest context in \(memory!): \(t) tokens")
            }
            policies[policy.rawValue] = entry
        }
        out["policies"] = policies
        out["model_type"] = c.architecture.rawValue
        if gpus {
            let sizes = [8, 12, 16, 24, 40, 48, 80]
            lines.append("")
            lines.append("GPU memory model (\(fourBit != nil ? "NF4" : "16-bit") base, bf16 activations, LoRA r=\(loraRank), batch \(batchSize)): longest context")
            lines.append("  GB     none  recompute    offload")
            var table: [[String: Any]] = []
            for gb in sizes {
                var row: [String: Any] = ["gb": gb]
                var cells: [String] = []
                for policy in CheckpointPolicy.allCases {
                    let t = MemoryPlanner.maxTokens(budget: gb * 1_000_000_000, step: 16, limit: 1 << 23) { tok in
                        GPUMemoryModel.peakBytes(config: c, lora: lora, fourBit: loadIn4bit, batch: batchSize, tokens: tok, policy: policy)
                    }
                    row[policy.rawValue] = t
                    cells.append(String(format: "%10d", t))
                }
                table.append(row)
                lines.append(String(format: "  %2d ", gb) + cells.joined(separator: " "))
            }
            lines.append("  Assumptions: \(gpuAssumptions)")
            out["gpus"] = table
        }
        if json {
            let d = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            FileHandle.standardOutput.write(d + Data("\n".utf8))
        } else {
            print(lines.joined(separator: "\n"))
        }
    }

    private var gpuAssumptions: String {
        "decoder linears in 16-bit or NF4 (4.127 bits with double quant), embeddings/lm_head 16-bit, LoRA + AdamW states fp32, activations bf16 in the CPU engine's layout (tiled attention and MLP, chunked cross-entropy), offload keeps layer inputs in host RAM, 1 GiB CUDA context."
    }
}
