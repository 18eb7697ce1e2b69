import Foundation

/// A length of time in a configuration file: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, or a bare number of seconds
/// (`10`, `0.5`).
///
/// It encodes back as the shortest of those forms that is exact (`"500ms"`, `"10s"`, `"5m"`).
public struct ConfigDuration: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The duration.
    public var duration: Duration

    /// Wraps a duration.
    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// Parses `"<integer>ms"`, `"<integer>s"`, `"<integer>m"`, `"<integer>h"` or a bare decimal number of seconds;
    /// `nil` when the text is none of these or is negative.
    public init?(parsing text: String) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, millis) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            // "5m" must not read as "5" + "m" when the text was "5ms": ms is tried first.
            guard let value = Int64(number), value >= 0 else { continue }
            let (product, overflow) = value.multipliedReportingOverflow(by: millis)
            guard !overflow else { return nil }
            self.init(.milliseconds(product))
            return
        }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds < 1e12 else { return nil }
        self.init(.milliseconds(Int64((seconds * 1_000).rounded())))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            guard let value = ConfigDuration(parsing: String(seconds)) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not a duration: \(seconds) (use a non-negative number of seconds)")
            }
            self = value
            return
        }
        let text = try container.decode(String.self)
        guard let value = ConfigDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "not a duration: \"\(text)\" (use \"500ms\", \"10s\", \"5m\", \"1h\" or a number of seconds)")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The duration in whole milliseconds.
    public var milliseconds: Int64 { duration.milliseconds }

    public var description: String {
        let millis = milliseconds
        if millis != 0, millis % 3_600_000 == 0 { return "\(millis / 3_600_000)h" }
        if millis != 0, millis % 60_000 == 0 { return "\(millis / 60_000)m" }
        if millis % 1_000 == 0 { return "\(millis / 1_000)s" }
        return "\(millis)ms"
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

/// When to try a failed delivery again, and when to give up.
///
/// A delivery that failed in a way worth retrying (a 5xx, 408 or 429 answer, a connection error, a
/// timeout, a 4xx SMTP reply) is tried again after a random delay between zero and
/// `min(maxDelay, baseDelay × 2^(attempt − 1))` ("full jitter"), so that many deliveries to a channel
/// that comes back do not all arrive at once. A `Retry-After` answer is honoured, up to `maxDelay`.
/// After `maxAttempts` attempts the delivery is dead-lettered: recorded as `dead` with its last error,
/// counted in `tollgate_alert_dead_letters_total` and logged at error level.
///
/// With the defaults (1 s, 5 min, 12 attempts) a channel may be down for about ten minutes on average
/// before its alerts are dead-lettered; raise `max_attempts` for a longer window (each extra attempt adds
/// 2.5 minutes on average). Dead letters can be queued again with ``DeliveryStore/requeueDead(alertID:channel:now:)``.
///
/// In a configuration file:
///
/// ```yaml
/// retry:
///   base_delay: 1s
///   max_delay: 5m
///   max_attempts: 12
/// ```
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// The first retry's upper bound. Default 1 s.
    public var baseDelay: Duration
    /// The largest delay between two attempts, including one asked for by `Retry-After`. Default 5 minutes.
    public var maxDelay: Duration
    /// Attempts in all (the first one included) before a delivery is dead-lettered. Default 12.
    public var maxAttempts: Int

    /// Creates a policy.
    public init(baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(300), maxAttempts: Int = 12) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
    }

    /// The upper bound of the delay after failed attempt number `attempt` (1 for the first):
    /// `min(maxDelay, baseDelay × 2^(attempt − 1))`.
    public func ceiling(afterAttempt attempt: Int) -> Duration {
        let base = max(baseDelay.milliseconds, 1)
        let cap = max(maxDelay.milliseconds, 0)
        let exponent = min(max(attempt - 1, 0), 40)
        let (scaled, overflow) = base.multipliedReportingOverflow(by: Int64(1) << exponent)
        return .milliseconds(overflow ? cap : min(scaled, cap))
    }

    /// The delay before the attempt after failed attempt number `attempt`: uniformly random in
    /// `0 ... ceiling(afterAttempt:)`, at least `retryAfter` when the receiver asked for one, never above
    /// `maxDelay`.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration? = nil,
                      using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(afterAttempt: attempt).milliseconds
        var millis = ceiling > 0 ? Int64.random(in: 0...ceiling, using: &generator) : 0
        if let retryAfter { millis = max(millis, retryAfter.milliseconds) }
        return .milliseconds(min(millis, max(maxDelay.milliseconds, 0)))
    }

    /// ``delay(afterAttempt:retryAfter:using:)`` with the system's random numbers.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration? = nil) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    /// Whether failed attempt number `attempt` used up the budget.
    public func isExhausted(afterAttempt attempt: Int) -> Bool {
        attempt >= maxAttempts
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case baseDelay = "base_delay"
        case maxDelay = "max_delay"
        case maxAttempts = "max_attempts"
    }

    public init(from decoder: any Decoder) throws {
        try UnknownKeys.reject(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue), what: "retry policy")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = RetryPolicy()
        self.init(
            baseDelay: try container.decodeIfPresent(ConfigDuration.self, forKey: .baseDelay)?.duration
                ?? defaults.baseDelay,
            maxDelay: try container.decodeIfPresent(ConfigDuration.self, forKey: .maxDelay)?.duration
                ?? defaults.maxDelay,
            maxAttempts: try container.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? defaults.maxAttempts)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ConfigDuration(baseDelay), forKey: .baseDelay)
        try container.encode(ConfigDuration(maxDelay), forKey: .maxDelay)
        try container.encode(maxAttempts, forKey: .maxAttempts)
    }

    /// Problems with the policy, as `(field, reason)` pairs.
    func problems() -> [(String, String)] {
        var problems: [(String, String)] = []
        if baseDelay <= .zero { problems.append(("base_delay", "must be more than zero")) }
        if maxDelay < baseDelay { problems.append(("max_delay", "must be at least base_delay")) }
        if maxAttempts < 1 { problems.append(("max_attempts", "must be at least 1")) }
        return problems
    }
}

/// Rejects keys a configuration type does not know, so that a typo (`secret-env`) is an error rather than
/// a silently ignored setting.
enum UnknownKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func reject(in decoder: any Decoder, allowed: [String], what: String) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        let allowedSet = Set(allowed)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !allowedSet.contains($0) }) {
            throw DecodingError.dataCorruptedError(
                forKey: AnyKey(stringValue: unknown), in: container,
                debugDescription: "unknown field \"\(unknown)\" in \(what) (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }
}
