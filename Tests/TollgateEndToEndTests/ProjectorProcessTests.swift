import Foundation
import Testing
import TollgateApp
import TollgateEvents
import TollgateLog
import TollgateProjections

/// `tollgate projector` as its own process on a shared embedded log: killed with SIGKILL while usage
/// flows in and started again, it ends with every request once, to the nano-dollar.
@Suite("Projector process", .serialized)
struct ProjectorProcessTests {
    @Test("SIGKILL while events flow: restarted, the projections hold every request exactly once")
    func sigkill() async throws {
        let directory = try TemporaryDirectory()
        let logDirectory = directory.path + "/log"
        let database = directory.path + "/projections.sqlite"
        let log = try EmbeddedLog.open(directory: logDirectory)
        defer { log.close() }
        try await log.provision(TopicCatalog.specs())
        let total = 3_000
        let generator = UsageGenerator(requests: total, days: 2, end: Date(), seed: 5,
                                       pricer: try PricingSetup.pricer(file: nil))
        let events = (0..<total).map { generator.event($0) }
        func produce(_ range: Range<Int>) async throws {
            _ = try await log.produce(events[range].map { event in
                OutgoingMessage(topic: "tollgate.usage", key: event.data.messageKey, value: EventCoding.encodeCanonical(event))
            })
        }
        let arguments = ["projector", "--log-dir", logDirectory, "--projections", database, "--log-level", "info"]
        var child = try ChildProcess(arguments)
        // Feed it in small chunks and kill it once it has applied some but not all.
        let clock = ContinuousClock()
        var produced = 0
        var store: ProjectionStore?
        let killBy = clock.now.advanced(by: .seconds(60))
        while clock.now < killBy {
            if produced < total {
                try await produce(produced..<min(total, produced + 100))
                produced = min(total, produced + 100)
            }
            if store == nil, FileManager.default.fileExists(atPath: database) {
                store = try? ProjectionStore.open(path: database, readonly: true)
            }
            if let applied = try? store?.status().requests, applied >= 500 { break }
            #expect(child.process.isRunning, "projector exited: \(child.stderr.suffix(5))")
            try await Task.sleep(for: .milliseconds(10))
        }
        child.signal(SIGKILL)
        #expect(try await child.waitForExit() == SIGKILL)
        let store2 = try #require(store)
        let beforeRestart = try store2.status().requests
        #expect(beforeRestart >= 500 && beforeRestart < Int64(total))

        child = try ChildProcess(arguments)
        if produced < total { try await produce(produced..<total) }
        let done = clock.now.advanced(by: .seconds(60))
        while clock.now < done, try store2.status().requests < Int64(total) {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Every request once: the count, and the sums by team and model, to the nano-dollar.
        #expect(try store2.status().requests == Int64(total))
        let result = try store2.usage(UsageQuery(from: Date().addingTimeInterval(-3 * 86_400),
                                                 to: Date().addingTimeInterval(3_600), groupBy: [.team, .model]))
        var expected: [String: (Int64, Int64, Int64)] = [:]
        for event in events {
            let key = event.data.response.team + "|" + event.data.response.servedModel
            var sums = expected[key] ?? (0, 0, 0)
            sums.0 += 1
            sums.1 += event.data.costNanoUSD.total.nanoUSD
            sums.2 += event.data.response.usage.outputTokens
            expected[key] = sums
        }
        #expect(result.rows.count == expected.count)
        for row in result.rows {
            let sums = expected[(row.group["team"] ?? "") + "|" + (row.group["model"] ?? "")]
            #expect(sums?.0 == row.figures.requests)
            #expect(sums?.1 == row.figures.costNanoUSD.total.nanoUSD)
            #expect(sums?.2 == row.figures.tokens.outputTokens)
        }
        child.signal(SIGTERM)
        #expect(try await child.waitForExit() == 0)
    }
}
