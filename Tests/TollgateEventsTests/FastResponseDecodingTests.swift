import Foundation
import Testing
import TollgateEvents

/// `EventCoding.decodeResponse` against the reference, `EventCoding.decode(ResponseData.self, from:)`:
/// the same event for everything the reference reads, an error for everything it rejects.
@Suite("FastResponseDecoding")
struct FastResponseDecodingTests {
    // MARK: Examples and variations

    @Test("every response example decodes to the reference's value")
    func examples() throws {
        let examples = Self.responseExamples
        #expect(examples.count >= 2)
        for (name, json) in examples {
            let fast = try EventCoding.decodeResponse(from: json)
            #expect(fast == (try EventCoding.decode(ResponseData.self, from: json)), "\(name)")
        }
    }

    @Test("rewritten examples (whitespace, key order, escapes, unknown and repeated keys, number forms) decode the same")
    func rewritten() throws {
        var checked = 0
        for (name, json) in Self.responseExamples {
            let tree = try JSONValue(parsing: json)
            for (styleName, style) in Self.styles {
                let text = Data(JSONText.write(tree, style: style).utf8)
                #expect(Self.compare(text) == .sameEvent, "\(name) / \(styleName): \(String(decoding: text, as: UTF8.self))")
                checked += 1
            }
        }
        #expect(checked >= 2 * Self.styles.count)
    }

    @Test("absent and null optionals decode the same", arguments: [
        ["subject"], ["datacontenttype"], ["data", "customer"], ["data", "error_type"], ["data", "service_tier"],
        ["data", "routing"], ["data", "routing", "downgraded_from"], ["data", "timings", "first_byte_ms"],
        ["data", "timings", "upstream_ms"], ["data", "timings", "upstream_sent_at"],
    ])
    func optionals(path: [String]) throws {
        for (name, json) in Self.responseExamples {
            let tree = try JSONValue(parsing: json)
            for replacement in [JSONValue?.none, .some(.null)] {
                let text = Data(JSONText.write(tree.replacing(path, with: replacement), style: .init()).utf8)
                #expect(Self.compare(text) == .sameEvent, "\(name) \(path) \(String(describing: replacement))")
            }
        }
    }

    @Test("strings with escapes and non-ASCII text decode the same", arguments: [
        "plain", "quote \" and backslash \\", "slash / kept", "newline\n tab\t return\r", "bell \u{07} and \u{01}\u{1F}",
        "del \u{7F}", "é ü 漢字 🚀", "", "form\u{0C}feed back\u{08}space", "nul \u{0} inside", "👩‍👩‍👧 family",
        "\u{FFFF} \u{10FFFF} \u{E000}", String(repeating: "long-value-", count: 40),
    ])
    func strings(text: String) throws {
        let event = Self.event(text: text)
        let canonical = try EventCoding.encode(event)
        #expect(try EventCoding.decodeResponse(from: canonical) == event)
        let tree = try JSONValue(parsing: canonical)
        for (styleName, style) in Self.styles {
            let rewritten = Data(JSONText.write(tree, style: style).utf8)
            #expect(Self.compare(rewritten) == .sameEvent, "\(styleName)")
        }
    }

    @Test("times in other RFC 3339 forms decode the same", arguments: [
        "2026-11-29T08:00:00Z", "2026-11-29T08:00:00.5Z", "2026-11-29T08:00:00.123456789Z",
        "2026-11-29T08:00:00.1234567891234Z", "2026-11-29t08:00:00.123z", "2026-11-29T10:00:00.123+02:00",
        "2026-11-29T03:30:00.123-04:30", "2024-02-29T23:59:59.999Z", "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "2000-03-01T00:00:00.000Z",
        "2100-02-28T12:00:00.000Z",
    ])
    func times(text: String) throws {
        for (_, json) in Self.responseExamples {
            let tree = try JSONValue(parsing: json)
            for path in [["time"], ["data", "timings", "received_at"], ["data", "timings", "upstream_sent_at"]] {
                let rewritten = Data(JSONText.write(tree.replacing(path, with: .string(text)), style: .init()).utf8)
                #expect(Self.compare(rewritten) == .sameEvent, "\(path) = \(text)")
            }
        }
    }

    @Test("the canonical time fast path gives EventTime.parse's Date for every millisecond pattern")
    func canonicalTimes() throws {
        var generator = SplitMix(seed: 7)
        for _ in 0..<2_000 {
            let seconds = Double(generator.next() % 8_000_000_000) - 1_000_000_000
            let millis = Double(generator.next() % 1_000) / 1_000
            let text = EventTime.format(Date(timeIntervalSince1970: seconds + millis))
            let json = Data(JSONText.write(Self.minimalTree.replacing(["time"], with: .string(text)), style: .init()).utf8)
            #expect(try EventCoding.decodeResponse(from: json).time == EventTime.parse(text), "\(text)")
        }
    }

    // MARK: Malformed input

    @Test("every truncation of an example is rejected by both")
    func truncations() throws {
        for (name, json) in Self.responseExamples {
            for length in 0..<json.count {
                let prefix = json.prefix(length)
                #expect(Self.compare(Data(prefix)) == .bothRejected, "\(name) cut at \(length)")
            }
        }
    }

    /// Edits of the full example's canonical text that both decoders must reject.
    static let malformed: [(String, String, String)] = [
        // Wrong types.
        ("status as a string", #""status":200"#, #""status":"200""#),
        ("stream as a string", #""stream":true"#, #""stream":"true""#),
        ("stream as a number", #""stream":true"#, #""stream":1"#),
        ("tags as an array", #""tags":{"env":"prod","feature":"summarize"}"#, #""tags":["prod"]"#),
        ("tags null", #""tags":{"env":"prod","feature":"summarize"}"#, #""tags":null"#),
        ("tag value a number", #""env":"prod""#, #""env":5"#),
        ("tag value null", #""env":"prod""#, #""env":null"#),
        ("usage null", #""usage":{"#, #""usage":null,"x":{"#),
        ("count as a string", #""input_tokens":1200"#, #""input_tokens":"1200""#),
        ("count null", #""input_tokens":1200"#, #""input_tokens":null"#),
        ("id a number", #""id":"response:req_01JDQ8Z4N6""#, #""id":5"#),
        ("time a number", #""time":"2026-11-29T08:00:02.434Z""#, #""time":1795000000"#),
        ("team null", #""team":"search""#, #""team":null"#),
        ("timings a string", #""timings":{"#, #""timings":"x","y":{"#),
        ("routing a string", #""routing":{"#, #""routing":"auto","y":{"#),
        ("data an array", #"{"data":{"#, #"{"data":[],"x":{"#),
        ("data null", #"{"data":{"#, #"{"data":null,"x":{"#),
        // Negative counts and bad numbers.
        ("negative count", #""input_tokens":1200"#, #""input_tokens":-1"#),
        ("negative zero count is zero, but minus one is not", #""output_tokens":300"#, #""output_tokens":-1e0"#),
        ("fraction", #""duration_ms":2310"#, #""duration_ms":2310.5"#),
        ("fraction by exponent", #""duration_ms":2310"#, #""duration_ms":23105e-1"#),
        ("overflow", #""duration_ms":2310"#, #""duration_ms":9223372036854775808"#),
        ("negative overflow", #""duration_ms":2310"#, #""duration_ms":-9223372036854775809"#),
        ("overflow by exponent", #""duration_ms":2310"#, #""duration_ms":1e19"#),
        ("huge exponent", #""duration_ms":2310"#, #""duration_ms":1e400"#),
        ("2^63 as a float", #""duration_ms":2310"#, #""duration_ms":9223372036854775807.0"#),
        ("leading zero", #""status":200"#, #""status":0200"#),
        ("leading plus", #""status":200"#, #""status":+200"#),
        ("lone minus", #""status":200"#, #""status":-"#),
        ("dot without digits", #""status":200"#, #""status":200."#),
        ("exponent without digits", #""status":200"#, #""status":2e"#),
        ("two dots", #""status":200"#, #""status":2.0.0"#),
        ("hex", #""status":200"#, #""status":0x20"#),
        // Enums.
        ("bad provider", #""provider":"openai""#, #""provider":"OpenAI""#),
        ("bad outcome", #""outcome":"client_cancelled""#, #""outcome":"cancelled""#),
        ("bad usage source", #""usage_source":"estimated""#, #""usage_source":"guessed""#),
        // Dates.
        ("month 13", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-13-29T08:00:00.123Z""#),
        ("February 30", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-02-30T08:00:00.123Z""#),
        ("February 29 of 2100", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2100-02-29T08:00:00.123Z""#),
        ("hour 24", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-11-29T24:00:00.123Z""#),
        ("leap second", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-11-29T08:00:60.123Z""#),
        ("space for T", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-11-29 08:00:00.123Z""#),
        ("no zone", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-11-29T08:00:00.123""#),
        ("empty fraction", #""received_at":"2026-11-29T08:00:00.123Z""#, #""received_at":"2026-11-29T08:00:00.Z""#),
        ("digit for Z", #""time":"2026-11-29T08:00:02.434Z""#, #""time":"2026-11-29T08:00:02.4345""#),
        ("letter in year", #""time":"2026-11-29T08:00:02.434Z""#, #""time":"2O26-11-29T08:00:02.434Z""#),
        ("null time", #""time":"2026-11-29T08:00:02.434Z""#, #""time":null"#),
        // Strings and escapes.
        ("lone high surrogate", #""team":"search""#, #""team":"\ud83d""#),
        ("lone low surrogate", #""team":"search""#, #""team":"\ude80""#),
        ("high surrogate then a letter", #""team":"search""#, #""team":"\ud83d\u0041""#),
        ("high surrogate then text", #""team":"search""#, #""team":"\ud83dxy""#),
        ("short unicode escape", #""team":"search""#, #""team":"\u12""#),
        ("bad hex", #""team":"search""#, #""team":"\uZZZZ""#),
        ("unknown escape", #""team":"search""#, #""team":"\x""#),
        ("raw tab", #""team":"search""#, "\"team\":\"a\tb\""),
        ("raw newline", #""team":"search""#, "\"team\":\"a\nb\""),
        ("bad escape in a key", #""team":"search""#, #""te\qam":"search""#),
        ("lone surrogate in a key of an unknown member", #""team":"search""#, #""team":"search","\ud800":1"#),
        ("unterminated string", #""team":"search""#, #""team":"search"#),
        // Structure.
        ("missing comma", #""team":"search","#, #""team":"search" "#),
        ("missing colon", #""team":"search""#, #""team" "search""#),
        ("double comma", #""team":"search","#, #""team":"search",,"#),
        ("leading comma", #"{"data":{"#, #"{,"data":{"#),
        ("array with holes", #""team":"search""#, #""team":"search","x":[1,,2]"#),
        ("bad literal", #""stream":true"#, #""stream":tru"#),
        ("literal with a tail", #""stream":true"#, #""stream":truex"#),
        ("unknown value not JSON", #""team":"search""#, #""team":"search","x":undefined"#),
        ("number key", #""team":"search""#, #""team":"search",1:2"#),
        // Envelope.
        ("spec version", #""specversion":"1.0""#, #""specversion":"0.3""#),
        ("event type", #""type":"tollgate.response.v1""#, #""type":"tollgate.request.v1""#),
        ("content type", #""datacontenttype":"application/json""#, #""datacontenttype":"text/plain""#),
        ("no id", #""id":"response:req_01JDQ8Z4N6","#, ""),
        ("no type", #","type":"tollgate.response.v1""#, ""),
        ("no specversion", #""specversion":"1.0","#, ""),
        ("no team", #""team":"search","#, ""),
        ("no timings", #""timings":{"duration_ms":2310,"first_byte_ms":412,"received_at":"2026-11-29T08:00:00.123Z","upstream_ms":2295,"upstream_sent_at":"2026-11-29T08:00:00.131Z"},"#, ""),
        ("no usage count", #""input_tokens":1200,"#, ""),
        ("no routing policy", #""policy":"auto","#, ""),
    ]

    @Test("malformed variants of the full example are rejected by both")
    func malformedEdits() throws {
        let full = try #require(Self.responseExamples.first { $0.0 == "full" }?.1)
        let text = String(decoding: full, as: UTF8.self)
        for (name, find, replace) in Self.malformed {
            #expect(text.contains(find), "\(name): the example no longer contains \(find)")
            let edited = Data(text.replacingOccurrences(of: find, with: replace).utf8)
            #expect(Self.compare(edited) == .bothRejected, "\(name)")
        }
    }

    @Test("trailing garbage, empty and non-object input are rejected by both", arguments: [
        "x", "{}", ",", "\u{0}", " }", "]", " \"x\"",
    ])
    func trailing(suffix: String) throws {
        for (_, json) in Self.responseExamples {
            #expect(Self.compare(json + Data(suffix.utf8)) == .bothRejected, "suffix \(suffix.debugDescription)")
        }
        for text in ["", " ", "[]", "null", "\"event\"", "42", "{", "{}", "\u{FEFF}", " \u{FEFF}{}"] {
            #expect(Self.compare(Data(text.utf8)) == .bothRejected, "\(text.debugDescription)")
        }
    }

    @Test("invalid UTF-8 in a decoded string or key is rejected by both")
    func invalidUTF8() throws {
        let full = try #require(Self.responseExamples.first { $0.0 == "full" }?.1)
        let text = String(decoding: full, as: UTF8.self)
        for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80]] {
            for (find, template) in [(#""team":"search""#, #""team":"se@""#), (#""team":"search""#, #""te@am":"search""#),
                                     (#""env":"prod""#, #""e@nv":"prod""#), (#""env":"prod""#, #""env":"pr@od""#),
                                     (#""team":"search""#, #""team":"a\n@""#),
                                     (#""team":"search""#, #""team":"search","x@":1"#)] {
                let parts = template.split(separator: "@", omittingEmptySubsequences: false)
                let replacement = Data(parts[0].utf8) + Data(bad) + Data(parts[1].utf8)
                let range = try #require(text.range(of: find))
                let edited = Data(text[..<range.lowerBound].utf8) + replacement + Data(text[range.upperBound...].utf8)
                #expect(Self.compare(edited) == .bothRejected, "\(bad) in \(template)")
            }
        }
    }

    // MARK: JSONDecoder's quirks, matched

    /// Inputs `JSONDecoder` reads although they are not strict JSON (or are odd); the fast decoder reads
    /// them the same way.
    static let quirks: [(String, String, String)] = [
        ("trailing comma in an object", #""upstream_sent_at":"2026-11-29T08:00:00.131Z"}"#,
         #""upstream_sent_at":"2026-11-29T08:00:00.131Z",}"#),
        ("trailing comma at the end of data", #","usage_source":"estimated"}"#, #","usage_source":"estimated",}"#),
        ("trailing comma at the end of the envelope", #""type":"tollgate.response.v1"}"#, #""type":"tollgate.response.v1",}"#),
        ("trailing comma in tags", #""feature":"summarize"}"#, #""feature":"summarize",}"#),
        ("integer written with a fraction", #""status":200"#, #""status":200.0"#),
        ("integer written with an exponent", #""duration_ms":2310"#, #""duration_ms":231e1"#),
        ("integer written as 2.31e3", #""duration_ms":2310"#, #""duration_ms":2.31e3"#),
        ("integer with a tiny fraction lost in Double", #""duration_ms":2310"#, #""duration_ms":2310.0000000000001"#),
        ("large integer with a fraction, truncated", #""duration_ms":2310"#, #""duration_ms":9007199254740993.5"#),
        ("large integer with zeros", #""duration_ms":2310"#, #""duration_ms":9007199254740993.0000"#),
        ("negative zero count", #""output_tokens":300"#, #""output_tokens":-0.0"#),
        ("tiny exponent is zero", #""audio_input_tokens":40"#, #""audio_input_tokens":1e-400"#),
        ("Int64.min", #""duration_ms":2310"#, #""duration_ms":-9223372036854775808"#),
        ("repeated key: the first wins", #""team":"search""#, #""team":"search","team":"other""#),
        ("repeated key: the later one is not checked", #""team":"search""#, #""team":"search","team":5"#),
        ("repeated key with null first", #""customer":"acme""#, #""customer":null,"customer":"acme""#),
        ("repeated tag: the first wins", #""env":"prod""#, #""env":"prod","env":7"#),
        ("repeated data", #""type":"tollgate.response.v1""#, #""type":"tollgate.response.v1","data":null"#),
        ("unknown value with a leading zero", #""team":"search""#, #""team":"search","x":01"#),
        ("unknown value with a bad escape", #""team":"search""#, #""team":"search","x":"\q\ud800""#),
        ("unknown value with a raw newline", #""team":"search""#, "\"team\":\"search\",\"x\":\"a\nb\""),
        ("unknown value that is a lone minus", #""team":"search""#, #""team":"search","x":-"#),
        ("unknown number soup", #""team":"search""#, #""team":"search","x":1.2.3e-+"#),
        ("unknown nested object with a trailing comma", #""team":"search""#, #""team":"search","x":{"a":[1,],}"#),
        ("escaped key", #""team":"search""#, #""te\u0061m":"search""#),
        ("escaped slash", #""endpoint":"/v1/chat/completions""#, #""endpoint":"\/v1\/chat\/completions""#),
        ("null data content type", #""datacontenttype":"application/json""#, #""datacontenttype":null"#),
        ("null subject", #""subject":"search""#, #""subject":null"#),
    ]

    @Test("JSONDecoder's leniencies are matched")
    func quirkEdits() throws {
        let full = try #require(Self.responseExamples.first { $0.0 == "full" }?.1)
        let text = String(decoding: full, as: UTF8.self)
        for (name, find, replace) in Self.quirks {
            #expect(text.contains(find), "\(name): the example no longer contains \(find)")
            let edited = Data(text.replacingOccurrences(of: find, with: replace).utf8)
            #expect(Self.compare(edited) == .sameEvent, "\(name)")
        }
        // A byte order mark, and UTF-16 (handed to JSONDecoder).
        #expect(Self.compare(Data([0xEF, 0xBB, 0xBF]) + full) == .sameEvent)
        var utf16 = Data([0xFF, 0xFE])
        for unit in text.utf16 { utf16.append(contentsOf: [UInt8(unit & 0xFF), UInt8(unit >> 8)]) }
        #expect(Self.compare(utf16) == .sameEvent)
        var utf16BE = Data()
        for unit in text.utf16 { utf16BE.append(contentsOf: [UInt8(unit >> 8), UInt8(unit & 0xFF)]) }
        #expect(Self.compare(utf16BE) == .sameEvent)
    }

    @Test("nesting: 512 levels in an unknown member are read, deeper is rejected, by both")
    func nesting() throws {
        let full = try #require(Self.responseExamples.first { $0.0 == "full" }?.1)
        let text = String(decoding: full, as: UTF8.self)
        var outcomes: [Int: Outcome] = [:]
        for levels in [505, 508, 509, 510, 511, 512, 600] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let deep = String(repeating: open, count: levels) + "1" + String(repeating: close, count: levels)
                for (find, prefix) in [(#""team":"search""#, #""team":"search","x":"#), (#""env":"prod""#, #""env":"prod","x":"#),
                                       (#""specversion":"1.0""#, #""specversion":"1.0","x":"#)] {
                    let edited = Data(text.replacingOccurrences(of: find, with: prefix + deep).utf8)
                    let outcome = Self.compare(edited)
                    #expect(outcome != .mismatch, "\(levels) levels of \(open) after \(find)")
                    outcomes[levels] = outcome
                }
            }
        }
        #expect(outcomes[505] == .sameEvent)
        #expect(outcomes[600] == .bothRejected)
    }

    @Test("random byte edits of the examples: the same event or both reject")
    func fuzz() throws {
        var generator = SplitMix(seed: 20_261_129)
        let alphabet = Array("{}[],:\"\\0123456789-+.eEntrufalsx /uUdD8F\t\n ".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xFF]
        var counts: [Outcome: Int] = [:]
        for (name, json) in Self.responseExamples {
            let bytes = Array(json)
            for round in 0..<3_000 {
                var edited = bytes
                for _ in 0..<(1 + Int(generator.next() % 3)) {
                    let position = Int(generator.next() % UInt64(edited.count))
                    let byte = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                    switch generator.next() % 4 {
                    case 0: edited.remove(at: position)
                    case 1: edited.insert(byte, at: position)
                    case 2: edited[position] = byte
                    default:
                        let length = min(Int(generator.next() % 12) + 1, edited.count - position)
                        edited.insert(contentsOf: edited[position..<(position + length)], at: position)
                    }
                }
                let outcome = Self.compare(Data(edited))
                counts[outcome, default: 0] += 1
                #expect(outcome != .mismatch,
                        "\(name) round \(round): \(String(decoding: edited, as: UTF8.self).debugDescription)")
            }
        }
        #expect(counts[.sameEvent, default: 0] > 100)
        #expect(counts[.bothRejected, default: 0] > 100)
    }

    // MARK: Support

    enum Outcome: Hashable {
        case sameEvent
        case bothRejected
        case mismatch
    }

    /// Decodes with both decoders: the same event, or both throwing (with the same `EventDecodingError` when
    /// the reference throws one), or a mismatch.
    static func compare(_ data: Data) -> Outcome {
        compare(data, ResponseData.self, fast: EventCoding.decodeResponse(from:))
    }

    /// The fast decoder's outcome next to `EventCoding.decode`'s for the same bytes.
    static func compare<Payload: EventPayload>(_ data: Data, _ type: Payload.Type,
                                               fast decodeFast: (Data) throws -> CloudEvent<Payload>) -> Outcome {
        let reference = Result { try EventCoding.decode(Payload.self, from: data) }
        let fast = Result { try decodeFast(data) }
        switch (reference, fast) {
        case (.success(let a), .success(let b)):
            return a == b ? .sameEvent : .mismatch
        case (.failure(let a), .failure(let b)):
            if let envelope = a as? EventDecodingError { return envelope == b as? EventDecodingError ? .bothRejected : .mismatch }
            return .bothRejected
        default:
            return .mismatch
        }
    }

    static var responseExamples: [(String, Data)] {
        EventExamples.all.filter { $0.type == ResponseData.eventType }.map { ($0.name, $0.json) }
    }

    static var minimalTree: JSONValue {
        // The minimal example exists (the examples test checks it).
        (try? JSONValue(parsing: responseExamples.first { $0.0 == "minimal" }?.1 ?? Data())) ?? .null
    }

    static let styles: [(String, JSONText.Style)] = [
        ("compact", .init()),
        ("whitespace everywhere", .init(space: " \n\t\r ")),
        ("one space", .init(space: " ")),
        ("reversed keys", .init(order: .reversed)),
        ("shuffled keys 1", .init(order: .shuffled(1))),
        ("shuffled keys 2", .init(order: .shuffled(2), space: "\n")),
        ("unknown keys", .init(unknownKeys: true)),
        ("unknown keys, shuffled, spaced", .init(order: .shuffled(3), space: "  ", unknownKeys: true)),
        ("repeated keys", .init(repeatedKeys: true)),
        ("non-ASCII escaped", .init(escapes: .nonASCII)),
        ("everything escaped", .init(escapes: .all)),
        ("keys escaped too", .init(escapes: .all, escapeKeys: true)),
        ("integers as 1.0", .init(integers: .fraction)),
        ("integers as 1e0", .init(integers: .exponent)),
        ("integers as 10e-1", .init(integers: .scaledExponent)),
        ("everything at once", .init(order: .shuffled(4), space: "\t", unknownKeys: true, repeatedKeys: true,
                                     escapes: .all, escapeKeys: true, integers: .fraction)),
    ]

    static func event(text: String) -> CloudEvent<ResponseData> {
        let timings = ResponseData.Timings(receivedAt: Date(timeIntervalSince1970: 1_795_000_000.125),
                                           upstreamSentAt: nil, firstByteMs: 12, durationMs: 34, upstreamMs: nil)
        let data = ResponseData(
            requestID: "req_\(text)", keyID: text.isEmpty ? "k" : text, team: text, project: "p", customer: text,
            tags: ["Zeta": text, "alpha": "1", text: "key", "é": "3"],
            provider: .anthropic, endpoint: "/v1/messages", requestedModel: text, servedModel: text, stream: true,
            status: 429, outcome: .providerError, errorType: text, serviceTier: nil, timings: timings,
            usage: TokenUsage(inputTokens: 10, reasoningTokens: Int64.max), usageSource: .estimated,
            routing: .init(policy: text, reason: "r", downgradedFrom: text))
        return CloudEvent(id: "response:\(text)", source: "tollgate/ingress/h",
                          time: Date(timeIntervalSince1970: 1_795_000_001.25), subject: text, data: data)
    }
}

extension JSONValue {
    /// This value with the member at `path` replaced, or removed when `value` is nil.
    func replacing(_ path: [String], with value: JSONValue?) -> JSONValue {
        guard let key = path.first, case .object(var object) = self else { return self }
        if path.count == 1 {
            object[key] = value
        } else if let child = object[key] {
            object[key] = child.replacing(Array(path.dropFirst()), with: value)
        }
        return .object(object)
    }
}

/// Writes JSON text in assorted legal styles.
enum JSONText {
    struct Style {
        enum Order { case sorted, reversed, shuffled(UInt64) }
        enum Escapes { case minimal, nonASCII, all }
        enum Integers { case plain, fraction, exponent, scaledExponent }
        var order: Order = .sorted
        var space = ""
        var unknownKeys = false
        var repeatedKeys = false
        var escapes: Escapes = .minimal
        var escapeKeys = false
        var integers: Integers = .plain
    }

    static func write(_ value: JSONValue, style: Style) -> String {
        var generator = SplitMix(seed: { if case .shuffled(let seed) = style.order { return seed } else { return 0 } }())
        var output = ""
        write(value, style: style, key: nil, generator: &generator, to: &output)
        return output
    }

    private static let unknownValues = [
        #"{"nested":[1,-2.5e3,true,false,null,{"deep":["\u00e9\ud83d\ude80\"\\"]}],"x":{}}"#, "[]", "-0.5E-7",
        #""text with \"escapes\" \/ \n""#, "null", "true", "12345678901234567890123",
    ]

    /// `key` is the member name `value` is written under (tags get no unknown keys: every tag is data).
    private static func write(_ value: JSONValue, style: Style, key parent: String?, generator: inout SplitMix,
                              to output: inout String) {
        switch value {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .int(let number):
            // JSONDecoder reads an integer with a fraction or exponent through Double, so only values
            // below 2^53 / 10 are exact in every form; larger ones keep the plain form.
            switch number.magnitude < 900_000_000_000_000 ? style.integers : .plain {
            case .plain: output += "\(number)"
            case .fraction: output += "\(number).0"
            case .exponent: output += "\(number)e0"
            case .scaledExponent: output += number == 0 ? "0e-1" : "\(number)0e-1"
            }
        case .double(let number): output += "\(number)"
        case .string(let text): output += string(text, escapes: style.escapes)
        case .array(let items):
            output += "[" + style.space
            for (index, item) in items.enumerated() {
                if index > 0 { output += style.space + "," + style.space }
                write(item, style: style, key: nil, generator: &generator, to: &output)
            }
            output += style.space + "]"
        case .object(let object):
            var keys = object.keys.sorted()
            switch style.order {
            case .sorted: break
            case .reversed: keys.reverse()
            case .shuffled: keys.shuffle(using: &generator)
            }
            var members: [(String, String)] = []
            for key in keys {
                var text = ""
                write(object[key]!, style: style, key: key, generator: &generator, to: &text)
                members.append((key, text))
                if style.repeatedKeys { members.append((key, "\"repeated\"")) }
            }
            if style.unknownKeys && parent != "tags" {
                for (index, unknown) in unknownValues.enumerated() {
                    let position = Int(generator.next() % UInt64(members.count + 1))
                    members.insert(("zz_unknown_\(index)", unknown), at: position)
                }
            }
            output += "{" + style.space
            for (index, (key, text)) in members.enumerated() {
                if index > 0 { output += style.space + "," + style.space }
                output += string(key, escapes: style.escapeKeys ? style.escapes : .minimal)
                output += style.space + ":" + style.space + text
            }
            output += style.space + "}"
        }
    }

    private static func string(_ text: String, escapes: Style.Escapes) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            let needsEscape = scalar.value < 0x20 || scalar == "\"" || scalar == "\\"
            if escapes == .all || needsEscape || (escapes == .nonASCII && scalar.value >= 0x80) {
                for unit in String(scalar).utf16 { output += String(format: "\\u%04x", unit) }
            } else {
                output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }
}

/// A small seeded generator, so the generated cases are the same on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
