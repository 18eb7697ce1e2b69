import Foundation
import Testing
import TollgateEvents
@testable import TollgatePricing

/// The arithmetic and lookup rules, on a small catalog written here.
@Suite("Pricer")
struct PricerTests {
    static func price(_ text: String) -> PricePerMillion { PricePerMillion(text)! }

    static func prices(_ pairs: [TokenClass: String]) -> Catalog.ClassPrices {
        Catalog.ClassPrices(pairs.mapValues { price($0) })
    }

    static let catalog = Catalog(catalogVersion: "test-1", models: [
        Catalog.Model(provider: .openai, id: "gpt-test-2025-01-01", aliases: ["gpt-test"], kind: .chat, prices: [
            .init(effectiveFrom: "2025-01-01", source: "https://example.com",
                  perMillion: prices([.input: "2.50", .cachedInputRead: "1.25", .output: "10"]),
                  batch: prices([.input: "1.25", .output: "5"]),
                  serviceTiers: ["flex": prices([.input: "1.25", .cachedInputRead: "0.625", .output: "5"])]),
            .init(effectiveFrom: "2025-06-10", source: "https://example.com",
                  perMillion: prices([.input: "2", .cachedInputRead: "0.5", .output: "8"])),
        ]),
        Catalog.Model(provider: .anthropic, id: "claude-test-20250101", aliases: ["claude-test"], kind: .chat, prices: [
            .init(effectiveFrom: "2025-01-01", source: "https://example.com",
                  perMillion: prices([.input: "3", .cachedInputRead: "0.30", .cacheWrite5m: "3.75",
                                      .cacheWrite1h: "6", .output: "15"]),
                  longContext: .init(aboveInputTokens: 200_000,
                                     perMillion: prices([.input: "6", .cachedInputRead: "0.60", .cacheWrite5m: "7.50",
                                                         .cacheWrite1h: "12", .output: "22.50"]))),
        ]),
        Catalog.Model(provider: .gemini, id: "gemini-test", aliases: [], kind: .chat, prices: [
            .init(effectiveFrom: "2025-01-01", source: "https://example.com",
                  perMillion: prices([.input: "0.0375", .output: "0.15", .reasoning: "3.50", .audioInput: "1"])),
        ]),
    ])

    static let pricer = try! Pricer(catalog: catalog)
    static func day(_ text: String) -> Date { EventTime.parse(text + "T12:00:00Z")! }

    @Test("prices parse exactly and print back", arguments: [
        ("2.50", Int64(2_500_000_000), "2.5"), ("0.0375", 37_500_000, "0.0375"), ("15", 15_000_000_000, "15"),
        ("0.000000001", 1, "0.000000001"), ("150.00", 150_000_000_000, "150"),
    ])
    func parse(text: String, nano: Int64, printed: String) {
        #expect(PricePerMillion(text)?.nanoUSD == nano)
        #expect(PricePerMillion(text)?.description == printed)
    }

    @Test("malformed prices are rejected", arguments: ["", ".5", "5.", "1.0000000001", "-1", "1e3", "abc", "1,5", " 1"])
    func malformed(text: String) {
        #expect(PricePerMillion(text) == nil)
    }

    @Test("one request is rounded once, half up; the classes sum to the total")
    func roundingOnce() {
        // 3 input at $0.0375/M = 112.5 nano; 1 output at $0.15/M = 150 nano → 262.5 → 263.
        let quote = Self.pricer.quote(provider: .gemini, model: "gemini-test",
                                      usage: TokenUsage(inputTokens: 3, outputTokens: 1), at: Self.day("2025-03-01"))
        #expect(quote.priced)
        #expect(quote.cost.total.nanoUSD == 263)
        #expect(quote.cost.input.nanoUSD + quote.cost.output.nanoUSD == 263)
        // Rounding each class first would give 113 + 150 = 263 here, but 3 + 3 tokens of $0.0375 and
        // $0.0375: 112.5 + 112.5 = 225 exactly, not 113 + 113 = 226.
        let twoHalves = Self.pricer.quote(provider: .gemini, model: "gemini-test",
                                          usage: TokenUsage(inputTokens: 3, audioInputTokens: 0),
                                          at: Self.day("2025-03-01"))
        #expect(twoHalves.cost.total.nanoUSD == 113)
        let sum = Pricer.allocate([(.input, 1_125_000), (.output, 1_125_000)], denominator: 10_000)
        #expect(sum?.total.nanoUSD == 225)
        #expect(sum.map { $0.input.nanoUSD + $0.output.nanoUSD } == 225)
    }

    @Test("reasoning has its own price where given, the output price otherwise")
    func reasoning() {
        let own = Self.pricer.quote(provider: .gemini, model: "gemini-test",
                                    usage: TokenUsage(reasoningTokens: 1_000_000), at: Self.day("2025-03-01"))
        #expect(own.cost.reasoning.nanoUSD == 3_500_000_000)
        let fallback = Self.pricer.quote(provider: .openai, model: "gpt-test",
                                         usage: TokenUsage(reasoningTokens: 1_000), at: Self.day("2025-03-01"))
        #expect(fallback.cost.total.nanoUSD == 10_000_000)
    }

    @Test("the price in force on the request's day applies; before the first entry nothing does")
    func dated() {
        let usage = TokenUsage(inputTokens: 1_000_000, outputTokens: 1_000_000)
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: Self.day("2025-06-09"))
            .cost.total.nanoUSD == 12_500_000_000)
        let after = Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: Self.day("2025-06-10"))
        #expect(after.cost.total.nanoUSD == 10_000_000_000)
        #expect(after.effectiveFrom == "2025-06-10")
        let before = Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: Self.day("2024-12-31"))
        #expect(!before.priced && before.unpricedReason == "no_price_in_force" && before.cost == .zero)
    }

    @Test("long context applies above the threshold, not at it; cache writes count towards the prompt")
    func longContext() {
        let at = Self.day("2025-03-01")
        let atLimit = Self.pricer.quote(provider: .anthropic, model: "claude-test",
                                        usage: TokenUsage(inputTokens: 150_000, cachedInputReadTokens: 50_000,
                                                          outputTokens: 1_000), at: at)
        // 150000×3 + 50000×0.30 + 1000×15 = 450000 + 15000 + 15000 = 480000 µ$ = 0.48 $.
        #expect(atLimit.cost.total.nanoUSD == 480_000_000)
        let above = Self.pricer.quote(provider: .anthropic, model: "claude-test",
                                      usage: TokenUsage(inputTokens: 150_000, cachedInputReadTokens: 50_000,
                                                        cacheWrite1hTokens: 1, outputTokens: 1_000), at: at)
        // 150000×6 + 50000×0.60 + 1×12 + 1000×22.50 = 900000 + 30000 + 12 + 22500 = 952512 µ$.
        #expect(above.cost.total.nanoUSD == 952_512_000)
    }

    @Test("batch and service tiers use their prices, falling back per class to standard")
    func tiers() {
        let at = Self.day("2025-03-01")
        let usage = TokenUsage(inputTokens: 1_000_000, cachedInputReadTokens: 1_000_000, outputTokens: 1_000_000)
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: at, batch: true)
            .cost.total.nanoUSD == 7_500_000_000)  // 1.25 + 1.25 (standard cached) + 5
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: at, serviceTier: "flex")
            .cost.total.nanoUSD == 6_875_000_000)  // 1.25 + 0.625 + 5
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: at, serviceTier: "default")
            .cost.total.nanoUSD == 13_750_000_000)
    }

    @Test("ids, aliases and models/ paths resolve; unknown names and unpriced classes are loud, never $0")
    func lookup() {
        let at = Self.day("2025-03-01")
        let usage = TokenUsage(inputTokens: 10)
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test-2025-01-01", usage: usage, at: at).priced)
        #expect(Self.pricer.quote(provider: .openai, model: "gpt-test", usage: usage, at: at).catalogModelID
            == "gpt-test-2025-01-01")
        #expect(Self.pricer.quote(provider: .gemini, model: "models/gemini-test", usage: usage, at: at).priced)
        let wrongProvider = Self.pricer.quote(provider: .anthropic, model: "gpt-test", usage: usage, at: at)
        #expect(wrongProvider.unpricedReason == "model_not_in_catalog")
        let audio = Self.pricer.quote(provider: .openai, model: "gpt-test", usage: TokenUsage(audioOutputTokens: 5), at: at)
        #expect(!audio.priced && audio.unpricedReason == "class_not_priced:audio_output" && audio.cost.total == .zero)
    }

    @Test("a negotiated discount applies to every class before the single rounding")
    func discount() throws {
        var catalog = Self.catalog
        catalog.discountBasisPoints[.gemini] = 1_250
        let pricer = try Pricer(catalog: catalog)
        // 3 × 0.0375 = 112.5 nano × 0.875 = 98.4375 → 98.
        let quote = pricer.quote(provider: .gemini, model: "gemini-test", usage: TokenUsage(inputTokens: 3),
                                 at: Self.day("2025-03-01"))
        #expect(quote.cost.total.nanoUSD == 98)
        // 1,000,000 × 2.50 × 0.875 on OpenAI: no discount there.
        #expect(pricer.quote(provider: .openai, model: "gpt-test", usage: TokenUsage(inputTokens: 1_000_000),
                             at: Self.day("2025-03-01")).cost.total.nanoUSD == 2_500_000_000)
    }

    @Test("huge counts stay exact (128-bit sums)")
    func huge() {
        let quote = Self.pricer.quote(provider: .anthropic, model: "claude-test",
                                      usage: TokenUsage(cacheWrite1hTokens: 1_000_000_000_000, outputTokens: 3),
                                      at: Self.day("2025-03-01"))
        // Long context (prompt > 200k): 1e12 × $12/M = $12,000,000 = 1.2e16 nano; 3 × $22.50/M = 67,500 nano.
        #expect(quote.cost.total.nanoUSD == 12_000_000_000_067_500)
    }

    @Test("a user's file replaces a model, takes over an alias, adds models and discounts")
    func merging() throws {
        let overrides = Catalog(catalogVersion: "acme-3", discountBasisPoints: [.openai: 1_000], models: [
            Catalog.Model(provider: .openai, id: "gpt-test-ft", aliases: ["gpt-test"], kind: .chat, prices: [
                .init(effectiveFrom: "2025-01-01", source: "https://example.com/contract",
                      perMillion: Self.prices([.input: "1", .output: "1"])),
            ]),
        ])
        let pricer = try Pricer(catalog: Self.catalog.merging(overrides))
        #expect(pricer.catalog.catalogVersion == "test-1+acme-3")
        let at = Self.day("2025-03-01")
        #expect(pricer.quote(provider: .openai, model: "gpt-test", usage: TokenUsage(inputTokens: 1_000_000), at: at)
            .cost.total.nanoUSD == 900_000_000)
        #expect(pricer.quote(provider: .openai, model: "gpt-test-2025-01-01", usage: TokenUsage(inputTokens: 1_000_000),
                             at: at).cost.total.nanoUSD == 2_250_000_000)
    }

    @Test("an invalid catalog lists every problem")
    func validation() {
        let broken = Catalog(catalogVersion: "", models: [
            Catalog.Model(provider: .openai, id: "a", aliases: ["b"], kind: .chat, prices: [
                .init(effectiveFrom: "2025-13-01", source: "s", perMillion: Self.prices([.output: "1"])),
            ]),
            Catalog.Model(provider: .openai, id: "b", kind: .embedding, prices: []),
            Catalog.Model(provider: .anthropic, id: "c", kind: .chat, downgradeTo: "nowhere", prices: [
                .init(effectiveFrom: "2025-01-01", source: "s", perMillion: Self.prices([.input: "1", .output: "1"])),
            ]),
        ])
        #expect(throws: CatalogError.self) { try Pricer(catalog: broken) }
        do {
            _ = try Pricer(catalog: broken)
        } catch let CatalogError.invalid(problems) {
            #expect(problems.contains("catalog_version is empty"))
            #expect(problems.contains { $0.contains("'b' belongs to both") })
            #expect(problems.contains { $0.contains("not a YYYY-MM-DD date") })
            #expect(problems.contains { $0.contains("no input price") })
            #expect(problems.contains { $0.contains("openai b has no prices") })
            #expect(problems.contains { $0.contains("downgrade_to 'nowhere' is not a model") })
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("pricing files load from YAML and JSON, with clear errors")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pricing-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = directory.appendingPathComponent("pricing.yaml")
        try """
            catalog_version: acme-1
            discounts:
              anthropic: "7.5"
            models:
              - provider: openai
                id: ft:gpt-4o-mini-2024-07-18:acme::abc
                kind: chat
                prices:
                  - effective_from: "2025-01-01"
                    source: https://example.com/contract
                    per_million: {input: "0.30", cached_input_read: "0.15", output: "1.20"}
            """.write(to: yaml, atomically: true, encoding: .utf8)
        let catalog = try Catalog.load(yaml)
        #expect(catalog.discountBasisPoints == [.anthropic: 750])
        #expect(catalog.models.first?.prices.first?.perMillion[.output]?.nanoUSD == 1_200_000_000)

        let bad = directory.appendingPathComponent("bad.json")
        try #"{"models":[{"provider":"openai","id":"x","kind":"chat","prices":[{"effective_from":"2025-01-01","source":"s","per_million":{"input":"0.1","outptu":"1"}}]}]}"#
            .write(to: bad, atomically: true, encoding: .utf8)
        do {
            _ = try Catalog.load(bad)
            Issue.record("a typo in a token class was accepted")
        } catch let CatalogError.unreadable(_, reason) {
            #expect(reason.contains("unknown token class 'outptu'"))
        }
        let float = directory.appendingPathComponent("float.json")
        try #"{"models":[{"provider":"openai","id":"x","kind":"chat","prices":[{"effective_from":"2025-01-01","source":"s","per_million":{"input":0.1}}]}]}"#
            .write(to: float, atomically: true, encoding: .utf8)
        #expect(throws: CatalogError.self) { try Catalog.load(float) }
    }
}
