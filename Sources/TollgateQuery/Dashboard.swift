public import Foundation
import TollgateLog
import HTTPTypes
public import Hummingbird
public import TollgateProjections

/// The dashboard: one server-rendered HTML page over the projections at `/dashboard`.
///
/// The page is plain HTML5 with inline CSS and inline SVG charts, and no JavaScript at all, so it works
/// offline and behind any proxy. Its filters are a GET form (`period`, `team`, `project`, `key`); every
/// section honours them. Figures come from the store's hourly and daily rollups (``ProjectionStore/usage(_:)``);
/// only the most expensive requests read single rows.
///
/// Signing in: a request that presents the admin key or a read-only virtual key (bearer, `x-api-key` or the
/// `tollgate_session` cookie, see ``QueryAuthenticator``) gets the page; any other gets a small login page
/// (401) whose form posts the key to `/dashboard/login`, which sets the cookie and redirects back.
///
/// ```swift
/// let router = Router()
/// Dashboard.addRoutes(to: router, store: store, authenticator: authenticator)
/// ```
public enum Dashboard {
    /// The most a login form body may be.
    static let maxFormBytes = 16 * 1024

    public static func addRoutes<Context: RequestContext>(
        to router: some RouterMethods<Context>, store: ProjectionStore, authenticator: QueryAuthenticator,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        router.get("/dashboard") { request, _ -> Response in
            let presented = QueryAuthenticator.presentedSecret(request)
            guard let principal = presented.flatMap(authenticator.principal(for:)) else {
                return loginResponse(status: .unauthorized, error: presented == nil ? nil
                                     : "That key is not valid here (or no longer). Sign in again.")
            }
            let query = request.uri.query
            return await Blocking.run { dashboardResponse(query: query, store: store, principal: principal, now: now()) }
        }
        router.post("/dashboard/login") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxFormBytes)
            } catch {
                return loginResponse(status: .contentTooLarge, error: "The form is too large.")
            }
            let fields = Dictionary(formFields(String(buffer: body)), uniquingKeysWith: { first, _ in first })
            let key = (fields["key"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !key.isEmpty else {
                return loginResponse(status: .unauthorized, error: "Enter a key.")
            }
            guard authenticator.principal(for: key) != nil else {
                return loginResponse(status: .unauthorized,
                                     error: "That key is not valid: use the admin key or a read-only virtual key.")
            }
            return redirect(cookie: "\(QueryAuthenticator.cookieName)=\(cookieValue(key)); HttpOnly; SameSite=Strict; Path=/")
        }
        router.post("/dashboard/logout") { _, _ -> Response in
            redirect(cookie: "\(QueryAuthenticator.cookieName)=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
        }
    }

    // MARK: Responses

    static func dashboardResponse(query: String?, store: ProjectionStore, principal: QueryPrincipal,
                                  now: Date) -> Response {
        let parameters = formFields(query ?? "")
        let filters: Filters
        do {
            filters = try Filters.parse(parameters)
        } catch {
            let options = (try? Report.options(store: store, filters: Filters(), now: now)) ?? Options()
            return html(.badRequest, Page.errorPage(error, principal: principal, options: options))
        }
        do {
            let report = try Report.load(store: store, filters: filters, now: now)
            return html(.ok, Page.dashboard(report, principal: principal))
        } catch {
            return html(.internalServerError, Page.failurePage(
                "The projections cannot be read right now: \(error)", principal: principal))
        }
    }

    static func loginResponse(status: HTTPResponse.Status, error: String?) -> Response {
        html(status, Page.login(error: error))
    }

    static func redirect(cookie: String) -> Response {
        var headers = securityHeaders
        headers[.location] = "/dashboard"
        headers[.setCookie] = cookie
        return Response(status: .seeOther, headers: headers)
    }

    static func html(_ status: HTTPResponse.Status, _ page: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
    }

    /// No script may run, nothing may load from elsewhere, and the page is never cached or framed.
    static let securityHeaders: HTTPFields = [
        HTTPField.Name("Content-Security-Policy")!:
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .cacheControl: "no-store",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    // MARK: Forms

    /// `a=1&b=x+y` (a query string or an `application/x-www-form-urlencoded` body) as name/value pairs in
    /// order, `+` read as a space and percent escapes decoded.
    static func formFields(_ text: String) -> [(String, String)] {
        guard !text.isEmpty else { return [] }
        return text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The key as a cookie value: anything outside a safe set percent-encoded (``QueryAuthenticator``
    /// decodes it).
    static func cookieValue(_ key: String) -> String {
        urlEncode(key)
    }
}
