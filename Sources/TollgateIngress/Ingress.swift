import AsyncHTTPClient
import Foundation
public import Metrics
public import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization
public import TollgateLog
public import TollgatePricing

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
    /// Budget enforcement (when the ingress was given a pricer).
    public let budgets: BudgetPlane?
    private let upstreams: UpstreamClients

    /// - Parameters:
    ///   - eventSink: where request and response events go; default: straight to `log`. Pass a
    ///     ``Spool`` when `log` is remote (Kafka), so an outage never loses events.
    ///   - pricer: prices worst cases and settlements for budget enforcement; `nil`: no budgets enforced.
    ///   - replicas: ingress replicas sharing the budgets (each may spend 1/replicas of what remains).
    ///   - metricsFactory: where `tollgate_requests_total` and `tollgate_request_duration_seconds` (by
    ///     provider, model and status) go.
    public init(configuration: IngressConfiguration, log: any MessageLog, eventSink: (any EventSink)? = nil,
                pricer: Pricer? = nil, replicas: Int = 1, logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onControlReady: @escaping @Sendable () -> Void = {}, onBudgetsReady: @escaping @Sendable () -> Void = {}) {
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
        // No request spans: nothing in Tollgate installs a tracer, and the no-op one still costs per call.
        client.tracing.tracer = nil
        upstreams = UpstreamClients(configuration: client)
        let control = self.control
        let budgets = pricer.map {
            BudgetPlane(log: log, control: control, topicPrefix: configuration.topicPrefix, pricer: $0,
                        replicas: replicas, logger: logger, onReady: onBudgetsReady)
        }
        self.budgets = budgets
        proxy = Proxy(configuration: configuration, control: control, events: events, upstreams: upstreams,
                      budgets: budgets, metrics: RequestMetrics(factory: metricsFactory), logger: logger)
    }

    /// Mounts the providers' paths and the admin API.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        AdminRoutes.add(to: router, adminKey: configuration.adminKey, control: control, writer: writer)
        AdminAlertRoutes.add(to: router, adminKey: configuration.adminKey, control: control, writer: writer)
        if let budgets {
            AdminBudgetRoutes.add(to: router, adminKey: configuration.adminKey, budgets: budgets, control: control,
                                  writer: writer)
        }
        IngressRoutes.add(to: router, proxy: proxy)
    }

    /// The services to run next to the HTTP server: the control-topic reader and the event publisher.
    public var services: [any Service] { [control] + (budgets.map { [$0] } ?? []) + [events, self] }

    /// Keeps the HTTP client alive until graceful shutdown, then shuts it down.
    public func run() async throws {
        try? await gracefulShutdown()
        try await upstreams.shutdown()
    }
}

/// One HTTP client per event loop of NIO's singleton group, each with its connections on that loop.
///
/// A proxied call takes the client of the loop it runs on — the loop of the client's connection, since
/// the request handler is resumed there — so the upstream connection is on the same thread as the
/// inbound one: no thread hop per call and per body part, and both loops carry an even share of the
/// calls. (One client on the whole group lets its pool lend a connection of any loop, and in practice
/// most calls ended up on one thread.) Off the group's threads, the clients take turns.
struct UpstreamClients: Sendable {
    private let loops: [any EventLoop]
    private let clients: [HTTPClient]
    private let turn = Counter()

    init(configuration: HTTPClient.Configuration) {
        // `defaultEventLoopGroup` is NIO's singleton group, the one Hummingbird serves on.
        loops = Array(HTTPClient.defaultEventLoopGroup.makeIterator())
        clients = loops.map { HTTPClient(eventLoopGroupProvider: .shared($0), configuration: configuration) }
    }

    /// The client of the current event loop, or the next one in turn.
    var current: HTTPClient {
        for index in loops.indices where loops[index].inEventLoop { return clients[index] }
        return clients[turn.next() % clients.count]
    }

    func shutdown() async throws {
        for client in clients { try await client.shutdown() }
    }

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func next() -> Int { value.add(1, ordering: .relaxed).oldValue & Int.max }
    }
}
