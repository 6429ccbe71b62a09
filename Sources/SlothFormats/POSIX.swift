#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// POSIX calls whose names clash with Swift methods (`write`, `rename`), resolved once per platform.
enum POSIX {
    /// write(2).
    static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, buf, count)
        #elseif canImport(Musl)
        return Musl.write(fd, buf, count)
        #else
        return Darwin.write(fd, buf, count)
        #endif
    }

    /// pread(2).
    static func pread(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.pread(fd, buf, count, off_t(offset))
        #elseif canImport(Musl)
        return Musl.pread(fd, buf, count, off_t(offset))
        #else
        return Darwin.pread(fd, buf, count, off_t(offset))
        #endif
    }

    /// rename(2).
    static func rename(_ from: String, _ to: String) -> Int32 {
        #if canImport(Glibc)
        return Glibc.rename(from, to)
        #elseif canImport(Musl)
        return Musl.rename(from, to)
        #else
        return Darwin.rename(from, to)
        #endif
    }
}
