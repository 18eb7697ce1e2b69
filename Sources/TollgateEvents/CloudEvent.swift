public import Foundation

/// The `data` of one Tollgate event type.
///
/// Each payload type names its CloudEvents `type` (versioned, such as `tollgate.usage.v1`), the topic
/// it is published on (without the configurable prefix, see ``TopicCatalog``), and the message key
/// that keeps related events in order on one partition.
///
/// A breaking change to a payload is a new type with a new version (`tollgate.usage.v2`), never an
/// edit of an existing one: consumers of v1 keep working.
public protocol EventPayload: Codable, Sendable, Hashable {
    /// The CloudEvents `type` of events carrying this payload, such as `"tollgate.usage.v1"`.
    static var eventType: String { get }

    /// The topic this event type is published on, without the prefix (such as `"usage"`).
    static var topic: String { get }

    /// The message key to publish this payload with (see the topic's `message_key` in
    /// ``TopicCatalog``): the team id on the request, response and usage topics, the entity on
    /// compacted topics.
    var messageKey: String { get }
}

/// A Tollgate event: a CloudEvents 1.0 envelope in JSON structured mode around a typed payload.
///
/// The JSON form is:
///
/// ```json
/// {"data": {...}, "datacontenttype": "application/json", "id": "usage:req_01",
///  "source": "tollgate/cost/host-1", "specversion": "1.0", "subject": "team-search",
///  "time": "2026-11-29T08:00:00.123Z", "type": "tollgate.usage.v1"}
/// ```
///
/// `specversion`, `type` and `datacontenttype` are fixed by the Swift type and are not stored.
/// Decoding checks them: `specversion` must be `"1.0"`, `type` must equal `Payload.eventType`, and
/// `datacontenttype`, when present, must be `"application/json"`; otherwise it throws an
/// ``EventDecodingError``. Use ``EventHeader`` to find an event's type before choosing the payload
/// type, or ``AnyControlEvent`` for the control topic.
///
/// Event ids are derived from the input they come from (the usage event of request `R` has id
/// `usage:R`), so consumers can drop duplicates of at-least-once delivery.
///
/// Encode and decode with ``EventCoding`` so that times and key order follow the contract.
public struct CloudEvent<Payload: EventPayload>: Sendable, Hashable, Codable {
    /// Unique id of the event; the same input always produces the same id.
    public var id: String
    /// The producing service instance, such as `"tollgate/ingress/host-1"`.
    public var source: String
    /// When the event was produced (written as RFC 3339 UTC with milliseconds).
    public var time: Date
    /// Optional subject within the source, such as the team or budget the event is about.
    public var subject: String?
    /// The payload.
    public var data: Payload

    /// The CloudEvents `type`: always `Payload.eventType`.
    public var type: String { Payload.eventType }

    /// Creates an event.
    public init(id: String, source: String, time: Date, subject: String? = nil, data: Payload) {
        self.id = id
        self.source = source
        self.time = time
        self.subject = subject
        self.data = data
    }

    enum CodingKeys: String, CodingKey {
        case specVersion = "specversion"
        case id
        case source
        case type
        case time
        case subject
        case dataContentType = "datacontenttype"
        case data
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let specVersion = try container.decode(String.self, forKey: .specVersion)
        guard specVersion == EventCoding.specVersion else {
            throw EventDecodingError.unsupportedSpecVersion(found: specVersion)
        }
        let type = try container.decode(String.self, forKey: .type)
        guard type == Payload.eventType else {
            throw EventDecodingError.typeMismatch(expected: Payload.eventType, found: type)
        }
        if let contentType = try container.decodeIfPresent(String.self, forKey: .dataContentType),
            contentType != EventCoding.dataContentType
        {
            throw EventDecodingError.unsupportedDataContentType(found: contentType)
        }
        self.id = try container.decode(String.self, forKey: .id)
        self.source = try container.decode(String.self, forKey: .source)
        self.time = try container.decode(Date.self, forKey: .time)
        self.subject = try container.decodeIfPresent(String.self, forKey: .subject)
        self.data = try container.decode(Payload.self, forKey: .data)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(EventCoding.specVersion, forKey: .specVersion)
        try container.encode(id, forKey: .id)
        try container.encode(source, forKey: .source)
        try container.encode(type, forKey: .type)
        try container.encode(time, forKey: .time)
        try container.encodeIfPresent(subject, forKey: .subject)
        try container.encode(EventCoding.dataContentType, forKey: .dataContentType)
        try container.encode(data, forKey: .data)
    }
}

/// The envelope of an event without its `data`: enough to route or de-duplicate it.
///
/// A consumer that handles several event types reads the header first and then decodes the full
/// event with the matching payload type:
///
/// ```swift
/// let header = try EventHeader.decode(from: bytes)
/// switch header.type {
/// case UsageData.eventType: let event = try EventCoding.decode(UsageData.self, from: bytes)
/// default: break  // not for us
/// }
/// ```
///
/// Decoding checks `specversion == "1.0"` but does not look inside `data`.
public struct EventHeader: Sendable, Hashable, Decodable {
    /// The event id.
    public var id: String
    /// The CloudEvents `type`, such as `"tollgate.usage.v1"`.
    public var type: String
    /// The producing service instance.
    public var source: String
    /// When the event was produced.
    public var time: Date
    /// The optional subject.
    public var subject: String?

    /// Creates a header.
    public init(id: String, type: String, source: String, time: Date, subject: String? = nil) {
        self.id = id
        self.type = type
        self.source = source
        self.time = time
        self.subject = subject
    }

    enum CodingKeys: String, CodingKey {
        case specVersion = "specversion"
        case id, type, source, time, subject
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let specVersion = try container.decode(String.self, forKey: .specVersion)
        guard specVersion == EventCoding.specVersion else {
            throw EventDecodingError.unsupportedSpecVersion(found: specVersion)
        }
        self.id = try container.decode(String.self, forKey: .id)
        self.type = try container.decode(String.self, forKey: .type)
        self.source = try container.decode(String.self, forKey: .source)
        self.time = try container.decode(Date.self, forKey: .time)
        self.subject = try container.decodeIfPresent(String.self, forKey: .subject)
    }

    /// Reads the header of an encoded event.
    public static func decode(from data: Data) throws -> EventHeader {
        try EventCoding.makeDecoder().decode(EventHeader.self, from: data)
    }
}

/// Why bytes are not the expected Tollgate event.
///
/// Malformed JSON, missing fields and wrong field types surface as Foundation's `DecodingError`;
/// this type covers the envelope checks that come on top.
public enum EventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `specversion` is not `"1.0"`.
    case unsupportedSpecVersion(found: String)
    /// The envelope's `type` is not the one the decoder was asked for.
    case typeMismatch(expected: String, found: String)
    /// `datacontenttype` is present and not `"application/json"`.
    case unsupportedDataContentType(found: String)
    /// The `type` is not one the decoder knows (for example not a control event type).
    case unknownEventType(found: String, expectedOneOf: [String])

    public var description: String {
        switch self {
        case .unsupportedSpecVersion(let found):
            "unsupported CloudEvents specversion \"\(found)\" (expected \"1.0\")"
        case .typeMismatch(let expected, let found):
            "event type mismatch: expected \"\(expected)\", found \"\(found)\""
        case .unsupportedDataContentType(let found):
            "unsupported datacontenttype \"\(found)\" (expected \"application/json\")"
        case .unknownEventType(let found, let expected):
            "unknown event type \"\(found)\" (expected one of: \(expected.joined(separator: ", ")))"
        }
    }
}

/// JSON encoding and decoding of events, with the contract's settings.
///
/// - Keys are sorted and slashes are not escaped, so the same event always encodes to the same
///   bytes.
/// - Dates are RFC 3339 strings in UTC with milliseconds (`2026-11-29T08:00:00.123Z`); decoding
///   also accepts other fractional precisions, none, and numeric offsets (see ``EventTime``).
/// - Field names are spelled out in each type's `CodingKeys`; no key strategy is applied.
///
/// ```swift
/// let bytes = try EventCoding.encode(event)
/// let back = try EventCoding.decode(UsageData.self, from: bytes)   // CloudEvent<UsageData>
/// ```
public enum EventCoding {
    /// The CloudEvents spec version every event carries: `"1.0"`.
    public static let specVersion = "1.0"
    /// The `datacontenttype` every event carries: `"application/json"`.
    public static let dataContentType = "application/json"

    /// A new encoder with the contract's settings.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(EventTime.format(date))
        }
        return encoder
    }

    /// A new decoder with the contract's settings.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = EventTime.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an RFC 3339 date-time: \"\(text)\"")
            }
            return date
        }
        return decoder
    }

    /// Encodes an event (or any value of the contract) to JSON.
    public static func encode(_ value: some Encodable) throws -> Data {
        try makeEncoder().encode(value)
    }

    /// Decodes an event whose payload is `payload`, checking its `specversion` and `type`.
    public static func decode<Payload: EventPayload>(
        _ payload: Payload.Type, from data: Data
    ) throws -> CloudEvent<Payload> {
        try makeDecoder().decode(CloudEvent<Payload>.self, from: data)
    }
}
