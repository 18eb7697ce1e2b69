import Foundation
import ServiceLifecycle
import Synchronization

/// Follows a topic from its beginning until graceful shutdown, as a consumer group of its own (so every
/// process sees every message) that never commits: how a process folds a compacted topic — control
/// entities, budget decisions — into its in-memory state.
public struct TopicFollower: Sendable {
    public let log: any MessageLog
    public let topic: String
    /// The consumer group is `<groupPrefix>-<random>`.
    public let groupPrefix: String

    public init(log: any MessageLog, topic: String, groupPrefix: String) {
        self.log = log
        self.topic = topic
        self.groupPrefix = groupPrefix
    }

    /// Reads until graceful shutdown or cancellation.
    ///
    /// - Parameters:
    ///   - onCaughtUp: called once, when everything up to the high watermarks seen at start has been read
    ///     (or when a poll comes back empty: the newest offsets may have been compacted away).
    ///   - onPoll: called before every poll (for gauges).
    ///   - apply: each batch read, tombstones (nil values) included.
    public func run(onCaughtUp: () -> Void, onPoll: () -> Void = {},
                    apply: ([ConsumedMessage]) -> Void) async throws {
        let consumer = try await log.makeConsumer(ConsumerConfiguration(
            group: "\(groupPrefix)-\(UUID().uuidString.lowercased())", autoOffsetReset: .earliest))
        try await consumer.subscribe([topic])
        try await consumer.seek(.beginning, partitions: nil)
        let target = try await log.watermarks(topic: topic).mapValues(\.high)
        var position: [Int: Int64] = [:]
        var caughtUp = false
        let stopping = Atomic<Bool>(false)
        do {
            try await withGracefulShutdownHandler {
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    if !caughtUp && target.allSatisfy({ $0.value == 0 || (position[$0.key] ?? 0) >= $0.value }) {
                        caughtUp = true
                        onCaughtUp()
                    }
                    onPoll()
                    let batch = try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(100))
                    if batch.isEmpty {
                        position = position.merging(target) { max($0, $1) }
                        continue
                    }
                    for message in batch { position[message.partition] = message.offset + 1 }
                    apply(batch)
                }
            } onGracefulShutdown: {
                stopping.store(true, ordering: .relaxed)
            }
        } catch {
            try? await consumer.close()
            throw error
        }
        try await consumer.close()
    }
}
