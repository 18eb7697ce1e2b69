import Foundation
import Testing
@testable import TollgateLog

/// The `MessageLog` conformance suite: every engine must pass it unchanged.
@Suite("MessageLog conformance")
struct ConformanceTests {
    @Test("messages of one partition come back in produce order", arguments: LogEngine.all)
    func orderingPerPartition(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 4)
        var sent: [OutgoingMessage] = []
        for index in 0..<600 {
            sent.append(OutgoingMessage(topic: topic, key: "key-\(index % 25)", value: bytes("\(index)")))
        }
        // Several concurrent calls, as many producers would make them.
        let acks = try await withThrowingTaskGroup(of: [DeliveryAck].self) { group in
            for chunk in stride(from: 0, to: sent.count, by: 100) {
                let slice = Array(sent[chunk..<chunk + 100])
                group.addTask { try await fixture.log.produce(slice) }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(acks.count == 600)

        let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe([topic])
        let received = try await drain(consumer, count: 600)
        #expect(received.count == 600)
        var lastOffset: [Int: Int64] = [:]
        var lastValueByKey: [String: Int] = [:]
        for message in received {
            #expect(message.offset > lastOffset[message.partition, default: -1])
            lastOffset[message.partition] = message.offset
            let key = try #require(text(message.key))
            let value = try #require(Int(text(message.value) ?? ""))
            // Within a chunk of one producer call, values of a key increase.
            if let previous = lastValueByKey[key], previous / 100 == value / 100 {
                #expect(value > previous, "key \(key) went from \(previous) to \(value)")
            }
            lastValueByKey[key] = value
        }
        try await consumer.close()
    }

    @Test("a key lands on murmur2(key) mod partitions", arguments: LogEngine.all)
    func keysMapToPartitions(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 7)
        let keys = (0..<200).map { "team-\($0)" } + ["", "21", "foobar", "a-little-bit-long-string"]
        let acks = try await fixture.log.produce(keys.map {
            OutgoingMessage(topic: topic, key: $0, value: bytes("v"))
        })
        for (key, ack) in zip(keys, acks) {
            #expect(ack.partition == Partitioner.partition(forKey: bytes(key), partitions: 7), "key \(key)")
        }
        // An explicit partition wins over the key.
        let explicit = try await fixture.log.produce(
            OutgoingMessage(topic: topic, key: bytes("21"), value: nil, partition: 6))
        #expect(explicit.partition == 6)
    }

    @Test("a consumer that restarts without committing sees the messages again", arguments: LogEngine.all)
    func atLeastOnceWithoutCommit(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 2)
        _ = try await fixture.log.produce((0..<50).map {
            OutgoingMessage(topic: topic, key: "k\($0)", value: bytes("\($0)"))
        })
        let first = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await first.subscribe([topic])
        let firstRound = try await drain(first, count: 50)
        #expect(firstRound.count == 50)
        try await first.close()

        let second = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await second.subscribe([topic])
        let secondRound = try await drain(second, count: 50)
        #expect(Set(secondRound.map(\.offset.description).map { $0 }).count > 0)
        #expect(Set(secondRound.map { "\($0.partition):\($0.offset)" })
                == Set(firstRound.map { "\($0.partition):\($0.offset)" }))
        try await second.close()
    }

    @Test("a consumer resumes from the committed offsets", arguments: LogEngine.all)
    func resumeFromCommitted(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 1)
        _ = try await fixture.log.produce((0..<100).map {
            OutgoingMessage(topic: topic, key: "k", value: bytes("\($0)"))
        })
        let first = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await first.subscribe([topic])
        let all = try await drain(first, count: 100)
        #expect(all.count == 100)
        // Apply only the first 40, commit that.
        try await first.commit(all.prefix(40).nextOffsets)
        #expect(try await first.committed([TopicPartition(topic: topic, partition: 0)])
                == [TopicPartition(topic: topic, partition: 0): 40])
        try await first.close()

        let second = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await second.subscribe([topic])
        let rest = try await drain(second, count: 60)
        #expect(rest.map(\.offset) == Array(40..<100))
        #expect(rest.first.flatMap { text($0.value) } == "40")
        try await second.close()

        // Another group has its own offsets.
        let other = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "other"))
        try await other.subscribe([topic])
        #expect(try await drain(other, count: 100).count == 100)
        try await other.close()
    }

    @Test("a group splits partitions among members, and one takes over when the other leaves",
          arguments: LogEngine.all)
    func groupSplitAndTakeover(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 8)
        let a = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g", instanceID: "a"))
        let b = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g", instanceID: "b"))
        try await a.subscribe([topic])
        try await b.subscribe([topic])
        _ = try await pollUntil(a) { $0.count == 4 }
        _ = try await pollUntil(b) { $0.count == 4 }
        let assignedA = await a.assignment()
        let assignedB = await b.assignment()
        #expect(assignedA.isDisjoint(with: assignedB))
        #expect(assignedA.union(assignedB).count == 8)

        _ = try await fixture.log.produce((0..<80).map {
            OutgoingMessage(topic: topic, key: "k\($0)", value: bytes("\($0)"))
        })
        async let fromA = drain(a, count: 80, deadline: .seconds(2))
        async let fromB = drain(b, count: 80, deadline: .seconds(2))
        let (messagesA, messagesB) = try await (fromA, fromB)
        #expect(messagesA.count + messagesB.count == 80)
        #expect(Set(messagesA.map(\.topicPartition)).isSubset(of: assignedA))
        #expect(Set(messagesB.map(\.topicPartition)).isSubset(of: assignedB))
        try await a.commit(messagesA.nextOffsets)

        // A leaves: B gets every partition, and reads A's uncommitted... nothing (A committed all it read).
        try await a.close()
        let afterLeave = try await pollUntil(b) { $0.count == 8 }
        #expect(afterLeave.isEmpty)
        try await b.close()
    }

    @Test("a member that lost a partition cannot commit it", arguments: LogEngine.all)
    func commitsAreFenced(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 2)
        let a = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g", instanceID: "a"))
        try await a.subscribe([topic])
        _ = try await pollUntil(a) { $0.count == 2 }
        let b = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g", instanceID: "b"))
        try await b.subscribe([topic])
        _ = try await pollUntil(b) { $0.count == 1 }
        let lost = try #require(await b.assignment().first)
        await #expect(throws: LogError.partitionsRevoked([lost])) {
            try await a.commit([lost: 5])
        }
        #expect(try await b.committed([lost]).isEmpty)
        try await a.close()
        try await b.close()
    }

    @Test("seek to the beginning, an offset, a time and the end", arguments: LogEngine.all)
    func seek(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 1)
        let early = try await fixture.log.produce((0..<10).map {
            OutgoingMessage(topic: topic, key: "k", value: bytes("early-\($0)"))
        })
        // Wait for the clock to pass the early messages' append time: the next batch is strictly later.
        let boundary = (early.map(\.timestampMilliseconds).max() ?? 0) + 2
        while Int64(Date().timeIntervalSince1970 * 1000) < boundary { await Task.yield() }
        let late = try await fixture.log.produce((0..<10).map {
            OutgoingMessage(topic: topic, key: "k", value: bytes("late-\($0)"))
        })
        let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe([topic])
        #expect(try await drain(consumer, count: 20).count == 20)
        let partition = TopicPartition(topic: topic, partition: 0)

        try await consumer.seek(.beginning, partitions: nil)
        #expect(try await drain(consumer, count: 20).map(\.offset) == Array(0..<20))

        try await consumer.seek(.offset(15), partitions: [partition])
        #expect(try await drain(consumer, count: 5).map(\.offset) == Array(15..<20))

        let lateStart = Date(timeIntervalSince1970: Double(late[0].timestampMilliseconds) / 1000)
        try await consumer.seek(.timestamp(lateStart), partitions: nil)
        let fromTime = try await drain(consumer, count: 10)
        #expect(fromTime.first.flatMap { text($0.value) } == "late-0")
        #expect(fromTime.count == 10)

        try await consumer.seek(.end, partitions: nil)
        #expect(try await consumer.poll(maxMessages: 10, timeout: .milliseconds(50)).isEmpty)
        _ = try await fixture.log.produce(OutgoingMessage(topic: topic, key: "k", value: bytes("new")))
        #expect(try await drain(consumer, count: 1).map { text($0.value) } == ["new"])
        try await consumer.close()
    }

    @Test("a seek before the first assignment applies once partitions arrive", arguments: LogEngine.all)
    func seekBeforeAssignment(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 2)
        _ = try await fixture.log.produce((0..<10).map {
            OutgoingMessage(topic: topic, key: "k\($0)", value: bytes("\($0)"))
        })
        let first = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await first.subscribe([topic])
        let all = try await drain(first, count: 10)
        try await first.commit(all.nextOffsets)
        try await first.close()

        // Replay: a new member seeks to the beginning right after subscribing.
        let replay = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await replay.subscribe([topic])
        try await replay.seek(.beginning, partitions: nil)
        #expect(try await drain(replay, count: 10).count == 10)
        try await replay.close()
    }

    @Test("high and low watermarks", arguments: LogEngine.all)
    func watermarks(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 3)
        var expected: [Int: Int64] = [0: 0, 1: 0, 2: 0]
        for index in 0..<30 {
            _ = try await fixture.log.produce(
                OutgoingMessage(topic: topic, key: nil, value: bytes("\(index)"), partition: index % 3 == 0 ? 0 : 1))
            expected[index % 3 == 0 ? 0 : 1, default: 0] += 1
        }
        let marks = try await fixture.log.watermarks(topic: topic)
        #expect(marks.mapValues(\.high) == expected)
        #expect(marks.values.allSatisfy { $0.low == 0 })
        await #expect(throws: LogError.unknownTopic("missing")) {
            try await fixture.log.watermarks(topic: "missing")
        }
    }

    @Test("large, empty and null values, and headers, round-trip", arguments: LogEngine.all)
    func valuesAndHeaders(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 1)
        let large = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let headers = [MessageHeader("trace", "abc"), MessageHeader("bin", Data([0, 255, 1])),
                       MessageHeader("trace", "second"), MessageHeader("empty", Data())]
        _ = try await fixture.log.produce([
            OutgoingMessage(topic: topic, key: bytes("large"), value: large),
            OutgoingMessage(topic: topic, key: bytes("empty"), value: Data()),
            OutgoingMessage(topic: topic, key: nil, value: nil, headers: headers, partition: 0),
            OutgoingMessage(topic: topic, key: Data(), value: bytes("empty key")),
        ])
        let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe([topic])
        let messages = try await drain(consumer, count: 4)
        try #require(messages.count == 4)
        #expect(messages[0].value == large)
        #expect(messages[1].value == Data())
        #expect(messages[1].value != nil)
        #expect(messages[2].value == nil)
        #expect(messages[2].key == nil)
        #expect(messages[2].headers == headers)
        #expect(messages[2].header("trace") == bytes("abc"))
        #expect(messages[3].key == Data())
        #expect(messages[0].headers.isEmpty)
        try await consumer.close()
    }

    @Test("compaction keeps the newest value per key; tombstones go after retention", arguments: LogEngine.all)
    func compaction(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        guard engine.compacts, let embedded = fixture.embedded else { return }
        let topic = try await fixture.topic(partitions: 1, cleanupPolicy: .compact,
                                            retentionMilliseconds: 60_000)
        _ = try await fixture.log.produce([
            OutgoingMessage(topic: topic, key: "a", value: bytes("a1")),
            OutgoingMessage(topic: topic, key: "b", value: bytes("b1")),
            OutgoingMessage(topic: topic, key: "a", value: bytes("a2")),
            OutgoingMessage(topic: topic, key: "c", value: bytes("c1")),
            OutgoingMessage(topic: topic, key: "c", value: nil),
        ])
        await #expect(throws: LogError.compactedTopicRequiresKey(topic: topic)) {
            try await fixture.log.produce(OutgoingMessage(topic: topic, key: nil, value: bytes("x")))
        }
        let report = try await embedded.maintain()
        #expect(report.compacted == 2)
        #expect(report.tombstonesRemoved == 0)

        func readAll(_ group: String) async throws -> [String] {
            let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(group: group))
            try await consumer.subscribe([topic])
            let messages = try await drain(consumer, count: 3, deadline: .seconds(3))
            try await consumer.close()
            return messages.map { "\(text($0.key) ?? "-")=\(text($0.value) ?? "null")" }
        }
        #expect(try await readAll("r1") == ["b=b1", "a=a2", "c=null"])
        let marks = try await fixture.log.watermarks(topic: topic)
        #expect(marks[0] == PartitionWatermarks(low: 1, high: 5))

        // After the tombstone retention, the deleted key is gone entirely.
        let later = try await embedded.maintain(now: Date().addingTimeInterval(120))
        #expect(later.tombstonesRemoved == 1)
        #expect(try await readAll("r2") == ["b=b1", "a=a2"])
        // A key written again after its tombstone was removed comes back.
        _ = try await fixture.log.produce(OutgoingMessage(topic: topic, key: "c", value: bytes("c2")))
        try await embedded.maintain()
        #expect(try await readAll("r3") == ["b=b1", "a=a2", "c=c2"])
    }

    @Test("producing to a bad target fails clearly and writes nothing of that call", arguments: LogEngine.all)
    func produceValidation(engine: LogEngine) async throws {
        let fixture = try await engine.make()
        let topic = try await fixture.topic(partitions: 2)
        await #expect(throws: LogError.unknownTopic("nope")) {
            try await fixture.log.produce([OutgoingMessage(topic: topic, key: "k", value: bytes("ok")),
                                           OutgoingMessage(topic: "nope", key: "k", value: bytes("x"))])
        }
        await #expect(throws: LogError.invalidPartition(topic: topic, partition: 2, partitions: 2)) {
            try await fixture.log.produce(OutgoingMessage(topic: topic, key: nil, value: nil, partition: 2))
        }
        let marks = try await fixture.log.watermarks(topic: topic)
        #expect(marks.values.map(\.high).reduce(0, +) == 0)
    }
}

/// Behaviour specific to the embedded engine.
@Suite("EmbeddedLog")
struct EmbeddedLogTests {
    @Test("provisioning is idempotent, partitions can grow but never shrink")
    func provisioning() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        let spec = TopicSpec(name: "t", partitions: 2, cleanupPolicy: .delete, retentionMilliseconds: 1000)
        try await log.provision([spec])
        try await log.provision([spec])
        var grown = spec
        grown.partitions = 5
        try await log.provision([grown])
        #expect(try await log.topics() == [grown])
        #expect(try await log.watermarks(topic: "t").count == 5)
        await #expect(throws: LogError.partitionCountCannotShrink(topic: "t", existing: 5, requested: 2)) {
            try await log.provision([spec])
        }
    }

    @Test("retention deletes by age and by size, and consumers skip to the new low watermark")
    func retention() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        try await log.provision([
            TopicSpec(name: "age", partitions: 1, retentionMilliseconds: 60_000),
            TopicSpec(name: "size", partitions: 1, retentionBytes: 1_000),
        ])
        _ = try await log.produce((0..<10).map { OutgoingMessage(topic: "age", key: "k", value: bytes("\($0)")) })
        _ = try await log.produce((0..<10).map { _ in
            OutgoingMessage(topic: "size", key: nil, value: Data(count: 300), partition: 0)
        })
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe(["age"])
        #expect(try await consumer.poll(maxMessages: 3, timeout: .seconds(1)).count == 3)

        let now = try await log.maintain()
        #expect(now.expiredByAge == 0)
        #expect(now.expiredBySize == 7)  // 10 × 300 bytes, limit 1,000: keep the newest 3
        #expect(try await log.watermarks(topic: "size")[0] == PartitionWatermarks(low: 7, high: 10))

        let later = try await log.maintain(now: Date().addingTimeInterval(120))
        #expect(later.expiredByAge == 10)
        #expect(try await log.watermarks(topic: "age")[0] == PartitionWatermarks(low: 10, high: 10))
        // The consumer was at offset 3; those messages are gone: it continues from the low watermark.
        _ = try await log.produce(OutgoingMessage(topic: "age", key: "k", value: bytes("fresh")))
        let next = try await drain(consumer, count: 1)
        #expect(next.map(\.offset) == [10])
        try await consumer.close()
    }

    @Test("two handles on one directory, as two processes would have, share topics, data and groups")
    func sharedDirectory() async throws {
        let directory = try TemporaryDirectory()
        let first = try EmbeddedLog.open(directory: directory.path)
        let second = try EmbeddedLog.open(directory: directory.path)
        try await first.provision([TopicSpec(name: "shared", partitions: 2)])
        let consumer = try await second.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe(["shared"])
        async let received = drain(consumer, count: 100)
        _ = try await first.produce((0..<100).map {
            OutgoingMessage(topic: "shared", key: "k\($0)", value: bytes("\($0)"))
        })
        #expect(try await received.count == 100)

        // A member of the same group on the other handle takes half of the partitions.
        let other = try await first.makeConsumer(ConsumerConfiguration(group: "g"))
        try await other.subscribe(["shared"])
        _ = try await pollUntil(consumer) { $0.count == 1 }
        _ = try await pollUntil(other) { $0.count == 1 }
        try await other.close()
        try await consumer.close()
    }

    @Test("a member that stops heart-beating loses its partitions after the session timeout")
    func takeoverAfterSilence() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        try await log.provision([TopicSpec(name: "t", partitions: 4)])
        let fast = ConsumerConfiguration(group: "g", sessionTimeout: .milliseconds(800),
                                         heartbeatInterval: .milliseconds(100))
        var silent: (any LogConsumer)? = try await log.makeConsumer(fast)
        try await silent?.subscribe(["t"])
        let survivor = try await log.makeConsumer(fast)
        try await survivor.subscribe(["t"])
        _ = try await pollUntil(survivor) { $0.count == 2 }
        // Dropping a consumer without closing it stops its heartbeat but leaves its membership behind,
        // like a crashed process.
        silent = nil
        _ = try await pollUntil(survivor, deadline: .seconds(10)) { $0.count == 4 }
        try await survivor.close()
    }

    @Test("the header encoding round-trips and tolerates truncation")
    func headerCoding() {
        let headers = [MessageHeader("a", "1"), MessageHeader("ü", Data([0, 1, 2]))]
        #expect(HeaderCoding.decode(HeaderCoding.encode(headers)) == headers)
        #expect(HeaderCoding.encode([]) == nil)
        let encoded = HeaderCoding.encode(headers)!
        #expect(HeaderCoding.decode(encoded.prefix(encoded.count - 1)) == [headers[0]])
    }
}

@Suite("Partitioner")
struct PartitionerTests {
    /// Kafka's own test vectors (UtilsTest.testMurmur2).
    @Test("murmur2 matches Kafka's Java client", arguments: [
        ("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971), ("abc", 479_470_107),
    ])
    func murmur2(input: String, expected: Int32) {
        #expect(Partitioner.murmur2(Data(input.utf8)) == expected)
    }

    @Test("partition is the positive hash modulo the partition count")
    func partition() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340; % 8 = 4.
        #expect(Partitioner.partition(forKey: Data("21".utf8), partitions: 8) == 1_173_551_340 % 8)
        #expect(Partitioner.partition(forKey: Data("abc".utf8), partitions: 10) == 479_470_107 % 10)
    }
}
