import ArgumentParser

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "LoRA fine-tune a model (work in progress).")
    func run() throws { throw ValidationError("sloth train is not built yet") }
}
