import Foundation
import Testing
@testable import TollgateLog

/// An engine under test. The conformance suite runs every test once per engine in `LogEngine.all`.
struct LogEngine: Sendable, CustomTestStringConvertible {
    var name: String
    /// The engine compacts topics (librdkafka's mock cluster does not).
    var compacts: Bool
    var make: @Sendable () async throws -> LogFixture

    var testDescription: String { name }

    static let embedded = LogEngine(name: "embedded", compacts: true) {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        return LogFixture(log: log, directory: directory, embedded: log)
    }

    /// `KafkaLog` on librdkafka's mock cluster, one cluster per test (groups are named alike across
    /// tests), with the short group timings the mock needs.
    static let kafka = LogEngine(name: "kafka-mock", compacts: false) {
        let cluster = try KafkaMockCluster()
        let log = try KafkaLog(configuration: cluster.configuration(), mockCluster: cluster)
        return LogFixture(log: ConsumerTunedLog.mockTimings(log), kafkaCluster: cluster)
    }

    /// `KafkaLog` on a real cluster, only when `TOLLGATE_KAFKA_BROKERS` names one (`host:port,…`).
    static let kafkaBrokers: LogEngine? = ProcessInfo.processInfo.environment["TOLLGATE_KAFKA_BROKERS"]
        .flatMap { $0.isEmpty ? nil : $0 }
        .map { brokers in
            // Compaction on a real broker runs on the broker's schedule: the test cannot trigger it.
            LogEngine(name: "kafka-brokers", compacts: false) {
                let configuration = KafkaConfiguration(brokers: brokers.split(separator: ",").map(String.init))
                return LogFixture(log: ConsumerTunedLog.scopedGroups(try KafkaLog(configuration: configuration)))
            }
        }

    static let all: [LogEngine] = [.embedded, .kafka] + (kafkaBrokers.map { [$0] } ?? [])
}

/// A log plus what keeps it alive for one test.
struct LogFixture: Sendable {
    var log: any MessageLog
    var directory: TemporaryDirectory?
    var embedded: EmbeddedLog?
    /// The mock cluster a Kafka fixture runs on.
    var kafkaCluster: KafkaMockCluster? = nil

    /// A topic with a name unique to the test.
    func topic(_ base: String = "t", partitions: Int = 4, cleanupPolicy: CleanupPolicy = .delete,
               retentionMilliseconds: Int64? = nil, retentionBytes: Int64? = nil) async throws -> String {
        let name = "\(base)-\(UUID().uuidString.prefix(8).lowercased())"
        try await log.provision([TopicSpec(name: name, partitions: partitions, cleanupPolicy: cleanupPolicy,
                                           retentionMilliseconds: retentionMilliseconds,
                                           retentionBytes: retentionBytes)])
        return name
    }
}

/// A directory removed when the last reference goes away.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tollgate-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Polls until `count` messages arrived or `deadline` passed; returns what arrived.
func drain(_ consumer: any LogConsumer, count: Int, deadline: Duration = .seconds(15)) async throws
    -> [ConsumedMessage] {
    var messages: [ConsumedMessage] = []
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: deadline)
    while messages.count < count && clock.now < end {
        messages += try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(100))
    }
    return messages
}

/// Polls (which is how a member learns about rebalances) until `condition` holds on its assignment or
/// the deadline passes. Returns the messages seen meanwhile.
func pollUntil(_ consumer: any LogConsumer, deadline: Duration = .seconds(15),
               _ condition: (Set<TopicPartition>) -> Bool) async throws -> [ConsumedMessage] {
    var messages: [ConsumedMessage] = []
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: deadline)
    while clock.now < end {
        messages += try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(50))
        if condition(await consumer.assignment()) { return messages }
    }
    Issue.record("condition on the assignment not reached within \(deadline)")
    return messages
}

func bytes(_ string: String) -> Data { Data(string.utf8) }
func text(_ data: Data?) -> String? { data.map { String(decoding: $0, as: UTF8.self) } }
