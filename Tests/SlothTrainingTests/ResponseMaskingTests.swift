import Testing
import Foundation
import SlothTemplates
import SlothTokenizers
@testable import SlothTraining

/// --train-on-responses-only keeps exactly the labels Unsloth's own train_on_responses_only keeps
/// (scripts/golden/templates/make_response_masks.py: unsloth_zoo 2026.10.9 on transformers' rendering), for the
/// real Llama 3 tokenizer with the llama-3 and chatml templates, the demo tokenizer and Mistral v3's SentencePiece.
/// The ids are checked first (our template engine and tokenizer against transformers).
@Test func responseMasksMatchUnsloth() throws {
    let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let fixtures = Fixtures.root.deletingLastPathComponent().appendingPathComponent("templates")
    let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("masking/golden.json"))) as! [String: Any]
    let conversations = try JinjaValue.parseJSON(Data(contentsOf: fixtures.appendingPathComponent("conversations.json")))
    let configs = golden["tokenizer_configs"] as! [String: Any]
    let real = repo.appendingPathComponent(".cache/tokenizers/files")
    var checked = 0
    for c in golden["cases"] as! [[String: Any]] {
        let name = c["tokenizer"] as! String, template = c["template"] as! String
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-mask-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        var config: [String: Any]
        switch name {
        case "demo":
            try FileManager.default.copyItem(at: repo.appendingPathComponent("models/demo/tokenizer.json"), to: tmp.appendingPathComponent("tokenizer.json"))
            config = try JSONSerialization.jsonObject(with: Data(contentsOf: repo.appendingPathComponent("models/demo/tokenizer_config.json"))) as! [String: Any]
            config["chat_template"] = nil
        default:
            let file = name == "llama3" ? "tokenizer.json" : "tokenizer.model"
            let src = real.appendingPathComponent("\(name)/\(file)")
            guard FileManager.default.fileExists(atPath: src.path) else {
                print("skipping \(name) / \(template): \(src.path) missing (run scripts/setup.d/tokenizers.sh)")
                continue
            }
            try FileManager.default.copyItem(at: src, to: tmp.appendingPathComponent(file))
            config = configs[name] as! [String: Any]
        }
        try JSONSerialization.data(withJSONObject: config).write(to: tmp.appendingPathComponent("tokenizer_config.json"))
        let tok = try Tokenizer.load(from: tmp)
        let chat = try ChatTemplate(source: c["chat_template"] as! String)
        let specials = try ChatTemplate.specialTokens(tokenizerConfig: tmp.appendingPathComponent("tokenizer_config.json"))
        let markers = ResponseMasking.Markers(instruction: c["instruction_part"] as! String, response: c["response_part"] as! String, tokenizer: tok)
        for row in c["rows"] as! [[String: Any]] {
            let cid = row["conversation"] as! String
            let text = try chat.render(messages: conversations["conversations"]?[cid]?.listItems ?? [], specialTokens: specials)
            let ids = tok.encode(text, addSpecialTokens: false)
            let want = row["ids"] as! [Int]
            #expect(ids == want, "\(name) / \(template) / \(cid): ids differ from transformers")
            let labels = ResponseMasking.mask(ids: ids.map(Int32.init), markers: markers)
            let kept = labels.indices.filter { labels[$0] != -100 }
            #expect(kept == row["kept"] as! [Int], "\(name) / \(template) / \(cid): kept \(kept) vs Unsloth \(row["kept"]!)")
            #expect(kept.allSatisfy { labels[$0] == Int32(ids[$0]) })
            checked += 1
        }
        print("\(name) / \(template): masks of \((c["rows"] as! [Any]).count) conversations checked against Unsloth")
    }
    #expect(checked >= 7)
}
