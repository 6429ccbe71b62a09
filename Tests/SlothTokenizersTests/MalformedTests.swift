import Foundation
import Testing
@testable import SlothTokenizers

/// Malformed files give typed errors that name the file and field; nothing crashes.
@Suite struct MalformedTests {
    static let tiny = Goldens.fixtures.appendingPathComponent("qwen2-tiny.tokenizer.json")

    private func load(_ json: String) throws -> Tokenizer { try Tokenizer(json: Data(json.utf8), file: "t.json") }

    private func expectError(_ json: String, _ check: (TokenizerError) -> Bool) {
        do {
            _ = try load(json)
            Issue.record("expected an error for \(json.prefix(80))")
        } catch let e as TokenizerError {
            print("error: \(e)")
            #expect(check(e), "\(e)")
            #expect(e.description.contains("t.json"))
        } catch { Issue.record("untyped error \(error)") }
    }

    @Test func truncatedJSON() throws {
        let data = try Data(contentsOf: MalformedTests.tiny)
        for cut in [1, 10, data.count / 3, data.count / 2, data.count - 2] {
            #expect(throws: TokenizerError.self) { try Tokenizer(json: data.prefix(cut), file: "t.json") }
        }
    }

    @Test func wrongTypes() {
        expectError(#"{"model": []}"#) { if case .badField(_, "model", _) = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": [], "merges": []}}"#) { if case .badField(_, "model.vocab", _) = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}"#) { if case .badField = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}}"#) { if case .badField(_, "model.merges[0]", _) = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": "x", "content": "a"}]}"#) {
            if case .badField(_, "added_tokens[0].id", _) = $0 { return true } else { return false }
        }
        expectError(#"{"model": {"type": "Unigram", "vocab": [["a"]]}}"#) { if case .badField(_, "model.vocab[0]", _) = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}}"#) {
            if case .badRegex = $0 { return true } else { return false }
        }
    }

    @Test func mergesNamingUnknownTokens() {
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}}"#) {
            if case let .unknownMergeToken(_, _, token) = $0 { return token == "c" } else { return false }
        }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}"#) {
            if case let .unknownMergeToken(_, _, token) = $0 { return token == "ab" } else { return false }
        }
    }

    @Test func unknownComponentIsNamed() {
        expectError(#"{"model": {"type": "WordLevel", "vocab": {}}}"#) { if case .unsupportedComponent(_, _, "WordLevel") = $0 { return true } else { return false } }
        expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Fancy"}}"#) {
            if case .unsupportedComponent(_, "normalizer", "Fancy") = $0 { return true } else { return false }
        }
    }

    @Test func badProtobuf() throws {
        let good = try [UInt8](Data(contentsOf: Goldens.fixtures.appendingPathComponent("sp-bpe-tiny.tokenizer.model")))
        var errors = 0, loaded = 0
        // Every truncation point in the first 2 KB and a sample after: an error or a model, never a crash.
        var cuts = Array(0..<min(2048, good.count))
        cuts += stride(from: 2048, to: good.count, by: 97)
        for cut in cuts {
            do { _ = try SentencePieceConverter.convert(SentencePieceModel(bytes: Array(good.prefix(cut)), file: "t.model")); loaded += 1 } catch is TokenizerError { errors += 1 }
        }
        // Random byte flips.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var b = good
            for _ in 0..<4 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            do { _ = try SentencePieceConverter.convert(SentencePieceModel(bytes: b, file: "t.model")); loaded += 1 } catch is TokenizerError { errors += 1 }
        }
        print("protobuf damage: \(errors) typed errors, \(loaded) still loadable, 0 crashes")
        #expect(errors > 0)
        #expect(throws: TokenizerError.self) { try SentencePieceModel(bytes: [0xFF, 0xFF, 0xFF], file: "t.model") }
    }

    @Test func missingFileAndEmptyFolder() throws {
        #expect(throws: TokenizerError.self) { try Tokenizer.load(from: URL(fileURLWithPath: "/nonexistent/tokenizer.json")) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: TokenizerError.noTokenizerFiles(folder: dir.path)) { try Tokenizer.load(from: dir) }
    }
}
