// swift-tools-version:6.1
// Tessera: a distributed LLM inference runtime for CPU clusters.
//
// Targets, lowest first: each depends only on targets above it and declares every target it imports:
//   CMPI                 Open MPI headers and library, found through pkg-config (`ompi`)
//   TesseraCollectives   the only Swift code that calls MPI: Communicator, typed collectives, requests, counters
//   TesseraTopology      topology files -> one validated `Topology` value with every layout formula (pure, no MPI)
//   TesseraFormats       GGUF and safetensors / Hugging Face folders, mmap'd, lazily sliceable
//   TesseraJinja         the Jinja interpreter chat templates are written in (Hugging Face's subset, Python semantics)
//   TesseraTokenizer     SentencePiece-BPE and byte-level BPE tokenizers, chat templates over TesseraJinja
//   CTesseraKernels      C intrinsics with runtime dispatch (AVX-512, AVX2, portable)
//   TesseraKernels       CPU kernels: products over quantized and float weights, norms, RoPE, attention, thread pool
//   TesseraModels        the family seam (ModelFamily, LinearFactory, registry), one folder per architecture, KV cache
//   TesseraParallel      process groups from a topology; tensor parallelism as a LinearFactory over any family
//   TesseraEngine        Deployment (a rank's part of a job), scheduler, sampling, pipeline stages
//   TesseraServer        the OpenAI-compatible HTTP server on the coordinator (Hummingbird), its engine thread, metrics
//   infer-worker         the program users launch under mpirun
//   infer-bench          benchmarks that print ratios against a peer measured in the same run (serve: a NIO load generator)
import PackageDescription

let optimized: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "Tessera",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "infer-worker", targets: ["InferWorker"]),
        .executable(name: "infer-bench", targets: ["InferBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The server: HTTP/1.1 without the optional swift-configuration and full-Foundation parts.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "TesseraCollectives", dependencies: ["CMPI"]),
        .target(name: "TesseraTopology", dependencies: ["Yams"]),
        .target(name: "TesseraFormats", swiftSettings: optimized),
        .target(name: "TesseraJinja"),
        .target(name: "TesseraTokenizer", dependencies: ["TesseraFormats", "TesseraJinja"]),
        .target(name: "CTesseraKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "TesseraKernels", dependencies: ["TesseraFormats", "CTesseraKernels"], swiftSettings: optimized),
        .target(name: "TesseraModels", dependencies: ["TesseraFormats", "TesseraKernels"], swiftSettings: optimized),
        .target(name: "TesseraParallel", dependencies: [
            "TesseraCollectives", "TesseraTopology", "TesseraFormats", "TesseraKernels", "TesseraModels"]),
        .target(name: "TesseraEngine", dependencies: [
            "TesseraCollectives", "TesseraTopology", "TesseraFormats", "TesseraTokenizer", "TesseraKernels",
            "TesseraModels", "TesseraParallel"], swiftSettings: optimized),
        .target(name: "TesseraServer", dependencies: [
            "TesseraEngine", "TesseraModels", "TesseraTokenizer", "TesseraFormats",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: [.enableExperimentalFeature("StrictConcurrency=minimal")]),
        .executableTarget(name: "InferWorker", dependencies: [
            "TesseraCollectives", "TesseraTopology", "TesseraFormats", "TesseraTokenizer", "TesseraKernels",
            "TesseraModels", "TesseraParallel", "TesseraEngine", "TesseraServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "InferBench", dependencies: [
            "TesseraCollectives", "TesseraFormats", "TesseraKernels",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            // the serving load generator's HTTP client (already built for the server)
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .target(name: "TesseraTestSupport", path: "Tests/TesseraTestSupport"),
        // The malloc family, interposed in the test executable, counting allocations (the zero-allocation test).
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(name: "CollectivesTests", dependencies: ["TesseraTestSupport", "TesseraTopology"]),
        .testTarget(name: "TopologyTests", dependencies: ["TesseraTopology", "TesseraTestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["TesseraFormats", "TesseraTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizerTests", dependencies: [
            "TesseraTokenizer", "TesseraJinja", "TesseraFormats", "TesseraTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "KernelTests", dependencies: ["TesseraKernels", "TesseraFormats", "TesseraModels", "TesseraTestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["TesseraModels", "TesseraKernels", "TesseraFormats", "TesseraTestSupport"]),
        .testTarget(name: "EngineTests", dependencies: [
            "TesseraEngine", "TesseraModels", "TesseraKernels", "TesseraFormats", "TesseraTokenizer",
            "TesseraTestSupport", "CAllocationCounter"]),
        .testTarget(name: "ParallelTests", dependencies: [
            "TesseraParallel", "TesseraModels", "TesseraFormats", "TesseraTestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["TesseraTestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["TesseraTestSupport"], exclude: ["openai_client_test.py"]),
    ],
    swiftLanguageModes: [.v5]
)
