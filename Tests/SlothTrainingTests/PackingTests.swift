import Testing
import Foundation
@testable import SlothTraining
@testable import SlothModels

/// A packed batch gives the same loss and LoRA gradients as its examples run unpacked.
@Test(arguments: modelNames)
func packedEqualsUnpacked(name: String) throws {
    let rows = try Fixtures.rows(name)
    func run(_ batch: TokenBatch) throws -> (Double, [Float]) {
        let model = try Fixtures.model(name)
        let loss = try Engine(model: model).forwardBackward(batch, gradScale: 1, policy: .recompute)
        return (loss, model.loraPairs.flatMap { $0.pair.gradA.array + $0.pair.gradB.array })
    }
    let (l1, g1) = try run(TokenBatch(rows: rows.map { ($0.ids, $0.labels) }))
    let packed = Packing.pack(rows, maxLength: 64)
    #expect(packed.count == 1 && packed[0].segmentLengths == rows.map(\.ids.count))
    let (l2, g2) = try run(TokenBatch(packed: packed))
    let d = relDiff(g2, g1)
    print("\(name): packed vs unpacked: loss \(l2) vs \(l1), max rel grad diff \(d)")
    #expect(abs(l1 - l2) / l1 < 1e-5)
    #expect(d < 1e-5)
    // Per example: the packed row's per-token losses, cut at the segments, equal each row run alone.
    let engine = Engine(model: try Fixtures.model(name))
    let packedNLL = try engine.tokenLosses(TokenBatch(packed: packed))
    var at = 0, worst = 0.0
    for r in rows {
        let alone = try engine.tokenLosses(TokenBatch(rows: [(r.ids, r.labels)])).reduce(0, +)
        let inPack = packedNLL[at..<(at + r.ids.count)].reduce(0, +)
        worst = max(worst, abs(alone - inPack) / max(abs(alone), 1e-12))
        at += r.ids.count
    }
    print("\(name): per-example losses packed vs alone: max rel diff \(worst)")
    #expect(worst < 1e-5)
}

@Test func packingKeepsOrderAndLimits() {
    let rows = [3, 5, 2, 6, 1].map { n in TokenizedRow(ids: (0..<n).map { Int32($0 + 1) }, labels: (0..<n).map { Int32($0 + 1) }) }
    let packed = Packing.pack(rows, maxLength: 8)
    #expect(packed.map(\.segmentLengths) == [[3, 5], [2, 6], [1]])
    let b = TokenBatch(packed: packed)
    #expect(b.tokens == 8)
    #expect(Array(b.positions[0..<8]) == [0, 1, 2, 0, 1, 2, 3, 4])
    #expect(b.targets[2] == -100)  // last token of a segment predicts nothing
    #expect(Array(b.segments![16..<24]) == [0, 1, 1, 1, 1, 1, 1, 1])  // padding is its own segment
}
