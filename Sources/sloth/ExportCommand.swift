import ArgumentParser

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export merged models, GGUF and Ollama files (work in progress).")
    func run() throws { throw ValidationError("sloth export is not built yet") }
}
