import Foundation
import Testing
@testable import TollgateFakeProvider

@Suite struct FakeRulesTests {
    @Test func tokensAreCeilingOfBytesOverFour() {
        #expect(FakeRules.tokens("") == 0)
        #expect(FakeRules.tokens("a") == 1)
        #expect(FakeRules.tokens("abcd") == 1)
        #expect(FakeRules.tokens("abcde") == 2)
        #expect(FakeRules.tokens("héllo") == 2)  // 6 bytes
        #expect(FakeRules.tokens("日本語") == 3)  // 9 bytes
    }

    @Test func replyEchoesTheWordsUpToTheLimit() {
        let reply = FakeRules.reply(echoing: "  Hello\tthere,\n how are you? ", maxTokens: nil)
        #expect(reply.words == ["Echo:", "Hello", "there,", "how", "are", "you?"])
        #expect(reply.text == "Echo: Hello there, how are you?")
        #expect(reply.outputTokens == 6)
        #expect(!reply.truncated)
        #expect(reply.deltas == ["Echo:", " Hello", " there,", " how", " are", " you?"])

        let cut = FakeRules.reply(echoing: "one two three four", maxTokens: 3)
        #expect(cut.text == "Echo: one two")
        #expect(cut.truncated)

        let exact = FakeRules.reply(echoing: "one two", maxTokens: 3)
        #expect(!exact.truncated)
        #expect(FakeRules.reply(echoing: "", maxTokens: nil).text == "Echo:")
    }

    @Test func replyHasAtMost32Words() {
        let long = (1...100).map(String.init).joined(separator: " ")
        let reply = FakeRules.reply(echoing: long, maxTokens: nil)
        #expect(reply.words.count == 32)
        #expect(!reply.truncated, "the 32-word cap is a natural stop, not a length stop")
        #expect(FakeRules.reply(echoing: long, maxTokens: 100).truncated == false)
        #expect(FakeRules.reply(echoing: long, maxTokens: 31).truncated)
    }

    @Test func reasoningTables() {
        #expect(FakeRules.reasoningTokens(effort: "minimal") == 8)
        #expect(FakeRules.reasoningTokens(effort: "low") == 32)
        #expect(FakeRules.reasoningTokens(effort: "medium") == 64)
        #expect(FakeRules.reasoningTokens(effort: "HIGH") == 128)
        #expect(FakeRules.reasoningTokens(effort: "xhigh") == 256)
        #expect(FakeRules.reasoningTokens(effort: "none") == 0)
        #expect(FakeRules.reasoningTokens(budget: 1024) == 64)
        #expect(FakeRules.reasoningTokens(budget: 10) == 10)
        #expect(FakeRules.reasoningTokens(budget: -1) == 64)
        #expect(FakeRules.reasoningTokens(budget: 0) == 0)
        #expect(FakeRules.isOpenAIReasoningModel("o3-mini"))
        #expect(FakeRules.isOpenAIReasoningModel("o1"))
        #expect(!FakeRules.isOpenAIReasoningModel("omni-moderation"))
        #expect(!FakeRules.isOpenAIReasoningModel("gpt-4o"))
    }

    @Test func openAICache() {
        #expect(FakeRules.openAICachedTokens(inputTokens: 2000, hasPromptCacheKey: true) == 1920)
        #expect(FakeRules.openAICachedTokens(inputTokens: 1024, hasPromptCacheKey: true) == 1024)
        #expect(FakeRules.openAICachedTokens(inputTokens: 1023, hasPromptCacheKey: true) == 0)
        #expect(FakeRules.openAICachedTokens(inputTokens: 2000, hasPromptCacheKey: false) == 0)
    }

    @Test func placeholderArgumentsFillRequiredProperties() throws {
        let schema = try JSON.parse(#"""
            {"type":"object","properties":{
              "city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},
              "days":{"type":"integer"},"detailed":{"type":"boolean"},"tags":{"type":"array"},
              "where":{"type":"object","properties":{"lat":{"type":"number"},"note":{"type":"string"}},"required":["lat"]},
              "optional":{"type":"string"},"kind":{"const":"fixed"},"maybe":{"type":["null","integer"]}},
             "required":["city","unit","days","detailed","tags","where","kind","maybe"]}
            """#)
        let arguments = FakeRules.placeholderArguments(for: schema)
        #expect(arguments.serialized
            == #"{"city":"fake","unit":"celsius","days":1,"detailed":true,"tags":[],"where":{"lat":1},"kind":"fixed","maybe":1}"#)
        // Gemini's OpenAPI schema types are upper case.
        let gemini = try JSON.parse(#"{"type":"OBJECT","properties":{"q":{"type":"STRING"}},"required":["q"]}"#)
        #expect(FakeRules.placeholderArguments(for: gemini).serialized == #"{"q":"fake"}"#)
        #expect(FakeRules.placeholderArguments(for: nil).serialized == "{}")
        let call = FakeRules.ToolCall(name: "get_weather", schema: gemini)
        #expect(call.outputTokens == 3)  // {"q":"fake"} is 12 bytes
    }

    @Test func embeddingsAreDeterministicMultiplesOf1024ths() {
        let first = FakeRules.embedding(of: "hello", dimensions: 16)
        #expect(first.count == 16)
        #expect(first == FakeRules.embedding(of: "hello", dimensions: 16))
        #expect(first != FakeRules.embedding(of: "hellp", dimensions: 16))
        for value in first {
            #expect((-1...1).contains(value))
            #expect((value * 1024).rounded() == value * 1024)
            #expect(Double(Float(value)) == value)
        }
    }

    @Test func cutStreamsKeepAboutHalfAndNeverTheEnd() {
        #expect(FakeProvider.cutIndex(frameCount: 1) == 0)
        #expect(FakeProvider.cutIndex(frameCount: 2) == 1)
        #expect(FakeProvider.cutIndex(frameCount: 5) == 2)
        #expect(FakeProvider.cutIndex(frameCount: 10) == 5)
    }
}

@Suite struct JSONTests {
    @Test func roundTripsAndKeepsKeyOrder() throws {
        let text = #"{"b":1,"a":[true,false,null,-2.5,"x\"\\\n\u0001é😀"],"c":{},"d":[],"e":1.0,"f":1e3}"#
        let value = try JSON.parse(text)
        #expect(value.keys == ["b", "a", "c", "d", "e", "f"])
        #expect(value.serialized == #"{"b":1,"a":[true,false,null,-2.5,"x\"\\\n\u0001é😀"],"c":{},"d":[],"e":1.0,"f":1000.0}"#)
        #expect(try JSON.parse(value.serialized) == value)
        let foundation = try JSONSerialization.jsonObject(with: Data(value.serialized.utf8)) as? [String: Any]
        #expect(foundation?["b"] as? Int == 1)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try JSON.parse(#""\ud83d\ude00 \u00e9\/""#) == .string("😀 é/"))
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "tru", "\"abc", "{\"a\":1}x", "01", "\"\\ud800\"", "{'a':1}", "1.", "-"])
    func rejectsMalformedJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func rejectsDeepNesting() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
    }
}
