import Foundation
import Testing
@testable import SlothTokenizers

/// Encodes and decodes the whole corpus with each tokenizer and compares with HF's output (0 differences).
@Suite struct GoldenTests {
    @Test(arguments: ["qwen2-tiny", "gpt2-tiny", "sp-bpe-tiny", "sp-unigram-tiny"])
    func committedTokenizerMatchesHF(_ name: String) throws {
        try check(name)
    }

    @Test(.enabled(if: Goldens.haveRealFiles, Comment(rawValue: Goldens.skipMessage)),
          arguments: ["llama3", "llama3-bos", "minilm"])
    func realTokenizerJSONMatchesHF(_ name: String) throws {
        try check(name)
    }

    @Test(.enabled(if: Goldens.haveRealFiles, Comment(rawValue: Goldens.skipMessage)),
          arguments: ["mistral_v1", "mistral_v3", "mistral_v7", "botchan_bpe", "botchan_unigram", "kyoto_unigram"])
    func convertedSentencePieceMatchesHFConversion(_ name: String) throws {
        try check(name)
    }

    private func check(_ name: String) throws {
        let e = try Goldens.expected(name)
        let texts = try Goldens.corpus()
        let tok = try Goldens.tokenizer(e)
        let r = Goldens.compare(tok, e, texts: texts)
        let total = e.rows.reduce(0) { $0 + $1.ids.count }
        print("\(name): \(texts.count) rows, \(total) ids; rows with different ids: \(r.ids), with different decode: \(r.decoded)\(r.first.map { "; first: \($0)" } ?? "")")
        #expect(r.ids == 0, "\(r.first ?? "")")
        #expect(r.decoded == 0, "\(r.first ?? "")")
        #expect(tok.vocabSize == e.vocabSize, "vocab size \(tok.vocabSize), HF \(e.vocabSize)")
    }
}
