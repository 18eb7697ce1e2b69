public import Foundation
public import TollgateEvents

/// Where a provider's API is, and the credential Tollgate uses for it.
public struct UpstreamConfiguration: Sendable, Hashable {
    /// Scheme, host, port and an optional path prefix, e.g. `https://api.openai.com`. A trailing version
    /// segment that the proxied path also starts with (`https://api.openai.com/v1`) is not doubled.
    public var baseURL: String
    /// The provider API key. Never written to an event, a log line or a projection.
    public var apiKey: String?

    public init(baseURL: String, apiKey: String?) {
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    /// The upstream URL for an incoming path (with its query string).
    public func url(forPath path: String, query: String?) -> String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        if let slash = base.range(of: "://").flatMap({ base[$0.upperBound...].firstIndex(of: "/") }) {
            let prefix = String(base[slash...])
            // `https://api.openai.com/v1` + `/v1/chat/completions`: keep one `/v1`.
            if let lastSegment = prefix.split(separator: "/").last,
               path.hasPrefix("/\(lastSegment)/") || path == "/\(lastSegment)" {
                base = String(base[..<base.index(base.endIndex, offsetBy: -(lastSegment.count + 1))])
            }
        }
        let full = base + path
        if let query, !query.isEmpty { return full + "?" + query }
        return full
    }
}

/// Settings of the ingress.
public struct IngressConfiguration: Sendable {
    /// Upstream per provider. Defaults: the providers' public endpoints, keys from the environment.
    public var upstreams: [Provider: UpstreamConfiguration]
    /// Largest request body accepted (413 above). Default 32 MiB.
    public var maxRequestBytes: Int = 32 << 20
    /// Largest non-streamed response body relayed. Default 256 MiB.
    public var maxResponseBytes: Int = 256 << 20
    /// Time to connect to a provider. Default 10 s.
    public var connectTimeout: Duration = .seconds(10)
    /// Longest wait for the next bytes from a provider (504 before the response starts). Default 300 s.
    public var readTimeout: Duration = .seconds(300)
    /// Longest a whole call may take, streams included. Default 30 min.
    public var requestDeadline: Duration = .seconds(1_800)
    /// Concurrent connections per provider host. Default 1,024.
    public var maxConnectionsPerHost: Int = 1_024
    /// Topic name prefix.
    public var topicPrefix: String = TopicCatalog.defaultPrefix
    /// The CloudEvents `source` of the events this ingress writes.
    public var source: String = "tollgate/ingress/\(ProcessInfo.processInfo.hostName)"
    /// The master key of the admin API (`TOLLGATE_ADMIN_KEY`); the admin API is off without it.
    public var adminKey: String?

    public static let defaultBaseURLs: [Provider: String] = [
        .openai: "https://api.openai.com",
        .anthropic: "https://api.anthropic.com",
        .gemini: "https://generativelanguage.googleapis.com",
    ]

    public init(upstreams: [Provider: UpstreamConfiguration]) {
        self.upstreams = upstreams
    }

    /// Reads `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` (or `GOOGLE_API_KEY`),
    /// `TOLLGATE_OPENAI_BASE_URL`, `TOLLGATE_ANTHROPIC_BASE_URL`, `TOLLGATE_GEMINI_BASE_URL` and
    /// `TOLLGATE_ADMIN_KEY`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> IngressConfiguration {
        func value(_ name: String) -> String? {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }
        var configuration = IngressConfiguration(upstreams: [
            .openai: UpstreamConfiguration(
                baseURL: value("TOLLGATE_OPENAI_BASE_URL") ?? defaultBaseURLs[.openai]!,
                apiKey: value("OPENAI_API_KEY")),
            .anthropic: UpstreamConfiguration(
                baseURL: value("TOLLGATE_ANTHROPIC_BASE_URL") ?? defaultBaseURLs[.anthropic]!,
                apiKey: value("ANTHROPIC_API_KEY")),
            .gemini: UpstreamConfiguration(
                baseURL: value("TOLLGATE_GEMINI_BASE_URL") ?? defaultBaseURLs[.gemini]!,
                apiKey: value("GEMINI_API_KEY") ?? value("GOOGLE_API_KEY")),
        ])
        configuration.adminKey = value("TOLLGATE_ADMIN_KEY")
        return configuration
    }
}
