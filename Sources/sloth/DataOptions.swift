import ArgumentParser
import Foundation
import Sloth

/// Dataset flags shared by train and eval.
struct DataOptions: ParsableArguments {
    @Option(help: "Chat template for chat rows: a name (sloth template list), a .jinja file or a folder; default: the model's.")
    var chatTemplate: String?
    @Flag(help: "Train only on assistant responses of chat rows (Unsloth's train_on_responses_only).")
    var trainOnResponsesOnly = false
    @Option(help: "With --train-on-responses-only: the text that starts a user turn (default: detected from the template).")
    var instructionPart: String?
    @Option(help: "With --train-on-responses-only: the text that starts an assistant turn (default: detected).")
    var responsePart: String?
    @Flag(help: "Pack several rows into each sequence of --max-seq-length tokens (attention stays within each row).")
    var packing = false

    /// Reads the dataset with the model folder's tokenizer and chat template.
    /// `tokenizer` replaces the folder's (e.g. with tokens added by --add-tokens).
    func load(_ data: URL, model: URL, maxLength: Int, vocabSize: Int, tokenizer: Tokenizer? = nil) throws -> [TokenizedRow] {
        var o = DatasetOptions(codec: try tokenizer ?? TextEncoding.codec(for: model))
        if let codec = o.codec {
            if let spec = chatTemplate {
                o.chat = try ChatFormatter(folder: model, templateSpec: spec, codec: codec)
            } else {
                o.chat = try? ChatFormatter(folder: model, codec: codec)
            }
        }
        o.trainOnResponsesOnly = trainOnResponsesOnly
        o.instructionPart = instructionPart; o.responsePart = responsePart
        o.maxLength = maxLength; o.vocabSize = vocabSize
        return try DatasetLoader.load(data, options: o).rows
    }
}
