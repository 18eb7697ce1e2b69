import CRdKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// A consumer-group member on Kafka: one librdkafka consumer.
///
/// A dedicated thread polls librdkafka continuously, so the member heart-beats, takes part in
/// rebalances and releases revoked partitions even while the application is busy between two `poll`
/// calls (librdkafka waits for the application's rebalance callback before a member rejoins). The thread
/// copies fetched messages into Swift values (``MessageCopier``: one shared payload buffer per run of
/// messages, not an allocation per key and value), returns librdkafka's messages at once, and keeps the
/// copies in a bounded buffer that ``poll(maxMessages:timeout:)`` takes from; while the buffer is full it
/// takes nothing more. Seeks run on that thread between two librdkafka polls, so no stale
/// message slips into the buffer after a seek. Commits are synchronous and go only to the partitions this
/// member owns.
final class KafkaConsumer: LogConsumer {
    private let client: ConsumerHandle
    private let context: ConsumerContext
    private let kafka: KafkaConfiguration
    /// Keeps the log (and through it a mock cluster) alive as long as the consumer.
    private let log: KafkaLog

    init(log: KafkaLog, configuration: ConsumerConfiguration) throws {
        self.log = log
        self.kafka = log.configuration
        var logger = log.logger
        logger[metadataKey: "kafka.group"] = "\(configuration.group)"
        let context = ConsumerContext(logger: logger, requestTimeout: log.configuration.requestTimeout,
                                      bufferLimit: max(1, log.configuration.consumerBufferLimit),
                                      readerProperties: log.mockCluster == nil ? nil : log.configuration.readerProperties)
        self.context = context
        // Unretained in librdkafka: the handle keeps the opaque alive until it destroyed the client.
        let opaque = ClientOpaque(logger: logger, consumer: context)
        let handle = try RdKafka.makeClient(RD_KAFKA_CONSUMER,
                                            properties: log.configuration.consumerProperties(configuration),
                                            opaque: opaque) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
        // Group events (rebalances, errors) arrive on the consumer queue, served by the polling thread.
        rd_kafka_poll_set_consumer(handle)
        client = ConsumerHandle(client: handle, context: context, opaque: opaque, mockCluster: log.mockCluster)
        client.startThread()
    }

    deinit {
        context.requestClose()
    }

    func subscribe(_ topics: [String]) async throws {
        guard !topics.isEmpty else { throw LogError.notSubscribed }
        try context.checkOpen()
        let client = self.client
        let timeout = kafka.requestTimeout
        let unique = Array(Set(topics)).sorted()
        try await RdKafka.blocking {
            let known = try RdKafka.topicPartitionCounts(client.client, timeout: timeout)
            if let missing = unique.first(where: { known[$0] == nil }) { throw LogError.unknownTopic(missing) }
            let list = RdKafka.partitionList(unique.map { (TopicPartition(topic: $0, partition: -1), -1001) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_subscribe(client.client, list)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw RdKafka.error(code, topic: nil, while: "subscribe") }
        }
        context.markSubscribed()
        context.logger.debug("subscribed", metadata: ["kafka.topics": "\(unique)"])
    }

    func poll(maxMessages: Int, timeout: Duration) async throws -> [ConsumedMessage] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let batch = try context.take(max(1, maxMessages))
            if !batch.isEmpty { return batch }
            if clock.now >= deadline || Task.isCancelled { return [] }
            await context.waitForMessages(until: deadline)
        }
    }

    func commit(_ offsets: [TopicPartition: Int64]) async throws {
        if offsets.isEmpty { return }
        try context.checkOpen()
        let assigned = context.assigned
        var revoked = offsets.keys.filter { !assigned.contains($0) }
        let owned = offsets.filter { assigned.contains($0.key) }.sorted { $0.key < $1.key }
        if !owned.isEmpty {
            let client = self.client
            revoked += try await RdKafka.blocking { () -> [TopicPartition] in
                let list = RdKafka.partitionList(owned.map { ($0.key, $0.value) })
                defer { rd_kafka_topic_partition_list_destroy(list) }
                let code = rd_kafka_commit(client.client, list, 0)  // 0: synchronous
                if Self.lostOwnership(code) { return owned.map(\.key) }
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw RdKafka.error(code, topic: nil, while: "commit") }
                var lost: [TopicPartition] = []
                for entry in RdKafka.entries(list) where entry.error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    guard Self.lostOwnership(entry.error) else {
                        throw RdKafka.error(entry.error, topic: entry.partition.topic, while: "commit of \(entry.partition)")
                    }
                    lost.append(entry.partition)
                }
                return lost
            }
        }
        if !revoked.isEmpty { throw LogError.partitionsRevoked(revoked.sorted()) }
    }

    /// Commit errors that mean this member no longer owns the partitions (the group moved on).
    private static func lostOwnership(_ code: rd_kafka_resp_err_t) -> Bool {
        code == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || code == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID
            || code == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID
            || code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS || code == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
    }

    func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        if partitions.isEmpty { return [:] }
        try context.checkOpen()
        let client = self.client
        let timeout = kafka.requestTimeout
        return try await RdKafka.blocking {
            let list = RdKafka.partitionList(partitions.map { ($0, -1001) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_committed(client.client, list, timeout.wholeMilliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw RdKafka.error(code, topic: nil, while: "committed") }
            var result: [TopicPartition: Int64] = [:]
            for entry in RdKafka.entries(list) where entry.error == RD_KAFKA_RESP_ERR_NO_ERROR && entry.offset >= 0 {
                result[entry.partition] = entry.offset
            }
            return result
        }
    }

    func seek(_ position: SeekPosition, partitions: [TopicPartition]?) async throws {
        let targets = partitions.map(Set.init)
        let context = self.context
        try await context.onPollingThread { client in
            let moved = context.assigned.filter { targets?.contains($0) ?? true }
            let offsets = try RdKafka.resolve(position, Array(moved), client: client, timeout: context.requestTimeout,
                                              readerProperties: context.readerProperties)
            if !offsets.isEmpty {
                let list = RdKafka.partitionList(offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
                defer { rd_kafka_topic_partition_list_destroy(list) }
                if let failure = RdKafka.consume(rd_kafka_seek_partitions(client, list, context.requestTimeout.wholeMilliseconds)) {
                    throw LogError.storage("Kafka seek failed: \(failure.message)")
                }
                for entry in RdKafka.entries(list) where entry.error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw RdKafka.error(entry.error, topic: entry.partition.topic, while: "seek of \(entry.partition)")
                }
            }
            context.recordSeek(PendingSeek(position: position, partitions: targets, applied: moved))
            context.recordPositions(offsets)
        }
    }

    func assignment() async -> Set<TopicPartition> {
        context.assigned
    }

    func close() async throws {
        context.requestClose(leave: true)
        await context.waitUntilClosed()
    }
}

/// A seek that also applies, once, to partitions assigned later.
struct PendingSeek: Sendable {
    var position: SeekPosition
    /// `nil`: every partition of the subscription.
    var partitions: Set<TopicPartition>?
    var applied: Set<TopicPartition>

    func wants(_ partition: TopicPartition) -> Bool {
        !applied.contains(partition) && (partitions?.contains(partition) ?? true)
    }
}

/// The consumer's librdkafka handle and its polling thread.
final class ConsumerHandle: @unchecked Sendable {
    // Safe: `client` is set once and destroyed in deinit, when neither the consumer nor its thread holds
    // the handle any more; librdkafka's consumer API is thread-safe, and the calls that must not overlap
    // (polls, seeks, close) all run on the one polling thread.
    let client: OpaquePointer
    private let context: ConsumerContext
    /// Released only after `client` is destroyed: librdkafka's callbacks use it until then.
    private let opaque: ClientOpaque
    /// Released only after `client` is destroyed, so the client never sees its cluster vanish.
    private let mockCluster: KafkaMockCluster?

    init(client: OpaquePointer, context: ConsumerContext, opaque: ClientOpaque, mockCluster: KafkaMockCluster?) {
        self.client = client
        self.context = context
        self.opaque = opaque
        self.mockCluster = mockCluster
    }

    deinit {
        rd_kafka_destroy(client)
    }

    func startThread() {
        let thread = Thread { [self] in
            RdKafka.nameCurrentThread("tg-kafka-consume")
            run()
        }
        thread.name = "tollgate-kafka-consumer"
        thread.start()
    }

    private func run() {
        // The client's consumer queue: messages and group events.
        let queue = rd_kafka_queue_get_consumer(client)!
        // Where librdkafka puts the messages of one round, and those without error; reused every round.
        var popped = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: Self.roundLimit)
        var fetched: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        fetched.reserveCapacity(Self.roundLimit)
        var copier = MessageCopier()
        while true {
            for command in context.takeCommands() { command(client) }
            if context.isClosing { break }
            // Back-pressure: while the application is a full buffer behind, take nothing more from
            // librdkafka (whose own prefetch is bounded by `queued.max.messages.kbytes`). Rebalances wait
            // meanwhile, as with the Java client's `max.poll.interval.ms`; they are served again as soon as
            // the application polls. (Pausing the partitions instead costs a one-second fetch stall at every
            // resume in librdkafka 2.0.2.)
            let room = context.bufferLimit - context.buffered
            if room <= 0 {
                // Woken as soon as the application takes messages; every 2 ms at the latest, for commands.
                context.waitForRoom(timeout: .milliseconds(2))
                continue
            }
            // Take what librdkafka has ready (waiting only for the first message), copy it into Swift
            // values and give librdkafka its messages back before handing the copies over.
            let limit = min(Self.roundLimit, room)
            fetched.removeAll(keepingCapacity: true)
            let count = popped.withUnsafeMutableBufferPointer { slots -> Int in
                // One message (waiting up to 20 ms), then the rest of what is ready without waiting: two
                // calls a round, not one per message. Rebalance callbacks run inside either.
                let first = rd_kafka_consume_batch_queue(queue, 20, slots.baseAddress, 1)
                guard first > 0, limit > 1 else { return max(0, first) }
                let rest = rd_kafka_consume_batch_queue(queue, 0, slots.baseAddress! + 1, limit - 1)
                return 1 + max(0, rest)
            }
            for index in 0..<count {
                guard let message = popped[index] else { continue }
                if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    context.logger.warning("consumer error", metadata: [
                        "kafka.error": "\(RdKafka.describe(message.pointee.err))"])
                    rd_kafka_message_destroy(message)
                    continue
                }
                fetched.append(message)
            }
            if !fetched.isEmpty { context.deliver(copier.copyAndDestroy(fetched)) }
        }
        context.discardBuffer()
        if context.beginLeave() {
            // librdkafka (KIP-345) sends no LeaveGroup for a static member that terminates, but does when
            // it unsubscribes: unsubscribe first and serve the revoke, so the group rebalances at once.
            rd_kafka_unsubscribe(client)
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: .seconds(2))
            while !context.revokedSinceLeave && clock.now < end {
                if let message = rd_kafka_consumer_poll(client, 20) { rd_kafka_message_destroy(message) }
            }
            // The LeaveGroup goes out once librdkafka finished the unassign; give it that moment.
            let settle = clock.now.advanced(by: .milliseconds(100))
            while clock.now < settle {
                if let message = rd_kafka_consumer_poll(client, 20) { rd_kafka_message_destroy(message) }
            }
        }
        // Leaves the group if still in it (serving the final revoke through the rebalance callback).
        let code = rd_kafka_consumer_close(client)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            context.logger.warning("consumer close failed", metadata: ["kafka.error": "\(RdKafka.describe(code))"])
        }
        rd_kafka_queue_destroy(queue)
        // Commands accepted just before closing still get an answer (an error, the consumer is closed).
        for command in context.markClosed() { command(client) }
    }

    /// Messages taken from librdkafka per round at most.
    private static let roundLimit = 5_000

}

/// The rebalance callback, called on the consumer's polling thread inside `rd_kafka_consumer_poll`.
private func rebalanceCallback(_ client: OpaquePointer?, _ code: rd_kafka_resp_err_t,
                               _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                               _ opaque: UnsafeMutableRawPointer?) {
    guard let client, let opaque,
          let context = Unmanaged<ClientOpaque>.fromOpaque(opaque).takeUnretainedValue().consumer else { return }
    if code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, let partitions {
        context.assign(client, partitions)
    } else {
        context.revoke(client)
    }
}

/// State shared by a consumer, its polling thread and the rebalance callback.
final class ConsumerContext: Sendable {
    private struct State {
        var buffer = MessageQueue()
        var assigned: Set<TopicPartition> = []
        /// Per assigned partition, the offset of the next message the application will get (once known:
        /// after it took a message, or a seek).
        var positions: [TopicPartition: Int64] = [:]
        /// Positions at the last revoke: a partition assigned again in the rebalance that follows continues
        /// there, not from the committed offset (eager rebalancing revokes everything every time).
        var retained: [TopicPartition: Int64] = [:]
        var seek: PendingSeek?
        var commands: [@Sendable (OpaquePointer) -> Void] = []
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var subscribed = false
        var closing = false
        /// `close()` (not a dropped consumer) asked to leave the group at once.
        var leave = false
        var revokedSinceLeave = false
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []

        var buffered: Int { buffer.count }
    }

    private enum Waiter {
        /// Registered, not suspended yet.
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        /// Its deadline passed before it started waiting.
        case expired
    }

    let logger: Logger
    let requestTimeout: Duration
    let bufferLimit: Int
    /// Set on the mock cluster: see ``RdKafka/resolve(_:_:client:timeout:readerProperties:)``.
    let readerProperties: [(String, String)]?
    private let state = Mutex(State())
    /// Signalled when the application takes messages out of a full buffer.
    private let room = DispatchSemaphore(value: 0)

    init(logger: Logger, requestTimeout: Duration, bufferLimit: Int, readerProperties: [(String, String)]?) {
        self.logger = logger
        self.requestTimeout = requestTimeout
        self.bufferLimit = bufferLimit
        self.readerProperties = readerProperties
    }

    var assigned: Set<TopicPartition> { state.withLock { $0.assigned } }
    var isClosing: Bool { state.withLock { $0.closing } }

    /// Whether `close()` asked to leave the group; resets the revoke marker.
    func beginLeave() -> Bool {
        state.withLock { state in
            state.revokedSinceLeave = state.assigned.isEmpty
            return state.leave
        }
    }

    var revokedSinceLeave: Bool { state.withLock { $0.revokedSinceLeave } }

    func checkOpen() throws {
        try state.withLock { if $0.closing { throw LogError.closed } }
    }

    func markSubscribed() { state.withLock { $0.subscribed = true } }

    // MARK: Messages

    /// Messages fetched but not yet taken by the application.
    var buffered: Int { state.withLock { $0.buffered } }

    /// Adds fetched messages of partitions still assigned and wakes waiting polls.
    func deliver(_ batch: [ConsumedMessage]) {
        if batch.isEmpty { return }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            // A revoke inside the librdkafka poll may have taken some of these partitions away. Messages come
            // in runs of one partition, so the assignment is looked up once per run.
            var last: (topic: String, partition: Int, assigned: Bool)?
            func isAssigned(_ message: ConsumedMessage) -> Bool {
                if let last, last.partition == message.partition, last.topic == message.topic { return last.assigned }
                let assigned = state.assigned.contains(message.topicPartition)
                last = (message.topic, message.partition, assigned)
                return assigned
            }
            if batch.allSatisfy(isAssigned) {
                state.buffer.append(batch)
            } else {
                state.buffer.append(batch.filter(isAssigned))
            }
            return state.buffered > 0 ? Self.takeWaiters(&state) : []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until the application took messages out of a full buffer, or `timeout` passed (the polling
    /// thread, while the buffer is full).
    func waitForRoom(timeout: Duration) {
        _ = room.wait(timeout: .now() + .milliseconds(Int(timeout.wholeMilliseconds)))
    }

    /// Takes up to `maximum` buffered messages.
    func take(_ maximum: Int) throws -> [ConsumedMessage] {
        let (batch, wasFull) = try state.withLock { state -> ([ConsumedMessage], Bool) in
            let wasFull = state.buffered >= bufferLimit
            return (try Self.take(&state, maximum), wasFull)
        }
        if wasFull && !batch.isEmpty { room.signal() }
        return batch
    }

    private static func take(_ state: inout State, _ maximum: Int) throws -> [ConsumedMessage] {
        if state.closing { throw LogError.closed }
        if !state.subscribed { throw LogError.notSubscribed }
        let batch = state.buffer.take(maximum)
        // The next offset per partition: offsets grow within a partition, so the last message of each
        // run of one partition is the one that counts.
        for index in batch.indices {
            let next = batch.index(after: index)
            if next == batch.endIndex || batch[next].partition != batch[index].partition
                || batch[next].topic != batch[index].topic {
                state.positions[batch[index].topicPartition] = batch[index].offset + 1
            }
        }
        return batch
    }

    /// Drops buffered messages of these partitions (after a seek or a revoke).
    private static func purge(_ state: inout State, _ partitions: Set<TopicPartition>) {
        if partitions.isEmpty || state.buffered == 0 { return }
        state.buffer.filter { !partitions.contains($0.topicPartition) }
    }

    /// Drops every buffered message (the polling thread, when it stops).
    func discardBuffer() {
        state.withLock { state in
            state.buffer.removeAll()
        }
    }

    /// Suspends until messages arrive, the consumer closes, or the deadline passes.
    func waitForMessages(until deadline: ContinuousClock.Instant) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            state.waiters[state.nextWaiter] = .pending
            return state.nextWaiter
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            self?.expire(id)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.buffered > 0 || state.closing { return true }
                if case .expired = state.waiters[id] {
                    state.waiters[id] = nil
                    return true
                }
                state.waiters[id] = .waiting(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
        timer.cancel()
        // Resumed by messages before the timer fired (or never suspended): forget the entry, so the timer
        // finds nothing to expire.
        state.withLock { state in state.waiters[id] = nil }
    }

    /// The timer of waiter `id` fired (or was cancelled after the wait ended: then there is no entry).
    private func expire(_ id: UInt64) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state.waiters[id] {
            case .waiting(let continuation):
                state.waiters[id] = nil
                return continuation
            case .pending:
                state.waiters[id] = .expired
                return nil
            case .expired, nil:
                return nil
            }
        }
        continuation?.resume()
    }

    private static func takeWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        var result: [CheckedContinuation<Void, Never>] = []
        for (id, waiter) in state.waiters {
            if case .waiting(let continuation) = waiter {
                result.append(continuation)
                state.waiters[id] = nil
            }
        }
        return result
    }

    // MARK: Commands on the polling thread

    func takeCommands() -> [@Sendable (OpaquePointer) -> Void] {
        state.withLock { state in
            let commands = state.commands
            state.commands = []
            return commands
        }
    }

    /// Runs `body` on the polling thread between two librdkafka polls.
    func onPollingThread(_ body: @escaping @Sendable (OpaquePointer) throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = state.withLock { state -> Bool in
                if state.closing { return false }
                state.commands.append { client in continuation.resume(with: Result { try body(client) }) }
                return true
            }
            if !accepted { continuation.resume(throwing: LogError.closed) }
        }
    }

    func recordSeek(_ seek: PendingSeek) {
        state.withLock { state in
            state.seek = seek
            Self.purge(&state, seek.applied)
        }
    }

    func recordPositions(_ offsets: [TopicPartition: Int64]) {
        state.withLock { state in state.positions.merge(offsets) { $1 } }
    }

    // MARK: Rebalances (on the polling thread)

    func assign(_ client: OpaquePointer, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let entries = RdKafka.entries(partitions)
        let (seek, retained) = state.withLock { state in
            let retained = state.retained
            state.retained = [:]
            return (state.seek, retained)
        }
        var applied: Set<TopicPartition> = []
        var starts = retained.filter { partition, _ in entries.contains { $0.partition == partition } }
        if let seek {
            // Start the partitions a pending seek wants at the seek's offset instead of the committed one.
            let wanted = entries.map(\.partition).filter(seek.wants)
            do {
                let offsets = try RdKafka.resolve(seek.position, wanted, client: client, timeout: requestTimeout,
                                                  readerProperties: readerProperties)
                for (partition, offset) in offsets {
                    starts[partition] = offset
                    applied.insert(partition)
                }
            } catch {
                logger.warning("pending seek not applied", metadata: ["kafka.error": "\(error)"])
            }
        }
        for index in 0..<Int(partitions.pointee.cnt) {
            let element = partitions.pointee.elems[index]
            let partition = TopicPartition(topic: String(cString: element.topic), partition: Int(element.partition))
            if let offset = starts[partition] { partitions.pointee.elems[index].offset = offset }
        }
        let code = rd_kafka_assign(client, partitions)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.error("assign failed", metadata: ["kafka.error": "\(RdKafka.describe(code))"])
        }
        state.withLock { state in
            state.assigned = Set(entries.map(\.partition))
            state.positions = starts
            state.seek?.applied.formUnion(applied)
        }
        logger.debug("partitions assigned", metadata: ["kafka.partitions": "\(entries.map(\.partition))"])
    }

    func revoke(_ client: OpaquePointer) {
        rd_kafka_assign(client, nil)
        state.withLock { state in
            state.revokedSinceLeave = true
            state.retained = state.positions
            state.positions = [:]
            Self.purge(&state, state.assigned)
            state.assigned = []
        }
        logger.debug("partitions revoked")
    }

    // MARK: Closing

    /// Stops the consumer. With `leave`, it leaves the group at once, also as a static member; without
    /// (a dropped consumer) a static member keeps its place until the session timeout, like a crash.
    func requestClose(leave: Bool = false) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closing = true
            if leave { state.leave = true }
            return Self.takeWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Marks the consumer closed; returns commands that were accepted but not run yet.
    func markClosed() -> [@Sendable (OpaquePointer) -> Void] {
        let (commands, waiters) = state.withLock { state in
            state.closed = true
            state.assigned = []
            let result = (state.commands, state.closeWaiters)
            state.commands = []
            state.closeWaiters = []
            return result
        }
        for waiter in waiters { waiter.resume() }
        return commands
    }

    func waitUntilClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.closed { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
