import Foundation
import Testing
@testable import TollgateLog

/// How the Kafka consumer copies fetched messages: payloads share one buffer per run of messages, and the
/// consumer's buffer hands delivered batches over whole.
@Suite("Kafka message copies")
struct KafkaMessageCopyTests {
    @Test("payload slices hold exactly the bytes appended, share one buffer, and keep null apart from empty")
    func payloadSlices() {
        var generator = SystemRandomNumberGenerator()
        // Null, empty, inline-sized (up to 14 bytes) and larger fields.
        let fields: [Data?] = (0..<2_000).map { index in
            switch index % 7 {
            case 0: return nil
            case 1: return Data()
            default:
                let count = [1, 13, 14, 15, 200, 1_500][index % 6]
                return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
        }
        var writer = PayloadWriter(capacity: fields.reduce(0) { $0 + ($1?.count ?? 0) })
        let ranges = fields.map { field in
            field.map { data in data.withUnsafeBytes { writer.append($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, count: $0.count) } }
                ?? writer.append(nil, count: 0)
        }
        let buffer = writer.finish()
        let slices = ranges.map(buffer.slice)
        #expect(slices == fields)
        #expect(slices.filter { $0 == nil }.count == fields.filter { $0 == nil }.count)
        // Larger fields point into the one buffer, one after the other.
        let large = slices.compactMap { $0 }.filter { $0.count > 14 }
        let base = buffer.data.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let end = base + UInt(buffer.data.count)
        for slice in large {
            let address = slice.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
            #expect(address >= base && address + UInt(slice.count) <= end)
        }
    }

    @Test("a payload writer dropped unfinished frees its buffer; an empty one finishes empty")
    func emptyWriter() {
        var dropped = PayloadWriter(capacity: 10)
        _ = dropped.append(Array("abc".utf8), count: 3)
        _ = consume dropped
        var writer = PayloadWriter(capacity: 0)
        let range = writer.append(nil, count: 0)
        let buffer = writer.finish()
        #expect(buffer.slice(range) == nil)
        #expect(buffer.data.isEmpty)
    }

    private func messages(_ range: Range<Int>, partition: Int = 0) -> [ConsumedMessage] {
        range.map {
            ConsumedMessage(topic: "t", partition: partition, offset: Int64($0), timestampMilliseconds: 0, key: nil,
                            value: Data("\($0)".utf8), headers: [])
        }
    }

    @Test("the consumer's buffer gives messages in order, whole batches when they fit, never more than asked")
    func messageQueue() {
        var queue = MessageQueue()
        queue.append(messages(0..<5))
        queue.append([])
        queue.append(messages(5..<8))
        queue.append(messages(8..<20))
        #expect(queue.count == 20)
        // A first batch larger than asked: a prefix, then the rest of it.
        #expect(queue.take(3).map(\.offset) == [0, 1, 2])
        #expect(queue.take(100).map(\.offset) == [3, 4])
        // Small batches join while the result is under a quarter of the maximum.
        #expect(queue.take(100).map(\.offset) == Array(5..<20))
        #expect(queue.count == 0)
        #expect(queue.take(10).isEmpty)

        queue.append(messages(0..<4, partition: 0))
        queue.append(messages(0..<4, partition: 1))
        _ = queue.take(1)
        queue.filter { $0.partition != 0 }
        #expect(queue.count == 4)
        #expect(queue.take(10).map(\.partition) == [1, 1, 1, 1])
        queue.append(messages(0..<4))
        queue.removeAll()
        #expect(queue.count == 0 && queue.take(10).isEmpty)
    }

    @Test("many messages with keys, null and empty keys and values, headers and large values come back intact",
          .timeLimit(.minutes(2)))
    func roundTrip() async throws {
        let cluster = try KafkaMockCluster()
        let log = try KafkaLog(configuration: cluster.configuration(), mockCluster: cluster)
        try await log.provision([TopicSpec(name: "copies", partitions: 3)])
        // Enough bytes for several shared buffers per round (256 KiB each).
        let outgoing = (0..<3_000).map { index -> OutgoingMessage in
            let key: Data? = switch index % 5 {
            case 0: nil
            case 1: Data()
            case 2: Data("a key longer than fourteen bytes \(index)".utf8)
            default: Data("k\(index)".utf8)
            }
            // A few values larger than a shared buffer (the mock keeps only ~5 MiB per partition).
            let value: Data? = if index % 97 == 2 {
                Data(repeating: UInt8(index % 251), count: 300_000 + index)
            } else {
                switch index % 11 {
                case 0: nil
                case 1: Data()
                default: Data((0..<(index % 400)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
                }
            }
            let headers: [MessageHeader] = switch index % 3 {
            case 0: []
            case 1: [MessageHeader("content-type", "application/cloudevents+json"), MessageHeader("empty", Data())]
            default: [MessageHeader("a-header-name-longer-than-fifteen", "\(index)")]
            }
            return OutgoingMessage(topic: "copies", key: key, value: value, headers: headers, partition: index % 3)
        }
        for start in stride(from: 0, to: outgoing.count, by: 500) {
            _ = try await log.produce(Array(outgoing[start..<min(start + 500, outgoing.count)]))
        }
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "copies"))
        try await consumer.subscribe(["copies"])
        var received: [ConsumedMessage] = []
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(60))
        while received.count < outgoing.count && clock.now < end {
            received += try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(200))
        }
        try await consumer.close()
        #expect(received.count == outgoing.count)
        // Messages of partition p are outgoing[p], outgoing[p + 3], ... in offset order.
        for partition in 0..<3 {
            let expected = outgoing.enumerated().filter { $0.offset % 3 == partition }.map(\.element)
            let got = received.filter { $0.partition == partition }
            #expect(got.map(\.offset) == Array(0..<Int64(expected.count)))
            for (message, sent) in zip(got, expected) {
                #expect(message.topic == "copies")
                #expect(message.key == sent.key, "key of offset \(message.offset)")
                #expect(message.value == sent.value, "value of offset \(message.offset)")
                #expect(message.headers == sent.headers, "headers of offset \(message.offset)")
                // Slices read like any Data: from startIndex, with the right count.
                if let value = message.value, let sentValue = sent.value, !value.isEmpty {
                    #expect(value[value.startIndex] == sentValue[sentValue.startIndex])
                    #expect(Array(value) == Array(sentValue))
                }
            }
        }
    }
}
