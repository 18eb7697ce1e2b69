public import Foundation
public import TollgateEvents

/// The price of one response.
public struct Quote: Sendable, Hashable {
    /// Whether the catalog priced every token of the response.
    public var priced: Bool
    /// Why not, when not priced: `model_not_in_catalog`, `no_price_in_force`, `class_not_priced:<class>`,
    /// `cost_overflow`.
    public var unpricedReason: String?
    /// The cost by token class, summing exactly to the total; all zero when not priced.
    public var cost: CostBreakdown
    /// The catalog's id of the model (the alias or path resolved), when found.
    public var catalogModelID: String?
    /// The effective date of the price entry used, when priced.
    public var effectiveFrom: String?

    static func unpriced(_ reason: String, model: String? = nil) -> Quote {
        Quote(priced: false, unpricedReason: reason, cost: .zero, catalogModelID: model, effectiveFrom: nil)
    }
}

/// Prices responses with a validated ``Catalog``.
///
/// The arithmetic is exact: for each token class, `tokens × price` in nano-USD per million tokens (an
/// integer), times `10_000 − discount basis points`, summed in 128-bit integers; the total is that sum
/// divided by `10_000 × 1_000_000`, rounded half up once per request. The per-class figures are the
/// exact class shares rounded down, with the units the total's rounding adds given to the classes with
/// the largest remainders, so they always sum to the total.
///
/// ```swift
/// let pricer = try Pricer(catalog: .builtIn())
/// let quote = pricer.quote(provider: .openai, model: "gpt-4o-mini", usage: usage, at: receivedAt)
/// quote.cost.total      // Money, nano-USD
/// ```
public struct Pricer: Sendable {
    public let catalog: Catalog
    private let index: [String: Int]

    /// Validates the catalog and indexes its ids and aliases.
    public init(catalog: Catalog) throws {
        var catalog = catalog
        let problems = catalog.normalizeAndValidate()
        if !problems.isEmpty { throw CatalogError.invalid(problems) }
        self.catalog = catalog
        var index: [String: Int] = [:]
        for (position, model) in catalog.models.enumerated() {
            for name in [model.id] + model.aliases {
                index[Self.key(model.provider, name)] = position
            }
        }
        self.index = index
    }

    static func key(_ provider: Provider, _ name: String) -> String {
        provider.rawValue + "\u{0}" + name
    }

    /// The catalog's model for a name as a request or response gives it: an id, an alias, or either
    /// after a `models/` path prefix (Gemini).
    public func model(provider: Provider, name: String) -> Catalog.Model? {
        if let position = index[Self.key(provider, name)] { return catalog.models[position] }
        if name.hasPrefix("models/"), let position = index[Self.key(provider, String(name.dropFirst(7)))] {
            return catalog.models[position]
        }
        return nil
    }

    /// The UTC day of a date, `YYYY-MM-DD`.
    public static func day(_ date: Date) -> String {
        String(EventTime.format(date).prefix(10))
    }

    /// Prices a response's usage.
    ///
    /// - Parameters:
    ///   - at: when the request was received; the price entry in force on that UTC day applies.
    ///   - serviceTier: the tier the provider reports (OpenAI `flex`, `priority`); others use standard prices.
    ///   - batch: whether the request went through the provider's batch API.
    public func quote(provider: Provider, model name: String, usage: TokenUsage, at: Date,
                      serviceTier: String? = nil, batch: Bool = false) -> Quote {
        guard let model = model(provider: provider, name: name) else { return .unpriced("model_not_in_catalog") }
        guard let entry = model.entry(on: Self.day(at)) else {
            return .unpriced("no_price_in_force", model: model.id)
        }
        let base = entry.perMillion
        var prices = base
        let prompt = usage.inputTokens + usage.cachedInputReadTokens + usage.cacheWrite5mTokens
            + usage.cacheWrite1hTokens + usage.audioInputTokens
        if let long = entry.longContext, prompt > long.aboveInputTokens {
            prices = long.perMillion.over(base)
        } else if batch, let batchPrices = entry.batch {
            prices = batchPrices.over(base)
        } else if let tier = serviceTier, let tierPrices = entry.serviceTiers?[tier] {
            prices = tierPrices.over(base)
        }
        if prices[.reasoning] == nil { prices[.reasoning] = prices[.output] }

        let factor = Int128(10_000 - (catalog.discountBasisPoints[provider] ?? 0))
        var numerators: [(TokenClass, Int128)] = []
        numerators.reserveCapacity(TokenClass.allCases.count)
        for tokenClass in TokenClass.allCases {
            let tokens = usage[tokenClass]
            guard tokens > 0 else { continue }
            guard let price = prices[tokenClass] else {
                return .unpriced("class_not_priced:\(tokenClass.rawValue)", model: model.id)
            }
            numerators.append((tokenClass, Int128(tokens) * Int128(price.nanoUSD) * factor))
        }
        guard let cost = Self.allocate(numerators, denominator: 10_000 * 1_000_000) else {
            return .unpriced("cost_overflow", model: model.id)
        }
        return Quote(priced: true, unpricedReason: nil, cost: cost, catalogModelID: model.id,
                     effectiveFrom: entry.effectiveFrom)
    }

    /// Exact shares rounded to a total rounded half up once, the rounding units going to the largest
    /// remainders. Nil when the total does not fit in `Money`.
    static func allocate(_ numerators: [(TokenClass, Int128)], denominator: Int128) -> CostBreakdown? {
        let sum = numerators.reduce(Int128(0)) { $0 + $1.1 }
        let total = (sum + denominator / 2) / denominator
        guard total <= Int128(Int64.max) else { return nil }
        var shares: [TokenClass: Int128] = [:]
        var remainders: [(TokenClass, Int128)] = []
        for (tokenClass, numerator) in numerators {
            shares[tokenClass] = numerator / denominator
            remainders.append((tokenClass, numerator % denominator))
        }
        var missing = total - shares.values.reduce(0, +)
        // Largest remainder first; ties in token-class order (stable sort).
        for (tokenClass, _) in remainders.enumerated().sorted(by: {
            $0.element.1 != $1.element.1 ? $0.element.1 > $1.element.1 : $0.offset < $1.offset
        }).map(\.element) where missing > 0 {
            shares[tokenClass, default: 0] += 1
            missing -= 1
        }
        func money(_ tokenClass: TokenClass) -> Money { Money(nanoUSD: Int64(shares[tokenClass] ?? 0)) }
        return CostBreakdown(
            input: money(.input), cachedInputRead: money(.cachedInputRead), cacheWrite5m: money(.cacheWrite5m),
            cacheWrite1h: money(.cacheWrite1h), output: money(.output), reasoning: money(.reasoning),
            audioInput: money(.audioInput), audioOutput: money(.audioOutput), total: Money(nanoUSD: Int64(total)))
    }
}

/// A catalog that cannot be used.
public enum CatalogError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid([String])
    case unreadable(path: String, reason: String)
    case missingBuiltIn

    public var description: String {
        switch self {
        case .invalid(let problems):
            return "invalid price catalog:\n  - " + problems.joined(separator: "\n  - ")
        case .unreadable(let path, let reason):
            return "cannot read the pricing file \(path): \(reason)"
        case .missingBuiltIn:
            return "the built-in price catalog (catalog.json in the TollgatePricing resources) is missing next to "
                + "the executable; copy the tollgate_TollgatePricing.resources directory with it"
        }
    }
}
