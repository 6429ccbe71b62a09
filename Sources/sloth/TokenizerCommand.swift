import ArgumentParser
import Foundation
import Sloth

/// `sloth tokenizer`: encode, decode, inspect, convert and heal tokenizers.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode, decode, inspect, convert and heal tokenizers (identical to Hugging Face tokenizers).",
        discussion: """
        PATH / --tokenizer may be a model folder, a tokenizer.json, a SentencePiece tokenizer.model or a .gguf file.
        Examples:
          echo '{"text": "Hello world"}' | sloth tokenizer encode --tokenizer models/tiny-llama
          sloth tokenizer inspect models/tiny-llama
          sloth tokenizer convert models/mistral/tokenizer.model --output out/mistral-fast
        """,
        subcommands: [TokenizerEncode.self, TokenizerDecode.self, TokenizerInspect.self, TokenizerConvert.self, TokenizerHeal.self]
    )
}

/// Reads JSONL rows from a file or standard input.
enum JSONLines {
    /// The non-empty lines of the input, each with its 1-based line number.
    static func read(_ path: String?) throws -> [(Int, Data)] {
        let data: Data
        if let path {
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw ValidationError("\(path): cannot read the input (\(error.localizedDescription))")
            }
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        var out: [(Int, Data)] = []
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 10) ?? data.endIndex
            line += 1
            let slice = data[start..<end]
            if slice.contains(where: { $0 != 32 && $0 != 9 && $0 != 13 }) { out.append((line, Data(slice))) }
            start = end < data.endIndex ? data.index(after: end) : end
        }
        return out
    }

    /// Parses one row as a JSON object, with an error naming the input and line.
    static func object(_ row: (Int, Data), input: String?) throws -> [String: Any] {
        guard let o = (try? JSONSerialization.jsonObject(with: row.1)) as? [String: Any] else {
            throw ValidationError("\(input ?? "stdin") line \(row.0): not a JSON object; each line must look like {\"text\": \"...\"}")
        }
        return o
    }

    /// Writes text to standard output in one go.
    static func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }
}

/// Loads a tokenizer, turning its typed error into a CLI error.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do { return try Tokenizer.load(from: URL(fileURLWithPath: path)) } catch let e as TokenizerError {
        throw ValidationError(e.description)
    }
}

struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "encode",
        abstract: "Encode JSONL rows {\"text\": ...} into rows {\"ids\": [...]}, in the same order.")

    @Option(help: "Model folder, tokenizer.json, tokenizer.model or .gguf file.") var tokenizer: String
    @Flag(name: .customLong("no-special-tokens"), help: "Do not add the post-processor's special tokens (BOS...).") var noSpecialTokens = false
    @Option(help: "JSONL input file (default: standard input).") var input: String?
    @Option(help: "Threads (default: all cores).") var threads: Int?

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        let rows = try JSONLines.read(input)
        let texts = try rows.map { row -> String in
            // Sloth's own JSON reader keeps every scalar (Foundation's drops a U+FEFF inside a string).
            guard let v = try? JinjaValue.parseJSON(row.1), case .dict = v else {
                throw ValidationError("\(input ?? "stdin") line \(row.0): not a JSON object; each line must look like {\"text\": \"...\"}")
            }
            guard let t = v["text"]?.stringValue else {
                throw ValidationError("\(input ?? "stdin") line \(row.0): field \"text\" must be a string")
            }
            return t
        }
        let ids = tok.encodeBatch(texts, addSpecialTokens: !noSpecialTokens, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        var out = ""
        out.reserveCapacity(ids.reduce(0) { $0 + $1.count * 7 + 12 })
        for row in ids {
            out += "{\"ids\":["
            out += row.map(String.init).joined(separator: ",")
            out += "]}\n"
        }
        JSONLines.write(out)
    }
}

struct TokenizerDecode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decode",
        abstract: "Decode JSONL rows {\"ids\": [...]} into rows {\"text\": ...}, in the same order.")

    @Option(help: "Model folder, tokenizer.json, tokenizer.model or .gguf file.") var tokenizer: String
    @Flag(name: .customLong("skip-special-tokens"), help: "Leave special tokens out of the text.") var skipSpecialTokens = false
    @Option(help: "JSONL input file (default: standard input).") var input: String?

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var out = ""
        for row in try JSONLines.read(input) {
            let o = try JSONLines.object(row, input: input)
            guard let raw = o["ids"] as? [Any], let ids = try? raw.map({ v -> Int in
                guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else { throw ValidationError("") }
                return i
            }) else {
                throw ValidationError("\(input ?? "stdin") line \(row.0): field \"ids\" must be a list of integers")
            }
            let text = tok.decode(ids, skipSpecialTokens: skipSpecialTokens)
            let data = try JSONSerialization.data(withJSONObject: ["text": text], options: [.withoutEscapingSlashes])
            out += String(decoding: data, as: UTF8.self) + "\n"
        }
        JSONLines.write(out)
    }
}

struct TokenizerInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect",
        abstract: "Show a tokenizer's kind, vocabulary size, special tokens and what healing would change.")

    @Argument(help: "Model folder, tokenizer.json, tokenizer.model or .gguf file.") var path: String
    @Option(help: "Embedding rows of the model (default: config.json vocab_size beside the tokenizer).") var embeddingRows: Int?

    func run() throws {
        let tok = try loadTokenizer(path)
        var lines: [String] = []
        lines.append("file: \(tok.file)")
        lines.append("kind: \(tok.kind)")
        lines.append("vocab size: \(tok.vocabSize) (\(tok.addedTokens.count) added tokens, \(tok.addedTokens.filter(\.special).count) special)")
        for (name, token, id) in [("bos", tok.bosToken, tok.bosTokenId), ("eos", tok.eosToken, tok.eosTokenId),
                                  ("pad", tok.padToken, tok.padTokenId), ("unk", tok.unkToken, tok.unkTokenId)] {
            lines.append("\(name): \(token.map { "\($0) -> \(id.map(String.init) ?? "not in the vocabulary")" } ?? "none")")
        }
        let sample = tok.encode("Hello world")
        lines.append("encode(\"Hello world\"): \(sample) \(tok.tokens(sample))")
        if let t = tok.chatTemplate { lines.append("chat template: \(t.count) characters") } else { lines.append("chat template: none") }
        if !tok.chatTemplates.isEmpty { lines.append("named chat templates: \(tok.chatTemplates.keys.sorted().joined(separator: ", "))") }
        if let m = tok.modelMaxLength { lines.append("model max length: \(m)") }
        let rows = embeddingRows ?? TokenizerHealer.embeddingRows(near: URL(fileURLWithPath: path))
        let report = TokenizerHealer.plan(tok, embeddingRows: rows)
        if report.repairs.isEmpty && report.errors.isEmpty { lines.append("healing: nothing to change") }
        for r in report.repairs { lines.append("healing would: \(r)") }
        for e in report.errors { lines.append("healing error: \(e)") }
        JSONLines.write(lines.joined(separator: "\n") + "\n")
    }
}

struct TokenizerConvert: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert",
        abstract: "Convert a SentencePiece tokenizer.model to tokenizer.json (slow to fast), checked as Unsloth checks it.")

    @Argument(help: "A tokenizer.model, or a folder holding one.") var path: String
    @Option(help: "Folder to write tokenizer.json into.") var output: String
    @Option(help: "Conversion to follow: llama or generic (default: from tokenizer_config.json / the model).") var flavor: String?

    func run() throws {
        var url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue { url.appendPathComponent("tokenizer.model") }
        var f: SentencePieceConverter.Flavor?
        if let flavor {
            guard let v = SentencePieceConverter.Flavor(rawValue: flavor) else { throw ValidationError("--flavor must be llama or generic") }
            f = v
        }
        do {
            let result = try SentencePieceConverter.convertChecked(file: url, flavor: f)
            let out = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try TokenizerWriter.write(result.tokenizer, to: out.appendingPathComponent("tokenizer.json"))
            for line in result.notes { print(line) }
            print("wrote \(out.appendingPathComponent("tokenizer.json").path) (\(result.tokenizer.vocabSize) tokens)")
        } catch let e as TokenizerError { throw ValidationError(e.description) }
    }
}

struct TokenizerHeal: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heal",
        abstract: "Repair a tokenizer (special tokens, out-of-range added tokens, missing pad, ChatML) and write it out.")

    @Argument(help: "Model folder, tokenizer.json or tokenizer.model.") var path: String
    @Option(help: "Folder to write the healed tokenizer files into.") var output: String
    @Option(help: "Embedding rows of the model (default: config.json vocab_size beside the tokenizer).") var embeddingRows: Int?
    @Flag(help: "Map <|im_start|> and <|im_end|> onto existing tokens (ChatML without new embedding rows).") var chatml = false

    func run() throws {
        do {
            let url = URL(fileURLWithPath: path)
            let tok = try Tokenizer.load(from: url)
            let rows = embeddingRows ?? TokenizerHealer.embeddingRows(near: url)
            let report = try TokenizerHealer.heal(tok, source: url, embeddingRows: rows, chatml: chatml, output: URL(fileURLWithPath: output))
            for r in report.repairs { print("healed: \(r)") }
            if report.repairs.isEmpty { print("nothing to heal") }
            print("wrote \(output)")
        } catch let e as TokenizerError { throw ValidationError(e.description) }
    }
}
