/// SentencePiece's precompiled normalization charsmap (a double-array trie plus replacement strings).
struct PrecompiledCharsmap {
    let blob: [UInt8]
    init(data: [UInt8], file: String) throws { blob = data }
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { text }
}
