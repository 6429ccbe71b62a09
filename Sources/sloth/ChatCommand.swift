import ArgumentParser
import Foundation
import Sloth

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk to a model: each line you type is a user turn, rendered with the chat template, with the history.",
        discussion: """
        Commands: /reset clears the history, /system TEXT sets a system message, /exit (or end of input) quits.

        Examples:
          sloth chat --model models/demo --adapter out/demo/adapter
          echo "Tell me about Max and his red dog." | sloth chat --model models/demo --adapter out/demo/adapter
        """)

    @Option(help: "Model folder (with tokenizer files).") var model: String
    @Option(help: "PEFT adapter folder to apply.") var adapter: String?
    @Option(help: "A named template, a .jinja file or a folder, instead of the model's.") var chatTemplate: String?
    @Option var maxNewTokens: Int = 256
    @Option(help: "0 = greedy.") var temperature: Double = 0
    @Option var topP: Double = 1
    @Option var seed: UInt64 = 0

    func run() throws {
        do { try chat() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func chat() throws {
        let url = URL(fileURLWithPath: model)
        let lm = try LanguageModel.load(path: url)
        if let adapter { try PEFTAdapter.load(URL(fileURLWithPath: adapter), into: lm) }
        guard let codec = try TextEncoding.codec(for: url) else { throw ValidationError("\(model) has no tokenizer.json or tokenizer.model") }
        let formatter = try ChatFormatter(folder: url, templateSpec: chatTemplate, codec: codec)
        let gen = Generator(model: lm, eosIds: lm.config.eosTokenIds + GenerationConfig.eosTokenIds(folder: url) + codec.eosTokenIds)
        var p = SamplingParameters()
        p.maxNewTokens = maxNewTokens; p.temperature = temperature; p.topP = topP; p.seed = seed
        let tty = isatty(fileno(stdin)) != 0
        var history: [(role: String, content: String)] = []
        var system: String?
        while true {
            if tty { FileHandle.standardOutput.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" { history = []; say("(history cleared)"); continue }
            if text.hasPrefix("/system ") { system = String(text.dropFirst(8)); history = []; say("(system message set; history cleared)"); continue }
            history.append((role: "user", content: text))
            let messages = (system.map { [(role: "system", content: $0)] } ?? []) + history
            let ids = try formatter.promptIds(messages)
            let stream = TextStream(codec: codec, stops: StopStrings([]))
            p.seed &+= 1
            let out = try gen.generate(prompts: [ids], parameters: p) { _, tok in stream.push(tok) }[0]
            stream.finish()
            let reply = codec.decode(out.map(Int.init), skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
            history.append((role: "assistant", content: reply))
        }
    }
}

/// Writes a line to stdout unbuffered (in order with streamed tokens).
func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
