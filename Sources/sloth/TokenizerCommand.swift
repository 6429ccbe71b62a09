import ArgumentParser

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "Encode, decode, inspect, convert and heal tokenizers (work in progress).")
    func run() throws { throw ValidationError("sloth tokenizer is not built yet") }
}
