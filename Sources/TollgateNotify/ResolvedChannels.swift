public import Foundation
import TollgateEvents

/// A channel ready to send: its secrets read from the environment, its addresses parsed.
///
/// Descriptions never show secrets (the webhook key, the Slack URL's token, the SMTP password).
public struct ResolvedChannel: Sendable, Hashable, CustomStringConvertible {
    /// The channel's name, from the configuration.
    public var name: String
    /// The alerts it takes.
    public var filter: AlertFilter
    /// Where it sends.
    public var target: ChannelTarget

    public init(name: String, filter: AlertFilter = AlertFilter(), target: ChannelTarget) {
        self.name = name
        self.filter = filter
        self.target = target
    }

    /// The channel's kind.
    public var kind: ChannelKind {
        switch target {
        case .webhook: .webhook
        case .slack: .slack
        case .email: .email
        }
    }

    public var description: String {
        switch target {
        case .webhook(let target): "\(name) (webhook to \(Redaction.url(target.url)))"
        case .slack(let target): "\(name) (slack to \(Redaction.url(target.url)))"
        case .email(let target): "\(name) (email via \(Redaction.url(target.smtpURL)) to \(target.to.map(\.address).joined(separator: ", ")))"
        }
    }
}

/// Where a resolved channel sends.
public enum ChannelTarget: Sendable, Hashable {
    case webhook(WebhookTarget)
    case slack(SlackTarget)
    case email(EmailTarget)
}

/// A generic webhook, ready to send.
public struct WebhookTarget: Sendable, Hashable {
    /// Where alerts are POSTed.
    public var url: String
    /// The HMAC-SHA256 key.
    public var secret: String
    /// Extra request headers.
    public var headers: [String: String]
    /// The whole request's timeout.
    public var timeout: Duration

    public init(url: String, secret: String, headers: [String: String] = [:], timeout: Duration = .seconds(10)) {
        self.url = url
        self.secret = secret
        self.headers = headers
        self.timeout = timeout
    }
}

/// A Slack incoming webhook, ready to send.
public struct SlackTarget: Sendable, Hashable {
    /// The incoming webhook URL.
    public var url: String
    /// The whole request's timeout.
    public var timeout: Duration

    public init(url: String, timeout: Duration = .seconds(10)) {
        self.url = url
        self.timeout = timeout
    }
}

/// An SMTP server and the message's addresses, ready to send.
public struct EmailTarget: Sendable, Hashable {
    /// `smtp://` or `smtps://` URL.
    public var smtpURL: String
    /// Whether STARTTLS is required on `smtp://`.
    public var starttls: StartTLS
    /// The SMTP login.
    public var username: String?
    /// The SMTP password.
    public var password: String?
    /// The sender.
    public var from: MailAddress
    /// The recipients.
    public var to: [MailAddress]
    /// The whole exchange's timeout.
    public var timeout: Duration
    /// A PEM file of extra certificate authorities.
    public var caFile: String?

    public init(smtpURL: String, starttls: StartTLS = .required, username: String? = nil, password: String? = nil,
                from: MailAddress, to: [MailAddress], timeout: Duration = .seconds(30), caFile: String? = nil) {
        self.smtpURL = smtpURL
        self.starttls = starttls
        self.username = username
        self.password = password
        self.from = from
        self.to = to
        self.timeout = timeout
        self.caFile = caFile
    }
}

extension ChannelConfiguration {
    /// Validates the configuration and resolves every channel: reads the environment variables named by
    /// `secret_env`, `url_env` and `password_env`, parses the e-mail addresses, applies default timeouts.
    ///
    /// - Parameter environment: The environment to read; the process's by default.
    /// - Returns: The channels, sorted by name.
    /// - Throws: ``ChannelConfigurationError`` naming each bad field, including an environment variable that
    ///   is unset or empty (`channels.ops-hook.secret_env: environment variable TOLLGATE_HOOK_SECRET is not set`).
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ChannelConfigurationError) -> [ResolvedChannel] {
        try validate()
        var problems: [ChannelConfigurationError.Problem] = []
        var resolved: [ResolvedChannel] = []
        for name in channels.keys.sorted() {
            let channel = channels[name]!
            func secret(_ value: String?, _ env: String?, _ field: String) -> String? {
                if let value { return value }
                guard let env else { return nil }
                guard let found = environment[env], !found.isEmpty else {
                    problems.append(.init(field: "channels.\(name).\(field)",
                                          reason: "environment variable \(env) is not set (or is empty)"))
                    return nil
                }
                return found
            }
            let filter = AlertFilter(scopes: channel.scopes.compactMap(ScopeFilter.init(parsing:)),
                                     minSeverity: channel.minSeverity)
            switch channel.destination {
            case .webhook(let settings):
                guard let key = secret(settings.secret, settings.secretEnv, "secret_env") else { continue }
                resolved.append(ResolvedChannel(name: name, filter: filter, target: .webhook(WebhookTarget(
                    url: settings.url, secret: key, headers: settings.headers,
                    timeout: settings.timeout?.duration ?? .seconds(10)))))
            case .slack(let settings):
                guard let url = secret(settings.url, settings.urlEnv, "url_env") else { continue }
                if let problem = Validation.httpURL(url) {
                    problems.append(.init(field: "channels.\(name).url_env",
                                          reason: "the value of \(settings.urlEnv ?? "") " + problem))
                    continue
                }
                resolved.append(ResolvedChannel(name: name, filter: filter, target: .slack(SlackTarget(
                    url: url, timeout: settings.timeout?.duration ?? .seconds(10)))))
            case .email(let settings):
                let password = secret(settings.password, settings.passwordEnv, "password_env")
                if settings.passwordEnv != nil, password == nil { continue }
                // Validation parsed every address already.
                guard let from = try? MailAddress(parsing: settings.from) else { continue }
                let to = settings.to.compactMap { try? MailAddress(parsing: $0) }
                resolved.append(ResolvedChannel(name: name, filter: filter, target: .email(EmailTarget(
                    smtpURL: settings.smtpURL, starttls: settings.starttls ?? .required, username: settings.username,
                    password: password, from: from, to: to, timeout: settings.timeout?.duration ?? .seconds(30),
                    caFile: settings.caFile))))
            }
        }
        if !problems.isEmpty { throw ChannelConfigurationError(problems: problems) }
        return resolved
    }
}

enum Redaction {
    /// Scheme, host and port of a URL: the path and query of a Slack webhook are its token.
    static func url(_ text: String) -> String {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
              let host = components.host else { return "(unparsable URL)" }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }
}
