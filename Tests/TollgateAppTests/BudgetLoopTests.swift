import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing
@testable import TollgateApp
import TollgateBudget
import TollgateCost
import TollgateEvents
import TollgateFakeProvider
import TollgateIngress
import TollgateLog
import TollgatePricing

/// The whole budget loop in one process on one embedded log: fake provider, two ingress replicas, the
/// cost and budget services.
@Suite("Budget loop", .serialized)
struct BudgetLoopTests {
    static let secret = "sk-upstream-budget-loop"

    final class Results: Sendable {
        let succeeded = Mutex<[String]>([])
        let refusals = Mutex<[String]>([])
    }

    final class Ports: Sendable {
        let stream: AsyncStream<Int>
        let continuation: AsyncStream<Int>.Continuation
        init() { (stream, continuation) = AsyncStream.makeStream(of: Int.self) }
        func next() async -> Int { for await port in stream { return port }; return 0 }
    }

    @Test("a $1.00 team budget holds under 64 concurrent clients on two replicas: final spend ≤ $1.01",
          .timeLimit(.minutes(3)))
    func overshoot() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-budget-loop-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "budget-loop")
        logger.logLevel = .error
        let log = try EmbeddedLog.open(directory: directory, logger: logger)
        defer { log.close() }
        try await log.provision(TopicCatalog.specs())
        let pricer = try PricingSetup.pricer(file: nil)

        let writer = ControlWriter(log: log, topicPrefix: "tollgate.", source: "test")
        let key = VirtualKeys.create(team: "overshoot", project: "loop")
        try await writer.write(key.data)
        try await writer.write(BudgetSetData(
            budgetID: "overshoot-1usd", scope: .team("overshoot"), periodKind: .day, timeZone: "UTC",
            limitNanoUSD: Money(wholeUSD: 1)!, levels: [.init(percent: 100, action: .block)], onNoDowngrade: .block,
            updatedAt: Date()))

        let fakePorts = Ports()
        let fake = FakeProvider(configuration: .init(requiredKey: Self.secret), logger: logger)
            .buildApplication(host: "127.0.0.1", port: 0) { fakePorts.continuation.yield($0) }
        let fakeGroup = ServiceGroup(configuration: .init(services: [.init(service: fake)], logger: logger))
        let fakeTask = Task { try await fakeGroup.run() }
        let fakePort = await fakePorts.next()
        let base = "http://127.0.0.1:\(fakePort)"
        var configuration = IngressConfiguration(upstreams: [.openai: .init(baseURL: base, apiKey: Self.secret)])
        configuration.topicPrefix = "tollgate."

        var services: [any Service] = [
            CostService(log: log, pricer: pricer, logger: logger),
            BudgetService(log: log, logger: logger),
        ]
        var replicas: [Ingress] = []
        let ingressPorts = Ports()
        for _ in 0..<2 {
            let ingress = Ingress(configuration: configuration, log: log, pricer: pricer, replicas: 2, logger: logger)
            let router = Router()
            ingress.addRoutes(to: router)
            replicas.append(ingress)
            services += ingress.services
            services.append(Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                        onServerRunning: { ingressPorts.continuation.yield($0.localAddress?.port ?? 0) },
                                        logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        let groupTask = Task { try await group.run() }
        let ports = [await ingressPorts.next(), await ingressPorts.next()]
        for ingress in replicas {
            #expect(await ingress.budgets!.wait(timeout: .seconds(30)) { $0.decisions["overshoot-1usd"] != nil })
            #expect(await ingress.control.wait(timeout: .seconds(30)) { $0.entry(id: key.data.keyID) != nil })
        }

        // 64 clients, alternating replicas and streaming, each until refused (bounded: 40 calls, 90 s).
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let results = Results()
        let secret = key.secret
        let deadline = ContinuousClock.now.advanced(by: .seconds(90))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for clientIndex in 0..<64 {
                tasks.addTask {
                    for call in 0..<40 where ContinuousClock.now < deadline {
                        let stream = (clientIndex + call) % 2 == 0
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(ports[(clientIndex + call) % 2])/v1/chat/completions")
                        request.method = .POST
                        request.headers.add(name: "authorization", value: "Bearer \(secret)")
                        request.headers.add(name: "content-type", value: "application/json")
                        let body: [String: Any] = [
                            "model": "o1-pro", "max_tokens": 128, "stream": stream,
                            "messages": [["role": "user", "content": "client \(clientIndex) call \(call) asks a question of some length"]],
                        ]
                        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
                        let response = try await client.execute(request, timeout: .seconds(30))
                        let bytes = try await response.body.collect(upTo: 1 << 20)
                        if response.status.code == 429 {
                            results.refusals.withLock { $0.append(String(buffer: bytes)) }
                            return
                        }
                        #expect(response.status.code == 200, "\(String(buffer: bytes))")
                        if let id = response.headers.first(name: "x-tollgate-request-id") {
                            results.succeeded.withLock { $0.append(id) }
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        try await client.shutdown()

        // Every client was refused in the end, in OpenAI's quota shape with Tollgate's code.
        let refused = results.refusals.withLock { $0 }
        #expect(refused.count == 64)
        #expect(refused.allSatisfy { $0.contains("\"type\":\"insufficient_quota\"") && $0.contains("\"code\":\"budget_exceeded\"") })

        // Wait until every successful call is priced, then add up the team's spend from the usage topic.
        for ingress in replicas { #expect(await ingress.events.flush()) }
        let ids = Set(results.succeeded.withLock { $0 })
        var spent: Int64 = 0
        var priced = Set<String>()
        let reader = try await log.makeConsumer(ConsumerConfiguration(group: "spend-\(UUID())"))
        try await reader.subscribe(["tollgate.usage"])
        let waitUntil = ContinuousClock.now.advanced(by: .seconds(60))
        while !ids.isSubset(of: priced) && ContinuousClock.now < waitUntil {
            for message in try await reader.poll(maxMessages: 1_000, timeout: .milliseconds(200)) {
                let usage = try EventCoding.decode(UsageData.self, from: message.value ?? Data()).data
                guard usage.response.team == "overshoot", priced.insert(usage.response.requestID).inserted else { continue }
                #expect(usage.priced, "\(usage.unpricedReason ?? "")")
                spent += usage.costNanoUSD.total.nanoUSD
            }
        }
        try await reader.close()
        #expect(ids.isSubset(of: priced), "every successful call has its usage event")
        #expect(spent <= 1_010_000_000, "final spend \(Money(nanoUSD: spent)) exceeds $1.01")
        // The budget was actually used, not refused from the start.
        #expect(spent >= 500_000_000, "final spend \(Money(nanoUSD: spent)): the budget should be mostly used")
        Logger(label: "budget-loop.figure").notice("overshoot test", metadata: [
            "calls": "\(ids.count)", "refused_clients": "\(refused.count)", "final_spend": "\(Money(nanoUSD: spent))",
        ])

        await group.triggerGracefulShutdown()
        _ = try? await groupTask.value
        await fakeGroup.triggerGracefulShutdown()
        _ = try? await fakeTask.value
    }
}
