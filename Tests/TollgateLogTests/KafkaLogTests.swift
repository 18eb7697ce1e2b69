import Foundation
import Metrics
import MetricsTestKit
import Testing
@testable import TollgateLog

/// Behaviour specific to the Kafka engine, on librdkafka's mock cluster.
@Suite("KafkaLog")
struct KafkaLogTests {
    /// A log on a fresh mock cluster, its configuration adjusted by `configure`, its meters in `metrics`.
    private func makeLog(metrics: TestMetrics? = nil, _ configure: (inout KafkaConfiguration) -> Void = { _ in })
        throws -> (KafkaMockCluster, KafkaLog) {
        let cluster = try KafkaMockCluster()
        var configuration = cluster.configuration()
        configure(&configuration)
        let log = try KafkaLog(configuration: configuration, mockCluster: cluster,
                               metricsFactory: metrics ?? MetricsSystem.factory)
        return (cluster, log)
    }

    @Test("every key lands on the partition the Partitioner computes (murmur2_random)")
    func keysMatchPartitioner() async throws {
        let (_, log) = try makeLog()
        try await log.provision([TopicSpec(name: "keys", partitions: 13)])
        let keys = (0..<2_000).map { "key-\($0)-\(String(repeating: "x", count: $0 % 11))" }
        let acks = try await log.produce(keys.map { OutgoingMessage(topic: "keys", key: $0, value: bytes("v")) })
        let mismatches = zip(keys, acks).filter {
            $1.partition != Partitioner.partition(forKey: bytes($0), partitions: 13)
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) keys on another partition, first \(mismatches.first.map(\.0) ?? "")")
    }

    @Test("producing to an unknown topic fails with LogError at once, no hang", .timeLimit(.minutes(1)))
    func unknownTopic() async throws {
        let (_, log) = try makeLog()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: LogError.unknownTopic("missing")) {
            try await log.produce(OutgoingMessage(topic: "missing", key: "k", value: bytes("v")))
        }
        #expect(clock.now - start < .seconds(5))
        // The topic was not auto-created by the attempt.
        #expect(try await log.topics().map(\.name).contains("missing") == false)
    }

    @Test("a delivery refused by the broker fails the call with LogError, no hang", .timeLimit(.minutes(1)))
    func deliveryError() async throws {
        let metrics = TestMetrics()
        let (cluster, log) = try makeLog(metrics: metrics)
        try await log.provision([TopicSpec(name: "refused", partitions: 1)])
        cluster.failNextProduceRequests(5, errorCode: 29)  // TOPIC_AUTHORIZATION_FAILED: not retriable
        do {
            _ = try await log.produce(OutgoingMessage(topic: "refused", key: "k", value: bytes("v")))
            Issue.record("the produce call succeeded")
        } catch let error as LogError {
            guard case .storage(let reason) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(reason.contains("AUTHORIZATION"))
            #expect(error.isTransient, "an operator fixing the ACL makes the same message go through")
        }
        let failed = metrics.counters.first {
            $0.label == "tollgate_kafka_produced_total" && $0.dimensions.contains { $0 == ("result", "failed") }
        }
        #expect(failed?.totalValue == 1)
    }

    @Test("calls larger than the producer's queue wait for room, and each lands whole and in order",
          .timeLimit(.minutes(1)))
    func queueFull() async throws {
        let (_, log) = try makeLog() {
            $0.properties["queue.buffering.max.messages"] = "100"
        }
        try await log.provision([TopicSpec(name: "full", partitions: 3)])
        let calls = try await withThrowingTaskGroup(of: (Int, [DeliveryAck]).self) { group in
            for call in 0..<4 {
                group.addTask {
                    let messages = (0..<1_500).map {
                        OutgoingMessage(topic: "full", key: "key-\($0 % 7)", value: bytes("\(call)-\($0)"))
                    }
                    return (call, try await log.produce(messages))
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(calls.count == 4)
        for (call, acks) in calls {
            #expect(acks.count == 1_500)
            // Within a call, a later message never sits before an earlier one of the same partition.
            var last: [Int: Int64] = [:]
            for ack in acks {
                #expect(ack.offset > last[ack.partition, default: -1], "call \(call): \(ack) out of order")
                last[ack.partition] = ack.offset
            }
        }
        let marks = try await log.watermarks(topic: "full")
        #expect(marks.values.reduce(0) { $0 + $1.high - $1.low } == 6_000)
    }

    @Test("a message over the size limit fails its call before anything is written; delivery is counted",
          .timeLimit(.minutes(1)))
    func refusedMessage() async throws {
        let metrics = TestMetrics()
        let (_, log) = try makeLog(metrics: metrics) {
            $0.maximumMessageBytes = 1_000
        }
        try await log.provision([TopicSpec(name: "sizes", partitions: 2)])
        var messages = (0..<10).map { OutgoingMessage(topic: "sizes", key: "k\($0)", value: bytes("small")) }
        messages[4].value = Data(count: 1_000)  // with its 2-byte key, over 1,000
        do {
            _ = try await log.produce(messages)
            Issue.record("the call succeeded")
        } catch let error as LogError {
            guard case .messageRefused(let reason) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(reason.contains("1002 bytes") && reason.contains("limit of 1000"), "\(reason)")
            #expect(!error.isTransient)
        }
        // Nothing of the refused call was written, and the producer goes on.
        #expect(try await log.watermarks(topic: "sizes").values.allSatisfy { $0.high == 0 })
        messages[4].value = Data(count: 998)  // exactly at the limit
        let acks = try await log.produce(messages)
        #expect(acks.count == 10)
        let produced = metrics.counters.filter { $0.label == "tollgate_kafka_produced_total" }
        let delivered = produced.first { $0.dimensions.contains { $0 == ("result", "delivered") } }
        #expect(delivered?.totalValue == 10)
        // The thread samples librdkafka's queue from its first round on.
        #expect(try metrics.expectGauge("tollgate_kafka_producer_queue_messages").values.isEmpty == false)
    }

    @Test("a smaller message.max.bytes given by name lowers the log's own size check")
    func sizeLimitFromProperty() async throws {
        let (_, log) = try makeLog() {
            $0.properties["message.max.bytes"] = "\(70_000)"  // 70,000 − 64 KiB of framing = 4,464
            $0.maximumMessageBytes = 100_000
        }
        try await log.provision([TopicSpec(name: "sizes", partitions: 1)])
        await #expect(throws: LogError.messageRefused(
            "a message of 4465 bytes (key, value and headers) for 'sizes' is over the producer's limit of 4464 bytes "
                + "(KafkaConfiguration.maximumMessageBytes)")) {
            try await log.produce(OutgoingMessage(topic: "sizes", key: "k", value: Data(count: 4_464)))
        }
        _ = try await log.produce(OutgoingMessage(topic: "sizes", key: "k", value: Data(count: 4_463)))
    }

    @Test("librdkafka's refusals of a message itself are for good; authorization and time-outs are retried")
    func errorClassification() {
        // Codes from librdkafka's rd_kafka_resp_err_t: MSG_SIZE_TOO_LARGE 10, RECORD_LIST_TOO_LARGE 18,
        // INVALID_TIMESTAMP 32, INVALID_RECORD 87; TOPIC_AUTHORIZATION_FAILED 29, _MSG_TIMED_OUT -192.
        for code in [10, 18, 32, 87] {
            #expect(!RdKafka.error(.init(rawValue: Int32(code)), topic: "t", while: "delivery").isTransient, "\(code)")
        }
        for code in [29, -192] {
            #expect(RdKafka.error(.init(rawValue: Int32(code)), topic: "t", while: "delivery").isTransient, "\(code)")
        }
    }

    @Test("a call handed to an idle producer is taken at once, not after the thread's idle wait",
          .timeLimit(.minutes(1)))
    func idleProducerWakes() async throws {
        let (_, log) = try makeLog()
        try await log.provision([TopicSpec(name: "idle", partitions: 1)])
        _ = try await log.produce(OutgoingMessage(topic: "idle", key: "k", value: bytes("warm-up")))
        // Each call finds the thread waiting in rd_kafka_poll (idle wait 1 s). Were the hand-over not to
        // wake it, each call would wait until some other event ended that wait: twenty calls took 14 s with
        // the wake-up removed. With it, and linger 5 ms, they take 0.1–0.2 s.
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<20 {
            _ = try await log.produce(OutgoingMessage(topic: "idle", key: "k", value: bytes("\(index)")))
        }
        #expect(clock.now - start < .milliseconds(Int64(ProducerHandle.idleWait) * 2))
    }

    @Test("a consumer that falls behind stops fetching and loses nothing when it catches up")
    func backPressure() async throws {
        let (_, log) = try makeLog() {
            $0.consumerBufferLimit = 50
        }
        try await log.provision([TopicSpec(name: "bp", partitions: 2)])
        _ = try await log.produce((0..<1_000).map {
            OutgoingMessage(topic: "bp", key: nil, value: bytes("\($0)"), partition: $0 % 2)
        })
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe(["bp"])
        var received: [ConsumedMessage] = []
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(20))
        while received.count < 1_000 && clock.now < end {
            // Small, slow polls: the buffer (50 messages) fills up and the consumer waits in between.
            received += try await consumer.poll(maxMessages: 20, timeout: .milliseconds(100))
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(received.count == 1_000)
        for partition in 0..<2 {
            #expect(received.filter { $0.partition == partition }.map(\.offset) == Array(0..<500))
        }
        try await consumer.close()
    }

    @Test("provisioning is idempotent; partitions cannot shrink; topics() reports the specs")
    func provisioning() async throws {
        let (_, log) = try makeLog()
        let spec = TopicSpec(name: "p", partitions: 3, retentionMilliseconds: 60_000)
        try await log.provision([spec])
        try await log.provision([spec])
        #expect(try await log.topics() == [spec])
        #expect(try await log.watermarks(topic: "p").count == 3)
        await #expect(throws: LogError.partitionCountCannotShrink(topic: "p", existing: 3, requested: 2)) {
            var smaller = spec
            smaller.partitions = 2
            try await log.provision([smaller])
        }
    }
}

/// A property librdkafka refuses is named in the error; a secret's value never is.
@Suite struct KafkaPropertyRedactionTests {
    @Test func secretValuesStayOutOfErrors() throws {
        var configuration = KafkaConfiguration(brokers: ["127.0.0.1:9"])
        configuration.properties = ["ssl.key.passwordx": "hunter2-secret-value"]
        do {
            _ = try KafkaLog(configuration: configuration)
            Issue.record("librdkafka accepted an unknown property")
        } catch {
            let text = "\(error)"
            #expect(text.contains("ssl.key.passwordx"))
            #expect(!text.contains("hunter2-secret-value"))
        }
        // Not a secret: the value helps.
        configuration.properties = ["security.protocol": "carrier-pigeon"]
        do {
            _ = try KafkaLog(configuration: configuration)
            Issue.record("librdkafka accepted security.protocol=carrier-pigeon")
        } catch {
            #expect("\(error)".contains("carrier-pigeon"))
        }
        #expect(KafkaConfiguration.isSecret("sasl.password"))
        #expect(KafkaConfiguration.isSecret("sasl.oauthbearer.client.secret"))
        #expect(KafkaConfiguration.isSecret("ssl.key.pem"))
        #expect(!KafkaConfiguration.isSecret("bootstrap.servers"))
    }
}

/// Consumers prefetch up to a million messages (librdkafka 2.0.2 stalls a second at its 100,000 default);
/// a property given by name still wins.
@Suite struct KafkaConsumerPropertiesTests {
    @Test func prefetchIsRaisedAndOverridable() {
        var configuration = KafkaConfiguration(brokers: ["127.0.0.1:9"])
        let defaults = Dictionary(configuration.consumerProperties(ConsumerConfiguration(group: "g")),
                                  uniquingKeysWith: { $1 })
        #expect(defaults["queued.min.messages"] == "1000000")
        configuration.properties = ["queued.min.messages": "5000"]
        let properties = configuration.consumerProperties(ConsumerConfiguration(group: "g"))
        // Applied in order: the last value of a name is the one librdkafka keeps.
        #expect(properties.last(where: { $0.0 == "queued.min.messages" })?.1 == "5000")
    }
}
