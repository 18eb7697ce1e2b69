import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateCost
@testable import TollgatePricing

@Suite("Cost fold")
struct CostFoldTests {
    static let pricedAt = EventTime.parse("2026-11-29T10:00:00Z")!

    static func fold() throws -> CostFold {
        let catalog = Catalog(catalogVersion: "unit-1", models: [
            Catalog.Model(provider: .openai, id: "gpt-4o-mini-2024-07-18", aliases: ["gpt-4o-mini"], kind: .chat, prices: [
                .init(effectiveFrom: "2024-07-18", source: "https://openai.com/api/pricing/",
                      perMillion: Catalog.ClassPrices([.input: PricePerMillion("0.15")!,
                                                       .cachedInputRead: PricePerMillion("0.075")!,
                                                       .output: PricePerMillion("0.60")!])),
            ]),
        ])
        return CostFold(pricer: try Pricer(catalog: catalog), now: { pricedAt })
    }

    static func response(model: String, usage: TokenUsage, source: ResponseData.UsageSource = .provider) -> ResponseData {
        let example = try! EventCoding.decode(ResponseData.self, from: EventExamples.all.first {
            $0.type == ResponseData.eventType
        }!.json).data
        var response = example
        response.servedModel = model
        response.usage = usage
        response.usageSource = source
        response.serviceTier = nil
        response.timings.receivedAt = EventTime.parse("2026-11-29T09:00:00Z")!
        return response
    }

    static func message(_ response: ResponseData) throws -> ConsumedMessage {
        let event = CloudEvent(id: "response:\(response.requestID)", source: "test", time: pricedAt, data: response)
        return ConsumedMessage(topic: "tollgate.responses", partition: 0, offset: 7, timestampMilliseconds: 0,
                               key: Data(response.team.utf8), value: try EventCoding.encode(event), headers: [])
    }

    @Test("a priced response becomes usage.v1 with its id derived from the request id, on the usage topic")
    func priced() throws {
        let fold = try Self.fold()
        let response = Self.response(model: "gpt-4o-mini-2024-07-18",
                                     usage: TokenUsage(inputTokens: 1_000, cachedInputReadTokens: 2_000, outputTokens: 500))
        var state = CostFold.State()
        let message = try Self.message(response)
        let outputs = fold.fold(&state, try fold.decode(message), message)
        #expect(outputs.count == 1)
        let output = try #require(outputs.first)
        #expect(output.topic == "tollgate.usage")
        #expect(output.key == Data(response.team.utf8))
        let usage = try EventCoding.decode(UsageData.self, from: try #require(output.value))
        #expect(usage.id == "usage:\(response.requestID)")
        // 1000×0.15 + 2000×0.075 + 500×0.60 = 150 + 150 + 300 = 600 µ$ = 600,000 nano.
        #expect(usage.data.costNanoUSD.total.nanoUSD == 600_000)
        #expect(usage.data.costNanoUSD.cachedInputRead.nanoUSD == 150_000)
        #expect(usage.data.priced && usage.data.unpricedReason == nil)
        #expect(usage.data.catalogVersion == "unit-1" && usage.data.priceEffectiveDate == "2024-07-18")
        #expect(usage.data.response == response)
        #expect(state.priced == 1 && state.unpriced == 0)
        // Re-pricing the same response gives the same event (idempotent: same id, same figures).
        var again = CostFold.State()
        #expect(fold.fold(&again, try fold.decode(message), message) == outputs)
    }

    @Test("an unknown model is published unpriced with the reason and counted, never as $0 priced")
    func unpriced() throws {
        let fold = try Self.fold()
        let response = Self.response(model: "gpt-9-ultra", usage: TokenUsage(inputTokens: 10, outputTokens: 10))
        var state = CostFold.State()
        let message = try Self.message(response)
        let output = try #require(fold.fold(&state, try fold.decode(message), message).first)
        let usage = try EventCoding.decode(UsageData.self, from: try #require(output.value)).data
        #expect(!usage.priced && usage.unpricedReason == "model_not_in_catalog")
        #expect(usage.costNanoUSD == .zero)
        #expect(output.headers.contains(MessageHeader("tollgate-priced", "false")))
        #expect(state.unpricedModels == [.init(provider: .openai, model: "gpt-9-ultra", reason: "model_not_in_catalog"): 1])
    }

    @Test("estimated usage stays flagged as estimated; zero usage is a true $0")
    func estimatedAndZero() throws {
        let fold = try Self.fold()
        let estimated = fold.price(Self.response(model: "gpt-4o-mini", usage: TokenUsage(inputTokens: 100, outputTokens: 40),
                                                 source: .estimated))
        #expect(estimated.response.usageSource == .estimated && estimated.priced)
        #expect(estimated.costNanoUSD.total.nanoUSD == 15_000 + 24_000)
        let zero = fold.price(Self.response(model: "something-unknown", usage: .zero))
        #expect(zero.priced && zero.costNanoUSD == .zero)
    }

    @Test("an event that is not a response goes to the dead-letter topic (decode throws)")
    func garbage() throws {
        let fold = try Self.fold()
        let message = ConsumedMessage(topic: "tollgate.responses", partition: 0, offset: 0, timestampMilliseconds: 0,
                                      key: nil, value: Data("{not json".utf8), headers: [])
        #expect(throws: (any Error).self) { try fold.decode(message) }
    }
}
