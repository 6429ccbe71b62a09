import Foundation

/// A SentencePiece `tokenizer.model` (ModelProto), read with a small protobuf decoder.
///
/// Only the fields tokenization needs are read (sentencepiece_model.proto field numbers):
/// pieces (1), trainer_spec (2) and normalizer_spec (3). A hand-written decoder keeps the module free of
/// generated code for ~60 fields it never uses, and lets every malformed byte become a typed error.
public struct SentencePieceModel: Equatable, Sendable {
    /// Piece types (`ModelProto.SentencePiece.Type`).
    public enum PieceType: Int, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    public struct Piece: Equatable, Sendable {
        public var piece: String
        public var score: Float
        public var type: PieceType
    }

    public var pieces: [Piece] = []
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    public var modelType = 1
    public var byteFallback = false
    public var unkId = 0, bosId = 1, eosId = 2, padId = -1
    public var unkPiece = "<unk>", bosPiece = "<s>", eosPiece = "</s>", padPiece = "<pad>"
    public var normalizerName = ""
    public var precompiledCharsmap: [UInt8] = []
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true
    /// The file it was read from.
    public var file = "tokenizer.model"
    /// The raw bytes (kept so healing can rewrite pieces in place).
    var raw: [UInt8] = []

    public init(file url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.unreadable(file: url.path, reason: error.localizedDescription) }
        try self.init(bytes: [UInt8](data), file: url.path)
    }

    public init(bytes: [UInt8], file: String = "tokenizer.model") throws {
        self.file = file
        raw = bytes
        var r = ProtoReader(bytes: bytes, file: file)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): pieces.append(try parsePiece(r.field()))
            case (2, 2): try parseTrainer(r.field())
            case (3, 2): try parseNormalizer(r.field())
            default: try r.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw TokenizerError.badProtobuf(file: file, reason: "no pieces") }
        for (name, id) in [("unk_id", unkId), ("bos_id", bosId), ("eos_id", eosId), ("pad_id", padId)] where id >= pieces.count {
            throw TokenizerError.badProtobuf(file: file, reason: "trainer_spec.\(name) \(id) is beyond the \(pieces.count) pieces")
        }
    }

    private func parsePiece(_ b: ArraySlice<UInt8>) throws -> Piece {
        var r = ProtoReader(bytes: Array(b), file: file)
        var p = Piece(piece: "", score: 0, type: .normal)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): p.piece = try r.string()
            case (2, 5): p.score = Float(bitPattern: try r.fixed32())
            case (3, 0):
                let v = Int(try r.varint())
                guard let t = PieceType(rawValue: v) else { throw TokenizerError.badProtobuf(file: file, reason: "piece type \(v)") }
                p.type = t
            default: try r.skip(wire)
            }
        }
        return p
    }

    private mutating func parseTrainer(_ b: ArraySlice<UInt8>) throws {
        var r = ProtoReader(bytes: Array(b), file: file)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (3, 0): modelType = Int(try r.varint())
            case (35, 0): byteFallback = try r.varint() != 0
            case (40, 0): unkId = Int(Int32(truncatingIfNeeded: try r.varint()))
            case (41, 0): bosId = Int(Int32(truncatingIfNeeded: try r.varint()))
            case (42, 0): eosId = Int(Int32(truncatingIfNeeded: try r.varint()))
            case (43, 0): padId = Int(Int32(truncatingIfNeeded: try r.varint()))
            case (45, 2): unkPiece = try r.string()
            case (46, 2): bosPiece = try r.string()
            case (47, 2): eosPiece = try r.string()
            case (48, 2): padPiece = try r.string()
            default: try r.skip(wire)
            }
        }
    }

    private mutating func parseNormalizer(_ b: ArraySlice<UInt8>) throws {
        var r = ProtoReader(bytes: Array(b), file: file)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): normalizerName = try r.string()
            case (2, 2): precompiledCharsmap = Array(try r.field())
            case (3, 0): addDummyPrefix = try r.varint() != 0
            case (4, 0): removeExtraWhitespaces = try r.varint() != 0
            case (5, 0): escapeWhitespaces = try r.varint() != 0
            default: try r.skip(wire)
            }
        }
    }

    /// The model with piece `id` renamed (healing), re-encoded as protobuf.
    public func renamingPieces(_ names: [Int: String]) throws -> [UInt8] {
        var out: [UInt8] = []
        var r = ProtoReader(bytes: raw, file: file)
        var index = 0
        while true {
            let start = r.pos
            guard let (field, wire) = try r.next() else { break }
            if field == 1 && wire == 2 {
                let body = try r.field()
                if let name = names[index] {
                    var piece = ProtoWriter()
                    var pr = ProtoReader(bytes: Array(body), file: file)
                    while true {
                        let ps = pr.pos
                        guard let (f, w) = try pr.next() else { break }
                        if f == 1 && w == 2 { _ = try pr.field(); piece.bytesField(1, Array(name.utf8)) } else { try pr.skip(w); piece.out += pr.bytes[ps..<pr.pos] }
                    }
                    var outer = ProtoWriter()
                    outer.bytesField(1, piece.out)
                    out += outer.out
                } else { out += raw[start..<r.pos] }
                index += 1
            } else {
                try r.skip(wire)
                out += raw[start..<r.pos]
            }
        }
        return out
    }
}

/// Reads protobuf wire format; every overrun becomes a `badProtobuf` error.
struct ProtoReader {
    let bytes: [UInt8]
    let file: String
    var pos = 0

    init(bytes: [UInt8], file: String) { self.bytes = bytes; self.file = file }

    private func fail(_ why: String) -> TokenizerError { .badProtobuf(file: file, reason: "\(why) at byte \(pos)") }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard pos < bytes.count else { throw fail("truncated varint") }
            let b = bytes[pos]; pos += 1
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
            guard shift < 64 else { throw fail("varint too long") }
        }
    }

    mutating func next() throws -> (Int, Int)? {
        guard pos < bytes.count else { return nil }
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        guard field > 0 else { throw fail("field number 0") }
        return (field, wire)
    }

    mutating func field() throws -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(bytes.count - pos) else { throw fail("length \(n) past the end") }
        defer { pos += Int(n) }
        return bytes[pos..<(pos + Int(n))]
    }

    mutating func string() throws -> String {
        let b = try field()
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("string is not UTF-8") }
        return s
    }

    mutating func fixed32() throws -> UInt32 {
        guard bytes.count - pos >= 4 else { throw fail("truncated fixed32") }
        defer { pos += 4 }
        return UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: guard bytes.count - pos >= 8 else { throw fail("truncated fixed64") }; pos += 8
        case 2: _ = try field()
        case 5: _ = try fixed32()
        default: throw fail("unsupported wire type \(wire)")
        }
    }
}

/// Writes protobuf wire format.
struct ProtoWriter {
    var out: [UInt8] = []
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }
    mutating func bytesField(_ field: Int, _ b: [UInt8]) {
        varint(UInt64(field << 3 | 2)); varint(UInt64(b.count)); out += b
    }
}
