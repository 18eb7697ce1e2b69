import Foundation

extension MessageLog {
    /// Every message of `topic` from the low to the high watermark as they were when the call started,
    /// read outside any consumer group's offsets (a fresh group that commits nothing). For loading the
    /// state held in a compacted topic at start-up.
    public func readToEnd(topic: String, timeout: Duration = .seconds(60)) async throws -> [ConsumedMessage] {
        let target = try await watermarks(topic: topic)
        guard target.contains(where: { $0.value.high > $0.value.low }) else { return [] }
        let consumer = try await makeConsumer(ConsumerConfiguration(
            group: "snapshot-\(UUID().uuidString.lowercased())", autoOffsetReset: .earliest,
            sessionTimeout: .seconds(6), heartbeatInterval: .seconds(1)))
        try await consumer.subscribe([topic])
        try await consumer.seek(.beginning, partitions: nil)
        var messages: [ConsumedMessage] = []
        var position: [Int: Int64] = [:]
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        // On a compacted topic the newest offsets may be gone: once partitions are assigned, half a
        // second without a message means there is nothing more below the target.
        var idlePolls = 0
        while !target.allSatisfy({ partition, marks in (position[partition] ?? marks.low) >= marks.high }),
              idlePolls < 5 {
            guard clock.now < end else {
                try? await consumer.close()
                throw LogError.storage("reading \(topic) to its end took longer than \(timeout)")
            }
            let batch = try await consumer.poll(maxMessages: 5_000, timeout: .milliseconds(100))
            if batch.isEmpty {
                if await !consumer.assignment().isEmpty { idlePolls += 1 }
                continue
            }
            idlePolls = 0
            for message in batch where message.offset < (target[message.partition]?.high ?? 0) {
                position[message.partition] = message.offset + 1
                messages.append(message)
            }
        }
        try await consumer.close()
        return messages
    }

    /// The messages of `topic` in `[from, to)` per partition (partitions absent from `to` are not read),
    /// read outside any consumer group's offsets. Offsets no longer held (compacted or expired) are
    /// skipped.
    public func read(topic: String, from: [Int: Int64], to: [Int: Int64],
                     timeout: Duration = .seconds(60)) async throws -> [ConsumedMessage] {
        let marks = try await watermarks(topic: topic)
        var target: [Int: Int64] = [:]
        for (partition, end) in to {
            let start = max(from[partition] ?? 0, marks[partition]?.low ?? 0)
            if start < end { target[partition] = end }
        }
        guard !target.isEmpty else { return [] }
        let consumer = try await makeConsumer(ConsumerConfiguration(
            group: "range-\(UUID().uuidString.lowercased())", autoOffsetReset: .earliest,
            sessionTimeout: .seconds(6), heartbeatInterval: .seconds(1)))
        try await consumer.subscribe([topic])
        for partition in target.keys {
            let start = max(from[partition] ?? 0, marks[partition]?.low ?? 0)
            try await consumer.seek(.offset(start), partitions: [TopicPartition(topic: topic, partition: partition)])
        }
        var messages: [ConsumedMessage] = []
        var done = Set<Int>()
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        var idlePolls = 0
        while done.count < target.count, idlePolls < 5 {
            guard clock.now < end else {
                try? await consumer.close()
                throw LogError.storage("reading \(topic) took longer than \(timeout)")
            }
            let batch = try await consumer.poll(maxMessages: 5_000, timeout: .milliseconds(100))
            if batch.isEmpty {
                if await !consumer.assignment().isEmpty { idlePolls += 1 }
                continue
            }
            idlePolls = 0
            for message in batch {
                guard let high = target[message.partition] else { continue }
                if message.offset + 1 >= high { done.insert(message.partition) }
                if message.offset < high, message.offset >= (from[message.partition] ?? 0) { messages.append(message) }
            }
        }
        try await consumer.close()
        return messages
    }
}
