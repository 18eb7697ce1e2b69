import CRdKafka
import Dispatch
import Foundation
import Logging

/// Small helpers around librdkafka's C API. Everything here is internal to the Kafka engine.
enum RdKafka {
    /// A new client handle of `type` with these properties. The configuration object passes to the
    /// client (or is freed on failure). `prepare` can register callbacks on the configuration first.
    ///
    /// With `opaque`, the client's logs go to its logger (and its consumer context reaches the rebalance
    /// callback); the caller keeps `opaque` alive until the client is destroyed. Without, they go to a
    /// default logger.
    static func makeClient(_ type: rd_kafka_type_t, properties: [(String, String)], opaque: ClientOpaque? = nil,
                           prepare: (OpaquePointer) -> Void = { _ in }) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else { throw LogError.storage("rd_kafka_conf_new failed") }
        rd_kafka_conf_set_log_cb(conf, logCallback)
        if let opaque { rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(opaque).toOpaque()) }
        let errorSize = 512
        var errorText = [CChar](repeating: 0, count: errorSize)
        for (name, value) in properties {
            if rd_kafka_conf_set(conf, name, value, &errorText, errorSize) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw LogError.storage(KafkaConfiguration.describeRefusal(name: name, value: value,
                                                                          error: string(errorText)))
            }
        }
        prepare(conf)
        guard let client = rd_kafka_new(type, conf, &errorText, errorSize) else {
            rd_kafka_conf_destroy(conf)
            throw LogError.storage("cannot create a Kafka client: \(string(errorText))")
        }
        return client
    }

    /// Where clients without an opaque log.
    static let defaultLogger = Logger(label: "tollgate.log.kafka")

    static func string(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// librdkafka's name and description of an error code.
    static func describe(_ code: rd_kafka_resp_err_t) -> String {
        "\(String(cString: rd_kafka_err2name(code))): \(String(cString: rd_kafka_err2str(code)))"
    }

    /// A ``LogError`` for a librdkafka error about `topic`.
    static func error(_ code: rd_kafka_resp_err_t, topic: String?, while action: String) -> LogError {
        if let topic, code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC {
            return .unknownTopic(topic)
        }
        // Refusals of the message itself, which no retry changes. Authorization failures stay `storage`
        // (retried): an operator fixing an ACL makes the same message go through.
        switch code {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
             RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
            return .messageRefused("Kafka \(action) failed: \(describe(code))")
        default:
            return .storage("Kafka \(action) failed: \(describe(code))")
        }
    }

    /// Takes ownership of an `rd_kafka_error_t`: nil when there was none, its code otherwise.
    static func consume(_ error: OpaquePointer?) -> (code: rd_kafka_resp_err_t, message: String)? {
        guard let error else { return nil }
        defer { rd_kafka_error_destroy(error) }
        return (rd_kafka_error_code(error), String(cString: rd_kafka_error_string(error)))
    }

    /// Runs a blocking librdkafka call on a dispatch queue, never on Swift's cooperative pool.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            blockingQueue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    private static let blockingQueue = DispatchQueue(label: "tollgate.kafka.blocking", attributes: .concurrent)

    /// Names the calling thread for `top`, `perf` and debuggers (Linux keeps the first 15 bytes; a
    /// `Thread`'s `name` does not reach the kernel there).
    static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        tollgate_name_current_thread(name)
        #endif
    }

    // MARK: Partition lists

    /// A new partition list; free it with `rd_kafka_topic_partition_list_destroy`.
    static func partitionList(_ entries: [(TopicPartition, Int64)])
        -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, entries.count)))!
        for (partition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(list, partition.topic, Int32(partition.partition))!
            element.pointee.offset = offset
        }
        return list
    }

    /// The entries of a partition list: partition, offset and per-partition error.
    static func entries(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?)
        -> [(partition: TopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        guard let list, let elements = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map { index in
            let element = elements[index]
            return (TopicPartition(topic: String(cString: element.topic), partition: Int(element.partition)),
                    element.offset, element.err)
        }
    }

    // MARK: Metadata

    /// Partition counts of every topic the cluster reports (internal topics left out). Blocking.
    static func topicPartitionCounts(_ client: OpaquePointer, timeout: Duration) throws -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(client, 1, nil, &metadata, timeout.wholeMilliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw error(code, topic: nil, while: "metadata request")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            let name = String(cString: topic.topic)
            if name.hasPrefix("__") || topic.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            result[name] = Int(topic.partition_cnt)
        }
        return result
    }

    /// Low and high watermarks of one partition, asking its leader. Blocking.
    static func watermarks(_ client: OpaquePointer, _ partition: TopicPartition, timeout: Duration) throws
        -> PartitionWatermarks {
        var low: Int64 = 0
        var high: Int64 = 0
        let code = rd_kafka_query_watermark_offsets(client, partition.topic, Int32(partition.partition), &low,
                                                    &high, timeout.wholeMilliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw error(code, topic: partition.topic, while: "watermark query of \(partition)")
        }
        return PartitionWatermarks(low: low, high: high)
    }

    /// The concrete offset a seek position designates in each partition. Blocking.
    ///
    /// `readerProperties` is set on librdkafka's mock cluster, whose ListOffsets ignores timestamps (a
    /// FIXME in 2.0.2's `rdkafka_mock_handlers.c`: it always answers "none"): timestamps are then resolved
    /// by a binary search that reads message timestamps with a temporary reader made of these properties.
    static func resolve(_ position: SeekPosition, _ partitions: [TopicPartition], client: OpaquePointer,
                        timeout: Duration, readerProperties: [(String, String)]? = nil) throws
        -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        var marks: [TopicPartition: PartitionWatermarks] = [:]
        for partition in partitions {
            marks[partition] = try watermarks(client, partition, timeout: timeout)
        }
        switch position {
        case .beginning:
            for (partition, mark) in marks { result[partition] = mark.low }
        case .end:
            for (partition, mark) in marks { result[partition] = mark.high }
        case .offset(let offset):
            for (partition, mark) in marks { result[partition] = min(max(offset, mark.low), mark.high) }
        case .timestamp(let date):
            let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.up))
            if let readerProperties {
                for (partition, mark) in marks {
                    result[partition] = try offsetByReading(partition, atOrAfter: milliseconds, low: mark.low,
                                                            high: mark.high, properties: readerProperties,
                                                            timeout: timeout)
                }
                return result
            }
            let list = partitionList(partitions.map { ($0, milliseconds) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_offsets_for_times(client, list, timeout.wholeMilliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw error(code, topic: partitions.first?.topic, while: "offsets-for-times lookup")
            }
            for entry in entries(list) {
                guard let mark = marks[entry.partition] else { continue }
                // -1: no message at or after the time; continue at the end.
                result[entry.partition] = entry.offset < 0 ? mark.high : min(max(entry.offset, mark.low), mark.high)
            }
        }
        return result
    }

    /// The first offset in `low..<high` whose message timestamp is at or after `timestamp` (`high` if
    /// none), by binary search over messages read with a temporary group-less reader. Timestamps are
    /// append times here, which never decrease within a partition. Blocking.
    static func offsetByReading(_ partition: TopicPartition, atOrAfter timestamp: Int64, low: Int64, high: Int64,
                                properties: [(String, String)], timeout: Duration) throws -> Int64 {
        if low >= high { return high }
        let reader = try makeClient(RD_KAFKA_CONSUMER, properties: properties)
        defer {
            rd_kafka_consumer_close(reader)
            rd_kafka_destroy(reader)
        }
        rd_kafka_poll_set_consumer(reader)
        let clock = ContinuousClock()
        /// The offset and timestamp of the message at `offset`.
        func read(_ offset: Int64) throws -> (offset: Int64, timestamp: Int64) {
            let list = partitionList([(partition, offset)])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_assign(reader, list)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw error(code, topic: partition.topic, while: "assign") }
            let end = clock.now.advanced(by: timeout)
            while clock.now < end {
                guard let message = rd_kafka_consumer_poll(reader, 100) else { continue }
                defer { rd_kafka_message_destroy(message) }
                guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR, message.pointee.offset >= offset,
                      Int(message.pointee.partition) == partition.partition else { continue }
                var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                return (message.pointee.offset, rd_kafka_message_timestamp(message, &type))
            }
            throw LogError.storage("reading \(partition) at offset \(offset) timed out")
        }
        var lower = low
        var upper = high
        while lower < upper {
            let middle = lower + (upper - lower) / 2
            let found = try read(middle)
            if found.timestamp < timestamp {
                lower = found.offset + 1
            } else {
                upper = middle
            }
        }
        return lower
    }
}

/// What a client's `opaque` points to: its logger and, for a consumer, the state its rebalance callback
/// works on.
final class ClientOpaque: Sendable {
    let logger: Logger
    let consumer: ConsumerContext?

    init(logger: Logger, consumer: ConsumerContext? = nil) {
        self.logger = logger
        self.consumer = consumer
    }
}

/// librdkafka's log callback (called on librdkafka's threads): forwards to the client's logger.
private func logCallback(_ client: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?,
                         _ text: UnsafePointer<CChar>?) {
    let logger = rd_kafka_opaque(client).map {
        Unmanaged<ClientOpaque>.fromOpaque($0).takeUnretainedValue().logger
    } ?? RdKafka.defaultLogger
    let facilityName = facility.map { String(cString: $0) } ?? ""
    let swiftLevel: Logger.Level
    switch level {
    case ...3: swiftLevel = .error
    // AUTOCREATE: librdkafka warns that `allow.auto.create.topics=false` is unsupported while it has not
    // yet learned the broker's API versions (always so on the mock cluster's bootstrap connection).
    case 4: swiftLevel = facilityName == "AUTOCREATE" ? .debug : .warning
    case 5: swiftLevel = .notice
    case 6: swiftLevel = .info
    default: swiftLevel = .debug
    }
    logger.log(level: swiftLevel, "librdkafka", metadata: [
        "kafka.facility": "\(facilityName)",
        "kafka.client": "\(client.map { String(cString: rd_kafka_name($0)) } ?? "")",
        "kafka.message": "\(text.map { String(cString: $0) } ?? "")",
    ])
}
