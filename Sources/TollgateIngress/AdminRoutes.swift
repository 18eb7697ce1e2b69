public import Foundation
public import Hummingbird
import HTTPTypes
public import TollgateEvents

/// The admin API under `/admin/`, authenticated with the master key (`TOLLGATE_ADMIN_KEY`) as a bearer
/// token or `x-api-key`.
///
/// - `POST /admin/keys` `{"team", "project", "name"?, "customer"?, "tags"?, "models"?, "expires_at"?,
///   "read_only"?}` → 201 with the key, including its `secret`, shown this once.
/// - `GET /admin/keys` → `{"keys": [...]}` (never secrets or hashes).
/// - `DELETE /admin/keys/{key_id}` → 200 with `revoked_at`; 404 for an unknown key.
///
/// Errors are `{"error": {"type", "message"}}` with 400, 401, 403 (admin API disabled), 404.
public enum AdminRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, adminKey: String?,
                                                    control: ControlPlane, writer: ControlWriter) {
        let group = router.group("/admin")
        group.post("/keys") { request, _ in
            if let refusal = authorize(request, adminKey: adminKey) { return refusal }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: 1 << 20) } catch {
                return failure(413, "request_too_large", "The request body is over 1 MiB.")
            }
            let create: CreateKey
            do {
                create = try JSONDecoder.admin.decode(CreateKey.self, from: Data(buffer: body))
            } catch {
                return failure(400, "invalid_request", "Body must be JSON with string fields team and project: \(error)")
            }
            guard !create.team.isEmpty, !create.project.isEmpty else {
                return failure(400, "invalid_request", "team and project must not be empty.")
            }
            if let expiry = create.expiresAt, expiry <= Date() {
                return failure(400, "invalid_request", "expires_at is in the past.")
            }
            let (secret, data) = VirtualKeys.create(
                team: create.team, project: create.project, name: create.name, customer: create.customer,
                tags: create.tags ?? [:], models: create.models ?? [], expiresAt: create.expiresAt,
                readOnly: create.readOnly ?? false)
            do {
                let event = try await writer.write(data)
                control.apply([event])
            } catch {
                return failure(503, "log_unavailable", "The key could not be stored: \(error)")
            }
            return json(201, KeyView(data, revokedAt: nil, secret: secret))
        }
        group.get("/keys") { request, _ in
            if let refusal = authorize(request, adminKey: adminKey) { return refusal }
            return json(200, ["keys": control.keys.entries.map { KeyView($0.data, revokedAt: $0.revokedAt, secret: nil) }])
        }
        group.delete("/keys/{id}") { request, context in
            if let refusal = authorize(request, adminKey: adminKey) { return refusal }
            let id = context.parameters.get("id") ?? ""
            guard let entry = control.keys.entry(id: id) else {
                return failure(404, "not_found", "No key with id '\(id)'.")
            }
            if let revoked = entry.revokedAt { return json(200, KeyView(entry.data, revokedAt: revoked, secret: nil)) }
            let now = Date()
            do {
                let event = try await writer.write(KeyRevokedData(keyID: id, revokedAt: now, reason: "admin API"))
                control.apply([event])
            } catch {
                return failure(503, "log_unavailable", "The revocation could not be stored: \(error)")
            }
            return json(200, KeyView(entry.data, revokedAt: now, secret: nil))
        }
    }

    struct CreateKey: Decodable {
        var team: String
        var project: String
        var name: String?
        var customer: String?
        var tags: [String: String]?
        var models: [String]?
        var expiresAt: Date?
        var readOnly: Bool?
    }

    static func authorize(_ request: Request, adminKey: String?) -> Response? {
        guard let adminKey else {
            return failure(403, "admin_disabled", "The admin API is disabled: set TOLLGATE_ADMIN_KEY to enable it.")
        }
        var presented = request.headers[HTTPField.Name("x-api-key")!]
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            presented = String(authorization.dropFirst(7))
        }
        guard let presented, VirtualKeys.constantTimeEquals(presented, adminKey) else {
            return failure(401, "authentication_error", "The admin API needs the admin key as a bearer token.")
        }
        return nil
    }

    static func failure(_ status: Int, _ type: String, _ message: String) -> Response {
        json(status, ["error": ["type": type, "message": message]])
    }

    static func json(_ status: Int, _ value: some Encodable) -> Response {
        let data = (try? JSONEncoder.admin.encode(value)) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(data: data)))
    }
}

extension JSONEncoder {
    /// snake_case keys, ISO 8601 dates, sorted keys.
    static var admin: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension JSONDecoder {
    static var admin: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// A key as the admin API and the CLI show it: never the hash, and the secret only when just created.
public struct KeyView: Encodable, Sendable {
    public var keyID: String
    public var keyPrefix: String
    public var name: String?
    public var team: String
    public var project: String
    public var customer: String?
    public var tags: [String: String]
    public var models: [String]
    public var expiresAt: Date?
    public var createdAt: Date
    public var readOnly: Bool
    public var revokedAt: Date?
    /// Only in the answer to the creation.
    public var secret: String?

    public init(_ data: KeyCreatedData, revokedAt: Date?, secret: String? = nil) {
        keyID = data.keyID
        keyPrefix = data.keyPrefix
        name = data.name
        team = data.team
        project = data.project
        customer = data.customer
        tags = data.tags
        models = data.models
        expiresAt = data.expiresAt
        createdAt = data.createdAt
        readOnly = data.readOnly
        self.revokedAt = revokedAt
        self.secret = secret
    }
}
