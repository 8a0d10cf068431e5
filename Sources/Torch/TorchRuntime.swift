import CTorch

/// Process-wide libtorch settings and facts.
public enum TorchRuntime {
    /// The libtorch version the shim was built against, e.g. "1.13.1".
    public static var version: String { String(cString: ctorch_version()) }

    /// Whether this build can load AOTInductor packages (`.pt2`): the libtorch 2 build
    /// (`scripts/setup --libtorch pytorch`), not the Debian one.
    public static var canLoadAOTInductor: Bool { ctorch_aoti_available() != 0 }

    /// Why a `.pt2` cannot be served by this build, and which build can.
    public static var aotInductorUnavailableReason: String {
        "this build cannot load AOTInductor packages (libtorch \(version) from Debian); build with scripts/setup --libtorch pytorch"
    }

    /// CUDA devices libtorch can see (0 with a CPU-only libtorch).
    public static var cudaDeviceCount: Int { Int(ctorch_cuda_device_count()) }

    /// libtorch's intra-op thread count on the calling thread.
    public static var intraOpThreads: Int { Int(ctorch_get_num_threads()) }

    /// Sets libtorch's intra-op thread count for the calling thread (each worker thread sets its
    /// own). OpenBLAS, where it is the BLAS, runs on the calling thread whatever the count.
    public static func setIntraOpThreads(_ count: Int) throws(TorchError) {
        guard count >= 1 else { throw TorchError.invalidArgument("intra-op threads must be at least 1, got \(count)") }
        try check(ctorch_set_num_threads(Int32(clamping: count)), "setting \(count) intra-op threads")
    }

    /// Sets libtorch's inter-op thread count; only possible before any inter-op work ran.
    public static func setInterOpThreads(_ count: Int) throws(TorchError) {
        guard count >= 1 else { throw TorchError.invalidArgument("inter-op threads must be at least 1, got \(count)") }
        try check(ctorch_set_num_interop_threads(Int32(clamping: count)), "setting \(count) inter-op threads")
    }

    /// Stops the BLAS library's idle worker threads (OpenBLAS's pthread build starts them when it
    /// is loaded); the BLAS starts them again when it next needs them. For a fork: afterwards the
    /// process may have a single thread again.
    public static func stopBLASThreads() throws(TorchError) {
        try check(ctorch_stop_blas_threads(), "stopping the BLAS threads")
    }

    /// Caps glibc's malloc, which allocates the tensors, at `count` arenas. By default glibc gives
    /// threads arenas of their own, up to 8 per core, and an arena keeps the memory its threads
    /// freed: every thread that ran a forward pass could come to hold a copy of the model's
    /// working set. For a process about to start its threads; nothing to do with another C library.
    public static func limitMallocArenas(_ count: Int) throws(TorchError) {
        guard count >= 1 else { throw TorchError.invalidArgument("malloc arenas must be at least 1, got \(count)") }
        try check(ctorch_limit_malloc_arenas(Int32(clamping: count)), "capping malloc at \(count) arenas")
    }
}
