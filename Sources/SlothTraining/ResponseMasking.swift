import Foundation

/// Unsloth's train_on_responses_only: labels are -100 except from the end of each response marker up to
/// the start of the next instruction marker (or the end of the row).
public enum ResponseMasking {
    public static func mask(ids: [Int32], instruction: [Int], response: [Int]) -> [Int32] {
        let x = ids.map(Int.init)
        func find(_ pattern: [Int], from start: Int) -> Int? {
            guard !pattern.isEmpty, x.count >= pattern.count, start <= x.count - pattern.count else { return nil }
            for i in start...(x.count - pattern.count) where x[i] == pattern[0] && Array(x[i..<(i + pattern.count)]) == pattern { return i }
            return nil
        }
        var labels = [Int32](repeating: -100, count: ids.count)
        var pos = 0
        while let r = find(response, from: pos) {
            let start = r + response.count
            let end = find(instruction, from: start) ?? x.count
            for i in start..<end { labels[i] = ids[i] }
            pos = end
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
