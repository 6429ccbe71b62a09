import Foundation
import SlothCore
import CZstd

/// A slower tier that holds layer checkpoints (each layer's input) while the rest of the step runs.
/// On CPU: a file on disk (`DiskTier`) or host memory (`HostTier`); on a GPU it would be pinned host memory.
/// Copies run on a background queue; `wait` returns when a slot's copy is done (or throws its error).
public protocol OffloadTier: AnyObject {
    var name: String { get }
    /// Starts copying `count` floats from `source` into `slot`; `source` must not change until `wait(slot)`.
    func store(slot: Int, from source: UnsafePointer<Float>, count: Int)
    /// Starts copying `slot` back into `destination`.
    func load(slot: Int, into destination: UnsafeMutablePointer<Float>, count: Int)
    /// Blocks until the last copy of `slot` finished.
    func wait(slot: Int) throws
}

/// Errors of the offload tiers.
public struct OffloadError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The copies in flight per slot and their errors: what every tier's `wait` needs.
final class SlotCopies: @unchecked Sendable {
    private var pending: [Int: DispatchGroup] = [:]
    private var errors: [Int: String] = [:]
    private let lock = NSLock()

    /// Starts tracking a new copy of `slot` (entered; call `leave` on the group when done).
    func begin(_ slot: Int) -> DispatchGroup {
        lock.lock(); defer { lock.unlock() }
        let g = DispatchGroup()
        pending[slot] = g
        errors[slot] = nil
        g.enter()
        return g
    }
    func fail(_ slot: Int, _ msg: String) { lock.lock(); errors[slot] = msg; lock.unlock() }
    /// Blocks until the last copy of `slot` is done; throws its error.
    func wait(_ slot: Int) throws {
        lock.lock(); let g = pending[slot]; lock.unlock()
        g?.wait()
        lock.lock(); let e = errors[slot]; lock.unlock()
        if let e { throw OffloadError(message: e) }
    }
}

/// Checkpoints in a file (page cache and disk, not the process's memory): pwrite/pread on a serial queue.
public final class DiskTier: OffloadTier, @unchecked Sendable {
    public let name = "disk"
    let fd: Int32
    let path: String
    let queue = DispatchQueue(label: "sloth.offload.disk")
    private let copies = SlotCopies()

    /// A temporary file in `directory` (deleted when the tier is released).
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("sloth-offload-\(getpid())-\(UUID().uuidString).bin").path
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else {
            throw OffloadError(message: "cannot create the offload file \(path): \(String(cString: strerror(errno))). Pass --offload-dir with a writable folder.")
        }
        unlink(path)  // the file lives while the descriptor is open
    }
    // Every queued copy holds the tier, so none is pending here; the last one may be releasing it on `queue` itself,
    // where a queue.sync drain would deadlock (libdispatch traps it: SIGILL, seen in a clean-clone CI run).
    deinit { close(fd) }
    private func fail(_ slot: Int, _ msg: String) { copies.fail(slot, msg) }

    public func store(slot: Int, from source: UnsafePointer<Float>, count: Int) {
        let g = copies.begin(slot)
        let bytes = count * 4, offset = off_t(slot) * off_t(bytes)
        queue.async { [self] in
            var done = 0
            while done < bytes {
                let n = pwrite(fd, UnsafeRawPointer(source) + done, bytes - done, offset + off_t(done))
                if n <= 0 { fail(slot, "writing layer checkpoint \(slot) to \(path) failed: \(String(cString: strerror(errno))) (disk full? use --offload-dir)"); break }
                done += n
            }
            // Drop the written pages from the page cache: they are read back only in backward.
            _ = posix_fadvise(fd, offset, off_t(bytes), Int32(POSIX_FADV_DONTNEED))
            g.leave()
        }
    }

    public func load(slot: Int, into destination: UnsafeMutablePointer<Float>, count: Int) {
        let g = copies.begin(slot)
        let bytes = count * 4, offset = off_t(slot) * off_t(bytes)
        queue.async { [self] in
            var done = 0
            while done < bytes {
                let n = pread(fd, UnsafeMutableRawPointer(destination) + done, bytes - done, offset + off_t(done))
                if n <= 0 { fail(slot, "reading layer checkpoint \(slot) from \(path) failed: \(String(cString: strerror(errno)))"); break }
                done += n
            }
            g.leave()
        }
    }

    public func wait(slot: Int) throws { try copies.wait(slot) }
}

/// Checkpoints in host memory buffers (the GPU design's pinned-host tier; on CPU it saves nothing and serves
/// to measure the copy overhead).
public final class HostTier: OffloadTier, @unchecked Sendable {
    public let name = "host"
    private var slots: [Int: Tensor] = [:]
    let queue = DispatchQueue(label: "sloth.offload.host")
    private let copies = SlotCopies()
    private let lock = NSLock()
    public init() {}

    public func store(slot: Int, from source: UnsafePointer<Float>, count: Int) {
        lock.lock()
        if slots[slot]?.count != count { slots[slot] = Tensor([count]) }
        let dst = slots[slot]!
        lock.unlock()
        let g = copies.begin(slot)
        queue.async { dst.data.update(from: source, count: count); g.leave() }
    }
    public func load(slot: Int, into destination: UnsafeMutablePointer<Float>, count: Int) {
        lock.lock()
        let src = slots[slot]
        lock.unlock()
        let g = copies.begin(slot)
        queue.async { if let src { destination.update(from: src.data, count: count) }; g.leave() }
    }
    public func wait(slot: Int) throws { try copies.wait(slot) }
}

/// Checkpoints in host memory, compressed without loss: each float's four bytes are split into four
/// planes (sign/exponent bytes compress well, mantissa bytes hardly) and each plane is Zstandard-compressed.
/// Gradients are bit-identical to the uncompressed tiers; what it saves is measured by `bench/offload.sh`
/// (`compressedBytes` / `rawBytes`).
public final class CompressedHostTier: OffloadTier, @unchecked Sendable {
    public let name = "compressed"
    /// Zstandard level (1 is the fastest of the regular levels; negative levels are faster still).
    public let level: Int32
    private var slots: [Int: [UInt8]] = [:]
    private let copies = SlotCopies()
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "sloth.offload.compressed")
    /// Byte planes of the checkpoint being (de)compressed; the queue is serial, so one buffer serves all slots.
    private var planes: [UInt8] = []
    private var raw = 0, compressed = 0

    public init(level: Int32 = 1) { self.level = level }

    /// Bytes stored so far (summed over every store), before and after compression.
    public var rawBytes: Int { lock.lock(); defer { lock.unlock() }; return raw }
    public var compressedBytes: Int { lock.lock(); defer { lock.unlock() }; return compressed }

    private func fail(_ slot: Int, _ msg: String) { copies.fail(slot, msg) }

    public func store(slot: Int, from source: UnsafePointer<Float>, count: Int) {
        let g = copies.begin(slot)
        queue.async { [self] in
            defer { g.leave() }
            let bytes = count * 4
            if planes.count < bytes { planes = [UInt8](repeating: 0, count: bytes) }
            let src = UnsafeRawPointer(source).assumingMemoryBound(to: UInt8.self)
            planes.withUnsafeMutableBufferPointer { p in
                for i in 0..<count { for b in 0..<4 { p[b * count + i] = src[4 * i + b] } }
            }
            var out = [UInt8](repeating: 0, count: 4 * 8 + 4 * ZSTD_compressBound(count))
            var used = 0
            var sizes = [Int](repeating: 0, count: 4)
            for b in 0..<4 {
                let n = planes.withUnsafeBufferPointer { p in
                    out.withUnsafeMutableBufferPointer { o in
                        ZSTD_compress(o.baseAddress! + 32 + used, o.count - 32 - used, p.baseAddress! + b * count, count, Int32(level))
                    }
                }
                if ZSTD_isError(n) != 0 {
                    fail(slot, "compressing layer checkpoint \(slot) failed: \(String(cString: ZSTD_getErrorName(n)))"); return
                }
                sizes[b] = n; used += n
            }
            out.withUnsafeMutableBytes { o in for b in 0..<4 { o.storeBytes(of: UInt64(sizes[b]).littleEndian, toByteOffset: 8 * b, as: UInt64.self) } }
            out.removeSubrange((32 + used)...)
            lock.lock()
            compressed += out.count
            raw += bytes
            slots[slot] = out
            lock.unlock()
        }
    }

    public func load(slot: Int, into destination: UnsafeMutablePointer<Float>, count: Int) {
        let g = copies.begin(slot)
        queue.async { [self] in
            defer { g.leave() }
            lock.lock(); let stored = slots[slot]; lock.unlock()
            guard let stored, stored.count >= 32 else { fail(slot, "layer checkpoint \(slot) was never stored"); return }
            if planes.count < count * 4 { planes = [UInt8](repeating: 0, count: count * 4) }
            var at = 32
            for b in 0..<4 {
                let size = stored.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * b, as: UInt64.self))) }
                let n = stored.withUnsafeBufferPointer { s in
                    planes.withUnsafeMutableBufferPointer { p in ZSTD_decompress(p.baseAddress! + b * count, count, s.baseAddress! + at, size) }
                }
                if ZSTD_isError(n) != 0 || n != count {
                    fail(slot, "decompressing layer checkpoint \(slot) failed"); return
                }
                at += size
            }
            let dst = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: UInt8.self)
            planes.withUnsafeBufferPointer { p in
                for i in 0..<count { for b in 0..<4 { dst[4 * i + b] = p[b * count + i] } }
            }
        }
    }

    public func wait(slot: Int) throws { try copies.wait(slot) }
}
