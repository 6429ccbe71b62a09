import Foundation

/// The memory plan's kernel workspace: one buffer that the kernels with large transient scratch (attention's per-worker
/// blocks and per-class dK, dV; chunked cross-entropy's logits) borrow for the length of a call. It is kept between
/// calls and grows to the largest request, which the plan counts once ("workspace": the largest kernel's scratch).
///
/// Allocated per call, the same scratch was mapped and faulted in again on every call: glibc serves requests above its
/// mmap threshold (at most 32 MiB) with a fresh mapping, and the kernel zero-fills it page by page on first touch. On
/// the bench model at 2048 tokens that was cross-entropy's 192 MiB logits chunk, about 47 000 page faults a step: its
/// first chunk's product took 0.57-0.61 s where the second, on the same buffer, took 0.29-0.30 s. At 8192 tokens
/// attention backward's per-class dK, dV (38 MiB) were mapped afresh in each of the 30 layers.
public final class Workspace: @unchecked Sendable {
    public static let shared = Workspace()

    private let lock = NSLock()
    private var base: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var busy = false

    /// Floats held now (0 before the first call or after `release`).
    public var heldFloats: Int { lock.lock(); defer { lock.unlock() }; return capacity }

    /// Runs `body` on at least `count` floats of scratch (contents undefined). A call made while another holds the
    /// workspace (another thread, or a kernel inside a kernel) gets scratch of its own, freed when it returns.
    public func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let n = max(count, 16)
        lock.lock()
        if busy {
            lock.unlock()
            let own = Self.allocate(n)
            defer { Self.free(own, n) }
            return try body(own)
        }
        busy = true
        if capacity < n {
            if let base { Self.free(base, capacity) }
            base = Self.allocate(n)
            capacity = n
        }
        let p = base!
        lock.unlock()
        defer { lock.lock(); busy = false; lock.unlock() }
        return try body(p)
    }

    /// Frees the held buffer (after training, before export). A call in progress keeps its buffer until it returns.
    public func release() {
        lock.lock(); defer { lock.unlock() }
        guard !busy, let base else { return }
        Self.free(base, capacity)
        self.base = nil
        capacity = 0
    }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        MemoryStats.shared.allocated(n * 4)
        return UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
    }
    private static func free(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        MemoryStats.shared.freed(n * 4)
        UnsafeMutableRawPointer(p).deallocate()
    }
}
