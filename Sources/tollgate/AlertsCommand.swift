import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateEvents
import TollgateLog
import TollgateNotify
import TollgateQuery

/// `tollgate alerts`: the alerts service alone (`run`, the default), recent alerts with their delivery
/// status (`list`), and the rules (`rules`).
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Run the alerts service, list alerts with their delivery status, manage alert rules.",
        subcommands: [Run.self, List.self, AlertRulesCommand.self],
        defaultSubcommand: Run.self)

    struct AlertsOptions: ParsableArguments {
        @Option(help: ArgumentHelp("The alerts configuration: channels and retry, YAML or JSON (env TOLLGATE_ALERTS_FILE).",
                                   valueName: "file"))
        var alertsFile: String?

        @Option(help: ArgumentHelp("The alert deliveries database (default: <data-dir>/alerts.sqlite; env TOLLGATE_ALERTS_DB).",
                                   valueName: "path"))
        var alertsDb: String?

        var file: String? { alertsFile ?? ProcessInfo.processInfo.environment["TOLLGATE_ALERTS_FILE"] }

        func path(_ storage: StorageOptions) -> String {
            alertsDb ?? ProcessInfo.processInfo.environment["TOLLGATE_ALERTS_DB"]
                ?? URL(fileURLWithPath: storage.dataDir).appendingPathComponent("alerts.sqlite").path
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run the alerts service alone: rules over usage and budget decisions, alert events, delivery.",
            discussion: """
                Reads control, budget-decisions and usage in the consumer group tollgate-alerts, publishes each \
                alert on the alerts topic, and delivers it to the channels of the alerts file (webhook, Slack, \
                e-mail) from the deliveries database, with retries. Run one per deliveries database.
                """)

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var alerts: AlertsOptions
        @OptionGroup var endpoints: EndpointOptions

        func run() async throws {
            let logger = logging.bootstrap(default: .info)
            Observability.bootstrap()
            let configuration: AlertsConfiguration
            do {
                configuration = try AlertsConfiguration.load(file: alerts.file)
            } catch let error as AlertsConfigurationError {
                throw CommandFailure(error.description)
            }
            let backend = try await LogBackend.open(try kafka.backendSettings(storage), logger: logger)
            defer { backend.close() }
            do {
                try await configuration.applyRules(log: backend.log, topicPrefix: storage.topicPrefix, logger: logger)
            } catch let error as AlertsConfigurationError {
                throw CommandFailure(error.description)
            }
            let readiness = Readiness(checks: ["log", "alerts"])
            readiness.markReady("log")
            let runtime: AlertsRuntime
            do {
                runtime = try AlertsRuntime(log: backend.log, configuration: configuration, path: alerts.path(storage),
                                            topicPrefix: storage.topicPrefix, logger: logger,
                                            onCaughtUp: { readiness.markReady("alerts") })
            } catch let error as AlertsConfigurationError {
                throw CommandFailure(error.description)
            }
            let host = endpoints.serviceHost("alerts")
            do {
                try await host.run(services: runtime.services, readiness: readiness, backend: backend, logger: logger)
            } catch {
                await runtime.shutdown()
                throw error
            }
            await runtime.shutdown()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "Recent alerts, newest first, with their delivery status per channel.")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var alerts: AlertsOptions
        @Option(help: "How many alerts.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            guard limit > 0 else { throw CommandFailure("--limit must be at least 1") }
            var logger = Logger(label: "tollgate.alerts")
            logger.logLevel = .warning
            let store: DeliveryStore
            do {
                store = try DeliveryStore.open(path: alerts.path(storage), readonly: true, logger: logger)
            } catch let error as DeliveryStoreError {
                throw CommandFailure("\(error)")
            }
            let recent = try store.recent(limit: limit)
            if json {
                try DataOutput.json(["alerts": recent])
                return
            }
            if recent.isEmpty {
                Output.line("no alerts yet")
                return
            }
            Output.line(Self.table(recent))
        }

        static func table(_ alerts: [AlertDeliveries]) -> String {
            var table = TextTable(columns: ["raised", "severity", "scope", "title", "deliveries"])
            for alert in alerts {
                let deliveries = alert.deliveries.isEmpty ? "no channel"
                    : alert.deliveries.map { delivery in
                        var text = "\(delivery.channel): \(delivery.state.rawValue)"
                        if delivery.state != .delivered, delivery.attempts > 0 { text += " (\(delivery.attempts) attempts)" }
                        return text
                    }.joined(separator: ", ")
                table.append([TextFormat.minute(alert.raisedAt), alert.severity.rawValue, alert.scope,
                              String(alert.title.prefix(70)), deliveries])
            }
            return table.render()
        }
    }
}
