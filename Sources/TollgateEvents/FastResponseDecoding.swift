public import Foundation

/// A fast reader of `tollgate.response.v1` events: the value ``EventCoding/decode(_:from:)`` returns for
/// the same bytes, without `JSONDecoder`'s generic machinery (no intermediate tree, no per-key dictionary).
///
/// The cost service decodes one response per event, so this is on its hot path. A pull parser walks the
/// UTF-8 once and reads each field straight into its Swift type, with `JSONDecoder`'s rules, quirks
/// included:
///
/// - Unknown keys are skipped; when a key repeats, the first occurrence wins and later ones are only
///   checked for structure. Absent and `null` optionals are `nil`; `null` for a required field throws.
/// - Every key of a decoded object must be a valid string (escapes, UTF-8, no control characters); a
///   skipped value is only checked for structure, as `JSONDecoder`'s scanner does (so `"x": 01` or a bad
///   escape inside an unknown field is accepted, as it is there). A trailing comma before `}` or `]` is
///   accepted; nesting deeper than 512 is not.
/// - Strings: full escapes including `\uXXXX` surrogate pairs; raw control characters, lone surrogates and
///   invalid UTF-8 throw.
/// - Integers: plain integers within range; a number with a fraction or exponent is accepted only when its
///   value is a whole number in range (`1.0`, `1e3`), as `JSONDecoder` does; overflow throws. Token counts
///   must be ≥ 0.
/// - Times: the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` is read in place; anything else goes through
///   ``EventTime/parse(_:)``.
/// - The envelope is checked as ``CloudEvent``'s `init(from:)` checks it, in the same order (`specversion`,
///   `type`, `datacontenttype`), after the whole document's structure, so the same
///   ``EventDecodingError`` comes out.
///
/// Input that is not a UTF-8 JSON object (UTF-16 or UTF-32 text, a top-level array, nothing) is handed to
/// ``EventCoding/decode(_:from:)``, which reads or rejects it. Malformed input otherwise throws a
/// `DecodingError`. Tests check the result equals `EventCoding.decode`'s for every example and for
/// generated variations, and that both throw for a list of malformed inputs.
extension EventCoding {
    /// Decodes a `tollgate.response.v1` event: the same value as `decode(ResponseData.self, from:)`,
    /// several times faster.
    public static func decodeResponse(from data: Data) throws -> CloudEvent<ResponseData> {
        if let event = try fastDecode(data, { try $0.decodeResponseData() }) { return event }
        return try decode(ResponseData.self, from: data)
    }

    /// Decodes a `tollgate.usage.v1` event: the same value as `decode(UsageData.self, from:)`, with the
    /// same rules as ``decodeResponse(from:)`` (the projector decodes one per event).
    public static func decodeUsage(from data: Data) throws -> CloudEvent<UsageData> {
        if let event = try fastDecode(data, { try $0.decodeUsageData() }) { return event }
        return try decode(UsageData.self, from: data)
    }

    /// The pull parser's event, or `nil` for input that is not a UTF-8 JSON object (for `JSONDecoder`).
    private static func fastDecode<Payload: EventPayload>(
        _ data: Data, _ readData: (inout ResponseJSONCursor) throws -> Payload
    ) throws -> CloudEvent<Payload>? {
        try data.withUnsafeBytes { raw -> CloudEvent<Payload>? in
            guard let base = raw.baseAddress, raw.count >= 2 else { return nil }
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            // UTF-16 and UTF-32 (with or without a byte order mark) are JSONDecoder's to detect.
            if bytes[0] == 0 || bytes[1] == 0 || (bytes[0] == 0xFE && bytes[1] == 0xFF)
                || (bytes[0] == 0xFF && bytes[1] == 0xFE)
            {
                return nil
            }
            var cursor = ResponseJSONCursor(bytes: bytes, count: raw.count)
            if raw.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { cursor.index = 3 }
            cursor.skipWhitespace()
            guard cursor.index < cursor.count, bytes[cursor.index] == UInt8(ascii: "{") else { return nil }
            return try cursor.decodeEvent(readData)
        }
    }
}

// MARK: - Cursor

private struct FastKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Names of one object's known keys, in canonical (sorted) order so that a canonically written object
/// matches each key on the first comparison.
private struct KeyTable {
    let names: [StaticString]
}

private enum Tables {
    static let envelope = KeyTable(names: [
        "data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type",
    ])
    static let response = KeyTable(names: [
        "customer", "endpoint", "error_type", "key_id", "outcome", "project", "provider", "request_id",
        "requested_model", "routing", "served_model", "service_tier", "status", "stream", "tags", "team",
        "timings", "usage", "usage_source",
    ])
    static let timings = KeyTable(names: [
        "duration_ms", "first_byte_ms", "received_at", "upstream_ms", "upstream_sent_at",
    ])
    static let routing = KeyTable(names: ["downgraded_from", "policy", "reason"])
    static let usageData = KeyTable(names: [
        "catalog_version", "cost_nano_usd", "price_effective_date", "priced", "priced_at", "response",
        "unpriced_reason",
    ])
    static let cost = KeyTable(names: [
        "audio_input", "audio_output", "cache_write_1h", "cache_write_5m", "cached_input_read", "input", "output",
        "reasoning", "total",
    ])
    static let usage = KeyTable(names: [
        "audio_input_tokens", "audio_output_tokens", "cache_write_1h_tokens", "cache_write_5m_tokens",
        "cached_input_read_tokens", "input_tokens", "output_tokens", "reasoning_tokens",
    ])
}

private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")
private let openBrace = UInt8(ascii: "{")
private let closeBrace = UInt8(ascii: "}")
private let openBracket = UInt8(ascii: "[")
private let closeBracket = UInt8(ascii: "]")
private let comma = UInt8(ascii: ",")
private let colon = UInt8(ascii: ":")
private let minus = UInt8(ascii: "-")
private let zero = UInt8(ascii: "0")
private let nine = UInt8(ascii: "9")

/// `JSONDecoder`'s limit on nested arrays and objects.
private let maximumDepth = 512

/// A pull parser over one JSON document's UTF-8 bytes; valid only inside `Data.withUnsafeBytes`.
private struct ResponseJSONCursor {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    var index = 0

    init(bytes: UnsafePointer<UInt8>, count: Int) {
        self.bytes = bytes
        self.count = count
    }

    // MARK: Errors

    func corrupted(_ what: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "\(what) (at byte \(index))"))
    }

    func mismatch(_ type: Any.Type, _ what: String) -> DecodingError {
        DecodingError.typeMismatch(type, .init(codingPath: [], debugDescription: "expected \(what) (at byte \(index))"))
    }

    static func missing(_ key: StaticString) -> DecodingError {
        DecodingError.keyNotFound(
            FastKey(stringValue: "\(key)"), .init(codingPath: [], debugDescription: "no value for key \"\(key)\""))
    }

    static func null(_ type: Any.Type, _ key: StaticString) -> DecodingError {
        DecodingError.valueNotFound(
            type, .init(codingPath: [FastKey(stringValue: "\(key)")], debugDescription: "found null instead"))
    }

    // MARK: Tokens

    @inline(__always)
    mutating func skipWhitespace() {
        while index < count {
            let byte = bytes[index]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            index += 1
        }
    }

    /// The next byte after whitespace, not consumed; throws at the end of the input.
    @inline(__always)
    mutating func peek() throws -> UInt8 {
        skipWhitespace()
        guard index < count else { throw corrupted("unexpected end of input") }
        return bytes[index]
    }

    /// Consumes `literal` (such as `null`), which must follow exactly.
    mutating func expectLiteral(_ literal: StaticString) throws {
        let length = literal.utf8CodeUnitCount
        guard count - index >= length, memcmp(bytes + index, literal.utf8Start, length) == 0 else {
            throw corrupted("invalid literal")
        }
        index += length
    }

    /// Consumes `null` if it is next.
    @inline(__always)
    mutating func takeNull() throws -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try expectLiteral("null")
        return true
    }

    // MARK: Objects

    /// Consumes the `{` of an object; false if the object is empty (its `}` consumed too).
    mutating func beginObject(_ what: String) throws -> Bool {
        guard try peek() == openBrace else { throw mismatch([String: Any].self, what) }
        index += 1
        if try peek() == closeBrace {
            index += 1
            return false
        }
        return true
    }

    /// After a member's value: true if another member follows its `,`; false at the object's end (a
    /// trailing comma before `}` is accepted, as `JSONDecoder` accepts it).
    @inline(__always)
    mutating func nextMember() throws -> Bool {
        let byte = try peek()
        if byte == comma {
            index += 1
            if try peek() == closeBrace {
                index += 1
                return false
            }
            return true
        }
        guard byte == closeBrace else { throw corrupted("expected ',' or '}' in an object") }
        index += 1
        return false
    }

    /// Reads a member's key (validated as a string) and the `:` after it; the key's position in `table`,
    /// or nil for an unknown key. `hint` is where to start looking (the position after the last match).
    mutating func readKey(_ table: KeyTable, hint: inout Int) throws -> Int? {
        guard try peek() == quote else { throw corrupted("expected a key") }
        index += 1
        let start = index
        var ascii = true
        var position: Int?
        while true {
            guard index < count else { throw corrupted("unterminated key") }
            let byte = bytes[index]
            if byte == quote {
                let length = index - start
                index += 1
                position = Self.find(bytes + start, length, in: table, hint: &hint)
                if position == nil, !ascii,
                    String(validating: UnsafeBufferPointer(start: bytes + start, count: length), as: UTF8.self) == nil
                {
                    throw corrupted("key is not valid UTF-8")
                }
                break
            }
            if byte == backslash {
                index = start - 1
                let key = try readString()
                var utf8 = Array(key.utf8)
                position = utf8.withUnsafeMutableBufferPointer { buffer in
                    Self.find(UnsafePointer(buffer.baseAddress!), buffer.count, in: table, hint: &hint)
                }
                break
            }
            guard byte >= 0x20 else { throw corrupted("unescaped control character in a key") }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        guard try peek() == colon else { throw corrupted("expected ':' after a key") }
        index += 1
        return position
    }

    @inline(__always)
    static func find(_ key: UnsafePointer<UInt8>, _ length: Int, in table: KeyTable, hint: inout Int) -> Int? {
        let names = table.names
        let total = names.count
        var position = hint < total ? hint : 0
        for _ in 0..<total {
            let name = names[position]
            if name.utf8CodeUnitCount == length, memcmp(name.utf8Start, key, length) == 0 {
                hint = position + 1
                return position
            }
            position += 1
            if position == total { position = 0 }
        }
        return nil
    }

    // MARK: Strings

    /// Reads a string strictly: escapes decoded, UTF-8 validated, raw control characters rejected.
    mutating func readString() throws -> String {
        guard try peek() == quote else { throw mismatch(String.self, "a string") }
        index += 1
        let start = index
        var ascii = true
        while index < count {
            let byte = bytes[index]
            if byte == quote {
                let buffer = UnsafeBufferPointer(start: bytes + start, count: index - start)
                index += 1
                if ascii { return String(decoding: buffer, as: UTF8.self) }
                guard let text = String(validating: buffer, as: UTF8.self) else {
                    throw corrupted("string is not valid UTF-8")
                }
                return text
            }
            if byte == backslash { return try readEscapedString(from: start) }
            guard byte >= 0x20 else { throw corrupted("unescaped control character in a string") }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        throw corrupted("unterminated string")
    }

    /// The rest of a string with escapes; `index` is at the first backslash.
    mutating func readEscapedString(from start: Int) throws -> String {
        var output: [UInt8] = []
        output.reserveCapacity(index - start + 32)
        output.append(contentsOf: UnsafeBufferPointer(start: bytes + start, count: index - start))
        while index < count {
            let byte = bytes[index]
            if byte == quote {
                index += 1
                // Escapes only produce whole scalars, so validating the assembled bytes rejects exactly the
                // invalid raw runs between escapes.
                guard let text = String(validating: output, as: UTF8.self) else {
                    throw corrupted("string is not valid UTF-8")
                }
                return text
            }
            if byte == backslash {
                index += 1
                guard index < count else { throw corrupted("unterminated string") }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case quote: output.append(quote)
                case backslash: output.append(backslash)
                case UInt8(ascii: "/"): output.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"):
                    let scalar = try readUnicodeEscape()
                    // Every scalar has a UTF-8 encoding.
                    output.append(contentsOf: UTF8.encode(scalar)!)
                default:
                    throw corrupted("invalid escape in a string")
                }
                continue
            }
            guard byte >= 0x20 else { throw corrupted("unescaped control character in a string") }
            output.append(byte)
            index += 1
        }
        throw corrupted("unterminated string")
    }

    /// The scalar of a `\uXXXX` escape (after the `u`), with its low surrogate's escape when it is a high one.
    mutating func readUnicodeEscape() throws -> Unicode.Scalar {
        let unit = try readHex4()
        if UTF16.isLeadSurrogate(unit) {
            guard count - index >= 2, bytes[index] == backslash, bytes[index + 1] == UInt8(ascii: "u") else {
                throw corrupted("high surrogate without a low surrogate")
            }
            index += 2
            let low = try readHex4()
            guard UTF16.isTrailSurrogate(low) else { throw corrupted("high surrogate without a low surrogate") }
            return UTF16.decode(UTF16.EncodedScalar([unit, low]))
        }
        guard let scalar = Unicode.Scalar(unit) else { throw corrupted("lone low surrogate") }
        return scalar
    }

    mutating func readHex4() throws -> UInt16 {
        guard count - index >= 4 else { throw corrupted("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case zero...nine: digit = byte - zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw corrupted("invalid hex digit in a \\u escape")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    mutating func readOptionalString() throws -> String? {
        try takeNull() ? nil : readString()
    }

    mutating func readRequiredString(_ key: StaticString) throws -> String {
        if try takeNull() { throw Self.null(String.self, key) }
        return try readString()
    }

    // MARK: Numbers

    /// Reads an integer as `JSONDecoder` reads an `Int64`.
    mutating func readInt64() throws -> Int64 {
        let first = try peek()
        guard first == minus || (first >= zero && first <= nine) else { throw mismatch(Int64.self, "a number") }
        let start = index
        index += 1
        var plain = true
        // The token as JSONDecoder's scanner delimits it: digits and . + - e E.
        while index < count {
            let byte = bytes[index]
            if byte >= zero && byte <= nine {
                index += 1
                continue
            }
            guard byte == UInt8(ascii: ".") || byte == UInt8(ascii: "+") || byte == minus
                || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
            else { break }
            plain = false
            index += 1
        }
        if plain, let value = Self.plainInteger(bytes + start, index - start) { return value }
        return try slowInteger(UnsafeBufferPointer(start: bytes + start, count: index - start))
    }

    /// `-?digits` without a leading zero and within range; nil otherwise.
    @inline(__always)
    static func plainInteger(_ token: UnsafePointer<UInt8>, _ length: Int) -> Int64? {
        let negative = token[0] == minus
        var position = negative ? 1 : 0
        guard position < length, !(token[position] == zero && length - position > 1), length - position <= 19
        else { return nil }
        var magnitude: UInt64 = 0
        while position < length {
            magnitude = magnitude &* 10 &+ UInt64(token[position] &- zero)
            position += 1
        }
        // 19 digits fit in UInt64 without wrapping.
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// `JSONDecoder`'s slow path for integers: validate the token as a JSON number, convert it through
    /// `Double` when exact below 2^53, else through its exact decimal value truncated toward zero.
    func slowInteger(_ token: UnsafeBufferPointer<UInt8>) throws -> Int64 {
        try Self.validateNumber(token, error: corrupted("invalid number"))
        let text = String(decoding: token, as: UTF8.self)
        if let double = Double(text) {
            guard let value = Int64(exactly: double) else { throw corrupted("number \(text) does not fit an Int64") }
            if double.magnitude < 9_007_199_254_740_992 { return value }
        }
        guard let value = Self.decimalInteger(token) else { throw corrupted("number \(text) does not fit an Int64") }
        return value
    }

    /// JSONDecoder's pre-validation of a number: no leading zeros, a digit after `-`, a digit before the
    /// exponent and at the end.
    static func validateNumber(_ token: UnsafeBufferPointer<UInt8>, error: DecodingError) throws {
        var firstDigit = 0
        func leadingZeroFollower(_ at: Int) -> Bool {
            guard at < token.count else { return true }
            let byte = token[at]
            return byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
        }
        switch token[0] {
        case zero:
            guard leadingZeroFollower(1) else { throw error }
        case UInt8(ascii: "1")...nine:
            break
        default:  // minus
            guard token.count > 1 else { throw error }
            switch token[1] {
            case zero: guard leadingZeroFollower(2) else { throw error }
            case UInt8(ascii: "1")...nine: break
            default: throw error
            }
            firstDigit = 1
        }
        var position = firstDigit + 1
        while position < token.count {
            if token[position] == UInt8(ascii: "e") || token[position] == UInt8(ascii: "E") {
                guard token[position - 1] >= zero && token[position - 1] <= nine else { throw error }
                break
            }
            position += 1
        }
        guard let last = token.last, last >= zero && last <= nine else { throw error }
    }

    /// The exact value of `-?digits(.digits)?([eE][+-]?digits)?`, truncated toward zero, as
    /// `FixedWidthInteger.init(Decimal)` computes it: nil when the significant digits (trailing zeros
    /// dropped) do not fit a UInt64 or the result does not fit an Int64.
    static func decimalInteger(_ token: UnsafeBufferPointer<UInt8>) -> Int64? {
        var position = 0
        let negative = token[0] == minus
        if negative { position = 1 }
        var digits: [UInt8] = []
        var exponent = 0
        var sawDigit = false
        while position < token.count, token[position] >= zero, token[position] <= nine {
            digits.append(token[position] - zero)
            sawDigit = true
            position += 1
        }
        if position < token.count, token[position] == UInt8(ascii: ".") {
            position += 1
            var fractionDigits = false
            while position < token.count, token[position] >= zero, token[position] <= nine {
                digits.append(token[position] - zero)
                exponent -= 1
                fractionDigits = true
                position += 1
            }
            guard fractionDigits else { return nil }
        }
        guard sawDigit else { return nil }
        if position < token.count, token[position] == UInt8(ascii: "e") || token[position] == UInt8(ascii: "E") {
            position += 1
            var exponentNegative = false
            if position < token.count, token[position] == UInt8(ascii: "+") || token[position] == minus {
                exponentNegative = token[position] == minus
                position += 1
            }
            var value = 0
            var exponentDigits = false
            while position < token.count, token[position] >= zero, token[position] <= nine {
                value = min(value * 10 + Int(token[position] - zero), 100_000)
                exponentDigits = true
                position += 1
            }
            guard exponentDigits else { return nil }
            exponent += exponentNegative ? -value : value
        }
        guard position == token.count else { return nil }
        while let first = digits.first, first == 0 { digits.removeFirst() }
        while let last = digits.last, last == 0 {
            digits.removeLast()
            exponent += 1
        }
        var magnitude: UInt64 = 0
        for digit in digits {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
        }
        if exponent < 0 {
            var steps = -exponent
            while steps > 0 && magnitude > 0 {
                magnitude /= 10
                steps -= 1
            }
        } else if magnitude > 0 {
            for _ in 0..<exponent {
                let (product, overflow) = magnitude.multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                magnitude = product
            }
        }
        guard let value = Int64(exactly: magnitude) else { return nil }
        return negative ? -value : value
    }

    mutating func readCount(_ key: StaticString) throws -> Int64 {
        if try takeNull() { throw Self.null(Int64.self, key) }
        let value = try readInt64()
        guard value >= 0 else { throw corrupted("token count must be >= 0, got \(value)") }
        return value
    }

    mutating func readRequiredInt64(_ key: StaticString) throws -> Int64 {
        if try takeNull() { throw Self.null(Int64.self, key) }
        return try readInt64()
    }

    mutating func readOptionalInt64() throws -> Int64? {
        try takeNull() ? nil : readInt64()
    }

    // MARK: Booleans

    mutating func readBool(_ key: StaticString) throws -> Bool {
        switch try peek() {
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return true
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return false
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            throw Self.null(Bool.self, key)
        default:
            throw mismatch(Bool.self, "a boolean")
        }
    }

    // MARK: Times

    mutating func readDate() throws -> Date {
        guard try peek() == quote else { throw mismatch(String.self, "a date-time string") }
        let start = index + 1
        if count - start >= 25, bytes[start + 24] == quote, let date = Self.canonicalDate(bytes + start) {
            index = start + 25
            return date
        }
        let text = try readString()
        guard let date = EventTime.parse(text) else { throw corrupted("not an RFC 3339 date-time: \"\(text)\"") }
        return date
    }

    mutating func readRequiredDate(_ key: StaticString) throws -> Date {
        if try takeNull() { throw Self.null(Date.self, key) }
        return try readDate()
    }

    mutating func readOptionalDate() throws -> Date? {
        try takeNull() ? nil : readDate()
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (how events write times), as ``EventTime/parse(_:)`` reads it; nil for
    /// anything else, which then goes through `EventTime.parse`.
    @inline(__always)
    static func canonicalDate(_ text: UnsafePointer<UInt8>) -> Date? {
        guard text[4] == minus, text[7] == minus, text[10] == UInt8(ascii: "T"), text[13] == colon,
            text[16] == colon, text[19] == UInt8(ascii: "."), text[23] == UInt8(ascii: "Z")
        else { return nil }
        var valid = true
        @inline(__always) func number(_ at: Int, _ length: Int) -> Int64 {
            var value: Int64 = 0
            for offset in at..<(at + length) {
                let digit = text[offset] &- zero
                if digit > 9 { valid = false }
                value = value * 10 + Int64(digit)
            }
            return value
        }
        let year = number(0, 4)
        let month = number(5, 2)
        let day = number(8, 2)
        let hour = number(11, 2)
        let minute = number(14, 2)
        let second = number(17, 2)
        let millisecond = number(20, 3)
        guard valid, month >= 1, month <= 12, day >= 1, day <= EventTime.daysInMonth(year, month), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let seconds = EventTime.days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        // The same arithmetic as EventTime.parse, so the same Date to the last bit.
        let nanos = millisecond * 1_000_000
        return Date(timeIntervalSince1970: Double(seconds) + Double(nanos) / 1_000_000_000)
    }

    // MARK: Skipping

    /// Skips a value as `JSONDecoder`'s scanner does: structure only (strings end at an unescaped quote,
    /// `\u` needs four more bytes none of them a quote, numbers are runs of digits and `.+-eE`, literals are
    /// exact), trailing commas accepted, at most 512 levels. `depth` counts the containers around it.
    mutating func skipValue(depth: Int) throws {
        let byte = try peek()
        switch byte {
        case quote:
            try skipString()
        case openBrace:
            guard depth < maximumDepth else { throw corrupted("too many nested arrays or objects") }
            index += 1
            if try peek() == closeBrace {
                index += 1
                return
            }
            while true {
                guard try peek() == quote else { throw corrupted("expected a key") }
                try skipString()
                guard try peek() == colon else { throw corrupted("expected ':' after a key") }
                index += 1
                try skipValue(depth: depth + 1)
                if try !nextMember() { return }
            }
        case openBracket:
            guard depth < maximumDepth else { throw corrupted("too many nested arrays or objects") }
            index += 1
            if try peek() == closeBracket {
                index += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                let next = try peek()
                if next == comma {
                    index += 1
                    if try peek() == closeBracket {
                        index += 1
                        return
                    }
                    continue
                }
                guard next == closeBracket else { throw corrupted("expected ',' or ']' in an array") }
                index += 1
                return
            }
        case UInt8(ascii: "t"):
            try expectLiteral("true")
        case UInt8(ascii: "f"):
            try expectLiteral("false")
        case UInt8(ascii: "n"):
            try expectLiteral("null")
        case minus, zero...nine:
            index += 1
            while index < count {
                let next = bytes[index]
                guard (next >= zero && next <= nine) || next == UInt8(ascii: ".") || next == UInt8(ascii: "+")
                    || next == minus || next == UInt8(ascii: "e") || next == UInt8(ascii: "E")
                else { break }
                index += 1
            }
        default:
            throw corrupted("unexpected character")
        }
    }

    mutating func skipString() throws {
        index += 1  // the opening quote
        while index < count {
            let byte = bytes[index]
            if byte == quote {
                index += 1
                return
            }
            if byte == backslash {
                index += 1
                guard index < count else { break }
                if bytes[index] == UInt8(ascii: "u") {
                    index += 1
                    guard count - index >= 4 else { break }
                    for offset in 0..<4 where bytes[index + offset] == quote {
                        throw corrupted("invalid \\u escape")
                    }
                    index += 4
                    continue
                }
            }
            index += 1
        }
        throw corrupted("unterminated string")
    }

    // MARK: The event

    /// Reads one field for the envelope; on a semantic error, skips the value and keeps the error so that
    /// the document's structure is checked first and the envelope's errors come in `CloudEvent`'s order.
    mutating func field<T>(depth: Int, _ read: (inout ResponseJSONCursor) throws -> T) throws -> Result<T, any Error> {
        skipWhitespace()
        let start = index
        do {
            return .success(try read(&self))
        } catch {
            index = start
            try skipValue(depth: depth)
            return .failure(error)
        }
    }

    mutating func decodeEvent<Payload: EventPayload>(
        _ readData: (inout ResponseJSONCursor) throws -> Payload
    ) throws -> CloudEvent<Payload> {
        var specVersion: Result<String, any Error>?
        var type: Result<String, any Error>?
        var contentType: Result<String?, any Error>?
        var id: Result<String, any Error>?
        var source: Result<String, any Error>?
        var time: Result<Date, any Error>?
        var subject: Result<String?, any Error>?
        var data: Result<Payload, any Error>?
        var hint = 0
        if try beginObject("an event object") {
            repeat {
                switch try readKey(Tables.envelope, hint: &hint) {
                case 0 where data == nil:
                    data = try field(depth: 1) { try readData(&$0) }
                case 1 where contentType == nil:
                    contentType = try field(depth: 1) { try $0.readOptionalString() }
                case 2 where id == nil:
                    id = try field(depth: 1) { try $0.readRequiredString("id") }
                case 3 where source == nil:
                    source = try field(depth: 1) { try $0.readRequiredString("source") }
                case 4 where specVersion == nil:
                    specVersion = try field(depth: 1) { try $0.readRequiredString("specversion") }
                case 5 where subject == nil:
                    subject = try field(depth: 1) { try $0.readOptionalString() }
                case 6 where time == nil:
                    time = try field(depth: 1) { try $0.readRequiredDate("time") }
                case 7 where type == nil:
                    type = try field(depth: 1) { try $0.readRequiredString("type") }
                default:
                    try skipValue(depth: 1)
                }
            } while try nextMember()
        }
        skipWhitespace()
        guard index == count else { throw corrupted("unexpected character after the top-level value") }

        // CloudEvent.init(from:)'s order.
        guard let specVersion else { throw Self.missing("specversion") }
        let version = try specVersion.get()
        guard version == EventCoding.specVersion else {
            throw EventDecodingError.unsupportedSpecVersion(found: version)
        }
        guard let type else { throw Self.missing("type") }
        let typeName = try type.get()
        guard typeName == Payload.eventType else {
            throw EventDecodingError.typeMismatch(expected: Payload.eventType, found: typeName)
        }
        if let contentType, let value = try contentType.get(), value != EventCoding.dataContentType {
            throw EventDecodingError.unsupportedDataContentType(found: value)
        }
        guard let id else { throw Self.missing("id") }
        let idValue = try id.get()
        guard let source else { throw Self.missing("source") }
        let sourceValue = try source.get()
        guard let time else { throw Self.missing("time") }
        let timeValue = try time.get()
        let subjectValue = try subject?.get() ?? nil
        guard let data else { throw Self.missing("data") }
        return CloudEvent(id: idValue, source: sourceValue, time: timeValue, subject: subjectValue, data: try data.get())
    }

    /// `data`: a ``ResponseData``, as its synthesized `init(from:)` reads it.
    mutating func decodeResponseData(depth parentDepth: Int = 1, key: StaticString = "data") throws -> ResponseData {
        if try takeNull() { throw Self.null(ResponseData.self, key) }
        var requestID: String?
        var keyID: String?
        var team: String?
        var project: String?
        var customer: String??
        var tags: [String: String]?
        var provider: Provider?
        var endpoint: String?
        var requestedModel: String?
        var servedModel: String?
        var stream: Bool?
        var status: Int?
        var outcome: ResponseData.Outcome?
        var errorType: String??
        var serviceTier: String??
        var timings: ResponseData.Timings?
        var usage: TokenUsage?
        var usageSource: ResponseData.UsageSource?
        var routing: ResponseData.Routing??
        var hint = 0
        let depth = parentDepth + 1  // members of data: inside the envelope and data
        if try beginObject("the response data object") {
            repeat {
                switch try readKey(Tables.response, hint: &hint) {
                case 0 where customer == nil: customer = .some(try readOptionalString())
                case 1 where endpoint == nil: endpoint = try readRequiredString("endpoint")
                case 2 where errorType == nil: errorType = .some(try readOptionalString())
                case 3 where keyID == nil: keyID = try readRequiredString("key_id")
                case 4 where outcome == nil:
                    let raw = try readRequiredString("outcome")
                    guard let value = ResponseData.Outcome(rawValue: raw) else {
                        throw corrupted("unknown outcome \"\(raw)\"")
                    }
                    outcome = value
                case 5 where project == nil: project = try readRequiredString("project")
                case 6 where provider == nil:
                    let raw = try readRequiredString("provider")
                    guard let value = Provider(rawValue: raw) else { throw corrupted("unknown provider \"\(raw)\"") }
                    provider = value
                case 7 where requestID == nil: requestID = try readRequiredString("request_id")
                case 8 where requestedModel == nil: requestedModel = try readRequiredString("requested_model")
                case 9 where routing == nil: routing = .some(try readRouting(depth: depth))
                case 10 where servedModel == nil: servedModel = try readRequiredString("served_model")
                case 11 where serviceTier == nil: serviceTier = .some(try readOptionalString())
                case 12 where status == nil:
                    let value = try readRequiredInt64("status")
                    guard let fitted = Int(exactly: value) else { throw corrupted("status out of range") }
                    status = fitted
                case 13 where stream == nil: stream = try readBool("stream")
                case 14 where tags == nil: tags = try readTags(depth: depth)
                case 15 where team == nil: team = try readRequiredString("team")
                case 16 where timings == nil: timings = try readTimings(depth: depth)
                case 17 where usage == nil: usage = try readUsage(depth: depth)
                case 18 where usageSource == nil:
                    let raw = try readRequiredString("usage_source")
                    guard let value = ResponseData.UsageSource(rawValue: raw) else {
                        throw corrupted("unknown usage_source \"\(raw)\"")
                    }
                    usageSource = value
                default:
                    try skipValue(depth: depth)
                }
            } while try nextMember()
        }
        guard let requestID else { throw Self.missing("request_id") }
        guard let keyID else { throw Self.missing("key_id") }
        guard let team else { throw Self.missing("team") }
        guard let project else { throw Self.missing("project") }
        guard let tags else { throw Self.missing("tags") }
        guard let provider else { throw Self.missing("provider") }
        guard let endpoint else { throw Self.missing("endpoint") }
        guard let requestedModel else { throw Self.missing("requested_model") }
        guard let servedModel else { throw Self.missing("served_model") }
        guard let stream else { throw Self.missing("stream") }
        guard let status else { throw Self.missing("status") }
        guard let outcome else { throw Self.missing("outcome") }
        guard let timings else { throw Self.missing("timings") }
        guard let usage else { throw Self.missing("usage") }
        guard let usageSource else { throw Self.missing("usage_source") }
        return ResponseData(
            requestID: requestID, keyID: keyID, team: team, project: project, customer: customer ?? nil, tags: tags,
            provider: provider, endpoint: endpoint, requestedModel: requestedModel, servedModel: servedModel,
            stream: stream, status: status, outcome: outcome, errorType: errorType ?? nil,
            serviceTier: serviceTier ?? nil, timings: timings, usage: usage, usageSource: usageSource,
            routing: routing ?? nil)
    }

    /// `tags`: string values; a repeated key keeps its first value.
    mutating func readTags(depth: Int) throws -> [String: String] {
        if try takeNull() { throw Self.null([String: String].self, "tags") }
        var tags: [String: String] = [:]
        guard try beginObject("the tags object") else { return tags }
        repeat {
            let key = try readString()
            guard try peek() == colon else { throw corrupted("expected ':' after a key") }
            index += 1
            if tags[key] == nil {
                if try takeNull() { throw Self.null(String.self, "tags") }
                tags[key] = try readString()
            } else {
                try skipValue(depth: depth + 1)
            }
        } while try nextMember()
        return tags
    }

    mutating func readTimings(depth: Int) throws -> ResponseData.Timings {
        if try takeNull() { throw Self.null(ResponseData.Timings.self, "timings") }
        var durationMs: Int64?
        var firstByteMs: Int64??
        var receivedAt: Date?
        var upstreamMs: Int64??
        var upstreamSentAt: Date??
        var hint = 0
        if try beginObject("the timings object") {
            repeat {
                switch try readKey(Tables.timings, hint: &hint) {
                case 0 where durationMs == nil: durationMs = try readRequiredInt64("duration_ms")
                case 1 where firstByteMs == nil: firstByteMs = .some(try readOptionalInt64())
                case 2 where receivedAt == nil: receivedAt = try readRequiredDate("received_at")
                case 3 where upstreamMs == nil: upstreamMs = .some(try readOptionalInt64())
                case 4 where upstreamSentAt == nil: upstreamSentAt = .some(try readOptionalDate())
                default: try skipValue(depth: depth + 1)
                }
            } while try nextMember()
        }
        guard let receivedAt else { throw Self.missing("received_at") }
        guard let durationMs else { throw Self.missing("duration_ms") }
        return ResponseData.Timings(
            receivedAt: receivedAt, upstreamSentAt: upstreamSentAt ?? nil, firstByteMs: firstByteMs ?? nil,
            durationMs: durationMs, upstreamMs: upstreamMs ?? nil)
    }

    mutating func readRouting(depth: Int) throws -> ResponseData.Routing? {
        if try takeNull() { return nil }
        var downgradedFrom: String??
        var policy: String?
        var reason: String?
        var hint = 0
        if try beginObject("the routing object") {
            repeat {
                switch try readKey(Tables.routing, hint: &hint) {
                case 0 where downgradedFrom == nil: downgradedFrom = .some(try readOptionalString())
                case 1 where policy == nil: policy = try readRequiredString("policy")
                case 2 where reason == nil: reason = try readRequiredString("reason")
                default: try skipValue(depth: depth + 1)
                }
            } while try nextMember()
        }
        guard let policy else { throw Self.missing("policy") }
        guard let reason else { throw Self.missing("reason") }
        return ResponseData.Routing(policy: policy, reason: reason, downgradedFrom: downgradedFrom ?? nil)
    }

    mutating func readUsage(depth: Int) throws -> TokenUsage {
        if try takeNull() { throw Self.null(TokenUsage.self, "usage") }
        var audioInput: Int64?
        var audioOutput: Int64?
        var cacheWrite1h: Int64?
        var cacheWrite5m: Int64?
        var cachedInputRead: Int64?
        var input: Int64?
        var output: Int64?
        var reasoning: Int64?
        var hint = 0
        if try beginObject("the usage object") {
            repeat {
                switch try readKey(Tables.usage, hint: &hint) {
                case 0 where audioInput == nil: audioInput = try readCount("audio_input_tokens")
                case 1 where audioOutput == nil: audioOutput = try readCount("audio_output_tokens")
                case 2 where cacheWrite1h == nil: cacheWrite1h = try readCount("cache_write_1h_tokens")
                case 3 where cacheWrite5m == nil: cacheWrite5m = try readCount("cache_write_5m_tokens")
                case 4 where cachedInputRead == nil: cachedInputRead = try readCount("cached_input_read_tokens")
                case 5 where input == nil: input = try readCount("input_tokens")
                case 6 where output == nil: output = try readCount("output_tokens")
                case 7 where reasoning == nil: reasoning = try readCount("reasoning_tokens")
                default: try skipValue(depth: depth + 1)
                }
            } while try nextMember()
        }
        // TokenUsage.init(from:)'s order.
        guard let input else { throw Self.missing("input_tokens") }
        guard let cachedInputRead else { throw Self.missing("cached_input_read_tokens") }
        guard let cacheWrite5m else { throw Self.missing("cache_write_5m_tokens") }
        guard let cacheWrite1h else { throw Self.missing("cache_write_1h_tokens") }
        guard let output else { throw Self.missing("output_tokens") }
        guard let reasoning else { throw Self.missing("reasoning_tokens") }
        guard let audioInput else { throw Self.missing("audio_input_tokens") }
        guard let audioOutput else { throw Self.missing("audio_output_tokens") }
        return TokenUsage(
            inputTokens: input, cachedInputReadTokens: cachedInputRead, cacheWrite5mTokens: cacheWrite5m,
            cacheWrite1hTokens: cacheWrite1h, outputTokens: output, reasoningTokens: reasoning,
            audioInputTokens: audioInput, audioOutputTokens: audioOutput)
    }

    /// `data` of a usage event: a ``UsageData``, as its synthesized `init(from:)` reads it.
    mutating func decodeUsageData() throws -> UsageData {
        if try takeNull() { throw Self.null(UsageData.self, "data") }
        var response: ResponseData?
        var cost: CostBreakdown?
        var priced: Bool?
        var unpricedReason: String??
        var catalogVersion: String?
        var pricedAt: Date?
        var priceEffectiveDate: String??
        var hint = 0
        let depth = 2
        if try beginObject("the data object") {
            repeat {
                switch try readKey(Tables.usageData, hint: &hint) {
                case 0 where catalogVersion == nil: catalogVersion = try readRequiredString("catalog_version")
                case 1 where cost == nil: cost = try readCost(depth: depth)
                case 2 where priceEffectiveDate == nil: priceEffectiveDate = .some(try readOptionalString())
                case 3 where priced == nil: priced = try readBool("priced")
                case 4 where pricedAt == nil: pricedAt = try readRequiredDate("priced_at")
                case 5 where response == nil: response = try decodeResponseData(depth: depth, key: "response")
                case 6 where unpricedReason == nil: unpricedReason = .some(try readOptionalString())
                default: try skipValue(depth: depth)
                }
            } while try nextMember()
        }
        // UsageData's synthesized init(from:) order.
        guard let response else { throw Self.missing("response") }
        guard let cost else { throw Self.missing("cost_nano_usd") }
        guard let priced else { throw Self.missing("priced") }
        guard let catalogVersion else { throw Self.missing("catalog_version") }
        guard let pricedAt else { throw Self.missing("priced_at") }
        return UsageData(response: response, costNanoUSD: cost, priced: priced, unpricedReason: unpricedReason ?? nil,
                         catalogVersion: catalogVersion, pricedAt: pricedAt,
                         priceEffectiveDate: priceEffectiveDate ?? nil)
    }

    mutating func readCost(depth: Int) throws -> CostBreakdown {
        if try takeNull() { throw Self.null(CostBreakdown.self, "cost_nano_usd") }
        var values = [Int64?](repeating: nil, count: 9)
        let names: [StaticString] = ["audio_input", "audio_output", "cache_write_1h", "cache_write_5m",
                                     "cached_input_read", "input", "output", "reasoning", "total"]
        var hint = 0
        if try beginObject("the cost object") {
            repeat {
                if let slot = try readKey(Tables.cost, hint: &hint), values[slot] == nil {
                    values[slot] = try readRequiredInt64(names[slot])
                } else {
                    try skipValue(depth: depth + 1)
                }
            } while try nextMember()
        }
        // CostBreakdown's synthesized init(from:) order: input, cached_input_read, cache_write_5m,
        // cache_write_1h, output, reasoning, audio_input, audio_output, total.
        for slot in [5, 4, 3, 2, 6, 7, 0, 1, 8] where values[slot] == nil { throw Self.missing(names[slot]) }
        func money(_ slot: Int) -> Money { Money(nanoUSD: values[slot]!) }
        return CostBreakdown(input: money(5), cachedInputRead: money(4), cacheWrite5m: money(3),
                             cacheWrite1h: money(2), output: money(6), reasoning: money(7), audioInput: money(0),
                             audioOutput: money(1), total: money(8))
    }
}
