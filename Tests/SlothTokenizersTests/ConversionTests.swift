import Foundation
import Testing
@testable import SlothTokenizers

/// Slow-to-fast conversion: the converted tokenizer.json, written out and read back, still matches HF's conversion,
/// and the Unsloth-style check accepts it.
@Suite struct ConversionTests {
    static let committed = ["sp-bpe-tiny", "sp-unigram-tiny"]
    static let real = ["mistral_v1", "mistral_v3", "botchan_bpe", "botchan_unigram", "kyoto_unigram"]

    private func roundTrip(_ name: String) throws {
        let e = try Goldens.expected(name)
        let tok = try Goldens.tokenizer(e)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-conv-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("tokenizer.json")
        try TokenizerWriter.write(tok, to: out)
        let back = try Tokenizer(jsonFile: out)
        let r = Goldens.compare(back, e, texts: try Goldens.corpus())
        print("\(name): converted, written and re-read: rows with different ids \(r.ids), decode \(r.decoded)")
        #expect(r.ids == 0 && r.decoded == 0, "\(r.first ?? "")")
    }

    @Test(arguments: committed) func writtenTokenizerJSONRoundTrips(_ name: String) throws { try roundTrip(name) }

    @Test(.enabled(if: Goldens.haveRealFiles, Comment(rawValue: Goldens.skipMessage)), arguments: real)
    func writtenRealTokenizerJSONRoundTrips(_ name: String) throws { try roundTrip(name) }

    /// HF's own converted tokenizer.json of the tiny models reads back exactly (its vocabulary has NFC/NFD twins).
    @Test(arguments: ["sp-bpe-tiny"]) func hfConvertedTokenizerJSONMatches(_ name: String) throws {
        let e = try Goldens.expected(name)
        let tok = try Tokenizer(jsonFile: Goldens.fixtures.appendingPathComponent("\(name).hf-tokenizer.json"))
        let r = Goldens.compare(tok, e, texts: try Goldens.corpus())
        print("\(name): HF's tokenizer.json: rows with different ids \(r.ids), decode \(r.decoded)")
        #expect(r.ids == 0 && r.decoded == 0, "\(r.first ?? "")")
        #expect(tok.vocabSize == e.vocabSize)
    }

    @Test(arguments: committed) func checkedConversionAccepts(_ name: String) throws {
        let url = Goldens.fixtures.appendingPathComponent("\(name).tokenizer.model")
        let r = try SentencePieceConverter.convertChecked(file: url)
        print("\(name): \(r.notes.joined(separator: " | "))")
        #expect(r.notes.last?.contains("agree") == true)
    }

    @Test(.enabled(if: Goldens.haveRealFiles, Comment(rawValue: Goldens.skipMessage)), arguments: real)
    func checkedConversionAcceptsRealModels(_ name: String) throws {
        let r = try SentencePieceConverter.convertChecked(file: Goldens.realFiles.appendingPathComponent("\(name)/tokenizer.model"))
        print("\(name): \(r.notes.joined(separator: " | "))")
        #expect(r.notes.last?.contains("agree") == true)
    }

    /// The reference SentencePiece encoder agrees with sentencepiece itself on the rows where HF's conversion does.
    @Test func referenceEncoderMatchesConversionOnPlainText() throws {
        let m = try SentencePieceModel(file: Goldens.fixtures.appendingPathComponent("sp-bpe-tiny.tokenizer.model"))
        let tok = try SentencePieceConverter.convert(m)
        for text in ["A quick brown fox jumps over the lazy dog!!", "Hello world", "fibonacci(n - 1)"] {
            #expect(SentencePieceReference.encode(text, m) == tok.encode(text, addSpecialTokens: false), "\(text)")
        }
    }

    @Test func protobufFieldsAreRead() throws {
        let m = try SentencePieceModel(file: Goldens.fixtures.appendingPathComponent("sp-bpe-tiny.tokenizer.model"))
        #expect(m.modelType == 2)
        #expect(m.byteFallback)
        #expect(m.pieces.count == 1000)
        #expect(m.pieces[0].piece == "<unk>" && m.pieces[0].type == .unknown)
        #expect(m.pieces[1].type == .control && m.pieces[2].type == .control)
        #expect(m.pieces.contains { $0.piece == "<tool>" && $0.type == .userDefined })
        #expect(m.pieces.filter { $0.type == .byte }.count == 256)
        let u = try SentencePieceModel(file: Goldens.fixtures.appendingPathComponent("sp-unigram-tiny.tokenizer.model"))
        #expect(u.modelType == 1 && !u.byteFallback && !u.precompiledCharsmap.isEmpty && u.normalizerName == "nmt_nfkc")
    }
}
