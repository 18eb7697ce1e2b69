import Foundation
import Logging
import ServiceLifecycle
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateCost
@testable import TollgatePricing

@Suite("Cost service")
struct CostServiceTests {
    /// Runs the cost service until it has priced `count` responses (in total since `State()`), then stops it.
    static func runUntil(_ count: Int, log: EmbeddedLog, pricer: Pricer) async throws {
        let (states, sink) = AsyncStream.makeStream(of: CostFold.State.self)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = CostService(log: log, pricer: pricer, logger: logger, onBatch: { state, _ in sink.yield(state) })
        let group = ServiceGroup(services: [service], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for await state in states where state.priced + state.unpriced >= count { break }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func usages(_ log: EmbeddedLog) async throws -> [CloudEvent<UsageData>] {
        let reader = try await log.makeConsumer(ConsumerConfiguration(group: "reader-\(UUID())"))
        try await reader.subscribe(["tollgate.usage"])
        var events: [CloudEvent<UsageData>] = []
        while true {
            let batch = try await reader.poll(maxMessages: 10_000, timeout: .milliseconds(50))
            if batch.isEmpty { break }
            events += try batch.map { try EventCoding.decode(UsageData.self, from: $0.value ?? Data()) }
        }
        try await reader.close()
        return events
    }

    @Test("prices every response once across a restart, publishes usage keyed by team, dead-letters garbage")
    func restartSafe() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-cost-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try EmbeddedLog.open(directory: directory)
        defer { log.close() }
        try await log.provision(TopicCatalog.all.map {
            TopicSpec(name: $0.fullName(), partitions: $0.partitions, cleanupPolicy: $0.cleanupPolicy == .compact ? .compact : .delete)
        })
        let pricer = try CostFoldTests.fold().pricer

        func publish(_ range: Range<Int>) async throws {
            _ = try await log.produce(range.map { index in
                var response = CostFoldTests.response(
                    model: index % 10 == 9 ? "mystery-model" : "gpt-4o-mini",
                    usage: TokenUsage(inputTokens: Int64(100 + index), outputTokens: Int64(index)))
                response.requestID = "req-\(index)"
                response.team = "team-\(index % 3)"
                let event = CloudEvent(id: "response:req-\(index)", source: "test", time: Date(), data: response)
                return OutgoingMessage(topic: "tollgate.responses", key: response.team, value: try! EventCoding.encode(event))
            })
        }
        try await publish(0..<50)
        _ = try await log.produce(OutgoingMessage(topic: "tollgate.responses", key: "team-0", value: Data("garbage".utf8)))
        try await Self.runUntil(50, log: log, pricer: pricer)
        try await publish(50..<80)
        try await Self.runUntil(30, log: log, pricer: pricer)

        let usages = try await Self.usages(log)
        #expect(usages.count == 80, "each response priced exactly once across the restart")
        #expect(Set(usages.map(\.id)) == Set((0..<80).map { "usage:req-\($0)" }))
        for usage in usages {
            let index = Int(usage.data.response.requestID.dropFirst(4))!
            if index % 10 == 9 {
                #expect(!usage.data.priced && usage.data.unpricedReason == "model_not_in_catalog")
            } else {
                // (100 + i) × 0.15 + i × 0.60 µ$ = 15,000 + 750·i nano.
                #expect(usage.data.costNanoUSD.total.nanoUSD == 15_000 + 750 * Int64(index), "req-\(index)")
            }
        }
        let dead = try await log.watermarks(topic: "tollgate.deadletter").values.reduce(0) { $0 + $1.high }
        #expect(dead == 1)
    }
}
