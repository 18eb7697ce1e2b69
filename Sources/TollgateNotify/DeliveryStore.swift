public import Foundation
public import GRDB
public import Logging
public import TollgateEvents
import TollgateLog

/// One alert to queue for one channel.
public struct NewDelivery: Sendable, Hashable {
    /// The alert's id.
    public var alertID: String
    /// The channel's name.
    public var channel: String
    /// The alert's `tollgate.alert.v1` event, canonical JSON.
    public var event: Data
    /// The alert's severity, scope, title and time, kept beside the event for listings.
    public var severity: AlertData.Severity
    public var scope: String
    public var title: String
    public var raisedAt: Date

    /// A delivery of `event` to `channel`.
    public init(event: AlertEvent, channel: String) throws {
        self.init(event: event, json: try EventCoding.encode(event), channel: channel)
    }

    /// A delivery of `event` to `channel`, with the event's JSON already encoded (one encoding for every channel).
    public init(event: AlertEvent, json: Data, channel: String) {
        alertID = event.data.alertID
        self.channel = channel
        self.event = json
        severity = event.data.severity
        scope = event.data.scope.description
        title = event.data.title
        raisedAt = event.data.raisedAt
    }
}

/// A partition of a topic, as a key of consumed offsets.
public struct OffsetKey: Sendable, Hashable, Codable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)/\(partition)" }
}

/// Where a delivery stands.
public enum DeliveryState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Waiting for its first attempt or a retry (`next_attempt_at`).
    case pending
    /// An attempt is under way. A delivery still `sending` when the process stopped is sent again at the
    /// next start (at least once).
    case sending
    /// The channel took it. Never sent again.
    case delivered
    /// Dead-lettered: refused for good, or out of retries. `last_error` says why.
    case dead
}

/// One delivery's status, for listings.
public struct DeliveryStatus: Sendable, Hashable, Codable {
    public var alertID: String
    public var channel: String
    public var state: DeliveryState
    /// Attempts made (or started) so far.
    public var attempts: Int
    /// When the next attempt is due (pending deliveries only).
    public var nextAttemptAt: Date?
    public var lastAttemptAt: Date?
    /// Why the last attempt failed, if one did.
    public var lastError: String?
    public var deliveredAt: Date?
    public var deadAt: Date?
    /// When the delivery was queued.
    public var createdAt: Date
    public var severity: AlertData.Severity
    /// `kind:id`.
    public var scope: String
    public var title: String
    public var raisedAt: Date

    enum CodingKeys: String, CodingKey {
        case alertID = "alert_id"
        case channel, state, attempts
        case nextAttemptAt = "next_attempt_at"
        case lastAttemptAt = "last_attempt_at"
        case lastError = "last_error"
        case deliveredAt = "delivered_at"
        case deadAt = "dead_at"
        case createdAt = "created_at"
        case severity, scope, title
        case raisedAt = "raised_at"
    }
}

/// An alert and its deliveries, for `tollgate alerts list`.
public struct AlertDeliveries: Sendable, Hashable, Codable {
    public var alertID: String
    public var severity: AlertData.Severity
    public var scope: String
    public var title: String
    public var raisedAt: Date
    /// One per channel, by channel name.
    public var deliveries: [DeliveryStatus]

    enum CodingKeys: String, CodingKey {
        case alertID = "alert_id"
        case severity, scope, title
        case raisedAt = "raised_at"
        case deliveries
    }
}

/// A delivery taken for an attempt.
struct ClaimedDelivery: Sendable, Hashable {
    var alertID: String
    var channel: String
    /// This attempt's number, 1 for the first.
    var attempt: Int
    var event: Data
}

/// The durable outbox of alert deliveries, in SQLite (WAL).
///
/// Each (alert, channel) pair is one row, inserted with `INSERT OR IGNORE`: an alert raised again, or an
/// alert event read again after a restart, is queued once per channel whatever happens. A row goes
/// `pending` → `sending` (an attempt started; `attempts` counts it) → `delivered`, back to `pending` with a
/// later `next_attempt_at` after a failure worth retrying, or to `dead` (the dead letters, also in the view
/// `dead_letters`). A `delivered` row is never sent again.
///
/// The alerts service keeps its fold here too: ``commit(deliveries:state:offsets:now:)`` writes the
/// deliveries an event produced, the fold's snapshot and the consumed offsets in one transaction, so after
/// a crash the service resumes from a state that matches its outbox exactly.
///
/// One process writes (the alerts service with its ``Deliverer``); others may read with `readonly: true`.
/// Calls block on SQLite: from async code run them off the cooperative pool.
public final class DeliveryStore: Sendable {
    /// The database.
    public let pool: DatabasePool
    /// Its file.
    public let path: String
    let logger: Logger
    /// Signalled after every change that may give the deliverer work.
    let wakeup = ChangeNotifier()

    private init(pool: DatabasePool, path: String, logger: Logger) {
        self.pool = pool
        self.path = path
        self.logger = logger
    }

    /// Opens the store at `path`, creating and migrating it unless `readonly`.
    public static func open(path: String, readonly: Bool = false,
                            logger: Logger = Logger(label: "tollgate.notify")) throws -> DeliveryStore {
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "tollgate.deliveries"
        configuration.readonly = readonly
        configuration.prepareDatabase { db in
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        }
        do {
            if readonly {
                guard FileManager.default.fileExists(atPath: path) else { throw DeliveryStoreError.notFound(path) }
            } else {
                try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
            }
            let pool = try DatabasePool(path: path, configuration: configuration)
            if readonly {
                guard try pool.read({ try DeliverySchema.migrator.hasCompletedMigrations($0) }) else {
                    throw DeliveryStoreError.schemaBehind(path)
                }
            } else {
                try DeliverySchema.migrator.migrate(pool)
            }
            return DeliveryStore(pool: pool, path: path, logger: logger)
        } catch let error as DeliveryStoreError {
            throw error
        } catch {
            throw DeliveryStoreError.storage("cannot open the alert deliveries at \(path): \(error)")
        }
    }

    // MARK: Queueing, with the fold's state

    /// Queues `deliveries` and saves the fold's `state` and the consumed `offsets`, in one transaction.
    ///
    /// Deliveries already queued (same alert and channel, in any state) are left as they are. A `nil` state
    /// leaves the saved one unchanged; offsets are set to the given values, other partitions untouched.
    ///
    /// - Returns: How many deliveries were new.
    @discardableResult
    public func commit(deliveries: [NewDelivery], state: Data?, offsets: [OffsetKey: Int64],
                       now: Date = Date()) throws -> Int {
        let inserted = try pool.write { db -> Int in
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO deliveries
                    (alert_id, channel, event, severity, scope, title, raised_at, state, attempts, next_attempt_at,
                     created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
                """)
            var inserted = 0
            let millis = Self.millis(now)
            for delivery in deliveries {
                try insert.execute(arguments: [
                    delivery.alertID, delivery.channel, delivery.event, delivery.severity.rawValue, delivery.scope,
                    delivery.title, Self.millis(delivery.raisedAt), millis, millis,
                ])
                inserted += db.changesCount
            }
            if let state {
                try db.execute(sql: """
                    INSERT INTO fold_state (id, state, updated_at) VALUES (1, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
                    """, arguments: [state, millis])
            }
            let offset = try db.cachedStatement(sql: """
                INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)
                ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                """)
            for (key, value) in offsets {
                try offset.execute(arguments: [key.topic, key.partition, value])
            }
            return inserted
        }
        if inserted > 0 { wakeup.signal() }
        return inserted
    }

    /// Queues `deliveries` (see ``commit(deliveries:state:offsets:now:)``).
    @discardableResult
    public func enqueue(_ deliveries: [NewDelivery], now: Date = Date()) throws -> Int {
        try commit(deliveries: deliveries, state: nil, offsets: [:], now: now)
    }

    /// The consumer group this database's alerts service reads with: `<prefix>-<uuid>`, made at first use.
    public func consumerGroup(prefix: String) throws -> String {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO meta (name, value) VALUES ('consumer_group', ?)",
                           arguments: [prefix + "-" + UUID().uuidString.lowercased()])
            return try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'consumer_group'") ?? prefix
        }
    }

    /// Gives the database a fresh consumer group: used when the log's committed offsets for the old one are
    /// ahead of what the database holds (it was restored from a backup), so nothing is skipped.
    @discardableResult
    public func renewConsumerGroup(prefix: String) throws -> String {
        let group = prefix + "-" + UUID().uuidString.lowercased()
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (name, value) VALUES ('consumer_group', ?)",
                           arguments: [group])
        }
        return group
    }

    /// The fold's saved state (`nil` before the first save) and the saved offsets.
    public func loadState() throws -> (state: Data?, offsets: [OffsetKey: Int64]) {
        try pool.read { db in
            let state = try Data.fetchOne(db, sql: "SELECT state FROM fold_state WHERE id = 1")
            var offsets: [OffsetKey: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT topic, partition, next_offset FROM offsets") {
                offsets[OffsetKey(topic: row[0], partition: row[1])] = row[2]
            }
            return (state, offsets)
        }
    }

    // MARK: Listings

    /// The latest `limit` alerts (by when they were queued), newest first, each with its deliveries.
    public func recent(limit: Int = 50) throws -> [AlertDeliveries] {
        try pool.read { db in
            let ids = try String.fetchAll(db, sql: """
                SELECT alert_id FROM deliveries GROUP BY alert_id ORDER BY MAX(created_at) DESC, alert_id LIMIT ?
                """, arguments: [max(limit, 0)])
            return try ids.compactMap { id in
                let statuses = try Self.statuses(db, where: "alert_id = ?", arguments: [id])
                guard let first = statuses.first else { return nil }
                return AlertDeliveries(alertID: id, severity: first.severity, scope: first.scope, title: first.title,
                                       raisedAt: first.raisedAt, deliveries: statuses)
            }
        }
    }

    /// The deliveries of one alert, by channel name.
    public func deliveries(alertID: String) throws -> [DeliveryStatus] {
        try pool.read { db in try Self.statuses(db, where: "alert_id = ?", arguments: [alertID]) }
    }

    /// The latest `limit` dead letters, newest first.
    public func deadLetters(limit: Int = 100) throws -> [DeliveryStatus] {
        try pool.read { db in
            try Self.statuses(db, where: "state = 'dead'", arguments: [], order: "dead_at DESC, alert_id, channel",
                              limit: limit)
        }
    }

    /// How many deliveries are in each state (states without any are absent).
    public func counts() throws -> [DeliveryState: Int] {
        try pool.read { db in
            var counts: [DeliveryState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM deliveries GROUP BY state") {
                if let state = DeliveryState(rawValue: row[0]) { counts[state] = row[1] }
            }
            return counts
        }
    }

    /// How many deliveries wait for an attempt or are being attempted.
    public func outstanding() throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending')") ?? 0
        }
    }

    // MARK: Operations

    /// Queues dead letters again (all of them, one alert's, one channel's, or one delivery), due now with
    /// their attempts reset.
    ///
    /// - Returns: How many were queued again.
    @discardableResult
    public func requeueDead(alertID: String? = nil, channel: String? = nil, now: Date = Date()) throws -> Int {
        let changed = try pool.write { db -> Int in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, dead_at = NULL
                WHERE state = 'dead' AND (?2 IS NULL OR alert_id = ?2) AND (?3 IS NULL OR channel = ?3)
                """, arguments: [Self.millis(now), alertID, channel])
            return db.changesCount
        }
        if changed > 0 { wakeup.signal() }
        return changed
    }

    /// Deletes delivered deliveries older than `date`; dead letters and pending work stay.
    ///
    /// - Returns: How many were deleted.
    @discardableResult
    public func prune(deliveredBefore date: Date) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM deliveries WHERE state = 'delivered' AND delivered_at < ?",
                           arguments: [Self.millis(date)])
            return db.changesCount
        }
    }

    // MARK: The deliverer's side

    /// Puts deliveries left `sending` by a process that stopped back to `pending`, due now: their attempt
    /// may or may not have reached the receiver, so they are sent again (receivers drop the duplicate by
    /// delivery id). The attempt stays counted.
    func recoverInterrupted(now: Date) throws -> Int {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'pending', next_attempt_at = ?,
                    last_error = COALESCE(last_error, 'interrupted: the process stopped during an attempt')
                WHERE state = 'sending'
                """, arguments: [Self.millis(now)])
            return db.changesCount
        }
    }

    /// Takes due deliveries for an attempt: at most `slots[channel]` per channel, oldest due first. Each
    /// becomes `sending` with its attempt counted.
    func claimDue(now: Date, slots: [String: Int]) throws -> [ClaimedDelivery] {
        let millis = Self.millis(now)
        return try pool.write { db in
            let select = try db.cachedStatement(sql: """
                SELECT alert_id, attempts, event FROM deliveries
                WHERE state = 'pending' AND channel = ? AND next_attempt_at <= ?
                ORDER BY next_attempt_at, created_at LIMIT ?
                """)
            let update = try db.cachedStatement(sql: """
                UPDATE deliveries SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?
                WHERE alert_id = ? AND channel = ? AND state = 'pending'
                """)
            var claimed: [ClaimedDelivery] = []
            for channel in slots.keys.sorted() {
                guard let free = slots[channel], free > 0 else { continue }
                for row in try Row.fetchAll(select, arguments: [channel, millis, free]) {
                    let alertID: String = row[0]
                    let attempts: Int = row[1]
                    try update.execute(arguments: [millis, alertID, channel])
                    claimed.append(ClaimedDelivery(alertID: alertID, channel: channel, attempt: attempts + 1, event: row[2]))
                }
            }
            return claimed
        }
    }

    /// The earliest `next_attempt_at` of pending deliveries for `channels`, if any.
    func nextDue(channels: Set<String>) throws -> Date? {
        if channels.isEmpty { return nil }
        return try pool.read { db in
            var earliest: Int64?
            for row in try Row.fetchAll(db, sql: """
                SELECT channel, MIN(next_attempt_at) FROM deliveries WHERE state = 'pending' GROUP BY channel
                """) {
                let channel: String = row[0]
                guard channels.contains(channel), let due: Int64 = row[1] else { continue }
                earliest = min(earliest ?? due, due)
            }
            return earliest.map(Self.date)
        }
    }

    /// Pending deliveries per channel name.
    func pendingChannels() throws -> [String: Int] {
        try pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT channel, COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending') GROUP BY channel
                """) {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    /// Records a successful attempt. Only a `sending` delivery changes.
    func markDelivered(alertID: String, channel: String, now: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'delivered', delivered_at = ?, next_attempt_at = NULL
                WHERE alert_id = ? AND channel = ? AND state = 'sending'
                """, arguments: [Self.millis(now), alertID, channel])
        }
    }

    /// Records a failed attempt to retry at `at`.
    func scheduleRetry(alertID: String, channel: String, error: String, at: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'pending', last_error = ?, next_attempt_at = ?
                WHERE alert_id = ? AND channel = ? AND state = 'sending'
                """, arguments: [error, Self.millis(at), alertID, channel])
        }
        wakeup.signal()
    }

    /// Gives back an attempt that was interrupted before it finished (shutdown): due now, not counted.
    func release(alertID: String, channel: String, now: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'pending', attempts = MAX(attempts - 1, 0), next_attempt_at = ?
                WHERE alert_id = ? AND channel = ? AND state = 'sending'
                """, arguments: [Self.millis(now), alertID, channel])
        }
    }

    /// Dead-letters a delivery.
    func markDead(alertID: String, channel: String, error: String, now: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'dead', last_error = ?, dead_at = ?, next_attempt_at = NULL
                WHERE alert_id = ? AND channel = ? AND state = 'sending'
                """, arguments: [error, Self.millis(now), alertID, channel])
        }
    }

    // MARK: Rows

    static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000).rounded())
    }

    static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1_000)
    }

    static func statuses(_ db: Database, where condition: String, arguments: StatementArguments,
                         order: String = "channel", limit: Int? = nil) throws -> [DeliveryStatus] {
        var sql = """
            SELECT alert_id, channel, state, attempts, next_attempt_at, last_attempt_at, last_error, delivered_at,
                   dead_at, created_at, severity, scope, title, raised_at
            FROM deliveries WHERE \(condition) ORDER BY \(order)
            """
        var arguments = arguments
        if let limit {
            sql += " LIMIT ?"
            arguments += [max(limit, 0)]
        }
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            let optionalDate: (Int) -> Date? = { index in (row[index] as Int64?).map(date) }
            return DeliveryStatus(
                alertID: row[0], channel: row[1], state: DeliveryState(rawValue: row[2]) ?? .pending, attempts: row[3],
                nextAttemptAt: optionalDate(4), lastAttemptAt: optionalDate(5), lastError: row[6],
                deliveredAt: optionalDate(7), deadAt: optionalDate(8), createdAt: date(row[9]),
                severity: AlertData.Severity(rawValue: row[10]) ?? .info, scope: row[11], title: row[12],
                raisedAt: date(row[13]))
        }
    }
}

/// Why the delivery store cannot be used.
public enum DeliveryStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    case notFound(String)
    case schemaBehind(String)
    case storage(String)

    public var description: String {
        switch self {
        case .notFound(let path):
            "no alert deliveries database at \(path): start the alerts service first"
        case .schemaBehind(let path):
            "the alert deliveries database at \(path) has an older schema: start the alerts service once to migrate it"
        case .storage(let message): message
        }
    }
}

/// The schema. Migrations are never edited once shipped; changes are new migrations.
enum DeliverySchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // Times are Unix milliseconds.
            try db.execute(sql: """
                CREATE TABLE deliveries (
                    alert_id TEXT NOT NULL,
                    channel TEXT NOT NULL,
                    event BLOB NOT NULL,
                    severity TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    title TEXT NOT NULL,
                    raised_at INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER,
                    last_attempt_at INTEGER,
                    last_error TEXT,
                    delivered_at INTEGER,
                    dead_at INTEGER,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (alert_id, channel)
                );
                CREATE INDEX deliveries_due ON deliveries (channel, next_attempt_at) WHERE state = 'pending';
                CREATE INDEX deliveries_state ON deliveries (state);
                CREATE INDEX deliveries_created ON deliveries (created_at);
                CREATE VIEW dead_letters AS
                    SELECT alert_id, channel, attempts, last_error, dead_at, created_at, event
                    FROM deliveries WHERE state = 'dead';
                CREATE TABLE fold_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    state BLOB NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE TABLE offsets (
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition)
                ) WITHOUT ROWID;
                """)
        }
        // v2: the database's identity: the consumer group the alerts service reads with, one per database,
        // so that two alerts services (each with its own channels) never share partitions.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        }
        return migrator
    }
}
