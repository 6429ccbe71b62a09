import Foundation
import SlothTokenizers

/// Unsloth's `train_on_responses_only` (unsloth_zoo `dataset_utils.py`, default `force_match=True`), token for token:
/// labels are -100 except inside assistant spans. A span starts after each response marker and ends
/// - after an EOS token (kept, so the model learns to stop),
/// - before a BOS token, before the start of any message (the special-token opener both markers share, such as
///   `<|im_start|>` or `<|start_header_id|>`) or before another response marker,
/// - before the next instruction marker, or at the end of the row.
public enum ResponseMasking {
    /// The token sequences and ids the rule looks for.
    public struct Markers: Sendable, Equatable {
        public var instruction: [Int], response: [Int]
        public var bos: Int?, eos: Int?
        /// The common prefix of both markers when it is made of special tokens (else empty).
        public var messageStart: [Int]
        public init(instruction: [Int], response: [Int], bos: Int? = nil, eos: Int? = nil, messageStart: [Int] = []) {
            self.instruction = instruction; self.response = response; self.bos = bos; self.eos = eos; self.messageStart = messageStart
        }

        /// Markers tokenized by `tokenizer`, with its BOS/EOS and the shared special opener, as Unsloth derives them.
        public init(instruction: String, response: String, tokenizer t: Tokenizer) {
            let q = t.encode(instruction, addSpecialTokens: false), a = t.encode(response, addSpecialTokens: false)
            var start: [Int] = []
            for (x, y) in zip(q, a) { if x != y { break }; start.append(x) }
            let added = Dictionary(t.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            var special = Set(t.addedTokens.filter(\.special).map(\.id))
            for id in [t.bosTokenId, t.eosTokenId, t.unkTokenId, t.padTokenId] { if let id { special.insert(id) } }
            if !start.allSatisfy(special.contains) || !start.contains(where: { !(added[$0]?.content ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
                start = []
            }
            self.init(instruction: q, response: a, bos: t.bosTokenId, eos: t.eosTokenId, messageStart: start)
        }
    }

    /// The simple form: spans from each response marker to the next instruction marker (or the end).
    public static func mask(ids: [Int32], instruction: [Int], response: [Int]) -> [Int32] {
        mask(ids: ids, markers: Markers(instruction: instruction, response: response))
    }

    public static func mask(ids: [Int32], markers m: Markers) -> [Int32] {
        let x = ids.map(Int.init), n = x.count
        func at(_ j: Int, _ p: [Int]) -> Bool { !p.isEmpty && j + p.count <= n && x[j..<(j + p.count)].elementsEqual(p) }
        var labels = [Int32](repeating: -100, count: n)
        guard !m.response.isEmpty, !m.instruction.isEmpty else { return labels }
        var j = 0
        while j < n {
            if at(j, m.response) {
                let start = j + m.response.count
                j = start
                scan: while j < n {
                    let token = x[j]
                    if token == m.eos { for i in start...j { labels[i] = ids[i] }; break scan }
                    if token == m.bos || at(j, m.messageStart) || at(j, m.response) {
                        for i in start..<j { labels[i] = ids[i] }
                        j -= 1   // the boundary is looked at again by the outer loop
                        break scan
                    }
                    if j == n - 1 || at(j, m.instruction) {
                        let end = (at(j, m.instruction) && j != n - 1) ? j : n
                        for i in start..<end { labels[i] = ids[i] }
                        if end == j { j += m.instruction.count - 1 } else { j = n }
                        break scan
                    }
                    j += 1
                }
            }
            j += 1
        }
        return labels
    }

    /// Known (instruction, response) marker pairs of popular chat templates (as Unsloth's notebooks use them).
    public static let knownMarkers: [(instruction: String, response: String)] = [
        ("<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("<|im_start|>user\n", "<|im_start|>assistant\n"),
        ("<start_of_turn>user\n", "<start_of_turn>model\n"),
        ("<|user|>\n", "<|assistant|>\n"),
        ("[INST]", "[/INST]"),
        ("### Instruction:\n", "### Response:\n"),
        ("USER:", "ASSISTANT:"),
        (">>> User:", ">>> Assistant:"),
        ("User:", "Assistant:"),
    ]

    /// The first known pair whose both markers appear in a probe conversation rendered by the template.
    public static func detectMarkers(_ chat: ChatFormatter) -> (instruction: String, response: String)? {
        guard let text = try? chat.render([(role: "user", content: "Hi"), (role: "assistant", content: "Hello"), (role: "user", content: "Bye")],
                                          addGenerationPrompt: true) else { return nil }
        return knownMarkers.first { text.contains($0.instruction) && text.contains($0.response) }
    }
}
