import ArgumentParser

/// The `sloth` command: one subcommand per file in this folder.
@main
struct SlothCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sloth",
        abstract: "Fine-tune Llama-family models with long context on little memory.",
        discussion: """
        Examples:
          sloth train --model models/tiny-llama --data data.jsonl --output out/adapter
          sloth tokenizer encode --tokenizer models/tiny-llama < rows.jsonl
          sloth template render --template chatml --messages conv.json
        """,
        subcommands: [TrainCommand.self, EvalCommand.self, GenerateCommand.self, ChatCommand.self, PlanCommand.self, ExportCommand.self, ReportCommand.self, TokenizerCommand.self, TemplateCommand.self]
    )

    /// `sloth train --config FILE` becomes the file's flags followed by the command line's own (which win).
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        do {
            args = try ConfigFile.expand(args, command: "train", keys: ConfigFile.keys(of: TrainCommand.self))
        } catch {
            exit(withError: error)
        }
        main(args)
    }
}
