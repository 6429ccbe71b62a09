import ArgumentParser
import Foundation
import Sloth

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a fine-tune where people run models: merged safetensors, GGUF, GGUF LoRA, Ollama.",
        subcommands: [ExportMergedCommand.self, ExportBNB4bitCommand.self, ExportGGUFCommand.self, ExportGGUFLoRACommand.self, ExportOllamaCommand.self])
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
            try runMergedExport(model: model, adapter: adapter, output: output, options: o, quiet: quiet)
        }
    }
}

struct ExportBNB4bitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bnb-4bit",
        abstract: "Write a pre-quantized bitsandbytes 4-bit checkpoint (a quarter of the download) that transformers loads.",
        discussion: """
        The decoder's linear weights are quantized to NF4 (or FP4) with double quantization, byte for byte as
        transformers + bitsandbytes would (`BitsAndBytesConfig(load_in_4bit=True, ...)` then `save_pretrained`);
        embeddings, norms and lm_head keep their dtype. With --adapter the LoRA is merged first (W + scale B A in fp32),
        so the result is a 4-bit fine-tune ready for QLoRA or inference. Streams one tensor at a time; free disk is
        checked first and the folder appears under its final name only when complete.

        Examples:
          sloth export bnb-4bit --model ./my-llama --output ./my-llama-bnb-4bit
          sloth export bnb-4bit --model ./my-llama --adapter out/adapter --output out/merged-bnb-4bit --compute-dtype bfloat16
        """)

    @Option(help: "Base model folder (16 or 32-bit).") var model: String
    @Option(help: "PEFT adapter folder to merge before quantizing.") var adapter: String?
    @Option(help: "Output folder.") var output: String
    @Option(help: "nf4 | fp4.") var quantType: String = "nf4"
    @Flag(help: "Keep the per-block absmax in fp32 (no double quantization).") var noDoubleQuant = false
    @Option(help: "bnb_4bit_compute_dtype recorded in config.json: bfloat16 | float16 | float32 (default: the model's dtype).") var computeDtype: String?
    @Option(help: "Shard size limit, e.g. 5GB, 500MB.") var maxShardSize: String = "5GB"
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        guard FourBitType(rawValue: quantType) != nil else { throw ValidationError("--quant-type must be nf4 or fp4") }
        if let computeDtype, !["bfloat16", "float16", "float32"].contains(computeDtype) {
            throw ValidationError("--compute-dtype must be bfloat16, float16 or float32")
        }
        guard let b = ByteCount.parse(maxShardSize), b > 0 else { throw ValidationError("--max-shard-size: '\(maxShardSize)' is not a size (e.g. 5GB)") }
    }

    func run() throws {
        try reportingErrors {
            var o = MergedExport.Options(maxShardBytes: ByteCount.parse(maxShardSize)!)
            o.quantize = QuantizeOnLoad(type: FourBitType(rawValue: quantType)!, doubleQuant: !noDoubleQuant)
            o.computeDType = computeDtype
            try runMergedExport(model: model, adapter: adapter, output: output, options: o, quiet: quiet)
        }
    }
}

/// `export merged` and `export bnb-4bit`: the streamed export with a progress line and a summary.
func runMergedExport(model: String, adapter: String?, output: String, options: MergedExport.Options, quiet: Bool) throws {
    let start = Date()
    let line = ProgressLine(quiet: quiet)
    let r = try MergedExport.run(model: URL(fileURLWithPath: model), adapter: adapter.map { URL(fileURLWithPath: $0) },
                                 output: URL(fileURLWithPath: output), options: options, progress: line.show)
    line.done()
    if !quiet {
        FileHandle.standardError.write(Data(String(format: "wrote %@: %d tensors (%d merged), %.3f GB in %.1f s\n",
                                                   output, r.tensors, r.merged, Double(r.bytes) / 1e9, Date().timeIntervalSince(start)).utf8))
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

struct ExportGGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Write a model (with an adapter merged in) as one GGUF file for llama.cpp.",
        discussion: """
        Tensors get ggml names (q/k rows permuted for llama and mistral, Gemma's norms + 1, no output.weight when
        tied); the tokenizer (SentencePiece tokenizer.model or byte-level BPE tokenizer.json) and chat template go
        into the metadata. --quant follows llama.cpp: f32/f16/bf16/q8_0 as its converter writes them, q4_0,
        q4_k_m, q5_k_m and q6_k with llama-quantize's per-tensor choices (Q6_K for output and some attn_v/ffn_down
        layers in the _M mixes; Q5_0/Q5_1/Q8_0 for rows that are not whole 256-value blocks).

        Examples:
          sloth export gguf --model ./my-llama --output out/model-f16.gguf
          sloth export gguf --model ./my-llama --adapter out/adapter --output out/model-q4_k_m.gguf --quant q4_k_m
        """)

    @Option(help: "Model folder (config.json, safetensors, tokenizer).") var model: String
    @Option(help: "PEFT adapter to merge in first.") var adapter: String?
    @Option(help: "Output .gguf file.") var output: String
    @Option(help: "f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m | q5_k_m | q6_k") var quant: String = "f16"
    @Option(help: "general.name (default: the model folder's name).") var name: String?
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        guard GGUFQuantization(rawValue: quant) != nil else {
            throw ValidationError("--quant must be one of \(GGUFQuantization.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        try reportingErrors {
            let start = Date()
            let line = ProgressLine(quiet: quiet)
            var o = GGUFExport.Options(quant: GGUFQuantization(rawValue: quant)!, name: name)
            o.name = name
            let r = try GGUFExport.run(model: URL(fileURLWithPath: model), adapter: adapter.map { URL(fileURLWithPath: $0) },
                                       output: URL(fileURLWithPath: output), options: o, progress: line.show)
            line.done()
            for w in r.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
            if !quiet {
                let types = r.types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                FileHandle.standardError.write(Data(String(format: "wrote %@: %d tensors (%@), %.1f MB in %.1f s\n", output, r.tensors, types,
                                                           Double(r.bytes) / 1e6, Date().timeIntervalSince(start)).utf8))
            }
        }
    }
}

struct ExportGGUFLoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf-lora",
        abstract: "Write a PEFT adapter as a llama.cpp LoRA GGUF (llama-cli -m base.gguf --lora adapter.gguf).",
        discussion: """
        Examples:
          sloth export gguf-lora --adapter out/adapter --model ./my-llama --output out/adapter.gguf
        """)

    @Option(help: "PEFT adapter folder.") var adapter: String
    @Option(help: "The base model folder the adapter was trained on (names, shapes, q/k layout).") var model: String
    @Option(help: "Output .gguf file.") var output: String
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        try reportingErrors {
            let r = try GGUFLoRAExport.run(adapter: URL(fileURLWithPath: adapter), model: URL(fileURLWithPath: model), output: URL(fileURLWithPath: output))
            if !quiet { FileHandle.standardError.write(Data("wrote \(output): \(r.pairs) LoRA pairs, \(r.bytes) bytes\n".utf8)) }
        }
    }
}

struct ExportOllamaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ollama",
        abstract: "Write a folder Ollama builds a model from: the GGUF and a Modelfile with the chat format and stop strings.",
        discussion: """
        The TEMPLATE is chosen from the GGUF's chat template (chatml, llama-3, mistral, gemma, zephyr are recognised)
        or named with --template. Then: ollama create my-model -f DIR/Modelfile

        Examples:
          sloth export ollama --gguf out/model-q4_k_m.gguf --output out/ollama
          sloth export ollama --gguf out/model.gguf --output out/ollama --template chatml --system "You are terse."
        """)

    @Option(help: "The model's .gguf file.") var gguf: String
    @Option(help: "Output folder (gets the GGUF, hard-linked when possible, and Modelfile).") var output: String
    @Option(help: "chatml | llama-3 | mistral | gemma | zephyr | none (default: detected from the GGUF).") var template: String?
    @Option(help: "A SYSTEM message for the Modelfile.") var system: String?
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        try reportingErrors {
            let f = try OllamaExport.run(gguf: URL(fileURLWithPath: gguf), output: URL(fileURLWithPath: output), template: template, system: system)
            if !quiet { FileHandle.standardError.write(Data("wrote \(output)/Modelfile (template \(f.name)); build it with: ollama create NAME -f \(output)/Modelfile\n".utf8)) }
        }
    }
}
