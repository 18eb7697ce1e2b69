import ArgumentParser
import Foundation
import TollgateApp
import TollgateLog

/// Options of the commands that can run on Kafka instead of the embedded log.
struct KafkaOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Kafka bootstrap brokers, host:port[,host:port…] (env TOLLGATE_KAFKA_BROKERS). Without it: the embedded log.",
        valueName: "brokers"))
    var brokers: String?

    @Option(help: "Client id sent to Kafka.")
    var kafkaClientID: String = "tollgate"

    @Option(name: .customLong("kafka-property"), help: ArgumentHelp(
        "A librdkafka property as name=value, overriding Tollgate's setting of it (repeatable): "
            + "security.protocol=sasl_ssl, sasl.mechanism=…, ssl.ca.location=…. Secrets belong in the "
            + "environment instead: TOLLGATE_KAFKA_PROPERTY_SASL_PASSWORD sets sasl.password (_ for ., __ for _).",
        valueName: "name=value"))
    var kafkaProperties: [String] = []

    /// Prefix of the environment variables that set librdkafka properties.
    static let environmentPrefix = "TOLLGATE_KAFKA_PROPERTY_"

    /// librdkafka properties from `TOLLGATE_KAFKA_PROPERTY_<NAME>` variables, so that secrets (SASL
    /// passwords, key passwords, OAuth client secrets) need not be on a command line, where `ps` shows
    /// them. The name is lowercased, `_` stands for `.` and `__` for `_`:
    /// `TOLLGATE_KAFKA_PROPERTY_SASL_PASSWORD` → `sasl.password`.
    static func environmentProperties(_ environment: [String: String]) -> [String: String] {
        var result: [String: String] = [:]
        for (variable, value) in environment where variable.hasPrefix(environmentPrefix) {
            let encoded = variable.dropFirst(environmentPrefix.count).lowercased()
            guard !encoded.isEmpty else { continue }
            let name = encoded.replacingOccurrences(of: "__", with: "\u{0}")
                .replacingOccurrences(of: "_", with: ".")
                .replacingOccurrences(of: "\u{0}", with: "_")
            result[name] = value
        }
        return result
    }

    /// The brokers from the option or the environment, `nil` for the embedded log.
    var resolvedBrokers: [String]? {
        let raw = brokers ?? ProcessInfo.processInfo.environment["TOLLGATE_KAFKA_BROKERS"]
        guard let raw, !raw.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Where a standalone service's log is: Kafka with these options, else the embedded log of `storage`.
    func backendSettings(_ storage: StorageOptions) throws -> LogBackend.Settings {
        var settings = LogBackend.Settings(logDirectory: storage.resolvedLogDirectory, topicPrefix: storage.topicPrefix)
        settings.brokers = resolvedBrokers
        settings.kafka = try configuration()
        return settings
    }

    func validate() throws {
        _ = try parsedProperties()
        if let brokers = resolvedBrokers {
            for broker in brokers where broker.split(separator: ":").count != 2 || Int(broker.split(separator: ":")[1]) == nil {
                throw ValidationError("--brokers wants host:port entries separated by commas, got '\(broker)'")
            }
        }
    }

    /// The properties of the environment, then of `--kafka-property` (which wins).
    func parsedProperties() throws -> [String: String] {
        var result = Self.environmentProperties(ProcessInfo.processInfo.environment)
        for property in kafkaProperties {
            guard let equals = property.firstIndex(of: "="), equals != property.startIndex else {
                throw ValidationError("--kafka-property must be name=value, got '\(property)'")
            }
            result[String(property[..<equals])] = String(property[property.index(after: equals)...])
        }
        return result
    }

    /// Kafka settings for these options (the brokers are set by the caller).
    func configuration() throws -> KafkaConfiguration {
        var configuration = KafkaConfiguration(brokers: resolvedBrokers ?? [], clientID: kafkaClientID)
        configuration.properties = try parsedProperties()
        return configuration
    }
}
