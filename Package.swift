// swift-tools-version: 6.1
import PackageDescription

/// Strict settings for every target: Swift 6 language mode (complete concurrency checking) and
/// upcoming features that make sendability and isolation explicit.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "tollgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tollgate", targets: ["tollgate"]),
        .library(name: "TollgateEvents", targets: ["TollgateEvents"]),
        .library(name: "TollgateLog", targets: ["TollgateLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // NIOPosix: running Swift concurrency on the event loops (already used by Hummingbird and AHC).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTPField/HTTPFields names (already used by Hummingbird; declared to import them directly).
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // Upstream calls to the providers (streaming, connection pooling).
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // SHA-256 of virtual keys (Foundation on Linux has no CryptoKit), HMAC for webhooks later.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // Deque: the Kafka engine's FIFOs (already in the graph through swift-nio).
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // librdkafka (Debian librdkafka-dev), used only inside TollgateLog/Kafka.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // libcurl (Debian libcurl4-openssl-dev): SMTP with STARTTLS for e-mail alerts, used only inside
        // TollgateNotify.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // The public event contract: CloudEvents envelope, event payloads, money, topic catalog.
        .target(
            name: "TollgateEvents",
            swiftSettings: strict
        ),
        // The message log: the `MessageLog` protocol, the embedded engine, the consumer runner.
        .target(
            name: "TollgateLog",
            dependencies: [
                "CRdKafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Provider dialects: pure parsing of requests, responses and SSE streams (usage by token class),
        // and the providers' error shapes. No I/O.
        // The price catalog and exact cost arithmetic.
        .target(
            name: "TollgatePricing",
            dependencies: [
                "TollgateEvents",
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [.copy("catalog.json")],
            swiftSettings: strict
        ),
        // The cost service: response.v1 in, usage.v1 out.
        .target(
            name: "TollgateCost",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                "TollgatePricing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The budget service (usage in, decisions out) and the ingress's budget guard.
        .target(
            name: "TollgateBudget",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                "TollgatePricing",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TollgateProviders",
            dependencies: ["TollgateEvents"],
            swiftSettings: strict
        ),
        // `tollgate fake-provider`: a deterministic stand-in for the OpenAI, Anthropic and Gemini APIs.
        .target(
            name: "TollgateFakeProvider",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The proxy: authentication with virtual keys, upstream forwarding, streaming, metering events.
        .target(
            name: "TollgateIngress",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                "TollgateProviders",
                "TollgateBudget",
                "TollgatePricing",
                "TollgateAlerts",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Alert rules and their pure fold (usage, budget decisions and control in; alerts out), and the
        // alerts service that runs it.
        .target(
            name: "TollgateAlerts",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                "TollgateBudget",
                "TollgateNotify",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Alert delivery: webhook (HMAC-SHA256 signed), Slack incoming webhooks and e-mail over SMTP, from a
        // durable SQLite outbox with retries, back-off and dead letters.
        .target(
            name: "TollgateNotify",
            dependencies: [
                "CCurl",
                "TollgateEvents",
                "TollgateLog",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The projector: usage, budgets, alerts and keys materialized in SQLite, and the queries over them.
        .target(
            name: "TollgateProjections",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The query API (JSON under /api/) and the dashboard (/dashboard) over the projections.
        .target(
            name: "TollgateQuery",
            dependencies: [
                "TollgateEvents",
                "TollgateLog",
                "TollgateProjections",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Composition of the services into processes: configuration, health endpoints, `serve`.
        .target(
            name: "TollgateApp",
            dependencies: [
                "TollgateEvents",
                "TollgateAlerts",
                "TollgateNotify",
                "TollgateProjections",
                "TollgateQuery",
                "TollgateLog",
                "TollgateIngress",
                "TollgateCost",
                "TollgateBudget",
                "TollgatePricing",
                "TollgateFakeProvider",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateApp",
                "TollgateAlerts",
                "TollgateNotify",
                "TollgateProjections",
                "TollgateQuery",
                "TollgateIngress",
                "TollgateCost",
                "TollgateBudget",
                "TollgatePricing",
                "TollgateFakeProvider",
                "TollgateEvents",
                "TollgateLog",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateEventsTests",
            dependencies: ["TollgateEvents"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateLogTests",
            dependencies: [
                "TollgateLog", "TollgateEvents",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgatePricingTests",
            dependencies: ["TollgatePricing", "TollgateEvents"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateCostTests",
            dependencies: [
                "TollgateCost", "TollgatePricing", "TollgateEvents", "TollgateLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateBudgetTests",
            dependencies: [
                "TollgateBudget", "TollgatePricing", "TollgateEvents", "TollgateLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateProvidersTests",
            dependencies: ["TollgateProviders", "TollgateEvents"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateFakeProviderTests",
            dependencies: [
                "TollgateFakeProvider",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateIngressTests",
            dependencies: [
                "TollgateIngress", "TollgateProviders", "TollgateEvents", "TollgateLog", "TollgateFakeProvider",
                "TollgateAlerts",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateProjectionsTests",
            dependencies: [
                "TollgateProjections", "TollgateEvents", "TollgateLog",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateAlertsTests",
            dependencies: [
                "TollgateAlerts", "TollgateNotify", "TollgateBudget", "TollgateEvents", "TollgateLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateNotifyTests",
            dependencies: [
                "TollgateNotify", "TollgateEvents", "TollgateLog",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateQueryTests",
            dependencies: [
                "TollgateQuery", "TollgateProjections", "TollgateEvents", "TollgateLog",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateAppTests",
            dependencies: [
                "TollgateApp", "TollgateEvents", "TollgateLog", "TollgateBudget", "TollgateCost", "TollgateIngress", "TollgateNotify",
                "TollgatePricing", "TollgateFakeProvider", "TollgateAlerts",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Tests that run the `tollgate` binary as separate processes (serve, crash recovery).
        .testTarget(
            name: "TollgateEndToEndTests",
            dependencies: ["tollgate", "TollgateApp", "TollgateLog", "TollgateEvents", "TollgateProjections"],
            swiftSettings: strict
        ),
    ]
)
