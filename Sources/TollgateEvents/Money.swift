/// An exact amount of US dollars, counted in nano-dollars.
///
/// One US dollar is `1_000_000_000` nano-USD, so a price of $0.15 per million tokens is 150 nano-USD
/// per token, exactly. Money never passes through `Double`: arithmetic, parsing and formatting all use
/// integer math, so sums over millions of requests do not drift.
///
/// In JSON, money is a bare integer of nano-USD (`12500000000` is $12.50). Field names that carry
/// money end in `_nano_usd`.
///
/// The operators `+` and `-` trap on overflow like `Int64` does; use ``adding(_:)`` and
/// ``subtracting(_:)`` where an overflow must be handled rather than crash the process. The range
/// (about ±9.2 billion dollars) is far beyond any real budget.
///
/// ```swift
/// let price = try Money.parse("12.50")          // 12_500_000_000 nano-USD
/// price.description                              // "$12.500000000"
/// price.formatted(decimals: 2)                   // "$12.50"
/// price.adding(.init(nanoUSD: .max))             // nil: overflow
/// ```
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible,
    LosslessStringConvertible
{
    /// Nano-USD in one US dollar: `1_000_000_000`.
    public static let nanoPerUSD: Int64 = 1_000_000_000

    /// Zero dollars.
    public static let zero = Money(nanoUSD: 0)

    /// The amount in nano-USD (1 USD = 1_000_000_000 nano-USD). Negative amounts are allowed
    /// (for example a budget's remaining amount after an overshoot).
    public var nanoUSD: Int64

    /// Creates an amount from nano-USD.
    public init(nanoUSD: Int64) {
        self.nanoUSD = nanoUSD
    }

    /// Creates an amount of whole dollars, or `nil` if it does not fit in nano-USD.
    public init?(wholeUSD: Int64) {
        let (value, overflow) = wholeUSD.multipliedReportingOverflow(by: Money.nanoPerUSD)
        if overflow { return nil }
        self.nanoUSD = value
    }

    // MARK: Arithmetic

    /// The sum, trapping on overflow.
    public static func + (lhs: Money, rhs: Money) -> Money {
        Money(nanoUSD: lhs.nanoUSD + rhs.nanoUSD)
    }

    /// The difference, trapping on overflow.
    public static func - (lhs: Money, rhs: Money) -> Money {
        Money(nanoUSD: lhs.nanoUSD - rhs.nanoUSD)
    }

    /// Adds in place, trapping on overflow.
    public static func += (lhs: inout Money, rhs: Money) {
        lhs.nanoUSD += rhs.nanoUSD
    }

    /// Subtracts in place, trapping on overflow.
    public static func -= (lhs: inout Money, rhs: Money) {
        lhs.nanoUSD -= rhs.nanoUSD
    }

    /// The negated amount, trapping for `Int64.min` nano-USD.
    public static prefix func - (value: Money) -> Money {
        Money(nanoUSD: -value.nanoUSD)
    }

    /// The sum, or `nil` on overflow.
    public func adding(_ other: Money) -> Money? {
        let (value, overflow) = nanoUSD.addingReportingOverflow(other.nanoUSD)
        return overflow ? nil : Money(nanoUSD: value)
    }

    /// The difference, or `nil` on overflow.
    public func subtracting(_ other: Money) -> Money? {
        let (value, overflow) = nanoUSD.subtractingReportingOverflow(other.nanoUSD)
        return overflow ? nil : Money(nanoUSD: value)
    }

    /// The amount multiplied by an integer (for example a per-token price by a token count), or
    /// `nil` on overflow.
    public func multiplied(by factor: Int64) -> Money? {
        let (value, overflow) = nanoUSD.multipliedReportingOverflow(by: factor)
        return overflow ? nil : Money(nanoUSD: value)
    }

    /// The sum of a sequence of amounts, or `nil` on overflow.
    public static func sum(_ amounts: some Sequence<Money>) -> Money? {
        var total = Money.zero
        for amount in amounts {
            guard let next = total.adding(amount) else { return nil }
            total = next
        }
        return total
    }

    public static func < (lhs: Money, rhs: Money) -> Bool {
        lhs.nanoUSD < rhs.nanoUSD
    }

    // MARK: Formatting

    /// The exact amount in dollars with all nine decimals, such as `"$0.000123450"` or
    /// `"-$1.500000000"`.
    public var description: String {
        formatted(decimals: 9)
    }

    /// How ``formatted(decimals:rounding:)`` rounds digits it drops.
    public enum Rounding: Sendable, Hashable {
        /// Ties go to the even neighbour (banker's rounding): $0.125 → "$0.12", $0.135 → "$0.14".
        case halfEven
        /// Ties go away from zero: $0.125 → "$0.13", -$0.125 → "-$0.13".
        case halfUp
    }

    /// The amount in dollars rounded to `decimals` places (0...9) with integer math, such as
    /// `"$1.23"`.
    ///
    /// Negative amounts are written `"-$1.23"`. An amount that rounds to zero is written without a
    /// sign. Values of `decimals` outside 0...9 are clamped.
    public func formatted(decimals: Int, rounding: Rounding = .halfEven) -> String {
        let decimals = min(max(decimals, 0), 9)
        // Work on the magnitude as UInt64 so that Int64.min has a representable magnitude.
        let magnitude = nanoUSD.magnitude
        var divisor: UInt64 = 1
        for _ in 0..<(9 - decimals) { divisor *= 10 }
        var units = magnitude / divisor  // in 10^-decimals dollars, truncated
        let remainder = magnitude % divisor
        if divisor > 1 {
            let twice = remainder * 2  // remainder < 10^9, no overflow
            if twice > divisor
                || (twice == divisor && (rounding == .halfUp || units % 2 == 1))
            {
                units += 1
            }
        }
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let whole = units / scale
        let fraction = units % scale
        var text = units != 0 && nanoUSD < 0 ? "-$" : "$"
        text += String(whole)
        if decimals > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return text
    }

    // MARK: Parsing

    /// Why a decimal string is not an amount of money.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The string is not `[-][$]digits[.digits]`.
        case malformed(String)
        /// More than nine decimals: finer than one nano-USD.
        case tooManyDecimals(String)
        /// The amount does not fit in `Int64` nano-USD.
        case outOfRange(String)

        public var description: String {
            switch self {
            case .malformed(let text):
                "not a decimal amount of dollars: \"\(text)\""
            case .tooManyDecimals(let text):
                "more than 9 decimals (finer than one nano-USD): \"\(text)\""
            case .outOfRange(let text):
                "amount out of range: \"\(text)\""
            }
        }
    }

    /// Parses a decimal amount of dollars exactly: `"12.50"` → 12_500_000_000 nano-USD.
    ///
    /// Accepts an optional leading `-` or `+`, an optional `$`, at least one digit, and an optional
    /// fraction of 1 to 9 digits (`"12."` and `".5"` are rejected). No exponent, no separators, no
    /// whitespace.
    public static func parse(_ text: String) throws(ParseError) -> Money {
        var bytes = Substring(text).utf8[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        if bytes.first == UInt8(ascii: "$") { bytes = bytes.dropFirst() }
        let wholePart = bytes.prefix { $0 != UInt8(ascii: ".") }
        let rest = bytes.dropFirst(wholePart.count)
        var fractionPart = rest.dropFirst()
        if rest.isEmpty { fractionPart = rest }
        let isDigit: (UInt8) -> Bool = { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !wholePart.isEmpty, wholePart.allSatisfy(isDigit), fractionPart.allSatisfy(isDigit),
            rest.isEmpty || !fractionPart.isEmpty
        else { throw .malformed(text) }
        guard fractionPart.count <= 9 else { throw .tooManyDecimals(text) }

        // Accumulate as a negative number so that Int64.min nano-USD parses too.
        var value: Int64 = 0
        let digits = Array(wholePart) + Array(fractionPart)
            + Array(repeating: UInt8(ascii: "0"), count: 9 - fractionPart.count)
        for digit in digits {
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            if o1 || o2 { throw .outOfRange(text) }
            value = next
        }
        if !negative {
            if value == .min { throw .outOfRange(text) }
            value = -value
        }
        return Money(nanoUSD: value)
    }

    /// Parses a decimal amount of dollars (see ``parse(_:)``), or returns `nil`.
    ///
    /// `Money(money.description)` gives back `money`.
    public init?(_ description: String) {
        guard let value = try? Money.parse(description) else { return nil }
        self = value
    }

    // MARK: Codable

    /// Decodes a bare JSON integer of nano-USD.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self.nanoUSD = try container.decode(Int64.self)
    }

    /// Encodes a bare JSON integer of nano-USD.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(nanoUSD)
    }
}
