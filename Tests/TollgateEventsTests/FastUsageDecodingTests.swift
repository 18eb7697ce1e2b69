import Foundation
import Testing
import TollgateEvents

/// `EventCoding.decodeUsage` against the reference, `EventCoding.decode(UsageData.self, from:)`.
@Suite("FastUsageDecoding")
struct FastUsageDecodingTests {
    static var usageExamples: [(String, Data)] {
        EventExamples.all.filter { $0.type == UsageData.eventType }.map { ($0.name, $0.json) }
    }

    static func compare(_ data: Data) -> FastResponseDecodingTests.Outcome {
        FastResponseDecodingTests.compare(data, UsageData.self, fast: EventCoding.decodeUsage(from:))
    }

    @Test("every usage example, and its rewrites, decode to the reference's value")
    func examples() throws {
        #expect(Self.usageExamples.count >= 1)
        for (name, json) in Self.usageExamples {
            #expect(Self.compare(json) == .sameEvent, "\(name)")
            let tree = try JSONValue(parsing: json)
            for (styleName, style) in FastResponseDecodingTests.styles {
                let text = Data(JSONText.write(tree, style: style).utf8)
                #expect(Self.compare(text) == .sameEvent, "\(name) / \(styleName)")
            }
        }
    }

    @Test("a response event is not a usage event, and broken usage fields are rejected by both")
    func rejected() throws {
        let response = try #require(FastResponseDecodingTests.responseExamples.first?.1)
        #expect(Self.compare(response) == .bothRejected)
        #expect(throws: EventDecodingError.self) { try EventCoding.decodeUsage(from: response) }
        let usage = try #require(Self.usageExamples.first?.1)
        let text = String(decoding: usage, as: UTF8.self)
        for (find, replace) in [("\"priced\":true", "\"priced\":1"), ("\"total\":", "\"totl\":"),
                                ("\"catalog_version\":", "\"catalog\":"), ("\"priced_at\":\"", "\"priced_at\":\"x"),
                                ("\"response\":{", "\"response\":null,\"x\":{"), ("\"cost_nano_usd\":{", "\"cost_nano_usd\":{\"input\":1.5,")]
        where text.contains(find) {
            let edited = Data(text.replacingOccurrences(of: find, with: replace).utf8)
            #expect(Self.compare(edited) == .bothRejected, "\(find) → \(replace)")
        }
        for cut in stride(from: 1, to: usage.count, by: 37) {
            #expect(Self.compare(usage.prefix(cut)) == .bothRejected)
        }
    }
}
