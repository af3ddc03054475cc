// swift-tools-version:6.1
import PackageDescription

// The folders under Sources/ show the architecture; imports point one way:
// CLI → worker → domain and store → Duo client and Kafka → C bindings.
let package = Package(
    name: "duo-lifecycle",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "duo-lifecycle", targets: ["DuoLifecycleCLI"]),
        .executable(name: "duo-lifecycle-bench", targets: ["DuoLifecycleBench"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "DuoAdmin", targets: ["DuoAdmin"]),
        .library(name: "DuoEmulator", targets: ["DuoEmulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // C bindings over Debian's librdkafka-dev (2.0.x) or any newer librdkafka.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // The Swift Kafka layer: the only module that imports CRdKafka.
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // JSON documents read from and written straight to bytes, for those of every event or request.
        .target(name: "JSONText"),
        // Duo Admin API client: signing, typed models, paging, errors, retries, limits.
        .target(
            name: "DuoAdmin",
            dependencies: [
                "JSONText",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // A local Duo Admin API emulator (Hummingbird) that verifies Duo signatures.
        .target(
            name: "DuoEmulator",
            dependencies: [
                "DuoAdmin",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The lifecycle domain: events, contracts, mapping policy, desired state, commands, diff.
        // It imports no Kafka, SQL or HTTP code.
        .target(name: "Lifecycle", dependencies: ["JSONText"]),
        // The store: inbox, employees, commands and outbox, in SQLite through GRDB or in a shared
        // PostgreSQL through PostgresNIO.
        .target(
            name: "LifecycleStore",
            dependencies: [
                "Lifecycle", "JSONText",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The worker wiring: adapters from the domain's ports to the Duo client and Kafka.
        .target(
            name: "LifecycleWorker",
            dependencies: [
                "Lifecycle", "LifecycleStore", "LifecycleIngress", "LifecycleTools", "DuoAdmin", "Kafka", "JSONText",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Operator tools over Kafka: building lifecycle events as an HR system does, reading a topic
        // to its end. The CLI, the benchmarks and the tests use them.
        .target(
            name: "LifecycleTools",
            dependencies: ["Kafka", "Lifecycle", .product(name: "Logging", package: "swift-log")]
        ),
        // The webhook ingress: HR systems' signed webhooks (Standard Webhooks, CloudEvents over
        // HTTP, vendor payloads through a mapping) become durable lifecycle events on Kafka.
        .target(
            name: "LifecycleIngress",
            dependencies: [
                "Kafka", "Lifecycle", "LifecycleTools",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The operations console: server-rendered pages on the worker's operations port for dead
        // letters, held deprovisions, employees and findings, with logins, CSRF and an audit trail.
        .target(
            name: "LifecycleConsole",
            dependencies: [
                "Kafka", "DuoAdmin", "Lifecycle", "LifecycleStore", "LifecycleTools", "LifecycleWorker",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Everything on one machine: the mock cluster with the worker's topics, the emulator, and a
        // worker configuration pointing at them. `dev`, the benchmarks and the tests share it.
        .target(
            name: "EmbeddedStack",
            dependencies: [
                "Kafka", "DuoAdmin", "DuoEmulator", "LifecycleWorker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "DuoLifecycleCLI",
            dependencies: [
                "Kafka",
                "DuoAdmin",
                "DuoEmulator",
                "Lifecycle",
                "LifecycleWorker",
                "LifecycleIngress",
                "LifecycleTools",
                "LifecycleStore",
                "LifecycleConsole",
                "EmbeddedStack",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "DuoLifecycleBench",
            dependencies: [
                "Kafka", "DuoAdmin", "DuoEmulator", "Lifecycle", "LifecycleStore", "LifecycleWorker", "LifecycleTools", "EmbeddedStack",
                "LifecycleIngress",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What several test targets share: the throwaway PostgreSQL server's databases.
        .target(
            name: "TestSupport",
            dependencies: ["LifecycleStore", "Kafka", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "DuoAdminTests", dependencies: ["DuoAdmin", "JSONText", "DuoEmulator", "EmbeddedStack", "Kafka"]),
        .testTarget(name: "LifecycleTests", dependencies: ["Lifecycle", "LifecycleStore", "JSONText", "LifecycleWorker", "DuoAdmin", "DuoEmulator", "EmbeddedStack"]),
        .testTarget(name: "LifecycleWorkerTests", dependencies: [
            "LifecycleWorker", "LifecycleStore", "Lifecycle", "Kafka", "DuoAdmin", "DuoEmulator", "EmbeddedStack", "LifecycleTools", "JSONText",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "GRDB", package: "GRDB.swift"),
            "TestSupport",
        ]),
        .testTarget(name: "WorkerProcessTests", dependencies: [
            "LifecycleWorker", "LifecycleStore", "Lifecycle", "Kafka", "DuoAdmin", "DuoEmulator", "EmbeddedStack", "LifecycleTools", "JSONText",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            "TestSupport",
        ]),
        .testTarget(name: "ConsoleTests", dependencies: [
            "LifecycleConsole", "LifecycleWorker", "LifecycleStore", "DuoAdmin",
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .testTarget(name: "IngressTests", dependencies: [
            "LifecycleIngress", "LifecycleWorker", "LifecycleTools", "Kafka",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "DuoEmulatorTests", dependencies: ["DuoAdmin", "DuoEmulator", "EmbeddedStack",
                                                             .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                             .product(name: "HummingbirdTesting", package: "hummingbird")]),
    ]
)
