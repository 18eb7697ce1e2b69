import Foundation
import GRDB
import Testing
@testable import TollgateLog

@Suite("EmbeddedLog SQLite settings")
struct EmbeddedSettingsTests {
    @Test("a new log uses 16 KiB pages, so a 2 KB message fits in its B-tree cell")
    func newLogPageSize() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        defer { log.close() }
        #expect(try await log.pool.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 16_384)
        try await log.provision([TopicSpec(name: "t", partitions: 1)])
        _ = try await log.produce(OutgoingMessage(topic: "t", key: "k", value: Data(repeating: 7, count: 2_000)))
        let overflow = try await log.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dbstat WHERE name = 'messages' AND pagetype = 'overflow'")
        }
        #expect(overflow == 0)
    }

    @Test("a log created with 4 KiB pages keeps them and works as before")
    func existingLogPageSize() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/log.sqlite"
        let queue = try DatabaseQueue(path: path)
        try await queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 4096")
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE placeholder (id INTEGER PRIMARY KEY)")
        }
        try queue.close()
        let log = try EmbeddedLog.open(directory: directory.path)
        defer { log.close() }
        #expect(try await log.pool.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 4_096)
        try await log.provision([TopicSpec(name: "t", partitions: 1)])
        let value = Data(repeating: 9, count: 2_000)
        _ = try await log.produce(OutgoingMessage(topic: "t", key: "k", value: value))
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "g"))
        try await consumer.subscribe(["t"])
        #expect(try await drain(consumer, count: 1).map(\.value) == [value])
        try await consumer.close()
    }

    @Test("durability sets the writer's synchronous level", arguments: [
        (EmbeddedLog.Durability.processCrash, 1), (EmbeddedLog.Durability.powerLoss, 2),
    ])
    func synchronousLevel(durability: EmbeddedLog.Durability, level: Int) async throws {
        let directory = try TemporaryDirectory()
        var configuration = EmbeddedLog.Configuration()
        configuration.durability = durability
        let log = try EmbeddedLog.open(directory: directory.path, configuration: configuration)
        defer { log.close() }
        #expect(try await log.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == level)
    }

    @Test("the WAL is copied into the database file by the checkpoint thread, not by the writer")
    func backgroundCheckpoint() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        defer { log.close() }
        #expect(try await log.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") }
                == EmbeddedLog.fallbackAutocheckpointPages)
        try await log.provision([TopicSpec(name: "t", partitions: 1)])
        let before = log.checkpointer.completed.version
        _ = try await log.produce((0..<50).map { _ in
            OutgoingMessage(topic: "t", key: "k", value: Data(repeating: 1, count: 2_000))
        })
        await log.checkpointer.completed.wait(since: before, timeout: .seconds(30))
        #expect(log.checkpointer.completed.version > before)
        let size = try FileManager.default.attributesOfItem(atPath: directory.path + "/log.sqlite")[.size] as? Int
        #expect((size ?? 0) > 50 * 2_000)
    }
}
