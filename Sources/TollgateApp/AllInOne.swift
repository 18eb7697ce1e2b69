import Foundation
public import Logging
public import TollgateIngress
import TollgateBudget
import TollgateCost
import TollgatePricing
import Hummingbird
import ServiceLifecycle
import TollgateEvents
public import TollgateLog
import TollgateProjections
import TollgateQuery

/// `tollgate serve`: every service in one process, on the embedded log or on Kafka.
///
/// Opens (or creates) the embedded log under the data directory — or, with ``Options/brokers``, connects
/// to Kafka and opens a durable spool under the data directory for the events on their way there —,
/// provisions the catalog's topics, and runs the services in one `ServiceGroup` with graceful shutdown on
/// SIGINT and SIGTERM. Services added by later milestones (cost, budget, alerts, projector, query) join
/// the same group.
public struct AllInOne: Sendable {
    public struct Options: Sendable {
        /// Address to listen on. Default `127.0.0.1`; use `0.0.0.0` to accept connections from other hosts.
        public var host: String = "127.0.0.1"
        /// Default 4000. `0` picks a free port (logged at start).
        public var port: Int = 4000
        /// Where Tollgate keeps its data. Default `./tollgate-data`.
        public var dataDirectory: String = "./tollgate-data"
        /// The embedded log's directory. Default `<data directory>/log`.
        public var logDirectory: String?
        /// Prefix of every topic name. Default `tollgate.`.
        public var topicPrefix: String = TopicCatalog.defaultPrefix
        /// Providers, credentials and limits of the proxy. Default: from the environment.
        public var ingress: IngressConfiguration = .fromEnvironment()
        /// How long graceful shutdown may take before the remaining services are cancelled. Default 30 s.
        public var shutdownTimeout: Duration = .seconds(30)
        /// Kafka bootstrap brokers (`host:port`). Default `nil`: the embedded log.
        public var brokers: [String]?
        /// Kafka client settings other than the brokers (client id, librdkafka properties such as
        /// `security.protocol` or `sasl.*`). Used only with ``brokers``.
        public var kafka: KafkaConfiguration = KafkaConfiguration(brokers: [])
        /// Ingress replicas sharing the budgets: each may spend only its share of what a budget has left.
        /// Default: `TOLLGATE_INGRESS_REPLICAS`, else 1.
        public var ingressReplicas: Int = Int(ProcessInfo.processInfo.environment["TOLLGATE_INGRESS_REPLICAS"] ?? "") ?? 1
        /// A budgets file (YAML or JSON) applied at start: new or changed budgets become control events.
        /// Default: `TOLLGATE_BUDGETS_FILE`.
        public var budgetsFile: String? = ProcessInfo.processInfo.environment["TOLLGATE_BUDGETS_FILE"]
        /// A pricing file applied over the built-in catalog (YAML or JSON). Default: `TOLLGATE_PRICING_FILE`.
        public var pricingFile: String? = ProcessInfo.processInfo.environment["TOLLGATE_PRICING_FILE"]
        /// Bounds of the spool that holds events while Kafka is unreachable. Used only with ``brokers``.
        public var spoolMaxMessages: Int64 = 1_000_000
        public var spoolMaxBytes: Int64 = 1 << 30
        /// The projections database (default `<data-dir>/projections.sqlite`).
        public var projectionsPath: String?
        /// The alerts configuration file (channels, retry; YAML or JSON). Default: `TOLLGATE_ALERTS_FILE`.
        public var alertsFile: String? = ProcessInfo.processInfo.environment["TOLLGATE_ALERTS_FILE"]
        /// The alert deliveries database (default `<data-dir>/alerts.sqlite`).
        public var alertsPath: String?
        /// Whether this process also runs the consumers (cost, budget, alerts, projector) and serves the query
        /// API and dashboard. `false`: the ingress alone (`tollgate ingress`). Default `true`.
        public var consumers = true

        public init() {}

        public var resolvedLogDirectory: String {
            logDirectory ?? URL(fileURLWithPath: dataDirectory).appendingPathComponent("log").path
        }

        /// The spool's directory (Kafka only): `<data directory>/spool`.
        public var resolvedProjectionsPath: String {
            projectionsPath ?? URL(fileURLWithPath: dataDirectory).appendingPathComponent("projections.sqlite").path
        }

        public var resolvedAlertsPath: String {
            alertsPath ?? URL(fileURLWithPath: dataDirectory).appendingPathComponent("alerts.sqlite").path
        }

        public var spoolDirectory: String {
            URL(fileURLWithPath: dataDirectory).appendingPathComponent("spool").path
        }

        /// The log this process runs on, with a spool for the ingress's events on Kafka.
        public var logSettings: LogBackend.Settings {
            var settings = LogBackend.Settings(logDirectory: resolvedLogDirectory, topicPrefix: topicPrefix)
            settings.brokers = brokers
            settings.kafka = kafka
            settings.spool = .init(directory: spoolDirectory, maxMessages: spoolMaxMessages, maxBytes: spoolMaxBytes)
            return settings
        }
    }

    public var options: Options
    public var logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// The consumers' executor: off the event loops that carry the proxied calls (``BackgroundExecutor``).
    /// `TOLLGATE_CONSUMER_EXECUTOR=0` keeps them on the event loops (for comparisons).
    /// One thread per core, so the projector's parallel decoding keeps its parallelism.
    static let consumerExecutor = BackgroundExecutor(name: "tollgate.consumers",
                                                     threads: ProcessInfo.processInfo.activeProcessorCount)
    static let consumersOffTheEventLoops = ProcessInfo.processInfo.environment["TOLLGATE_CONSUMER_EXECUTOR"] != "0"

    /// Runs until SIGINT or SIGTERM.
    ///
    /// - Parameter onListening: called with the bound port once the HTTP server accepts connections.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        Observability.bootstrap()
        let pricer = try PricingSetup.pricer(file: options.pricingFile)
        logger.info("price catalog loaded", metadata: [
            "tollgate.catalog_version": "\(pricer.catalog.catalogVersion)", "tollgate.models": "\(pricer.catalog.models.count)",
        ])
        let alertsConfiguration = options.consumers ? try AlertsConfiguration.load(file: options.alertsFile)
                                                    : AlertsConfiguration()
        let readiness = Readiness(checks: ["log", "control", "budgets"])
        let backend = try await LogBackend.open(options.logSettings, logger: logger)
        defer { backend.close() }
        readiness.markReady("log")
        if let budgetsFile = options.budgetsFile, !budgetsFile.isEmpty {
            try await BudgetsSetup.apply(file: budgetsFile, log: backend.log, topicPrefix: options.topicPrefix,
                                         logger: logger)
        }

        try await alertsConfiguration.applyRules(log: backend.log, topicPrefix: options.topicPrefix, logger: logger)
        var ingressConfiguration = options.ingress
        ingressConfiguration.topicPrefix = options.topicPrefix
        let ingress = Ingress(configuration: ingressConfiguration, log: backend.log, eventSink: backend.sink,
                              pricer: pricer, replicas: options.ingressReplicas, logger: logger,
                              onControlReady: { readiness.markReady("control") },
                              onBudgetsReady: { readiness.markReady("budgets") })

        if let budgets = ingress.budgets {
            readiness.addDetail("budgets") { budgets.enforcementStatus() }
        }
        let router = Router()
        HealthRoutes.add(to: router, readiness: readiness)
        Observability.addRoutes(to: router)
        ingress.addRoutes(to: router)
        var consumers: [any Service] = []
        var alerts: AlertsRuntime?
        if options.consumers {
            let store = try ProjectionStore.open(path: options.resolvedProjectionsPath, topicPrefix: options.topicPrefix,
                                                 logger: logger)
            readiness.setDetail("projections", "catching_up")
            let runtime = try AlertsRuntime(log: backend.log, configuration: alertsConfiguration,
                                            path: options.resolvedAlertsPath, topicPrefix: options.topicPrefix,
                                            logger: logger, onCaughtUp: { readiness.setDetail("alerts", "caught_up") })
            readiness.setDetail("alerts", "catching_up")
            QuerySetup.addRoutes(to: router, store: store,
                                 authenticator: QuerySetup.authenticator(adminKey: ingressConfiguration.adminKey,
                                                                         control: ingress.control))
            consumers = [CostService(log: backend.log, pricer: pricer, topicPrefix: options.topicPrefix, logger: logger),
                         BudgetService(log: backend.log, topicPrefix: options.topicPrefix, logger: logger),
                         ProjectorService(log: backend.log, store: store, logger: logger,
                                          onCaughtUp: { readiness.setDetail("projections", "caught_up") })]
                + runtime.services
            alerts = runtime
        }
        let logger = self.logger
        let host = options.host
        let http = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: options.port), serverName: "tollgate"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("tollgate is serving", metadata: ["tollgate.host": "\(host)", "tollgate.port": "\(port)"])
                await onListening(port)
            },
            logger: logger
        )
        var configuration = ServiceGroupConfiguration(
            services: backend.services.map { .init(service: $0) }
                + consumers.map { .init(service: Self.consumersOffTheEventLoops ? OnExecutor($0, executor: Self.consumerExecutor) : $0) }
                + ingress.services.map { .init(service: $0) }
                + [.init(service: http)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = options.shutdownTimeout
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await alerts?.shutdown()
            throw error
        }
        await alerts?.shutdown()
        await backend.finish(logger: logger)
        logger.info("tollgate stopped")
    }
}

/// Start-up failures worth a clear message.
public enum TollgateError: Error, CustomStringConvertible {
    case kafkaUnavailable(brokers: String, reason: String)

    public var description: String {
        switch self {
        case .kafkaUnavailable(let brokers, let reason):
            return "cannot provision Tollgate's topics on Kafka at \(brokers): \(reason). "
                + "Check --brokers and the security settings (--kafka-property), and that the cluster lets "
                + "this client create topics (or create them beforehand as in schemas/topics.json)."
        }
    }
}
