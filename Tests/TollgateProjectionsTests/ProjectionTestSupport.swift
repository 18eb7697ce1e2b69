import Foundation
import Logging
import TollgateEvents
import TollgateLog
import TollgateProjections

/// Builds events and messages for projector tests.
struct Traffic {
    static let base = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T…Z

    var events: [UsageEvent] = []
    var nextOffset: [Int: Int64] = [:]

    /// A usage event with figures derived from `index`, so every event differs.
    static func usage(_ index: Int, team: String, model: String, at: Date, customer: String? = nil,
                      tags: [String: String] = [:], outcome: ResponseData.Outcome = .success,
                      priced: Bool = true, requestID: String? = nil) -> UsageEvent {
        let input = Int64(100 + index * 7)
        let output = Int64(10 + index * 3)
        let cached = Int64(index % 5 * 11)
        let usage = TokenUsage(inputTokens: input, cachedInputReadTokens: cached, outputTokens: output,
                               reasoningTokens: Int64(index % 3))
        let costInput = Money(nanoUSD: input * 2_500)
        let costCached = Money(nanoUSD: cached * 1_250)
        let costOutput = Money(nanoUSD: output * 10_000 + Int64(index % 7))
        let costReasoning = Money(nanoUSD: Int64(index % 3) * 10_000)
        let cost = priced ? CostBreakdown(
            input: costInput, cachedInputRead: costCached, cacheWrite5m: .zero, cacheWrite1h: .zero,
            output: costOutput, reasoning: costReasoning, audioInput: .zero, audioOutput: .zero,
            total: costInput + costCached + costOutput + costReasoning) : .zero
        let id = requestID ?? "req_\(index)"
        let response = ResponseData(
            requestID: id, keyID: "key_\(team)", team: team, project: team + "-api", customer: customer, tags: tags,
            provider: model.hasPrefix("claude") ? .anthropic : .openai, endpoint: "/v1/chat/completions",
            requestedModel: model, servedModel: model, stream: index % 2 == 0, status: outcome == .success ? 200 : 500,
            outcome: outcome, timings: ResponseData.Timings(receivedAt: at, firstByteMs: index % 2 == 0 ? 40 : nil,
                                                            durationMs: Int64(200 + index)),
            usage: usage, usageSource: .provider)
        let data = UsageData(response: response, costNanoUSD: cost, priced: priced,
                             unpricedReason: priced ? nil : "model_not_in_catalog", catalogVersion: "test-1",
                             pricedAt: at)
        return CloudEvent(id: "usage:\(id)", source: "test", time: at, data: data)
    }

    static func message<P: EventPayload>(_ event: CloudEvent<P>, topic: String, partition: Int = 0,
                                         offset: Int64) throws -> ConsumedMessage {
        ConsumedMessage(topic: topic, partition: partition, offset: offset, timestampMilliseconds: 0,
                        key: Data(event.data.messageKey.utf8), value: try EventCoding.encode(event), headers: [])
    }

    /// Messages for `events` on the usage topic, two partitions, offsets counting up per partition.
    mutating func messages(_ events: [UsageEvent]) throws -> [ConsumedMessage] {
        try events.map { event in
            let partition = event.data.response.team.utf8.count % 2
            let offset = nextOffset[partition, default: 0]
            nextOffset[partition] = offset + 1
            return try Self.message(event, topic: "tollgate.usage", partition: partition, offset: offset)
        }
    }
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-proj-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func openStore(_ directory: URL) throws -> ProjectionStore {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return try ProjectionStore.open(path: directory.appendingPathComponent("projections.sqlite").path, logger: logger)
}

/// Sums of events, computed independently of the projector.
struct Expected: Equatable {
    var requests: Int64 = 0
    var cost: Int64 = 0
    var input: Int64 = 0
    var output: Int64 = 0
    var cached: Int64 = 0
    var reasoning: Int64 = 0
    var costOutput: Int64 = 0

    init() {}

    init(_ events: some Sequence<UsageEvent>) {
        for event in events { add(event) }
    }

    mutating func add(_ event: UsageEvent) {
        requests += 1
        cost += event.data.costNanoUSD.total.nanoUSD
        costOutput += event.data.costNanoUSD.output.nanoUSD
        input += event.data.response.usage.inputTokens
        output += event.data.response.usage.outputTokens
        cached += event.data.response.usage.cachedInputReadTokens
        reasoning += event.data.response.usage.reasoningTokens
    }

    init(_ figures: UsageFigures) {
        requests = figures.requests
        cost = figures.costNanoUSD.total.nanoUSD
        costOutput = figures.costNanoUSD.output.nanoUSD
        input = figures.tokens.inputTokens
        output = figures.tokens.outputTokens
        cached = figures.tokens.cachedInputReadTokens
        reasoning = figures.tokens.reasoningTokens
    }
}
