import AsyncHTTPClient
public import Hummingbird
import HTTPTypes
public import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// A pass-through HTTP forwarder built on the same libraries and settings as the ingress (Hummingbird,
/// one AsyncHTTPClient per event loop, the proxy's header rules) that does nothing else: no keys, no
/// parsing, no events, no budgets.
///
/// It is the floor `tollgate bench proxy` measures the ingress against: what forwarding a call costs
/// with these libraries on this machine before Tollgate does any of its own work. It is a benchmark
/// instrument, not a product path: it holds no provider credentials and forwards the caller's headers
/// (hop-by-hop ones removed) as they are.
public enum BareForwarder {
    /// An application forwarding every request to `upstream` (`http://host:port`), bound to `host`:`port`.
    /// Logs `forwarder listening` with `tollgate.port` once it accepts connections, then calls `onListening`
    /// with the bound port.
    public static func application(upstream: String, host: String = "127.0.0.1", port: Int = 0, logger: Logger,
                                   onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1_024)
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.tracing.tracer = nil
        let clients = UpstreamClients(configuration: configuration)
        let router = Router()
        let base = upstream.hasSuffix("/") ? String(upstream.dropLast()) : upstream
        router.on("/**", method: .post) { request, _ in try await forward(request, base: base, clients: clients) }
        router.on("/**", method: .get) { request, _ in try await forward(request, base: base, clients: clients) }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "tollgate-bench-forwarder"),
            services: [ClientOwner(clients: clients)],
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.warning("forwarder listening", metadata: ["tollgate.port": "\(bound)"])
                await onListening(bound)
            },
            logger: logger)
    }

    private static func forward(_ request: Request, base: String, clients: UpstreamClients) async throws -> Response {
        let body = try await request.body.collect(upTo: 32 << 20)
        var outgoing = HTTPClientRequest(url: base + request.uri.description)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        var headers = HTTPHeaders()
        for field in request.headers where !Proxy.hopByHop.contains(field.name.canonicalName) {
            headers.add(name: field.name.rawName, value: field.value)
        }
        outgoing.headers = headers
        if request.method != .get { outgoing.body = .bytes(body) }
        let response = try await clients.current.execute(outgoing, timeout: .seconds(60))
        let responseBody = try await response.body.collect(upTo: 32 << 20)
        var fields = HTTPFields()
        for (name, value) in response.headers where !Proxy.hopByHop.contains(name.lowercased()) {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        return Response(status: .init(code: Int(response.status.code)), headers: fields,
                        body: ResponseBody(byteBuffer: responseBody))
    }

    /// Shuts the HTTP clients down after the server stopped.
    private struct ClientOwner: Service {
        let clients: UpstreamClients
        func run() async throws {
            try? await gracefulShutdown()
            try await clients.shutdown()
        }
    }
}
