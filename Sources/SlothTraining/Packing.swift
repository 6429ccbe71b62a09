import Foundation
import SlothModels

/// Several examples in one sequence: attention stays inside each example and positions restart at 0.
public struct PackedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    /// Lengths of the examples, in order; they sum to ids.count.
    public var segmentLengths: [Int]

    public init(_ row: TokenizedRow) { ids = row.ids; labels = row.labels; segmentLengths = [row.ids.count] }
    public init(ids: [Int32], labels: [Int32], segmentLengths: [Int]) { self.ids = ids; self.labels = labels; self.segmentLengths = segmentLengths }
}

public enum Packing {
    /// Packs rows in order into sequences of at most `maxLength` tokens (a row starts a new sequence when
    /// it does not fit; rows longer than `maxLength` are truncated first).
    public static func pack(_ rows: [TokenizedRow], maxLength: Int) -> [PackedRow] {
        var out: [PackedRow] = []
        var cur = PackedRow(ids: [], labels: [], segmentLengths: [])
        for r in rows {
            let n = min(r.ids.count, maxLength)
            if !cur.ids.isEmpty && cur.ids.count + n > maxLength { out.append(cur); cur = PackedRow(ids: [], labels: [], segmentLengths: []) }
            cur.ids += r.ids.prefix(n); cur.labels += r.labels.prefix(n); cur.segmentLengths.append(n)
        }
        if !cur.ids.isEmpty { out.append(cur) }
        return out
    }
}

extension TokenBatch {
    /// A right-padded batch of packed rows: per-segment positions and next-token targets, segment ids
    /// for the attention mask (padding is its own segment).
    public init(packed rows: [PackedRow], padId: Int32 = 0) {
        let T = rows.map(\.ids.count).max() ?? 0
        var ids: [Int32] = [], targets: [Int32] = [], positions: [Int32] = [], segments: [Int32] = []
        ids.reserveCapacity(rows.count * T)
        for r in rows {
            var start = 0, seg: Int32 = 0
            for len in r.segmentLengths {
                for t in 0..<len {
                    ids.append(r.ids[start + t])
                    targets.append(t + 1 < len ? r.labels[start + t + 1] : -100)
                    positions.append(Int32(t))
                    segments.append(seg)
                }
                start += len; seg += 1
            }
            for t in r.ids.count..<T { ids.append(padId); targets.append(-100); positions.append(Int32(t - r.ids.count)); segments.append(seg) }
        }
        let needsSegments = rows.contains { $0.segmentLengths.count > 1 }
        self.init(batch: rows.count, tokens: T, ids: ids, targets: targets, positions: positions, segments: needsSegments ? segments : nil)
    }
}
