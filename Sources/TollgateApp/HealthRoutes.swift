public import Hummingbird
import Foundation

/// `GET /healthz` (the process is alive) and `GET /readyz` (it can do its work), as JSON.
///
/// ```swift
/// let router = Router()
/// HealthRoutes.add(to: router, readiness: readiness)
/// ```
public enum HealthRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, readiness: Readiness) {
        router.get("/healthz") { _, _ -> Response in
            json(status: .ok, ["status": "ok"])
        }
        router.get("/readyz") { _, _ -> Response in
            let status = readiness.status
            let ready = status.values.allSatisfy { $0 }
            let checks = status.mapValues { $0 ? "ok" : "waiting" }
            var body: [String: any Sendable] = ["status": ready ? "ready" : "not_ready", "checks": checks]
            let details = readiness.detailValues
            if !details.isEmpty { body["details"] = details }
            return json(status: ready ? .ok : .serviceUnavailable, body)
        }
    }

    static func json(status: HTTPResponse.Status, _ object: [String: any Sendable]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
