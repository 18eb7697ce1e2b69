public import Foundation
import TollgateEvents

/// Plain-text figures shared by the dashboard and the CLI reports, so both print the same numbers the same
/// way (money is formatted with ``Money/formatted(decimals:rounding:)``).
public enum TextFormat {
    /// `1234567` → `1,234,567`.
    public static func count(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var out = value < 0 ? "-" : ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return out
    }

    /// Basis points as a percentage with two decimals: `9205` → `92.05%`.
    public static func basisPoints(_ value: Int64) -> String {
        let magnitude = value.magnitude
        let fraction = String(magnitude % 100)
        return (value < 0 ? "-" : "") + "\(magnitude / 100)." + (fraction.count < 2 ? "0" : "") + fraction + "%"
    }

    /// `2026-11-29 08:00` (UTC).
    public static func minute(_ date: Date) -> String {
        let text = EventTime.format(date)
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(5))
    }

    /// `2026-11-29` (UTC).
    public static func day(_ date: Date) -> String {
        String(EventTime.format(date).prefix(10))
    }
}
