import Foundation
import CSlothKernels

/// A parallel-for over all cores, in contiguous chunks.
public enum Parallel {
    /// Number of worker threads (cores unless SLOTH_THREADS is set).
    public static let threads: Int = {
        if let s = ProcessInfo.processInfo.environment["SLOTH_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body(range)` over disjoint chunks covering 0..<count, in parallel.
    /// `minChunk` keeps tiny loops on one thread.
    @inlinable
    public static func forRange(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threads, max(1, count / max(minChunk, 1)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(i)` for each i in 0..<count, in parallel (dynamic: one task per index). With `flushingDenormals`
    /// each call runs with denormals flushed to zero on its thread (`sloth_flush_denormals`), the thread's mode
    /// restored after: for attention, whose tiny probabilities cost a microcode assist per operand on Intel CPUs
    /// (25x slower with widely spread scores). Elsewhere IEEE underflow stays (bitsandbytes' quantizer keeps denormals).
    @inlinable
    public static func forEach(_ count: Int, flushingDenormals: Bool = false, _ body: (Int) -> Void) {
        if count <= 0 { return }
        func run(_ i: Int) {
            let was = flushingDenormals ? sloth_flush_denormals(1) : 0
            body(i)
            if flushingDenormals { _ = sloth_flush_denormals(was) }
        }
        if count == 1 || threads == 1 { for i in 0..<count { run(i) }; return }
        DispatchQueue.concurrentPerform(iterations: count, execute: run)
    }

    /// How many threads `claiming(count)` runs its worker on (at least 1): what a caller sizing per-worker scratch
    /// in advance must count.
    public static func workers(for count: Int, threads: Int = Parallel.threads) -> Int { max(1, min(threads, count)) }

    /// Work stealing over 0..<count: `worker` runs once on each of `workers(for: count)` threads, with its number w
    /// (0 ..< workers, for carving per-worker scratch), and takes indices with `claim()` (the next unclaimed one, nil
    /// when none is left), so a faster core takes more of them. Which worker ran an index varies from run to run: each
    /// index must write only its own outputs.
    public static func claiming(_ count: Int, flushingDenormals: Bool = false, _ worker: (_ w: Int, _ claim: () -> Int?) -> Void) {
        if count <= 0 { return }
        let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        next.initialize(to: 0)
        defer { next.deallocate() }
        forEach(workers(for: count), flushingDenormals: flushingDenormals) { w in
            worker(w) {
                let i = sloth_claim(next)
                return i < count ? i : nil
            }
        }
    }
}
