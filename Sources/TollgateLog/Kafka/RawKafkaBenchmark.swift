import CRdKafka
public import Foundation
import Synchronization

/// The raw-librdkafka baseline of `tollgate bench kafka`: produce and consume loops written directly
/// against librdkafka's C API, with the same client properties as ``KafkaLog`` and its consumers, so the
/// Swift wrapper's figures can be set next to what librdkafka does alone.
///
/// The producer calls `rd_kafka_produceva` (the array form of `rd_kafka_producev`, which Swift cannot call
/// since it is variadic) with `RD_KAFKA_MSG_F_COPY` in a tight loop, serving delivery reports with
/// `rd_kafka_poll` every 1,000 messages and when the queue is full, and finishes with `rd_kafka_flush`;
/// one unmeasured message first connects and acquires the idempotent producer id. The consumer joins a group
/// and counts messages from `rd_kafka_consumer_poll`. Both block: call them off Swift's cooperative pool
/// (the async wrappers do).
public enum RawKafkaBenchmark {
    /// What one loop did.
    public struct Measurement: Sendable, Hashable, Codable {
        /// Messages delivered (producer) or received (consumer).
        public var messages: Int
        /// Value bytes of those messages.
        public var valueBytes: Int
        /// Seconds from the first produce call to the end of the flush (producer), or from the first
        /// message received to the last (consumer).
        public var seconds: Double
        /// Messages that failed delivery (producer).
        public var failed: Int

        public init(messages: Int, valueBytes: Int, seconds: Double, failed: Int = 0) {
            self.messages = messages
            self.valueBytes = valueBytes
            self.seconds = seconds
            self.failed = failed
        }
    }

    /// Produces `count` messages to `topic`, message `i` with key `keys[i % keys.count]` and value
    /// `values[i % values.count]`, with ``KafkaConfiguration``'s producer properties. Stops producing at
    /// `timeLimit` (the measurement then covers the messages sent). Calls `progress` with the number of
    /// messages enqueued, every 10,000 messages.
    public static func produce(configuration: KafkaConfiguration, topic: String, count: Int, keys: [Data],
                               values: [Data], timeLimit: Duration,
                               progress: @escaping @Sendable (Int) -> Void = { _ in }) async throws -> Measurement {
        try await RdKafka.blocking {
            try produceBlocking(configuration: configuration, topic: topic, count: count, keys: keys, values: values,
                                timeLimit: timeLimit, progress: progress)
        }
    }

    /// Consumes `count` messages of `topic` in a new consumer group `group` (from the beginning), with
    /// ``KafkaConfiguration``'s consumer properties. Stops at `timeLimit`. Calls `progress` with the number
    /// of messages received, every 10,000 messages.
    public static func consume(configuration: KafkaConfiguration, topic: String, group: String, count: Int,
                               timeLimit: Duration,
                               progress: @escaping @Sendable (Int) -> Void = { _ in }) async throws -> Measurement {
        try await RdKafka.blocking {
            try consumeBlocking(configuration: configuration, topic: topic, group: group, count: count,
                                timeLimit: timeLimit, progress: progress)
        }
    }

    // MARK: Loops

    private static func produceBlocking(configuration: KafkaConfiguration, topic: String, count: Int, keys: [Data],
                                        values: [Data], timeLimit: Duration,
                                        progress: (Int) -> Void) throws -> Measurement {
        precondition(!keys.isEmpty && !values.isEmpty, "keys and values must not be empty")
        let client = try RdKafka.makeClient(RD_KAFKA_PRODUCER, properties: configuration.producerProperties) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, rawDeliveryReport)
        }
        defer { rd_kafka_destroy(client) }
        // Keys and values in stable C buffers, as a C program would hold them.
        let keyBuffers = keys.map(CBuffer.init)
        let valueBuffers = values.map(CBuffer.init)
        let topicName = CBuffer(Data(topic.utf8) + [0])
        defer {
            for buffer in keyBuffers + valueBuffers + [topicName] { buffer.free() }
        }
        let counters = RawDeliveryCounters()
        let countersPointer = Unmanaged.passUnretained(counters).toOpaque()

        var entries = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 6)
        entries[0].vtype = RD_KAFKA_VTYPE_TOPIC
        entries[0].u.cstr = UnsafePointer(topicName.pointer.assumingMemoryBound(to: CChar.self))
        entries[1].vtype = RD_KAFKA_VTYPE_PARTITION
        entries[1].u.i32 = -1  // RD_KAFKA_PARTITION_UA: the partitioner picks
        entries[2].vtype = RD_KAFKA_VTYPE_KEY
        entries[3].vtype = RD_KAFKA_VTYPE_VALUE
        entries[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        entries[4].u.i = RD_KAFKA_MSG_F_COPY
        entries[5].vtype = RD_KAFKA_VTYPE_OPAQUE
        entries[5].u.ptr = countersPointer

        // Warm-up, not measured: connect and acquire the idempotent producer id with one message.
        entries[2].u.mem.ptr = keyBuffers[0].pointer
        entries[2].u.mem.size = keyBuffers[0].count
        entries[3].u.mem.ptr = valueBuffers[0].pointer
        entries[3].u.mem.size = valueBuffers[0].count
        if let failure = entries.withUnsafeBufferPointer({ RdKafka.consume(rd_kafka_produceva(client, $0.baseAddress, $0.count)) }) {
            throw RdKafka.error(failure.code, topic: topic, while: "raw produce")
        }
        let warmed = rd_kafka_flush(client, 30_000)
        guard warmed == RD_KAFKA_RESP_ERR_NO_ERROR, counters.totals.delivered == 1 else {
            throw LogError.storage("raw producer warm-up failed: \(RdKafka.describe(warmed))")
        }
        counters.reset()

        let clock = ContinuousClock()
        let start = clock.now
        let end = start.advanced(by: timeLimit)
        var sent = 0
        var valueBytes = 0
        while sent < count {
            if sent % 10_000 == 0 {
                progress(sent)
                if clock.now >= end { break }
            }
            let key = keyBuffers[sent % keyBuffers.count]
            let value = valueBuffers[sent % valueBuffers.count]
            entries[2].u.mem.ptr = key.pointer
            entries[2].u.mem.size = key.count
            entries[3].u.mem.ptr = value.pointer
            entries[3].u.mem.size = value.count
            let failure = entries.withUnsafeBufferPointer { RdKafka.consume(rd_kafka_produceva(client, $0.baseAddress, $0.count)) }
            if let failure {
                if failure.code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    rd_kafka_poll(client, 1)  // serve delivery reports to make room
                    continue
                }
                throw RdKafka.error(failure.code, topic: topic, while: "raw produce")
            }
            sent += 1
            // Serve delivery reports now and then, as a C producer loop does (librdkafka's own
            // rdkafka_performance polls every message; every 1,000 is cheaper).
            if sent % 1_000 == 0 { rd_kafka_poll(client, 0) }
            valueBytes += value.count
        }
        progress(sent)
        let code = rd_kafka_flush(client, 60_000)
        let seconds = seconds(clock.now - start)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw RdKafka.error(code, topic: topic, while: "raw flush")
        }
        let (delivered, failed) = counters.totals
        return Measurement(messages: delivered, valueBytes: valueBytes * delivered / max(sent, 1), seconds: seconds,
                           failed: failed)
    }

    private static func consumeBlocking(configuration: KafkaConfiguration, topic: String, group: String, count: Int,
                                        timeLimit: Duration, progress: (Int) -> Void) throws -> Measurement {
        let properties = configuration.consumerProperties(ConsumerConfiguration(group: group, autoOffsetReset: .earliest))
        let client = try RdKafka.makeClient(RD_KAFKA_CONSUMER, properties: properties)
        defer {
            rd_kafka_consumer_close(client)
            rd_kafka_destroy(client)
        }
        rd_kafka_poll_set_consumer(client)
        let list = RdKafka.partitionList([(TopicPartition(topic: topic, partition: -1), -1001)])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_subscribe(client, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw RdKafka.error(code, topic: topic, while: "raw subscribe") }

        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeLimit)
        var first: ContinuousClock.Instant?
        var last = clock.now
        var received = 0
        var valueBytes = 0
        while received < count {
            guard let message = rd_kafka_consumer_poll(client, 100) else {
                if clock.now >= end { break }
                continue
            }
            defer { rd_kafka_message_destroy(message) }
            guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            if first == nil { first = clock.now }
            received += 1
            valueBytes += message.pointee.len
            if received % 10_000 == 0 {
                progress(received)
                if clock.now >= end { break }
            }
        }
        last = clock.now
        progress(received)
        return Measurement(messages: received, valueBytes: valueBytes, seconds: first.map { seconds(last - $0) } ?? 0)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (whole, attoseconds) = duration.components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

/// Bytes in a C buffer that outlives every produce call of a loop; never a null pointer, even when empty.
private struct CBuffer {
    let pointer: UnsafeMutableRawPointer
    let count: Int

    init(_ data: Data) {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, data.count), alignment: 1)
        data.copyBytes(to: pointer.assumingMemoryBound(to: UInt8.self), count: data.count)
        count = data.count
    }

    func free() { pointer.deallocate() }
}

/// Delivery counts of the raw producer, updated by its delivery reports.
private final class RawDeliveryCounters: Sendable {
    private let delivered = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)

    func record(success: Bool) {
        if success {
            delivered.wrappingAdd(1, ordering: .relaxed)
        } else {
            failed.wrappingAdd(1, ordering: .relaxed)
        }
    }

    func reset() {
        delivered.store(0, ordering: .relaxed)
        failed.store(0, ordering: .relaxed)
    }

    var totals: (delivered: Int, failed: Int) {
        (delivered.load(ordering: .relaxed), failed.load(ordering: .relaxed))
    }
}

/// The raw producer's delivery report: counts the outcome on the counters passed as message opaque.
private func rawDeliveryReport(_ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
                               _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let pointer = message.pointee._private else { return }
    Unmanaged<RawDeliveryCounters>.fromOpaque(pointer).takeUnretainedValue()
        .record(success: message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR)
}
