import CRdKafka
import DequeModule
import Foundation

/// Copies the messages librdkafka returned into ``ConsumedMessage`` values, on the consumer's polling
/// thread, and destroys them.
///
/// The payload bytes (keys, values and header values) of a run of messages go into one shared buffer
/// (``PayloadWriter``): each key and value is a `Data` slice of it, so a run costs one allocation
/// instead of one or two per message. A run holds at most ``chunkBytes`` (a larger message gets a buffer of
/// its own), which bounds what one message kept alive by the application keeps alive with it.
///
/// Like any `Data` slice, a key or value keeps the indices it has in its buffer: read it with
/// `withUnsafeBytes`, iteration, `first`, or `startIndex`-relative indices, not with `value[0]`.
struct MessageCopier {
    /// Payload bytes per shared buffer.
    static let chunkBytes = 256 << 10

    /// The topic handle whose name ``topicName`` holds.
    private var topicHandle: OpaquePointer?
    private var topicName = ""
    /// Per message of a run: its header list, if it has headers (reused from run to run).
    private var headerLists: [OpaquePointer?] = []

    /// Copies `messages` (all without error) into Swift values in the same order, and destroys them.
    mutating func copyAndDestroy(_ messages: [UnsafeMutablePointer<rd_kafka_message_t>]) -> [ConsumedMessage] {
        var result: [ConsumedMessage] = []
        result.reserveCapacity(messages.count)
        var start = 0
        while start < messages.count {
            // The run of messages whose payloads share one buffer.
            var end = start
            var bytes = 0
            headerLists.removeAll(keepingCapacity: true)
            while end < messages.count {
                let headers = Self.headers(messages[end])
                let size = Self.payloadBytes(messages[end], headers: headers)
                if end > start && bytes + size > Self.chunkBytes { break }
                headerLists.append(headers)
                bytes += size
                end += 1
            }
            var writer = PayloadWriter(capacity: bytes)
            var fields: [Fields] = []
            fields.reserveCapacity(end - start)
            for (message, headers) in zip(messages[start..<end], headerLists) {
                fields.append(Self.write(message, headers: headers, into: &writer))
            }
            let buffer = writer.finish()
            for (message, field) in zip(messages[start..<end], fields) {
                let raw = message.pointee
                result.append(ConsumedMessage(
                    topic: topic(of: raw.rkt), partition: Int(raw.partition), offset: raw.offset,
                    timestampMilliseconds: field.timestamp, key: buffer.slice(field.key),
                    value: buffer.slice(field.value),
                    headers: field.headers.map { MessageHeader($0.name, buffer.slice($0.value) ?? Data()) }))
                rd_kafka_message_destroy(message)
            }
            start = end
        }
        return result
    }

    /// Where one message's fields went in its run's buffer.
    private struct Fields {
        var key: Range<Int>?
        var value: Range<Int>?
        var timestamp: Int64
        var headers: [(name: String, value: Range<Int>?)]
    }

    /// The message's header list (librdkafka parses it once per message), `nil` when it has none.
    private static func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> OpaquePointer? {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return list
    }

    /// Bytes of a message's key, value and header values.
    private static func payloadBytes(_ message: UnsafeMutablePointer<rd_kafka_message_t>, headers: OpaquePointer?) -> Int {
        var size = message.pointee.key_len + message.pointee.len
        forEachHeader(headers) { _, _, count in size += count }
        return size
    }

    private static func write(_ message: UnsafeMutablePointer<rd_kafka_message_t>, headers: OpaquePointer?,
                              into writer: inout PayloadWriter) -> Fields {
        let raw = message.pointee
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        var fields = Fields(key: writer.append(raw.key.map { UnsafeRawPointer($0) }, count: raw.key_len),
                            value: writer.append(raw.payload.map { UnsafeRawPointer($0) }, count: raw.len),
                            timestamp: rd_kafka_message_timestamp(message, &type), headers: [])
        forEachHeader(headers) { name, bytes, count in
            fields.headers.append((name.map { String(cString: $0) } ?? "", writer.append(bytes, count: count)))
        }
        return fields
    }

    /// Calls `body` with each header's name and value bytes.
    private static func forEachHeader(_ list: OpaquePointer?,
                                      _ body: (UnsafePointer<CChar>?, UnsafeRawPointer?, Int) -> Void) {
        guard let list else { return }
        var index = 0
        var name: UnsafePointer<CChar>?
        var bytes: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            body(name, bytes, size)
            index += 1
        }
    }

    /// The name of a topic handle: made once per handle, not once per message (librdkafka keeps a topic's
    /// handle for the client's life, so equal handles mean equal names).
    private mutating func topic(of handle: OpaquePointer?) -> String {
        if handle != topicHandle || handle == nil {
            topicHandle = handle
            topicName = String(cString: rd_kafka_topic_name(handle))
        }
        return topicName
    }
}

/// Builds one buffer out of many byte fields, then hands them out as `Data` slices that share it.
///
/// ```swift
/// var writer = PayloadWriter(capacity: key.count + value.count)
/// let keyRange = key.withUnsafeBytes { writer.append($0.baseAddress, count: $0.count) }
/// let valueRange = value.withUnsafeBytes { writer.append($0.baseAddress, count: $0.count) }
/// let buffer = writer.finish()
/// let copiedKey = buffer.slice(keyRange)  // shares the buffer's storage
/// ```
struct PayloadWriter: ~Copyable {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var used = 0

    /// A writer for fields of `capacity` bytes in all.
    init(capacity: Int) {
        self.capacity = capacity
        base = malloc(max(1, capacity))!
    }

    /// Appends `count` bytes; returns where they are, or `nil` for a null field (`bytes` nil). An empty,
    /// non-null field gets an empty range (an empty `Data`, not `nil`).
    mutating func append(_ bytes: UnsafeRawPointer?, count: Int) -> Range<Int>? {
        guard let bytes else { return nil }
        precondition(used + count <= capacity, "payload field beyond the writer's capacity")
        if count > 0 { (base + used).copyMemory(from: bytes, byteCount: count) }
        used += count
        return (used - count)..<used
    }

    /// The buffer: its ranges' bytes are those appended.
    consuming func finish() -> PayloadBuffer {
        let data = Data(bytesNoCopy: base, count: used, deallocator: .free)
        discard self
        return PayloadBuffer(data: data)
    }

    /// A writer dropped unfinished frees its buffer.
    deinit { free(base) }
}

/// The buffer a ``PayloadWriter`` built.
struct PayloadBuffer {
    let data: Data

    /// The bytes of a field as a `Data` that shares this buffer's storage (fields of up to 14 bytes are
    /// stored inline in the `Data` instead); `nil` for a null field.
    func slice(_ range: Range<Int>?) -> Data? {
        guard let range else { return nil }
        if range.isEmpty { return Data() }
        return data[range]
    }
}

/// The consumer's buffer: the batches its polling thread delivered, in order, taken from the front.
///
/// A batch the application takes whole is handed over as it is, without copying its messages (each copy
/// would retain and later release a topic and two payload buffers per message).
struct MessageQueue {
    private var batches = Deque<[ConsumedMessage]>()
    /// Messages of the first batch already taken.
    private var offset = 0
    /// Messages not yet taken.
    private(set) var count = 0

    mutating func append(_ batch: [ConsumedMessage]) {
        if batch.isEmpty { return }
        batches.append(batch)
        count += batch.count
    }

    /// Up to `maximum` messages from the front, in order. The first batch, when it fits, comes whole;
    /// smaller batches after it join it while the result is under a quarter of `maximum` (so that a
    /// trickle of small batches does not take one call each).
    mutating func take(_ maximum: Int) -> [ConsumedMessage] {
        guard let first = batches.first, maximum > 0 else { return [] }
        if offset > 0 || first.count > maximum {
            let end = min(first.count, offset + maximum)
            let result = Array(first[offset..<end])
            count -= end - offset
            offset = end
            if offset == first.count {
                batches.removeFirst()
                offset = 0
            }
            return result
        }
        var result = popFirst()
        while let next = batches.first, result.count < maximum / 4, result.count + next.count <= maximum {
            result += popFirst()
        }
        return result
    }

    /// Keeps only the messages for which `keep` is true.
    mutating func filter(_ keep: (ConsumedMessage) -> Bool) {
        var remaining = Deque<[ConsumedMessage]>()
        var remainingCount = 0
        for (index, batch) in batches.enumerated() {
            let kept = batch[(index == 0 ? offset : 0)...].filter(keep)
            if !kept.isEmpty {
                remaining.append(kept)
                remainingCount += kept.count
            }
        }
        self = MessageQueue()
        batches = remaining
        count = remainingCount
    }

    mutating func removeAll() {
        self = MessageQueue()
    }

    /// Removes the first batch, not taken from yet (`offset` is 0), and returns it.
    private mutating func popFirst() -> [ConsumedMessage] {
        let batch = batches.removeFirst()
        count -= batch.count
        return batch
    }
}
