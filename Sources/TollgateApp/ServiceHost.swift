public import Hummingbird
public import Logging
public import ServiceLifecycle

/// Runs one service on its own (`tollgate cost`, and the other services as they come): the service,
/// the log's own services, and optionally an HTTP port with `GET /healthz`, `/readyz` and `/metrics`,
/// in one `ServiceGroup` with graceful shutdown on SIGINT and SIGTERM.
public struct ServiceHost: Sendable {
    /// The service's name, for logs (`cost`).
    public var name: String
    public var host: String = "127.0.0.1"
    /// Port of the health and metrics endpoints; `nil` for none, `0` for any free one.
    public var port: Int?
    public var shutdownTimeout: Duration = .seconds(30)
    /// More routes on the port, next to the health and metrics ones (the query service's API).
    public var routes: (@Sendable (Router<BasicRequestContext>) -> Void)?

    public init(name: String) {
        self.name = name
    }

    /// Runs until SIGINT or SIGTERM. `services` start in order and stop in reverse order.
    public func run(services: [any Service], readiness: Readiness, backend: LogBackend, logger: Logger) async throws {
        var all = backend.services + services
        if let port {
            let router = Router()
            HealthRoutes.add(to: router, readiness: readiness)
            Observability.addRoutes(to: router)
            routes?(router)
            let name = self.name
            let host = self.host
            all.append(Application(
                router: router, configuration: .init(address: .hostname(host, port: port), serverName: "tollgate-\(name)"),
                onServerRunning: { channel in
                    logger.info("tollgate \(name) is serving", metadata: [
                        "tollgate.host": "\(host)", "tollgate.port": "\(channel.localAddress?.port ?? 0)",
                    ])
                },
                logger: logger))
        }
        var configuration = ServiceGroupConfiguration(services: all.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        logger.info("tollgate \(name) started")
        try await ServiceGroup(configuration: configuration).run()
        await backend.finish(logger: logger)
        logger.info("tollgate \(name) stopped")
    }
}
