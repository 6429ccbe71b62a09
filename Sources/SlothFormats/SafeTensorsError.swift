/// A problem with a safetensors file, a sharded index, or a write; names the file, the tensor or field, and what to do.
///
/// `description` reads like `model.safetensors: tensor "lm_head.weight": field "shape": ...; hint: ...`.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, for callers that branch on it.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, read, or mapped.
        case io
        /// Shorter than the 8-byte header length.
        case fileTooShort
        /// The header length is larger than the file or than 100 MB.
        case badHeaderLength
        /// The header is not UTF-8 JSON, or not an object.
        case badHeaderJSON
        /// `__metadata__` is not an object of strings.
        case badMetadata
        /// A tensor entry lacks a field or has one of the wrong type or value.
        case badEntry
        /// The dtype string is not one Sloth reads.
        case unknownDType
        /// The byte range does not match shape x dtype size, or lies outside the data section.
        case badOffsets
        /// Two tensors share bytes.
        case overlap
        /// The tensor name is not in the file or folder.
        case missingTensor
        /// The tensor's dtype cannot be read as requested (e.g. floats from I64), or the destination count differs.
        case wrongDType
        /// A destination buffer has the wrong element count.
        case countMismatch
        /// `model.safetensors.index.json` is malformed, or names a missing shard, or a shard lacks a listed tensor.
        case badIndex
        /// The folder holds no safetensors file.
        case noWeights
        /// A write was asked for something invalid (duplicate names, bad shard size).
        case badWrite
    }

    /// What went wrong.
    public let kind: Kind
    /// The file (or folder) involved, as given.
    public let file: String
    /// The tensor involved, if any.
    public let tensor: String?
    /// The header field involved (`dtype`, `shape`, `data_offsets`, `__metadata__`, `weight_map`...), if any.
    public let field: String?
    /// What is wrong, in words.
    public let message: String
    /// What the user can do about it.
    public let hint: String

    /// Creates an error.
    public init(_ kind: Kind, file: String, tensor: String? = nil, field: String? = nil, message: String, hint: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.field = field
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var s = file
        if let tensor { s += ": tensor \"\(tensor)\"" }
        if let field { s += ": field \"\(field)\"" }
        s += ": " + message
        if !hint.isEmpty { s += "; hint: " + hint }
        return s
    }
}
