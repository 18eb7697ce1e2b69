/// One topic of the message log: its name, key, size, retention and who writes and reads it.
///
/// The same content is published for other tools as `schemas/topics.json` (described by
/// `schemas/topics.schema.json`); a test holds the two equal. Names are without the configurable
/// prefix (see ``fullName(prefix:)``).
public struct TopicDefinition: Sendable, Hashable, Codable {
    /// What the log does with old messages.
    public enum CleanupPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// Delete messages older than the retention.
        case delete
        /// Keep the newest message per key.
        case compact
    }

    /// A message header the topic's messages carry.
    public struct Header: Sendable, Hashable, Codable {
        /// The header name.
        public var name: String
        /// What the header holds.
        public var description: String

        /// Creates a header description.
        public init(name: String, description: String) {
            self.name = name
            self.description = description
        }

        enum CodingKeys: String, CodingKey {
            case name
            case description
        }
    }

    /// The topic name without prefix, such as `"usage"`.
    public var name: String
    /// What the message key is, in words (such as `"team id"`).
    public var messageKey: String
    /// The number of partitions.
    public var partitions: Int
    /// What the log does with old messages.
    public var cleanupPolicy: CleanupPolicy
    /// How long messages are kept, in milliseconds; `-1` keeps them forever.
    public var retentionMs: Int64
    /// The event types published on the topic (empty for the dead-letter topic, whose values are the
    /// original bytes).
    public var eventTypes: [String]
    /// The service that writes the topic.
    public var producer: String
    /// The services that read it.
    public var consumers: [String]
    /// What the topic is for.
    public var description: String
    /// Headers every message carries, when the topic defines any.
    public var headers: [Header]?

    /// Creates a topic definition.
    public init(
        name: String, messageKey: String, partitions: Int, cleanupPolicy: CleanupPolicy,
        retentionMs: Int64, eventTypes: [String], producer: String, consumers: [String],
        description: String, headers: [Header]? = nil
    ) {
        self.name = name
        self.messageKey = messageKey
        self.partitions = partitions
        self.cleanupPolicy = cleanupPolicy
        self.retentionMs = retentionMs
        self.eventTypes = eventTypes
        self.producer = producer
        self.consumers = consumers
        self.description = description
        self.headers = headers
    }

    /// The topic's name in the log: the prefix followed by the name (`tollgate.usage`).
    public func fullName(prefix: String = TopicCatalog.defaultPrefix) -> String {
        prefix + name
    }

    enum CodingKeys: String, CodingKey {
        case name
        case messageKey = "message_key"
        case partitions
        case cleanupPolicy = "cleanup_policy"
        case retentionMs = "retention_ms"
        case eventTypes = "event_types"
        case producer
        case consumers
        case description
        case headers
    }
}

/// The headers of a message on the dead-letter topic.
///
/// A consumer that cannot process a message (it does not decode, or its fold rejects it) publishes
/// the original bytes to the `deadletter` topic with these headers and moves on.
public enum DeadLetterHeader: String, Sendable, Hashable, CaseIterable {
    /// Why the message was dead-lettered, in words.
    case reason = "tollgate-dlq-reason"
    /// The topic the message came from (full name, with prefix).
    case topic = "tollgate-dlq-topic"
    /// The partition it came from, in decimal.
    case partition = "tollgate-dlq-partition"
    /// Its offset there, in decimal.
    case offset = "tollgate-dlq-offset"
    /// The consumer group that gave up on it.
    case group = "tollgate-dlq-group"
}

/// The whole topic catalog as `schemas/topics.json` writes it.
public struct TopicCatalogDocument: Sendable, Hashable, Codable {
    /// The default topic name prefix, `"tollgate."`.
    public var prefixDefault: String
    /// The topics.
    public var topics: [TopicDefinition]

    /// Creates a catalog document.
    public init(prefixDefault: String, topics: [TopicDefinition]) {
        self.prefixDefault = prefixDefault
        self.topics = topics
    }

    enum CodingKeys: String, CodingKey {
        case prefixDefault = "prefix_default"
        case topics
    }
}

/// Every topic of the message log.
///
/// Traffic topics are keyed by team id so all of a team's events stay in order on one partition;
/// compacted topics are keyed by the entity whose latest state they hold. The control topic has a
/// single partition so that all control changes are totally ordered.
public enum TopicCatalog {
    /// The default prefix of topic names, `"tollgate."`.
    public static let defaultPrefix = "tollgate."

    private static let day: Int64 = 86_400_000

    /// Every topic, in `schemas/topics.json` order.
    public static let all: [TopicDefinition] = [
        TopicDefinition(
            name: "requests", messageKey: "team id", partitions: 8, cleanupPolicy: .delete,
            retentionMs: 7 * day, eventTypes: [RequestData.eventType], producer: "ingress",
            consumers: ["projector"],
            description:
                "Requests admitted by ingress, before they are forwarded upstream: in-flight tracking, audit and early reservation."
        ),
        TopicDefinition(
            name: "responses", messageKey: "team id", partitions: 8, cleanupPolicy: .delete,
            retentionMs: 7 * day, eventTypes: [ResponseData.eventType], producer: "ingress",
            consumers: ["cost"],
            description:
                "Finished requests with tokens by class, status and timings; self-contained so that cost can price each alone."
        ),
        TopicDefinition(
            name: "usage", messageKey: "team id", partitions: 8, cleanupPolicy: .delete,
            retentionMs: 30 * day, eventTypes: [UsageData.eventType], producer: "cost",
            consumers: ["budget", "alerts", "projector", "router"],
            description:
                "Priced responses: the response plus its cost by token class. The topic for your own consumers."
        ),
        TopicDefinition(
            name: "budget-decisions", messageKey: "budget_id", partitions: 4,
            cleanupPolicy: .compact, retentionMs: -1, eventTypes: [BudgetDecisionData.eventType],
            producer: "budget", consumers: ["ingress", "alerts", "projector"],
            description:
                "The current state of every budget (spent, remaining, action, downgrade map, watermark); compacted to the latest decision per budget."
        ),
        TopicDefinition(
            name: "alerts", messageKey: "alert_id", partitions: 4, cleanupPolicy: .delete,
            retentionMs: 30 * day, eventTypes: [AlertData.eventType], producer: "alerts",
            consumers: ["projector"],
            description:
                "Alerts raised (budget thresholds, burn rate, spikes, unpriced models), keyed by their deterministic id for de-duplication."
        ),
        TopicDefinition(
            name: "control",
            messageKey: "entity id: key:<key_id>, budget:<budget_id>, route:<route_id> or alert_rule:<rule_id>",
            partitions: 1, cleanupPolicy: .compact, retentionMs: -1,
            eventTypes: AnyControlEvent.eventTypes, producer: "admin",
            consumers: ["ingress", "cost", "budget", "alerts", "projector", "query"],
            description:
                "Keys (hash only, never the secret), budgets, routes and alert rules; one partition so all control changes are totally ordered, compacted to the latest event per entity. Every service folds it at start."
        ),
        TopicDefinition(
            name: "deadletter", messageKey: "source topic and partition: <topic>:<partition>",
            partitions: 1, cleanupPolicy: .delete, retentionMs: 30 * day, eventTypes: [],
            producer: "runner", consumers: [],
            description:
                "Messages a consumer could not process; the value is the original bytes, the headers say where it came from and why. Read by operators for inspection and replay.",
            headers: [
                .init(name: DeadLetterHeader.reason.rawValue, description: "why the message was dead-lettered"),
                .init(name: DeadLetterHeader.topic.rawValue, description: "the source topic, with prefix"),
                .init(name: DeadLetterHeader.partition.rawValue, description: "the source partition, in decimal"),
                .init(name: DeadLetterHeader.offset.rawValue, description: "the source offset, in decimal"),
                .init(name: DeadLetterHeader.group.rawValue, description: "the consumer group that gave up"),
            ]
        ),
    ]

    /// The whole catalog as `schemas/topics.json` writes it.
    public static let document = TopicCatalogDocument(prefixDefault: defaultPrefix, topics: all)

    /// The topic with this name (without prefix), or `nil`.
    public static func named(_ name: String) -> TopicDefinition? {
        all.first { $0.name == name }
    }

    /// The topic an event type is published on, or `nil` if no topic carries it.
    public static func topic(forEventType eventType: String) -> TopicDefinition? {
        all.first { $0.eventTypes.contains(eventType) }
    }
}
