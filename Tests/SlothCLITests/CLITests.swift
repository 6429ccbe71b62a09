import Testing
import Foundation

/// Runs the built `sloth` binary end to end.
enum CLI {
    /// The `sloth` executable beside the test runner in the products folder (or $SLOTH_BIN).
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["SLOTH_BIN"] { return URL(fileURLWithPath: path) }
        var dir = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        for _ in 0..<4 {
            dir = dir.deletingLastPathComponent()
            let candidate = dir.appendingPathComponent("sloth")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue { return candidate }
        }
        return dir.appendingPathComponent("sloth")
    }

    /// Runs sloth with the arguments and standard input, returning (status, stdout, stderr).
    static func run(_ args: [String], stdin: Data? = nil) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(stdin) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

@Test func helpListsSubcommands() throws {
    let (status, out, _) = try CLI.run(["--help"])
    #expect(status == 0)
    #expect(out.contains("train"))
}
