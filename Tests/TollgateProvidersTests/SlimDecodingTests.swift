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

    struct Numbers: Decodable, Equatable {
        var a: Int64?
        var b: Int?
        var s: String?
        var flag: Bool?
        var list: [Int]?
        var nested: [String: Int64]?
    }

    @Test("the scanned decoder answers what JSONDecoder answers", arguments: [
        #"{"a": 1, "b": -2, "s": "x\u00e9\"", "flag": true, "list": [1, 2, 3], "nested": {"k": 9}}"#,
        #"{"a": 1.0, "b": 1e3, "s": null, "flag": null, "list": [], "nested": {}}"#,
        #"{"a": 1.5}"#, #"{"a": "1"}"#, #"{"b": 99999999999999999999}"#, #"{"a": 1, "a": 2}"#,
        #"{"list": [1, null]}"#, #"{"list": {"0": 1}}"#, #"{"nested": []}"#, #"{"flag": 1}"#, #"{"s": 5}"#,
        #"{"a": -0}"#, #"{"a": 9223372036854775807, "b": -9223372036854775808}"#, #"[1]"#, #"{"a": 1,}"#, #"{"a" 1}"#, "",
    ])
    func sameAsJSONDecoder(text: String) {
        let data = Data(text.utf8)
        let reference = try? JSONDecoder().decode(Numbers.self, from: data)
        let scanned = try? ScannedDecoder.decode(Numbers.self, from: data)
        if text == #"{"a": 1,}"# {
            #expect(scanned == nil, "strict grammar: trailing commas are refused")
        } else {
            #expect(scanned == reference, "\(text)")
        }
    }
}
