import Foundation
import Testing
@testable import TollgateProviders

@Suite("SSE parser")
struct SSEParserTests {
    /// (event, data) of the events of the `sse/quirks-*.sse` fixtures, whatever their line endings.
    static let quirksEvents: [(String?, String)] = [
        (nil, ""),  // comment + retry
        ("greeting", "first line\nsecond line without space\n two spaces keep one"),
        (nil, ""),  // a stray blank line
        (nil, ""),  // `data` without a colon: one empty data line
        (nil, ""),  // keep-alive comment
        ("tick", "{\"n\": 1, \"text\": \"caf\u{E9} \u{2014} \u{1F600}\"}"),
        (nil, ": not a comment inside data\ncolon: inside"),
    ]

    @Test("fields, comments, multi-line data and the optional space", arguments: [
        "sse/quirks-lf.sse", "sse/quirks-crlf.sse", "sse/quirks-cr.sse",
    ])
    func quirks(path: String) throws {
        let bytes = [UInt8](try Fixture.data(path))
        let events = SSEParser.parse(bytes)
        #expect(events.count == Self.quirksEvents.count)
        for (event, expected) in zip(events, Self.quirksEvents) {
            #expect(event.event == expected.0)
            #expect(event.data == expected.1)
        }
        #expect(events.flatMap { [UInt8]($0.raw) } == bytes)
    }

    @Test("each event's raw bytes end with its blank line")
    func rawIncludesTerminator() throws {
        let events = SSEParser.parse([UInt8](try Fixture.data("sse/quirks-crlf.sse")))
        for event in events {
            #expect(event.raw.suffix(2) == Data("\r\n".utf8))
        }
        #expect(String(decoding: events[1].raw, as: UTF8.self).hasPrefix("event: greeting\r\nid: 1\r\n"))
        #expect(String(decoding: events[1].raw, as: UTF8.self).hasSuffix("keep one\r\n\r\n"))
    }

    @Test("mixed line endings in one stream")
    func mixedEndings() throws {
        let events = SSEParser.parse([UInt8](try Fixture.data("sse/mixed-endings.sse")))
        #expect(events.map(\.data) == ["a\nb", "c", "d"])
        #expect(events.map(\.event) == [nil, "e", nil])
        #expect(events.map { String(decoding: $0.raw, as: UTF8.self) }
            == ["data: a\r\ndata: b\n\r\n", "event: e\rdata: c\r\r\n", "data: d\n\n"])
    }

    @Test("every split into two chunks gives the same events", arguments: Fixture.streams)
    func everyTwoChunkSplit(path: String) throws {
        let bytes = [UInt8](try Fixture.data(path))
        let reference = SSEParser.parse(bytes)
        #expect(!reference.isEmpty)
        #expect(reference.flatMap { [UInt8]($0.raw) } == bytes)
        for cut in 0...bytes.count {
            let events = SSEParser.parse(bytes, cuts: [cut])
            #expect(events == reference, "split at byte \(cut)")
            if events != reference { return }
        }
    }

    @Test("one byte at a time, and random chunkings, give the same events", arguments: Fixture.streams)
    func manyChunkings(path: String) throws {
        let bytes = [UInt8](try Fixture.data(path))
        let reference = SSEParser.parse(bytes)
        #expect(SSEParser.parse(bytes, cuts: Array(0..<bytes.count)) == reference)
        var random = SplitMix64(seed: 0x55E)
        for _ in 0..<200 {
            let cuts = (0..<Int.random(in: 2...12, using: &random)).map { _ in Int.random(in: 0...bytes.count, using: &random) }
            #expect(SSEParser.parse(bytes, cuts: cuts.sorted()) == reference, "cuts \(cuts.sorted())")
        }
    }

    @Test("an event is returned by the chunk that completes it")
    func eventsArriveAsSoonAsComplete() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: one\n".utf8)).isEmpty)
        let first = parser.feed(Array("\ndata: tw".utf8))
        #expect(first.map(\.data) == ["one"])
        #expect(parser.feed(Array("o\n\ndata: three\n\n".utf8)).map(\.data) == ["two", "three"])
        #expect(parser.finish().isEmpty)
    }

    @Test("a CRLF split between chunks is one line ending")
    func crlfSplitAcrossChunks() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: x\r".utf8)).isEmpty)
        #expect(parser.feed(Array("\n\r".utf8)).isEmpty)  // the blank line's \r: a \n may follow
        let events = parser.feed(Array("\ndata: y\r\n\r\n".utf8))
        #expect(events.map(\.data) == ["x", "y"])
        #expect(events.map { String(decoding: $0.raw, as: UTF8.self) } == ["data: x\r\n\r\n", "data: y\r\n\r\n"])
    }

    @Test("a blank line ended by a lone CR at the end of input is returned by finish()")
    func pendingCarriageReturnAtEnd() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: x\r\r".utf8)).isEmpty)
        let events = parser.finish()
        #expect(events.map(\.data) == ["x"])
        #expect(events.first?.raw == Data("data: x\r\r".utf8))
    }

    @Test("a lone CR followed by another line is a line ending")
    func carriageReturnThenText() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: x\r".utf8)).isEmpty)
        #expect(parser.feed(Array("data: y\r\r".utf8)).isEmpty)
        #expect(parser.feed(Array("data: z".utf8)).map(\.data) == ["x\ny"])
    }

    @Test("finish() returns a final event cut before its blank line")
    func cutStream() {
        var parser = SSEParser()
        var events = parser.feed(Array("data: {\"a\":1}\n\nevent: message_stop\ndata: [DONE]".utf8))
        #expect(events.map(\.data) == ["{\"a\":1}"])
        events = parser.finish()
        #expect(events.count == 1)
        #expect(events.first?.event == "message_stop")
        #expect(events.first?.data == "[DONE]")
        #expect(events.first?.raw == Data("event: message_stop\ndata: [DONE]".utf8))
        #expect(parser.finish().isEmpty)
        // The parser is reset: a new stream starts clean.
        #expect(parser.feed(Array("data: new\n\n".utf8)).map(\.event) == [nil])
    }

    @Test("finish() with a last line ended but no blank line")
    func cutAfterLineEnding() {
        var parser = SSEParser()
        #expect(parser.feed(Array("event: e\ndata: d\n".utf8)).isEmpty)
        let events = parser.finish()
        #expect(events.map(\.data) == ["d"])
        #expect(events.map(\.event) == ["e"])
    }

    @Test("a byte order mark at the start is ignored, even split across chunks")
    func byteOrderMark() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("data: hi\n\ndata: there\n\n".utf8)
        for cut in 0...bytes.count {
            let events = SSEParser.parse(bytes, cuts: [cut])
            #expect(events.map(\.data) == ["hi", "there"])
            #expect(events.flatMap { [UInt8]($0.raw) } == bytes)
        }
        // Only at the very start.
        let later = SSEParser.parse(Array("data: a\n\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("data: b\n\n".utf8))
        #expect(later.map(\.data) == ["a", ""])
    }

    @Test("bytes that are not an event stream do not trap and are all returned")
    func notAnEventStream() throws {
        var random = SplitMix64(seed: 42)
        var garbage: [UInt8] = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        garbage += Array("{\"error\": {\"message\": \"not sse\"}}\n\n<html>\r\n</html>".utf8)
        for _ in 0..<20 {
            let cuts = (0..<8).map { _ in Int.random(in: 0...garbage.count, using: &random) }.sorted()
            let events = SSEParser.parse(garbage, cuts: cuts)
            #expect(events.flatMap { [UInt8]($0.raw) } == garbage)
        }
        let json = Array("{\n  \"error\": {\"type\": \"x\"}\n}".utf8)
        let events = SSEParser.parse(json)
        #expect(events.allSatisfy { $0.data.isEmpty })
        #expect(events.flatMap { [UInt8]($0.raw) } == json)
        var parser = SSEParser()
        #expect(parser.feed([UInt8]()).isEmpty)
        #expect(parser.finish().isEmpty)
    }

    @Test("invalid UTF-8 in data is replaced, not trapped on")
    func invalidUTF8InData() {
        let events = SSEParser.parse(Array("data: ".utf8) + [0xFF, 0xC3] + Array("\n\n".utf8))
        #expect(events.count == 1)
        #expect(events.first?.data == "\u{FFFD}\u{FFFD}")
    }

    @Test("a large stream in network-sized chunks")
    func largeStream() {
        let event = Array("data: {\"choices\":[{\"delta\":{\"content\":\"token\"}}]}\n\n".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(event.count * 20_000)
        for _ in 0..<20_000 { bytes += event }
        var parser = SSEParser()
        var count = 0
        var start = 0
        while start < bytes.count {
            let end = min(start + 16_384, bytes.count)
            count += parser.feed(bytes[start..<end]).count
            start = end
        }
        count += parser.finish().count
        #expect(count == 20_000)
    }
}
