public import Foundation

/// A fast writer of the events' canonical JSON: the bytes ``EventCoding/encode(_:)`` produces (sorted
/// keys, unescaped slashes, RFC 3339 times with milliseconds, absent optionals omitted), without
/// `JSONEncoder`'s generic machinery.
///
/// The ingress writes two events per call, so this is on the hot path. A test checks that its output is
/// byte-identical to `EventCoding.encode` for every example event and for strings with escapes and
/// non-ASCII text; a type gets a fast path only together with such a test.
public protocol CanonicalJSONEncodable {
    /// Writes the value's JSON, keys in sorted order.
    func writeCanonicalJSON(to output: inout CanonicalJSONWriter)
}

/// Appends JSON tokens to a byte buffer.
public struct CanonicalJSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 1_024) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// A member key; the value follows with one of the value writers.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        Self.appendEscaped(value, to: &bytes)
        needsComma = true
    }

    public mutating func integer(_ value: some BinaryInteger) {
        separate()
        if let small = Int64(exactly: value) {
            Self.appendDecimal(small, to: &bytes)
        } else {
            bytes.append(contentsOf: String(value).utf8)
        }
        needsComma = true
    }

    /// `value` in decimal, as `String(value)` writes it, without the intermediate string.
    static func appendDecimal(_ value: Int64, to bytes: inout [UInt8]) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        // The magnitude as UInt64 also covers Int64.min.
        var magnitude = value.magnitude
        if magnitude == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        let start = bytes.count
        while magnitude > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        }
        bytes[start...].reverse()
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: value ? Array("true".utf8) : Array("false".utf8))
        needsComma = true
    }

    public mutating func date(_ value: Date) {
        separate()
        if !Self.appendTime(value, to: &bytes) {
            Self.appendEscaped(EventTime.format(value), to: &bytes)
        }
        needsComma = true
    }

    /// `"yyyy-MM-ddTHH:mm:ss.SSSZ"` with its quotes, the same text as ``EventTime/format(_:)`` (same
    /// rounding and calendar arithmetic), written straight into the buffer. Years outside 0...9999 are
    /// left to `EventTime` (returns `false`).
    static func appendTime(_ date: Date, to bytes: inout [UInt8]) -> Bool {
        let seconds1970 = date.timeIntervalSince1970
        guard seconds1970.isFinite, abs(seconds1970) < 9e12 else { return false }
        let millis = Int64((seconds1970 * 1000).rounded(.toNearestOrAwayFromZero))
        func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
            let q = a / b
            let r = a % b
            return r < 0 ? (q - 1, r + b) : (q, r)
        }
        let (seconds, ms) = floorDivide(millis, 1000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        // Days since 1970-01-01 to a proleptic Gregorian civil date (as EventTime does).
        let z = days + 719_468
        let era = floorDivide(z, 146_097).0
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        guard (0...9999).contains(year) else { return false }
        func digits(_ value: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        bytes.append(UInt8(ascii: "\""))
        digits(year, 4); bytes.append(UInt8(ascii: "-"))
        digits(month, 2); bytes.append(UInt8(ascii: "-"))
        digits(day, 2); bytes.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2); bytes.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2); bytes.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2); bytes.append(UInt8(ascii: "."))
        digits(ms, 3); bytes.append(UInt8(ascii: "Z"))
        bytes.append(UInt8(ascii: "\""))
        return true
    }

    public mutating func value(_ value: some CanonicalJSONEncodable) {
        value.writeCanonicalJSON(to: &self)
    }

    /// An object of string values, keys sorted as `JSONEncoder`'s `.sortedKeys` sorts them.
    public mutating func stringMap(_ map: [String: String]) {
        beginObject()
        for key in map.keys.sorted() {
            separate()
            Self.appendEscaped(key, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            needsComma = false
            string(map[key]!)
        }
        endObject()
    }

    /// Optional members are omitted when absent, as synthesized `Codable` does.
    public mutating func member(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    public mutating func member(_ name: StaticString, _ value: Int64?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    public mutating func member(_ name: StaticString, _ value: Date?) {
        guard let value else { return }
        key(name)
        date(value)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// A JSON string: `"` and `\` escaped, control characters as `\b \f \n \r \t` or `\u00XX`, `/` and
    /// non-ASCII characters as they are.
    static func appendEscaped(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings (ids, names, models) need no escapes: copy them whole.
        let copied = value.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                return false
            }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
            case 0x08: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "f"))
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension EventCoding {
    /// The event's JSON, byte-identical to ``encode(_:)``, written without `JSONEncoder`.
    public static func encodeCanonical<Payload: EventPayload & CanonicalJSONEncodable>(
        _ event: CloudEvent<Payload>
    ) -> Data {
        var output = CanonicalJSONWriter()
        output.beginObject()
        output.key("data")
        output.value(event.data)
        output.key("datacontenttype")
        output.string(dataContentType)
        output.key("id")
        output.string(event.id)
        output.key("source")
        output.string(event.source)
        output.key("specversion")
        output.string(specVersion)
        output.member("subject", event.subject)
        output.key("time")
        output.date(event.time)
        output.key("type")
        output.string(Payload.eventType)
        output.endObject()
        return Data(output.bytes)
    }
}

extension TokenUsage: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.key("audio_input_tokens"); output.integer(audioInputTokens)
        output.key("audio_output_tokens"); output.integer(audioOutputTokens)
        output.key("cache_write_1h_tokens"); output.integer(cacheWrite1hTokens)
        output.key("cache_write_5m_tokens"); output.integer(cacheWrite5mTokens)
        output.key("cached_input_read_tokens"); output.integer(cachedInputReadTokens)
        output.key("input_tokens"); output.integer(inputTokens)
        output.key("output_tokens"); output.integer(outputTokens)
        output.key("reasoning_tokens"); output.integer(reasoningTokens)
        output.endObject()
    }
}

extension ResponseData.Timings: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.key("duration_ms"); output.integer(durationMs)
        output.member("first_byte_ms", firstByteMs)
        output.key("received_at"); output.date(receivedAt)
        output.member("upstream_ms", upstreamMs)
        output.member("upstream_sent_at", upstreamSentAt)
        output.endObject()
    }
}

extension ResponseData.Routing: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.member("downgraded_from", downgradedFrom)
        output.key("policy"); output.string(policy)
        output.key("reason"); output.string(reason)
        output.endObject()
    }
}

extension ResponseData: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.member("customer", customer)
        output.key("endpoint"); output.string(endpoint)
        output.member("error_type", errorType)
        output.key("key_id"); output.string(keyID)
        output.key("outcome"); output.string(outcome.rawValue)
        output.key("project"); output.string(project)
        output.key("provider"); output.string(provider.rawValue)
        output.key("request_id"); output.string(requestID)
        output.key("requested_model"); output.string(requestedModel)
        if let routing {
            output.key("routing"); output.value(routing)
        }
        output.key("served_model"); output.string(servedModel)
        output.member("service_tier", serviceTier)
        output.key("status"); output.integer(status)
        output.key("stream"); output.bool(stream)
        output.key("tags"); output.stringMap(tags)
        output.key("team"); output.string(team)
        output.key("timings"); output.value(timings)
        output.key("usage"); output.value(usage)
        output.key("usage_source"); output.string(usageSource.rawValue)
        output.endObject()
    }
}

extension RequestData: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.member("customer", customer)
        output.key("endpoint"); output.string(endpoint)
        output.key("estimated_input_tokens"); output.integer(estimatedInputTokens)
        output.key("key_id"); output.string(keyID)
        output.member("max_output_tokens", maxOutputTokens)
        output.key("project"); output.string(project)
        output.key("provider"); output.string(provider.rawValue)
        output.key("received_at"); output.date(receivedAt)
        output.key("request_id"); output.string(requestID)
        output.key("requested_model"); output.string(requestedModel)
        output.member("reserved_cost_nano_usd", reservedCostNanoUSD?.nanoUSD)
        output.key("stream"); output.bool(stream)
        output.key("tags"); output.stringMap(tags)
        output.key("team"); output.string(team)
        output.endObject()
    }
}
