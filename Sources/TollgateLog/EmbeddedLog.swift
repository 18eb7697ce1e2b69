public import Foundation
import GRDB
public import Logging
import Synchronization

/// The one-machine engine of ``MessageLog``: durable on local disk, shared safely by several processes.
///
/// The log is one SQLite database (`log.sqlite`) in WAL mode inside a directory. Every process that opens
/// the same directory sees the same topics, offsets and consumer groups; SQLite's locking serializes
/// writers across processes, and each process groups its own appends into one transaction per round
/// (group commit) on a dedicated writer thread, so throughput comes from batching, not from many small
/// transactions. A second thread copies the WAL back into the database file after commits (``Checkpointer``),
/// so the writer only appends. Consumers in this process are woken as soon as an append commits; appends
/// from other processes are seen within ``Configuration/crossProcessPollInterval``.
///
/// Durability: with the default ``Durability/processCrash`` a message acknowledged by ``produce(_:)``
/// survives the crash of any process (SQLite `synchronous=NORMAL` in WAL mode); ``Durability/powerLoss``
/// also fsyncs every commit, at a cost in throughput.
///
/// ```swift
/// let log = try EmbeddedLog.open(directory: "/var/lib/tollgate/log")
/// try await log.provision([TopicSpec(name: "tollgate.usage", partitions: 8)])
/// ```
public final class EmbeddedLog: MessageLog {
    /// Settings of an embedded log.
    public struct Configuration: Sendable {
        /// How often an idle consumer re-reads the partition heads to see appends by other processes.
        /// Default 5 ms.
        public var crossProcessPollInterval: Duration = .milliseconds(5)
        /// How long a writer waits for another process's write lock before failing. Default 10 s.
        public var busyTimeout: Duration = .seconds(10)
        /// What an acknowledged message survives. Default ``Durability/processCrash``.
        public var durability: Durability = .processCrash
        /// Most messages written in one transaction. Default 5,000.
        public var maxMessagesPerTransaction: Int = 5_000

        public init() {}
    }

    /// What an acknowledged append survives.
    public enum Durability: String, Sendable {
        /// The crash of any process (SQLite `synchronous=NORMAL` in WAL mode).
        case processCrash = "process-crash"
        /// Also a power loss or kernel crash (`synchronous=FULL`: an fsync per commit).
        case powerLoss = "power-loss"
    }

    /// The directory holding the log.
    public let directory: URL
    let configuration: Configuration
    let pool: DatabasePool
    let notifier = ChangeNotifier()
    let topicNotifiers = TopicNotifiers()

    /// The notifier signalled after every commit that appended to `topic`.
    func notifier(forTopic topic: String) -> ChangeNotifier {
        topicNotifiers.notifier(topic)
    }
    let logger: Logger
    private let writer: Writer
    let checkpointer: Checkpointer

    /// Page size of a new log database (bytes).
    static let pageSize = 16_384
    /// WAL pages past which the writer checkpoints inline (SQLite's `wal_autocheckpoint`), should the
    /// ``Checkpointer`` fall this far behind (SQLite's default is 1,000).
    static let fallbackAutocheckpointPages = 16_384

    /// Opens (creating if needed) the log in `directory`.
    public static func open(directory: String, configuration: Configuration = Configuration(),
                            logger: Logger = Logger(label: "tollgate.log.embedded")) throws -> EmbeddedLog {
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var config = GRDB.Configuration()
        config.busyMode = .timeout(TimeInterval(configuration.busyTimeout.components.seconds))
        config.maximumReaderCount = 8
        config.label = "tollgate.log"
        let synchronous = configuration.durability == .powerLoss ? "FULL" : "NORMAL"
        config.prepareDatabase { db in
            // Applies to a new database only (the page size of an existing one is kept): 16 KiB pages hold
            // a message of up to ~4 KB in its B-tree cell. With SQLite's default 4 KiB pages the `messages`
            // table (WITHOUT ROWID) keeps at most ~1 KB of a row inline and puts the rest of a typical
            // 1.5–2 KB event in an overflow page of its own: three to four times the bytes written.
            try db.execute(sql: "PRAGMA page_size = \(pageSize)")
            // Pages cached per connection (negative: KiB): 16 MiB for the writer, enough for a group commit
            // of 5,000 2-KB events without spilling to the WAL mid-transaction; 4 MiB per reader. Larger
            // caches (64 and 16 MiB) and mmap gave no measurable throughput (bench cost, 39-45k against
            // 39-40k events/s) for 33 MiB more resident memory in serve, counted against the ingress's
            // memory target. No mmap: a consumer reads the tail, which is in the WAL, not the mapped file.
            try db.execute(sql: "PRAGMA cache_size = -\(db.configuration.readonly ? 4_096 : 16_384)")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let path = url.appendingPathComponent("log.sqlite").path
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // GRDB sets `synchronous = NORMAL` on the writer after preparing it (with WAL mode): set the
            // configured level again on the one connection that writes.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                // Checkpoints run on the checkpointer's thread; the writer only steps in when the WAL is
                // far behind.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(fallbackAutocheckpointPages)")
            }
            try EmbeddedSchema.migrator.migrate(pool)
        } catch {
            throw LogError.storage("cannot open the log at \(path): \(error)")
        }
        var checkpointConfiguration = GRDB.Configuration()
        checkpointConfiguration.busyMode = config.busyMode
        checkpointConfiguration.label = "tollgate.log.checkpoint"
        checkpointConfiguration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let checkpointer = Checkpointer(path: path, configuration: checkpointConfiguration, logger: logger)
        let log = EmbeddedLog(directory: url, configuration: configuration, pool: pool, checkpointer: checkpointer,
                              logger: logger)
        checkpointer.start()
        log.writer.start()
        logger.info("embedded log opened", metadata: ["log.path": "\(path)"])
        return log
    }

    private init(directory: URL, configuration: Configuration, pool: DatabasePool, checkpointer: Checkpointer,
                 logger: Logger) {
        self.directory = directory
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
        self.checkpointer = checkpointer
        self.writer = Writer(pool: pool, notifier: notifier, topicNotifiers: topicNotifiers,
                             checkpointer: checkpointer, logger: logger,
                             maxMessagesPerTransaction: configuration.maxMessagesPerTransaction)
    }

    /// Stops the writer thread after it has written everything queued, then the checkpoint thread. Later
    /// calls fail with ``LogError/closed``.
    public func close() {
        writer.stop()
        checkpointer.stop()
    }

    deinit {
        writer.stop()
        checkpointer.stop()
    }

    // MARK: Topics

    public func provision(_ specs: [TopicSpec]) async throws {
        for spec in specs {
            guard !spec.name.isEmpty, spec.partitions > 0 else {
                throw LogError.invalidTopicSpec("topic '\(spec.name)' needs a name and at least one partition")
            }
        }
        let now = Self.nowMilliseconds()
        try await pool.write { db in
            for spec in specs {
                if let existing = try TopicMeta.load(db, name: spec.name) {
                    guard spec.partitions >= existing.spec.partitions else {
                        throw LogError.partitionCountCannotShrink(
                            topic: spec.name, existing: existing.spec.partitions, requested: spec.partitions)
                    }
                    try db.execute(
                        sql: """
                            UPDATE topics SET partitions = ?, cleanup_policy = ?, retention_ms = ?,
                                retention_bytes = ? WHERE id = ?
                            """,
                        arguments: [spec.partitions, spec.cleanupPolicy.rawValue, spec.retentionMilliseconds,
                                    spec.retentionBytes, existing.id])
                    for partition in existing.spec.partitions..<spec.partitions {
                        try db.execute(sql: "INSERT INTO partitions (topic_id, partition) VALUES (?, ?)",
                                       arguments: [existing.id, partition])
                    }
                } else {
                    try db.execute(
                        sql: """
                            INSERT INTO topics (name, partitions, cleanup_policy, retention_ms, retention_bytes,
                                created_at) VALUES (?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [spec.name, spec.partitions, spec.cleanupPolicy.rawValue,
                                    spec.retentionMilliseconds, spec.retentionBytes, now])
                    let topicID = db.lastInsertedRowID
                    for partition in 0..<spec.partitions {
                        try db.execute(sql: "INSERT INTO partitions (topic_id, partition) VALUES (?, ?)",
                                       arguments: [topicID, partition])
                    }
                }
            }
        }
    }

    public func topics() async throws -> [TopicSpec] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name FROM topics ORDER BY name").compactMap { row in
                try TopicMeta.load(db, name: row["name"])?.spec
            }
        }
    }

    /// Per-partition statistics of a topic: watermarks, bytes retained.
    public func statistics(topic: String) async throws -> [PartitionStatistics] {
        try await pool.read { db in
            guard let meta = try TopicMeta.load(db, name: topic) else { throw LogError.unknownTopic(topic) }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT partition, start_offset, next_offset, bytes, last_timestamp,
                        (SELECT COUNT(*) FROM messages m WHERE m.partition_id = p.id) AS messages
                    FROM partitions p WHERE topic_id = ? ORDER BY partition
                    """,
                arguments: [meta.id]
            ).map { row in
                PartitionStatistics(partition: row["partition"], low: row["start_offset"], high: row["next_offset"],
                                    messages: row["messages"], bytes: row["bytes"],
                                    lastAppendMilliseconds: row["last_timestamp"])
            }
        }
    }

    public func watermarks(topic: String) async throws -> [Int: PartitionWatermarks] {
        try await pool.read { db in
            guard let meta = try TopicMeta.load(db, name: topic) else { throw LogError.unknownTopic(topic) }
            var result: [Int: PartitionWatermarks] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT partition, start_offset, next_offset FROM partitions WHERE topic_id = ?",
                arguments: [meta.id]) {
                result[row["partition"]] = PartitionWatermarks(low: row["start_offset"], high: row["next_offset"])
            }
            return result
        }
    }

    // MARK: Producing

    public func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck] {
        if messages.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            writer.enqueue(messages, continuation: continuation)
        }
    }

    // MARK: Consuming

    public func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        EmbeddedConsumer(log: self, configuration: configuration)
    }

    // MARK: Helpers

    static func nowMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}

/// Per-partition figures of a topic in the embedded log.
public struct PartitionStatistics: Sendable, Hashable {
    public var partition: Int
    public var low: Int64
    public var high: Int64
    public var messages: Int64
    public var bytes: Int64
    public var lastAppendMilliseconds: Int64
}

/// A topic's row and its partition ids, read inside a transaction.
struct TopicMeta: Sendable {
    var id: Int64
    var spec: TopicSpec
    /// Database id of each partition, indexed by partition number.
    var partitionIDs: [Int64]

    static func load(_ db: Database, name: String) throws -> TopicMeta? {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT id, partitions, cleanup_policy, retention_ms, retention_bytes FROM topics WHERE name = ?
                """),
            arguments: [name]) else { return nil }
        let id: Int64 = row["id"]
        let ids = try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT id FROM partitions WHERE topic_id = ? ORDER BY partition"),
            arguments: [id])
        let policy = CleanupPolicy(rawValue: row["cleanup_policy"]) ?? .delete
        let spec = TopicSpec(name: name, partitions: row["partitions"], cleanupPolicy: policy,
                             retentionMilliseconds: row["retention_ms"], retentionBytes: row["retention_bytes"])
        return TopicMeta(id: id, spec: spec, partitionIDs: ids)
    }
}

/// Binary encoding of message headers in the `headers` column: for each header, a 4-byte big-endian name
/// length, the UTF-8 name, a 4-byte value length, the value.
enum HeaderCoding {
    static func encode(_ headers: [MessageHeader]) -> Data? {
        if headers.isEmpty { return nil }
        var data = Data()
        for header in headers {
            let name = Data(header.name.utf8)
            append(UInt32(name.count), to: &data)
            data.append(name)
            append(UInt32(header.value.count), to: &data)
            data.append(header.value)
        }
        return data
    }

    static func decode(_ data: Data?) -> [MessageHeader] {
        guard let data, !data.isEmpty else { return [] }
        var headers: [MessageHeader] = []
        var index = data.startIndex
        func readLength() -> Int? {
            guard data.endIndex - index >= 4 else { return nil }
            let value = data[index..<index + 4].reduce(0) { ($0 << 8) | Int($1) }
            index += 4
            return value
        }
        while index < data.endIndex {
            guard let nameLength = readLength(), data.endIndex - index >= nameLength else { break }
            let name = String(decoding: data[index..<index + nameLength], as: UTF8.self)
            index += nameLength
            guard let valueLength = readLength(), data.endIndex - index >= valueLength else { break }
            headers.append(MessageHeader(name, Data(data[index..<index + valueLength])))
            index += valueLength
        }
        return headers
    }

    private static func append(_ value: UInt32, to data: inout Data) {
        withUnsafeBytes(of: value.bigEndian) { data.append(contentsOf: $0) }
    }
}

/// One ``ChangeNotifier`` per topic, made on first use.
final class TopicNotifiers: Sendable {
    private let notifiers = Mutex<[String: ChangeNotifier]>([:])

    func notifier(_ topic: String) -> ChangeNotifier {
        notifiers.withLock { notifiers in
            if let existing = notifiers[topic] { return existing }
            let created = ChangeNotifier()
            notifiers[topic] = created
            return created
        }
    }
}
