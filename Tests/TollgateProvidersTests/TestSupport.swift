import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

/// The hand-written fixtures under `Fixtures/` (copied into the test bundle).
enum Fixture {
    struct Missing: Error, CustomStringConvertible {
        var path: String
        var description: String { "fixture \(path) not found" }
    }

    /// The bytes of `Fixtures/<path>`, e.g. `openai/chat-request.json`.
    static func data(_ path: String) throws -> Data {
        guard let base = Bundle.module.resourceURL else { throw Missing(path: path) }
        let url = base.appendingPathComponent("Fixtures").appendingPathComponent(path)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw Missing(path: path) }
        return data
    }

    /// Every fixture path with the given extension under `Fixtures/<directory>` (or all directories).
    static func paths(withExtension ext: String) throws -> [String] {
        guard let base = Bundle.module.resourceURL?.appendingPathComponent("Fixtures") else { return [] }
        var result: [String] = []
        for directory in try FileManager.default.contentsOfDirectory(atPath: base.path).sorted() {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: base.appendingPathComponent(directory).path)) ?? []
            for file in files.sorted() where file.hasSuffix("." + ext) {
                result.append(directory + "/" + file)
            }
        }
        return result
    }

    /// Every `.sse` fixture (kept in one list so a parameterized test names each one).
    static let streams: [String] = [
        "openai/chat-stream-text.sse", "openai/chat-stream-tools.sse", "openai/chat-stream-no-usage.sse",
        "openai/completions-stream.sse", "openai/responses-stream.sse",
        "anthropic/messages-stream.sse", "anthropic/messages-stream-legacy.sse",
        "gemini/stream.sse",
        "sse/quirks-lf.sse", "sse/quirks-crlf.sse", "sse/quirks-cr.sse", "sse/mixed-endings.sse",
    ]
}

extension SSEParser {
    /// Parses `bytes` fed in chunks that end at `cuts` (ascending offsets), then finishes.
    static func parse(_ bytes: [UInt8], cuts: [Int] = []) -> [SSEEvent] {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        var start = 0
        for cut in cuts + [bytes.count] where cut >= start {
            events += parser.feed(bytes[start..<cut])
            start = cut
        }
        return events + parser.finish()
    }
}

/// What a meter concluded from a whole stream.
struct MeterOutcome: Hashable, CustomStringConvertible {
    var usage: TokenUsage?
    var servedModel: String?
    var completed: Bool
    var outputCharacters: Int
    /// Indices of the events the meter dropped.
    var dropped: [Int]

    var description: String {
        "usage=\(usage.map { "\($0)" } ?? "nil") model=\(servedModel ?? "nil") completed=\(completed) "
            + "chars=\(outputCharacters) dropped=\(dropped)"
    }

    init(usage: TokenUsage?, servedModel: String?, completed: Bool, outputCharacters: Int, dropped: [Int] = []) {
        self.usage = usage
        self.servedModel = servedModel
        self.completed = completed
        self.outputCharacters = outputCharacters
        self.dropped = dropped
    }

    init(meter: some StreamMeter, events: [SSEEvent]) {
        var meter = meter
        var dropped: [Int] = []
        for (index, event) in events.enumerated() where meter.observe(event) == .drop {
            dropped.append(index)
        }
        self.init(usage: meter.usage, servedModel: meter.servedModel, completed: meter.completed,
                  outputCharacters: meter.outputCharacters, dropped: dropped)
    }
}

/// Facts for a streamed request, as the dialects would derive them.
func streamFacts(clientRequestedStreamUsage: Bool = false) -> RequestFacts {
    RequestFacts(model: "m", stream: true, maxOutputTokens: nil, toolCount: 0, user: nil, estimatedInputTokens: 0,
                 clientRequestedStreamUsage: clientRequestedStreamUsage)
}

/// A JSON document parsed with Foundation, for checking shapes independently of the code under test.
func jsonObject(_ data: Data) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    guard let object = value as? [String: Any] else {
        throw Fixture.Missing(path: "not a JSON object: \(String(decoding: data, as: UTF8.self))")
    }
    return object
}

/// A deterministic pseudo-random generator (tests must not depend on the run).
struct SplitMix64: RandomNumberGenerator {
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
