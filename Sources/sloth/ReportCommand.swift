import ArgumentParser
import Foundation
import Sloth

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write OUTPUT/report.html for a sloth train output folder (also while the run is going).",
        discussion: """
        One self-contained page (no scripts, no external assets): training and eval loss, learning rate, gradient
        norm, tokens/s and memory over steps, the memory plan as a stacked bar, the configuration and the environment.

        Examples:
          sloth report out/demo/adapter
          xdg-open out/demo/adapter/report.html
        """)

    @Argument(help: "The --output folder of sloth train (holding run.json and metrics.jsonl).") var folder: String

    func run() throws {
        try reportingErrors {
            let url = try TrainingReport.write(folder: URL(fileURLWithPath: folder))
            print(url.path)
        }
    }
}
