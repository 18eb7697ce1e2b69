public import Foundation
public import Logging
import ServiceLifecycle
import TollgateBudget
import TollgateEvents
import TollgateIngress
public import TollgateLog
import TollgatePricing

/// `tollgate bench budget`: decision latency — from the usage event that crosses a budget's block level
/// being appended to the log, to the ingress's budget guard applying the decision that blocks it.
///
/// Runs the budget service, a control plane and a budget plane (the ingress's side) in one process on
/// the given log, sets `crossings` budgets (one team each, $1, block at 100 %), then for each appends one
/// usage event of $1 for its team and waits (event-driven) for the guard to hold a blocking decision.
public enum BudgetBenchmark {
    public struct Result: Sendable, Codable {
        public var engine: String
        public var crossings: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var maxMilliseconds: Double
    }

    public static func run(engine: String, log: any MessageLog, crossings: Int, logger: Logger,
                           progress: @escaping @Sendable (Int) -> Void) async throws -> Result {
        let prefix = "tollgate."
        let writer = ControlWriter(log: log, topicPrefix: prefix, source: "bench")
        let now = Date()
        for index in 0..<crossings {
            try await writer.write(BudgetSetData(
                budgetID: "bench-\(index)", scope: .team("bench-\(index)"), periodKind: .day, timeZone: "UTC",
                limitNanoUSD: Money(wholeUSD: 1)!, levels: [BudgetLevel(percent: 100, action: .block)],
                onNoDowngrade: .block, updatedAt: now))
        }
        let control = ControlPlane(log: log, topicPrefix: prefix, logger: logger)
        let plane = BudgetPlane(log: log, control: control, topicPrefix: prefix, pricer: try PricingSetup.pricer(file: nil),
                                logger: logger)
        let budget = BudgetService(log: log, topicPrefix: prefix, logger: logger)
        let group = ServiceGroup(services: [budget, control, plane], logger: logger)
        var latencies: [Double] = []
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            // Every budget known to the ingress and decided (ok) once before measuring.
            guard await plane.wait(timeout: .seconds(60), until: { $0.decisions.count == crossings }) else {
                throw BenchmarkError("the budget service did not publish the first decisions within 60 s")
            }
            for index in 0..<crossings {
                let team = "bench-\(index)"
                let response = CostBenchmark.response(index, at: Date())
                var usageResponse = response
                usageResponse.team = team
                usageResponse.requestID = "req_budget_bench_\(index)"
                var cost = CostBreakdown.zero
                cost.output = Money(wholeUSD: 1)!
                cost.total = Money(wholeUSD: 1)!
                let usage = UsageData(response: usageResponse, costNanoUSD: cost, priced: true, catalogVersion: "bench",
                                      pricedAt: Date())
                let event = CloudEvent(id: "usage:\(usageResponse.requestID)", source: "bench", time: Date(), data: usage)
                let start = ContinuousClock.now
                _ = try await log.produce(OutgoingMessage(topic: prefix + UsageData.topic, key: team,
                                                          value: EventCoding.encodeCanonical(event)))
                let budgetID = "bench-\(index)"
                guard await plane.wait(timeout: .seconds(30), until: { $0.decisions[budgetID]?.state == .blocked }) else {
                    throw BenchmarkError("no blocking decision for \(budgetID) within 30 s")
                }
                latencies.append((ContinuousClock.now - start).seconds * 1000)
                progress(index + 1)
            }
            await group.triggerGracefulShutdown()
        }
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return Result(engine: engine, crossings: crossings, p50Milliseconds: percentile(0.5),
                      p99Milliseconds: percentile(0.99), maxMilliseconds: sorted.last ?? 0)
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
