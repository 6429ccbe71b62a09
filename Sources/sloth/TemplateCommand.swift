import ArgumentParser

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "template", abstract: "Render and list chat templates (work in progress).")
    func run() throws { throw ValidationError("sloth template is not built yet") }
}
