internal import Foundation

/// An incremental parser of `text/event-stream` bytes, for relaying a stream while reading it.
///
/// Feed it the response body chunk by chunk as it arrives; each call returns the events that the
/// chunk completed. An event ends at a blank line. Every event carries its exact bytes in
/// ``SSEEvent/raw`` — its field lines, comments and the blank line that ended it — so a relay that
/// forwards `raw` of every event, in order, forwards the stream byte for byte: the concatenation of
/// the `raw` of all events returned by ``feed(_:)`` and ``finish()`` is exactly the input. That is
/// why blocks with no data (comment-only keep-alives such as `: ping`, stray blank lines) are
/// returned too, as events whose `data` is empty.
///
/// Parsing follows the WHATWG rules for event streams:
/// - lines end with `\n`, `\r\n` or `\r`, and a `\r\n` split across two chunks is one line ending;
/// - a line starting with `:` is a comment;
/// - `field: value` with at most one space after the colon removed, `field` alone meaning an empty
///   value; `data` lines are joined with `\n`, `event` sets ``SSEEvent/event``, other fields (`id`,
///   `retry`, unknown ones) are ignored;
/// - a UTF-8 byte order mark at the very start of the stream is ignored (it stays in `raw`).
///
/// Bytes that are not an event stream at all never trap: they come back as events with empty data,
/// at blank lines or from ``finish()``.
///
/// One latency note: when a chunk ends with the `\r` of a blank line, the parser cannot yet tell
/// whether a `\n` follows, so that event is returned by the next ``feed(_:)`` (or by ``finish()``).
/// Streams with `\n` line endings (OpenAI, Anthropic) are never delayed; with `\r\n` (Gemini) only
/// when the network splits the pair.
///
/// ```swift
/// var parser = SSEParser()
/// for try await chunk in body {
///     for event in parser.feed(chunk) where meter.observe(event) == .forward {
///         try await writer.write(event.raw)
///     }
/// }
/// for event in parser.finish() where meter.observe(event) == .forward { … }
/// ```
///
/// The parser copies each chunk once into its buffer and scans it once; per event it allocates the
/// event's `raw`, `data` and `event` values, never per byte.
public struct SSEParser: Sendable {
    /// Bytes from the start of the event in progress to the end of the input so far.
    private var buffer: [UInt8] = []
    /// Offset in `buffer` of the first byte of the event in progress (always 0 between calls).
    private var eventStart = 0
    /// Offset in `buffer` of the first byte of the line in progress.
    private var lineStart = 0
    /// Offset in `buffer` up to which line endings have been looked for.
    private var scanned = 0
    /// The last line ended with `\r` at the end of the input: a `\n` right after belongs to it.
    private var skipLineFeed = false
    /// A blank line ended with `\r` at the end of the input: dispatch once the next byte is known.
    private var dispatchPending = false
    /// No line of the stream has been read yet (a byte order mark may come first).
    private var atStreamStart = true
    private var eventName: String?
    private var data: [UInt8] = []
    private var hasData = false

    public init() {}

    /// Parses the next bytes of the stream; returns the events they complete, in order.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [SSEEvent] {
        guard !bytes.isEmpty else { return [] }
        buffer.append(contentsOf: bytes)
        var events: [SSEEvent] = []
        scan(into: &events)
        compact()
        return events
    }

    /// Ends the stream: returns the event in progress, if any bytes of it arrived (a stream cut
    /// before its final blank line), and resets the parser.
    public mutating func finish() -> [SSEEvent] {
        var events: [SSEEvent] = []
        if dispatchPending {
            dispatchPending = false
            dispatch(upTo: buffer.count, into: &events)
        } else if eventStart < buffer.count {
            if !skipLineFeed && lineStart < buffer.count {
                line(lineStart..<buffer.count)
            }
            dispatch(upTo: buffer.count, into: &events)
        }
        self = SSEParser()
        return events
    }

    private mutating func scan(into events: inout [SSEEvent]) {
        var i = scanned
        let count = buffer.count
        if dispatchPending, i < count {
            dispatchPending = false
            skipLineFeed = false
            if buffer[i] == .lineFeed { i += 1 }
            dispatch(upTo: i, into: &events)
            lineStart = i
        }
        if skipLineFeed, i < count {
            skipLineFeed = false
            if buffer[i] == .lineFeed {
                i += 1
                lineStart = i
            }
        }
        while i < count {
            guard let end = Self.nextLineEnding(in: buffer, from: i) else {
                i = count
                break
            }
            var next = end + 1
            var crAtEndOfInput = false
            if buffer[end] == .carriageReturn {
                if next < count {
                    if buffer[next] == .lineFeed { next += 1 }
                } else {
                    crAtEndOfInput = true
                }
            }
            var contentStart = lineStart
            if atStreamStart {
                atStreamStart = false
                if end - lineStart >= 3, buffer[lineStart] == 0xEF, buffer[lineStart + 1] == 0xBB,
                   buffer[lineStart + 2] == 0xBF
                {
                    contentStart += 3
                }
            }
            if contentStart == end {
                if crAtEndOfInput {
                    dispatchPending = true
                    i = next
                    lineStart = next
                    break
                }
                dispatch(upTo: next, into: &events)
            } else {
                line(contentStart..<end)
                skipLineFeed = crAtEndOfInput
            }
            i = next
            lineStart = next
        }
        scanned = i
    }

    /// The offset of the next `\r` or `\n` at or after `start`.
    private static func nextLineEnding(in buffer: [UInt8], from start: Int) -> Int? {
        buffer.withUnsafeBufferPointer { bytes in
            var i = start
            while i < bytes.count {
                let b = bytes[i]
                if b == .lineFeed || b == .carriageReturn { return i }
                i += 1
            }
            return nil
        }
    }

    /// Interprets one non-blank line (without its line ending).
    private mutating func line(_ whole: Range<Int>) {
        var range = whole
        if atStreamStart {
            atStreamStart = false
            if range.count >= 3, buffer[range.lowerBound] == 0xEF, buffer[range.lowerBound + 1] == 0xBB,
               buffer[range.lowerBound + 2] == 0xBF
            {
                range = (range.lowerBound + 3)..<range.upperBound
            }
        }
        guard !range.isEmpty, buffer[range.lowerBound] != .colon else { return }  // comment
        var colon = range.upperBound
        for i in range where buffer[i] == .colon {
            colon = i
            break
        }
        let name = range.lowerBound..<colon
        var valueStart = min(colon + 1, range.upperBound)
        if valueStart < range.upperBound, buffer[valueStart] == .space { valueStart += 1 }
        let value = valueStart..<range.upperBound
        if matches(name, "data") {
            if hasData { data.append(.lineFeed) }
            data.append(contentsOf: buffer[value])
            hasData = true
        } else if matches(name, "event") {
            eventName = value.isEmpty ? nil : String(decoding: buffer[value], as: UTF8.self)
        }
    }

    private func matches(_ range: Range<Int>, _ name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        return name.withUTF8Buffer { expected in
            for (offset, byte) in expected.enumerated() where buffer[range.lowerBound + offset] != byte {
                return false
            }
            return true
        }
    }

    private mutating func dispatch(upTo end: Int, into events: inout [SSEEvent]) {
        let raw = Data(buffer[eventStart..<end])
        events.append(SSEEvent(raw: raw, event: eventName, data: String(decoding: data, as: UTF8.self)))
        eventStart = end
        eventName = nil
        data.removeAll(keepingCapacity: true)
        hasData = false
    }

    /// Drops the bytes of events already returned.
    private mutating func compact() {
        guard eventStart > 0 else { return }
        if eventStart == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else {
            buffer.removeSubrange(0..<eventStart)
        }
        lineStart -= eventStart
        scanned -= eventStart
        eventStart = 0
    }
}
