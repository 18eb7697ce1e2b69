import Foundation
import Testing
import TollgateEvents

@Suite("Canonical JSON")
struct CanonicalJSONTests {
    @Test("the fast writer produces EventCoding's bytes for every request, response and usage example")
    func examples() throws {
        var checked = 0
        var usages = 0
        for example in EventExamples.all {
            switch example.type {
            case RequestData.eventType:
                let event = try EventCoding.decode(RequestData.self, from: example.json)
                #expect(EventCoding.encodeCanonical(event) == (try EventCoding.encode(event)), "\(example.name)")
                checked += 1
            case ResponseData.eventType:
                let event = try EventCoding.decode(ResponseData.self, from: example.json)
                #expect(EventCoding.encodeCanonical(event) == (try EventCoding.encode(event)), "\(example.name)")
                checked += 1
            case UsageData.eventType:
                let event = try EventCoding.decode(UsageData.self, from: example.json)
                #expect(EventCoding.encodeCanonical(event) == (try EventCoding.encode(event)), "\(example.name)")
                checked += 1
                usages += 1
            default:
                continue
            }
        }
        #expect(checked >= 7)
        #expect(usages >= 3, "priced, estimated and unpriced usage examples")
    }

    @Test("escapes, non-ASCII text and tag ordering match JSONEncoder", arguments: [
        "plain", "quote \" and backslash \\", "slash / kept", "newline\n tab\t return\r", "bell \u{07} and \u{01}\u{1F}",
        "del \u{7F}", "é ü 漢字 🚀", "", "form\u{0C}feed back\u{08}space",
    ])
    func strings(text: String) throws {
        let timings = ResponseData.Timings(receivedAt: Date(timeIntervalSince1970: 1_795_000_000.125),
                                           upstreamSentAt: nil, firstByteMs: 12, durationMs: 34, upstreamMs: nil)
        var usage = TokenUsage()
        usage.inputTokens = 10
        usage.reasoningTokens = Int64.max
        let data = ResponseData(
            requestID: "req_\(text)", keyID: text.isEmpty ? "k" : text, team: text, project: "p", customer: text,
            tags: ["Zeta": text, "alpha": "1", "_under": "2", "é": "3", "a_b": "4", "a-b": "5", "aB": "6"],
            provider: .anthropic, endpoint: "/v1/messages", requestedModel: text, servedModel: text, stream: true,
            status: 429, outcome: .providerError, errorType: text, serviceTier: nil, timings: timings, usage: usage,
            usageSource: .estimated, routing: .init(policy: text, reason: "r", downgradedFrom: nil))
        let event = CloudEvent(id: "response:\(text)", source: "tollgate/ingress/h", time: Date(timeIntervalSince1970: 1_795_000_001.25), subject: text,
                               data: data)
        let fast = EventCoding.encodeCanonical(event)
        let reference = try EventCoding.encode(event)
        #expect(String(decoding: fast, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
        #expect(try EventCoding.decode(ResponseData.self, from: fast) == event)

        let request = CloudEvent(
            id: "request:x", source: "s", time: Date(timeIntervalSince1970: 0), subject: nil,
            data: RequestData(requestID: "x", keyID: "k", team: text, project: text, customer: nil,
                              tags: ["b": text, "a": text], provider: .gemini, endpoint: "/models/{model}:generateContent",
                              requestedModel: text, stream: false, maxOutputTokens: nil, estimatedInputTokens: 0,
                              reservedCostNanoUSD: Money(nanoUSD: 1_500), receivedAt: Date(timeIntervalSince1970: 0.5)))
        #expect(EventCoding.encodeCanonical(request) == (try EventCoding.encode(request)))
    }

    @Test("times and integers written in place match EventTime.format and String(_:)")
    func timesAndIntegers() throws {
        var instants: [Double] = [0, -0.0005, 0.0005, -1, 0.9995, 1_795_000_000.125, 1_795_000_000.9999, 951_782_400,
                                  -62_135_596_800, -62_135_596_800.001, 253_402_300_799.999, 253_402_300_800, -1e12, 1e12]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { instants.append(Double.random(in: -70_000_000_000...260_000_000_000, using: &generator)) }
        for seconds in instants {
            let date = Date(timeIntervalSince1970: seconds)
            var writer = CanonicalJSONWriter()
            writer.date(date)
            #expect(String(decoding: writer.bytes, as: UTF8.self) == "\"" + EventTime.format(date) + "\"", "\(seconds)")
        }
        for value in [Int64.min, Int64.min + 1, -1_000, -1, 0, 7, 10, 1_234_567_890, Int64.max] {
            var writer = CanonicalJSONWriter()
            writer.integer(value)
            #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
        }
    }
}
