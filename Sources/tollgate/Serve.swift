import ArgumentParser
import Foundation
import TollgateApp

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Tollgate all-in-one (every service in this process), on the embedded log or on Kafka.")

    @OptionGroup var proxy: ProxyOptions
    @OptionGroup var alerts: AlertsCommand.AlertsOptions

    func run() async throws {
        let logger = proxy.logging.bootstrap(default: .info)
        var options = try proxy.options()
        options.alertsFile = alerts.file
        options.alertsPath = alerts.path(proxy.storage)
        do {
            try await AllInOne(options: options, logger: logger).run()
        } catch let error as AlertsConfigurationError {
            throw CommandFailure(error.description)
        }
    }
}

/// `tollgate ingress`: the proxy alone (admin API, health, metrics), for deployments that run every
/// service separately and scale the ingress horizontally.
struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingress",
        abstract: "Run the ingress alone: the proxy, the admin API, /healthz, /readyz and /metrics.",
        discussion: """
            Authenticates with virtual keys, applies budget decisions and routing, forwards to the providers and \
            emits request and response events, on Kafka (--brokers, with a local spool) or on a shared embedded \
            log directory. The cost, budget, alerts and projector services run elsewhere (tollgate cost, budget, \
            alerts, projector). Run several behind a load balancer with --replicas N (each may then spend only \
            1/N of what a budget has left).
            """)

    @OptionGroup var proxy: ProxyOptions

    func run() async throws {
        let logger = proxy.logging.bootstrap(default: .info)
        var options = try proxy.options()
        options.consumers = false
        try await AllInOne(options: options, logger: logger).run()
    }
}

/// The options of a process that serves the proxy (`serve`, `ingress`).
struct ProxyOptions: ParsableArguments {
    @Option(help: "Address to listen on (0.0.0.0 accepts connections from other hosts).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one, logged at start).")
    var port: Int = 4000

    @OptionGroup var storage: StorageOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var pricing: PricingOptions

    @Option(help: "A budgets file (YAML or JSON) applied at start (env TOLLGATE_BUDGETS_FILE); see `tollgate budgets apply`.")
    var budgets: String?

    @Option(help: "Ingress replicas sharing the budgets: each may spend only 1/N of what a budget has left (env TOLLGATE_INGRESS_REPLICAS).")
    var replicas: Int?

    @Option(help: "With --brokers: most events the local spool keeps while Kafka is unreachable.")
    var spoolMaxMessages: Int64 = 1_000_000

    @Option(help: "With --brokers: most bytes the local spool keeps while Kafka is unreachable.")
    var spoolMaxBytes: Int64 = 1 << 30

    @Option(help: "Seconds graceful shutdown may take before the remaining work is cancelled.")
    var shutdownTimeout: Int = 30

    @Option(help: "Largest request body accepted, in bytes (413 above).")
    var maxRequestBytes: Int = 32 << 20

    @Option(help: "Seconds to connect to a provider before answering 502.")
    var upstreamConnectTimeout: Int = 10

    @Option(help: "Seconds to wait for a provider's next bytes before answering 504 (or ending a stream).")
    var upstreamReadTimeout: Int = 300

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard shutdownTimeout > 0 else { throw ValidationError("--shutdown-timeout must be positive") }
        if let replicas, !(1...1_000).contains(replicas) { throw ValidationError("--replicas must be 1…1000") }
        guard spoolMaxMessages > 0, spoolMaxBytes > 0 else {
            throw ValidationError("--spool-max-messages and --spool-max-bytes must be positive")
        }
        guard maxRequestBytes > 0 else { throw ValidationError("--max-request-bytes must be positive") }
        guard upstreamConnectTimeout > 0, upstreamReadTimeout > 0 else {
            throw ValidationError("--upstream-connect-timeout and --upstream-read-timeout must be positive")
        }
    }


    func options() throws -> AllInOne.Options {
        var options = AllInOne.Options()
        options.host = host
        options.port = port
        options.dataDirectory = storage.dataDir
        options.logDirectory = storage.logDir
        options.topicPrefix = storage.topicPrefix
        options.shutdownTimeout = .seconds(shutdownTimeout)
        options.ingress.maxRequestBytes = maxRequestBytes
        options.ingress.connectTimeout = .seconds(upstreamConnectTimeout)
        options.ingress.readTimeout = .seconds(upstreamReadTimeout)
        options.brokers = kafka.resolvedBrokers
        if let pricingFile = pricing.pricing { options.pricingFile = pricingFile }
        if let replicas { options.ingressReplicas = replicas }
        if let budgets { options.budgetsFile = budgets }
        options.kafka = try kafka.configuration()
        options.spoolMaxMessages = spoolMaxMessages
        options.spoolMaxBytes = spoolMaxBytes
        return options
    }
}
