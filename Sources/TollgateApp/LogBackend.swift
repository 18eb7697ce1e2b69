import Foundation
public import Logging
public import ServiceLifecycle
public import TollgateEvents
public import TollgateLog

/// The message log a process runs on, with the services that come with it: the embedded log (and its
/// maintenance) or Kafka (and, for a process that publishes the ingress's events, the spool in front).
public struct LogBackend: Sendable {
    /// Where the log is and how to reach it.
    public struct Settings: Sendable {
        /// Kafka bootstrap brokers; `nil` for the embedded log.
        public var brokers: [String]?
        /// Kafka client settings other than the brokers.
        public var kafka: KafkaConfiguration = KafkaConfiguration(brokers: [])
        /// The embedded log's directory.
        public var logDirectory: String
        public var topicPrefix: String
        /// On Kafka: a spool for published events (the ingress needs one; consumers do not).
        public var spool: SpoolSettings?

        public init(logDirectory: String, topicPrefix: String = TopicCatalog.defaultPrefix) {
            self.logDirectory = logDirectory
            self.topicPrefix = topicPrefix
        }
    }

    public struct SpoolSettings: Sendable {
        public var directory: String
        public var maxMessages: Int64
        public var maxBytes: Int64

        public init(directory: String, maxMessages: Int64 = 1_000_000, maxBytes: Int64 = 1 << 30) {
            self.directory = directory
            self.maxMessages = maxMessages
            self.maxBytes = maxBytes
        }
    }

    public var log: any MessageLog
    /// Where published events go: the spool in front of Kafka, `nil` for straight to the log.
    public var sink: (any EventSink)?
    /// Log maintenance (embedded) or the spool forwarder (Kafka). Put them first in a service group,
    /// so they stop last, after the publishers have flushed into them.
    public var services: [any Service]
    public var close: @Sendable () -> Void

    /// Opens the log and provisions the catalog's topics (idempotent).
    public static func open(_ settings: Settings, logger: Logger) async throws -> LogBackend {
        let specs = TopicCatalog.specs(prefix: settings.topicPrefix)
        guard let brokers = settings.brokers else {
            let log = try EmbeddedLog.open(directory: settings.logDirectory, logger: logger)
            do {
                try await log.provision(specs)
            } catch {
                log.close()
                throw error
            }
            return LogBackend(log: log, sink: nil,
                              services: [EmbeddedLogMaintenance(log: log, logger: logger)], close: { log.close() })
        }
        var configuration = settings.kafka
        configuration.brokers = brokers
        let kafka = try KafkaLog(configuration: configuration, logger: logger)
        do {
            try await kafka.provision(specs)
        } catch {
            throw TollgateError.kafkaUnavailable(brokers: brokers.joined(separator: ","), reason: "\(error)")
        }
        guard let spoolSettings = settings.spool else {
            return LogBackend(log: kafka, sink: nil, services: [], close: {})
        }
        var spoolConfiguration = Spool.Configuration(directory: spoolSettings.directory)
        spoolConfiguration.maxMessages = spoolSettings.maxMessages
        spoolConfiguration.maxBytes = spoolSettings.maxBytes
        let spool = try await Spool.open(spoolConfiguration, target: kafka, logger: logger)
        logger.info("events go to Kafka through the spool", metadata: [
            "kafka.brokers": "\(brokers.joined(separator: ","))", "spool.directory": "\(spoolSettings.directory)",
        ])
        return LogBackend(log: kafka, sink: spool, services: [spool], close: {})
    }

    /// Flushes what the Kafka producer still holds.
    public func finish(logger: Logger) async {
        guard let kafka = log as? KafkaLog else { return }
        do {
            try await kafka.flush(timeout: .seconds(5))
        } catch {
            logger.error("Kafka producer did not flush before exit", metadata: ["kafka.error": "\(error)"])
        }
    }
}
