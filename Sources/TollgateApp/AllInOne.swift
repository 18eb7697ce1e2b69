import Foundation
public import Logging
public import TollgateIngress
import Hummingbird
import ServiceLifecycle
import TollgateEvents
import TollgateLog

/// `tollgate serve`: the embedded log and every service in one process.
///
/// Opens (or creates) the embedded log under the data directory, provisions the catalog's topics, and
/// runs the services in one `ServiceGroup` with graceful shutdown on SIGINT and SIGTERM. Services added by
/// later milestones (ingress, cost, budget, alerts, projector, query) join the same group.
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

        public init() {}

        public var resolvedLogDirectory: String {
            logDirectory ?? URL(fileURLWithPath: dataDirectory).appendingPathComponent("log").path
        }
    }

    public var options: Options
    public var logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until SIGINT or SIGTERM.
    ///
    /// - Parameter onListening: called with the bound port once the HTTP server accepts connections.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let readiness = Readiness(checks: ["log", "control"])
        let log = try EmbeddedLog.open(directory: options.resolvedLogDirectory, logger: logger)
        defer { log.close() }
        try await log.provision(TopicCatalog.specs(prefix: options.topicPrefix))
        readiness.markReady("log")

        var ingressConfiguration = options.ingress
        ingressConfiguration.topicPrefix = options.topicPrefix
        let ingress = Ingress(configuration: ingressConfiguration, log: log, logger: logger,
                              onControlReady: { readiness.markReady("control") })

        let router = Router()
        HealthRoutes.add(to: router, readiness: readiness)
        ingress.addRoutes(to: router)
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
            services: [.init(service: EmbeddedLogMaintenance(log: log, logger: logger))]
                + ingress.services.map { .init(service: $0) }
                + [.init(service: http)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = options.shutdownTimeout
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
        logger.info("tollgate stopped")
    }
}
