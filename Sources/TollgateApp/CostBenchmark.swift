public import Foundation
public import Logging
import ServiceLifecycle
import TollgateCost
public import TollgateEvents
import TollgateLog
public import TollgatePricing

/// `tollgate bench cost`: the cost service's throughput on the embedded log, and the fold's alone.
///
/// Writes `events` realistic `response.v1` events (a mix of providers, models and token classes, one in
/// fifty for a model without a price) to a fresh embedded log, then runs the cost service until every
/// one is priced: events per second from start to the last commit, publishing `usage.v1` included. The
/// fold-only figure prices the same events in memory (decode, price, encode) on one thread.
public enum CostBenchmark {
    public struct Result: Sendable, Codable {
        public var scenario: String
        public var events: Int
        public var seconds: Double
        public var eventsPerSecond: Int
    }

    static let models: [(Provider, String, TokenUsage)] = [
        (.openai, "gpt-4o-mini-2024-07-18", TokenUsage(inputTokens: 820, cachedInputReadTokens: 1_024, outputTokens: 310)),
        (.openai, "o4-mini-2025-04-16", TokenUsage(inputTokens: 1_200, outputTokens: 400, reasoningTokens: 1_536)),
        (.anthropic, "claude-sonnet-4-5-20250929", TokenUsage(inputTokens: 35, cachedInputReadTokens: 12_000,
                                                               cacheWrite5mTokens: 900, outputTokens: 650)),
        (.anthropic, "claude-haiku-4-5-20251001", TokenUsage(inputTokens: 2_400, cacheWrite1hTokens: 4_096, outputTokens: 120)),
        (.gemini, "gemini-2.5-flash", TokenUsage(inputTokens: 3_000, outputTokens: 800, reasoningTokens: 1_200)),
        (.gemini, "gemini-2.5-pro", TokenUsage(inputTokens: 240_000, outputTokens: 2_000)),
    ]

    /// The `index`-th benchmark response.
    public static func response(_ index: Int, at: Date) -> ResponseData {
        let (provider, model, usage) = index % 50 == 49
            ? (.openai, "gpt-unpriced-preview", TokenUsage(inputTokens: 10, outputTokens: 10)) : models[index % models.count]
        return ResponseData(
            requestID: "req_bench_\(index)", keyID: "key_\(index % 40)", team: "team-\(index % 16)",
            project: "project-\(index % 8)", customer: index % 3 == 0 ? "customer-\(index % 100)" : nil,
            tags: ["feature": index % 2 == 0 ? "search" : "chat", "env": "prod"], provider: provider,
            endpoint: "/v1/chat/completions", requestedModel: model, servedModel: model, stream: index % 4 == 0,
            status: 200, outcome: .success, errorType: nil, serviceTier: nil,
            timings: .init(receivedAt: at, upstreamSentAt: at, firstByteMs: 180, durationMs: 950, upstreamMs: 940),
            usage: usage, usageSource: .provider, routing: nil)
    }

    public static func run(events: Int, pricer: Pricer, directory: String, logger: Logger,
                           progress: @escaping @Sendable (Int) -> Void) async throws -> [Result] {
        let now = Date()
        let encoded = (0..<events).map { index in
            EventCoding.encodeCanonical(CloudEvent(id: "response:req_bench_\(index)", source: "bench", time: now,
                                                   data: response(index, at: now)))
        }

        // The fold alone, in memory, one thread.
        let fold = CostFold(pricer: pricer)
        var state = CostFold.State()
        let foldStart = ContinuousClock.now
        var bytes = 0
        for (index, value) in encoded.enumerated() {
            let message = ConsumedMessage(topic: "tollgate.responses", partition: 0, offset: Int64(index),
                                          timestampMilliseconds: 0, key: nil, value: value, headers: [])
            let outputs = fold.fold(&state, try fold.decode(message), message)
            bytes += outputs.first?.value?.count ?? 0
        }
        let foldSeconds = (ContinuousClock.now - foldStart).seconds
        precondition(state.priced + state.unpriced == events && bytes > 0)

        // The service on the embedded log.
        let log = try EmbeddedLog.open(directory: directory, logger: logger)
        defer { log.close() }
        try await log.provision(TopicCatalog.specs(prefix: TopicCatalog.defaultPrefix))
        var produced = 0
        for chunk in stride(from: 0, to: events, by: 5_000) {
            let slice = encoded[chunk..<min(chunk + 5_000, events)]
            _ = try await log.produce(slice.enumerated().map { offset, value in
                OutgoingMessage(topic: "tollgate.responses", key: "team-\((chunk + offset) % 16)", value: value)
            })
            produced += slice.count
        }
        let (states, sink) = AsyncStream.makeStream(of: Int.self)
        let service = CostService(log: log, pricer: pricer, logger: logger,
                                  onBatch: { state, _ in sink.yield(state.priced + state.unpriced) })
        let group = ServiceGroup(services: [service], logger: logger)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for await done in states {
                progress(done)
                if done >= events { break }
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let serviceSeconds = (ContinuousClock.now - start).seconds
        return [
            Result(scenario: "fold only (decode, price, encode; 1 thread)", events: events, seconds: foldSeconds,
                   eventsPerSecond: Int(Double(events) / foldSeconds)),
            Result(scenario: "cost service on the embedded log (consume, publish usage, commit)", events: events,
                   seconds: serviceSeconds, eventsPerSecond: Int(Double(events) / serviceSeconds)),
        ]
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
