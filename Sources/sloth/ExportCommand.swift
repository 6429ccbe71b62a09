import ArgumentParser
import Foundation
import Sloth

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a fine-tune where people run models: merged safetensors, GGUF, GGUF LoRA, Ollama.",
        subcommands: [ExportMergedCommand.self])
}

/// Prints a failure as `error: ...` and exits 1 (validation errors keep ArgumentParser's usage output).
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct ExportMergedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merged",
        abstract: "Merge a LoRA adapter into its base model and write a plain Hugging Face checkpoint.",
        discussion: """
        Each linear weight becomes W + scale * B A (computed in fp32, rounded once to --dtype); tensors stream one at
        a time, so memory stays near the largest tensor. The output folder gets sharded safetensors (+ index),
        config.json, generation_config.json and the tokenizer files. Free disk is checked before anything is
        written; the output appears under its final name only when complete.

        Examples:
          sloth export merged --model ./my-llama --adapter out/adapter --output out/merged
          sloth export merged --model ./my-llama --adapter out/adapter --output out/merged --dtype bf16 --max-shard-size 2GB
          sloth export merged --model ./big --adapter out/adapter --output out/merged --low-disk
        """)

    @Option(help: "Base model folder.") var model: String
    @Option(help: "PEFT adapter folder (omit to re-save the base, e.g. to change --dtype).") var adapter: String?
    @Option(help: "Output folder.") var output: String
    @Option(help: "bf16 | f16 | f32 (default: each tensor's dtype in the base).") var dtype: String?
    @Option(help: "Shard size limit, e.g. 5GB, 500MB.") var maxShardSize: String = "5GB"
    @Flag(help: "Delete each source shard of --model once it is merged (for disks that cannot hold both).") var lowDisk = false
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        if let dtype, !["bf16", "f16", "f32"].contains(dtype) { throw ValidationError("--dtype must be bf16, f16 or f32") }
        guard let b = ByteCount.parse(maxShardSize), b > 0 else { throw ValidationError("--max-shard-size: '\(maxShardSize)' is not a size (e.g. 5GB)") }
    }

    func run() throws {
        try reportingErrors {
            var o = MergedExport.Options(maxShardBytes: ByteCount.parse(maxShardSize)!, lowDisk: lowDisk)
            o.dtype = dtype.map { ["bf16": DType.bf16, "f16": .f16, "f32": .f32][$0]! }
            let start = Date()
            let line = ProgressLine(quiet: quiet)
            let r = try MergedExport.run(model: URL(fileURLWithPath: model), adapter: adapter.map { URL(fileURLWithPath: $0) },
                                         output: URL(fileURLWithPath: output), options: o, progress: line.show)
            line.done()
            if !quiet {
                FileHandle.standardError.write(Data(String(format: "wrote %@: %d tensors (%d merged), %.2f GB in %.1f s\n",
                                                           output, r.tensors, r.merged, Double(r.bytes) / 1e9, Date().timeIntervalSince(start)).utf8))
            }
        }
    }
}

/// One live status line on a terminal (rewritten in place); on a pipe only lines marked final are printed.
final class ProgressLine {
    let quiet: Bool
    let tty = isatty(fileno(stderr)) != 0
    private var shown = false
    init(quiet: Bool) { self.quiet = quiet }
    func show(_ s: String) {
        guard !quiet else { return }
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K\(s)".utf8)); shown = true }
        else if s.hasPrefix("--") { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }
    func done() { if shown { FileHandle.standardError.write(Data("\n".utf8)); shown = false } }
}
