public import Foundation
public import TollgateEvents

/// A price catalog: prices per million tokens for every model it knows, by token class, dated.
///
/// The format is `schemas/catalog.schema.json`. The built-in catalog (``Catalog/builtIn()``) ships with
/// Tollgate; a user's pricing file adds or replaces models and sets negotiated discounts
/// (``Catalog/merging(_:)``).
public struct Catalog: Sendable, Hashable, Codable {
    /// Names this catalog in every usage event it priced.
    public var catalogVersion: String
    /// Discounts in basis points (1/100 %) per provider: `1250` is 12.5 %.
    public var discountBasisPoints: [Provider: Int64]
    public var models: [Model]

    /// A model and its prices over time.
    public struct Model: Sendable, Hashable, Codable {
        public var provider: Provider
        /// The id the provider's API reports (dated for a snapshot).
        public var id: String
        /// Other names of the same model.
        public var aliases: [String]
        public var kind: Kind
        /// The default cheaper model for budget downgrades (an id or alias of the same provider).
        public var downgradeTo: String?
        /// Price entries, ordered by `effectiveFrom` once the catalog is validated.
        public var prices: [PriceEntry]

        public enum Kind: String, Sendable, Hashable, Codable {
            case chat
            case reasoning
            case embedding
        }

        public init(provider: Provider, id: String, aliases: [String] = [], kind: Kind, downgradeTo: String? = nil,
                    prices: [PriceEntry]) {
            self.provider = provider
            self.id = id
            self.aliases = aliases
            self.kind = kind
            self.downgradeTo = downgradeTo
            self.prices = prices
        }

        enum CodingKeys: String, CodingKey {
            case provider, id, aliases, kind, prices
            case downgradeTo = "downgrade_to"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            provider = try container.decode(Provider.self, forKey: .provider)
            id = try container.decode(String.self, forKey: .id)
            aliases = try container.decodeIfPresent([String].self, forKey: .aliases) ?? []
            kind = try container.decode(Kind.self, forKey: .kind)
            downgradeTo = try container.decodeIfPresent(String.self, forKey: .downgradeTo)
            prices = try container.decode([PriceEntry].self, forKey: .prices)
        }

        /// The entry in force on `day` (`YYYY-MM-DD`): the latest that took effect on or before it.
        public func entry(on day: String) -> PriceEntry? {
            prices.last { $0.effectiveFrom <= day }
        }
    }

    /// Prices in force from one day until the next entry's.
    public struct PriceEntry: Sendable, Hashable, Codable {
        /// First UTC day, `YYYY-MM-DD`.
        public var effectiveFrom: String
        /// Where the provider published them.
        public var source: String
        public var note: String?
        public var perMillion: ClassPrices
        public var longContext: LongContext?
        public var batch: ClassPrices?
        public var serviceTiers: [String: ClassPrices]?

        public init(effectiveFrom: String, source: String, note: String? = nil, perMillion: ClassPrices,
                    longContext: LongContext? = nil, batch: ClassPrices? = nil,
                    serviceTiers: [String: ClassPrices]? = nil) {
            self.effectiveFrom = effectiveFrom
            self.source = source
            self.note = note
            self.perMillion = perMillion
            self.longContext = longContext
            self.batch = batch
            self.serviceTiers = serviceTiers
        }

        enum CodingKeys: String, CodingKey {
            case effectiveFrom = "effective_from"
            case source, note
            case perMillion = "per_million"
            case longContext = "long_context"
            case batch
            case serviceTiers = "service_tiers"
        }
    }

    /// The price set of requests with a long prompt.
    public struct LongContext: Sendable, Hashable, Codable {
        /// Applies when the prompt has more tokens than this.
        public var aboveInputTokens: Int64
        public var perMillion: ClassPrices

        public init(aboveInputTokens: Int64, perMillion: ClassPrices) {
            self.aboveInputTokens = aboveInputTokens
            self.perMillion = perMillion
        }

        enum CodingKeys: String, CodingKey {
            case aboveInputTokens = "above_input_tokens"
            case perMillion = "per_million"
        }
    }

    /// A price per token class; an absent class is not billed for the model.
    public struct ClassPrices: Sendable, Hashable, Codable {
        public var prices: [TokenClass: PricePerMillion]

        public init(_ prices: [TokenClass: PricePerMillion] = [:]) {
            self.prices = prices
        }

        public subscript(_ tokenClass: TokenClass) -> PricePerMillion? {
            get { prices[tokenClass] }
            set { prices[tokenClass] = newValue }
        }

        /// These prices, with `base`'s for classes absent here.
        public func over(_ base: ClassPrices) -> ClassPrices {
            ClassPrices(base.prices.merging(prices) { _, mine in mine })
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: DynamicKey.self)
            var prices: [TokenClass: PricePerMillion] = [:]
            for key in container.allKeys {
                guard let tokenClass = TokenClass(rawValue: key.stringValue) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: container,
                        debugDescription: "unknown token class '\(key.stringValue)'; expected one of "
                            + TokenClass.allCases.map(\.rawValue).joined(separator: ", "))
                }
                prices[tokenClass] = try container.decode(PricePerMillion.self, forKey: key)
            }
            self.prices = prices
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DynamicKey.self)
            for tokenClass in TokenClass.allCases {
                if let price = prices[tokenClass] {
                    try container.encode(price, forKey: DynamicKey(stringValue: tokenClass.rawValue))
                }
            }
        }
    }

    public init(catalogVersion: String, discountBasisPoints: [Provider: Int64] = [:], models: [Model]) {
        self.catalogVersion = catalogVersion
        self.discountBasisPoints = discountBasisPoints
        self.models = models
    }

    enum CodingKeys: String, CodingKey {
        case catalogVersion = "catalog_version"
        case discounts
        case models
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        catalogVersion = try container.decodeIfPresent(String.self, forKey: .catalogVersion) ?? ""
        models = try container.decodeIfPresent([Model].self, forKey: .models) ?? []
        var discounts: [Provider: Int64] = [:]
        for (name, percent) in try container.decodeIfPresent([String: String].self, forKey: .discounts) ?? [:] {
            guard let provider = Provider(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .discounts, in: container,
                                                       debugDescription: "unknown provider '\(name)' in discounts")
            }
            guard let basisPoints = Self.basisPoints(percent), (0...10_000).contains(basisPoints) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .discounts, in: container,
                    debugDescription: "discount '\(percent)' for \(name) is not a percentage between 0 and 100 "
                        + "with at most 2 decimals")
            }
            discounts[provider] = basisPoints
        }
        discountBasisPoints = discounts
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(catalogVersion, forKey: .catalogVersion)
        if !discountBasisPoints.isEmpty {
            try container.encode(Dictionary(uniqueKeysWithValues: discountBasisPoints.map {
                ($0.key.rawValue, Self.percent(fromBasisPoints: $0.value))
            }), forKey: .discounts)
        }
        try container.encode(models, forKey: .models)
    }

    /// `"12.5"` → 1250.
    static func basisPoints(_ percent: String) -> Int64? {
        let parts = percent.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 3, whole.allSatisfy(\.isASCIIDigit),
              let wholeValue = Int64(whole) else { return nil }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        if parts.count == 2 && (fraction.isEmpty || fraction.count > 2 || !fraction.allSatisfy(\.isASCIIDigit)) {
            return nil
        }
        fraction += String(repeating: "0", count: 2 - fraction.count)
        guard let fractionValue = Int64(fraction) else { return nil }
        return wholeValue * 100 + fractionValue
    }

    static func percent(fromBasisPoints basisPoints: Int64) -> String {
        let fraction = basisPoints % 100
        return fraction == 0 ? "\(basisPoints / 100)" : "\(basisPoints / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Catalog {
    /// The catalog's default downgrades, by every name of a model (id and aliases) → its cheaper model.
    public var downgradeDefaults: [String: String] {
        var defaults: [String: String] = [:]
        for model in models {
            guard let target = model.downgradeTo else { continue }
            for name in [model.id] + model.aliases { defaults[name] = target }
        }
        return defaults
    }
}
