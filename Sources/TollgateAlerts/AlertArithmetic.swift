import Foundation
import TollgateEvents

/// Integer time and ratio arithmetic of the alert rules: times are milliseconds since the Unix epoch,
/// products of two 64-bit values are computed at full width so forecasts never overflow or round
/// through floating point.
enum AlertArithmetic {
    static let hourMs: Int64 = 3_600_000
    static let dayMs: Int64 = 86_400_000

    /// Milliseconds since the Unix epoch, rounded down.
    static func milliseconds(_ date: Date) -> Int64 {
        let value = (date.timeIntervalSince1970 * 1000).rounded(.down)
        guard value.isFinite else { return value < 0 ? .min : .max }
        if value >= 9.2e18 { return .max }
        if value <= -9.2e18 { return .min }
        return Int64(value)
    }

    /// The date of a number of milliseconds since the Unix epoch.
    static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// `value / divisor` rounded towards negative infinity (`divisor > 0`).
    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor != 0 && value < 0) ? quotient - 1 : quotient
    }

    /// `a × b / c` rounded down, for `a, b ≥ 0` and `c > 0`; `nil` when the result exceeds `Int64.max`.
    static func multiplyDivide(_ a: Int64, _ b: Int64, _ c: Int64) -> Int64? {
        precondition(a >= 0 && b >= 0 && c > 0)
        let product = UInt64(a).multipliedFullWidth(by: UInt64(b))
        guard product.high < UInt64(c) else { return nil }
        let (quotient, _) = UInt64(c).dividingFullWidth(product)
        return quotient > UInt64(Int64.max) ? nil : Int64(quotient)
    }

    /// Whether `a × b < c × d`, for non-negative operands, without overflow.
    static func productLess(_ a: Int64, _ b: Int64, than c: Int64, _ d: Int64) -> Bool {
        precondition(a >= 0 && b >= 0 && c >= 0 && d >= 0)
        let left = UInt64(a).multipliedFullWidth(by: UInt64(b))
        let right = UInt64(c).multipliedFullWidth(by: UInt64(d))
        return left.high != right.high ? left.high < right.high : left.low < right.low
    }

    /// `a × b`, or `Int64.max` when it overflows (for non-negative operands).
    static func saturatingMultiply(_ a: Int64, _ b: Int64) -> Int64 {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? .max : value
    }

    /// `a + b`, or `Int64.max` when it overflows (for non-negative operands).
    static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (value, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : value
    }

    /// `part × 10 000 / whole` (basis points), rounded down; 0 when `whole` is 0.
    static func basisPoints(_ part: Int64, of whole: Int64) -> Int64 {
        guard whole > 0, part >= 0 else { return 0 }
        return multiplyDivide(part, 10_000, whole) ?? .max
    }
}

/// Human-readable pieces of alert titles and messages.
enum AlertText {
    /// Dollars from nano-USD, exactly: two decimals at least, more when the amount has them
    /// (`$460.25`, `$12.50`, `$0.000123`).
    static func dollars(_ money: Money) -> String {
        var text = money.formatted(decimals: 9)
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > 3 {
            text.removeLast()
        }
        return text
    }

    /// Basis points as a percentage with up to two decimals: 9205 → `92.05%`, 8000 → `80%`.
    static func percent(_ bp: Int64) -> String {
        let whole = bp / 100
        let fraction = bp % 100
        if fraction == 0 { return "\(whole)%" }
        return fraction % 10 == 0 ? "\(whole).\(fraction / 10)%" : "\(whole).\(fraction < 10 ? "0" : "")\(fraction)%"
    }

    /// A factor in basis points: 30 000 → `3×`, 25 000 → `2.5×`.
    static func factor(_ bp: Int64) -> String {
        let whole = bp / 10_000
        let tenths = bp % 10_000 / 1_000
        return tenths == 0 ? "\(whole)×" : "\(whole).\(tenths)×"
    }

    /// A date for people, to the minute in UTC: `2026-11-20 14:00 UTC`.
    static func minute(_ date: Date) -> String {
        let text = EventTime.format(date)
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(5)) + " UTC"
    }

    /// A time of day in UTC: `14:05 UTC`.
    static func clock(_ date: Date) -> String {
        String(EventTime.format(date).dropFirst(11).prefix(5)) + " UTC"
    }

    /// A duration for people: `9 days 4 hours`, `3 hours 20 minutes`, `45 minutes`, `less than a minute`.
    static func duration(milliseconds: Int64) -> String {
        let minutes = milliseconds / 60_000
        let days = minutes / 1_440
        let hours = minutes % 1_440 / 60
        let rest = minutes % 60
        func unit(_ n: Int64, _ name: String) -> String { "\(n) \(name)\(n == 1 ? "" : "s")" }
        if days > 0 { return hours > 0 ? unit(days, "day") + " " + unit(hours, "hour") : unit(days, "day") }
        if hours > 0 { return rest > 0 ? unit(hours, "hour") + " " + unit(rest, "minute") : unit(hours, "hour") }
        return minutes > 0 ? unit(minutes, "minute") : "less than a minute"
    }

    /// A scope at the start of a sentence: `Team search`, `All traffic`, `Tag feature=summarize`.
    static func scopeName(_ scope: Scope) -> String {
        switch scope.kind {
        case .global: "All traffic"
        case .key: "Key \(scope.id)"
        case .project: "Project \(scope.id)"
        case .team: "Team \(scope.id)"
        case .customer: "Customer \(scope.id)"
        case .tag: "Tag \(scope.id)"
        }
    }

    /// The adjective of a period kind: `daily`, `weekly`, `monthly`, `lifetime`.
    static func adjective(_ kind: PeriodKind) -> String {
        switch kind {
        case .day: "daily"
        case .week: "weekly"
        case .month: "monthly"
        case .lifetime: "lifetime"
        }
    }

    /// When, relative to a period: `today`, `this week`, `this month`, `in total`.
    static func when(_ kind: PeriodKind) -> String {
        switch kind {
        case .day: "today"
        case .week: "this week"
        case .month: "this month"
        case .lifetime: "in total"
        }
    }

    /// `openai/gpt-4o`.
    static func model(_ provider: Provider, _ model: String) -> String {
        "\(provider.rawValue)/\(model)"
    }
}
