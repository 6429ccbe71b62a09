import ArgumentParser
import Foundation
import Sloth

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss and perplexity of a model (with an optional adapter) on a dataset.",
        discussion: """
        The loss is the training loss: mean negative log-likelihood over every predicted token whose label is not -100.

        Examples:
          sloth eval --model models/demo --data data/demo-eval.jsonl
          sloth eval --model models/demo --adapter out/demo-adapter --data data/demo-eval.jsonl --per-token nll.jsonl
        """)

    @Option(help: "Model folder, or a .gguf file (any type sloth export gguf writes).") var model: String
    @Option(help: "PEFT adapter folder to apply.") var adapter: String?
    @Option(help: "Dataset (same formats as sloth train).") var data: String
    @Option(help: "Rows per batch.") var batchSize: Int = 8
    @Option(help: "Rows longer than this are truncated.") var maxSeqLength: Int = 2048
    @Option(help: "Write {\"nll\": [...]} per row (positions with label -100 omitted).") var perToken: String?
    @OptionGroup var dataOptions: DataOptions

    func run() throws {
        do {
            let url = URL(fileURLWithPath: model)
            let lm = try LanguageModel.load(path: url)
            if let adapter { try PEFTAdapter.load(URL(fileURLWithPath: adapter), into: lm) }
            let rows = try dataOptions.load(URL(fileURLWithPath: data), model: url, maxLength: maxSeqLength, vocabSize: lm.config.vocabSize)
            var sum = 0.0, count = 0
            if let perToken {
                FileManager.default.createFile(atPath: perToken, contents: nil)
                guard let out = FileHandle(forWritingAtPath: perToken) else { throw ValidationError("--per-token: cannot write \(perToken)") }
                let engine = Engine(model: lm)
                var start = 0
                while start < rows.count {
                    let chunk = Array(rows[start..<min(rows.count, start + max(1, batchSize))])
                    let batch = TokenBatch(rows: chunk.map { ($0.ids, $0.labels) })
                    let nll = try engine.tokenLosses(batch)
                    for r in 0..<batch.batch {
                        var values: [Double] = []
                        for t in 0..<batch.tokens where batch.targets[r * batch.tokens + t] != -100 { values.append(nll[r * batch.tokens + t]) }
                        sum += values.reduce(0, +); count += values.count
                        out.write(try JSONSerialization.data(withJSONObject: ["nll": values]))
                        out.write(Data("\n".utf8))
                    }
                    start += chunk.count
                }
            } else {
                // The same function --eval-data uses during training.
                let (mean, n) = try evaluationLoss(model: lm, rows: rows, batchSize: batchSize)
                sum = mean * Double(n); count = n
            }
            let loss = count > 0 ? sum / Double(count) : .nan
            print(String(format: "loss %.6f  perplexity %.4f  tokens %d  rows %d", loss, exp(loss), count, rows.count))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
