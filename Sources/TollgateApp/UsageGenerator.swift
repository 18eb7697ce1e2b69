public import Foundation
import TollgateCost
public import TollgateEvents
public import TollgateLog
public import TollgatePricing

/// Synthetic traffic for benchmarks, demos and tests: `usage.v1` events as the cost service would publish
/// them (priced by the real catalog), spread evenly over a period, deterministic for a given seed.
///
/// The shape resembles a company's use: 12 teams with 3 projects each and 2 keys per project, a thousand
/// customers of very unequal size, each served mostly by one team's project (a fifth of calls carry none), a `feature` tag on most calls and an
/// `env` tag on all, a dozen models of the three providers with their real prices, 2 % provider errors, 1 %
/// budget refusals, a stream in four calls.
public struct UsageGenerator: Sendable {
    /// The topic prefix of generated messages: their offsets are kept apart from the real log's.
    public static let seedPrefix = "tollgate-seed."
    public static let teams = ["search", "ads", "support", "growth", "platform", "mobile", "data", "billing",
                               "infra", "ml", "docs", "sales"]
    public static let features = ["chat", "summarize", "classify", "extract", "translate", "code-review", "rag", "agent"]
    /// Models with their weight in the traffic.
    public static let models: [(Provider, String, Int)] = [
        (.openai, "gpt-4o-mini", 22), (.openai, "gpt-4o", 10), (.openai, "gpt-4.1", 6), (.openai, "gpt-4.1-mini", 10),
        (.openai, "o4-mini", 5), (.openai, "o3", 2), (.anthropic, "claude-sonnet-4-5", 12),
        (.anthropic, "claude-haiku-4-5", 10), (.anthropic, "claude-opus-4-1", 1), (.gemini, "gemini-2.5-flash", 12),
        (.gemini, "gemini-2.5-pro", 4), (.gemini, "gemini-2.5-flash-lite", 6),
    ]

    public let requests: Int
    public let start: Date
    public let end: Date
    public let seed: UInt64
    public let topicPrefix: String
    private let fold: CostFold

    public init(requests: Int, days: Int, end: Date = Date(), seed: UInt64 = 1,
                topicPrefix: String = TopicCatalog.defaultPrefix, pricer: Pricer) {
        self.requests = requests
        self.end = end
        self.start = end.addingTimeInterval(-Double(days) * 86_400)
        self.seed = seed
        self.topicPrefix = topicPrefix
        let fixedNow = end
        fold = CostFold(pricer: pricer, topicPrefix: topicPrefix, source: "tollgate/generator", now: { fixedNow })
    }

    /// The `index`-th event (0-based), the same every time for the same generator.
    public func event(_ index: Int) -> UsageEvent {
        var random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index))
        let span = end.timeIntervalSince(start)
        let slot = span / Double(max(requests, 1))
        let seconds = start.timeIntervalSince1970 + slot * Double(index) + slot * 0.9 * random.unit()
        let receivedAt = Date(timeIntervalSince1970: (seconds * 1000).rounded(.down) / 1000)
        // A customer is served by one team's product, mostly through one of its projects.
        let customerIndex: Int? = random.unit() < 0.2 ? nil : random.weighted(1000, skew: 3)
        var teamIndex = random.weighted(Self.teams.count, skew: 1.6)
        var projectIndex = random.below(3)
        if let customerIndex, random.unit() < 0.9 {
            teamIndex = (customerIndex * 7) % Self.teams.count
            projectIndex = random.unit() < 0.8 ? customerIndex % 3 : random.below(3)
        }
        let team = Self.teams[teamIndex]
        let project = team + ["-api", "-batch", "-eval"][projectIndex]
        let keyID = "key_" + String(format: "%02d%d%d", teamIndex, projectIndex, random.below(2))
            + "0000000000000000"
        let customer = customerIndex.map { String(format: "cust-%04d", $0) }
        var tags = ["env": random.unit() < 0.9 ? "prod" : "staging"]
        if random.unit() < 0.7 { tags["feature"] = Self.features[random.weighted(Self.features.count, skew: 1.3)] }
        var pick = random.below(Self.models.reduce(0) { $0 + $1.2 })
        var model = Self.models[0]
        for candidate in Self.models {
            if pick < candidate.2 { model = candidate; break }
            pick -= candidate.2
        }
        let stream = random.unit() < 0.25
        let roll = random.unit()
        let outcome: ResponseData.Outcome = roll < 0.02 ? .providerError : roll < 0.03 ? .blocked : .success
        var usage = TokenUsage.zero
        if outcome == .success {
            usage.inputTokens = random.logUniform(200, 12_000)
            if random.unit() < 0.3 { usage.cachedInputReadTokens = random.logUniform(100, 8_000) }
            usage.outputTokens = random.logUniform(20, 2_500)
            if model.1.hasPrefix("o") || model.1.contains("pro") || model.1.contains("opus") {
                usage.reasoningTokens = random.logUniform(50, 4_000)
            }
            if model.0 == .anthropic && random.unit() < 0.1 { usage.cacheWrite5mTokens = random.logUniform(500, 6_000) }
        }
        let duration = outcome == .blocked ? Int64(1) : random.logUniform(250, 9_000)
        // Request ids as the ingress makes them: a ULID (48-bit milliseconds, then 80 random bits, Crockford
        // base 32), so they sort by time as real ones do.
        let requestID = Self.ulid(milliseconds: UInt64(receivedAt.timeIntervalSince1970 * 1000), random: &random)
        let response = ResponseData(
            requestID: requestID, keyID: keyID, team: team, project: project, customer: customer, tags: tags,
            provider: model.0, endpoint: model.0 == .openai ? "/v1/chat/completions"
                : model.0 == .anthropic ? "/v1/messages" : "/v1beta/models/\(model.1):generateContent",
            requestedModel: model.1, servedModel: model.1, stream: stream,
            status: outcome == .success ? 200 : outcome == .blocked ? 429 : 503, outcome: outcome,
            errorType: outcome == .success ? nil : outcome == .blocked ? "budget_exceeded" : "overloaded",
            timings: ResponseData.Timings(
                receivedAt: receivedAt, upstreamSentAt: receivedAt, firstByteMs: stream ? min(duration, random.logUniform(150, 1_500)) : nil,
                durationMs: duration, upstreamMs: max(0, duration - 1)),
            usage: usage, usageSource: outcome == .success ? .provider : .none)
        let data = fold.price(response)
        return CloudEvent(id: "usage:\(requestID)", source: "tollgate/generator", time: receivedAt, data: data)
    }

    /// The `index`-th event as the log would deliver it on the usage topic: keyed by team into 8 partitions
    /// by the log's partitioner; offsets are the index, which keeps them increasing per partition.
    public func message(_ index: Int) throws -> ConsumedMessage {
        let event = event(index)
        return ConsumedMessage(
            topic: topicPrefix + UsageData.topic,
            partition: Partitioner.partition(forKey: Data(event.data.response.team.utf8), partitions: 8),
            offset: Int64(index), timestampMilliseconds: Int64(event.time.timeIntervalSince1970 * 1000),
            key: Data(event.data.response.team.utf8), value: EventCoding.encodeCanonical(event), headers: [])
    }

    static let crockford = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func ulid(milliseconds: UInt64, random: inout SplitMix64) -> String {
        var characters = [UInt8](repeating: 0, count: 26)
        var time = milliseconds
        for index in stride(from: 9, through: 0, by: -1) {
            characters[index] = crockford[Int(time & 31)]
            time >>= 5
        }
        var bits = random.next()
        for index in 10..<26 {
            if index == 22 { bits = random.next() }
            characters[index] = crockford[Int(bits & 31)]
            bits >>= 5
        }
        return "req_" + String(decoding: characters, as: UTF8.self)
    }

}

/// Distributions over the benchmarks' seedable generator (``SplitMix64``, in KafkaBenchmark.swift).
extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// An index in 0..<count, small ones more likely (`skew` 1: uniform).
    mutating func weighted(_ count: Int, skew: Double) -> Int {
        min(count - 1, Int(pow(unit(), skew) * Double(count)))
    }

    /// An integer between `low` and `high`, log-uniformly.
    mutating func logUniform(_ low: Int64, _ high: Int64) -> Int64 {
        Int64(exp(log(Double(low)) + unit() * (log(Double(high)) - log(Double(low)))).rounded())
    }
}
