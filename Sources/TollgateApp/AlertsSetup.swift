import AsyncHTTPClient
public import Foundation
public import Logging
public import ServiceLifecycle
public import TollgateAlerts
import TollgateEvents
public import TollgateLog
public import TollgateNotify
import Yams

/// The alerts configuration file (YAML or JSON; `TOLLGATE_ALERTS_FILE` or `--alerts-file`): where alerts
/// are delivered (`channels`, `retry`, see ``ChannelConfiguration``) and the alert rules to put in force
/// (`rules`, see ``AlertRuleEntry``; written to the control topic at start when new or changed).
///
/// ```yaml
/// channels:
///   ops-hook: {type: webhook, url: "https://hooks.example.com/tollgate", secret_env: TOLLGATE_WEBHOOK_SECRET}
///   finops-slack: {type: slack, url_env: TOLLGATE_SLACK_URL, min_severity: warning}
/// retry: {base_delay: 1s, max_delay: 5m, max_attempts: 12}
/// rules:
///   - {id: search-thresholds, kind: budget_threshold, scope: team:search, levels_percent: [50, 80, 95, 100]}
/// ```
public struct AlertsConfiguration: Sendable {
    public var channels: ChannelConfiguration
    public var rules: [AlertRuleEntry]

    public init(channels: ChannelConfiguration = ChannelConfiguration(), rules: [AlertRuleEntry] = []) {
        self.channels = channels
        self.rules = rules
    }

    /// Writes the file's rules that are new or changed to the control topic.
    public func applyRules(log: any MessageLog, topicPrefix: String, logger: Logger) async throws {
        guard !rules.isEmpty else { return }
        do {
            try await AlertRulesSetup.apply(rules: rules, log: log, topicPrefix: topicPrefix, logger: logger,
                                            source: "tollgate/config")
        } catch let error as AlertRulesSetupError {
            throw AlertsConfigurationError("the alerts file's rules are not valid: \(error)")
        }
    }

    /// Reads and checks a configuration file; no file means no channels (alerts are still raised and
    /// published as events).
    public static func load(file: String?) throws -> AlertsConfiguration {
        guard let file, !file.isEmpty else { return AlertsConfiguration() }
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw AlertsConfigurationError("cannot read the alerts file \(file): \(error.localizedDescription)")
        }
        let channels: ChannelConfiguration
        do {
            // JSON is YAML.
            channels = try YAMLDecoder().decode(ChannelConfiguration.self, from: text)
        } catch {
            throw AlertsConfigurationError("the alerts file \(file) is not valid: \(Self.describe(error))")
        }
        do {
            try channels.validate()
        } catch {
            throw AlertsConfigurationError("the alerts file \(file) is not valid: \(error)")
        }
        let rules: [AlertRuleEntry]
        do {
            rules = try AlertRulesSetup.optionalRules(yaml: text)
        } catch {
            throw AlertsConfigurationError("the alerts file \(file) is not valid: \(AlertRuleEntry.message(for: error))")
        }
        return AlertsConfiguration(channels: channels, rules: rules)
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.dataCorrupted(let context):
            let at = path(context.codingPath)
            return (at.isEmpty ? "" : "\(at): ") + context.debugDescription
        default:
            return "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
    }
}

public struct AlertsConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The alerts service and its deliverer, as one process runs them (`tollgate serve`, `tollgate alerts`).
public struct AlertsRuntime: Sendable {
    public let store: DeliveryStore
    public let service: AlertsService
    public let deliverer: Deliverer
    let httpClient: HTTPClient

    /// Opens the delivery store at `path` and resolves the channels (their `*_env` variables).
    public init(log: any MessageLog, configuration: AlertsConfiguration, path: String, topicPrefix: String,
                logger: Logger, onCaughtUp: (@Sendable () -> Void)? = nil) throws {
        let channels: [ResolvedChannel]
        do {
            channels = try configuration.channels.resolve(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw AlertsConfigurationError("the alert channels cannot be used: \(error)")
        }
        store = try DeliveryStore.open(path: path, logger: logger)
        // Redirects are not followed: a webhook answering 3xx has not taken the alert.
        // A receiver that refuses connections fails the attempt at once (the deliverer's back-off retries it)
        // instead of holding it for the channel's whole timeout.
        var http = HTTPClient.Configuration(redirectConfiguration: .disallow)
        http.connectionPool.retryConnectionEstablishment = false
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        var delivererLogger = logger
        delivererLogger[metadataKey: "tollgate.service"] = "alerts-delivery"
        deliverer = Deliverer(store: store, channels: channels, httpClient: httpClient,
                              configuration: Deliverer.Configuration(retry: configuration.channels.retry),
                              logger: delivererLogger)
        service = AlertsService(log: log, store: store, channels: configuration.channels, topicPrefix: topicPrefix,
                                logger: logger, onCaughtUp: onCaughtUp)
        logger.info("alert channels", metadata: [
            "tollgate.channels": "\(channels.map(\.name))", "db.path": "\(path)",
        ])
    }

    /// The services to run: the fold and the deliverer.
    public var services: [any Service] { [service, deliverer] }

    /// Closes the HTTP client once the services have stopped.
    public func shutdown() async {
        try? await httpClient.shutdown()
    }
}
