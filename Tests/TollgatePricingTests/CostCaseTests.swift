import Foundation
import Testing
import TollgateEvents
@testable import TollgatePricing

/// Hand-worked cases (Fixtures/cost-cases.json: model, usage by token class, date → nano-USD, each with
/// its working) priced with the built-in catalog.
struct CostCase: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var provider: Provider
    var model: String
    var date: String
    var serviceTier: String?
    var batch: Bool?
    var usage: [String: Int64]
    var expectedPriced: Bool
    var expectedTotalNanoUSD: Int64
    var expectedUnpricedReason: String?
    var working: String

    enum CodingKeys: String, CodingKey {
        case name, provider, model, date, usage, batch, working
        case serviceTier = "service_tier"
        case expectedPriced = "expected_priced"
        case expectedTotalNanoUSD = "expected_total_nano_usd"
        case expectedUnpricedReason = "expected_unpriced_reason"
    }

    var testDescription: String { name }

    static let all: [CostCase] = {
        let url = Bundle.module.url(forResource: "cost-cases", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONDecoder().decode([CostCase].self, from: Data(contentsOf: url))
    }()

    func tokenUsage() throws -> TokenUsage {
        var usage = TokenUsage()
        for (name, count) in self.usage {
            guard let tokenClass = TokenClass(rawValue: name) else { throw CaseError("unknown class \(name) in \(self.name)") }
            usage[tokenClass] = count
        }
        return usage
    }
}

struct CaseError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("Built-in catalog")
struct CostCaseTests {
    static let pricer = try! Pricer(catalog: Catalog.builtIn())

    @Test("the hand-worked cases cover what the issue lists")
    func coverage() {
        let cases = CostCase.all
        #expect(cases.count >= 60)
        func some(_ predicate: (CostCase) -> Bool) -> Bool { cases.contains(where: predicate) }
        #expect(some { ($0.usage["cached_input_read"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { ($0.usage["cache_write_5m"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { ($0.usage["cache_write_1h"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { ($0.usage["reasoning"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { ($0.usage["audio_input"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { ($0.usage["audio_output"] ?? 0) > 0 && $0.expectedPriced })
        #expect(some { $0.batch == true })
        #expect(some { $0.serviceTier == "flex" } && some { $0.serviceTier == "priority" })
        #expect(some { $0.usage.values.allSatisfy { $0 == 0 } && $0.expectedPriced })
        #expect(some { $0.expectedUnpricedReason == "model_not_in_catalog" })
        #expect(some { $0.expectedUnpricedReason == "no_price_in_force" })
        #expect(some { $0.expectedUnpricedReason?.hasPrefix("class_not_priced:") == true })
        #expect(some { $0.model.hasPrefix("models/") })
        #expect(some { $0.model == "o3" && $0.date < "2025-06-10" } && some { $0.model == "o3" && $0.date >= "2025-06-10" })
        let prompt: (CostCase) -> Int64 = { c in
            ["input", "cached_input_read", "cache_write_5m", "cache_write_1h", "audio_input"].reduce(0) { $0 + (c.usage[$1] ?? 0) }
        }
        #expect(some { prompt($0) > 200_000 } && some { prompt($0) == 200_000 })
    }

    @Test("each hand-worked case prices to the nano-dollar", arguments: CostCase.all)
    func hand(_ testCase: CostCase) throws {
        let at = try #require(EventTime.parse(testCase.date + "T12:00:00Z"))
        let quote = Self.pricer.quote(provider: testCase.provider, model: testCase.model, usage: try testCase.tokenUsage(),
                                      at: at, serviceTier: testCase.serviceTier, batch: testCase.batch ?? false)
        #expect(quote.priced == testCase.expectedPriced, "\(testCase.working)")
        #expect(quote.cost.total.nanoUSD == testCase.expectedTotalNanoUSD, "\(testCase.working)")
        #expect(quote.unpricedReason == testCase.expectedUnpricedReason)
        #expect(quote.cost.isConsistent)
    }

    @Test("the built-in catalog is valid, versioned, sourced, and prices every model the fake provider serves")
    func builtIn() throws {
        let catalog = Self.pricer.catalog
        #expect(!catalog.catalogVersion.isEmpty)
        #expect(catalog.models.count >= 40)
        for model in catalog.models {
            for entry in model.prices {
                #expect(entry.source.hasPrefix("https://"), "\(model.id)")
            }
        }
        // Default downgrades point at cheaper models (validation checked they exist).
        let defaults = catalog.downgradeDefaults
        #expect(defaults["gpt-4o"] == "gpt-4o-mini" && defaults["claude-opus-4-5"] == "claude-sonnet-4-5")
        #expect(defaults["gemini-2.5-pro"] == "gemini-2.5-flash")
        for provider in Provider.allCases {
            #expect(catalog.models.contains { $0.provider == provider && $0.kind == .embedding }
                    || provider == .anthropic, "\(provider) embeddings")
        }
    }
}
