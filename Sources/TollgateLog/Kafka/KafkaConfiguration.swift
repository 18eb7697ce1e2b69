import Foundation

/// Settings of a ``KafkaLog``.
///
/// The defaults suit a real cluster; ``KafkaMockCluster/configuration(clientID:)`` returns settings tuned
/// for librdkafka's in-process mock cluster. Any librdkafka property can be set or overridden by name in
/// ``properties`` (security settings such as `security.protocol`, `sasl.*` and `ssl.*` go there too).
///
/// ```swift
/// var configuration = KafkaConfiguration(brokers: ["kafka-1:9092", "kafka-2:9092"])
/// configuration.properties["security.protocol"] = "sasl_ssl"
/// let log = try KafkaLog(configuration: configuration)
/// ```
public struct KafkaConfiguration: Sendable, Hashable {
    /// Bootstrap brokers as `host:port` (librdkafka `bootstrap.servers`). No default.
    public var brokers: [String]
    /// Client id sent to the brokers (`client.id`). Default `tollgate`.
    public var clientID: String
    /// Producer compression (`compression.codec`). Default `.lz4`.
    public var compression: Compression
    /// How long the producer waits to fill a batch (`linger.ms`). Default 5 ms: low latency, still batching.
    public var linger: Duration
    /// How long a broker may hold an empty fetch (`fetch.wait.max.ms`). Default 100 ms. The mock cluster
    /// is not woken by new data, so it needs about 10 ms.
    public var fetchWaitMaximum: Duration
    /// How long a produced message may wait for delivery before it fails (`message.timeout.ms`).
    /// Default 30 s.
    public var deliveryTimeout: Duration
    /// Time limit of metadata, watermark, commit and admin requests. Default 10 s.
    public var requestTimeout: Duration
    /// Largest message the producer accepts (`message.max.bytes`). Default 4 MiB.
    public var maximumMessageBytes: Int
    /// Messages a consumer buffers ahead of its `poll` calls. While that many wait, it takes no more from
    /// librdkafka and serves no rebalance until the application polls again. Default 10,000.
    public var consumerBufferLimit: Int
    /// Extra librdkafka properties by name, applied last to producers, consumers and admin clients, so
    /// they override every setting above. Default empty.
    public var properties: [String: String]

    public init(brokers: [String], clientID: String = "tollgate", compression: Compression = .lz4,
                linger: Duration = .milliseconds(5), fetchWaitMaximum: Duration = .milliseconds(100),
                deliveryTimeout: Duration = .seconds(30), requestTimeout: Duration = .seconds(10),
                maximumMessageBytes: Int = 4 << 20, consumerBufferLimit: Int = 10_000,
                properties: [String: String] = [:]) {
        self.brokers = brokers
        self.clientID = clientID
        self.compression = compression
        self.linger = linger
        self.fetchWaitMaximum = fetchWaitMaximum
        self.deliveryTimeout = deliveryTimeout
        self.requestTimeout = requestTimeout
        self.maximumMessageBytes = maximumMessageBytes
        self.consumerBufferLimit = consumerBufferLimit
        self.properties = properties
    }

    /// Producer compression codecs.
    public enum Compression: String, Sendable, Hashable {
        case none
        case lz4
        case zstd
    }
}

extension KafkaConfiguration {
    /// Properties shared by every client.
    var commonProperties: [(String, String)] {
        [
            ("bootstrap.servers", brokers.joined(separator: ",")),
            ("client.id", clientID),
            ("allow.auto.create.topics", "false"),
        ]
    }

    /// The largest key, value and headers together that ``KafkaLog`` hands to librdkafka:
    /// ``maximumMessageBytes``, or a smaller `message.max.bytes` given in ``properties``. librdkafka's own
    /// limit is 64 KiB higher (room for the record's framing), so it never refuses what this lets through.
    var messagePayloadLimit: Int {
        guard let text = properties["message.max.bytes"], let value = Int(text) else { return maximumMessageBytes }
        return min(maximumMessageBytes, value - (64 << 10))
    }

    /// The producer's properties: idempotent, every in-sync replica acknowledges, keys partitioned like
    /// Kafka's Java client.
    var producerProperties: [(String, String)] {
        commonProperties + [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "\(linger.wholeMilliseconds)"),
            ("compression.codec", compression.rawValue),
            ("partitioner", "murmur2_random"),
            ("message.timeout.ms", "\(deliveryTimeout.wholeMilliseconds)"),
            ("message.max.bytes", "\(maximumMessageBytes + (64 << 10))"),
        ] + properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// How many messages a consumer's prefetch queue may hold (`queued.min.messages`, librdkafka's default
    /// 100,000). librdkafka 2.0.2, Debian bookworm's, stops fetching once the queue reaches it and starts
    /// again only at its broker thread's next one-second wake-up (2.2 added `fetch.queue.backoff.ms` for
    /// this): a consumer that drains the queue a little slower than the fetcher fills it stalls once a
    /// second. At a million the count is never the limit; `queued.max.messages.kbytes` (64 MiB by default)
    /// still bounds the queue's memory. `tollgate bench kafka`, KafkaConsumer against raw librdkafka with
    /// the same properties: 23–45 % of raw at 100,000, 94–100 % at a million (109 % for 2 KB values).
    static let prefetchMessages = 1_000_000

    /// A consumer's properties: explicit commits only, eager rebalancing handled by our callback.
    func consumerProperties(_ consumer: ConsumerConfiguration) -> [(String, String)] {
        var result = commonProperties + [
            ("group.id", consumer.group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", consumer.autoOffsetReset.rawValue),
            ("session.timeout.ms", "\(consumer.sessionTimeout.wholeMilliseconds)"),
            ("heartbeat.interval.ms", "\(consumer.heartbeatInterval.wholeMilliseconds)"),
            ("fetch.wait.max.ms", "\(fetchWaitMaximum.wholeMilliseconds)"),
            ("partition.assignment.strategy", "range,roundrobin"),
            ("queued.min.messages", "\(Self.prefetchMessages)"),
        ]
        if let instance = consumer.instanceID { result.append(("group.instance.id", instance)) }
        return result + properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension KafkaConfiguration {
    /// A group-less consumer that reads single messages by assignment (timestamp lookups on the mock).
    var readerProperties: [(String, String)] {
        commonProperties + [
            ("group.id", "tollgate-reader"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("fetch.wait.max.ms", "\(fetchWaitMaximum.wholeMilliseconds)"),
            ("log_level", "3"),
        ] + properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension Duration {
    /// Whole milliseconds, at least 0, clamped to `Int32` (librdkafka's millisecond settings are `int`).
    var wholeMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(0, total))
    }
}

extension KafkaConfiguration {
    /// Parts of property names whose values are secrets (SASL and key passwords, PEM keys, OAuth client
    /// secrets and configurations, JAAS settings): never written to an error or a log line.
    static let secretNameParts = ["password", "secret", "pem", "key", "token", "oauthbearer", "jaas", "credential"]

    /// Whether a property's value is a secret, by its name.
    static func isSecret(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return secretNameParts.contains { lowered.contains($0) }
    }

    /// The message for a property librdkafka refused: its name always; its value only when the name does
    /// not say it is a secret, and then not even in librdkafka's own text.
    static func describeRefusal(name: String, value: String, error: String) -> String {
        guard isSecret(name) else { return "librdkafka property \(name)=\(value): \(error)" }
        let scrubbed = value.isEmpty ? error : error.replacingOccurrences(of: value, with: "<redacted>")
        return "librdkafka property \(name) (value redacted): \(scrubbed)"
    }
}
