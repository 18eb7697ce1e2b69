import Foundation
import Testing
import TollgateLog

/// A consumer process killed with SIGKILL in the middle of a batch loses nothing: its group takes over its
/// partitions and reprocesses everything after the last commit.
@Suite("Consumer crash recovery", .serialized)
struct CrashRecoveryTests {
    struct Processed: Hashable {
        var partition: Int
        var offset: Int64
    }

    static func readRecord(_ path: String) -> [Processed] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 3, let partition = Int(fields[1]), let offset = Int64(fields[2]) else { return nil }
            return Processed(partition: partition, offset: offset)
        }
    }

    enum Engine: String, CaseIterable, Sendable {
        case embedded
        case kafka
    }

    @Test("SIGKILL mid-batch: no message lost, every message processed at least once", arguments: Engine.allCases)
    func sigkillMidBatch(engine: Engine) async throws {
        let directory = try TemporaryDirectory()
        let logDirectory = directory.path + "/log"
        // Embedded: the child shares the log directory. Kafka: the child connects to a mock cluster that
        // lives in this process (real Kafka protocol over loopback).
        let log: any MessageLog
        let logArguments: [String]
        // The mock cluster's group coordinator needs a session timeout of a few seconds.
        let sessionTimeoutMilliseconds: Int
        var cluster: KafkaMockCluster?
        switch engine {
        case .embedded:
            log = try EmbeddedLog.open(directory: logDirectory)
            logArguments = ["--log-dir", logDirectory]
            sessionTimeoutMilliseconds = 1_500
        case .kafka:
            let mock = try KafkaMockCluster()
            cluster = mock
            log = try KafkaLog(configuration: mock.configuration(), mockCluster: mock)
            logArguments = ["--brokers", mock.bootstrapServers]
            sessionTimeoutMilliseconds = 3_000
        }
        defer { withExtendedLifetime(cluster) {} }
        let topic = "crash"
        let total = 2_000
        let batch = 50
        try await log.provision([TopicSpec(name: topic, partitions: 4)])
        _ = try await log.produce((0..<total).map {
            OutgoingMessage(topic: topic, key: "key-\($0 % 97)", value: Data("message-\($0)".utf8))
        })

        // The child processes 5 ms per message and commits after each batch of 50.
        let record = directory.path + "/child.tsv"
        let child = try ChildProcess(["log", "consume"] + logArguments + [
            "--topic", topic, "--group", "workers", "--instance-id", "child", "--batch", "\(batch)",
            "--delay-ms", "5", "--session-timeout-ms", "\(sessionTimeoutMilliseconds)",
            "--record", record, "--quiet",
        ])
        // Wait until it has processed a few batches and is part-way through one: the record holds a number
        // of lines that is not a multiple of the batch size (a commit only follows a whole batch).
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(90))
        var seen = 0
        while clock.now < end {
            seen = Self.readRecord(record).count
            if seen >= 4 * batch && seen % batch != 0 { break }
            #expect(child.process.isRunning, "child exited early: \(child.stderr)")
            try await Task.sleep(for: .milliseconds(2))
        }
        child.signal(SIGKILL)
        #expect(try await child.waitForExit() == SIGKILL)
        let processedByChild = Self.readRecord(record)
        #expect(processedByChild.count >= 4 * batch)
        #expect(processedByChild.count < total)

        // What the child committed is less than what it processed: the kill landed mid-batch.
        let survivor = try await log.makeConsumer(ConsumerConfiguration(
            group: "workers", instanceID: "survivor", sessionTimeout: engine == .kafka ? .seconds(3) : .seconds(5),
            heartbeatInterval: .milliseconds(engine == .kafka ? 500 : 100)))
        try await survivor.subscribe([topic])
        let partitions = (0..<4).map { TopicPartition(topic: topic, partition: $0) }
        let committed = try await survivor.committed(partitions)
        let committedCount = committed.values.reduce(0, +)
        #expect(committedCount < Int64(processedByChild.count), "the kill should land inside a batch")
        #expect(committedCount % Int64(batch) == 0)

        // The survivor takes over the dead member's partitions after its session timeout and finishes.
        var processedBySurvivor: [Processed] = []
        let deadline = clock.now.advanced(by: .seconds(60))
        while clock.now < deadline {
            let messages = try await survivor.poll(maxMessages: 500, timeout: .milliseconds(100))
            processedBySurvivor += messages.map { Processed(partition: $0.partition, offset: $0.offset) }
            try await survivor.commit(messages.nextOffsets)
            let finished = try await survivor.committed(partitions).values.reduce(0, +) == Int64(total)
            if finished { break }
        }
        #expect(await survivor.assignment().count == 4)
        try await survivor.close()

        let expected = Set((try await log.watermarks(topic: topic)).flatMap { partition, marks in
            (marks.low..<marks.high).map { Processed(partition: partition, offset: $0) }
        })
        #expect(expected.count == total)
        let union = Set(processedByChild).union(processedBySurvivor)
        #expect(union == expected, "lost: \(expected.subtracting(union).count)")
        // The messages processed but not committed by the child were processed again: at least once.
        let reprocessed = Set(processedByChild).intersection(processedBySurvivor)
        #expect(reprocessed.count == processedByChild.count - Int(committedCount))
        // Nothing the child committed was handed out again.
        #expect(processedBySurvivor.count == total - Int(committedCount))
    }
}
