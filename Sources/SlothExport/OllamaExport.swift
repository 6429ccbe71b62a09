import Foundation
import SlothFormats
import SlothModels

/// `sloth export ollama`: a folder Ollama builds a model from (`ollama create NAME -f DIR/Modelfile`): the GGUF
/// and a Modelfile whose TEMPLATE (Go text/template) renders the chat template's format, with its stop strings.
public enum OllamaExport {
    /// A chat format Ollama can render: the Modelfile TEMPLATE and the stop strings.
    public struct Format: Sendable, Equatable {
        public let name: String
        public let template: String
        public let stops: [String]
    }

    /// The formats Sloth translates (the named templates of `sloth template list` they correspond to), with
    /// the templates Ollama itself ships for them.
    public static let formats: [Format] = [
        Format(name: "chatml",
               template: "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
               stops: ["<|im_start|>", "<|im_end|>"]),
        Format(name: "llama-3",
               template: "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
               stops: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
        Format(name: "mistral",
               template: "[INST] {{ range $index, $_ := .Messages }}\n{{- if eq .Role \"system\" }}{{ .Content }}\n\n{{ else if eq .Role \"user\" }}{{ .Content }}[/INST]\n{{- else if eq .Role \"assistant\" }} {{ .Content }}</s>[INST] {{ end }}\n{{- end }}",
               stops: ["[INST]", "[/INST]", "</s>"]),
        Format(name: "gemma",
               template: "{{- $system := \"\" }}\n{{- range .Messages }}\n{{- if eq .Role \"system\" }}\n{{- if not $system }}{{ $system = .Content }}\n{{- else }}{{ $system = printf \"%s\\n\\n%s\" $system .Content }}\n{{- end }}\n{{- continue }}\n{{- else if eq .Role \"user\" }}<start_of_turn>user\n{{- if $system }}\n{{ $system }}\n{{- $system = \"\" }}\n{{- end }}\n{{- else if eq .Role \"assistant\" }}<start_of_turn>model\n{{- end }}\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n",
               stops: ["<start_of_turn>", "<end_of_turn>"]),
        Format(name: "zephyr",
               template: "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n",
               stops: ["<|system|>", "</s>", "<|user|>", "<|assistant|>"]),
        Format(name: "none", template: "{{ .Prompt }}", stops: []),
    ]

    /// The format a Jinja chat template produces, recognised by the markers it writes; nil when none matches.
    public static func detect(chatTemplate t: String) -> Format? {
        func f(_ n: String) -> Format? { formats.first { $0.name == n } }
        if t.contains("<|im_start|>") { return f("chatml") }
        if t.contains("<|start_header_id|>") { return f("llama-3") }
        if t.contains("<start_of_turn>") { return f("gemma") }
        if t.contains("[INST]") { return f("mistral") }
        if t.contains("<|user|>") && t.contains("<|assistant|>") { return f("zephyr") }
        return nil
    }

    /// The Modelfile text for a GGUF file named `ggufName` beside it.
    public static func modelfile(ggufName: String, format: Format, system: String?, parameters: [(String, String)] = []) -> String {
        var s = "# Made by sloth export ollama. Build it with: ollama create NAME -f Modelfile\nFROM ./\(ggufName)\n"
        s += "TEMPLATE \"\"\"\(format.template)\"\"\"\n"
        if let system { s += "SYSTEM \"\"\"\(system)\"\"\"\n" }
        for stop in format.stops { s += "PARAMETER stop \"\(stop)\"\n" }
        for (k, v) in parameters { s += "PARAMETER \(k) \(v)\n" }
        return s
    }

    /// Writes `output/Modelfile` and places the GGUF beside it (a hard link when possible, else a copy).
    /// `template`: a format name overriding detection from the GGUF's `tokenizer.chat_template`.
    @discardableResult
    public static func run(gguf: URL, output: URL, template: String?, system: String?) throws -> Format {
        let file = try GGUFFile(url: gguf)
        if file["general.type"]?.string == "adapter" {
            throw ExportError.unsupported(what: "a LoRA adapter GGUF as an Ollama model", hint: "export the merged model (sloth export gguf --adapter DIR) and pass that file.")
        }
        let format: Format
        if let template {
            guard let f = formats.first(where: { $0.name == template }) else {
                throw ExportError.unsupported(what: "--template '\(template)'", hint: "choose one of \(formats.map(\.name).joined(separator: ", ")).")
            }
            format = f
        } else if let t = file["tokenizer.chat_template"]?.string {
            guard let f = detect(chatTemplate: t) else {
                throw ExportError.unsupported(what: "translating this chat template to Ollama's", hint: "\(gguf.path)'s tokenizer.chat_template is none of \(formats.dropLast().map(\.name).joined(separator: ", ")); pass --template NAME (or --template none for raw prompts).")
            }
            format = f
        } else {
            throw ExportError.unsupported(what: "a GGUF without tokenizer.chat_template", hint: "pass --template NAME (\(formats.map(\.name).joined(separator: ", "))).")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        let dest = output.appendingPathComponent(gguf.lastPathComponent)
        if dest.standardizedFileURL.path != gguf.standardizedFileURL.path {
            let tmp = output.appendingPathComponent(".\(gguf.lastPathComponent).tmp-\(getpid())")
            try? fm.removeItem(at: tmp)
            if link(gguf.path, tmp.path) != 0 { try fm.copyItem(at: gguf, to: tmp) }
            guard rename(tmp.path, dest.path) == 0 else {
                try? fm.removeItem(at: tmp)
                throw ExportError.io(path: dest.path, detail: "cannot move the GGUF into place: \(String(cString: strerror(errno)))")
            }
        }
        try writeAtomically(Data(modelfile(ggufName: gguf.lastPathComponent, format: format, system: system).utf8),
                            to: output.appendingPathComponent("Modelfile"))
        return format
    }
}
