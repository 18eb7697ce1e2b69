import Foundation
import Testing
@testable import TollgateProviders

@Suite("Decoding only the members read")
struct SlimDecodingTests {
    struct Wire: Decodable, Equatable {
        var model: String?
        var usage: [String: Int]?
    }

    @Test("only top-level members are kept; nested ones with the same name are not")
    func topLevelOnly() {
        let body = Data(#"""
            {"choices":[{"usage":{"fake":1},"model":"inner","text":"a \"quoted\" {brace}"}],
             "model" : "gpt-4o-mini", "usage": {"prompt_tokens": 7, "completion_tokens": 3}, "extra": [1, 2, {"model": "x"}]}
            """#.utf8)
        let slim = ResponseDecoding.decode(Wire.self, from: body, keeping: ["model", "usage"])
        #expect(slim == Wire(model: "gpt-4o-mini", usage: ["prompt_tokens": 7, "completion_tokens": 3]))
        #expect(slim == ResponseDecoding.decode(Wire.self, from: body))
    }

    @Test("absent members decode as absent; non-objects fall back to a full decode")
    func absentAndFallback() {
        #expect(ResponseDecoding.decode(Wire.self, from: Data(#"{"other": true}"#.utf8), keeping: ["model"])
                == Wire(model: nil, usage: nil))
        #expect(ResponseDecoding.decode(Wire.self, from: Data("[1]".utf8), keeping: ["model"]) == nil)
        #expect(ResponseDecoding.decode(Wire.self, from: Data(#"{"model": 5}"#.utf8), keeping: ["model"]) == nil)
    }
}
