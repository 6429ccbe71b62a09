import Testing
import Foundation
import CSlothKernels
@testable import SlothCore

/// Deterministic pseudo-random floats in [-1, 1).
struct Rand {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
    }
    mutating func array(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in next() * scale } }
}

/// Kernel settings are process-wide (the ISA level, attention's block sizes and product path, cross-entropy's chunk
/// rows) and Swift Testing runs tests in parallel: a test that changes one, or that needs them to stay fixed while it
/// runs (repeated calls compared bit for bit), runs its body under this lock. Recursive: `forEachISA` takes it too.
let kernelSettingsLock = NSRecursiveLock()
func withKernelSettingsHeld<R>(_ body: () throws -> R) rethrows -> R {
    kernelSettingsLock.lock()
    defer { kernelSettingsLock.unlock() }
    return try body()
}

func maxRelDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
    return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
}

/// Central-difference gradient of f at x (Double accumulation over a Float function).
func numericGradient(_ x: [Float], eps: Float = 1e-2, _ f: ([Float]) -> Double) -> [Float] {
    var g = [Float](repeating: 0, count: x.count)
    var xx = x
    for i in 0..<x.count {
        xx[i] = x[i] + eps; let fp = f(xx)
        xx[i] = x[i] - eps; let fm = f(xx)
        xx[i] = x[i]
        g[i] = Float((fp - fm) / Double(2 * eps))
    }
    return g
}

func runAttention(_ q: [Float], _ k: [Float], _ v: [Float], _ s: Attention.Shape) -> ([Float], [Float]) {
    let n = s.batch * s.tokens
    var out = [Float](repeating: 0, count: n * s.heads * s.headDim)
    var lse = [Float](repeating: 0, count: s.batch * s.heads * s.tokens)
    Attention.forward(out: &out, lse: &lse, q: q, k: k, v: v, shape: s)
    return (out, lse)
}

@Test(arguments: [
    (1, 1, 1, 1, 4, nil as Int?, false), (1, 3, 2, 1, 8, nil, false), (2, 17, 4, 2, 16, nil, false),
    (1, 70, 3, 3, 5, nil, false), (2, 130, 4, 1, 8, 7, false), (1, 33, 2, 2, 4, 40, false), (2, 50, 2, 1, 8, nil, true),
])
func attentionMatchesReference(b: Int, t: Int, h: Int, kv: Int, e: Int, window: Int?, packed: Bool) {
    var r = Rand(UInt64(b * 1000 + t * 10 + h))
    let n = b * t
    let q = r.array(n * h * e), k = r.array(n * kv * e), v = r.array(n * kv * e)
    let segs: [Int32]? = packed ? (0..<n).map { Int32(($0 % t) / 13) } : nil
    let s = Attention.Shape(batch: b, tokens: t, heads: h, kvHeads: kv, headDim: e, window: window, scale: 1 / Float(e).squareRoot(), segments: segs)
    let (out, _) = runAttention(q, k, v, s)
    let ref = Reference.attention(q: q, k: k, v: v, shape: s)
    let d = maxRelDiff(out, ref)
    print("attention b\(b) t\(t) h\(h) kv\(kv) e\(e) window \(String(describing: window)) packed \(packed): max rel diff \(d)")
    #expect(d < 1e-5)
}

@Test(arguments: [(1, 5, 2, 1, 4, nil as Int?, false), (2, 70, 2, 1, 4, 9, false), (1, 67, 4, 2, 3, nil, true)])
func attentionBackwardMatchesNumeric(b: Int, t: Int, h: Int, kv: Int, e: Int, window: Int?, packed: Bool) {
    var r = Rand(77)
    let n = b * t
    let q = r.array(n * h * e), k = r.array(n * kv * e), v = r.array(n * kv * e)
    let w = r.array(n * h * e)
    let segs: [Int32]? = packed ? (0..<n).map { Int32(($0 % t) / 20) } : nil
    let s = Attention.Shape(batch: b, tokens: t, heads: h, kvHeads: kv, headDim: e, window: window, scale: 0.7, segments: segs)
    let (out, lse) = runAttention(q, k, v, s)
    var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
    Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: w, q: q, k: k, v: v, out: out, lse: lse, shape: s)
    func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
        zip(Reference.attention(q: q, k: k, v: v, shape: s), w).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    // Check a subset of coordinates (the full numeric gradient is slow in debug builds).
    let idx = Array(stride(from: 0, to: q.count, by: max(1, q.count / 40)))
    for (name, x, g) in [("q", q, dq), ("k", k, dk), ("v", v, dv)] {
        var worst: Float = 0
        let gmax = max(g.map { abs($0) }.max() ?? 0, 1e-3)
        for i in idx where i < x.count {
            var xp = x, xm = x
            xp[i] += 1e-2; xm[i] -= 1e-2
            let f: (([Float]) -> Double) = { y in name == "q" ? loss(y, k, v) : name == "k" ? loss(q, y, v) : loss(q, k, y) }
            let num = Float((f(xp) - f(xm)) / 2e-2)
            worst = max(worst, abs(num - g[i]) / gmax)
        }
        print("attention backward d\(name): max rel diff \(worst)")
        #expect(worst < 2e-3)
    }
}

/// Attention's two product paths (Sloth's AVX-512 kernel on transposed K / V, and BLAS), each chosen per CPU,
/// give the same forward (against the reference) and the same gradients (against each other) on the CPU at hand,
/// with several key blocks, GQA, a window and packed segments.
/// Workers claim attention's tasks (forward) and groups of query blocks (backward) as they come free, so which worker
/// runs what changes from call to call; each class of query blocks adds into its own dK, dV, summed in a fixed order,
/// so the results must not change: repeated calls give the same bits.
@Test func attentionIsDeterministicUnderDynamicScheduling() {
    withKernelSettingsHeld {
        var r = Rand(4242)
        let (b, t, h, kv, e) = (2, 520, 6, 2, 16)
        let n = b * t
        let q = r.array(n * h * e), k = r.array(n * kv * e), v = r.array(n * kv * e), w = r.array(n * h * e)
        let s = Attention.Shape(batch: b, tokens: t, heads: h, kvHeads: kv, headDim: e, scale: 0.25)
        var first: [Float]? = nil
        for _ in 0..<6 {
            let (out, lse) = runAttention(q, k, v, s)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
            Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: w, q: q, k: k, v: v, out: out, lse: lse, shape: s)
            let all = out + lse + dq + dk + dv
            if let first { #expect(all.elementsEqual(first, by: { $0.bitPattern == $1.bitPattern })) } else { first = all }
        }
    }
}

@Test func attentionProductPathsAgree() {
    withKernelSettingsHeld {
        guard sloth_kernels_level() == 2 else {
            print("attention product paths: this CPU has no AVX-512, only the BLAS path runs (covered by the other tests)")
            return
        }
        let before = (Attention.keyBlock, Attention.prefersSlothProducts)
        Attention.keyBlock = 32
        defer { Attention.keyBlock = before.0; Attention.prefersSlothProducts = before.1 }
        var r = Rand(909)
        let (b, t, h, kv, e) = (2, 150, 6, 2, 16)
        let n = b * t
        let q = r.array(n * h * e), k = r.array(n * kv * e), v = r.array(n * kv * e), w = r.array(n * h * e)
        for (window, packed) in [(nil as Int?, false), (41, false), (nil, true)] {
            let segs: [Int32]? = packed ? (0..<n).map { Int32(($0 % t) / 37) } : nil
            let s = Attention.Shape(batch: b, tokens: t, heads: h, kvHeads: kv, headDim: e, window: window, scale: 0.25, segments: segs)
            var grads: [[Float]] = []
            for sloth in [true, false] {
                Attention.prefersSlothProducts = sloth
                #expect(Attention.fastProducts == sloth)
                let (out, lse) = runAttention(q, k, v, s)
                let d = maxRelDiff(out, Reference.attention(q: q, k: k, v: v, shape: s))
                print("attention products on \(sloth ? "Sloth's kernel" : "BLAS"), window \(String(describing: window)) packed \(packed): forward max rel diff \(d)")
                #expect(d < 1e-5)
                var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
                Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: w, q: q, k: k, v: v, out: out, lse: lse, shape: s)
                grads.append(dq + dk + dv)
            }
            let d = maxRelDiff(grads[0], grads[1])
            print("attention gradients, Sloth's kernel vs BLAS: max rel diff \(d)")
            #expect(d < 1e-5)
        }
    }
}

@Test(arguments: [Float(0), 1])
func rmsnormForwardBackward(offset: Float) {
    var r = Rand(5)
    let rows = 3, dim = 17
    let x = r.array(rows * dim), w = r.array(dim), dy = r.array(rows * dim)
    var y = [Float](repeating: 0, count: x.count), rstd = [Float](repeating: 0, count: rows)
    RMSNorm.forward(out: &y, rstd: &rstd, input: x, weight: w, rows: rows, dim: dim, eps: 1e-5, offset: offset)
    let d = maxRelDiff(y, Reference.rmsnorm(x, w, rows: rows, dim: dim, eps: 1e-5, offset: offset))
    #expect(d < 1e-6)
    var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: dim)
    RMSNorm.backward(dInput: &dx, dWeight: &dw, dOut: dy, input: x, weight: w, rstd: rstd, rows: rows, dim: dim, offset: offset)
    let f: ([Float], [Float]) -> Double = { x, w in
        zip(Reference.rmsnorm(x, w, rows: rows, dim: dim, eps: 1e-5, offset: offset), dy).reduce(0) { $0 + Double($1.0 * $1.1) }
    }
    let ndx = numericGradient(x, eps: 1e-3) { f($0, w) }, ndw = numericGradient(w, eps: 1e-3) { f(x, $0) }
    print("rmsnorm offset \(offset): forward \(d), dx \(maxRelDiff(dx, ndx)), dw \(maxRelDiff(dw, ndw))")
    #expect(maxRelDiff(dx, ndx) < 1e-3)
    #expect(maxRelDiff(dw, ndw) < 1e-3)
}

@Test(arguments: [GatedActivation.swiglu, .gegluTanh])
func activationBackward(act: GatedActivation) {
    var r = Rand(9)
    let n = 37
    let e = r.array(n, scale: 3), g = r.array(n, scale: 2), dh = r.array(n)
    var de = [Float](repeating: 0, count: n), dg = de
    act.backward(dGate: &de, dUp: &dg, dOut: dh, gate: e, up: g, count: n)
    func f(_ e: [Float], _ g: [Float]) -> Double {
        var h = [Float](repeating: 0, count: n)
        act.forward(out: &h, gate: e, up: g, count: n)
        return zip(h, dh).reduce(0) { $0 + Double($1.0 * $1.1) }
    }
    let nde = numericGradient(e, eps: 1e-3) { f($0, g) }, ndg = numericGradient(g, eps: 1e-3) { f(e, $0) }
    print("\(act) backward: de \(maxRelDiff(de, nde)), dg \(maxRelDiff(dg, ndg))")
    #expect(maxRelDiff(de, nde) < 2e-3)
    #expect(maxRelDiff(dg, ndg) < 2e-3)
}

@Test func crossEntropyChunkedMatchesReference() {
    withKernelSettingsHeld {
        var r = Rand(11)
        let n = 300, d = 8, v = 50
        let h = r.array(n * d), w = r.array(v * d)
        let targets: [Int32] = (0..<n).map { $0 % 7 == 0 ? -100 : Int32($0 % v) }
        let valid = targets.filter { $0 != -100 }.count
        CrossEntropy.chunkRows = 64
        defer { CrossEntropy.chunkRows = nil }
        var dh = [Float](repeating: 0, count: n * d), dw = [Float](repeating: 0, count: v * d)
        let sum = CrossEntropy.forwardBackward(hidden: h, weight: w, targets: targets, tokens: n, dim: d, vocab: v,
                                               gradScale: 1 / Float(valid), dHidden: &dh, dWeight: &dw)
        let ref = Reference.crossEntropy(logits: Reference.matmulABt(h, w, m: n, n: v, k: d), targets: targets, vocab: v)
        print("cross-entropy: loss \(sum / Double(valid)) reference \(ref)")
        #expect(abs(sum / Double(valid) - ref) < 1e-5)
        let sub = Array(h[0..<(d * 9)])
        let ndh = numericGradient(sub, eps: 1e-2) { x in
            var hh = h; for i in 0..<x.count { hh[i] = x[i] }
            return Reference.crossEntropy(logits: Reference.matmulABt(hh, w, m: n, n: v, k: d), targets: targets, vocab: v)
        }
        #expect(maxRelDiff(Array(dh[0..<(d * 9)]), ndh) < 2e-3)
        let ndw = numericGradient(w, eps: 1e-2) { w in
            Reference.crossEntropy(logits: Reference.matmulABt(h, w, m: n, n: v, k: d), targets: targets, vocab: v)
        }
        print("cross-entropy dw max rel diff \(maxRelDiff(dw, ndw))")
        #expect(maxRelDiff(dw, ndw) < 2e-3)
    }
}

@Test func ropeInverseUndoesForward() {
    let rope = RoPE(headDim: 8, theta: 10000, maxPositionEmbeddings: 64)
    let pos: [Int32] = [0, 1, 5, 9]
    let (c, s) = rope.tables(positions: pos)
    var r = Rand(3)
    let x = r.array(4 * 2 * 8)
    var y = x
    RoPE.apply(&y, cos: c, sin: s, tokens: 4, heads: 2, headDim: 8, rotaryDim: 8)
    #expect(maxRelDiff(y, x) > 1e-2)
    RoPE.apply(&y, cos: c, sin: s, tokens: 4, heads: 2, headDim: 8, rotaryDim: 8, inverse: true)
    #expect(maxRelDiff(y, x) < 1e-6)
}

/// Several key blocks per query block (online softmax forward, independent key blocks backward): keyBlock 16
/// against the reference and the numeric gradient, with GQA, a window and packed segments.
@Test(arguments: [(1, 70, 4, 2, 8, nil as Int?, false), (2, 67, 2, 1, 4, 23, false), (1, 90, 3, 1, 4, nil, true)])
func attentionKeyBlocksMatchReference(b: Int, t: Int, h: Int, kv: Int, e: Int, window: Int?, packed: Bool) {
    withKernelSettingsHeld {
        let before = Attention.keyBlock
        Attention.keyBlock = 16
        defer { Attention.keyBlock = before }
        var r = Rand(UInt64(31 + t))
        let n = b * t
        let q = r.array(n * h * e), k = r.array(n * kv * e), v = r.array(n * kv * e), w = r.array(n * h * e)
        let segs: [Int32]? = packed ? (0..<n).map { Int32(($0 % t) / 29) } : nil
        let s = Attention.Shape(batch: b, tokens: t, heads: h, kvHeads: kv, headDim: e, window: window, scale: 0.6, segments: segs)
        let (out, lse) = runAttention(q, k, v, s)
        let d = maxRelDiff(out, Reference.attention(q: q, k: k, v: v, shape: s))
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: w, q: q, k: k, v: v, out: out, lse: lse, shape: s)
        func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            zip(Reference.attention(q: q, k: k, v: v, shape: s), w).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var worst: Float = 0
        for (name, x, g) in [("q", q, dq), ("k", k, dk), ("v", v, dv)] {
            let gmax = max(g.map { abs($0) }.max() ?? 0, 1e-3)
            for i in stride(from: 0, to: x.count, by: max(1, x.count / 30)) {
                var xp = x, xm = x
                xp[i] += 1e-2; xm[i] -= 1e-2
                let f: (([Float]) -> Double) = { y in name == "q" ? loss(y, k, v) : name == "k" ? loss(q, y, v) : loss(q, k, y) }
                worst = max(worst, abs(Float((f(xp) - f(xm)) / 2e-2) - g[i]) / gmax)
            }
        }
        print("attention key blocks of 16, t \(t) h \(h) kv \(kv) window \(String(describing: window)) packed \(packed): forward \(d), backward vs numeric \(worst)")
        #expect(d < 1e-5)
        #expect(worst < 2e-3)
    }
}

/// Attention's workers run with denormals flushed to zero (`Parallel.forEach(flushingDenormals: true)`): a product whose
/// exact result is a denormal gives 0 in every task, a normal one is unchanged, and the calling thread's IEEE underflow
/// is back afterwards (other code, such as the 4-bit quantizer matching bitsandbytes, keeps denormals).
@Test func attentionWorkersFlushDenormals() {
    let tiny: Float = 1e-30, small: Float = 1e-10   // product 1e-40: a denormal
    var results = [Float](repeating: -1, count: 64), normal = results
    results.withUnsafeMutableBufferPointer { r in
        normal.withUnsafeMutableBufferPointer { n in
            let rp = r.baseAddress!, np = n.baseAddress!
            Parallel.forEach(64, flushingDenormals: true) { i in
                // Opaque to the optimiser: the operands come through a function it does not inline.
                rp[i] = opaque(tiny) * opaque(small)
                np[i] = opaque(tiny) * 1e10
            }
        }
    }
    #expect(results.allSatisfy { $0 == 0 }, "\(results.prefix(4))")
    #expect(normal.allSatisfy { $0 == opaque(tiny) * 1e10 })
    #expect(opaque(tiny) * opaque(small) > 0, "the caller's mode is restored")
    var plain = [Float](repeating: 0, count: 8)
    plain.withUnsafeMutableBufferPointer { r in
        let rp = r.baseAddress!
        Parallel.forEach(8) { i in rp[i] = opaque(tiny) * opaque(small) }
    }
    #expect(plain.allSatisfy { $0 > 0 }, "without the flag denormals stay")
}

@inline(never) func opaque(_ x: Float) -> Float { x }

/// The kernels' workspace is one buffer kept between calls: a later call reuses it, a larger one grows it, a call
/// made while it is held gets scratch of its own, and `release` frees it.
@Test func workspaceIsKeptBetweenCallsAndGrows() {
    let w = Workspace()
    var first: UnsafeMutablePointer<Float>?
    w.withFloats(100) { first = $0; $0[99] = 1 }
    w.withFloats(50) { #expect($0 == first) }
    #expect(w.heldFloats == 100)
    w.withFloats(1000) { $0[999] = 2 }
    #expect(w.heldFloats == 1000)
    w.withFloats(1000) { outer in
        w.withFloats(1000) { inner in
            #expect(inner != outer)
            inner[999] = 3
        }
        #expect(outer[999] == 2)
    }
    #expect(w.heldFloats == 1000)
    w.release()
    #expect(w.heldFloats == 0)
}
