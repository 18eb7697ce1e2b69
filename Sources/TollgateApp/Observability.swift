public import Hummingbird
import Metrics
public import Prometheus

/// The process's metrics: swift-metrics backed by a Prometheus registry, served at `GET /metrics` in the
/// Prometheus text format.
///
/// Meters made before the bootstrap stay no-ops, so a service calls ``bootstrap()`` before it builds
/// anything that records metrics.
public enum Observability {
    /// The registry every meter of this process lands in. The first access bootstraps swift-metrics.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// Bootstraps swift-metrics with the Prometheus registry (once per process; later calls do nothing).
    public static func bootstrap() {
        _ = registry
    }

    /// Mounts `GET /metrics`.
    public static func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 << 10)
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }
}
