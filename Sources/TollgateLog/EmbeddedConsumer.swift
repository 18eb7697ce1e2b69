import Foundation
import GRDB
import Logging
import Synchronization

/// A consumer-group member on the embedded log.
///
/// Membership lives in the database, so members in different processes form one group. Every member
/// heart-beats; a heartbeat (or a join or leave) that finds a member silent for longer than its session
/// timeout removes it and rebalances: the group's generation grows and the partitions of the subscribed
/// topics are dealt round-robin among the live members, sorted by member id. A member notices a new
/// generation at its next poll, keeps its position in partitions it still owns and starts new ones from
/// the committed offset. Commits are fenced: a member can only commit partitions it owns in the current
/// generation, so a member that lost a partition cannot move the offset its new owner works from.
final class EmbeddedConsumer: LogConsumer {
    private struct Assigned {
        var partition: TopicPartition
        var position: Int64
    }

    private struct PendingSeek {
        var position: SeekPosition
        /// `nil`: every partition of the subscription.
        var partitions: Set<TopicPartition>?
        var applied: Set<TopicPartition> = []

        func wants(_ partition: TopicPartition) -> Bool {
            !applied.contains(partition) && (partitions?.contains(partition) ?? true)
        }
    }

    private struct State {
        var topics: [String] = []
        var topicMetas: [String: TopicMeta] = [:]
        var generation: Int64 = -1
        var assigned: [Int64: Assigned] = [:]
        var seek: PendingSeek?
        var rotation = 0
        var closed = false
        var heartbeat: Task<Void, Never>?
    }

    private let log: EmbeddedLog
    private let configuration: ConsumerConfiguration
    private let memberID: String
    private let state = Mutex(State())
    private let logger: Logger

    init(log: EmbeddedLog, configuration: ConsumerConfiguration) {
        self.log = log
        self.configuration = configuration
        self.memberID = configuration.instanceID ?? "member-\(UUID().uuidString.lowercased())"
        var logger = log.logger
        logger[metadataKey: "log.group"] = "\(configuration.group)"
        logger[metadataKey: "log.member"] = "\(memberID)"
        self.logger = logger
    }

    deinit {
        state.withLock { $0.heartbeat?.cancel() }
    }

    // MARK: Membership

    func subscribe(_ topics: [String]) async throws {
        guard !topics.isEmpty else { throw LogError.notSubscribed }
        try state.withLock { if $0.closed { throw LogError.closed } }
        let group = configuration.group
        let member = memberID
        let sessionMilliseconds = configuration.sessionTimeout.milliseconds
        let sortedTopics = Array(Set(topics)).sorted()
        let metas = try await log.pool.write { db -> [String: TopicMeta] in
            var metas: [String: TopicMeta] = [:]
            for topic in sortedTopics {
                guard let meta = try TopicMeta.load(db, name: topic) else { throw LogError.unknownTopic(topic) }
                metas[topic] = meta
            }
            let now = EmbeddedLog.nowMilliseconds()
            let joined = sortedTopics.joined(separator: "\n")
            let previous = try String.fetchOne(
                db, sql: "SELECT topics FROM group_members WHERE group_id = ? AND member_id = ?",
                arguments: [group, member])
            try db.execute(
                sql: """
                    INSERT INTO group_members (group_id, member_id, topics, heartbeat_at, session_timeout_ms, joined_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (group_id, member_id) DO UPDATE SET topics = excluded.topics,
                        heartbeat_at = excluded.heartbeat_at, session_timeout_ms = excluded.session_timeout_ms
                    """,
                arguments: [group, member, joined, now, sessionMilliseconds, now])
            let expired = try Self.expireMembers(db, group: group, now: now)
            // A static member rejoining with the same topics keeps its partitions: no rebalance needed.
            if previous != joined || expired > 0 {
                try Self.rebalance(db, group: group)
            }
            return metas
        }
        let (oldHeartbeat, shouldStart) = state.withLock { state -> (Task<Void, Never>?, Bool) in
            state.topics = sortedTopics
            state.topicMetas = metas
            state.generation = -1
            let old = state.heartbeat
            state.heartbeat = nil
            return (old, true)
        }
        oldHeartbeat?.cancel()
        if shouldStart { startHeartbeat() }
        logger.debug("joined consumer group", metadata: ["log.topics": "\(sortedTopics)"])
    }

    private func startHeartbeat() {
        let interval = configuration.heartbeatInterval
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                guard let self else { return }
                do {
                    try await self.heartbeat()
                } catch {
                    self.logger.warning("consumer heartbeat failed", metadata: ["log.error": "\(error)"])
                }
            }
        }
        state.withLock { $0.heartbeat = task }
    }

    /// Refreshes this member's heartbeat, rejoins if it had been expelled, and expels dead members.
    func heartbeat() async throws {
        let (topics, closed) = state.withLock { ($0.topics.joined(separator: "\n"), $0.closed) }
        if closed || topics.isEmpty { return }
        let group = configuration.group
        let member = memberID
        let sessionMilliseconds = configuration.sessionTimeout.milliseconds
        try await log.pool.write { db in
            let now = EmbeddedLog.nowMilliseconds()
            try db.execute(
                sql: "UPDATE group_members SET heartbeat_at = ? WHERE group_id = ? AND member_id = ?",
                arguments: [now, group, member])
            var rebalance = false
            if db.changesCount == 0 {
                // We were considered dead (a long pause): join again.
                try db.execute(
                    sql: """
                        INSERT INTO group_members (group_id, member_id, topics, heartbeat_at, session_timeout_ms,
                            joined_at) VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [group, member, topics, now, sessionMilliseconds, now])
                rebalance = true
            }
            if try Self.expireMembers(db, group: group, now: now) > 0 { rebalance = true }
            if rebalance { try Self.rebalance(db, group: group) }
        }
    }

    func close() async throws {
        let (heartbeat, wasClosed) = state.withLock { state -> (Task<Void, Never>?, Bool) in
            let wasClosed = state.closed
            state.closed = true
            let task = state.heartbeat
            state.heartbeat = nil
            state.assigned = [:]
            return (task, wasClosed)
        }
        heartbeat?.cancel()
        if wasClosed { return }
        let group = configuration.group
        let member = memberID
        try await log.pool.write { db in
            try db.execute(sql: "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
                           arguments: [group, member])
            if db.changesCount > 0 { try Self.rebalance(db, group: group) }
        }
        logger.debug("left consumer group")
    }

    /// Removes members whose last heartbeat is older than their session timeout. Returns how many.
    static func expireMembers(_ db: Database, group: String, now: Int64) throws -> Int {
        try db.execute(
            sql: "DELETE FROM group_members WHERE group_id = ? AND heartbeat_at + session_timeout_ms < ?",
            arguments: [group, now])
        return db.changesCount
    }

    /// Deals the partitions of every subscribed topic round-robin among the live members and starts a new
    /// generation.
    static func rebalance(_ db: Database, group: String) throws {
        var subscribers: [String: [String]] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT member_id, topics FROM group_members WHERE group_id = ? ORDER BY member_id",
            arguments: [group]) {
            let member: String = row["member_id"]
            let topics: String = row["topics"]
            for topic in topics.split(separator: "\n") {
                subscribers[String(topic), default: []].append(member)
            }
        }
        try db.execute(sql: "DELETE FROM group_assignments WHERE group_id = ?", arguments: [group])
        for topic in subscribers.keys.sorted() {
            guard let meta = try TopicMeta.load(db, name: topic), let members = subscribers[topic] else { continue }
            for (partition, partitionID) in meta.partitionIDs.enumerated() {
                try db.execute(
                    sql: "INSERT INTO group_assignments (group_id, partition_id, member_id) VALUES (?, ?, ?)",
                    arguments: [group, partitionID, members[partition % members.count]])
            }
        }
        try db.execute(
            sql: """
                INSERT INTO groups (group_id, generation) VALUES (?, 1)
                ON CONFLICT (group_id) DO UPDATE SET generation = generation + 1
                """,
            arguments: [group])
    }

    // MARK: Polling

    func poll(maxMessages: Int, timeout: Duration) async throws -> [ConsumedMessage] {
        try state.withLock { state in
            if state.closed { throw LogError.closed }
            if state.topics.isEmpty { throw LogError.notSubscribed }
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        // Woken by commits to the subscribed topics in this process; other processes' appends are seen
        // by re-reading the partition heads, every crossProcessPollInterval at first, backing off to 8×
        // that while nothing arrives (reset by the next poll call).
        let notifiers = state.withLock { $0.topics }.map { log.notifier(forTopic: $0) }
        var idleWait = log.configuration.crossProcessPollInterval
        let limit = max(1, maxMessages)
        let enough = min(limit, max(1, configuration.fetchMinMessages))
        var collected: [ConsumedMessage] = []
        // Set once messages were found and the consumer gathers more (`fetchMinMessages`, `fetchMaxWait`).
        var gatherUntil: ContinuousClock.Instant?
        while true {
            let versions = notifiers.map { ($0, $0.version) }
            let batch = try await fetchOnce(maxMessages: limit - collected.count)
            if collected.isEmpty { collected = batch } else { collected.append(contentsOf: batch) }
            let now = clock.now
            if !collected.isEmpty {
                if collected.count >= enough || configuration.fetchMaxWait <= .zero || Task.isCancelled {
                    return collected
                }
                let until = gatherUntil ?? now.advanced(by: configuration.fetchMaxWait)
                gatherUntil = until
                if now >= until { return collected }
                // Look again after a quarter of the wait (at most 5 ms), not at every append: at low rates
                // a few reads gather the batch instead of one read per message.
                let step = min(until - now, configuration.fetchMaxWait / 4, .milliseconds(5))
                do { try await Task.sleep(for: step) } catch { return collected }
                continue
            }
            if now >= deadline || Task.isCancelled { return [] }
            await ChangeNotifier.waitAny(versions, timeout: min(deadline - now, idleWait))
            idleWait = min(idleWait * 2, log.configuration.crossProcessPollInterval * 8)
        }
    }

    private struct FetchSnapshot: Sendable {
        var generation: Int64
        var assigned: [Int64: Assigned]
        var seek: PendingSeek?
        var rotation: Int
    }

    private struct FetchResult: Sendable {
        var generation: Int64
        var assigned: [Int64: Assigned]
        var seek: PendingSeek?
        var messages: [ConsumedMessage]
    }

    private func fetchOnce(maxMessages: Int) async throws -> [ConsumedMessage] {
        let snapshot = state.withLock { state -> FetchSnapshot in
            state.rotation &+= 1
            return FetchSnapshot(generation: state.generation, assigned: state.assigned, seek: state.seek,
                                 rotation: state.rotation)
        }
        let group = configuration.group
        let member = memberID
        let reset = configuration.autoOffsetReset
        let result = try await log.pool.read { db -> FetchResult in
            var assigned = snapshot.assigned
            var seek = snapshot.seek
            let generation = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT generation FROM groups WHERE group_id = ?"),
                arguments: [group]) ?? 0
            if generation != snapshot.generation {
                let rows = try Row.fetchAll(
                    db.cachedStatement(sql: """
                        SELECT a.partition_id, t.name, p.partition FROM group_assignments a
                        JOIN partitions p ON p.id = a.partition_id JOIN topics t ON t.id = p.topic_id
                        WHERE a.group_id = ? AND a.member_id = ?
                        """),
                    arguments: [group, member])
                var next: [Int64: Assigned] = [:]
                for row in rows {
                    let partitionID: Int64 = row[0]
                    let partition = TopicPartition(topic: row[1], partition: row[2])
                    if let kept = assigned[partitionID] {
                        next[partitionID] = kept
                        continue
                    }
                    let position: Int64
                    if let pending = seek, pending.wants(partition) {
                        position = try EmbeddedLog.resolve(pending.position, partitionID: partitionID, db)
                        seek?.applied.insert(partition)
                    } else if let committed = try Int64.fetchOne(
                        db.cachedStatement(sql: """
                            SELECT next_offset FROM group_offsets WHERE group_id = ? AND partition_id = ?
                            """),
                        arguments: [group, partitionID]) {
                        position = committed
                    } else {
                        position = try EmbeddedLog.resolve(reset == .earliest ? .beginning : .end,
                                                           partitionID: partitionID, db)
                    }
                    next[partitionID] = Assigned(partition: partition, position: position)
                }
                assigned = next
            }

            var messages: [ConsumedMessage] = []
            if assigned.isEmpty {
                return FetchResult(generation: generation, assigned: assigned, seek: seek, messages: messages)
            }
            let heads = try db.cachedStatement(sql: "SELECT start_offset, next_offset FROM partitions WHERE id = ?")
            let read = try db.cachedStatement(sql: """
                SELECT offset, timestamp, key, value, headers FROM messages
                WHERE partition_id = ? AND offset >= ? ORDER BY offset LIMIT ?
                """)
            let ids = assigned.keys.sorted()
            let start = snapshot.rotation % ids.count
            for index in 0..<ids.count {
                if messages.count >= maxMessages { break }
                let partitionID = ids[(start + index) % ids.count]
                guard var entry = assigned[partitionID],
                      let head = try Row.fetchOne(heads, arguments: [partitionID]) else { continue }
                let low: Int64 = head[0]
                let high: Int64 = head[1]
                // Out of range (deleted by retention, or past the end after a partition was recreated):
                // continue from the nearest valid offset.
                if entry.position < low { entry.position = low }
                if entry.position > high { entry.position = high }
                if entry.position < high {
                    let rows = try Row.fetchCursor(read, arguments: [partitionID, entry.position,
                                                                     maxMessages - messages.count])
                    while let row = try rows.next() {
                        let offset: Int64 = row[0]
                        messages.append(ConsumedMessage(
                            topic: entry.partition.topic, partition: entry.partition.partition, offset: offset,
                            timestampMilliseconds: row[1], key: row[2], value: row[3],
                            headers: HeaderCoding.decode(row[4])))
                        entry.position = offset + 1
                    }
                    if entry.position < high && messages.count < maxMessages {
                        // Only gaps (compacted away) remain below the head.
                        entry.position = high
                    }
                }
                assigned[partitionID] = entry
            }
            return FetchResult(generation: generation, assigned: assigned, seek: seek, messages: messages)
        }
        state.withLock { state in
            if state.closed { return }
            state.generation = result.generation
            state.assigned = result.assigned
            state.seek = result.seek
        }
        return result.messages
    }

    // MARK: Offsets

    func commit(_ offsets: [TopicPartition: Int64]) async throws {
        if offsets.isEmpty { return }
        let metas = try state.withLock { state -> [String: TopicMeta] in
            if state.closed { throw LogError.closed }
            return state.topicMetas
        }
        let group = configuration.group
        let member = memberID
        let revoked = try await log.pool.write { db -> [TopicPartition] in
            let now = EmbeddedLog.nowMilliseconds()
            var revoked: [TopicPartition] = []
            let owner = try db.cachedStatement(
                sql: "SELECT member_id FROM group_assignments WHERE group_id = ? AND partition_id = ?")
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO group_offsets (group_id, partition_id, next_offset, committed_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (group_id, partition_id) DO UPDATE SET next_offset = excluded.next_offset,
                    committed_at = excluded.committed_at
                """)
            for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
                guard let meta = metas[partition.topic], partition.partition >= 0,
                      partition.partition < meta.partitionIDs.count else {
                    revoked.append(partition)
                    continue
                }
                let partitionID = meta.partitionIDs[partition.partition]
                guard try String.fetchOne(owner, arguments: [group, partitionID]) == member else {
                    revoked.append(partition)
                    continue
                }
                try upsert.execute(arguments: [group, partitionID, offset, now])
            }
            // A commit is also a sign of life.
            try db.execute(sql: "UPDATE group_members SET heartbeat_at = ? WHERE group_id = ? AND member_id = ?",
                           arguments: [now, group, member])
            return revoked
        }
        if !revoked.isEmpty { throw LogError.partitionsRevoked(revoked) }
    }

    func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        let group = configuration.group
        return try await log.pool.read { db in
            var result: [TopicPartition: Int64] = [:]
            for partition in partitions {
                guard let meta = try TopicMeta.load(db, name: partition.topic),
                      partition.partition >= 0, partition.partition < meta.partitionIDs.count else { continue }
                if let offset = try Int64.fetchOne(
                    db, sql: "SELECT next_offset FROM group_offsets WHERE group_id = ? AND partition_id = ?",
                    arguments: [group, meta.partitionIDs[partition.partition]]) {
                    result[partition] = offset
                }
            }
            return result
        }
    }

    func seek(_ position: SeekPosition, partitions: [TopicPartition]?) async throws {
        let assigned = try state.withLock { state -> [Int64: Assigned] in
            if state.closed { throw LogError.closed }
            return state.assigned
        }
        let targets = partitions.map(Set.init)
        var pending = PendingSeek(position: position, partitions: targets)
        let moved = try await log.pool.read { db -> [Int64: Int64] in
            var moved: [Int64: Int64] = [:]
            for (partitionID, entry) in assigned where targets?.contains(entry.partition) ?? true {
                moved[partitionID] = try EmbeddedLog.resolve(position, partitionID: partitionID, db)
            }
            return moved
        }
        for (partitionID, _) in moved { if let entry = assigned[partitionID] { pending.applied.insert(entry.partition) } }
        state.withLock { state in
            for (partitionID, offset) in moved { state.assigned[partitionID]?.position = offset }
            state.seek = pending
        }
    }

    func assignment() async -> Set<TopicPartition> {
        state.withLock { Set($0.assigned.values.map(\.partition)) }
    }
}

extension EmbeddedLog {
    /// The offset a seek position designates in a partition, clamped to the retained range.
    static func resolve(_ position: SeekPosition, partitionID: Int64, _ db: Database) throws -> Int64 {
        guard let head = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT start_offset, next_offset FROM partitions WHERE id = ?"),
            arguments: [partitionID]) else { throw LogError.storage("partition row \(partitionID) is missing") }
        let low: Int64 = head[0]
        let high: Int64 = head[1]
        switch position {
        case .beginning:
            return low
        case .end:
            return high
        case .offset(let offset):
            return min(max(offset, low), high)
        case .timestamp(let date):
            let target = Int64((date.timeIntervalSince1970 * 1000).rounded(.up))
            return try offset(atOrAfter: target, partitionID: partitionID, low: low, high: high, db)
        }
    }

    /// The first offset whose append time is at or after `timestamp` (the high watermark if none).
    ///
    /// Append times never decrease within a partition, so a binary search over offsets works, probing the
    /// first existing message at or after an offset (compaction leaves gaps).
    static func offset(atOrAfter timestamp: Int64, partitionID: Int64, low: Int64, high: Int64,
                       _ db: Database) throws -> Int64 {
        let probe = try db.cachedStatement(sql: """
            SELECT offset, timestamp FROM messages WHERE partition_id = ? AND offset >= ? ORDER BY offset LIMIT 1
            """)
        func first(atOrAfter offset: Int64) throws -> (offset: Int64, timestamp: Int64)? {
            guard let row = try Row.fetchOne(probe, arguments: [partitionID, offset]) else { return nil }
            return (row[0], row[1])
        }
        var lower = low
        var upper = high
        while lower < upper {
            let middle = lower + (upper - lower) / 2
            if let found = try first(atOrAfter: middle), found.timestamp < timestamp {
                lower = found.offset + 1
            } else {
                upper = middle
            }
        }
        return try first(atOrAfter: lower)?.offset ?? high
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
