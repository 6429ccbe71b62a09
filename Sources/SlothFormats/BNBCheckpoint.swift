import Foundation
#if canImport(SlothCore)
import SlothCore
#endif

/// Pre-quantized bitsandbytes 4-bit weights in safetensors, as transformers saves them (`Linear4bit` state dicts):
/// `X.weight` (uint8 codes, shape (n/2, 1)), `X.weight.absmax`, `X.weight.quant_map`, with double quantization
/// `X.weight.nested_absmax` and `X.weight.nested_quant_map`, and `X.weight.quant_state.bitsandbytes__nf4` (or `__fp4`):
/// a uint8 tensor holding the JSON of the non-tensor fields.
public enum BNBCheckpoint {
    /// The quant_state key of a 4-bit weight `name` of `type`.
    public static func quantStateKey(_ name: String, _ type: FourBitType) -> String { name + ".quant_state.bitsandbytes__" + type.rawValue }

    /// The keys bitsandbytes writes beside a 4-bit weight (the weight itself excluded).
    public static func companionKeys(_ name: String) -> [String] {
        ["absmax", "quant_map", "nested_absmax", "nested_quant_map"].map { name + "." + $0 } + FourBitType.allCases.map { quantStateKey(name, $0) }
    }

    static let validBlocksizes: Set<Int> = [32, 64, 128, 256, 512, 1024, 2048, 4096]
    static let validDtypes: Set<String> = ["float32", "bfloat16", "float16"]

    /// The fields of a 4-bit weight's quant_state JSON, checked; `json` is the whole object.
    public struct QuantState {
        public let type: FourBitType
        public let blocksize: Int
        public let dtype: String
        public let shape: [Int]
        let json: [String: Any]
        let key: String
        let file: String

        func bad(_ tensor: String, _ message: String) -> SafeTensorsError {
            SafeTensorsError(.badEntry, file: file, tensor: tensor, message: message,
                             hint: "The 4-bit checkpoint is damaged or was not written by bitsandbytes; re-save it with transformers + bitsandbytes, or use the 16-bit model with --load-in-4bit.")
        }
    }

    /// The quant_state of the 4-bit weight `name` (shape, dtype... without reading its codes), or nil when `name` is
    /// not a bitsandbytes 4-bit weight.
    public static func quantState(_ name: String, from st: SafeTensorsCollection) throws -> QuantState? {
        let found = try FourBitType.allCases.filter { try st.entry(quantStateKey(name, $0)) != nil }
        guard let type = found.first else { return nil }
        let file = st.fileURL(of: name)?.path ?? st.path.path
        let qsKey = quantStateKey(name, type)
        func bad(_ tensor: String, _ message: String) -> SafeTensorsError {
            QuantState(type: type, blocksize: 0, dtype: "", shape: [], json: [:], key: qsKey, file: file).bad(tensor, message)
        }
        guard found.count == 1 else { throw bad(name, "has quant_state tensors for both nf4 and fp4") }
        let qsEntry = try st.entry(qsKey)!
        guard qsEntry.dtype == .u8 else { throw bad(qsKey, "quant_state must be uint8 (JSON bytes), found \(qsEntry.dtype)") }
        let qsBytes = try st.rawBytes(qsKey)
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(qsBytes), options: []) } catch {
            throw bad(qsKey, "quant_state is not JSON")
        }
        guard let qs = parsed as? [String: Any] else { throw bad(qsKey, "quant_state JSON is not an object") }
        guard (qs["quant_type"] as? String) == type.rawValue else { throw bad(qsKey, "quant_type \(qs["quant_type"] ?? "missing") disagrees with the key's \(type.rawValue)") }
        guard let blocksize = (qs["blocksize"] as? NSNumber)?.intValue, validBlocksizes.contains(blocksize) else {
            throw bad(qsKey, "blocksize \(qs["blocksize"] ?? "missing") is not one of \(validBlocksizes.sorted())")
        }
        guard let dtype = qs["dtype"] as? String, validDtypes.contains(dtype) else { throw bad(qsKey, "dtype \(qs["dtype"] ?? "missing") is not float32, bfloat16 or float16") }
        guard let shapeNums = qs["shape"] as? [NSNumber], shapeNums.count == 2 else { throw bad(qsKey, "shape must be [out_features, in_features]") }
        let shape = shapeNums.map(\.intValue)
        guard shape.allSatisfy({ $0 > 0 && $0 < 1 << 31 }) else { throw bad(qsKey, "shape \(shape) is not positive") }
        return QuantState(type: type, blocksize: blocksize, dtype: dtype, shape: shape, json: qs, key: qsKey, file: file)
    }

    /// The 4-bit tensor stored under `name` (a weight name such as `model.layers.0.mlp.up_proj.weight`), or nil when
    /// `name` is not a bitsandbytes 4-bit weight. Every field is checked against the others; errors name the tensor.
    public static func read(_ name: String, from st: SafeTensorsCollection) throws -> FourBitTensor? {
        guard let state = try quantState(name, from: st) else { return nil }
        let (type, blocksize, dtype, shape, qs, qsKey, file) = (state.type, state.blocksize, state.dtype, state.shape, state.json, state.key, state.file)
        let bad = state.bad
        let n = shape[0] * shape[1], blocks = (n + blocksize - 1) / blocksize

        func tensor(_ suffix: String, _ dtype: DType, count: Int) throws -> TensorEntry {
            let key = suffix.isEmpty ? name : name + "." + suffix
            guard let e = try st.entry(key) else {
                throw SafeTensorsError(.missingTensor, file: file, tensor: key, message: "missing beside the 4-bit weight",
                                       hint: "The checkpoint is incomplete; copy every shard of the model again.")
            }
            guard e.dtype == dtype, e.count == count else { throw bad(key, "expected \(count) values of \(dtype), found \(e.count) of \(e.dtype) \(e.shape)") }
            return e
        }
        _ = try tensor("", .u8, count: (n + 1) / 2)
        let packed = Array(try st.rawBytes(name))
        _ = try tensor("quant_map", .f32, count: 16)
        let map = try st.floats(name + ".quant_map")
        guard zip(map, type.codebook).allSatisfy({ $0 == $1 }) else { throw bad(name + ".quant_map", "is not bitsandbytes' \(type.rawValue) codebook") }
        let absmax: FourBitAbsmax
        if let offsetNum = qs["nested_offset"] as? NSNumber {
            guard let nb = (qs["nested_blocksize"] as? NSNumber)?.intValue, validBlocksizes.contains(nb) else {
                throw bad(qsKey, "nested_blocksize \(qs["nested_blocksize"] ?? "missing") is not one of \(validBlocksizes.sorted())")
            }
            guard (qs["nested_dtype"] as? String ?? "float32") == "float32" else { throw bad(qsKey, "nested_dtype must be float32") }
            _ = try tensor("absmax", .u8, count: blocks)
            _ = try tensor("nested_absmax", .f32, count: (blocks + nb - 1) / nb)
            _ = try tensor("nested_quant_map", .f32, count: 256)
            let offset = Float(offsetNum.doubleValue)
            guard offset.isFinite else { throw bad(qsKey, "nested_offset is not finite") }
            absmax = .nested(codes: Array(try st.rawBytes(name + ".absmax")), nestedAbsmax: try st.floats(name + ".nested_absmax"),
                             nestedMap: try st.floats(name + ".nested_quant_map"), offset: offset, nestedBlocksize: nb)
        } else {
            _ = try tensor("absmax", .f32, count: blocks)
            absmax = .plain(try st.floats(name + ".absmax"))
        }
        return FourBitTensor(type: type, shape: shape, blocksize: blocksize, packed: packed, absmax: absmax, dtype: dtype)
    }

    /// The tensors bitsandbytes' `Linear4bit` saves for `q` under weight name `name`, byte-identical to transformers'
    /// `save_pretrained` (the quant_state JSON as Python's `json.dumps` writes it).
    public static func tensors(_ name: String, _ q: FourBitTensor) -> [WritableTensor] {
        func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
        var out = [WritableTensor(name: name, dtype: .u8, shape: [q.packed.count, 1], bytes: q.packed)]
        var json = "{\"quant_type\": \"\(q.type.rawValue)\", \"blocksize\": \(q.blocksize), \"dtype\": \"\(q.dtype)\", \"shape\": [\(q.shape.map(String.init).joined(separator: ", "))]"
        switch q.absmax {
        case .plain(let a):
            out.append(WritableTensor(name: name + ".absmax", dtype: .f32, shape: [a.count], bytes: floats(a)))
        case .nested(let codes, let na, let map, let offset, let nb):
            out.append(WritableTensor(name: name + ".absmax", dtype: .u8, shape: [codes.count], bytes: codes))
            out.append(WritableTensor(name: name + ".nested_absmax", dtype: .f32, shape: [na.count], bytes: floats(na)))
            out.append(WritableTensor(name: name + ".nested_quant_map", dtype: .f32, shape: [map.count], bytes: floats(map)))
            json += ", \"nested_blocksize\": \(nb), \"nested_dtype\": \"float32\", \"nested_offset\": \(pythonRepr(Double(offset)))"
        }
        json += "}"
        out.append(WritableTensor(name: name + ".quant_map", dtype: .f32, shape: [16], bytes: floats(q.type.codebook)))
        let js = Array(json.utf8)
        out.append(WritableTensor(name: quantStateKey(name, q.type), dtype: .u8, shape: [js.count], bytes: js))
        return out
    }

    /// Python's `repr(float)`: the shortest round-trip digits (Swift's `description` uses the same rule), with
    /// Python's spelling of exponents (`1e-05`, `1e+16`) and of integral values (`2.0`).
    static func pythonRepr(_ x: Double) -> String {
        var s = x.description
        if let e = s.firstIndex(of: "e") {
            var mant = String(s[..<e]), exp = String(s[s.index(after: e)...])
            if mant.hasSuffix(".0") { mant.removeLast(2) }
            let sign = exp.hasPrefix("-") ? "-" : "+"
            exp = exp.trimmingCharacters(in: CharacterSet(charactersIn: "+-"))
            if exp.count < 2 { exp = "0" + exp }
            s = mant + "e" + sign + exp
        }
        return s
    }
}
