public import Foundation

/// The one interface every Tollgate service uses to talk to its message log.
///
/// Two engines implement it: ``EmbeddedLog`` (durable on local disk, for one machine, shared safely by
/// several processes) and the Kafka engine (librdkafka, for many machines). Both have the same semantics:
/// topics split into partitions, a message's key chooses its partition with Kafka's default partitioner
/// (murmur2, see ``Partitioner``), offsets grow per partition, consumer groups share partitions among their
/// live members, and offsets are committed explicitly once a batch has been applied.
///
/// ```swift
/// let ack = try await log.produce(OutgoingMessage(topic: "tollgate.usage", key: Data("team-a".utf8),
///                                                 value: payload))
/// let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "projector"))
/// try await consumer.subscribe(["tollgate.usage"])
/// let batch = try await consumer.poll(maxMessages: 500, timeout: .milliseconds(100))
/// // ... apply the batch ...
/// try await consumer.commit(batch.nextOffsets)
/// ```
public protocol MessageLog: Sendable {
    /// Creates the topics that do not exist yet and brings existing ones in line with their spec
    /// (more partitions, cleanup policy, retention). Idempotent; safe to call at every service start.
    func provision(_ topics: [TopicSpec]) async throws

    /// The topics the log holds, with their settings.
    func topics() async throws -> [TopicSpec]

    /// Appends messages and returns once each is durable, with the partition and offset it got.
    ///
    /// Acknowledgements come back in the order of `messages`. Messages to one partition are appended in
    /// the order given. Batching many messages in one call (or many concurrent calls) is what makes
    /// throughput: the engine groups them into one write.
    func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck]

    /// Low (first retained) and high (next to be written) offsets of every partition of `topic`.
    func watermarks(topic: String) async throws -> [Int: PartitionWatermarks]

    /// A new consumer in the group named by the configuration. Call ``LogConsumer/close()`` when done.
    func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer
}

extension MessageLog {
    /// Appends one message and returns once it is durable.
    public func produce(_ message: OutgoingMessage) async throws -> DeliveryAck {
        let acks = try await produce([message])
        return acks[0]
    }
}

/// A consumer in a consumer group.
///
/// The group shares the partitions of the subscribed topics among its live members; a member that stops
/// heart-beating (it crashed, or hangs) loses its partitions to the others after the session timeout.
/// Polling advances the consumer's in-memory position; only ``commit(_:)`` makes progress durable, so a
/// consumer that restarts without committing sees the uncommitted messages again (at-least-once).
public protocol LogConsumer: AnyObject, Sendable {
    /// Joins the group for these topics. Partitions are assigned before this returns on the embedded
    /// engine, and during the first polls on Kafka.
    func subscribe(_ topics: [String]) async throws

    /// Up to `maxMessages` messages from the assigned partitions, waiting up to `timeout` for the first one
    /// (then, on the embedded log, up to ``ConsumerConfiguration/fetchMaxWait`` for more). Returns an empty
    /// array when nothing arrived in time. Messages of one partition come in offset order.
    func poll(maxMessages: Int, timeout: Duration) async throws -> [ConsumedMessage]

    /// Makes progress durable: for each partition, the offset of the next message to read.
    ///
    /// Throws ``LogError/partitionsRevoked(_:)`` for partitions no longer assigned to this member (after
    /// committing the others): their new owner reprocesses from the last committed offset.
    func commit(_ offsets: [TopicPartition: Int64]) async throws

    /// The group's committed offsets for these partitions (absent when none was committed).
    func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64]

    /// Moves the position of the given partitions, or of every partition of the subscription when `nil`.
    ///
    /// A seek applies to the partitions assigned now and, once, to those assigned later in this session.
    func seek(_ position: SeekPosition, partitions: [TopicPartition]?) async throws

    /// The partitions assigned to this member right now.
    func assignment() async -> Set<TopicPartition>

    /// Leaves the group so its partitions go to the remaining members at once. Does not commit.
    func close() async throws
}

/// Where a seek moves a consumer.
public enum SeekPosition: Sendable, Hashable {
    /// The first retained message.
    case beginning
    /// After the last message (only new messages will be read).
    case end
    /// The first message appended at or after this time.
    case timestamp(Date)
    /// An exact offset.
    case offset(Int64)
}

/// A topic's settings.
public struct TopicSpec: Sendable, Hashable, Codable {
    /// Full topic name, prefix included (for example `tollgate.usage`).
    public var name: String
    /// Number of partitions. Can grow, never shrink (it would move keys between partitions).
    public var partitions: Int
    /// `delete` drops old messages by age and size; `compact` also keeps only the newest message per key.
    public var cleanupPolicy: CleanupPolicy
    /// Messages older than this are deleted (`nil`: kept forever). For compacted topics this applies to
    /// tombstones (null values) only, as Kafka's `delete.retention.ms` does.
    public var retentionMilliseconds: Int64?
    /// Per partition: the oldest messages are deleted once the partition holds more bytes (`nil`: no limit).
    public var retentionBytes: Int64?

    public init(name: String, partitions: Int, cleanupPolicy: CleanupPolicy = .delete,
                retentionMilliseconds: Int64? = nil, retentionBytes: Int64? = nil) {
        self.name = name
        self.partitions = partitions
        self.cleanupPolicy = cleanupPolicy
        self.retentionMilliseconds = retentionMilliseconds
        self.retentionBytes = retentionBytes
    }
}

/// Kafka's `cleanup.policy`.
public enum CleanupPolicy: String, Sendable, Hashable, Codable {
    case delete
    case compact
}

/// A message header: a name and raw bytes, as in Kafka.
public struct MessageHeader: Sendable, Hashable {
    public var name: String
    public var value: Data

    public init(_ name: String, _ value: Data) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) {
        self.init(name, Data(value.utf8))
    }
}

/// A message to append.
public struct OutgoingMessage: Sendable, Hashable {
    public var topic: String
    /// Chooses the partition (murmur2, like Kafka's default partitioner). `nil`: spread over partitions.
    public var key: Data?
    /// `nil` is a tombstone: on a compacted topic it deletes the key.
    public var value: Data?
    public var headers: [MessageHeader]
    /// An explicit partition, overriding the key's.
    public var partition: Int?

    public init(topic: String, key: Data?, value: Data?, headers: [MessageHeader] = [], partition: Int? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    /// A message whose key is the UTF-8 bytes of a string.
    public init(topic: String, key: String, value: Data?, headers: [MessageHeader] = []) {
        self.init(topic: topic, key: Data(key.utf8), value: value, headers: headers)
    }
}

/// Proof that a message is durable in the log.
public struct DeliveryAck: Sendable, Hashable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    /// Milliseconds since the Unix epoch at which the log appended the message.
    public var timestampMilliseconds: Int64

    public init(topic: String, partition: Int, offset: Int64, timestampMilliseconds: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// A message read from the log.
public struct ConsumedMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    /// Milliseconds since the Unix epoch at which the log appended the message.
    public var timestampMilliseconds: Int64
    public var key: Data?
    public var value: Data?
    public var headers: [MessageHeader]

    public init(topic: String, partition: Int, offset: Int64, timestampMilliseconds: Int64,
                key: Data?, value: Data?, headers: [MessageHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
        self.key = key
        self.value = value
        self.headers = headers
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// The value of the first header with this name.
    public func header(_ name: String) -> Data? {
        headers.first { $0.name == name }?.value
    }
}

extension Sequence where Element == ConsumedMessage {
    /// For each partition in the batch, the offset after its last message: what to commit once the
    /// batch has been applied.
    public var nextOffsets: [TopicPartition: Int64] {
        var offsets: [TopicPartition: Int64] = [:]
        for message in self {
            let next = message.offset + 1
            offsets[message.topicPartition] = Swift.max(offsets[message.topicPartition] ?? next, next)
        }
        return offsets
    }
}

/// A partition of a topic.
public struct TopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// The retained range of a partition.
public struct PartitionWatermarks: Sendable, Hashable {
    /// Offset of the first retained message.
    public var low: Int64
    /// Offset the next appended message will get.
    public var high: Int64

    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}

/// Settings of one consumer.
public struct ConsumerConfiguration: Sendable, Hashable {
    /// The consumer group. Members of one group share partitions; each group has its own offsets.
    public var group: String
    /// A stable identity for this member across restarts (Kafka's `group.instance.id`). A member that
    /// rejoins with the same id takes its partitions back at once instead of waiting for the session
    /// timeout of its previous incarnation. Default `nil`: a fresh identity per consumer.
    public var instanceID: String?
    /// Where to start in a partition without a committed offset. Default: `.earliest`.
    public var autoOffsetReset: AutoOffsetReset
    /// A member that has not heart-beaten for this long is considered dead and loses its partitions.
    /// Default 10 s.
    public var sessionTimeout: Duration
    /// How often the member heart-beats. Default 1 s; keep it well under the session timeout.
    public var heartbeatInterval: Duration
    /// With ``fetchMaxWait``, the embedded log's counterpart of Kafka's `fetch.min.bytes` and
    /// `fetch.wait.max.ms`, counted in messages: once a poll has found messages, it waits up to
    /// `fetchMaxWait` (from the first message found) for at least `fetchMinMessages` before it returns
    /// them. At low rates a consumer then applies one batch of many events instead of one transaction per
    /// event. Defaults 1 and zero: return at once. On Kafka, set librdkafka's `fetch.min.bytes` and
    /// `fetch.wait.max.ms` instead.
    public var fetchMinMessages: Int
    public var fetchMaxWait: Duration

    /// The fetch settings of Tollgate's own consumers (cost, budget, alerts, projector): at most 10 ms
    /// more per hop for an event, to gather up to 500 events per batch at low rates.
    public static let serviceFetchMinMessages = 500
    public static let serviceFetchMaxWait: Duration = .milliseconds(10)

    public init(group: String, instanceID: String? = nil, autoOffsetReset: AutoOffsetReset = .earliest,
                sessionTimeout: Duration = .seconds(10), heartbeatInterval: Duration = .seconds(1),
                fetchMinMessages: Int = 1, fetchMaxWait: Duration = .zero) {
        self.group = group
        self.instanceID = instanceID
        self.autoOffsetReset = autoOffsetReset
        self.sessionTimeout = sessionTimeout
        self.heartbeatInterval = heartbeatInterval
        self.fetchMinMessages = fetchMinMessages
        self.fetchMaxWait = fetchMaxWait
    }

    /// This configuration with Tollgate's service fetch settings (``serviceFetchMinMessages``,
    /// ``serviceFetchMaxWait``).
    public func gatheringBatches() -> ConsumerConfiguration {
        var configuration = self
        configuration.fetchMinMessages = Self.serviceFetchMinMessages
        configuration.fetchMaxWait = Self.serviceFetchMaxWait
        return configuration
    }
}

/// Kafka's `auto.offset.reset`.
public enum AutoOffsetReset: String, Sendable, Hashable {
    case earliest
    case latest
}

/// Errors of the message log.
public enum LogError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownTopic(String)
    case invalidPartition(topic: String, partition: Int, partitions: Int)
    case compactedTopicRequiresKey(topic: String)
    case partitionCountCannotShrink(topic: String, existing: Int, requested: Int)
    case invalidTopicSpec(String)
    case notSubscribed
    case closed
    case partitionsRevoked([TopicPartition])
    /// The log will never take this message as it is (too large for the log, a timestamp or record the
    /// broker rejects). Retrying does not help; other messages can still be written.
    case messageRefused(String)
    case storage(String)

    public var description: String {
        switch self {
        case .unknownTopic(let topic):
            return "unknown topic '\(topic)' (provision it first)"
        case .invalidPartition(let topic, let partition, let partitions):
            return "topic '\(topic)' has \(partitions) partitions; partition \(partition) does not exist"
        case .compactedTopicRequiresKey(let topic):
            return "topic '\(topic)' is compacted: every message needs a key"
        case .partitionCountCannotShrink(let topic, let existing, let requested):
            return "topic '\(topic)' has \(existing) partitions; it cannot shrink to \(requested)"
        case .invalidTopicSpec(let reason):
            return "invalid topic spec: \(reason)"
        case .notSubscribed:
            return "the consumer has not subscribed to any topic"
        case .closed:
            return "the log or consumer is closed"
        case .partitionsRevoked(let partitions):
            return "partitions no longer assigned to this member: \(partitions.map(\.description).joined(separator: ", "))"
        case .messageRefused(let reason):
            return "the log refused a message for good: \(reason)"
        case .storage(let reason):
            return "log storage error: \(reason)"
        }
    }
}
