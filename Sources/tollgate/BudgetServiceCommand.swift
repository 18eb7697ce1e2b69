import ArgumentParser
import Foundation
import TollgateApp
import TollgateBudget

/// `tollgate budget`: the budget service on its own.
struct BudgetServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budget",
        abstract: "Run the budget service alone: fold usage.v1 into spend and publish budget decisions.",
        discussion: """
            Joins the consumer group "tollgate-budget", restores spend from the budget-decisions topic and the \
            budgets from the control topic, and publishes a decision per changed budget after each batch. Run \
            exactly one: two would share the usage partitions and each publish decisions from part of the \
            spend (restart it in place; with --instance-id it takes its partitions back at once). On the \
            embedded log it shares --data-dir or --log-dir with the other services; on Kafka use --brokers. \
            Budgets themselves are set with `tollgate budgets set|apply` or the admin API.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "Stable member identity in the consumer group (takes its partitions back at once after a restart).")
    var instanceID: String?



    @OptionGroup var endpoints: EndpointOptions

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        Observability.bootstrap()
        let backend = try await LogBackend.open(try kafka.backendSettings(storage), logger: logger)
        defer { backend.close() }
        let readiness = Readiness(checks: ["log", "inputs"])
        readiness.markReady("log")
        let host = endpoints.serviceHost("budget")
        try await host.run(
            services: [BudgetService(log: backend.log, topicPrefix: storage.topicPrefix, instanceID: instanceID,
                                     logger: logger, onCaughtUp: { readiness.markReady("inputs") })],
            readiness: readiness, backend: backend, logger: logger)
    }
}
