public import Foundation
import GRDB
public import Logging
public import ServiceLifecycle

/// What one maintenance pass removed.
public struct MaintenanceReport: Sendable, Hashable {
    /// Messages deleted because they were older than the topic's retention.
    public var expiredByAge: Int = 0
    /// Messages deleted because their partition held more than the topic's retention bytes.
    public var expiredBySize: Int = 0
    /// Messages of compacted topics superseded by a newer message with the same key.
    public var compacted: Int = 0
    /// Tombstones (and their keys) of compacted topics older than the topic's retention.
    public var tombstonesRemoved: Int = 0

    public var total: Int { expiredByAge + expiredBySize + compacted + tombstonesRemoved }
}

extension EmbeddedLog {
    /// Rows deleted per transaction, so a large clean-up never holds the write lock for long.
    static let maintenanceChunk: Int64 = 20_000
    /// How long tombstones of a compacted topic stay readable when the topic sets no retention
    /// (Kafka's `delete.retention.ms` default: one day).
    static let defaultTombstoneRetentionMilliseconds: Int64 = 86_400_000

    /// Applies retention by age and size, and compaction, to every topic.
    ///
    /// Safe to run from several processes at once: every step is a transaction that re-reads what it
    /// changes. ``EmbeddedLogMaintenance`` runs it periodically.
    @discardableResult
    public func maintain(now: Date = Date()) async throws -> MaintenanceReport {
        let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        let partitions = try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT p.id, t.cleanup_policy, t.retention_ms, t.retention_bytes
                FROM partitions p JOIN topics t ON t.id = p.topic_id ORDER BY p.id
                """).map { row in
                (id: row[0] as Int64, policy: CleanupPolicy(rawValue: row[1]) ?? .delete,
                 retentionMilliseconds: row[2] as Int64?, retentionBytes: row[3] as Int64?)
            }
        }
        var report = MaintenanceReport()
        for partition in partitions {
            switch partition.policy {
            case .delete:
                if let retention = partition.retentionMilliseconds, retention >= 0 {
                    report.expiredByAge += try await expire(partitionID: partition.id,
                                                            olderThan: nowMilliseconds - retention)
                }
            case .compact:
                report.compacted += try await compact(partitionID: partition.id)
                let retention = partition.retentionMilliseconds ?? Self.defaultTombstoneRetentionMilliseconds
                if retention >= 0 {
                    report.tombstonesRemoved += try await removeTombstones(
                        partitionID: partition.id, olderThan: nowMilliseconds - retention)
                }
            }
            if let limit = partition.retentionBytes, limit >= 0 {
                report.expiredBySize += try await trim(partitionID: partition.id, toBytes: limit)
            }
        }
        if report.total > 0 {
            logger.info("log maintenance removed messages", metadata: [
                "log.expired_age": "\(report.expiredByAge)", "log.expired_size": "\(report.expiredBySize)",
                "log.compacted": "\(report.compacted)", "log.tombstones": "\(report.tombstonesRemoved)",
            ])
        }
        return report
    }

    /// Deletes the messages below `offset` (at most one chunk) and moves the low watermark. Returns how
    /// many were deleted.
    private static func deletePrefix(_ db: Database, partitionID: Int64, below offset: Int64) throws -> Int {
        let bytes = try Int64.fetchOne(
            db, sql: "SELECT COALESCE(SUM(size), 0) FROM messages WHERE partition_id = ? AND offset < ?",
            arguments: [partitionID, offset]) ?? 0
        try db.execute(sql: "DELETE FROM messages WHERE partition_id = ? AND offset < ?",
                       arguments: [partitionID, offset])
        let deleted = db.changesCount
        try db.execute(
            sql: "UPDATE partitions SET bytes = bytes - ?, start_offset = MAX(start_offset, ?) WHERE id = ?",
            arguments: [bytes, offset, partitionID])
        return deleted
    }

    private func expire(partitionID: Int64, olderThan cutoff: Int64) async throws -> Int {
        var total = 0
        while true {
            // nil: nothing (more) to expire.
            let deleted = try await pool.write { db -> Int? in
                guard let head = try Row.fetchOne(
                    db, sql: "SELECT start_offset, next_offset FROM partitions WHERE id = ?",
                    arguments: [partitionID]) else { return nil }
                let low: Int64 = head[0]
                let high: Int64 = head[1]
                let firstKept = try Self.offset(atOrAfter: cutoff, partitionID: partitionID, low: low, high: high, db)
                guard firstKept > low else { return nil }
                let end = min(firstKept, low + Self.maintenanceChunk)
                return try Self.deletePrefix(db, partitionID: partitionID, below: end)
            }
            guard let deleted else { return total }
            total += deleted
        }
    }

    private func trim(partitionID: Int64, toBytes limit: Int64) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await pool.write { db -> Int in
                guard let head = try Row.fetchOne(
                    db, sql: "SELECT start_offset, bytes FROM partitions WHERE id = ?",
                    arguments: [partitionID]) else { return 0 }
                var excess: Int64 = head[1] - limit
                guard excess > 0 else { return 0 }
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT offset, size FROM messages WHERE partition_id = ? ORDER BY offset LIMIT ?",
                    arguments: [partitionID, Self.maintenanceChunk])
                var end: Int64?
                while let row = try rows.next() {
                    let offset: Int64 = row[0]
                    let size: Int64 = row[1]
                    excess -= size
                    end = offset + 1
                    if excess <= 0 { break }
                }
                guard let end else { return 0 }
                return try Self.deletePrefix(db, partitionID: partitionID, below: end)
            }
            if deleted == 0 { return total }
            total += deleted
        }
    }

    /// Deletes the messages of `topic` below the given offset of each partition, as Kafka's
    /// DeleteRecords does, and moves the low watermarks. An offset past the high watermark is clamped to
    /// it. Returns how many messages were deleted.
    @discardableResult
    public func deleteRecords(topic: String, before offsets: [Int: Int64]) async throws -> Int {
        let partitions = try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT p.partition, p.id, p.next_offset FROM partitions p JOIN topics t ON t.id = p.topic_id
                WHERE t.name = ?
                """, arguments: [topic]).map { row in
                (partition: row[0] as Int, id: row[1] as Int64, high: row[2] as Int64)
            }
        }
        guard !partitions.isEmpty else { throw LogError.unknownTopic(topic) }
        var total = 0
        for (partition, requested) in offsets {
            guard let known = partitions.first(where: { $0.partition == partition }) else {
                throw LogError.invalidPartition(topic: topic, partition: partition, partitions: partitions.count)
            }
            let target = min(requested, known.high)
            while true {
                // nil: the low watermark has reached the target.
                let deleted = try await pool.write { db -> Int? in
                    let low = try Int64.fetchOne(db, sql: "SELECT start_offset FROM partitions WHERE id = ?",
                                                 arguments: [known.id]) ?? target
                    guard low < target else { return nil }
                    return try Self.deletePrefix(db, partitionID: known.id,
                                                 below: min(target, low + Self.maintenanceChunk))
                }
                guard let deleted else { break }
                total += deleted
            }
        }
        return total
    }

    private func compact(partitionID: Int64) async throws -> Int {
        try await pool.write { db in
            let bytes = try Int64.fetchOne(db, sql: """
                SELECT COALESCE(SUM(size), 0) FROM messages WHERE partition_id = ?
                AND offset NOT IN (SELECT latest_offset FROM compact_keys WHERE partition_id = ?)
                """, arguments: [partitionID, partitionID]) ?? 0
            try db.execute(sql: """
                DELETE FROM messages WHERE partition_id = ?
                AND offset NOT IN (SELECT latest_offset FROM compact_keys WHERE partition_id = ?)
                """, arguments: [partitionID, partitionID])
            let deleted = db.changesCount
            if deleted > 0 { try Self.refreshLowWatermark(db, partitionID: partitionID, removedBytes: bytes) }
            return deleted
        }
    }

    private func removeTombstones(partitionID: Int64, olderThan cutoff: Int64) async throws -> Int {
        try await pool.write { db in
            let offsets = try Int64.fetchAll(db, sql: """
                SELECT offset FROM messages WHERE partition_id = ? AND value IS NULL AND timestamp < ?
                """, arguments: [partitionID, cutoff])
            guard !offsets.isEmpty else { return 0 }
            var bytes: Int64 = 0
            for offset in offsets {
                bytes += try Int64.fetchOne(
                    db, sql: "SELECT size FROM messages WHERE partition_id = ? AND offset = ?",
                    arguments: [partitionID, offset]) ?? 0
                try db.execute(sql: "DELETE FROM messages WHERE partition_id = ? AND offset = ?",
                               arguments: [partitionID, offset])
                try db.execute(sql: "DELETE FROM compact_keys WHERE partition_id = ? AND latest_offset = ?",
                               arguments: [partitionID, offset])
            }
            try Self.refreshLowWatermark(db, partitionID: partitionID, removedBytes: bytes)
            return offsets.count
        }
    }

    private static func refreshLowWatermark(_ db: Database, partitionID: Int64, removedBytes: Int64) throws {
        try db.execute(sql: """
            UPDATE partitions SET bytes = bytes - ?,
                start_offset = COALESCE((SELECT MIN(offset) FROM messages WHERE partition_id = ?), next_offset)
            WHERE id = ?
            """, arguments: [removedBytes, partitionID, partitionID])
    }
}

/// Runs ``EmbeddedLog/maintain(now:)`` periodically until graceful shutdown.
public struct EmbeddedLogMaintenance: Service {
    public let log: EmbeddedLog
    public let interval: Duration
    public let logger: Logger

    public init(log: EmbeddedLog, interval: Duration = .seconds(60),
                logger: Logger = Logger(label: "tollgate.log.maintenance")) {
        self.log = log
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await log.maintain()
                } catch {
                    logger.error("log maintenance failed", metadata: ["log.error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
