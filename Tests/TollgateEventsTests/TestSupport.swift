import Foundation
import TollgateEvents

/// A parsed JSON value, for comparing JSON documents structurally (key order and whitespace do
/// not matter; booleans, integers and floats stay distinct).
enum JSONValue: Codable, Hashable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    init(parsing data: Data) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: data)
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }

    var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    var description: String {
        (try? encoded()).map { String(decoding: $0, as: UTF8.self) } ?? "<unencodable>"
    }

    /// The paths where two values differ, for readable failures.
    func differences(from other: JSONValue, at path: String = "$") -> [String] {
        switch (self, other) {
        case (.object(let a), .object(let b)):
            var result: [String] = []
            for key in Set(a.keys).union(b.keys).sorted() {
                switch (a[key], b[key]) {
                case (let x?, let y?): result += x.differences(from: y, at: "\(path).\(key)")
                case (.some, nil): result.append("\(path).\(key): only in the first")
                case (nil, .some): result.append("\(path).\(key): only in the second")
                case (nil, nil): break
                }
            }
            return result
        case (.array(let a), .array(let b)) where a.count == b.count:
            return zip(a, b).enumerated().flatMap { $1.0.differences(from: $1.1, at: "\(path)[\($0)]") }
        default:
            return self == other ? [] : ["\(path): \(self) != \(other)"]
        }
    }
}

/// Files of the repository, located from this source file.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TollgateEventsTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static let schemas = root.appendingPathComponent("schemas")

    /// The names of the event schema files (every `*.schema.json` but the shared ones).
    static var eventSchemaFiles: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: schemas.path)) ?? []
        return names.filter {
            // Shared definitions, the topic catalog, the price catalog and the service configuration are not
            // event types.
            $0.hasSuffix(".schema.json") && !["common.schema.json", "topics.schema.json", "catalog.schema.json",
                                              "service-config.schema.json"].contains($0)
        }.sorted()
    }

    static func json(_ name: String) throws -> JSONValue {
        try JSONValue(parsing: Data(contentsOf: schemas.appendingPathComponent(name)))
    }
}

/// Decodes `data` as an event of `payload` and encodes it again.
func roundTrip<P: EventPayload>(_ payload: P.Type, _ data: Data) throws -> Data {
    try EventCoding.encode(EventCoding.decode(payload, from: data))
}

/// A date from an RFC 3339 literal that is known to be valid.
func date(_ text: String) -> Date {
    EventTime.parse(text)!
}
