import Testing
import Foundation
import Sloth

/// Debian's headless Chromium, when installed (scripts/interop/setup.sh installs it for make test-interop).
let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// report.html of a demo run (with evaluation) renders in a real browser: the screenshot is not blank and the page
/// logs no console message. The screenshot is kept at .cache/report-screenshot.png.
@Test(.enabled(if: chromium != nil || ProcessInfo.processInfo.environment["SLOTH_REQUIRE_INTEROP"] == "1"))
func reportRendersInChromium() throws {
    let browser = try #require(chromium, "make test-interop needs Debian's chromium")
    let repo = DemoAdapter.repo
    let tmp = TrainFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: tmp) }
    let out = tmp.appendingPathComponent("demo")
    let r = try CLI.run(["train", "--model", repo.appendingPathComponent("models/demo").path, "--data", repo.appendingPathComponent("data/demo.jsonl").path,
                         "--eval-data", repo.appendingPathComponent("data/demo-eval.jsonl").path, "--eval-steps", "5", "--max-steps", "30",
                         "--batch-size", "8", "--learning-rate", "2e-3", "--lr-scheduler", "cosine", "--warmup-steps", "3",
                         "--output", out.path, "--quiet"])
    try #require(r.0 == 0, "\(r.2)")
    let shot = repo.appendingPathComponent(".cache/report-screenshot.png")
    try FileManager.default.createDirectory(at: shot.deletingLastPathComponent(), withIntermediateDirectories: true)
    try? FileManager.default.removeItem(at: shot)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: browser)
    p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,2200", "--enable-logging=stderr", "--v=0",
                   "--user-data-dir=\(tmp.appendingPathComponent("profile").path)", "--screenshot=\(shot.path)",
                   "file://" + out.appendingPathComponent("report.html").path]
    let err = Pipe()
    p.standardOutput = FileHandle.nullDevice; p.standardError = err
    try p.run()
    let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    try #require(FileManager.default.fileExists(atPath: shot.path), "no screenshot; chromium said:\n\(log)")
    let console = log.split(separator: "\n").filter { $0.contains("CONSOLE") || $0.contains("Uncaught") }
    #expect(console.isEmpty, "console messages:\n\(console.joined(separator: "\n"))")
    let (code, stats) = try runReferenceScript("scripts/interop/png_stats.py", [shot.path])
    print("report screenshot \(shot.path): \(stats.trimmingCharacters(in: .whitespacesAndNewlines))")
    let d = try JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any]
    #expect(code == 0)
    #expect((d?["colors"] as? Int ?? 0) > 20 && (d?["non_white"] as? Double ?? 0) > 0.02)
}
