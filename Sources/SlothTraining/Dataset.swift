import Foundation
import SlothModels
import SlothTemplates
import SlothTokenizers

/// One training example: ids and labels aligned with them (transformers convention; -100 ignored).
public struct TokenizedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public init(ids: [Int32], labels: [Int32]) { self.ids = ids; self.labels = labels }
}

/// Errors reading a dataset: each names the file and row.
public struct DatasetError: Error, CustomStringConvertible {
    public let file: String
    public let row: Int?
    public let message: String
    public init(file: String, row: Int?, message: String) { self.file = file; self.row = row; self.message = message }
    public var description: String { row.map { "\(file): row \($0): \(message)" } ?? "\(file): \(message)" }
}

/// The row formats a dataset file may use (one per file).
public enum DatasetFormat: String, Sendable, CaseIterable {
    /// `{"input_ids": [...], "labels": [...]}` (labels optional).
    case tokenized
    /// `{"text": ...}`: trained on every token.
    case text
    /// `{"prompt": ..., "completion": ...}`: trained on the completion (and EOS) only.
    case promptCompletion = "prompt-completion"
    /// `{"messages": [{"role", "content"}], "tools"?: [...]}`: rendered with the chat template.
    case messages
    /// ShareGPT `{"conversations": [{"from", "value"}]}`: role-mapped, then as messages.
    case sharegpt
    /// Alpaca `{"instruction", "input", "output"}`: the Alpaca prompt, trained on the output.
    case alpaca

    /// The format a row's keys say, or nil.
    static func detect(_ keys: Set<String>) -> DatasetFormat? {
        if keys.contains("input_ids") { return .tokenized }
        if keys.contains("messages") { return .messages }
        if keys.contains("conversations") { return .sharegpt }
        if keys.contains("instruction") && keys.contains("output") { return .alpaca }
        if keys.contains("prompt") && keys.contains("completion") { return .promptCompletion }
        if keys.contains("text") { return .text }
        return nil
    }
}

/// How text rows become tokens and labels.
public struct DatasetOptions {
    /// The tokenizer (needed for every format but `tokenized`).
    public var codec: TextCodec?
    /// The chat formatter (needed for `messages` and `sharegpt`).
    public var chat: ChatFormatter?
    /// Train only on the assistant responses of chat rows (Unsloth's train_on_responses_only).
    public var trainOnResponsesOnly = false
    /// Markers for `trainOnResponsesOnly`; detected from the chat template when nil.
    public var instructionPart: String?
    public var responsePart: String?
    public var maxLength: Int?
    public var vocabSize: Int?
    public init(codec: TextCodec? = nil, chat: ChatFormatter? = nil) { self.codec = codec; self.chat = chat }
}

/// Reads training rows from JSONL (one object per line) or a JSON array.
public enum DatasetLoader {
    /// The rows of a file whose rows are pre-tokenized, or `{"text"}` when `encode` is given.
    public static func load(_ url: URL, encode: ((String) throws -> [Int])? = nil, maxLength: Int? = nil, vocabSize: Int? = nil) throws -> [TokenizedRow] {
        var o = DatasetOptions()
        o.codec = encode.map { FunctionCodec(encodeText: $0) }
        o.maxLength = maxLength; o.vocabSize = vocabSize
        return try load(url, options: o).rows
    }

    /// Reads and tokenizes every row; returns the rows and the detected format.
    public static func load(_ url: URL, options o: DatasetOptions) throws -> (rows: [TokenizedRow], format: DatasetFormat) {
        let file = url.path
        let objects = try readObjects(url)
        guard let first = objects.first else { throw DatasetError(file: file, row: nil, message: "holds no rows") }
        guard case .dict(let d0) = first.1, let format = DatasetFormat.detect(Set(d0.keys)) else {
            throw DatasetError(file: file, row: first.0, message: "has keys \(keysOf(first.1)); expected one of: {\"input_ids\": [...], \"labels\": [...]}, {\"text\"}, {\"prompt\", \"completion\"}, {\"messages\"}, {\"conversations\"} (ShareGPT), {\"instruction\", \"input\", \"output\"} (Alpaca)")
        }
        var markers: ResponseMasking.Markers?
        if o.trainOnResponsesOnly {
            guard format == .messages || format == .sharegpt else {
                throw DatasetError(file: file, row: nil, message: "--train-on-responses-only applies to chat rows (messages or conversations); \(format.rawValue) rows are trained on their completion already")
            }
            markers = try responseMarkers(o, file: file)
        }
        var rows: [TokenizedRow] = []
        rows.reserveCapacity(objects.count)
        for (n, obj) in objects {
            guard case .dict(let d) = obj else { throw DatasetError(file: file, row: n, message: "is not a JSON object") }
            guard let f = DatasetFormat.detect(Set(d.keys)) else {
                throw DatasetError(file: file, row: n, message: "has keys \(keysOf(obj)); the file's rows are \(format.rawValue) rows")
            }
            guard f == format else {
                throw DatasetError(file: file, row: n, message: "is a \(f.rawValue) row, but the file's first row is \(format.rawValue): a file holds one format")
            }
            var row = try tokenize(obj, format: format, options: o, markers: markers, file: file, row: n)
            if row.ids.isEmpty { throw DatasetError(file: file, row: n, message: "has no tokens") }
            if let v = o.vocabSize {
                if let bad = row.ids.first(where: { $0 < 0 || Int($0) >= v }) {
                    throw DatasetError(file: file, row: n, message: "input_ids holds \(bad), outside the model's vocabulary (0..<\(v))")
                }
                if let bad = row.labels.first(where: { $0 != -100 && ($0 < 0 || Int($0) >= v) }) {
                    throw DatasetError(file: file, row: n, message: "labels holds \(bad), outside the vocabulary (0..<\(v)) and not -100")
                }
            }
            if let m = o.maxLength, row.ids.count > m {
                row.ids = Array(row.ids.prefix(m)); row.labels = Array(row.labels.prefix(m))
            }
            rows.append(row)
        }
        let trainable = rows.reduce(0) { acc, r in acc + r.labels.dropFirst().filter { $0 != -100 }.count }
        let total = rows.reduce(0) { $0 + max(0, $1.labels.count - 1) }
        if trainable == 0 {
            throw DatasetError(file: file, row: nil, message: "every label is -100 (or rows have one token): there is nothing to learn")
        }
        if Double(trainable) < 0.1 * Double(total) {
            FileHandle.standardError.write(Data("warning: \(file): \(String(format: "%.1f", 100 * (1 - Double(trainable) / Double(total))))% of the labels are masked (-100); check the response markers and max length\n".utf8))
        }
        return (rows, format)
    }

    /// (row number, value) pairs of a JSONL file or a JSON array.
    static func readObjects(_ url: URL) throws -> [(Int, JinjaValue)] {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DatasetError(file: file, row: nil, message: "cannot be read (missing or not a file)")
        }
        let trimmed = data.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if trimmed.first == UInt8(ascii: "[") {
            let v: JinjaValue
            do { v = try JinjaValue.parseJSON(data, source: file) } catch {
                throw DatasetError(file: file, row: nil, message: "starts with '[' but is not a valid JSON array (\(error))")
            }
            guard case .array(let items) = v else { throw DatasetError(file: file, row: nil, message: "is not a JSON array") }
            return items.enumerated().map { ($0.offset + 1, $0.element) }
        }
        var out: [(Int, JinjaValue)] = []
        var lineNo = 0
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            do { out.append((lineNo, try JinjaValue.parseJSON(Data(line), source: file))) } catch {
                throw DatasetError(file: file, row: lineNo, message: "not valid JSON (each line must be one JSON object)")
            }
        }
        return out
    }

    static func keysOf(_ v: JinjaValue) -> String {
        if case .dict(let d) = v { return "[" + d.keys.joined(separator: ", ") + "]" }
        return "(not an object)"
    }

    static func string(_ d: JinjaValue, _ key: String, file: String, row: Int, optional: Bool = false) throws -> String {
        switch d[key] {
        case .string(let s)?: return s
        case .none?, nil, .undefined?: if optional { return "" }
        default: break
        }
        throw DatasetError(file: file, row: row, message: "'\(key)' must be a string")
    }

    static func ints(_ v: JinjaValue?, field: String, file: String, row: Int) throws -> [Int32] {
        guard case .array(let items)? = v else { throw DatasetError(file: file, row: row, message: "'\(field)' must be a list of integers") }
        return try items.enumerated().map { i, x in
            guard case .int(let n) = x, n >= Int(Int32.min), n <= Int(Int32.max) else {
                throw DatasetError(file: file, row: row, message: "'\(field)'[\(i)] is not an integer token id")
            }
            return Int32(n)
        }
    }

    /// Alpaca's prompt (Stanford Alpaca; the no-input variant when input is empty).
    public static func alpacaPrompt(instruction: String, input: String) -> String {
        input.isEmpty
            ? "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n\(instruction)\n\n### Response:\n"
            : "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n\(instruction)\n\n### Input:\n\(input)\n\n### Response:\n"
    }

    static func tokenize(_ obj: JinjaValue, format: DatasetFormat, options o: DatasetOptions, markers: ResponseMasking.Markers?,
                         file: String, row: Int) throws -> TokenizedRow {
        func codec() throws -> TextCodec {
            guard let c = o.codec else {
                throw DatasetError(file: file, row: row, message: "is a \(format.rawValue) row, but no tokenizer was found; give pre-tokenized rows {\"input_ids\": [...]} or a model folder with tokenizer.json")
            }
            return c
        }
        switch format {
        case .tokenized:
            let ids = try ints(obj["input_ids"], field: "input_ids", file: file, row: row)
            let labels: [Int32]
            if let l = obj["labels"], !l.isNone, !l.isUndefined { labels = try ints(l, field: "labels", file: file, row: row) } else { labels = ids }
            guard labels.count == ids.count else {
                throw DatasetError(file: file, row: row, message: "labels has \(labels.count) entries but input_ids has \(ids.count); they must align")
            }
            return TokenizedRow(ids: ids, labels: labels)
        case .text:
            let ids = try codec().encode(try string(obj, "text", file: file, row: row), addSpecialTokens: true).map(Int32.init)
            return TokenizedRow(ids: ids, labels: ids)
        case .promptCompletion, .alpaca:
            let prompt: String, completion: String
            if format == .alpaca {
                prompt = alpacaPrompt(instruction: try string(obj, "instruction", file: file, row: row),
                                      input: try string(obj, "input", file: file, row: row, optional: true))
                completion = try string(obj, "output", file: file, row: row)
            } else {
                prompt = try string(obj, "prompt", file: file, row: row)
                completion = try string(obj, "completion", file: file, row: row)
            }
            // As TRL: tokenize prompt and prompt + completion; the completion (and EOS) is trained.
            let c = try codec()
            let p = try c.encode(prompt, addSpecialTokens: true)
            var all = try c.encode(prompt + completion, addSpecialTokens: true)
            if let eos = c.eosTokenIds.first, all.last != eos { all.append(eos) }
            let ids = all.map(Int32.init)
            var labels = ids
            for i in 0..<min(p.count, labels.count) { labels[i] = -100 }
            return TokenizedRow(ids: ids, labels: labels)
        case .messages, .sharegpt:
            guard let chat = o.chat else {
                throw DatasetError(file: file, row: row, message: "is a chat row, but the model has no chat template; pass --chat-template NAME|FILE")
            }
            var messages: [JinjaValue]
            switch format == .messages ? obj["messages"] : obj["conversations"] {
            case .array(let m)?: messages = m
            default: throw DatasetError(file: file, row: row, message: "'\(format == .messages ? "messages" : "conversations")' must be a list of messages")
            }
            if format == .sharegpt {
                do { messages = try ChatTemplate.standardizeShareGPT(messages) } catch {
                    throw DatasetError(file: file, row: row, message: "\(error)")
                }
            }
            for (i, m) in messages.enumerated() {
                guard case .dict(let md) = m, case .string? = md["role"] else {
                    throw DatasetError(file: file, row: row, message: "message \(i) needs a string 'role'")
                }
            }
            let tools: [JinjaValue]? = { if case .array(let t)? = obj["tools"] { return t }; return nil }()
            let text: String
            do {
                text = try chat.template.render(messages: messages, tools: tools, addGenerationPrompt: false, specialTokens: chat.specialTokens)
            } catch { throw DatasetError(file: file, row: row, message: "the chat template failed: \(error)") }
            let ids = try chat.codec.encode(text, addSpecialTokens: false).map(Int32.init)
            var labels = ids
            if let markers { labels = ResponseMasking.mask(ids: ids, markers: markers) }
            return TokenizedRow(ids: ids, labels: labels)
        }
    }

    /// The instruction and response markers (given, or detected from the chat template), tokenized, with the
    /// tokenizer's BOS/EOS and the special opener they share, as Unsloth's rule uses them.
    static func responseMarkers(_ o: DatasetOptions, file: String) throws -> ResponseMasking.Markers {
        guard let chat = o.chat else { throw DatasetError(file: file, row: nil, message: "--train-on-responses-only needs a chat template") }
        var inst = o.instructionPart, resp = o.responsePart
        if inst == nil || resp == nil {
            guard let detected = ResponseMasking.detectMarkers(chat) else {
                throw DatasetError(file: file, row: nil, message: "cannot detect the response markers of this chat template; pass --instruction-part and --response-part (e.g. \"<|im_start|>user\\n\" and \"<|im_start|>assistant\\n\")")
            }
            inst = inst ?? detected.instruction; resp = resp ?? detected.response
        }
        let markers: ResponseMasking.Markers
        if let tok = chat.codec as? Tokenizer {
            markers = ResponseMasking.Markers(instruction: inst!, response: resp!, tokenizer: tok)
        } else {
            markers = ResponseMasking.Markers(instruction: try chat.codec.encode(inst!, addSpecialTokens: false),
                                              response: try chat.codec.encode(resp!, addSpecialTokens: false), eos: chat.codec.eosTokenIds.first)
        }
        guard !markers.instruction.isEmpty, !markers.response.isEmpty else {
            throw DatasetError(file: file, row: nil, message: "the instruction and response markers must not be empty")
        }
        return markers
    }
}

/// A codec from an encode function (for callers that only tokenize text rows).
struct FunctionCodec: TextCodec {
    let encodeText: (String) throws -> [Int]
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { try encodeText(text) }
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { "" }
    var eosTokenIds: [Int] { [] }
    var chatTemplate: String? { nil }
}

