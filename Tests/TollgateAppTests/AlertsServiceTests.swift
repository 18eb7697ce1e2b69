import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TollgateApp
import TollgateEvents
import TollgateLog
import TollgateNotify

/// The alerts service with its deliverer over a real embedded log, a real SQLite deliveries database and a
/// webhook receiver on loopback that checks every signature.
@Suite("Alerts service: budget levels to signed webhooks, once, across a restart")
struct AlertsServiceTests {
    static let secret = "test-webhook-secret"

    /// A webhook receiver on 127.0.0.1 recording each delivery id and whether its signature verified.
    final class Receiver: Sendable {
        let received = Mutex<[(delivery: String, verified: Bool, body: Data)]>([])
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)

        func application(logger: Logger) -> some ApplicationProtocol {
            let router = Router()
            router.post("/hook") { [self] request, _ -> HTTPResponse.Status in
                let body = Data(buffer: try await request.body.collect(upTo: 1 << 20))
                let delivery = request.headers[HTTPField.Name("X-Tollgate-Delivery")!] ?? ""
                let verified = WebhookFormat.verify(
                    body: body, timestamp: request.headers[HTTPField.Name("X-Tollgate-Timestamp")!] ?? "",
                    signature: request.headers[HTTPField.Name("X-Tollgate-Signature")!] ?? "",
                    secret: AlertsServiceTests.secret)
                received.withLock { $0.append((delivery, verified, body)) }
                continuation.yield(delivery)
                return .ok
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { [portContinuation] channel in
                                   portContinuation.yield(channel.localAddress?.port ?? 0)
                               },
                               logger: logger)
        }
    }

    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    static func decision(_ percent: Int64, at minute: Int) -> OutgoingMessage {
        let limit = Money(wholeUSD: 100)!
        let spent = Money(nanoUSD: limit.nanoUSD / 100 * percent)
        let start = EventTime.parse("2026-11-01T00:00:00Z")!
        let decidedAt = start.addingTimeInterval(86_400 + Double(minute) * 60)
        let data = BudgetDecisionData(
            budgetID: "search-monthly", scope: .team("search"),
            period: BudgetPeriod(kind: .month, timeZone: "UTC", start: start,
                                 end: EventTime.parse("2026-12-01T00:00:00Z")!),
            state: .ok, limitNanoUSD: limit, spentNanoUSD: spent, remainingNanoUSD: limit - spent,
            usedPercentBP: percent * 100, action: .none, onNoDowngrade: .block,
            watermark: .init(usageOffsets: [:], asOf: decidedAt), decidedAt: decidedAt)
        let event = CloudEvent(id: "decision:\(minute)", source: "test", time: decidedAt, data: data)
        return OutgoingMessage(topic: "tollgate." + BudgetDecisionData.topic, key: data.budgetID,
                               value: try! EventCoding.encode(event))
    }

    /// Runs the alerts service and its deliverer until `body` returns.
    static func running(_ log: EmbeddedLog, port: Int, path: String,
                        _ body: @escaping @Sendable (AlertsRuntime, AsyncStream<Void>) async throws -> Void) async throws {
        let channels = try JSONDecoder().decode(ChannelConfiguration.self, from: Data("""
            {"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:\(port)/hook", "secret": "\(secret)"}},
             "retry": {"base_delay": "50ms", "max_delay": "1s", "max_attempts": 20}}
            """.utf8))
        let (caughtUp, caughtUpContinuation) = AsyncStream.makeStream(of: Void.self)
        let runtime = try AlertsRuntime(log: log, configuration: AlertsConfiguration(channels: channels), path: path,
                                        topicPrefix: "tollgate.", logger: quiet,
                                        onCaughtUp: { caughtUpContinuation.yield() })
        let group = ServiceGroup(configuration: .init(services: runtime.services, logger: quiet))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body(runtime, caughtUp)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await runtime.shutdown()
    }

    /// The delivery ids as the receiver gets them, read by one test at a time.
    final class Arrivals: @unchecked Sendable {
        private var iterator: AsyncStream<String>.Iterator
        private(set) var all: [String] = []

        init(_ stream: AsyncStream<String>) { iterator = stream.makeAsyncIterator() }

        /// Waits for `count` more deliveries (a failure after 10 s).
        func next(_ count: Int) async {
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            let target = all.count + count
            while all.count < target {
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else {
                    Issue.record("only \(count - (target - all.count)) of \(count) deliveries arrived")
                    return
                }
                let id = await withTaskGroup(of: String?.self) { group in
                    group.addTask { [self] in await self.iterator.next() }
                    group.addTask { try? await Task.sleep(for: remaining); return nil }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
                guard let id else { continue }
                all.append(id)
            }
        }
    }

    @Test("50 % and 80 % crossed raise two alerts, each published and delivered once; a restart raises nothing again")
    func thresholdsOnceAcrossRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-alerts-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try EmbeddedLog.open(directory: directory + "/log", logger: Self.quiet)
        defer { log.close() }
        try await log.provision(TopicCatalog.specs())
        let receiver = Receiver()
        let server = ServiceGroup(configuration: .init(services: [receiver.application(logger: Self.quiet)],
                                                       logger: Self.quiet))
        let serverTask = Task { try await server.run() }
        var ports = receiver.ports.makeAsyncIterator()
        let port = try #require(await ports.next())
        let arrivals = Arrivals(receiver.stream)
        let path = directory + "/alerts.sqlite"

        // The spend of the team's budget goes 30 % → 55 % → 85 %, back under 80 % and over it again.
        _ = try await log.produce([Self.decision(30, at: 0), Self.decision(55, at: 1), Self.decision(85, at: 2),
                                   Self.decision(79, at: 3), Self.decision(86, at: 4)])
        try await Self.running(log, port: port, path: path) { runtime, caughtUp in
            var iterator = caughtUp.makeAsyncIterator()
            _ = await iterator.next()
            let recent = try runtime.store.recent(limit: 10)
            #expect(recent.map(\.alertID).sorted() == [
                "default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|50",
                "default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|80",
            ])
        }
        await arrivals.next(2)
        #expect(Set(arrivals.all).count == 2)

        // Restarted: the same decisions again (re-published) and one under the next level raise nothing; 100 %
        // then raises the third alert.
        _ = try await log.produce([Self.decision(85, at: 2), Self.decision(90, at: 5)])
        try await Self.running(log, port: port, path: path) { runtime, caughtUp in
            var iterator = caughtUp.makeAsyncIterator()
            _ = await iterator.next()
            #expect(try runtime.store.recent(limit: 10).count == 2)
            _ = try await log.produce([Self.decision(100, at: 6)])
            await arrivals.next(1)
        }
        let ids = arrivals.all
        #expect(ids.count == 3)
        #expect(Set(ids).count == 3)
        #expect(ids.last == "default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|100#hook")
        let received = receiver.received.withLock { $0 }
        #expect(received.count == 3)
        #expect(received.filter { !$0.verified }.isEmpty)
        // Every alert is also on the alerts topic, once each.
        let published = try await log.readToEnd(topic: "tollgate.alerts")
        #expect(Set(published.compactMap { $0.key.map { String(decoding: $0, as: UTF8.self) } }).count == 3)
        #expect(published.count == 3)
        let store = try DeliveryStore.open(path: path, readonly: true, logger: Self.quiet)
        #expect(try store.counts()[.delivered] == 3)

        await server.triggerGracefulShutdown()
        try await serverTask.value
    }

    @Test("the alerts file: channels and rules read together; a bad key or value is named")
    func configurationFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-alerts-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func load(_ text: String) throws -> AlertsConfiguration {
            let file = directory.appendingPathComponent("alerts-\(UUID()).yaml").path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            return try AlertsConfiguration.load(file: file)
        }
        let good = try load("""
            channels:
              hook: {type: webhook, url: "http://127.0.0.1:9/hook", secret: s}
            retry: {base_delay: 1s, max_delay: 1m, max_attempts: 5}
            rules:
              - {id: search-levels, kind: budget_threshold, scope: team:search, levels_percent: [80, 95]}
              - {id: default-estimated-usage, enabled: false}
            """)
        #expect(good.channels.channels.keys.sorted() == ["hook"])
        #expect(good.channels.retry.maxAttempts == 5)
        #expect(good.rules.count == 2)
        #expect(try AlertsConfiguration.load(file: nil).channels.channels.isEmpty)

        let unknown = #expect(throws: AlertsConfigurationError.self) {
            try load("channels: {}\nretries: {max_attempts: 3}\n")
        }
        #expect(unknown?.description.contains("retries") == true)
        let badURL = #expect(throws: AlertsConfigurationError.self) {
            try load("channels:\n  hook: {type: webhook, url: \"ftp://example.com\"}\n")
        }
        #expect(badURL?.description.contains("channels.hook.url") == true)
        let missing = #expect(throws: AlertsConfigurationError.self) { try load("channels: [") }
        #expect(missing?.description.contains("not valid") == true)
    }
}
