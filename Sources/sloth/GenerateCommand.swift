import ArgumentParser
import Foundation
import Sloth

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text with a model (and an optional adapter), using a key/value cache.",
        discussion: """
        --temperature 0 (the default) is greedy. Prompts of different lengths in --prompts are generated
        together, each exactly as it would be alone.

        Examples:
          sloth generate --model models/demo --adapter out/demo/adapter --prompt "User: Tell me about Max.\\nAssistant:"
          sloth generate --model ./m --prompts prompts.jsonl --temperature 0.7 --top-p 0.9 --seed 1 > out.jsonl
        """)

    @Option(help: "Model folder, or a .gguf file (any type sloth export gguf writes).") var model: String
    @Option(help: "PEFT adapter folder to apply (unmerged).") var adapter: String?
    @Option(help: "A text prompt (needs the folder's tokenizer).") var prompt: String?
    @Option(help: "JSONL rows {\"prompt\": text} or {\"input_ids\": [...]}; writes one JSONL row per prompt.") var prompts: String?
    @Option var maxNewTokens: Int = 128
    @Option(help: "0 = greedy.") var temperature: Double = 0
    @Option var topK: Int = 0
    @Option var topP: Double = 1
    @Option var minP: Double = 0
    @Option var repetitionPenalty: Double = 1
    @Option var seed: UInt64 = 0
    @Flag(help: "Do not stop at end-of-sequence tokens.") var ignoreEos = false
    @Option(help: "Stop when the output contains this text (repeatable); the text is cut there.") var stop: [String] = []
    @Flag(help: "Wrap each prompt as a user message with the model's chat template (add_generation_prompt).") var chat = false
    @Option(help: "With --chat: a named template, a .jinja file or a folder, instead of the model's.") var chatTemplate: String?

    func validate() throws {
        guard (prompt == nil) != (prompts == nil) else { throw ValidationError("give exactly one of --prompt and --prompts") }
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
        guard temperature >= 0, topP > 0, topP <= 1, minP >= 0, minP < 1, repetitionPenalty > 0 else {
            throw ValidationError("sampling parameters out of range (temperature >= 0, 0 < top-p <= 1, 0 <= min-p < 1, repetition-penalty > 0)")
        }
    }

    func run() throws {
        do { try generate() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func generate() throws {
        let url = URL(fileURLWithPath: model)
        let lm = try LanguageModel.load(path: url)
        if let adapter { try PEFTAdapter.load(URL(fileURLWithPath: adapter), into: lm) }
        let codec = try TextEncoding.codec(for: url)
        var eos = lm.config.eosTokenIds
        eos += GenerationConfig.eosTokenIds(folder: url)
        if let codec { eos += codec.eosTokenIds }
        let gen = Generator(model: lm, eosIds: eos)
        var p = SamplingParameters()
        p.maxNewTokens = maxNewTokens; p.temperature = temperature; p.topK = topK; p.topP = topP; p.minP = minP
        p.repetitionPenalty = repetitionPenalty; p.seed = seed; p.ignoreEOS = ignoreEos
        let formatter = try chat ? codec.map { try ChatFormatter(folder: url, templateSpec: chatTemplate, codec: $0) } : nil
        if chat && formatter == nil { throw ValidationError("--chat needs the model folder's tokenizer") }
        func encodeText(_ text: String) throws -> [Int32] {
            guard let codec else { throw ValidationError("\(model) has no tokenizer: use --prompts with {\"input_ids\": [...]} rows") }
            if let formatter { return try formatter.promptIds([(role: "user", content: text)]) }
            return try codec.encode(text, addSpecialTokens: true).map(Int32.init)
        }
        let stops = StopStrings(stop)
        if let prompt {
            let ids = try encodeText(prompt)
            let stream = TextStream(codec: codec!, stops: stops)
            _ = try gen.generate(prompts: [ids], parameters: p) { _, tok in stream.push(tok) }
            stream.finish()
            return
        }
        let file = prompts!
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--prompts: cannot read \(file)") }
        var inputs: [[Int32]] = []
        for (i, line) in data.split(separator: 0x0A).enumerated() where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw DatasetError(file: file, row: i + 1, message: "not a JSON object")
            }
            if let ids = obj["input_ids"] as? [Int] { inputs.append(ids.map(Int32.init)) }
            else if let text = obj["prompt"] as? String {
                guard codec != nil else { throw DatasetError(file: file, row: i + 1, message: "text prompt but \(model) has no tokenizer; give input_ids") }
                inputs.append(try encodeText(text))
            } else { throw DatasetError(file: file, row: i + 1, message: "expected {\"prompt\": text} or {\"input_ids\": [...]}") }
        }
        var texts = [String?](repeating: nil, count: inputs.count)
        var produced = [[Int]](repeating: [], count: inputs.count)
        let outs = try gen.generate(prompts: inputs, parameters: p) { s, tok in
            produced[s].append(Int(tok))
            guard let codec, !stops.strings.isEmpty else { return true }
            if let cut = stops.cut(codec.decode(produced[s], skipSpecialTokens: true)) { texts[s] = cut; return false }
            return true
        }
        for (s, o) in outs.enumerated() {
            var row: [String: Any] = ["ids": o.map(Int.init)]
            row["text"] = texts[s] ?? codec?.decode(o.map(Int.init), skipSpecialTokens: true) ?? NSNull()
            let line = try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])
            FileHandle.standardOutput.write(line + Data("\n".utf8))
        }
    }
}

/// Streams decoded text to stdout as tokens arrive, holding back what could still become a stop string.
final class TextStream {
    let codec: TextCodec, stops: StopStrings
    var ids: [Int] = [], emitted = "", stopped = false
    var out: (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }
    init(codec: TextCodec, stops: StopStrings) { self.codec = codec; self.stops = stops }

    /// Adds a token; returns false when a stop string has appeared.
    func push(_ tok: Int32) -> Bool {
        ids.append(Int(tok))
        let text = codec.decode(ids, skipSpecialTokens: true)
        if let cut = stops.cut(text) { emit(cut); stopped = true; return false }
        // Hold back a tail that is a prefix of some stop string, and incomplete UTF-8 (U+FFFD at the end).
        var safe = text
        if safe.hasSuffix("\u{FFFD}") { safe = String(safe.dropLast()) }
        for s in stops.strings {
            for k in stride(from: min(s.count - 1, safe.count), to: 0, by: -1) where safe.hasSuffix(String(s.prefix(k))) {
                safe = String(safe.dropLast(k)); break
            }
        }
        emit(safe)
        return true
    }
    func emit(_ text: String) {
        guard text.hasPrefix(emitted), text.count > emitted.count else { return }
        out(String(text.dropFirst(emitted.count)))
        emitted = text
    }
    func finish() { if !stopped { emit(codec.decode(ids, skipSpecialTokens: true)) }; out("\n") }
}

/// generation_config.json's end-of-sequence ids (an int or a list), if the folder has the file.
enum GenerationConfig {
    static func eosTokenIds(folder: URL) -> [Int] {
        guard let d = FileManager.default.contents(atPath: folder.appendingPathComponent("generation_config.json").path),
              let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [] }
        if let i = obj["eos_token_id"] as? Int { return [i] }
        return obj["eos_token_id"] as? [Int] ?? []
    }
}
