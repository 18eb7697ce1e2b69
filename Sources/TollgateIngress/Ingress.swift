import AsyncHTTPClient
import Foundation
public import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
public import TollgateLog

/// The ingress's parts, ready to mount on a router and to run in a `ServiceGroup`.
///
/// ```swift
/// let ingress = Ingress(configuration: .fromEnvironment(), log: log, logger: logger)
/// ingress.addRoutes(to: router)
/// // services: ingress.control, ingress.events, ingress (it owns the HTTP client)
/// ```
public final class Ingress: Service, Sendable {
    public let configuration: IngressConfiguration
    public let control: ControlPlane
    public let events: EventPublisher
    public let proxy: Proxy
    public let writer: ControlWriter
    private let httpClient: HTTPClient

    /// - Parameter eventSink: where request and response events go; default: straight to `log`. Pass a
    ///   ``Spool`` when `log` is remote (Kafka), so an outage never loses events.
    public init(configuration: IngressConfiguration, log: any MessageLog, eventSink: (any EventSink)? = nil,
                logger: Logger, onControlReady: @escaping @Sendable () -> Void = {}) {
        self.configuration = configuration
        control = ControlPlane(log: log, topicPrefix: configuration.topicPrefix, logger: logger, onReady: onControlReady)
        events = EventPublisher(sink: eventSink ?? LogSink(log: log), topicPrefix: configuration.topicPrefix,
                                logger: logger)
        writer = ControlWriter(log: log, topicPrefix: configuration.topicPrefix, source: configuration.source)
        var client = HTTPClient.Configuration()
        client.timeout = .init(connect: .milliseconds(Int64(configuration.connectTimeout.components.seconds * 1000)),
                               read: .seconds(configuration.readTimeout.components.seconds))
        client.connectionPool = .init(idleTimeout: .seconds(60),
                                      concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConnectionsPerHost)
        client.decompression = .disabled
        client.redirectConfiguration = .disallow
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: client)
        proxy = Proxy(configuration: configuration, control: control, events: events, httpClient: httpClient,
                      logger: logger)
    }

    /// Mounts the providers' paths and the admin API.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        AdminRoutes.add(to: router, adminKey: configuration.adminKey, control: control, writer: writer)
        IngressRoutes.add(to: router, proxy: proxy)
    }

    /// The services to run next to the HTTP server: the control-topic reader and the event publisher.
    public var services: [any Service] { [control, events, self] }

    /// Keeps the HTTP client alive until graceful shutdown, then shuts it down.
    public func run() async throws {
        try? await gracefulShutdown()
        try await httpClient.shutdown()
    }
}
