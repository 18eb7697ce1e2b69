/// A price in nano-USD per million tokens, exactly.
///
/// Catalog prices are decimal strings of US dollars per million tokens with at most 9 fractional digits
/// (`"2.50"`, `"0.0375"`), so every price is a whole number of nano-USD per million tokens: `"2.50"` is
/// `2_500_000_000`. Costs are sums of `tokens × price` in these units, divided by 1,000,000 once per
/// request (see ``Pricer``); nothing passes through floating point.
public struct PricePerMillion: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Nano-USD per million tokens.
    public var nanoUSD: Int64

    public init(nanoUSD: Int64) {
        self.nanoUSD = nanoUSD
    }

    /// Parses `"2.50"`-style dollars per million tokens: digits, optionally a point and 1–9 digits.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 6, whole.allSatisfy(\.isASCIIDigit)
        else { return nil }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        if parts.count == 2 && (fraction.isEmpty || fraction.count > 9 || !fraction.allSatisfy(\.isASCIIDigit)) {
            return nil
        }
        fraction += String(repeating: "0", count: 9 - fraction.count)
        guard let dollars = Int64(whole), let nanos = Int64(fraction) else { return nil }
        nanoUSD = dollars * 1_000_000_000 + nanos
    }

    public static func < (lhs: PricePerMillion, rhs: PricePerMillion) -> Bool { lhs.nanoUSD < rhs.nanoUSD }

    /// Dollars per million tokens, with as many decimals as needed (`"2.5"`, `"0.0375"`, `"15"`).
    public var description: String {
        let whole = nanoUSD / 1_000_000_000
        var fraction = String(nanoUSD % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let price = PricePerMillion(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a price: write dollars per million tokens as a "
                    + "decimal string with at most 9 fractional digits, such as \"2.50\"")
        }
        self = price
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
