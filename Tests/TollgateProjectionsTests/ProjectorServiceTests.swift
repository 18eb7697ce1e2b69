import Foundation
import GRDB
import Logging
import Synchronization
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateProjections

@Suite("Projector service on the embedded log: exactly once across crashes and restores")
struct ProjectorServiceTests {
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// A log with `count` usage events on the usage topic.
    static func log(_ directory: URL, count: Int) async throws -> (EmbeddedLog, [UsageEvent]) {
        let log = try EmbeddedLog.open(directory: directory.appendingPathComponent("log").path, logger: quiet)
        try await log.provision(TopicCatalog.all.map { topic in
            TopicSpec(name: topic.fullName(prefix: TopicCatalog.defaultPrefix), partitions: topic.partitions,
                      cleanupPolicy: topic.cleanupPolicy == .compact ? .compact : .delete)
        })
        let events = (0..<count).map { index in
            Traffic.usage(index, team: ["search", "ads", "support", "ml"][index % 4], model: "gpt-4o",
                          at: Traffic.base.addingTimeInterval(Double(index) * 60))
        }
        _ = try await log.produce(try events.map { event in
            OutgoingMessage(topic: "tollgate.usage", key: event.data.messageKey, value: try EventCoding.encode(event))
        })
        return (log, events)
    }

    static func replay(_ log: EmbeddedLog, _ store: ProjectionStore) async throws -> ProjectionStore.ApplyReport {
        var configuration = ProjectorService.Configuration()
        configuration.stopWhenCaughtUp = true
        let total = Mutex(ProjectionStore.ApplyReport())
        try await ProjectorService(log: log, store: store, configuration: configuration, logger: quiet,
                                   onBatch: { progress in
                                       total.withLock {
                                           $0.applied += progress.report.applied
                                           $0.alreadyApplied += progress.report.alreadyApplied
                                       }
                                   }).run()
        return total.withLock { $0 }
    }

    static func totals(_ store: ProjectionStore) throws -> Expected {
        Expected(try store.usage(UsageQuery(from: Traffic.base.addingTimeInterval(-86_400),
                                            to: Traffic.base.addingTimeInterval(30 * 86_400))).totals)
    }

    @Test("the projector applies the log once; a crash between write and commit re-reads but changes nothing")
    func crashBetweenWriteAndCommit() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (log, events) = try await Self.log(directory, count: 600)
        defer { log.close() }
        let store = try openStore(directory)
        // The "crashed" projector: it read a batch with the database's group and wrote it, then died
        // before committing the offsets to the log.
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: try store.consumerGroup()))
        try await consumer.subscribe(store.topics)
        var batch: [ConsumedMessage] = []
        for _ in 0..<30 where batch.count < 250 {
            batch += try await consumer.poll(maxMessages: 250 - batch.count, timeout: .seconds(1))
        }
        try #require(batch.count == 250)
        try await consumer.close()
        try store.apply(batch)
        #expect(try store.status().requests == 250)

        let report = try await Self.replay(log, store)
        #expect(report.alreadyApplied == 250)
        #expect(report.applied == 350)
        #expect(try Self.totals(store) == Expected(events))

        // Restarted again: nothing new, nothing counted twice.
        _ = try await log.produce(try events.prefix(10).map { event in  // and the cost service re-published 10
            OutgoingMessage(topic: "tollgate.usage", key: event.data.messageKey, value: try EventCoding.encode(event))
        })
        let again = try await Self.replay(log, store)
        #expect(again.applied == 0)
        #expect(try Self.totals(store) == Expected(events))
    }

    @Test("a database restored from an older backup reads again what it lacks")
    func restoredBackup() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (log, events) = try await Self.log(directory, count: 300)
        defer { log.close() }
        let backupPath = directory.appendingPathComponent("backup.sqlite").path
        let backup = try ProjectionStore.open(path: backupPath, logger: Self.quiet)
        let live = try openStore(directory)
        // The live database shares the backup's identity (it was copied from it before any traffic).
        let group = try backup.consumerGroup()
        try await live.pool.write { try $0.execute(sql: "UPDATE meta SET value = ? WHERE name = 'projector_group'", arguments: [group]) }
        _ = try await Self.replay(log, live)
        #expect(try Self.totals(live) == Expected(events))
        // Now the live database is lost and the (empty) backup comes back: the log's offsets for the group
        // are ahead of it.
        let report = try await Self.replay(log, backup)
        #expect(try backup.consumerGroup() != group)
        #expect(report.applied == 300)
        #expect(try Self.totals(backup) == Expected(events))
    }

    @Test("a batch the database refuses is read again, with the batch polled behind it, after a pause")
    func refusedBatchIsReadAgain() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (log, events) = try await Self.log(directory, count: 600)
        defer { log.close() }
        let store = try openStore(directory)
        // The database refuses any batch holding request 250 while `refuse` is set in meta.
        let refusedID = events[250].data.response.requestID.replacingOccurrences(of: "'", with: "''")
        try await store.pool.write { db in
            try db.execute(sql: "INSERT INTO meta (name, value) VALUES ('refuse', '1')")
            try db.execute(sql: """
                CREATE TRIGGER refuse BEFORE INSERT ON requests
                WHEN NEW.request_id = '\(refusedID)' AND (SELECT value FROM meta WHERE name = 'refuse') = '1'
                BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                """)
        }
        // The service logs the refusal; the test then lets the database accept writes again.
        let (refusals, refused) = AsyncStream.makeStream(of: Void.self)
        var logger = Logger(label: "test") { _ in
            CallbackLogHandler { level, message in
                if level == .error, message.hasPrefix("projector could not write a batch") { refused.yield() }
            }
        }
        logger.logLevel = .error
        var configuration = ProjectorService.Configuration()
        configuration.stopWhenCaughtUp = true
        configuration.batchSize = 100
        let applied = Mutex(0)
        let service = ProjectorService(log: log, store: store, configuration: configuration, logger: logger,
                                       onBatch: { progress in applied.withLock { $0 += progress.report.applied } })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            group.addTask {
                var iterator = refusals.makeAsyncIterator()
                _ = await iterator.next()
                #expect(try store.status().requests < 600)
                try await store.pool.write { try $0.execute(sql: "UPDATE meta SET value = '0' WHERE name = 'refuse'") }
            }
            try await group.waitForAll()
        }
        #expect(applied.withLock { $0 } == 600)
        #expect(try store.status().requests == 600)
        #expect(try Self.totals(store) == Expected(events))
    }
}

/// Hands every log message to a closure (with its level), for tests that wait on what a service logs.
struct CallbackLogHandler: LogHandler {
    let callback: @Sendable (Logger.Level, String) -> Void
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    init(_ callback: @escaping @Sendable (Logger.Level, String) -> Void) { self.callback = callback }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { callback(event.level, event.message.description) }
}
