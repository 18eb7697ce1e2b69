public import Foundation
public import GRDB
public import Logging
import Synchronization
public import TollgateEvents
public import TollgateLog

/// The projector's database: opening it, and applying batches of log messages to it exactly once.
///
/// One process writes (the projector); any number read (the query API, the CLI, the dashboard) through
/// WAL snapshots that never wait for the writer.
public final class ProjectionStore: Sendable {
    public let pool: DatabasePool
    public let path: String
    public let topicPrefix: String
    let logger: Logger
    /// Dimension strings already in `strings`, by value. Added to only inside write transactions, which
    /// the pool serializes; emptied when a transaction fails, since its new ids were rolled back, and then
    /// its generation changes, so that ids a batch looked up before (``decode(_:)``) are not trusted.
    private let interned = Mutex<(ids: [String: Int64], generation: Int)>(([:], 0))

    /// The topics the projector reads, with their prefix.
    public var topics: [String] {
        [UsageData.topic, BudgetDecisionData.topic, AlertData.topic, KeyCreatedData.topic].map { topicPrefix + $0 }
    }

    /// Opens (creating and migrating if needed) the database at `path`.
    public static func open(path: String, topicPrefix: String = TopicCatalog.defaultPrefix,
                            readonly: Bool = false,
                            logger: Logger = Logger(label: "tollgate.projections")) throws -> ProjectionStore {
        let url = URL(fileURLWithPath: path)
        var config = GRDB.Configuration()
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        config.label = "tollgate.projections"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 32 MiB of page cache per connection: the request indexes are written in random order.
            try db.execute(sql: "PRAGMA cache_size = -32768")
            // Checkpoint (copy the WAL into the database, with an fsync) every 64 MiB rather than 4 MiB: the
            // projector writes in large batches, and each checkpoint costs a sync whatever its size.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 16384")
        }
        let pool: DatabasePool
        do {
            if readonly {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw ProjectionError.notFound(path)
                }
            } else {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
            }
            pool = try DatabasePool(path: path, configuration: config)
            if !readonly {
                try ProjectionSchema.migrator.migrate(pool)
                // The writer inserts into the request indexes in random order (request id, cost): give its
                // connection a page cache large enough to keep them in memory.
                // Checkpoints run beside the writer (``Checkpointer``), not inside its commits; only a WAL
                // that grew past 256 MiB anyway (checkpoints falling behind) makes a commit checkpoint.
                try pool.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA cache_size = -262144")
                    try db.execute(sql: "PRAGMA wal_autocheckpoint = 65536")
                }
                try pool.write { db in
                    try db.execute(sql: "INSERT OR IGNORE INTO meta (name, value) VALUES ('projector_group', ?)",
                                   arguments: ["tollgate-projector-" + UUID().uuidString.lowercased()])
                    try db.execute(sql: "INSERT OR IGNORE INTO meta (name, value) VALUES ('created_at', ?)",
                                   arguments: [EventTime.format(Date())])
                }
            } else if try pool.read({ try ProjectionSchema.migrator.hasCompletedMigrations($0) }) == false {
                throw ProjectionError.schemaBehind(path)
            }
        } catch let error as ProjectionError {
            throw error
        } catch {
            throw ProjectionError.storage("cannot open the projections at \(path): \(error)")
        }
        return ProjectionStore(pool: pool, path: path, topicPrefix: topicPrefix, logger: logger,
                               checkpointer: readonly ? nil : try Checkpointer(path: path, logger: logger))
    }

    private init(pool: DatabasePool, path: String, topicPrefix: String, logger: Logger, checkpointer: Checkpointer?) {
        self.pool = pool
        self.path = path
        self.topicPrefix = topicPrefix
        self.logger = logger
        self.checkpointer = checkpointer
    }

    private let checkpointer: Checkpointer?

    // MARK: Offsets and identity

    /// The consumer group this database reads the log with. Each database has its own, so a rebuilt
    /// database starts from the beginning of the log and two projectors never share partitions.
    public func consumerGroup() throws -> String {
        try pool.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'projector_group'")
        } ?? "tollgate-projector"
    }

    /// Gives the database a fresh consumer group: used when the log's committed offsets for the old one
    /// are ahead of what the database holds (a database restored from a backup), so nothing is skipped.
    @discardableResult
    public func renewConsumerGroup() throws -> String {
        let group = "tollgate-projector-" + UUID().uuidString.lowercased()
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (name, value) VALUES ('projector_group', ?)",
                           arguments: [group])
        }
        return group
    }

    /// The next offset to apply, per topic partition.
    public func offsets() throws -> [TopicPartition: Int64] {
        try pool.read { db in try Self.offsets(db) }
    }

    static func offsets(_ db: Database) throws -> [TopicPartition: Int64] {
        var offsets: [TopicPartition: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT topic, partition, next_offset FROM offsets") {
            offsets[TopicPartition(topic: row[0], partition: row[1])] = row[2]
        }
        return offsets
    }

    // MARK: Applying

    /// What one call of ``apply(_:)`` did.
    public struct ApplyReport: Sendable, Hashable {
        /// Messages applied (each changed the projections, or was a duplicate by content).
        public var applied = 0
        /// Messages at offsets the database already holds: skipped.
        public var alreadyApplied = 0
        /// Usage events for a request the database already has (a re-published event): skipped.
        public var duplicates = 0
        /// Messages that could not be decoded: recorded in `rejected` with the reason.
        public var rejected = 0
        /// Messages from topics the projector does not read.
        public var ignored = 0
        public var byTopic: [String: Int] = [:]

        public init() {}
    }

    /// A batch of messages decoded, ready for ``apply(_:)-(DecodedBatch)``. Decoding needs no database, so
    /// a projector decodes the next batch while the current one is written.
    public struct DecodedBatch: Sendable {
        public let messages: [ConsumedMessage]
        let decoded: [ProjectionBatch.Decoded]
        /// The generation of the string ids the decoding looked up.
        let generation: Int

        public var count: Int { messages.count }
    }

    /// Decodes a batch (on every core when it is large), without touching the database: events, their
    /// rollup measures, and the ids of the dimension strings the database already has.
    public func decode(_ messages: [ConsumedMessage]) -> DecodedBatch {
        let known = interned.withLock { $0 }
        return DecodedBatch(messages: messages, decoded: ProjectionBatch.decodeAll(messages, topicPrefix: topicPrefix,
                                                                                     known: known.ids),
                            generation: known.generation)
    }

    /// Decodes and applies a batch of messages; see ``apply(_:)-(DecodedBatch)``.
    @discardableResult
    public func apply(_ messages: [ConsumedMessage]) throws -> ApplyReport {
        try apply(decode(messages))
    }

    /// Applies a decoded batch and the offsets after it in one transaction: either all of it lands or
    /// none does. Messages below the stored offset of their partition are skipped, so a batch seen twice
    /// (a crash between this write and the log's commit) changes nothing.
    @discardableResult
    public func apply(_ decoded: DecodedBatch) throws -> ApplyReport {
        do {
            let messages = decoded.messages
            let report = try pool.write { db in
                var stored = try Self.offsets(db)
                var batch = ProjectionBatch(store: self, db: db, expected: messages.count,
                                            trustLookups: decoded.generation == interned.withLock { $0.generation })
                var advanced = Set<TopicPartition>()
                for index in messages.indices {
                    let position = messages[index].topicPartition
                    if messages[index].offset < stored[position] ?? 0 {
                        batch.report.alreadyApplied += 1
                        continue
                    }
                    stored[position] = messages[index].offset + 1
                    advanced.insert(position)
                    try batch.apply(messages[index], decoded.decoded[index])
                }
                try batch.finish()
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)
                    ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                    """)
                for position in advanced {
                    try statement.execute(arguments: [position.topic, position.partition, stored[position] ?? 0])
                }
                return batch.report
            }
            checkpointer?.afterWrite()
            return report
        } catch {
            interned.withLock { interned in
                interned.ids.removeAll()
                interned.generation += 1
            }
            throw error
        }
    }

    /// The id of a dimension string, adding it when new. Call only inside a write transaction.
    func intern(_ value: String, _ db: Database) throws -> Int64 {
        if let id = interned.withLock({ $0.ids[value] }) { return id }
        let id: Int64
        if let existing = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM strings WHERE value = ?"),
                                             arguments: [value]) {
            id = existing
        } else {
            try db.cachedStatement(sql: "INSERT INTO strings (value) VALUES (?)").execute(arguments: [value])
            id = db.lastInsertedRowID
        }
        interned.withLock { $0.ids[value] = id }
        return id
    }
}

public enum ProjectionError: Error, Sendable, Hashable, CustomStringConvertible {
    case notFound(String)
    case schemaBehind(String)
    case storage(String)

    public var description: String {
        switch self {
        case .notFound(let path):
            "no projections database at \(path): start the projector (tollgate serve or tollgate projector) first"
        case .schemaBehind(let path):
            "the projections database at \(path) has an older schema: start the projector once to migrate it"
        case .storage(let message): message
        }
    }
}

/// Copies the WAL back into the database on a connection and thread of its own (PASSIVE checkpoints never
/// block the writer or readers) after writes, once the WAL is past `threshold` (SQLite's own automatic
/// checkpoint size), one at a time; the projector's commits then never wait for a checkpoint and its
/// fsync. What a checkpoint could not copy (pages a reader still needs) the next one copies.
final class Checkpointer: Sendable {
    static let threshold: Int64 = 4 << 20
    private let walPath: String
    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "tollgate.projections.checkpoint")
    private let running = Mutex(false)
    private let logger: Logger

    init(path: String, logger: Logger) throws {
        walPath = path + "-wal"
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "tollgate.projections.checkpoint"
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.logger = logger
    }

    func afterWrite() {
        let size = (try? FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int64) ?? 0
        guard size >= Self.threshold, running.withLock({ busy in
            defer { busy = true }
            return !busy
        }) else { return }
        queue.async { [self] in
            do {
                try connection.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
            } catch {
                logger.warning("projections checkpoint failed; the next write retries", metadata: ["db.error": "\(error)"])
            }
            running.withLock { $0 = false }
        }
    }
}
