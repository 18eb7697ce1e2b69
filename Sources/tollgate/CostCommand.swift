import ArgumentParser
import Foundation
import TollgateApp
import TollgateCost
import TollgatePricing

/// `tollgate cost`: the cost service on its own.
struct CostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cost",
        abstract: "Run the cost service alone: price response.v1 events into usage.v1 events.",
        discussion: """
            Joins the consumer group "tollgate-cost"; run several to share the partitions. On the embedded log \
            it shares --data-dir with `tollgate serve` (which runs a cost service too); on Kafka use --brokers.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var pricing: PricingOptions

    @Option(help: "Stable member identity in the consumer group (takes its partitions back at once after a restart).")
    var instanceID: String?



    @OptionGroup var endpoints: EndpointOptions

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        Observability.bootstrap()
        let pricer = try pricing.pricer()
        logger.info("price catalog loaded", metadata: ["tollgate.catalog_version": "\(pricer.catalog.catalogVersion)"])
        let backend = try await LogBackend.open(try kafka.backendSettings(storage), logger: logger)
        defer { backend.close() }
        let readiness = Readiness(checks: ["log", "inputs"])
        readiness.markReady("log")
        let host = endpoints.serviceHost("cost")
        try await host.run(
            services: [CostService(log: backend.log, pricer: pricer, topicPrefix: storage.topicPrefix,
                                   instanceID: instanceID, logger: logger,
                                   onCaughtUp: { readiness.markReady("inputs") })],
            readiness: readiness, backend: backend, logger: logger)
    }
}

/// Where prices come from.
struct PricingOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "A pricing file (YAML or JSON, schemas/catalog.schema.json) over the built-in catalog: your models, "
            + "overrides, discounts (env TOLLGATE_PRICING_FILE).", valueName: "file"))
    var pricing: String?

    func pricer() throws -> Pricer {
        try PricingSetup.pricer(file: pricing ?? ProcessInfo.processInfo.environment["TOLLGATE_PRICING_FILE"])
    }
}
