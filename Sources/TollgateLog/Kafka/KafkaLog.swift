import CRdKafka
import DequeModule
import Foundation
public import Logging
public import Metrics
import Synchronization

/// The Kafka engine of ``MessageLog``, over librdkafka.
///
/// One idempotent producer (`acks=all`, keys partitioned with murmur2 like Kafka's Java client) is shared
/// by every `produce` call. A call hands its messages to the producer's own thread, which enqueues them
/// and serves the delivery reports that resume the waiting calls (``ProducerHandle``). Each
/// ``makeConsumer(_:)`` creates its own librdkafka consumer in the given group. Metadata, watermark and
/// admin requests block, so they run on a dispatch queue, never on Swift's cooperative pool.
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
    ///
    /// Meters (through `metricsFactory`, swift-metrics' global factory by default):
    /// `tollgate_kafka_produced_total{result}` counts messages acknowledged (`delivered`) or failed
    /// (`failed`: refused by librdkafka or the broker, or timed out), and
    /// `tollgate_kafka_producer_queue_messages` samples, about once a second, the messages and requests
    /// librdkafka holds that the cluster has not acknowledged yet.
    public init(configuration: KafkaConfiguration, mockCluster: KafkaMockCluster? = nil,
                logger: Logger = Logger(label: "tollgate.log.kafka"),
                metricsFactory: any MetricsFactory = MetricsSystem.factory) throws {
        self.configuration = configuration
        self.mockCluster = mockCluster
        self.logger = logger
        producer = try ProducerHandle(configuration: configuration, mockCluster: mockCluster, logger: logger,
                                      metrics: ProducerMetrics(factory: metricsFactory))
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
        let batch = DeliveryBatch(count: messages.count, createTimestamp: timestamp,
                                  trustsAppendTime: mockCluster == nil)
        producer.submit(ProduceSubmission(messages: messages, timestamp: timestamp, batch: batch))
        await batch.wait()
        let (result, failed) = batch.outcome(messages)
        if failed > 0 { producer.metrics.failed.increment(by: failed) }
        if failed < messages.count { producer.metrics.delivered.increment(by: messages.count - failed) }
        return try result.get()
    }

    /// Checks every target and size before enqueueing anything, so a bad call writes nothing.
    private func validate(_ messages: [OutgoingMessage]) async throws {
        let limit = configuration.messagePayloadLimit
        try messages.withUnsafeBufferPointer { messages in
            for index in messages.indices {
                var size = (messages[index].key?.count ?? 0) + (messages[index].value?.count ?? 0)
                for header in messages[index].headers { size += header.name.utf8.count + header.value.count + 10 }
                if size > limit {
                    throw LogError.messageRefused(
                        "a message of \(size) bytes (key, value and headers) for '\(messages[index].topic)' is over "
                            + "the producer's limit of \(limit) bytes (KafkaConfiguration.maximumMessageBytes)")
                }
            }
        }
        func check(_ counts: [String: Int]) -> LogError? {
            // Calls usually carry one topic: look it up once per run of equal topics, not once per message.
            // Fields are read in place (no copy of each message, so no reference counting per message).
            messages.withUnsafeBufferPointer { messages in
                var topic = ""
                var partitions = -1
                for index in messages.indices {
                    if partitions < 0 || messages[index].topic != topic {
                        topic = messages[index].topic
                        guard let count = counts[topic] else { return .unknownTopic(topic) }
                        partitions = count
                    }
                    if let partition = messages[index].partition, partition < 0 || partition >= partitions {
                        return .invalidPartition(topic: topic, partition: partition, partitions: partitions)
                    }
                }
                return nil
            }
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

/// The producer's librdkafka handle and its thread.
///
/// One thread does all of the producer's work, as a C program's produce loop would: it enqueues the
/// submitted calls' messages into librdkafka and serves the delivery reports (`rd_kafka_poll`) in between.
/// Messages are then allocated and freed by librdkafka on the same thread (no contention on malloc's
/// arenas between the thread that copies a message in and the one that frees it after its report), and
/// no two callers contend for librdkafka's partition locks. A `produce` call only hands its messages
/// over and awaits its ``DeliveryBatch``; it never runs a librdkafka call on Swift's cooperative pool.
final class ProducerHandle: @unchecked Sendable {
    // Safe: `client` and `mainQueue` are set once and freed in deinit, when no other reference exists;
    // librdkafka's producer API is thread-safe. `running` is atomic and `inbox` behind a mutex; the
    // thread's own state lives in its closure.
    let client: OpaquePointer
    /// The queue `rd_kafka_poll` serves, yielded to wake the thread when work arrives.
    private let mainQueue: OpaquePointer
    private let running = Atomic<Bool>(true)
    /// Calls handed over and not yet taken by the thread; `closed` once the thread stopped.
    private let inbox = Mutex<(submissions: [ProduceSubmission], closed: Bool)>(([], false))
    /// Released only after `client` is destroyed, so the client never sees its cluster vanish.
    private let mockCluster: KafkaMockCluster?
    /// Released only after `client` is destroyed: librdkafka's log callback uses it until then.
    private let opaque: ClientOpaque

    /// Messages the thread enqueues before it serves delivery reports and looks for new calls again
    /// (librdkafka's own `rdkafka_performance` polls after every message; raw loops in the benchmark every
    /// 1,000).
    static let enqueueRun = 1_000
    /// Milliseconds the thread waits in `rd_kafka_poll` with nothing to enqueue (or no room). Delivery
    /// reports, new calls and stopping all end the wait early.
    static let idleWait: Int32 = 1_000

    let metrics: ProducerMetrics

    init(configuration: KafkaConfiguration, mockCluster: KafkaMockCluster?, logger: Logger,
         metrics: ProducerMetrics) throws {
        self.mockCluster = mockCluster
        self.metrics = metrics
        let opaque = ClientOpaque(logger: logger)
        self.opaque = opaque
        client = try RdKafka.makeClient(RD_KAFKA_PRODUCER, properties: configuration.producerProperties,
                                        opaque: opaque) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback)
        }
        mainQueue = rd_kafka_queue_get_main(client)
    }

    /// Starts the producer thread, which runs until ``stopPolling()``. The thread holds the handle: it is
    /// freed once the thread ended.
    func startPolling() {
        let thread = Thread { [self] in
            RdKafka.nameCurrentThread("tg-kafka-produce")
            var scratch = EnqueueScratch()
            defer { scratch.free() }
            var pending = Deque<ProduceSubmission>()
            let clock = ContinuousClock()
            var sampled = clock.now.advanced(by: .seconds(-60))
            while running.load(ordering: .acquiring) {
                if clock.now - sampled >= .seconds(1) {
                    sampled = clock.now
                    metrics.queued.record(Int(rd_kafka_outq_len(client)))
                }
                let arrived = inbox.withLock { inbox -> [ProduceSubmission] in
                    guard !inbox.submissions.isEmpty else { return [] }
                    defer { inbox.submissions = [] }
                    return inbox.submissions
                }
                pending.append(contentsOf: arrived)
                // Enqueue one run of the oldest call; calls are enqueued in the order they were handed over.
                var queueFull = false
                if let oldest = pending.first {
                    switch enqueue(oldest, upTo: Self.enqueueRun, scratch: &scratch) {
                    case .done:
                        pending.removeFirst()
                    case .more:
                        break
                    case .queueFull:
                        queueFull = true
                    }
                }
                // Serve delivery reports. With work waiting and room in the queue, do not block; otherwise
                // wait for a report (room), a new call or a stop, which yield the queue. The timeout only
                // bounds the wait should a wake-up ever be missed.
                rd_kafka_poll(client, !pending.isEmpty && !queueFull ? 0 : Self.idleWait)
            }
            // Stopped (the log is gone, so no call is waiting): fail whatever was never enqueued.
            let left = inbox.withLock { inbox -> [ProduceSubmission] in
                inbox.closed = true
                defer { inbox.submissions = [] }
                return inbox.submissions
            }
            for submission in pending + left { submission.fail(RD_KAFKA_RESP_ERR__DESTROY) }
        }
        thread.name = "tollgate-kafka-producer"
        thread.start()
    }

    func stopPolling() {
        running.store(false, ordering: .releasing)
        rd_kafka_queue_yield(mainQueue)
    }

    /// Hands a call's messages to the producer thread, which settles each in the call's batch.
    func submit(_ submission: ProduceSubmission) {
        let closed = inbox.withLock { inbox in
            if !inbox.closed { inbox.submissions.append(submission) }
            return inbox.closed
        }
        if closed {
            submission.fail(RD_KAFKA_RESP_ERR__DESTROY)
        } else {
            // Wakes the thread if it waits in `rd_kafka_poll`; if it does not, its next poll returns at once.
            rd_kafka_queue_yield(mainQueue)
        }
    }

    deinit {
        // Deliver what is still queued (briefly), then free the handle.
        rd_kafka_flush(client, 5_000)
        rd_kafka_queue_destroy(mainQueue)
        rd_kafka_destroy(client)
    }

    enum EnqueueProgress { case done, more, queueFull }

    /// Enqueues up to `limit` more of `submission`'s messages, in order; librdkafka copies key, value and
    /// headers (`RD_KAFKA_MSG_F_COPY`). A message librdkafka refuses for good is settled as failed.
    /// Producer thread only.
    ///
    /// Key and value are passed straight from their `Data` (no copy of ours); headers, when there are any,
    /// are gathered into the thread's scratch buffer.
    private func enqueue(_ submission: ProduceSubmission, upTo limit: Int, scratch: inout EnqueueScratch)
        -> EnqueueProgress {
        let values = scratch.entries(capacity: 7 + submission.maximumHeaders)
        // Entries 0-4 are the same shape for every message; 0 (topic), 1 (partition) and 4 (opaque) change.
        values[0].vtype = RD_KAFKA_VTYPE_TOPIC
        values[1].vtype = RD_KAFKA_VTYPE_PARTITION
        values[2].vtype = RD_KAFKA_VTYPE_TIMESTAMP
        values[2].u.i64 = submission.timestamp
        values[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        values[3].u.i = RD_KAFKA_MSG_F_COPY
        values[4].vtype = RD_KAFKA_VTYPE_OPAQUE
        let batch = submission.batch
        // The position is kept in a local while enqueueing: a stored property of a class would be checked
        // for exclusive access on every message.
        var next = submission.next
        defer { submission.next = next }
        let end = min(next + limit, submission.messages.count)
        return submission.messages.withUnsafeBufferPointer { messages in
            while next < end {
                let index = next
                var count = 5
                values[0].u.cstr = submission.topicCString(at: index)
                values[1].u.i32 = messages[index].partition.map { Int32($0) } ?? -1  // -1: RD_KAFKA_PARTITION_UA
                values[4].u.ptr = batch.opaque(index)
                if !messages[index].headers.isEmpty {
                    scratch.gather(messages[index].headers, into: values + count)
                    count += messages[index].headers.count
                }
                // Key and value are read in place (no copy of the `Data`, so no reference counting).
                let failure = messages[index].key.withProducerBytes { key, keySize in
                    messages[index].value.withProducerBytes { value, valueSize in
                        var used = count
                        if let key {
                            values[used].vtype = RD_KAFKA_VTYPE_KEY
                            values[used].u.mem.ptr = UnsafeMutableRawPointer(mutating: key)
                            values[used].u.mem.size = keySize
                            used += 1
                        }
                        if let value {
                            values[used].vtype = RD_KAFKA_VTYPE_VALUE
                            values[used].u.mem.ptr = UnsafeMutableRawPointer(mutating: value)
                            values[used].u.mem.size = valueSize
                            used += 1
                        }
                        return rd_kafka_produceva(client, values, used)
                    }
                }
                if let failure {
                    let code = rd_kafka_error_code(failure)
                    rd_kafka_error_destroy(failure)
                    if code == RD_KAFKA_RESP_ERR__QUEUE_FULL { return .queueFull }
                    batch.settle(index, failed: code, whileProducing: true)
                }
                next += 1
            }
            return next == messages.count ? .done : .more
        }
    }
}

extension Optional where Wrapped == Data {
    /// Calls `body` with the bytes of the data, or nil for no data. The pointer is never null for empty
    /// data: librdkafka tells an empty key or value from a null one by the pointer.
    fileprivate func withProducerBytes<R>(_ body: (UnsafeRawPointer?, Int) -> R) -> R {
        switch self {
        case .none: return body(nil, 0)
        case .some(let data) where data.isEmpty: return withUnsafeBytes(of: UInt8(0)) { body($0.baseAddress!, 0) }
        case .some(let data): return data.withUnsafeBytes { body($0.baseAddress!, $0.count) }
        }
    }
}

/// One `produce` call handed to the producer thread: its messages, how far they are enqueued, and the
/// batch their delivery reports settle.
final class ProduceSubmission: @unchecked Sendable {
    // Safe: after `submit`, only the producer thread touches `next` and the topic cache; the rest is
    // immutable.
    let messages: [OutgoingMessage]
    let timestamp: Int64
    let batch: DeliveryBatch
    /// The most headers any one message has (sizes the thread's entry buffer).
    let maximumHeaders: Int
    /// The next message to enqueue.
    var next = 0
    /// Whether every message has the first message's topic (the usual case): then its C string serves all.
    private let singleTopic: Bool
    private var topic: String
    /// `topic` as a C string, owned by this submission.
    private var topicCString: UnsafeMutablePointer<CChar>

    init(messages: [OutgoingMessage], timestamp: Int64, batch: DeliveryBatch) {
        self.messages = messages
        self.timestamp = timestamp
        self.batch = batch
        var maximumHeaders = 0
        var singleTopic = true
        let first = messages.first?.topic ?? ""
        messages.withUnsafeBufferPointer { messages in
            for index in messages.indices {
                maximumHeaders = max(maximumHeaders, messages[index].headers.count)
                if singleTopic && messages[index].topic != first { singleTopic = false }
            }
        }
        self.maximumHeaders = maximumHeaders
        self.singleTopic = singleTopic
        topic = first
        topicCString = Self.cString(first)
    }

    deinit {
        topicCString.deallocate()
    }

    private static func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let bytes = string.utf8CString
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        bytes.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: $0.count) }
        return pointer
    }

    /// Message `index`'s topic as a C string, valid until the next call; converted once per run of
    /// messages with the same topic. Producer thread only.
    func topicCString(at index: Int) -> UnsafePointer<CChar> {
        if !singleTopic && messages[index].topic != topic {
            topic = messages[index].topic
            topicCString.deallocate()
            topicCString = Self.cString(topic)
        }
        return UnsafePointer(topicCString)
    }

    /// Settles every message not yet enqueued as failed with `code`.
    func fail(_ code: rd_kafka_resp_err_t) {
        while next < messages.count {
            batch.settle(next, failed: code, whileProducing: true)
            next += 1
        }
    }
}

/// The producer thread's reusable buffers: `rd_kafka_vu_t` entries, and header names (NUL-terminated)
/// and values for `rd_kafka_produceva`, which copies them.
private struct EnqueueScratch {
    private var entryBuffer: UnsafeMutablePointer<rd_kafka_vu_t>?
    private var entryCapacity = 0
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    /// At least `count` entries (contents undefined).
    mutating func entries(capacity count: Int) -> UnsafeMutablePointer<rd_kafka_vu_t> {
        if let entryBuffer, entryCapacity >= count { return entryBuffer }
        entryBuffer?.deallocate()
        entryCapacity = max(count, 16)
        let entries = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: entryCapacity)
        entries.initialize(repeating: rd_kafka_vu_t(), count: entryCapacity)
        entryBuffer = entries
        return entries
    }

    /// Copies `headers` into the buffer and writes one `RD_KAFKA_VTYPE_HEADER` entry per header at `entries`.
    mutating func gather(_ headers: [MessageHeader], into entries: UnsafeMutablePointer<rd_kafka_vu_t>) {
        let size = headers.reduce(0) { $0 + $1.name.utf8.count + 1 + $1.value.count }
        if size > capacity {
            buffer?.deallocate()
            capacity = max(size, 2 * capacity, 256)
            buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        }
        guard let buffer else { return }
        var offset = 0
        for (index, header) in headers.enumerated() {
            let name = buffer + offset
            offset += header.name.utf8.count + 1
            header.name.utf8CString.withUnsafeBytes { name.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let value = buffer + offset
            header.value.copyBytes(to: value.assumingMemoryBound(to: UInt8.self), count: header.value.count)
            offset += header.value.count
            entries[index].vtype = RD_KAFKA_VTYPE_HEADER
            entries[index].u.header.name = UnsafePointer(name.assumingMemoryBound(to: CChar.self))
            entries[index].u.header.val = UnsafeRawPointer(value)
            entries[index].u.header.size = header.value.count
        }
    }

    func free() {
        buffer?.deallocate()
        entryBuffer?.deallocate()
    }
}

/// The delivery-report callback, called on the producer's polling thread once per message.
private func deliveryReportCallback(_ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
                                    _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let pointer = message.pointee._private else { return }
    DeliveryBatch.withBatch(of: pointer) { batch, index in
        let code = message.pointee.err
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            batch.settle(index, failed: code, whileProducing: false)
            return
        }
        // The broker's append time for topics with LogAppendTime; otherwise the create time this log set.
        // The mock cluster answers every produce with a made-up append time (1234), so it is not trusted there.
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        var timestamp = rd_kafka_message_timestamp(message, &type)
        if type != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME || !batch.trustsAppendTime || timestamp < 0 {
            timestamp = batch.createTimestamp
        }
        batch.settle(index, partition: message.pointee.partition, offset: message.pointee.offset, timestamp: timestamp)
    }
}

/// The outcome of one `produce` call: completes when every message of it is settled.
///
/// Each message has a slot of plain values, written once by whoever settles it (the delivery report, or the
/// enqueueing call when librdkafka refused the message) and read only after the last one was settled. A
/// message's librdkafka opaque is the address of its slot, which holds the batch's own (unretained)
/// address: a delivery report finds the batch and the message's index without a per-message allocation or
/// lock. The `produce` call keeps the batch alive until every message is settled, and builds the
/// acknowledgements (which need the messages' topics) on its own task, off the delivery-report thread.
final class DeliveryBatch: @unchecked Sendable {
    // Safe: each slot is written by exactly one settler before it decrements `remaining` (releasing), and
    // read only once `remaining` reached zero and `completion` said so (acquiring); `slots` is freed in
    // `deinit`. The other stored properties are immutable or synchronized.
    private struct Slot {
        /// The batch, unretained: what an opaque leads back to.
        var owner: UnsafeMutableRawPointer
        var state: State
        var code: rd_kafka_resp_err_t
        var partition: Int32
        var offset: Int64
        var timestamp: Int64
    }

    private enum State: UInt8 {
        case pending, delivered, failedDelivery, failedProduce
    }

    /// The messages' create time, set by the log.
    let createTimestamp: Int64
    /// Whether a broker-reported append time is real (it is not on the mock cluster).
    let trustsAppendTime: Bool
    private let count: Int
    private let slots: UnsafeMutablePointer<Slot>
    private let remaining: Atomic<Int>
    /// Whether every message is settled, and the call waiting for that.
    private let completion = Mutex<(finished: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    init(count: Int, createTimestamp: Int64, trustsAppendTime: Bool) {
        self.count = count
        self.createTimestamp = createTimestamp
        self.trustsAppendTime = trustsAppendTime
        remaining = Atomic(count)
        slots = .allocate(capacity: max(1, count))
        // Every stored property is set: the slots can point back at the batch.
        slots.initialize(repeating: Slot(owner: Unmanaged.passUnretained(self).toOpaque(), state: .pending,
                                         code: RD_KAFKA_RESP_ERR_NO_ERROR, partition: -1, offset: -1, timestamp: 0),
                         count: max(1, count))
    }

    deinit {
        slots.deallocate()
    }

    /// The librdkafka opaque of message `index`.
    func opaque(_ index: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(slots + index)
    }

    /// Calls `body` with the batch and message index of an opaque made by ``opaque(_:)``. The batch is
    /// borrowed, not retained: the `produce` call that owns it outlives every delivery report.
    static func withBatch(of opaque: UnsafeMutableRawPointer, _ body: (DeliveryBatch, Int) -> Void) {
        let slot = opaque.assumingMemoryBound(to: Slot.self)
        Unmanaged<DeliveryBatch>.fromOpaque(slot.pointee.owner)._withUnsafeGuaranteedRef { batch in
            body(batch, slot - batch.slots)
        }
    }

    /// Message `index` is in the log at this partition and offset.
    func settle(_ index: Int, partition: Int32, offset: Int64, timestamp: Int64) {
        slots[index].state = .delivered
        slots[index].partition = partition
        slots[index].offset = offset
        slots[index].timestamp = timestamp
        settled()
    }

    /// Message `index` failed: refused by librdkafka when enqueued, or reported failed by its delivery report.
    func settle(_ index: Int, failed code: rd_kafka_resp_err_t, whileProducing: Bool) {
        slots[index].state = whileProducing ? .failedProduce : .failedDelivery
        slots[index].code = code
        settled()
    }

    private func settled() {
        guard remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
        let waiter = completion.withLock { completion in
            completion.finished = true
            defer { completion.waiter = nil }
            return completion.waiter
        }
        waiter?.resume()
    }

    /// Returns once every message is settled.
    func wait() async {
        await withCheckedContinuation { continuation in
            let finished = completion.withLock { completion in
                if !completion.finished { completion.waiter = continuation }
                return completion.finished
            }
            if finished { continuation.resume() }
        }
    }

    /// The acknowledgements of `messages` (the call's) in order, or the first failed message's error; and
    /// how many messages failed. Call after ``wait()``.
    func outcome(_ messages: [OutgoingMessage]) -> (result: Result<[DeliveryAck], LogError>, failed: Int) {
        precondition(messages.count == count, "outcome of a different call's messages")
        var acks: [DeliveryAck] = []
        acks.reserveCapacity(count)
        var firstError: LogError?
        var failed = 0
        var topic = ""
        for index in 0..<count {
            let slot = slots[index]
            let error: LogError
            switch slot.state {
            case .delivered:
                guard firstError == nil else { continue }
                // One topic string shared by a run of equal topics, rather than one copy per message.
                if messages[index].topic != topic { topic = messages[index].topic }
                acks.append(DeliveryAck(topic: topic, partition: Int(slot.partition), offset: slot.offset,
                                        timestampMilliseconds: slot.timestamp))
                continue
            case .failedDelivery:
                error = RdKafka.error(slot.code, topic: messages[index].topic, while: "delivery")
            case .failedProduce:
                error = RdKafka.error(slot.code, topic: messages[index].topic, while: "produce")
            case .pending:
                error = LogError.storage("a delivery report is missing")
            }
            failed += 1
            if firstError == nil { firstError = error }
        }
        return (firstError.map { .failure($0) } ?? .success(acks), failed)
    }
}

/// The producer's meters.
struct ProducerMetrics: Sendable {
    let delivered: Counter
    let failed: Counter
    let queued: Gauge

    init(factory: any MetricsFactory) {
        delivered = Counter(label: "tollgate_kafka_produced_total", dimensions: [("result", "delivered")],
                            factory: factory)
        failed = Counter(label: "tollgate_kafka_produced_total", dimensions: [("result", "failed")], factory: factory)
        queued = Gauge(label: "tollgate_kafka_producer_queue_messages", factory: factory)
    }
}
