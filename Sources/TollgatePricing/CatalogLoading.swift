public import Foundation
public import TollgateEvents
import Yams

extension Catalog {
    /// The catalog that ships with Tollgate (`Sources/TollgatePricing/catalog.json`).
    public static func builtIn() throws -> Catalog {
        guard let url = Bundle.module.url(forResource: "catalog", withExtension: "json") else {
            throw CatalogError.missingBuiltIn
        }
        return try load(url)
    }

    /// A catalog or pricing file, JSON or YAML (by extension `.yaml`/`.yml`, else JSON).
    public static func load(_ url: URL) throws -> Catalog {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw CatalogError.unreadable(path: url.path, reason: "\(error.localizedDescription)")
        }
        do {
            if ["yaml", "yml"].contains(url.pathExtension.lowercased()) {
                return try YAMLDecoder().decode(Catalog.self, from: String(decoding: data, as: UTF8.self))
            }
            return try JSONDecoder().decode(Catalog.self, from: data)
        } catch let error as DecodingError {
            throw CatalogError.unreadable(path: url.path, reason: Self.describe(error))
        } catch {
            throw CatalogError.unreadable(path: url.path, reason: "\(error)")
        }
    }

    /// The built-in catalog with a user's pricing file applied: its models replace built-in ones with
    /// the same provider and id (and take over their aliases), new ones are added, its discounts apply.
    /// The version becomes `<built-in>+<file's catalog_version or "local">`.
    public func merging(_ overrides: Catalog) -> Catalog {
        var models = self.models
        for model in overrides.models {
            let names = Set([model.id] + model.aliases)
            // A replaced model goes away; other models give up names the override now claims.
            models.removeAll { $0.provider == model.provider && $0.id == model.id }
            for position in models.indices where models[position].provider == model.provider {
                models[position].aliases.removeAll { names.contains($0) }
            }
            models.removeAll { $0.provider == model.provider && names.contains($0.id) }
            models.append(model)
        }
        let suffix = overrides.catalogVersion.isEmpty ? "local" : overrides.catalogVersion
        return Catalog(catalogVersion: "\(catalogVersion)+\(suffix)",
                       discountBasisPoints: discountBasisPoints.merging(overrides.discountBasisPoints) { _, new in new },
                       models: models)
    }

    /// Sorts price entries by date and lists every problem: duplicate ids or aliases, bad dates, missing
    /// input or output prices, and the like. Empty when the catalog is usable.
    mutating func normalizeAndValidate() -> [String] {
        var problems: [String] = []
        if catalogVersion.isEmpty { problems.append("catalog_version is empty") }
        var owners: [String: String] = [:]
        for position in models.indices {
            models[position].prices.sort { $0.effectiveFrom < $1.effectiveFrom }
            let model = models[position]
            let label = "\(model.provider.rawValue) \(model.id)"
            for name in [model.id] + model.aliases {
                let key = Pricer.key(model.provider, name)
                if let owner = owners[key], owner != model.id {
                    problems.append("\(model.provider.rawValue) name '\(name)' belongs to both \(owner) and \(model.id)")
                } else if owners[key] == model.id && name != model.id {
                    problems.append("\(label): alias '\(name)' repeats a name of the same model")
                } else if owners[key] == model.id {
                    problems.append("\(label) appears twice")
                }
                owners[key] = model.id
            }
            if model.prices.isEmpty { problems.append("\(label) has no prices") }
            var previous: String?
            for entry in model.prices {
                if !Self.isDay(entry.effectiveFrom) {
                    problems.append("\(label): effective_from '\(entry.effectiveFrom)' is not a YYYY-MM-DD date")
                }
                if entry.effectiveFrom == previous {
                    problems.append("\(label) has two price entries from \(entry.effectiveFrom)")
                }
                previous = entry.effectiveFrom
                if entry.perMillion[.input] == nil {
                    problems.append("\(label) from \(entry.effectiveFrom): no input price")
                }
                if model.kind != .embedding && entry.perMillion[.output] == nil && entry.perMillion[.audioOutput] == nil {
                    problems.append("\(label) from \(entry.effectiveFrom): no output (or audio output) price")
                }
                if let long = entry.longContext, long.aboveInputTokens < 1 {
                    problems.append("\(label) from \(entry.effectiveFrom): long_context.above_input_tokens must be ≥ 1")
                }
            }
        }
        for model in models {
            guard let target = model.downgradeTo else { continue }
            if owners[Pricer.key(model.provider, target)] == nil {
                problems.append("\(model.provider.rawValue) \(model.id): downgrade_to '\(target)' is not a model of the catalog")
            } else if owners[Pricer.key(model.provider, target)] == model.id {
                problems.append("\(model.provider.rawValue) \(model.id): downgrade_to names the model itself")
            }
        }
        for (provider, basisPoints) in discountBasisPoints where !(0...10_000).contains(basisPoints) {
            problems.append("discount for \(provider.rawValue) is not between 0 and 100 %")
        }
        return problems
    }

    static func isDay(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 10, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-") else { return false }
        let digits = utf8[0..<4] + utf8[5..<7] + utf8[8..<10]
        guard digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let month = Int(text.dropFirst(5).prefix(2)), let day = Int(text.suffix(2)) else { return false }
        return (1...12).contains(month) && (1...31).contains(day)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "\(path(context)): missing '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
