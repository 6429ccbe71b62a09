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
        subcommands: [TrainCommand.self, EvalCommand.self, GenerateCommand.self, ChatCommand.self, PlanCommand.self, ExportCommand.self, TokenizerCommand.self, TemplateCommand.self]
    )
}
