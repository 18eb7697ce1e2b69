import Foundation
@testable import TollgateLog

/// A log that adjusts the configuration of every consumer it makes, for one test fixture.
struct ConsumerTunedLog: MessageLog {
    let base: any MessageLog
    let tune: @Sendable (ConsumerConfiguration) -> ConsumerConfiguration

    func provision(_ topics: [TopicSpec]) async throws { try await base.provision(topics) }
    func topics() async throws -> [TopicSpec] { try await base.topics() }
    func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck] { try await base.produce(messages) }
    func watermarks(topic: String) async throws -> [Int: PartitionWatermarks] {
        try await base.watermarks(topic: topic)
    }

    func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        try await base.makeConsumer(tune(configuration))
    }

    /// Short group timings for librdkafka's mock cluster (kafka-notes.md: the tests need
    /// `session.timeout.ms` around 3000). The mock holds every rebalance after the first open for
    /// session timeout − 1 s, so the default 10 s would make each member that joins or leaves a
    /// group cost 9 s.
    static func mockTimings(_ base: any MessageLog) -> ConsumerTunedLog {
        ConsumerTunedLog(base: base) { configuration in
            var tuned = configuration
            tuned.sessionTimeout = min(configuration.sessionTimeout, .seconds(3))
            tuned.heartbeatInterval = min(configuration.heartbeatInterval, .milliseconds(500))
            return tuned
        }
    }

    /// Consumer groups (and static member ids) with a prefix unique to this fixture. The conformance
    /// tests name their groups alike (`g`, `other`); on a real cluster, which outlives the test run and is
    /// shared by tests running in parallel, equal names would put unrelated tests in one group. (Mock
    /// clusters and embedded logs are per test, so they need no prefix.)
    static func scopedGroups(_ base: any MessageLog) -> ConsumerTunedLog {
        let prefix = "tollgate-test-\(UUID().uuidString.prefix(8).lowercased())"
        return ConsumerTunedLog(base: base) { configuration in
            var scoped = configuration
            scoped.group = "\(prefix)-\(configuration.group)"
            scoped.instanceID = configuration.instanceID.map { "\(prefix)-\($0)" }
            return scoped
        }
    }
}
