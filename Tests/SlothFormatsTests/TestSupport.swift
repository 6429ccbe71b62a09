import Foundation
import Testing
@testable import SlothFormats
import SlothCore

/// Helpers shared by the SlothFormats tests.
enum TestSupport {
    /// Tests/Fixtures/safetensors (committed goldens made by scripts/golden/safetensors/make.py).
    static let fixtures: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/safetensors")

    /// A fixture file's URL.
    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }

    /// A fixture file's bytes.
    static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    /// A fresh empty folder under the system temp folder.
    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("sloth-formats-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Little-endian u32 / u16 arrays from a binary fixture.
    static func u32s(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count - 3, by: 4).map {
            UInt32(bytes[$0]) | UInt32(bytes[$0 + 1]) << 8 | UInt32(bytes[$0 + 2]) << 16 | UInt32(bytes[$0 + 3]) << 24
        }
    }

    /// A safetensors file from a header string and data bytes: u64 LE length + header + data.
    static func file(header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    /// Writes `bytes` to a temp file and returns its URL.
    static func write(_ bytes: [UInt8], name: String = "bad.safetensors", in dir: URL? = nil) throws -> URL {
        let d = try dir ?? tempDir()
        let url = d.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// The first index where two byte arrays differ, or nil when equal.
    static func firstMismatch(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        for i in 0..<min(a.count, b.count) where a[i] != b[i] { return i }
        return a.count == b.count ? nil : min(a.count, b.count)
    }

    /// Shows bytes around `i` as text for a mismatch message.
    static func context(_ a: [UInt8], _ i: Int) -> String {
        let lo = max(0, i - 24), hi = min(a.count, i + 24)
        return String(decoding: a[lo..<hi], as: UTF8.self).debugDescription
    }

    /// Runs `body`, expects a SafeTensorsError of `kind` whose description contains every string in `mentions`.
    static func expectError(_ kind: SafeTensorsError.Kind, mentions: [String],
                            sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected a \(kind) error, got none", sourceLocation: sourceLocation)
        } catch let e as SafeTensorsError {
            print("error text: \(e)")
            #expect(e.kind == kind, "kind \(e.kind) for: \(e)", sourceLocation: sourceLocation)
            for m in mentions {
                #expect(e.description.contains(m), "\"\(m)\" missing from: \(e)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("expected SafeTensorsError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        }
    }
}
