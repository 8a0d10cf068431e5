import CMalloc
import Foundation
import Torch

/// The allocator behind `malloc`, which holds the tensors of every forward pass.
///
/// serve links jemalloc (Package.swift), which returns the pages of freed tensors to the system
/// as they age (`dirty_decay_ms`, 10 s by default; `MALLOC_CONF` tunes it). A build with
/// `SERVE_ALLOCATOR=glibc` keeps glibc's malloc, capped at two arenas: by default glibc gives
/// threads arenas of their own, up to 8 per core, each keeping what its threads freed, and RSS
/// rose in steps of about 22 MiB through the soak check (docs/design.md, Host memory).
enum HostAllocator {
    /// What serves `malloc`, for the start-up log; set up on first use, which `main` makes
    /// before any thread starts.
    static let inUse: String = configure()

    private static func configure() -> String {
        if let version = cmalloc_jemalloc_version() {
            let tuned = ProcessInfo.processInfo.environment["MALLOC_CONF"].map { ", MALLOC_CONF=\($0)" } ?? ""
            return "jemalloc \(String(cString: version).prefix { $0 != "-" })\(tuned)"
        }
        // glibc reads MALLOC_ARENA_MAX itself; it wins over the cap.
        if let arenas = ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] {
            return "glibc malloc, MALLOC_ARENA_MAX=\(arenas)"
        }
        do {
            try TorchRuntime.limitMallocArenas(2)
            return "glibc malloc, 2 arenas"
        } catch {
            return "glibc malloc, its default arenas (\(error))"
        }
    }
}
