// libFuzzer harness for the safetensors header parser and the HF shard index parser.
// Built by fuzz/run.sh together with Sources/SlothCore/DType.swift and Sources/SlothFormats/*.swift
// as one module (so `import SlothCore` is compiled out by `#if canImport(SlothCore)`).

/// Parses `data` as a whole .safetensors file; when it is accepted, reads every tensor the header
/// claims (AddressSanitizer turns any out-of-bounds claim into a crash). Also parses it as an index.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    if let header = try? SafeTensorsHeader.parse(bytes, file: "fuzz.safetensors") {
        var scratch = [Float](repeating: 0, count: 64)
        for name in header.names {
            guard let e = header.entries[name] else { fatalError("names and entries disagree: \(name)") }
            precondition(e.byteOffset >= header.dataStart && e.byteOffset + e.byteCount <= count, "entry out of bounds: \(e)")
            precondition(e.byteCount == e.count * e.dtype.byteSize, "byte count mismatch: \(e)")
            // Convert up to 64 elements from the start and the end of the tensor.
            let n = min(e.count, 64)
            if n > 0 {
                scratch.withUnsafeMutableBufferPointer { dst in
                    HalfConversion.toFloat(data + e.byteOffset, dtype: e.dtype, count: n, into: dst.baseAddress!)
                    HalfConversion.toFloat(data + e.byteOffset + e.byteCount - n * e.dtype.byteSize, dtype: e.dtype, count: n, into: dst.baseAddress!)
                }
            }
        }
        // Re-encode the accepted header and parse it again: the writer's layout must be readable.
        let planned = header.names.compactMap { name in header.entries[name].map { PlannedTensor(name: name, dtype: $0.dtype, shape: $0.shape, byteCount: $0.byteCount) } }
        if let again = try? SafeTensorsWriter.header(for: planned, metadata: header.metadata.isEmpty ? nil : header.metadata, file: "fuzz") {
            let total = again.count + planned.reduce(0) { $0 + $1.byteCount }
            if total <= 1 << 20 {
                let file = again + [UInt8](repeating: 0, count: total - again.count)
                let reparsed = file.withUnsafeBytes { try? SafeTensorsHeader.parse($0, file: "fuzz-rewrite") }
                precondition(reparsed?.names == header.names, "rewritten header does not parse back")
                precondition(reparsed?.metadata == header.metadata, "metadata does not round-trip")
            }
        }
    }
    _ = try? SafeTensorsCollection.parseIndex(bytes, file: "fuzz.index.json")
    return 0
}
