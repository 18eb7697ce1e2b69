public import Foundation
public import HTTPTypes
public import Hummingbird

/// Who is reading the projections.
public enum QueryPrincipal: Sendable, Hashable {
    /// The admin key (`TOLLGATE_ADMIN_KEY`).
    case admin
    /// A virtual key created read-only (`tollgate keys create --read-only`).
    case readOnlyKey(keyID: String)
}

/// Authentication of the query API and the dashboard: the admin key or a read-only virtual key, presented
/// as `Authorization: Bearer <key>`, as `x-api-key`, or (for the dashboard in a browser) in the
/// `tollgate_session` cookie that the dashboard's login form sets.
public struct QueryAuthenticator: Sendable {
    public static let cookieName = "tollgate_session"

    private let adminKey: String?
    private let verifyKey: @Sendable (String) -> QueryPrincipal?

    /// - Parameters:
    ///   - adminKey: the admin key, or `nil` when none is configured.
    ///   - verifyKey: resolves a presented virtual key to a principal, or `nil` when it is unknown, revoked,
    ///     expired or not read-only.
    public init(adminKey: String?, verifyKey: @escaping @Sendable (String) -> QueryPrincipal?) {
        self.adminKey = adminKey.flatMap { $0.isEmpty ? nil : $0 }
        self.verifyKey = verifyKey
    }

    /// Whether any way in is configured at all (false: no admin key, and the caller has no key table).
    public var hasAdminKey: Bool { adminKey != nil }

    /// The principal of a presented secret.
    public func principal(for secret: String) -> QueryPrincipal? {
        if let adminKey, Self.constantTimeEquals(secret, adminKey) { return .admin }
        return verifyKey(secret)
    }

    /// The principal of a request, from its `Authorization`, `x-api-key` or session cookie.
    public func authenticate(_ request: Request) -> QueryPrincipal? {
        guard let secret = Self.presentedSecret(request) else { return nil }
        return principal(for: secret)
    }

    public static func presentedSecret(_ request: Request) -> String? {
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
            if !token.isEmpty { return token }
        }
        if let key = request.headers[HTTPField.Name("x-api-key")!], !key.isEmpty { return key }
        if let cookies = request.headers[.cookie] {
            for part in cookies.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(cookieName + "=") {
                    let value = String(pair.dropFirst(cookieName.count + 1))
                    if !value.isEmpty { return value.removingPercentEncoding ?? value }
                }
            }
        }
        return nil
    }

    /// Comparison whose time does not depend on where the strings differ.
    public static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
