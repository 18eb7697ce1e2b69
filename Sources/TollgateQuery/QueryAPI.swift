public import Foundation
import TollgateLog
import HTTPTypes
public import Hummingbird
import HummingbirdCore
import Logging
import TollgateEvents
public import TollgateProjections

/// The JSON query API under `/api/`, read from the projections.
///
/// Every route needs the admin key or a read-only virtual key (see ``QueryAuthenticator``) and answers
/// `application/json` with `Cache-Control: no-store`. Times are RFC 3339 UTC with milliseconds, as in
/// events; money is integer nano-USD. The routes and their JSON are described by
/// `schemas/query-api.openapi.json`.
///
/// - `GET /api/usage`: sums over a range, grouped and bucketed (``QueryParameters/usage(_:now:defaultRange:)``).
/// - `GET /api/requests`: single requests, newest, most expensive or slowest first.
/// - `GET /api/requests/{id}`: one request; 404 when unknown.
/// - `GET /api/budgets`, `GET /api/alerts?since=7d&limit=100`, `GET /api/keys`, `GET /api/status`.
///
/// Errors are `{"error": {"type", "message", "parameter"?}}`: 401 `authentication_error` (with
/// `WWW-Authenticate: Bearer`), 400 `invalid_parameter` naming the parameter (unknown, repeated or
/// invalid), 404 `not_found`, 500 `internal_error`.
///
/// ```swift
/// let router = Router()
/// QueryAPI.addRoutes(to: router, store: store, authenticator: authenticator)
/// ```
public enum QueryAPI {
    /// The default and the largest `limit` of `GET /api/alerts`.
    public static let defaultAlertLimit = 100
    public static let maxAlertLimit = 1_000
    /// The default `since` of `GET /api/alerts`.
    public static let defaultAlertSince = "7d"

    public static func addRoutes<Context: RequestContext>(
        to router: some RouterMethods<Context>, store: ProjectionStore, authenticator: QueryAuthenticator,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        let api = router.group("/api")
        api.get("/usage") { request, context in
            await respond(request, context, authenticator, route: "usage") { parameters in
                try encode(store.usage(try QueryParameters.usage(parameters, now: now())))
            }
        }
        api.get("/requests") { request, context in
            await respond(request, context, authenticator, route: "requests") { parameters in
                let query = try QueryParameters.requests(parameters, now: now())
                let page = RequestsPage(from: query.from, to: query.to, order: query.order, limit: query.limit,
                                        filter: filterNames(query.filter), requests: try store.requests(query))
                return try encode(page)
            }
        }
        api.get("/requests/{id}") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await respond(request, context, authenticator, route: "request") { parameters in
                try QueryParameters.known(parameters, [])
                guard let record = try store.request(id: id) else {
                    throw NotFound(message: "No request with id '\(id)' in the projections.")
                }
                return try encode(record)
            }
        }
        api.get("/budgets") { request, context in
            await respond(request, context, authenticator, route: "budgets") { parameters in
                try QueryParameters.known(parameters, [])
                return try encode(BudgetsPage(budgets: try store.budgets()))
            }
        }
        api.get("/alerts") { request, context in
            await respond(request, context, authenticator, route: "alerts") { parameters in
                let (since, limit) = try alertParameters(parameters, now: now())
                return try encode(AlertsPage(since: since, limit: limit,
                                             alerts: try store.alerts(since: since, limit: limit)))
            }
        }
        api.get("/keys") { request, context in
            await respond(request, context, authenticator, route: "keys") { parameters in
                try QueryParameters.known(parameters, [])
                return try encode(KeysPage(keys: try store.keys(now: now())))
            }
        }
        api.get("/status") { request, context in
            await respond(request, context, authenticator, route: "status") { parameters in
                try QueryParameters.known(parameters, [])
                return try encode(try store.status())
            }
        }
        // Anything else under /api/ is a JSON 404 rather than the router's empty one.
        api.get("/**") { request, context in
            await respond(request, context, authenticator, route: "unknown") { _ in
                throw NotFound(message: "No route \(request.uri.path); see schemas/query-api.openapi.json.")
            }
        }
    }

    // MARK: Parameters

    /// The URL's query parameters by name; a name given twice is an error, since only one value would count.
    static func parameters(_ uri: URI) throws(QueryError) -> [String: String] {
        var parameters: [String: String] = [:]
        for (rawName, value) in uri.queryParameters {
            let name = String(rawName).removingPercentEncoding ?? String(rawName)
            guard parameters[name] == nil else {
                throw QueryError(parameter: name, message: "given more than once; give it once")
            }
            parameters[name] = String(value)
        }
        return parameters
    }

    static func alertParameters(_ parameters: [String: String], now: Date) throws(QueryError) -> (Date, Int) {
        try QueryParameters.known(parameters, ["since", "limit"])
        let sinceText = parameters["since"] ?? defaultAlertSince
        guard let seconds = QueryParameters.duration(sinceText) else {
            throw QueryError(parameter: "since", message: "'\(sinceText)' is not a duration such as 30m, 24h, 7d or 4w")
        }
        var limit = defaultAlertLimit
        if let text = parameters["limit"] {
            guard let value = Int(text), (1...maxAlertLimit).contains(value) else {
                throw QueryError(parameter: "limit", message: "'\(text)' is not a whole number from 1 to \(maxAlertLimit)")
            }
            limit = value
        }
        return (now.addingTimeInterval(-seconds), limit)
    }

    static func filterNames(_ filter: UsageFilter) -> [String: String] {
        var names: [String: String] = [:]
        for (dimension, value) in filter.values { names[dimension.rawValue] = value }
        return names
    }

    // MARK: Responses

    /// Authenticates, reads the parameters and runs `body`; maps every failure to its status in one place.
    static func respond(
        _ request: Request, _ context: some RequestContext, _ authenticator: QueryAuthenticator, route: String,
        _ body: @escaping @Sendable ([String: String]) throws -> Data
    ) async -> Response {
        let logger = context.logger
        return await Blocking.run { respondNow(request, logger, authenticator, route: route, body) }
    }

    static func respondNow(
        _ request: Request, _ logger: Logger, _ authenticator: QueryAuthenticator, route: String,
        _ body: ([String: String]) throws -> Data
    ) -> Response {
        guard authenticator.authenticate(request) != nil else {
            return failure(.unauthorized, ErrorBody(
                type: "authentication_error",
                message: "The query API needs the admin key or a read-only virtual key, as a bearer token or x-api-key."))
        }
        do {
            return json(.ok, try body(try parameters(request.uri)))
        } catch let error as QueryError {
            return failure(.badRequest, ErrorBody(type: "invalid_parameter", parameter: error.parameter,
                                                  message: error.message))
        } catch let error as NotFound {
            return failure(.notFound, ErrorBody(type: "not_found", message: error.message))
        } catch {
            logger.error("query API: read failed", metadata: [
                "tollgate.route": "\(route)", "tollgate.error": "\(error)",
            ])
            return failure(.internalServerError, ErrorBody(
                type: "internal_error", message: "The projections could not be read; see the server log."))
        }
    }

    static func encode(_ value: some Encodable) throws -> Data {
        try EventCoding.makeEncoder().encode(value)
    }

    static func failure(_ status: HTTPResponse.Status, _ error: ErrorBody) -> Response {
        // Encoding strings cannot fail.
        let data = (try? encode(ErrorEnvelope(error: error))) ?? Data("{}".utf8)
        var response = json(status, data)
        if status == .unauthorized {
            response.headers[.wwwAuthenticate] = "Bearer"
        }
        return response
    }

    static func json(_ status: HTTPResponse.Status, _ data: Data) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(data: data)))
    }

    // MARK: Wire types

    struct NotFound: Error {
        var message: String
    }

    struct ErrorEnvelope: Encodable {
        var error: ErrorBody
    }

    struct ErrorBody: Encodable {
        var type: String
        var parameter: String?
        var message: String

        init(type: String, parameter: String? = nil, message: String) {
            self.type = type
            self.parameter = parameter
            self.message = message
        }
    }

    struct RequestsPage: Encodable {
        var from: Date
        var to: Date
        var order: RequestOrder
        var limit: Int
        var filter: [String: String]
        var requests: [RequestRecord]
    }

    struct BudgetsPage: Encodable {
        var budgets: [BudgetRecord]
    }

    struct AlertsPage: Encodable {
        var since: Date
        var limit: Int
        var alerts: [AlertRecord]
    }

    struct KeysPage: Encodable {
        var keys: [KeyRecord]
    }
}
