internal import Foundation

/// One member of a JSON object, located by byte offsets into the document.
struct JSONMember: Sendable, Hashable {
    /// The key's string literal, quotes included.
    var keyRange: Range<Int>
    /// The key contains a backslash escape (compare it decoded, not byte by byte).
    var keyIsEscaped: Bool
    /// The value's bytes, from its first to its last byte (no surrounding whitespace).
    var valueRange: Range<Int>
}

/// A JSON object located by byte offsets: its braces and its members in document order.
struct JSONObjectLayout: Sendable, Hashable {
    /// Offset of `{`.
    var open: Int
    /// Offset of `}`.
    var close: Int
    var members: [JSONMember]
}

/// A small scanner that finds the structure of JSON text without building a tree.
///
/// It locates an object's members and each value's byte range (strings with escapes, nested
/// objects and arrays, numbers, literals), so that a body can be rewritten member by member while
/// every other byte stays as it arrived. It is lenient: it assumes the document was validated
/// elsewhere and answers `nil` when the bytes do not have the expected shape, never traps.
///
/// Use it inside `Data.withUnsafeBytes`: the buffer must outlive the scanner.
struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Runs `body` with a scanner over `data`'s bytes.
    static func with<R>(_ data: Data, _ body: (JSONScanner) -> R) -> R {
        data.withUnsafeBytes { raw in
            body(JSONScanner(raw.assumingMemoryBound(to: UInt8.self)))
        }
    }

    /// The first offset at or after `index` that is not JSON whitespace.
    func skipWhitespace(from index: Int) -> Int {
        var i = index
        while i < bytes.count {
            switch bytes[i] {
            case .space, .tab, .lineFeed, .carriageReturn: i += 1
            default: return i
            }
        }
        return i
    }

    /// The end (one past the closing quote) of the string literal whose opening quote is at `index`.
    func stringEnd(from index: Int) -> (end: Int, escaped: Bool)? {
        guard index < bytes.count, bytes[index] == .quote else { return nil }
        var i = index + 1
        var escaped = false
        while i < bytes.count {
            switch bytes[i] {
            case .quote: return (i + 1, escaped)
            case .backslash:
                escaped = true
                i += 2
            default: i += 1
            }
        }
        return nil
    }

    /// The end (one past the last byte) of the value starting at `index` (which must not be whitespace).
    func valueEnd(from index: Int) -> Int? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case .quote:
            return stringEnd(from: index)?.end
        case .openBrace, .openBracket:
            var depth = 0
            var i = index
            while i < bytes.count {
                switch bytes[i] {
                case .quote:
                    guard let end = stringEnd(from: i)?.end else { return nil }
                    i = end
                    continue
                case .openBrace, .openBracket:
                    depth += 1
                case .closeBrace, .closeBracket:
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default: break
                }
                i += 1
            }
            return nil
        case .comma, .colon, .closeBrace, .closeBracket:
            return nil
        default:
            // A number or a literal (true, false, null): up to the next delimiter.
            var i = index
            while i < bytes.count {
                switch bytes[i] {
                case .comma, .closeBrace, .closeBracket, .space, .tab, .lineFeed, .carriageReturn:
                    return i
                default: i += 1
                }
            }
            return i
        }
    }

    /// The members of the object whose `{` is at `index`.
    func object(at index: Int) -> JSONObjectLayout? {
        guard index < bytes.count, bytes[index] == .openBrace else { return nil }
        var members: [JSONMember] = []
        var i = skipWhitespace(from: index + 1)
        guard i < bytes.count else { return nil }
        if bytes[i] == .closeBrace {
            return JSONObjectLayout(open: index, close: i, members: [])
        }
        while true {
            guard let key = stringEnd(from: i) else { return nil }
            let keyRange = i..<key.end
            i = skipWhitespace(from: key.end)
            guard i < bytes.count, bytes[i] == .colon else { return nil }
            let valueStart = skipWhitespace(from: i + 1)
            guard let valueEnd = valueEnd(from: valueStart) else { return nil }
            members.append(JSONMember(keyRange: keyRange, keyIsEscaped: key.escaped, valueRange: valueStart..<valueEnd))
            i = skipWhitespace(from: valueEnd)
            guard i < bytes.count else { return nil }
            if bytes[i] == .comma {
                i = skipWhitespace(from: i + 1)
            } else if bytes[i] == .closeBrace {
                return JSONObjectLayout(open: index, close: i, members: members)
            } else {
                return nil
            }
        }
    }

    /// The document's top-level object (after optional leading whitespace).
    func rootObject() -> JSONObjectLayout? {
        object(at: skipWhitespace(from: 0))
    }

    /// Whether `member`'s key is `name` (escaped keys are decoded first, so `"mod\u0065l"` is `model`).
    func key(of member: JSONMember, is name: String) -> Bool {
        if member.keyIsEscaped {
            return decodeString(literal: member.keyRange) == name
        }
        let content = (member.keyRange.lowerBound + 1)..<(member.keyRange.upperBound - 1)
        var utf8 = name.utf8.makeIterator()
        for i in content {
            guard let expected = utf8.next(), expected == bytes[i] else { return false }
        }
        return utf8.next() == nil
    }

    /// The members of `object` whose key is `name`, in document order (JSON allows duplicates).
    func members(of object: JSONObjectLayout, named name: String) -> [JSONMember] {
        object.members.filter { key(of: $0, is: name) }
    }

    /// The first byte of a value, which tells its JSON type.
    func firstByte(of range: Range<Int>) -> UInt8? {
        range.isEmpty ? nil : bytes[range.lowerBound]
    }

    /// Whether the value at `range` is the literal `true`.
    func isTrue(_ range: Range<Int>) -> Bool {
        range.count == 4 && bytes[range.lowerBound] == UInt8(ascii: "t")
    }

    /// Decodes the string literal at `literal` (quotes included); `nil` if it is not a valid literal.
    func decodeString(literal: Range<Int>) -> String? {
        guard literal.count >= 2, bytes[literal.lowerBound] == .quote, bytes[literal.upperBound - 1] == .quote else {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(literal.count)
        var i = literal.lowerBound + 1
        let end = literal.upperBound - 1
        while i < end {
            let b = bytes[i]
            guard b == .backslash else {
                out.append(b)
                i += 1
                continue
            }
            guard i + 1 < end else { return nil }
            let e = bytes[i + 1]
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(.lineFeed)
            case UInt8(ascii: "r"): out.append(.carriageReturn)
            case UInt8(ascii: "t"): out.append(.tab)
            case UInt8(ascii: "u"):
                guard let unit = hex4(at: i + 2, end: end) else { return nil }
                var scalarValue = UInt32(unit)
                var consumed = 6
                if (0xD800..<0xDC00).contains(unit), i + 12 <= end, bytes[i + 6] == .backslash,
                   bytes[i + 7] == UInt8(ascii: "u"), let low = hex4(at: i + 8, end: end), (0xDC00..<0xE000).contains(low)
                {
                    scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    consumed = 12
                }
                let scalar = Unicode.Scalar(scalarValue) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
                i += consumed
                continue
            default:
                return nil
            }
            i += 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func hex4(at index: Int, end: Int) -> UInt16? {
        guard index + 4 <= end else { return nil }
        var value: UInt16 = 0
        for i in index..<(index + 4) {
            let b = bytes[i]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    // MARK: Text statistics (for estimates)

    /// What a JSON value holds that an estimate can use.
    struct TextStatistics: Sendable, Hashable {
        /// UTF-8 bytes of text in string values (and in keys, when asked), escapes counted decoded.
        var textBytes = 0
        /// How many numbers the value holds (token-id arrays count one token per number).
        var numbers = 0
    }

    /// Counts the text inside the value at `range`.
    ///
    /// Skipped as not being text: string values of members named `data` (base64 media in the
    /// Anthropic, Gemini and OpenAI audio shapes) and any string beginning with `data:` (data URIs of
    /// images and files). Keys count only when `countKeys` is true (tool schemas, whose property
    /// names the model reads).
    func textStatistics(in range: Range<Int>, countKeys: Bool) -> TextStatistics {
        var stats = TextStatistics()
        var i = range.lowerBound
        let end = min(range.upperBound, bytes.count)
        var skipNextString = false
        while i < end {
            let b = bytes[i]
            switch b {
            case .quote:
                guard let literal = stringEnd(from: i), literal.end <= end else { return stats }
                let content = (i + 1)..<(literal.end - 1)
                let next = skipWhitespace(from: literal.end)
                let isKey = next < end && bytes[next] == .colon
                if isKey {
                    if countKeys { stats.textBytes += decodedLength(content) }
                    skipNextString = content.count == 4 && bytes[content.lowerBound] == UInt8(ascii: "d")
                        && bytes[content.lowerBound + 1] == UInt8(ascii: "a") && bytes[content.lowerBound + 2] == UInt8(ascii: "t")
                        && bytes[content.lowerBound + 3] == UInt8(ascii: "a")
                } else {
                    if !skipNextString && !isDataURI(content) {
                        stats.textBytes += decodedLength(content)
                    }
                    skipNextString = false
                }
                i = literal.end
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                stats.numbers += 1
                skipNextString = false
                i = valueEnd(from: i) ?? end
            case .openBrace, .openBracket, UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                skipNextString = false
                i += 1
            default:
                i += 1
            }
        }
        return stats
    }

    private func isDataURI(_ content: Range<Int>) -> Bool {
        let prefix: [UInt8] = Array("data:".utf8)
        guard content.count >= prefix.count else { return false }
        for (offset, expected) in prefix.enumerated() where bytes[content.lowerBound + offset] != expected {
            return false
        }
        return true
    }

    /// The UTF-8 length of a string literal's content once its escapes are decoded.
    private func decodedLength(_ content: Range<Int>) -> Int {
        var length = 0
        var i = content.lowerBound
        while i < content.upperBound {
            guard bytes[i] == .backslash else {
                length += 1
                i += 1
                continue
            }
            if i + 1 < content.upperBound, bytes[i + 1] == UInt8(ascii: "u") {
                let unit = hex4(at: i + 2, end: content.upperBound) ?? 0
                switch unit {
                case 0..<0x80: length += 1
                case 0x80..<0x800: length += 2
                case 0xD800..<0xE000: length += 2  // each half of a surrogate pair: 4 bytes per pair
                default: length += 3
                }
                i += 6
            } else {
                length += 1
                i += 2
            }
        }
        return length
    }
}

/// A replacement of a byte range of a document.
struct ByteEdit: Sendable, Hashable {
    /// The bytes replaced; empty for an insertion.
    var range: Range<Int>
    var replacement: [UInt8]

    /// Applies non-overlapping edits to `data`; all other bytes are copied unchanged.
    static func apply(_ edits: [ByteEdit], to data: Data) -> Data {
        guard !edits.isEmpty else { return data }
        let sorted = edits.sorted { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        return data.withUnsafeBytes { raw in
            let bytes = raw.assumingMemoryBound(to: UInt8.self)
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + sorted.reduce(0) { $0 + $1.replacement.count })
            var cursor = 0
            for edit in sorted where edit.range.lowerBound >= cursor && edit.range.upperBound <= bytes.count {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[cursor..<edit.range.lowerBound]))
                out.append(contentsOf: edit.replacement)
                cursor = edit.range.upperBound
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[cursor..<bytes.count]))
            return Data(out)
        }
    }
}

/// JSON text produced by Tollgate (error bodies, rewritten members).
enum JSONText {
    /// `value` as a JSON string literal: quotes, backslashes and control characters escaped, all other
    /// characters as UTF-8.
    static func string(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let s where s.value < 0x20:
                let hex = String(s.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    /// `value` as a JSON string literal, or `null`.
    static func stringOrNull(_ value: String?) -> String {
        value.map(string) ?? "null"
    }
}

extension UInt8 {
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
}

/// Why bytes are not a JSON document.
struct JSONSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Offset of the offending byte (the length of the document when it ended too early).
    var offset: Int
    var reason: String

    var description: String { "\(reason) at byte \(offset)" }
}

extension JSONScanner {
    /// The deepest nesting of objects and arrays accepted (as Foundation's JSON parser).
    static let maximumDepth = 512

    /// Checks that `data` is exactly one JSON value (RFC 8259 grammar: no trailing commas, comments,
    /// single quotes, or bare words) with optional surrounding whitespace, and returns the value's first
    /// byte (`{` for an object). UTF-8 validity is checked separately.
    static func validate(_ data: Data) -> Result<UInt8, JSONSyntaxError> {
        with(data) { scanner in
            Result { () throws(JSONSyntaxError) -> UInt8 in try scanner.validateDocument() }
        }
    }

    func validateDocument() throws(JSONSyntaxError) -> UInt8 {
        let start = skipWhitespace(from: 0)
        guard start < bytes.count else { throw JSONSyntaxError(offset: start, reason: "empty document") }
        let end = skipWhitespace(from: try validateValue(at: start, depth: 0))
        guard end == bytes.count else { throw unexpected(end) }
        return bytes[start]
    }

    private func unexpected(_ offset: Int) -> JSONSyntaxError {
        guard offset < bytes.count else { return JSONSyntaxError(offset: offset, reason: "unexpected end of document") }
        let byte = bytes[offset]
        let shown = (0x20..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "0x" + String(byte, radix: 16)
        return JSONSyntaxError(offset: offset, reason: "unexpected character \(shown)")
    }

    private func expect(_ byte: UInt8, at offset: Int) throws(JSONSyntaxError) {
        guard offset < bytes.count, bytes[offset] == byte else { throw unexpected(offset) }
    }

    /// Validates the value at `index`; returns the offset just after it.
    private func validateValue(at index: Int, depth: Int) throws(JSONSyntaxError) -> Int {
        guard index < bytes.count else { throw unexpected(index) }
        switch bytes[index] {
        case .openBrace:
            guard depth < Self.maximumDepth else { throw JSONSyntaxError(offset: index, reason: "nesting too deep") }
            var i = skipWhitespace(from: index + 1)
            if i < bytes.count, bytes[i] == .closeBrace { return i + 1 }
            while true {
                try expect(.quote, at: i)
                i = skipWhitespace(from: try validateString(at: i))
                try expect(.colon, at: i)
                i = skipWhitespace(from: try validateValue(at: skipWhitespace(from: i + 1), depth: depth + 1))
                guard i < bytes.count else { throw unexpected(i) }
                if bytes[i] == .closeBrace { return i + 1 }
                try expect(.comma, at: i)
                i = skipWhitespace(from: i + 1)
            }
        case .openBracket:
            guard depth < Self.maximumDepth else { throw JSONSyntaxError(offset: index, reason: "nesting too deep") }
            var i = skipWhitespace(from: index + 1)
            if i < bytes.count, bytes[i] == .closeBracket { return i + 1 }
            while true {
                i = skipWhitespace(from: try validateValue(at: i, depth: depth + 1))
                guard i < bytes.count else { throw unexpected(i) }
                if bytes[i] == .closeBracket { return i + 1 }
                try expect(.comma, at: i)
                i = skipWhitespace(from: i + 1)
            }
        case .quote:
            return try validateString(at: index)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try validateNumber(at: index)
        case UInt8(ascii: "t"):
            return try validateLiteral("true", at: index)
        case UInt8(ascii: "f"):
            return try validateLiteral("false", at: index)
        case UInt8(ascii: "n"):
            return try validateLiteral("null", at: index)
        default:
            throw unexpected(index)
        }
    }

    private func validateString(at index: Int) throws(JSONSyntaxError) -> Int {
        var i = index + 1
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case .quote:
                return i + 1
            case .backslash:
                guard i + 1 < bytes.count else { throw unexpected(i + 1) }
                switch bytes[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    for offset in 2..<6 {
                        guard i + offset < bytes.count, bytes[i + offset].isHexDigit else { throw unexpected(i + offset) }
                    }
                    i += 6
                default:
                    throw JSONSyntaxError(offset: i, reason: "invalid escape in string")
                }
            case 0..<0x20:
                throw JSONSyntaxError(offset: i, reason: "unescaped control character in string")
            default:
                i += 1
            }
        }
        throw unexpected(i)
    }

    private func validateNumber(at index: Int) throws(JSONSyntaxError) -> Int {
        var i = index
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, bytes[i].isDigit else { throw unexpected(i) }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < bytes.count, bytes[i].isDigit { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < bytes.count, bytes[i].isDigit else { throw unexpected(i) }
            while i < bytes.count, bytes[i].isDigit { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, bytes[i].isDigit else { throw unexpected(i) }
            while i < bytes.count, bytes[i].isDigit { i += 1 }
        }
        return i
    }

    private func validateLiteral(_ literal: StaticString, at index: Int) throws(JSONSyntaxError) -> Int {
        let count = literal.utf8CodeUnitCount
        let matches = literal.withUTF8Buffer { expected in
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != expected[offset] { return false }
            return true
        }
        guard matches else { throw JSONSyntaxError(offset: index, reason: "invalid literal") }
        return index + count
    }
}

extension UInt8 {
    var isDigit: Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) }
    var isHexDigit: Bool {
        isDigit || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}
