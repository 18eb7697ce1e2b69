import Foundation
import Testing
import TollgateApp
import TollgateEvents
import TollgateLog

@Suite("tollgate dev-broker", .serialized)
struct DevBrokerTests {
    @Test("dev-broker serves every catalog topic to other processes, writes its address file, and stops cleanly on SIGTERM")
    func devBrokerRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        let addressFile = directory.path + "/broker.address"
        let stdout = Pipe()
        let stdoutLines = PipeLines.stream(stdout)
        let broker = try ChildProcess(["dev-broker", "--address-file", addressFile], stdout: stdout.fileHandleForWriting)
        // Logged after the topics exist and the address file was renamed into place.
        _ = try await broker.waitForLine { $0.contains("dev broker is ready") }
        #expect(broker.stderr.contains { $0.contains("NOT DURABLE") })

        let address = try String(contentsOfFile: addressFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(address.hasPrefix("127.0.0.1:"))
        var printed: String?
        for await line in stdoutLines {
            printed = line
            break
        }
        #expect(printed == address)
        // No temporary file is left next to the address file.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["broker.address"])

        // A client in this process (not the broker's) finds every catalog topic with its partition count.
        let log = try KafkaLog(configuration: KafkaConfiguration(
            brokers: [address], clientID: "dev-broker-test", fetchWaitMaximum: .milliseconds(10)))
        let topics = try await log.topics()
        let expected = TopicCatalog.specs()
        #expect(topics.map(\.name) == expected.map(\.name).sorted())
        for spec in expected {
            #expect(topics.first { $0.name == spec.name }?.partitions == spec.partitions)
        }

        // Produce and consume through the broker.
        let topic = TopicCatalog.defaultPrefix + "requests"
        let values = (0..<20).map { "event-\($0)" }
        let acks = try await log.produce(values.enumerated().map { index, value in
            OutgoingMessage(topic: topic, key: "team-\(index % 3)", value: Data(value.utf8))
        })
        #expect(acks.count == values.count)
        let consumer = try await log.makeConsumer(ConsumerConfiguration(
            group: "dev-broker-test", sessionTimeout: .seconds(3), heartbeatInterval: .milliseconds(500)))
        try await consumer.subscribe([topic])
        var received: [ConsumedMessage] = []
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while received.count < values.count && clock.now < end {
            received += try await consumer.poll(maxMessages: 100, timeout: .milliseconds(500))
        }
        try await consumer.commit(received.nextOffsets)
        try await consumer.close()
        #expect(Set(received.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }) == Set(values))
        // Per key, in the order produced.
        for team in 0..<3 {
            let key = Data("team-\(team)".utf8)
            let got = received.filter { $0.key == key }.map { String(decoding: $0.value ?? Data(), as: UTF8.self) }
            let sent = values.enumerated().filter { $0.offset % 3 == team }.map(\.element)
            #expect(got == sent)
        }

        broker.signal(SIGTERM)
        #expect(try await broker.waitForExit(timeout: .seconds(15)) == 0)
        #expect(broker.stderr.contains { $0.contains("dev broker stopped") })
        #expect(!FileManager.default.fileExists(atPath: addressFile))
    }

    @Test("dev-broker honours --topic-prefix and exits 0 on SIGINT")
    func devBrokerPrefixAndSigint() async throws {
        let directory = try TemporaryDirectory()
        let addressFile = directory.path + "/address"
        let broker = try ChildProcess(["dev-broker", "--topic-prefix", "acme.", "--brokers", "3",
                                       "--address-file", addressFile])
        _ = try await broker.waitForLine { $0.contains("dev broker is ready") }
        let address = try String(contentsOfFile: addressFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(address.split(separator: ",").count == 3)
        let log = try KafkaLog(configuration: KafkaConfiguration(brokers: [address], clientID: "dev-broker-test"))
        #expect(try await log.topics().map(\.name) == TopicCatalog.specs(prefix: "acme.").map(\.name).sorted())
        broker.signal(SIGINT)
        #expect(try await broker.waitForExit(timeout: .seconds(15)) == 0)
    }
}
