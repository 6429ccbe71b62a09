import Foundation
import Testing
@testable import SlothTemplates

/// Locates and reads the committed template fixtures.
enum Golden {
    /// Tests/Fixtures/templates, found from this source file's path.
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/templates")
    }

    /// Parses a fixture with Sloth's own order-preserving JSON reader.
    static func load(_ name: String) throws -> JinjaValue {
        let url = directory.appendingPathComponent(name)
        return try JinjaValue.parseJSON(try Data(contentsOf: url), source: url.path)
    }

    /// The time the goldens' strftime_now saw: 2024-07-26 10:30:00 (rendered in UTC here).
    static let now = Date(timeIntervalSince1970: 1_721_989_800)
    static let utc = TimeZone(identifier: "UTC")!

    /// Describes the first difference between two strings (offset in code points, with context).
    static func firstDifference(_ got: String, _ want: String) -> String? {
        let g = Array(got.unicodeScalars), w = Array(want.unicodeScalars)
        var i = 0
        while i < g.count && i < w.count && g[i] == w[i] { i += 1 }
        if i == g.count && i == w.count { return nil }
        func ctx(_ a: [Unicode.Scalar]) -> String {
            let lo = max(0, i - 30), hi = min(a.count, i + 30)
            return String(String.UnicodeScalarView(a[lo..<hi])).debugDescription
        }
        return "first difference at code point \(i) (got \(g.count), want \(w.count)):\n  got:  \(ctx(g))\n  want: \(ctx(w))"
    }
}
