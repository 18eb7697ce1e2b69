import Foundation
import GRDB
import Logging
import Synchronization

extension EmbeddedLog {
    /// Appends messages on a dedicated thread, one transaction per round (group commit).
    ///
    /// Producers enqueue their messages with a continuation and suspend; the thread takes everything
    /// queued, writes it in one SQLite transaction, resumes every producer with its acknowledgements, then
    /// signals waiting consumers. SQLite calls block, so they run here and never on Swift's cooperative
    /// pool. Each `produce` call is atomic: if one of its messages is invalid (unknown topic, missing key on
    /// a compacted topic, bad partition), none of its messages is written and the call fails; other calls in
    /// the same round are unaffected.
    final class Writer: Sendable {
        private struct Pending {
            var messages: [OutgoingMessage]
            var continuation: CheckedContinuation<[DeliveryAck], any Error>
        }

        private struct Queue {
            var pending: [Pending] = []
            var wakeupPending = false
            var started = false
            var stopping = false
            var stopped = false
        }

        private let pool: DatabasePool
        private let notifier: ChangeNotifier
        private let topicNotifiers: TopicNotifiers
        private let checkpointer: Checkpointer
        private let logger: Logger
        private let maxMessagesPerTransaction: Int
        private let queue = Mutex(Queue())
        private let wakeup = DispatchSemaphore(value: 0)
        private let finished = DispatchSemaphore(value: 0)
        /// Round-robin counter for messages without key or partition.
        private let roundRobin = Atomic<Int>(0)

        init(pool: DatabasePool, notifier: ChangeNotifier, topicNotifiers: TopicNotifiers, checkpointer: Checkpointer,
             logger: Logger, maxMessagesPerTransaction: Int) {
            self.pool = pool
            self.notifier = notifier
            self.topicNotifiers = topicNotifiers
            self.checkpointer = checkpointer
            self.logger = logger
            self.maxMessagesPerTransaction = max(1, maxMessagesPerTransaction)
        }

        func start() {
            let shouldStart = queue.withLock { queue -> Bool in
                if queue.started { return false }
                queue.started = true
                return true
            }
            guard shouldStart else { return }
            let thread = Thread { [self] in self.loop() }
            thread.name = "tollgate.log.writer"
            thread.start()
        }

        func enqueue(_ messages: [OutgoingMessage], continuation: CheckedContinuation<[DeliveryAck], any Error>) {
            let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
                if queue.stopping { return (false, false) }
                queue.pending.append(Pending(messages: messages, continuation: continuation))
                if queue.wakeupPending { return (true, false) }
                queue.wakeupPending = true
                return (true, true)
            }
            if !accepted {
                continuation.resume(throwing: LogError.closed)
                return
            }
            if wake { wakeup.signal() }
        }

        /// Writes what is queued, then stops the thread. Blocks until it has stopped.
        func stop() {
            let wait = queue.withLock { queue -> Bool in
                if queue.stopping || !queue.started { queue.stopping = true; return false }
                queue.stopping = true
                return true
            }
            guard wait else { return }
            wakeup.signal()
            finished.wait()
        }

        private func loop() {
            while true {
                wakeup.wait()
                let (batch, stopping) = queue.withLock { queue -> ([Pending], Bool) in
                    queue.wakeupPending = false
                    let batch = queue.pending
                    queue.pending.removeAll(keepingCapacity: true)
                    return (batch, queue.stopping)
                }
                if !batch.isEmpty { write(batch) }
                if stopping {
                    // Producers that slipped in after `stopping` was set were refused in `enqueue`; the
                    // ones queued before are in `batch` or still pending: write those too.
                    let rest = queue.withLock { queue -> [Pending] in
                        let rest = queue.pending
                        queue.pending.removeAll()
                        queue.stopped = true
                        return rest
                    }
                    if !rest.isEmpty { write(rest) }
                    finished.signal()
                    return
                }
            }
        }

        /// Writes the batch in transactions of at most `maxMessagesPerTransaction` messages (a single large
        /// call is never split).
        private func write(_ batch: [Pending]) {
            var start = 0
            while start < batch.count {
                var end = start
                var count = 0
                while end < batch.count && (count == 0 || count + batch[end].messages.count <= maxMessagesPerTransaction) {
                    count += batch[end].messages.count
                    end += 1
                }
                writeTransaction(Array(batch[start..<end]))
                start = end
            }
        }

        private func writeTransaction(_ calls: [Pending]) {
            let results: [Result<[DeliveryAck], LogError>]
            do {
                results = try pool.write { db in try self.append(calls.map(\.messages), db) }
            } catch {
                let failure = (error as? LogError) ?? LogError.storage("\(error)")
                logger.error("append transaction failed", metadata: ["log.error": "\(failure)",
                                                                     "log.calls": "\(calls.count)"])
                for call in calls { call.continuation.resume(throwing: failure) }
                return
            }
            checkpointer.signal()
            notifier.signal()
            var topics = Set<String>()
            for call in calls { for message in call.messages { topics.insert(message.topic) } }
            for topic in topics { topicNotifiers.notifier(topic).signal() }
            for (call, result) in zip(calls, results) {
                call.continuation.resume(with: result)
            }
        }

        private struct PartitionHead {
            var id: Int64
            var nextOffset: Int64
            var lastTimestamp: Int64
            var bytes: Int64
        }

        /// Appends every valid call; returns one result per call.
        private func append(_ calls: [[OutgoingMessage]], _ db: Database) throws -> [Result<[DeliveryAck], LogError>] {
            var topics: [String: TopicMeta?] = [:]
            var heads: [Int64: PartitionHead] = [:]
            let now = EmbeddedLog.nowMilliseconds()
            let readHead = try db.cachedStatement(
                sql: "SELECT next_offset, last_timestamp, bytes FROM partitions WHERE id = ?")
            let insert = try db.cachedStatement(sql: """
                INSERT INTO messages (partition_id, offset, timestamp, size, key, value, headers)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            let upsertKey = try db.cachedStatement(sql: """
                INSERT INTO compact_keys (partition_id, key, latest_offset) VALUES (?, ?, ?)
                ON CONFLICT (partition_id, key) DO UPDATE SET latest_offset = excluded.latest_offset
                """)
            var results: [Result<[DeliveryAck], LogError>] = []
            results.reserveCapacity(calls.count)

            for messages in calls {
                // Validate the whole call first so that it is written entirely or not at all.
                var targets: [(meta: TopicMeta, partition: Int)] = []
                targets.reserveCapacity(messages.count)
                var failure: LogError?
                for message in messages {
                    let meta: TopicMeta?
                    if let cached = topics[message.topic] {
                        meta = cached
                    } else {
                        meta = try TopicMeta.load(db, name: message.topic)
                        topics[message.topic] = meta
                    }
                    guard let meta else { failure = .unknownTopic(message.topic); break }
                    if meta.spec.cleanupPolicy == .compact && message.key == nil {
                        failure = .compactedTopicRequiresKey(topic: message.topic)
                        break
                    }
                    let partition: Int
                    if let explicit = message.partition {
                        guard explicit >= 0 && explicit < meta.spec.partitions else {
                            failure = .invalidPartition(topic: message.topic, partition: explicit,
                                                        partitions: meta.spec.partitions)
                            break
                        }
                        partition = explicit
                    } else if let key = message.key {
                        partition = Partitioner.partition(forKey: key, partitions: meta.spec.partitions)
                    } else {
                        let turn = roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max
                        partition = turn % meta.spec.partitions
                    }
                    targets.append((meta, partition))
                }
                if let failure {
                    results.append(.failure(failure))
                    continue
                }

                var acks: [DeliveryAck] = []
                acks.reserveCapacity(messages.count)
                for (message, target) in zip(messages, targets) {
                    let partitionID = target.meta.partitionIDs[target.partition]
                    var head: PartitionHead
                    if let known = heads[partitionID] {
                        head = known
                    } else {
                        guard let row = try Row.fetchOne(readHead, arguments: [partitionID]) else {
                            throw LogError.storage("partition row \(partitionID) is missing")
                        }
                        head = PartitionHead(id: partitionID, nextOffset: row[0], lastTimestamp: row[1], bytes: row[2])
                    }
                    let offset = head.nextOffset
                    // Append time, never going backwards within a partition (seek by time relies on it).
                    let timestamp = max(now, head.lastTimestamp)
                    let headers = HeaderCoding.encode(message.headers)
                    let size = Int64((message.key?.count ?? 0) + (message.value?.count ?? 0) + (headers?.count ?? 0))
                    try insert.execute(arguments: [partitionID, offset, timestamp, size, message.key, message.value,
                                                   headers])
                    if target.meta.spec.cleanupPolicy == .compact, let key = message.key {
                        try upsertKey.execute(arguments: [partitionID, key, offset])
                    }
                    head.nextOffset = offset + 1
                    head.lastTimestamp = timestamp
                    head.bytes += size
                    heads[partitionID] = head
                    acks.append(DeliveryAck(topic: message.topic, partition: target.partition, offset: offset,
                                            timestampMilliseconds: timestamp))
                }
                results.append(.success(acks))
            }

            let updateHead = try db.cachedStatement(
                sql: "UPDATE partitions SET next_offset = ?, last_timestamp = ?, bytes = ? WHERE id = ?")
            for head in heads.values {
                try updateHead.execute(arguments: [head.nextOffset, head.lastTimestamp, head.bytes, head.id])
            }
            return results
        }
    }
}
