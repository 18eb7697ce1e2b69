import CRdKafka
import Foundation
public import Logging
import Synchronization

/// The Kafka engine of ``MessageLog``, over librdkafka.
///
/// One idempotent producer (`acks=all`, keys partitioned with murmur2 like Kafka's Java client) is shared
/// by every `produce` call; a dedicated thread serves its delivery reports, which resume the waiting
/// calls. Each ``makeConsumer(_:)`` creates its own librdkafka consumer in the given group. Metadata,
/// watermark and admin requests block, so they run on a dispatch queue, never on Swift's cooperative pool.
///
/// Against librdkafka's mock cluster (pass it as `mockCluster`), topics are created through the mock API
/// since the mock has no admin API; against a real cluster, ``provision(_:)`` uses CreateTopics and
/// CreatePartitions.
///
/// ```swift
/// let log = try KafkaLog(configuration: KafkaConfiguration(brokers: ["localhost:9092"]))
/// try await log.provision([TopicSpec(name: "tollgate.usage", partitions: 12)])
/// let ack = try await log.produce(OutgoingMessage(topic: "tollgate.usage", key: "team-a", value: payload))
/// ```
public final class KafkaLog: MessageLog {
    public let configuration: KafkaConfiguration
    let logger: Logger
    /// Kept alive as long as the log and its consumers, which reach it through this reference.
    let mockCluster: KafkaMockCluster?
    private let producer: ProducerHandle
    /// Partition counts of known topics, refreshed from metadata when a topic is missing.
    private let partitionCounts = Mutex<[String: Int]>([:])
    /// Specs this log provisioned: the mock cannot report topic configs, so `topics()` uses these.
    private let provisioned = Mutex<[String: TopicSpec]>([:])

    /// Connects to the cluster named by `configuration`. Pass `mockCluster` when the brokers are
    /// librdkafka's mock cluster, so that provisioning uses the mock API.
    public init(configuration: KafkaConfiguration, mockCluster: KafkaMockCluster? = nil,
                logger: Logger = Logger(label: "tollgate.log.kafka")) throws {
        self.configuration = configuration
        self.mockCluster = mockCluster
        self.logger = logger
        producer = try ProducerHandle(configuration: configuration, mockCluster: mockCluster, logger: logger)
        producer.startPolling()
    }

    deinit {
        producer.stopPolling()
    }

    /// Waits until every message produced so far is delivered (or failed), up to `timeout`.
    public func flush(timeout: Duration = .seconds(10)) async throws {
        let producer = self.producer
        let code = try await RdKafka.blocking { rd_kafka_flush(producer.client, timeout.wholeMilliseconds) }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw LogError.storage("Kafka flush did not finish: \(RdKafka.describe(code))")
        }
    }

    // MARK: Topics

    /// Creates missing topics (with cleanup policy and retention) and adds partitions to existing ones.
    ///
    /// Not yet: changing the cleanup policy or retention of an existing topic (AlterConfigs). On the mock
    /// cluster, topics are created through the mock API, which cannot add partitions or set configs.
    public func provision(_ specs: [TopicSpec]) async throws {
        for spec in specs where spec.name.isEmpty || spec.partitions < 1 {
            throw LogError.invalidTopicSpec("topic '\(spec.name)' needs a name and at least one partition")
        }
        let existing = try await refreshPartitionCounts()
        var create: [TopicSpec] = []
        var grow: [TopicSpec] = []
        for spec in specs {
            guard let partitions = existing[spec.name] else {
                create.append(spec)
                continue
            }
            if spec.partitions < partitions {
                throw LogError.partitionCountCannotShrink(topic: spec.name, existing: partitions,
                                                          requested: spec.partitions)
            }
            if spec.partitions > partitions { grow.append(spec) }
        }
        if let mockCluster {
            if let spec = grow.first {
                throw LogError.invalidTopicSpec("the mock cluster cannot add partitions to '\(spec.name)'")
            }
            for spec in create { try mockCluster.createTopic(name: spec.name, partitions: spec.partitions) }
        } else if !create.isEmpty || !grow.isEmpty {
            let admin = KafkaAdmin(client: producer.client, timeout: configuration.requestTimeout)
            let toCreate = create
            let toGrow = grow
            try await RdKafka.blocking {
                try admin.createTopics(toCreate)
                try admin.createPartitions(toGrow)
            }
        }
        provisioned.withLock { known in for spec in specs { known[spec.name] = spec } }
        logger.debug("provisioned topics", metadata: ["kafka.topics": "\(specs.map(\.name))"])
        _ = try await refreshPartitionCounts()
    }

    /// The cluster's topics. Cleanup policy and retention are those this log provisioned (`delete` and
    /// none for others): reading topic configs needs DescribeConfigs, which is not wired up yet.
    public func topics() async throws -> [TopicSpec] {
        let counts = try await refreshPartitionCounts()
        let known = provisioned.withLock { $0 }
        return counts.map { name, partitions in
            var spec = known[name] ?? TopicSpec(name: name, partitions: partitions)
            spec.partitions = partitions
            return spec
        }.sorted { $0.name < $1.name }
    }

    public func watermarks(topic: String) async throws -> [Int: PartitionWatermarks] {
        guard let partitions = try await refreshPartitionCounts()[topic] else { throw LogError.unknownTopic(topic) }
        let producer = self.producer
        let timeout = configuration.requestTimeout
        return try await RdKafka.blocking {
            var result: [Int: PartitionWatermarks] = [:]
            for partition in 0..<partitions {
                result[partition] = try RdKafka.watermarks(
                    producer.client, TopicPartition(topic: topic, partition: partition), timeout: timeout)
            }
            return result
        }
    }

    @discardableResult
    private func refreshPartitionCounts() async throws -> [String: Int] {
        let producer = self.producer
        let timeout = configuration.requestTimeout
        let counts = try await RdKafka.blocking { try RdKafka.topicPartitionCounts(producer.client, timeout: timeout) }
        partitionCounts.withLock { $0 = counts }
        return counts
    }

    // MARK: Producing

    public func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck] {
        if messages.isEmpty { return [] }
        try await validate(messages)
        // One create time for the call: its messages are enqueued within microseconds of each other.
        let timestamp = Int64(Date().timeIntervalSince1970 * 1000)
        // Kept alive by this call until every message is settled, so delivery reports can reach it unretained.
        let batch = DeliveryBatch(messages: messages, createTimestamp: timestamp, trustsAppendTime: mockCluster == nil)
        var topic = ""
        var topicCString = ContiguousArray<CChar>()
        for index in messages.indices {
            let message = messages[index]
            if message.topic != topic {
                topic = message.topic
                topicCString = ContiguousArray(topic.utf8CString)
            }
            while true {
                let failure = topicCString.withUnsafeBufferPointer { name in
                    producer.enqueue(message, topic: name.baseAddress!, timestamp: timestamp,
                                     opaque: batch.opaque(index))
                }
                guard let failure else { break }
                if failure.code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // The producer's queue is full: wait for deliveries to make room.
                    try? await Task.sleep(for: .milliseconds(1))
                    continue
                }
                batch.settle(index, .failure(RdKafka.error(failure.code, topic: message.topic, while: "produce")))
                break
            }
        }
        return try await batch.wait()
    }

    /// Checks every target before enqueueing anything, so a bad call writes nothing.
    private func validate(_ messages: [OutgoingMessage]) async throws {
        func check(_ counts: [String: Int]) -> LogError? {
            // Calls usually carry one topic: look it up once per run of equal topics, not once per message.
            var last: (topic: String, partitions: Int)?
            for message in messages {
                let partitions: Int
                if let last, last.topic == message.topic {
                    partitions = last.partitions
                } else {
                    guard let count = counts[message.topic] else { return .unknownTopic(message.topic) }
                    partitions = count
                    last = (message.topic, count)
                }
                if let partition = message.partition, partition < 0 || partition >= partitions {
                    return .invalidPartition(topic: message.topic, partition: partition, partitions: partitions)
                }
            }
            return nil
        }
        guard check(partitionCounts.withLock { $0 }) != nil else { return }
        // Stale or missing metadata: ask the cluster once more before failing.
        if let error = check(try await refreshPartitionCounts()) { throw error }
    }

    // MARK: Consuming

    public func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        try KafkaConsumer(log: self, configuration: configuration)
    }
}

/// The producer's librdkafka handle and the thread that serves its delivery reports.
final class ProducerHandle: @unchecked Sendable {
    // Safe: `client` is set once and freed in deinit, when no other reference exists; librdkafka's
    // producer API is thread-safe. `polling` is atomic.
    let client: OpaquePointer
    private let polling = Atomic<Bool>(true)
    /// Released only after `client` is destroyed, so the client never sees its cluster vanish.
    private let mockCluster: KafkaMockCluster?
    /// Released only after `client` is destroyed: librdkafka's log callback uses it until then.
    private let opaque: ClientOpaque

    init(configuration: KafkaConfiguration, mockCluster: KafkaMockCluster?, logger: Logger) throws {
        self.mockCluster = mockCluster
        let opaque = ClientOpaque(logger: logger)
        self.opaque = opaque
        client = try RdKafka.makeClient(RD_KAFKA_PRODUCER, properties: configuration.producerProperties,
                                        opaque: opaque) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback)
        }
    }

    /// Starts the thread that polls the producer (serving delivery reports) until ``stopPolling()``.
    /// The thread holds the handle: it is freed once the thread ended.
    func startPolling() {
        let thread = Thread { [self] in
            RdKafka.nameCurrentThread("tg-kafka-produce")
            while polling.load(ordering: .acquiring) {
                rd_kafka_poll(client, 100)
            }
        }
        thread.name = "tollgate-kafka-producer"
        thread.start()
    }

    func stopPolling() {
        polling.store(false, ordering: .releasing)
    }

    deinit {
        // Deliver what is still queued (briefly), then free the handle.
        rd_kafka_flush(client, 5_000)
        rd_kafka_destroy(client)
    }

    /// Enqueues one message to the topic named by the C string `topic`; librdkafka copies key, value and
    /// headers (`RD_KAFKA_MSG_F_COPY`). Returns the error when it was not enqueued.
    ///
    /// Key and value are passed straight from their `Data` (no copy of ours); only headers, when there are
    /// any, are gathered into one temporary buffer.
    func enqueue(_ message: OutgoingMessage, topic: UnsafePointer<CChar>, timestamp: Int64,
                 opaque: UnsafeMutableRawPointer) -> (code: rd_kafka_resp_err_t, message: String)? {
        let capacity = 7 + message.headers.count
        return withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: capacity) { values in
            var count = 0
            func append(_ configure: (inout rd_kafka_vu_t) -> Void) {
                var entry = rd_kafka_vu_t()
                configure(&entry)
                values.initializeElement(at: count, to: entry)
                count += 1
            }
            append { $0.vtype = RD_KAFKA_VTYPE_TOPIC; $0.u.cstr = topic }
            append {
                $0.vtype = RD_KAFKA_VTYPE_PARTITION
                $0.u.i32 = message.partition.map { Int32($0) } ?? -1  // -1: RD_KAFKA_PARTITION_UA
            }
            append { $0.vtype = RD_KAFKA_VTYPE_TIMESTAMP; $0.u.i64 = timestamp }
            append { $0.vtype = RD_KAFKA_VTYPE_MSGFLAGS; $0.u.i = RD_KAFKA_MSG_F_COPY }
            append { $0.vtype = RD_KAFKA_VTYPE_OPAQUE; $0.u.ptr = opaque }
            var headerBytes: UnsafeMutableRawPointer?
            defer { headerBytes?.deallocate() }
            if !message.headers.isEmpty {
                // Names (NUL-terminated) and values, one after the other in one buffer.
                let size = message.headers.reduce(0) { $0 + $1.name.utf8.count + 1 + $1.value.count }
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, size), alignment: 1)
                headerBytes = buffer
                var offset = 0
                for header in message.headers {
                    let name = buffer + offset
                    offset += header.name.utf8.count + 1
                    header.name.utf8CString.withUnsafeBytes { name.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    let value = buffer + offset
                    header.value.copyBytes(to: value.assumingMemoryBound(to: UInt8.self), count: header.value.count)
                    offset += header.value.count
                    append {
                        $0.vtype = RD_KAFKA_VTYPE_HEADER
                        $0.u.header.name = UnsafePointer(name.assumingMemoryBound(to: CChar.self))
                        $0.u.header.val = UnsafeRawPointer(value)
                        $0.u.header.size = header.value.count
                    }
                }
            }
            return Self.withBytes(message.key) { key, keySize in
                Self.withBytes(message.value) { value, valueSize in
                    var used = count
                    if let key {
                        var entry = rd_kafka_vu_t()
                        entry.vtype = RD_KAFKA_VTYPE_KEY
                        entry.u.mem.ptr = UnsafeMutableRawPointer(mutating: key)
                        entry.u.mem.size = keySize
                        values.initializeElement(at: used, to: entry)
                        used += 1
                    }
                    if let value {
                        var entry = rd_kafka_vu_t()
                        entry.vtype = RD_KAFKA_VTYPE_VALUE
                        entry.u.mem.ptr = UnsafeMutableRawPointer(mutating: value)
                        entry.u.mem.size = valueSize
                        values.initializeElement(at: used, to: entry)
                        used += 1
                    }
                    return RdKafka.consume(rd_kafka_produceva(client, values.baseAddress, used))
                }
            }
        }
    }

    /// Calls `body` with the bytes of `data`, or nil for no data. The pointer is never null for empty data:
    /// librdkafka tells an empty key or value from a null one by the pointer.
    private static func withBytes<R>(_ data: Data?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
        guard let data else { return body(nil, 0) }
        if data.isEmpty { return withUnsafeBytes(of: UInt8(0)) { body($0.baseAddress!, 0) } }
        return data.withUnsafeBytes { body($0.baseAddress!, $0.count) }
    }
}

/// The delivery-report callback, called on the producer's polling thread once per message.
private func deliveryReportCallback(_ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
                                    _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let pointer = message.pointee._private else { return }
    let (batch, index) = DeliveryBatch.from(pointer)
    let code = message.pointee.err
    guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
        batch.settle(index, .failure(RdKafka.error(code, topic: batch.messages[index].topic, while: "delivery")))
        return
    }
    // The broker's append time for topics with LogAppendTime; otherwise the create time this log set.
    // The mock cluster answers every produce with a made-up append time (1234), so it is not trusted there.
    var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    var timestamp = rd_kafka_message_timestamp(message, &type)
    if type != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME || !batch.trustsAppendTime || timestamp < 0 {
        timestamp = batch.createTimestamp
    }
    batch.settle(index, .success(DeliveryAck(
        topic: batch.messages[index].topic, partition: Int(message.pointee.partition), offset: message.pointee.offset,
        timestampMilliseconds: timestamp)))
}

/// The outcome of one `produce` call: completes when every message of it is settled.
///
/// Each message's librdkafka opaque is the address of its slot in ``slots``, which holds the batch's own
/// (unretained) address: a delivery report finds the batch and the message's index from it without a
/// per-message allocation. The `produce` call keeps the batch alive until every message is settled.
final class DeliveryBatch: @unchecked Sendable {
    // Safe: `slots` is written only in `init` and freed in `deinit`; the other stored properties are
    // immutable, and `state` is behind a mutex.
    private struct State {
        var results: [Result<DeliveryAck, LogError>?]
        var remaining: Int
        var continuation: CheckedContinuation<[DeliveryAck], any Error>?
    }

    /// The messages of the call (their topics name the acknowledgements).
    let messages: [OutgoingMessage]
    /// The messages' create time, set by the log.
    let createTimestamp: Int64
    /// Whether a broker-reported append time is real (it is not on the mock cluster).
    let trustsAppendTime: Bool
    private let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let state: Mutex<State>

    init(messages: [OutgoingMessage], createTimestamp: Int64, trustsAppendTime: Bool) {
        self.messages = messages
        self.createTimestamp = createTimestamp
        self.trustsAppendTime = trustsAppendTime
        slots = .allocate(capacity: max(1, messages.count))
        state = Mutex(State(results: Array(repeating: nil, count: messages.count), remaining: messages.count))
        slots.initialize(repeating: Unmanaged.passUnretained(self).toOpaque(), count: max(1, messages.count))
    }

    deinit {
        slots.deallocate()
    }

    /// The librdkafka opaque of message `index`.
    func opaque(_ index: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(slots + index)
    }

    /// The batch and message index of an opaque made by ``opaque(_:)``.
    static func from(_ opaque: UnsafeMutableRawPointer) -> (DeliveryBatch, Int) {
        let slot = opaque.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        let batch = Unmanaged<DeliveryBatch>.fromOpaque(slot.pointee!).takeUnretainedValue()
        return (batch, slot - batch.slots)
    }
    func settle(_ index: Int, _ result: Result<DeliveryAck, LogError>) {
        let finished = state.withLock { state -> (CheckedContinuation<[DeliveryAck], any Error>, Result<[DeliveryAck], any Error>)? in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            return (continuation, Self.outcome(state.results))
        }
        if let (continuation, outcome) = finished { continuation.resume(with: outcome) }
    }

    func wait() async throws -> [DeliveryAck] {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> Result<[DeliveryAck], any Error>? in
                if state.remaining == 0 { return Self.outcome(state.results) }
                state.continuation = continuation
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// The acknowledgements in order, or the first message's error.
    private static func outcome(_ results: [Result<DeliveryAck, LogError>?]) -> Result<[DeliveryAck], any Error> {
        var acks: [DeliveryAck] = []
        for result in results {
            switch result {
            case .success(let ack): acks.append(ack)
            case .failure(let error): return .failure(error)
            case nil: return .failure(LogError.storage("a delivery report is missing"))
            }
        }
        return .success(acks)
    }
}
