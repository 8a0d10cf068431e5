// swift-tools-version:6.1
import Foundation
import PackageDescription

// libtorch location. Default: Debian's `libtorch-dev` (headers under /usr/include, libraries on
// the default linker path). Set LIBTORCH_DIR to a folder with `include/` and `lib/` (for example
// a PyTorch wheel's `torch/` folder, which carries a CUDA build) to build against that instead;
// a folder without `libtorch.so` links only `torch_cpu` and `c10`.
// LIBTORCH_CXX11_ABI=0|1 sets `_GLIBCXX_USE_CXX11_ABI` for libtorch builds that need it.
let environment = Context.environment
let libtorchDir = environment["LIBTORCH_DIR"].flatMap { $0.isEmpty ? nil : $0 }

var torchCxxFlags: [String] = []
var torchLinkFlags: [String] = []
var torchLibraries = ["torch", "torch_cpu", "c10"]
if let dir = libtorchDir {
    torchCxxFlags += ["-I\(dir)/include", "-I\(dir)/include/torch/csrc/api/include"]
    // By path, not -l: other targets put -L/usr/lib/x86_64-linux-gnu first on the link line,
    // where Debian's libtorch would be found instead.
    func library(_ name: String) -> [String] { ["-Xlinker", "\(dir)/lib/lib\(name).so"] }
    let hasTorch = FileManager.default.fileExists(atPath: "\(dir)/lib/libtorch.so")
    torchLibraries = []
    // libtorch.so is kept even though nothing references it: an AOTInductor package's shared
    // object names it, and finds it loaded (for a CPU extraction, setup's stand-in).
    if hasTorch {
        torchLinkFlags += ["-Xlinker", "--no-as-needed"] + library("torch") + ["-Xlinker", "--as-needed"]
    }
    torchLinkFlags += ["torch_cpu", "c10"].flatMap(library)
    torchLinkFlags += ["-Xlinker", "-rpath", "-Xlinker", "\(dir)/lib"]
    if FileManager.default.fileExists(atPath: "\(dir)/lib/libtorch_cuda.so") {
        // The CUDA kernels register themselves from a library nothing references directly.
        torchLinkFlags += ["-Xlinker", "--no-as-needed"] + library("torch_cuda") + library("c10_cuda")
            + ["-Xlinker", "--as-needed"]
    }
} else {
    torchCxxFlags += ["-I/usr/include/torch/csrc/api/include"]
}
if let abi = environment["LIBTORCH_CXX11_ABI"], abi == "0" || abi == "1" {
    torchCxxFlags += ["-D_GLIBCXX_USE_CXX11_ABI=\(abi)"]
}

// serve's allocator: jemalloc (Debian's libjemalloc-dev), linked so that its malloc comes before
// glibc's for every library, libtorch's tensors included. glibc's malloc kept the freed memory of
// forward passes in its heaps and RSS grew through a 30-minute soak (docs/design.md, Host memory).
// SERVE_ALLOCATOR=glibc builds without it. Kept in order by -Xlinker, and linked even where
// --as-needed would judge it unneeded.
let allocatorLink: [LinkerSetting] = environment["SERVE_ALLOCATOR"] == "glibc" ? [] : [
    .unsafeFlags(["-Xlinker", "--no-as-needed", "-Xlinker", "-ljemalloc", "-Xlinker", "--as-needed"]),
]

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

// FUZZ_COVERAGE=1 (`scripts/fuzz --ci`, run by CI after the tests): libFuzzer's coverage and
// AddressSanitizer for the project's own modules that parse outside bytes and for the fuzz
// targets only. Dependencies keep the flags of the test build, so a CI run recompiles only these
// modules instead of building everything again with the sanitizers (`scripts/fuzz` without --ci
// does that, in release, into .build-fuzz, for long runs).
let fuzzCoverage = environment["FUZZ_COVERAGE"] == "1"
let fuzzed: [SwiftSetting] = fuzzCoverage ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []
let fuzzedC: [CSetting] = fuzzCoverage ? [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])] : []
// The targets keep their own `main` (a debug build renames it, and libFuzzer's would clash), which
// hands over to libFuzzer through CFuzzDriver.
let fuzzTarget: [SwiftSetting] = fuzzCoverage ? [.unsafeFlags(["-sanitize=fuzzer,address", "-DFUZZ_DRIVER_MAIN"])] : []
let fuzzDriverC: [CSetting] = fuzzCoverage ? [.define("FUZZ_DRIVER_MAIN")] : []
let fuzzTargetLink: [LinkerSetting] = fuzzCoverage ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []

let package = Package(
    name: "swift-model-server",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "serve", targets: ["serve"]),
        .executable(name: "archiver", targets: ["archiver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.60.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
        // gRPC (KServe v2's GRPCInferenceService, TorchServe's inference and management APIs).
        // The protobuf code is generated once by scripts/codegen/generate-protos and committed.
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.28.0"),
        // Tracing: spans in the core, exported over OTLP/HTTP by the serve program only.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.0.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // C: the only C++ in the project, a plain C header over libtorch.
        .target(
            name: "CTorch",
            cxxSettings: [.unsafeFlags(torchCxxFlags)],
            linkerSettings: torchLibraries.map { .linkedLibrary($0) }
                + [.linkedLibrary("stdc++"), .unsafeFlags(torchLinkFlags)]
        ),
        // C: libpng and libjpeg; their setjmp/longjmp error handling stays in here.
        .target(
            name: "CImage",
            cSettings: fuzzedC,
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]
        ),
        // C: which allocator serves malloc (jemalloc's version, through mallctl when it is there).
        .target(name: "CMalloc"),
        // Native: Swift faces of the C targets.
        .target(name: "Torch", dependencies: ["CTorch"], swiftSettings: swiftSettings),
        .target(name: "ImageCodec", dependencies: ["CImage"], swiftSettings: swiftSettings + fuzzed),
        // Core.
        .target(
            name: "ModelArchive",
            dependencies: [
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings + fuzzed
        ),
        .target(
            name: "ServerCore",
            dependencies: [
                "ModelArchive", "Torch", "ImageCodec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // Images by URL: a client pinned to the address it checked (AsyncHTTPClient cannot be).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings + fuzzed
        ),
        // HTTP.
        .target(
            name: "ServerHTTP",
            dependencies: [
                "ServerCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings + fuzzed
        ),
        // gRPC: KServe v2 (Open Inference Protocol) and TorchServe's inference and management APIs.
        // Generated/ is written by scripts/codegen/generate-protos from proto/.
        .target(
            name: "ServerGRPC",
            dependencies: [
                "ServerCore", "ServerHTTP",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["proto"],
            swiftSettings: swiftSettings
        ),
        // Executables.
        .executableTarget(
            name: "serve",
            dependencies: [
                "ServerHTTP", "ServerGRPC", "ServerCore", "Torch", "ArchiverCommand",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                "CMalloc",
            ],
            swiftSettings: swiftSettings,
            linkerSettings: allocatorLink
        ),
        .target(
            name: "ArchiverCommand",
            dependencies: [
                "ModelArchive", "Torch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "archiver", dependencies: ["ArchiverCommand"], swiftSettings: swiftSettings),
        // Benchmark: the raw forward-pass floor (scripts/bench runs it; not part of the tests).
        .executableTarget(name: "forward-bench", dependencies: ["Torch"], swiftSettings: swiftSettings),
        // Tests. Committed fixtures live in Tests/Fixtures; TestFixtures finds them.
        .target(name: "TestFixtures", path: "Tests/TestFixtures", swiftSettings: swiftSettings),
        .testTarget(
            name: "TorchTests",
            dependencies: ["Torch", "TestFixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ImageCodecTests",
            dependencies: ["ImageCodec", "TestFixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ModelArchiveTests",
            dependencies: [
                "ModelArchive", "Torch", "TestFixtures",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HandlerTests",
            dependencies: ["ServerCore", "ModelArchive", "Torch", "TestFixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ArchiverTests",
            // ServerCore and ServerTestSupport: converted archives are served by a real ModelServer.
            dependencies: ["ModelArchive", "TestFixtures", "ServerCore", "ServerTestSupport"],
            swiftSettings: swiftSettings
        ),
        // What the server test targets share: a model store on disk, polling, masks, a quiet logger.
        .target(
            name: "ServerTestSupport",
            dependencies: [
                "ServerHTTP", "ServerCore", "TestFixtures",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Tests/ServerTestSupport",
            swiftSettings: swiftSettings
        ),
        // The core (ModelServer, versions, settings) driven without the HTTP layer.
        .testTarget(
            name: "ServerCoreTests",
            dependencies: [
                "ServerCore", "ModelArchive", "ImageCodec", "Torch", "TestFixtures", "ServerTestSupport",
                // Metrics read back through Prometheus, and a stand-in origin for URL downloads.
                "ServerHTTP",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                // The spans of requests, recorded by a tracer of the test's own.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP APIs: inference, management, metrics, KServe, SageMaker, routing, auth, edges.
        .testTarget(
            name: "ServerHTTPTests",
            dependencies: [
                "ServerHTTP", "ServerCore", "ModelArchive", "ImageCodec", "Torch", "TestFixtures", "ServerTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // The gRPC APIs through real clients of grpc-swift on loopback.
        .testTarget(
            name: "ServerGRPCTests",
            dependencies: [
                "ServerGRPC", "ServerHTTP", "ServerCore", "TestFixtures", "ServerTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `serve` executable run as a process.
        .testTarget(
            name: "ServeProcessTests",
            dependencies: [
                "TestFixtures", "ServerTestSupport",
                // The tracing test's OTLP/HTTP receiver and the messages it decodes (otlp/, generated).
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["otlp/otlp_trace.proto", "otlp/generate"],
            swiftSettings: swiftSettings
        ),
        // Fuzz targets (scripts/fuzz builds them with libFuzzer and AddressSanitizer into .build-fuzz;
        // a plain build makes replayers: `swift run FuzzImage FILE-OR-FOLDER...`).
        .target(name: "CFuzzDriver", path: "Tests/Fuzz/CFuzzDriver", cSettings: fuzzDriverC),
        .target(
            name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "Tests/Fuzz/FuzzSupport",
            swiftSettings: swiftSettings + fuzzTarget
        ),
        .executableTarget(
            name: "FuzzImage", dependencies: ["FuzzSupport", "ImageCodec"], path: "Tests/Fuzz/FuzzImage",
            swiftSettings: swiftSettings + fuzzTarget, linkerSettings: fuzzTargetLink
        ),
        .executableTarget(
            name: "FuzzArchive", dependencies: ["FuzzSupport", "ModelArchive"], path: "Tests/Fuzz/FuzzArchive",
            swiftSettings: swiftSettings + fuzzTarget, linkerSettings: fuzzTargetLink
        ),
        .executableTarget(
            name: "FuzzConfig", dependencies: ["FuzzSupport", "ModelArchive", "ServerCore", "ServerHTTP"],
            path: "Tests/Fuzz/FuzzConfig", swiftSettings: swiftSettings + fuzzTarget, linkerSettings: fuzzTargetLink
        ),
        .executableTarget(
            name: "FuzzRequestBodies",
            dependencies: [
                "FuzzSupport", "ServerCore", "ServerHTTP", "ModelArchive",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/Fuzz/FuzzRequestBodies", swiftSettings: swiftSettings + fuzzTarget, linkerSettings: fuzzTargetLink
        ),
        .executableTarget(
            name: "FuzzTokenizers", dependencies: ["FuzzSupport", "ServerCore"], path: "Tests/Fuzz/FuzzTokenizers",
            swiftSettings: swiftSettings + fuzzTarget, linkerSettings: fuzzTargetLink
        ),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
