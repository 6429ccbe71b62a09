import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Matrix products through a CBLAS library loaded at first use (row-major). OpenBLAS by default; `SLOTH_BLAS`
/// names another CBLAS (`blis`, or a path to a shared library).
///
/// Loading at run time lets Sloth choose OpenBLAS's kernel before OpenBLAS initialises: Debian's OpenBLAS 0.3.21
/// does not know AMD Zen 4/5 and runs its AVX2 (Haswell) kernels there, half the rate of its AVX-512 (SkylakeX)
/// kernels on the same cores (bench/gemm.sh). On a CPU with the AVX-512 subsets those kernels need, Sloth sets
/// `OPENBLAS_CORETYPE=SkylakeX` unless the user set it.
public enum BLAS {
    typealias Sgemm = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias SetThreadsLong = @convention(c) (Int) -> Void
    typealias GetString = @convention(c) () -> UnsafePointer<CChar>?

    /// The loaded library and what it reports about itself.
    public struct Library: @unchecked Sendable {
        let sgemm: Sgemm
        /// "OpenBLAS 0.3.21 ... SkylakeX" or "BLIS 0.9.0 skx": the library and the kernel it runs.
        public let description: String
        /// Set when Sloth chose the kernel (OPENBLAS_CORETYPE) itself.
        public let chosenCore: String?
    }

    /// Loaded once, on the first product.
    public static let library: Library = load()

    /// True when /proc/cpuinfo lists the AVX-512 subsets OpenBLAS's SkylakeX kernels use.
    static func hasAVX512() -> Bool {
        // /proc files report size 0: read them line by line.
        guard let f = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil, cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0, let l = line {
            let s = String(cString: l)
            guard s.hasPrefix("flags") else { continue }
            let set = Set(s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            return ["avx512f", "avx512dq", "avx512bw", "avx512vl"].allSatisfy(set.contains)
        }
        return false
    }

    static func load() -> Library {
        let choice = ProcessInfo.processInfo.environment["SLOTH_BLAS"] ?? "openblas"
        var chosen: String? = nil
        let names: [String]
        switch choice {
        case "openblas":
            if getenv("OPENBLAS_CORETYPE") == nil && hasAVX512() {
                setenv("OPENBLAS_CORETYPE", "SkylakeX", 0)
                chosen = "SkylakeX"
            }
            names = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"]
        case "blis":
            names = ["/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4", "/usr/lib/aarch64-linux-gnu/blis-pthread/libblis.so.4", "libblis.so.4", "libblis.so"]
        default:
            names = [choice]
        }
        guard let handle = names.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_GLOBAL) }).first else {
            let why = dlerror().map { String(cString: $0) } ?? "not found"
            unusable("Sloth needs a CBLAS library for its matrix products and could not load \(names.joined(separator: " or ")) (\(why)). "
                     + "Install OpenBLAS (Debian/Ubuntu: apt-get install libopenblas0), or set SLOTH_BLAS to a CBLAS shared library.")
        }
        func symbol<T>(_ name: String, _ type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let sgemm = symbol("cblas_sgemm", Sgemm.self) else {
            unusable("\(names[0]) has no cblas_sgemm: SLOTH_BLAS must name a CBLAS library (one that exports cblas_sgemm).")
        }
        // The library runs single-threaded; Sloth cuts large products over its own workers (see sgemm).
        if let set = symbol("openblas_set_num_threads", SetThreads.self) {
            set(1)
            let config = symbol("openblas_get_config", GetString.self).flatMap { $0() }.map { String(cString: $0) } ?? "OpenBLAS"
            let core = symbol("openblas_get_corename", GetString.self).flatMap { $0() }.map { String(cString: $0) } ?? "?"
            let version = config.split(separator: " ").prefix(2).joined(separator: " ")
            return Library(sgemm: sgemm, description: "\(version) \(core)", chosenCore: chosen)
        }
        if let set = symbol("bli_thread_set_num_threads", SetThreadsLong.self) {
            set(1)
            let version = symbol("bli_info_get_version_str", GetString.self).flatMap { $0() }.map { String(cString: $0) } ?? "?"
            let arch = ProcessInfo.processInfo.environment["BLIS_ARCH_TYPE"] ?? "auto"
            return Library(sgemm: sgemm, description: "BLIS \(version) (BLIS_ARCH_TYPE \(arch))", chosenCore: nil)
        }
        return Library(sgemm: sgemm, description: choice, chosenCore: nil)
    }

    /// The machine cannot run products at all (no BLAS): says why and what to install, and exits.
    static func unusable(_ message: String) -> Never {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
        exit(1)
    }

    /// C (m x n) = alpha * op(A) * op(B) + beta * C, row-major; lda/ldb/ldc default to packed rows.
    @inlinable
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        let parts = split ? min(Parallel.threads, max(1, max(m, n) / 64)) : 1
        if parts <= 1 || 2 * Double(m) * Double(n) * Double(k) < 4e6 {
            gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        // Sloth's threads run BLAS's work: the larger of m and n is cut into one slice per worker (multiples of
        // 16), each slice a single-threaded product. BLAS's own pool stays idle, so it never spins on cores the
        // kernels between the products need.
        let alongM = m >= n, extent = alongM ? m : n
        Parallel.forEach(parts) { p in
            let lo = (extent * p / parts) & ~15, hi = p == parts - 1 ? extent : (extent * (p + 1) / parts) & ~15
            guard hi > lo else { return }
            if alongM {
                gemm(transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc)
            } else {
                gemm(transA, transB, m, hi - lo, k, alpha, a, lda, transB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc)
            }
        }
    }

    /// Whether products are cut over Sloth's workers (off inside `singleThreaded`, whose body runs on workers).
    nonisolated(unsafe) public static var split = true

    @usableFromInline
    static func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                     _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        // CBLAS constants: CblasRowMajor 101, CblasNoTrans 111, CblasTrans 112.
        library.sgemm(101, transA ? 112 : 111, transB ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

}

extension BLAS {
    /// Runs `body` with every product single-threaded: for regions that parallelise over small products themselves.
    @inlinable
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        if !split { return try body() }
        split = false
        defer { split = true }
        return try body()
    }
}

extension BLAS {
    /// One GEMM shape (row-major, packed operands).
    public struct Shape: Sendable, Hashable {
        public var transA: Bool, transB: Bool, m: Int, n: Int, k: Int
        public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int) {
            self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
        }
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
        public var key: String { "\(m)x\(n)x\(k)\(transA ? "T" : "N")\(transB ? "T" : "N")" }
    }

    /// A FLOP-weighted GEMM rate and each shape's own.
    public typealias MeasuredRate = (flopsPerSecond: Double, perShape: [(Shape, Double)])

    /// Times each shape (at least `seconds` and two runs, after a warm-up) with the threads BLAS has now and
    /// returns the rate of the mix, weighted by how often a step runs each: sum(count x FLOPs) / sum(count x time).
    public static func measuredRate(_ shapes: [(shape: Shape, count: Int)], seconds: Double = 0.2) -> MeasuredRate {
        var totalFlops = 0.0, totalTime = 0.0
        var per: [(Shape, Double)] = []
        for (s, count) in shapes where s.m > 0 && s.n > 0 && s.k > 0 {
            let a = UnsafeMutablePointer<Float>.allocate(capacity: s.m * s.k), b = UnsafeMutablePointer<Float>.allocate(capacity: s.k * s.n)
            let c = UnsafeMutablePointer<Float>.allocate(capacity: s.m * s.n)
            defer { a.deallocate(); b.deallocate(); c.deallocate() }
            for i in 0..<(s.m * s.k) { a[i] = Float(i % 13) * 1e-3 }
            for i in 0..<(s.k * s.n) { b[i] = Float(i % 7) * 1e-3 }
            func run() { sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a, b: b, c: c) }
            run()
            var runs = 0
            let t0 = Profile.now()
            var elapsed = 0.0
            while runs < 2 || elapsed < seconds {
                run(); runs += 1
                elapsed = Double(Profile.now() - t0) * 1e-9
            }
            let t = elapsed / Double(runs)
            per.append((s, s.flops / t))
            totalFlops += Double(count) * s.flops; totalTime += Double(count) * t
        }
        return (totalTime > 0 ? totalFlops / totalTime : 0, per)
    }
}
