import Foundation
public import TollgateEvents

/// One attempt to deliver one alert to one channel.
public struct AlertDelivery: Sendable, Hashable {
    /// The alert.
    public var event: AlertEvent
    /// The channel's name.
    public var channel: String
    /// The attempt number, 1 for the first.
    public var attempt: Int

    public init(event: AlertEvent, channel: String, attempt: Int = 1) {
        self.event = event
        self.channel = channel
        self.attempt = attempt
    }

    /// The alert's id (the de-duplication key of rule, scope, period and level).
    public var alertID: String { event.data.alertID }

    /// The delivery id: the same for every attempt of this alert on this channel, so receivers can drop
    /// duplicates (see ``id(alertID:channel:)``).
    public var id: String { Self.id(alertID: alertID, channel: channel) }

    /// The delivery id of an alert on a channel: `<alert_id>#<channel>`, such as
    /// `default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|80#ops-hook`. Channel names cannot contain `#`,
    /// so the part after the last `#` is always the channel.
    public static func id(alertID: String, channel: String) -> String {
        alertID + "#" + channel
    }
}

/// How one attempt ended.
public enum DeliveryResult: Sendable, Hashable {
    /// The receiver took the alert.
    case delivered
    /// The receiver could not take it now (down, overloaded, timed out): try again later, not before
    /// `retryAfter` when the receiver asked for a delay.
    case retry(reason: String, retryAfter: Duration? = nil)
    /// The receiver refused it in a way retrying cannot fix (a 4xx answer, an SMTP 5xx reply, a bad
    /// login): dead-letter it now.
    case failed(reason: String)

    /// The reason of a failure, `nil` for ``delivered``.
    public var reason: String? {
        switch self {
        case .delivered: nil
        case .retry(let reason, _), .failed(let reason): reason
        }
    }
}

/// Sends alerts to one channel.
///
/// A sender never throws: every way an attempt can end is a ``DeliveryResult``. It must return promptly
/// when its task is cancelled (with ``DeliveryResult/retry(reason:retryAfter:)``).
public protocol AlertSender: Sendable {
    /// The kind of channel, for metrics and logs.
    var kind: ChannelKind { get }

    /// Makes one attempt.
    func send(_ delivery: AlertDelivery) async -> DeliveryResult
}

/// Text shared by the Slack and e-mail formats.
enum AlertText {
    /// `2026-11-29 08:00:03 UTC`.
    static func time(_ date: Date) -> String {
        let stamp = EventTime.format(date)  // 2026-11-29T08:00:03.123Z
        return String(stamp.prefix(10)) + " " + String(stamp.dropFirst(11).prefix(8)) + " UTC"
    }

    /// The alert's facts beside its title and message, in display order.
    static func facts(_ alert: AlertData) -> [(String, String)] {
        var facts: [(String, String)] = [
            ("Severity", alert.severity.rawValue),
            ("Scope", alert.scope.description),
            ("Rule", alert.ruleID),
            ("Kind", alert.kind.rawValue),
        ]
        if let level = alert.levelPercent { facts.append(("Level", "\(level)%")) }
        if let start = alert.periodStart { facts.append(("Period start", time(start))) }
        facts.append(("Raised at", time(alert.raisedAt)))
        return facts
    }

    /// The observations sorted by name, their values formatted: `*_nano_usd` as dollars, `*_bp` as a percentage.
    static func observed(_ alert: AlertData) -> [(String, String)] {
        alert.observed.keys.sorted().map { name in (name, value(name, alert.observed[name]!)) }
    }

    static func value(_ name: String, _ value: AlertValue) -> String {
        switch value {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number):
            if name.hasSuffix("_nano_usd") { return Money(nanoUSD: number).formatted(decimals: 2) }
            if name.hasSuffix("_bp") {
                let sign = number < 0 ? "-" : ""
                let magnitude = number.magnitude
                let fraction = magnitude % 100
                return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)%"
            }
            return String(number)
        }
    }

    /// `text` cut to at most `limit` characters, ending in `…` when cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        guard text.count > limit else { return text }
        return String(text.prefix(max(limit - 1, 0))) + "…"
    }
}
