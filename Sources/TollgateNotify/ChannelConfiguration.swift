import Foundation
public import TollgateEvents

/// Where alerts are delivered, and which alerts go where: the `channels` and `retry` of the alerts
/// configuration.
///
/// Each channel has a name (the key: letters, digits, `.`, `_`, `-`), a `type` (`webhook`, `slack` or
/// `email`), the type's settings, and an optional filter: `scopes` (alerts about these scopes only; empty
/// or absent means every alert) and `min_severity` (`info`, `warning` or `critical`).
///
/// Secrets can stay out of the file: `secret_env`, `url_env` and `password_env` name an environment
/// variable read by ``resolve(environment:)`` when the service starts.
///
/// ```yaml
/// channels:
///   ops-hook:
///     type: webhook
///     url: https://hooks.example.com/tollgate
///     secret_env: TOLLGATE_WEBHOOK_SECRET      # or secret: ... (HMAC-SHA256 key)
///     headers: {X-Team: platform}              # optional extra headers
///     timeout: 10s                             # default 10s
///   search-slack:
///     type: slack
///     url_env: TOLLGATE_SLACK_SEARCH_URL       # or url: https://hooks.slack.com/services/...
///     scopes: [team:search, tag:feature=*]     # kind:id, kind:* (every id of a kind), or global
///     min_severity: warning
///   oncall:
///     type: email
///     smtp_url: smtp://smtp.example.com:587    # smtp:// (STARTTLS) or smtps:// (TLS from the start)
///     starttls: required                       # required (default) or optional
///     username: tollgate
///     password_env: TOLLGATE_SMTP_PASSWORD     # or password: ...
///     from: Tollgate <tollgate@example.com>
///     to: [oncall@example.com, finops@example.com]
///     timeout: 30s                             # default 30s
///     ca_file: /etc/ssl/private-ca.pem         # optional extra trust anchors
///     min_severity: critical
/// retry:
///   base_delay: 1s
///   max_delay: 5m
///   max_attempts: 12
/// ```
///
/// Decoding rejects unknown fields (a misspelt `secret-env` is an error, not a silently unsigned webhook);
/// ``validate()`` checks values and names every bad field in its error.
public struct ChannelConfiguration: Sendable, Hashable, Codable {
    /// The channels, by name.
    public var channels: [String: AlertChannel]
    /// Retries and dead-lettering, for every channel.
    public var retry: RetryPolicy

    /// Creates a configuration.
    public init(channels: [String: AlertChannel] = [:], retry: RetryPolicy = RetryPolicy()) {
        self.channels = channels
        self.retry = retry
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case channels
        case retry
    }

    public init(from decoder: any Decoder) throws {
        // `rules` is the alerts file's other section, read by the alerts service's rule setup.
        try UnknownKeys.reject(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue) + ["rules"],
                               what: "alerts configuration")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(channels: try container.decodeIfPresent([String: AlertChannel].self, forKey: .channels) ?? [:],
                  retry: try container.decodeIfPresent(RetryPolicy.self, forKey: .retry) ?? RetryPolicy())
    }

    // MARK: Validation

    /// Checks every channel and the retry policy.
    ///
    /// - Throws: ``ChannelConfigurationError`` listing each problem with the path of its field, such as
    ///   `channels.ops-hook.url: must be an http:// or https:// URL (got "ftp://example.com")`.
    public func validate() throws(ChannelConfigurationError) {
        var problems: [ChannelConfigurationError.Problem] = []
        for name in channels.keys.sorted() {
            if !Self.isValidName(name) {
                problems.append(.init(field: "channels.\(name)",
                                      reason: "channel names are 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"))
            }
            problems += channels[name]!.problems().map {
                .init(field: "channels.\(name).\($0.0)", reason: $0.1)
            }
        }
        problems += retry.problems().map { .init(field: "retry.\($0.0)", reason: $0.1) }
        if !problems.isEmpty { throw ChannelConfigurationError(problems: problems) }
    }

    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
        }
        return isAlphanumeric(bytes[0])
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    // MARK: Routing

    /// The names of the channels that take `alert`, sorted.
    public func channelNames(for alert: AlertData) -> [String] {
        channels.filter { $0.value.accepts(alert) }.map(\.key).sorted()
    }

    /// The deliveries to queue for `event`: one per channel that takes it, each carrying the event's
    /// canonical JSON. Pass them to ``DeliveryStore/commit(deliveries:state:offsets:)``.
    public func deliveries(for event: AlertEvent) throws -> [NewDelivery] {
        let names = channelNames(for: event.data)
        if names.isEmpty { return [] }
        let json = try EventCoding.encode(event)
        return names.map { NewDelivery(event: event, json: json, channel: $0) }
    }
}

/// Why a channel configuration cannot be used; each problem names its field.
public struct ChannelConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One bad field.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The field's path, such as `channels.ops-hook.url`.
        public var field: String
        /// What is wrong with it.
        public var reason: String

        public init(field: String, reason: String) {
            self.field = field
            self.reason = reason
        }

        public var description: String { "\(field): \(reason)" }
    }

    /// The problems, in field order.
    public var problems: [Problem]

    public init(problems: [Problem]) {
        self.problems = problems
    }

    public var description: String {
        problems.count == 1 ? "invalid alert channel configuration: \(problems[0])"
            : "invalid alert channel configuration:\n" + problems.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// The kinds of channel.
public enum ChannelKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A generic webhook: the alert as a CloudEvent, signed with HMAC-SHA256 (see ``WebhookFormat``).
    case webhook
    /// A Slack incoming webhook (see ``SlackFormat``).
    case slack
    /// E-mail over SMTP (see ``EmailFormat``).
    case email
}

extension AlertData.Severity {
    /// `info` 0, `warning` 1, `critical` 2.
    var rank: Int {
        switch self {
        case .info: 0
        case .warning: 1
        case .critical: 2
        }
    }
}

/// Which scopes a channel's `scopes` entry takes: one scope (`team:search`, `tag:feature=summarize`,
/// `global`), or every scope of one kind (`team:*`).
public enum ScopeFilter: Sendable, Hashable, CustomStringConvertible {
    /// Exactly this scope.
    case scope(Scope)
    /// Every scope of this kind.
    case kind(Scope.Kind)

    /// Parses `global`, `kind:id` or `kind:*`; `nil` when the text is none of them.
    public init?(parsing text: String) {
        if text == "global" || text == "global:*" {
            self = .scope(.global)
            return
        }
        guard let colon = text.firstIndex(of: ":"),
              let kind = Scope.Kind(rawValue: String(text[..<colon])) else { return nil }
        let id = String(text[text.index(after: colon)...])
        if id == "*" {
            self = .kind(kind)
            return
        }
        let scope = Scope(kind: kind, id: id)
        guard scope.isValid else { return nil }
        self = .scope(scope)
    }

    /// Whether `scope` passes.
    public func matches(_ scope: Scope) -> Bool {
        switch self {
        case .scope(let wanted): wanted == scope
        case .kind(let kind): scope.kind == kind
        }
    }

    public var description: String {
        switch self {
        case .scope(let scope): scope.description
        case .kind(let kind): "\(kind.rawValue):*"
        }
    }
}

/// One alert channel: where to deliver, and which alerts.
public struct AlertChannel: Sendable, Hashable, Codable {
    /// Where and how to deliver.
    public enum Destination: Sendable, Hashable {
        case webhook(WebhookSettings)
        case slack(SlackSettings)
        case email(EmailSettings)
    }

    /// Where and how to deliver.
    public var destination: Destination
    /// The scopes whose alerts the channel takes, as `kind:id`, `kind:*` or `global`; empty means all alerts.
    public var scopes: [String]
    /// The least severe alert the channel takes; `nil` means all.
    public var minSeverity: AlertData.Severity?

    /// Creates a channel.
    public init(_ destination: Destination, scopes: [String] = [], minSeverity: AlertData.Severity? = nil) {
        self.destination = destination
        self.scopes = scopes
        self.minSeverity = minSeverity
    }

    /// The channel's kind.
    public var kind: ChannelKind {
        switch destination {
        case .webhook: .webhook
        case .slack: .slack
        case .email: .email
        }
    }

    /// Whether the channel takes `alert` (its scope passes a filter, or there is none, and it is severe
    /// enough).
    public func accepts(_ alert: AlertData) -> Bool {
        AlertFilter(scopes: scopes.compactMap(ScopeFilter.init(parsing:)), minSeverity: minSeverity).accepts(alert)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type
        case scopes
        case minSeverity = "min_severity"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(ChannelKind.self, forKey: .type)
        let common = CodingKeys.allCases.map(\.rawValue)
        switch kind {
        case .webhook:
            try UnknownKeys.reject(in: decoder, allowed: common + WebhookSettings.CodingKeys.allCases.map(\.rawValue),
                                   what: "a webhook channel")
            destination = .webhook(try WebhookSettings(from: decoder))
        case .slack:
            try UnknownKeys.reject(in: decoder, allowed: common + SlackSettings.CodingKeys.allCases.map(\.rawValue),
                                   what: "a slack channel")
            destination = .slack(try SlackSettings(from: decoder))
        case .email:
            try UnknownKeys.reject(in: decoder, allowed: common + EmailSettings.CodingKeys.allCases.map(\.rawValue),
                                   what: "an email channel")
            destination = .email(try EmailSettings(from: decoder))
        }
        scopes = try container.decodeIfPresent([String].self, forKey: .scopes) ?? []
        minSeverity = try container.decodeIfPresent(AlertData.Severity.self, forKey: .minSeverity)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .type)
        if !scopes.isEmpty { try container.encode(scopes, forKey: .scopes) }
        try container.encodeIfPresent(minSeverity, forKey: .minSeverity)
        switch destination {
        case .webhook(let settings): try settings.encode(to: encoder)
        case .slack(let settings): try settings.encode(to: encoder)
        case .email(let settings): try settings.encode(to: encoder)
        }
    }

    /// Problems as `(field, reason)`, fields relative to the channel.
    func problems() -> [(String, String)] {
        var problems: [(String, String)] = []
        for (index, text) in scopes.enumerated() where ScopeFilter(parsing: text) == nil {
            problems.append(("scopes[\(index)]",
                             "\"\(text)\" is not a scope (use kind:id such as team:search, kind:* such as team:*, or global; kinds: \(Scope.Kind.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        switch destination {
        case .webhook(let settings): problems += settings.problems()
        case .slack(let settings): problems += settings.problems()
        case .email(let settings): problems += settings.problems()
        }
        return problems
    }
}

/// The alerts a channel takes.
public struct AlertFilter: Sendable, Hashable {
    /// Scopes taken; empty means all.
    public var scopes: [ScopeFilter]
    /// The least severe alert taken; `nil` means all.
    public var minSeverity: AlertData.Severity?

    public init(scopes: [ScopeFilter] = [], minSeverity: AlertData.Severity? = nil) {
        self.scopes = scopes
        self.minSeverity = minSeverity
    }

    /// Whether `alert` passes.
    public func accepts(_ alert: AlertData) -> Bool {
        if let minSeverity, alert.severity.rank < minSeverity.rank { return false }
        return scopes.isEmpty || scopes.contains { $0.matches(alert.scope) }
    }
}

// MARK: Settings of each kind

/// A generic webhook's settings (see ``WebhookFormat`` for what is sent).
public struct WebhookSettings: Sendable, Hashable, Codable {
    /// The `http://` or `https://` URL alerts are POSTed to.
    public var url: String
    /// The HMAC-SHA256 key, written in the file. Exactly one of `secret` and `secretEnv` is required.
    public var secret: String?
    /// The environment variable holding the HMAC-SHA256 key.
    public var secretEnv: String?
    /// Extra request headers (not `Content-Type`, `Content-Length`, `Host` or `X-Tollgate-*`).
    public var headers: [String: String]
    /// The whole request's timeout. Default 10 s.
    public var timeout: ConfigDuration?

    public init(url: String, secret: String? = nil, secretEnv: String? = nil, headers: [String: String] = [:],
                timeout: ConfigDuration? = nil) {
        self.url = url
        self.secret = secret
        self.secretEnv = secretEnv
        self.headers = headers
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url
        case secret
        case secretEnv = "secret_env"
        case headers
        case timeout
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(url: try container.decode(String.self, forKey: .url),
                  secret: try container.decodeIfPresent(String.self, forKey: .secret),
                  secretEnv: try container.decodeIfPresent(String.self, forKey: .secretEnv),
                  headers: try container.decodeIfPresent([String: String].self, forKey: .headers) ?? [:],
                  timeout: try container.decodeIfPresent(ConfigDuration.self, forKey: .timeout))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(url, forKey: .url)
        try container.encodeIfPresent(secret, forKey: .secret)
        try container.encodeIfPresent(secretEnv, forKey: .secretEnv)
        if !headers.isEmpty { try container.encode(headers, forKey: .headers) }
        try container.encodeIfPresent(timeout, forKey: .timeout)
    }

    /// Headers the webhook sets itself.
    static let reservedHeaders: Set<String> = ["content-type", "content-length", "host", "transfer-encoding", "connection"]

    func problems() -> [(String, String)] {
        var problems: [(String, String)] = []
        if let problem = Validation.httpURL(url) { problems.append(("url", problem)) }
        problems += Validation.secretSource(value: secret, env: secretEnv, valueField: "secret", envField: "secret_env",
                                            required: true)
        for name in headers.keys.sorted() {
            let lower = name.lowercased()
            if !Validation.isHeaderName(name) {
                problems.append(("headers.\(name)", "not a valid HTTP header name"))
            } else if Self.reservedHeaders.contains(lower) || lower.hasPrefix("x-tollgate-") {
                problems.append(("headers.\(name)", "set by Tollgate itself; cannot be overridden"))
            }
            if !Validation.isHeaderValue(headers[name]!) {
                problems.append(("headers.\(name)", "the value must be printable ASCII without line breaks"))
            }
        }
        if let problem = Validation.timeout(timeout) { problems.append(("timeout", problem)) }
        return problems
    }
}

/// A Slack incoming webhook's settings (see ``SlackFormat`` for what is sent).
public struct SlackSettings: Sendable, Hashable, Codable {
    /// The incoming webhook URL (`https://hooks.slack.com/services/...`). Exactly one of `url` and `urlEnv`
    /// is required; the URL is a secret, so prefer `url_env`.
    public var url: String?
    /// The environment variable holding the incoming webhook URL.
    public var urlEnv: String?
    /// The whole request's timeout. Default 10 s.
    public var timeout: ConfigDuration?

    public init(url: String? = nil, urlEnv: String? = nil, timeout: ConfigDuration? = nil) {
        self.url = url
        self.urlEnv = urlEnv
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url
        case urlEnv = "url_env"
        case timeout
    }

    func problems() -> [(String, String)] {
        var problems = Validation.secretSource(value: url, env: urlEnv, valueField: "url", envField: "url_env",
                                               required: true)
        if let url, let problem = Validation.httpURL(url) { problems.append(("url", problem)) }
        if let problem = Validation.timeout(timeout) { problems.append(("timeout", problem)) }
        return problems
    }
}

/// Whether an `smtp://` connection must be upgraded to TLS with STARTTLS.
public enum StartTLS: String, Sendable, Hashable, Codable, CaseIterable {
    /// Fail (and dead-letter) when the server does not offer STARTTLS or the upgrade fails.
    case required
    /// Upgrade when the server offers STARTTLS, go on in plain text otherwise: only for a relay on the same
    /// host or network, since the login and the message then cross the network unencrypted.
    case optional
}

/// E-mail settings (see ``EmailFormat`` for the message).
public struct EmailSettings: Sendable, Hashable, Codable {
    /// `smtp://host[:port]` (usually 587, upgraded with STARTTLS) or `smtps://host[:port]` (usually 465, TLS
    /// from the start).
    public var smtpURL: String
    /// Whether STARTTLS is required on `smtp://`. Default `required`.
    public var starttls: StartTLS?
    /// The SMTP login, if the server wants one.
    public var username: String?
    /// The SMTP password, written in the file. At most one of `password` and `passwordEnv`.
    public var password: String?
    /// The environment variable holding the SMTP password.
    public var passwordEnv: String?
    /// The sender, `addr@example.com` or `Display Name <addr@example.com>`.
    public var from: String
    /// The recipients (at least one).
    public var to: [String]
    /// The whole exchange's timeout. Default 30 s.
    public var timeout: ConfigDuration?
    /// A PEM file of certificate authorities to trust besides the system's.
    public var caFile: String?

    public init(smtpURL: String, starttls: StartTLS? = nil, username: String? = nil, password: String? = nil,
                passwordEnv: String? = nil, from: String, to: [String], timeout: ConfigDuration? = nil,
                caFile: String? = nil) {
        self.smtpURL = smtpURL
        self.starttls = starttls
        self.username = username
        self.password = password
        self.passwordEnv = passwordEnv
        self.from = from
        self.to = to
        self.timeout = timeout
        self.caFile = caFile
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case smtpURL = "smtp_url"
        case starttls
        case username
        case password
        case passwordEnv = "password_env"
        case from
        case to
        case timeout
        case caFile = "ca_file"
    }

    func problems() -> [(String, String)] {
        var problems: [(String, String)] = []
        if let url = URL(string: smtpURL), let scheme = url.scheme?.lowercased(), scheme == "smtp" || scheme == "smtps",
           let host = url.host, !host.isEmpty {
            if url.user != nil || url.password != nil {
                problems.append(("smtp_url", "put the login in username and password(_env), not in the URL"))
            }
        } else {
            problems.append(("smtp_url", "must be an smtp:// or smtps:// URL with a host (got \"\(smtpURL)\")"))
        }
        problems += Validation.secretSource(value: password, env: passwordEnv, valueField: "password",
                                            envField: "password_env", required: false)
        if (password != nil || passwordEnv != nil) && (username ?? "").isEmpty {
            problems.append(("username", "required when a password is set"))
        }
        do {
            _ = try MailAddress(parsing: from)
        } catch {
            problems.append(("from", "\(error)"))
        }
        if to.isEmpty { problems.append(("to", "at least one recipient is required")) }
        for (index, recipient) in to.enumerated() {
            do {
                _ = try MailAddress(parsing: recipient)
            } catch {
                problems.append(("to[\(index)]", "\(error)"))
            }
        }
        if let problem = Validation.timeout(timeout) { problems.append(("timeout", problem)) }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            problems.append(("ca_file", "cannot read \(caFile)"))
        }
        return problems
    }
}

enum Validation {
    static func httpURL(_ text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            return "must be an http:// or https:// URL with a host (got \"\(text)\")"
        }
        return nil
    }

    static func secretSource(value: String?, env: String?, valueField: String, envField: String,
                             required: Bool) -> [(String, String)] {
        switch (value, env) {
        case (nil, nil):
            return required ? [(valueField, "required (or \(envField), naming an environment variable)")] : []
        case (.some, .some):
            return [(valueField, "give either \(valueField) or \(envField), not both")]
        case (.some(let value), nil):
            return value.isEmpty ? [(valueField, "must not be empty")] : []
        case (nil, .some(let name)):
            return isEnvironmentName(name) ? []
                : [(envField, "\"\(name)\" is not an environment variable name (letters, digits and '_', not starting with a digit)")]
        }
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == UInt8(ascii: "_")
        }
    }

    static func timeout(_ timeout: ConfigDuration?) -> String? {
        guard let timeout else { return nil }
        return timeout.duration > .zero ? nil : "must be more than zero"
    }

    /// RFC 9110 token characters.
    static func isHeaderName(_ name: String) -> Bool {
        let extra = Set("!#$%&'*+-.^_`|~".utf8)
        return !name.isEmpty && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || extra.contains($0)
        }
    }

    static func isHeaderValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { ($0 >= 0x20 && $0 <= 0x7E) || $0 == 0x09 }
    }
}
