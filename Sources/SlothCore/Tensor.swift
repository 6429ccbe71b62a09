import Foundation

/// A contiguous, owned block of Float32 with a shape: the unit of compute storage.
///
/// Sloth computes in fp32; half-precision weights are converted when loaded. The storage is a raw
/// allocation (64-byte aligned) so kernels can take pointers without copy-on-write checks.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// The storage a view lives in (kept alive by the view); nil when this tensor owns its memory.
    private let owner: AnyObject?

    /// Allocates a zero-filled tensor.
    public init(_ shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)") // programmer error
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
        owner = nil
        MemoryStats.shared.allocated(count * 4)
    }

    /// A view of `shape` at `pointer` inside memory that `owner` keeps alive (an arena); not zeroed.
    public init(viewing pointer: UnsafeMutablePointer<Float>, shape: [Int], owner: AnyObject) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = pointer
        self.owner = owner
    }

    /// Allocates a tensor holding `values` (which must have `shape`'s element count).
    public convenience init(_ shape: [Int], _ values: [Float]) {
        self.init(shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)") // programmer error
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit {
        guard owner == nil else { return }
        MemoryStats.shared.freed(count * 4)
        UnsafeMutableRawPointer(data).deallocate()
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }
    public func zero() { data.update(repeating: 0, count: count) }
    public func copy(from other: Tensor) {
        precondition(other.count == count) // programmer error
        data.update(from: other.data, count: count)
    }
    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }
}

/// Process-wide accounting of tensor bytes: current and peak.
public final class MemoryStats: @unchecked Sendable {
    public static let shared = MemoryStats()
    private let lock = NSLock()
    private var current = 0
    private var peak = 0

    func allocated(_ bytes: Int) {
        lock.lock(); current += bytes; peak = max(peak, current); lock.unlock()
    }
    func freed(_ bytes: Int) { lock.lock(); current -= bytes; lock.unlock() }

    /// Bytes of tensor storage alive now.
    public var currentBytes: Int { lock.lock(); defer { lock.unlock() }; return current }
    /// The most tensor bytes alive at once since start (or the last reset).
    public var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    public func resetPeak() { lock.lock(); peak = current; lock.unlock() }

    /// Peak resident set size of the process in bytes (Linux: VmHWM), or 0 when unknown.
    public static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}

/// One allocation carved into named views at offsets a layout gives (llm.c style): the memory plan's
/// activation buffers live here, so what the planner counts is what is allocated.
public final class Arena: @unchecked Sendable {
    public let capacity: Int          // floats
    let base: UnsafeMutablePointer<Float>
    private var offsets: [String: (offset: Int, count: Int)] = [:]

    /// Lays out `buffers` (name, float count) back to back, each 16-float aligned.
    public init(_ buffers: [(name: String, count: Int)]) {
        var off = 0
        for b in buffers {
            offsets[b.name] = (off, b.count)
            off += (b.count + 15) / 16 * 16
        }
        capacity = max(off, 16)
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
        MemoryStats.shared.allocated(capacity * 4)
    }
    deinit {
        MemoryStats.shared.freed(capacity * 4)
        UnsafeMutableRawPointer(base).deallocate()
    }

    public var bytes: Int { capacity * 4 }

    /// The view named `name` with `shape` (its element count must be the planned one).
    public func tensor(_ name: String, _ shape: [Int]) -> Tensor {
        guard let o = offsets[name] else { preconditionFailure("arena has no buffer '\(name)'") } // programmer error
        precondition(shape.reduce(1, *) == o.count, "arena buffer '\(name)' is \(o.count) floats, not \(shape)") // programmer error
        return Tensor(viewing: base + o.offset, shape: shape, owner: self)
    }
    public func has(_ name: String) -> Bool { offsets[name] != nil }
}
