internal import Foundation

/// The JSON type a request field must have, as named in ``RequestError/wrongType(field:expected:)``.
enum ExpectedJSON: String, Sendable {
    case string = "a string"
    case boolean = "a boolean"
    case integer = "an integer"
    case array = "an array"
    case object = "an object"
}

/// Thrown by request wire types when a field they read has the wrong JSON type.
struct FieldTypeMismatch: Error {
    var field: String
    var expected: ExpectedJSON
}

/// Thrown by request wire types when a field Tollgate needs is absent or null.
struct FieldMissing: Error {
    var field: String
}

/// A coding key for any member name.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { self.stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Typed, path-aware reads of a request object's members, for the request wire types.
///
/// Every read treats an absent member and `null` alike (`nil`), and turns a value of the wrong JSON
/// type into ``FieldTypeMismatch`` with the member's dotted path (`stream_options.include_usage`).
struct RequestFields {
    /// The endpoint the body is decoded for.
    let endpoint: Endpoint?
    let container: KeyedDecodingContainer<AnyKey>
    /// The dotted path of this object, ending in `.` (empty for the body itself).
    let prefix: String

    init(_ decoder: any Decoder) throws {
        self.container = try decoder.container(keyedBy: AnyKey.self)
        self.prefix = ""
        self.endpoint = decoder.userInfo[.tollgateEndpoint] as? Endpoint
    }

    private init(container: KeyedDecodingContainer<AnyKey>, prefix: String, endpoint: Endpoint?) {
        self.endpoint = endpoint
        self.container = container
        self.prefix = prefix
    }

    private func present(_ name: String) throws -> AnyKey? {
        let key = AnyKey(name)
        guard container.contains(key) else { return nil }
        if (try? container.decodeNil(forKey: key)) == true { return nil }
        return key
    }

    private func mismatch(_ name: String, _ expected: ExpectedJSON) -> FieldTypeMismatch {
        FieldTypeMismatch(field: prefix + name, expected: expected)
    }

    func string(_ name: String) throws -> String? {
        guard let key = try present(name) else { return nil }
        do { return try container.decode(String.self, forKey: key) } catch { throw mismatch(name, .string) }
    }

    func bool(_ name: String) throws -> Bool? {
        guard let key = try present(name) else { return nil }
        do { return try container.decode(Bool.self, forKey: key) } catch { throw mismatch(name, .boolean) }
    }

    /// An integer; a number with an integral value written with a fraction or exponent (`100.0`,
    /// `1e3`) is accepted too, as the providers' own parsers do.
    func integer(_ name: String) throws -> Int? {
        guard let key = try present(name) else { return nil }
        if let value = try? container.decode(Int.self, forKey: key) { return value }
        if let value = try? container.decode(Double.self, forKey: key), value.rounded() == value,
           let integer = Int(exactly: value)
        {
            return integer
        }
        throw mismatch(name, .integer)
    }

    /// The number of elements of an array member.
    func arrayCount(_ name: String) throws -> Int? {
        guard let key = try present(name) else { return nil }
        do {
            let array = try container.nestedUnkeyedContainer(forKey: key)
            return array.count ?? 0
        } catch {
            throw mismatch(name, .array)
        }
    }

    /// An object member's fields.
    func object(_ name: String) throws -> RequestFields? {
        guard let key = try present(name) else { return nil }
        do {
            return RequestFields(container: try container.nestedContainer(keyedBy: AnyKey.self, forKey: key),
                                 prefix: prefix + name + ".", endpoint: endpoint)
        } catch {
            throw mismatch(name, .object)
        }
    }

    /// The elements of an array member that are objects (other elements are passed over).
    func objects(_ name: String) throws -> [RequestFields]? {
        guard let key = try present(name) else { return nil }
        var array: any UnkeyedDecodingContainer
        do { array = try container.nestedUnkeyedContainer(forKey: key) } catch { throw mismatch(name, .array) }
        var result: [RequestFields] = []
        var index = 0
        while !array.isAtEnd {
            let before = array.currentIndex
            if let element = try? array.nestedContainer(keyedBy: AnyKey.self) {
                result.append(RequestFields(container: element, prefix: "\(prefix)\(name).\(index).", endpoint: endpoint))
            } else {
                _ = try? array.decode(SkippedValue.self)
            }
            guard array.currentIndex > before else { break }
            index += 1
        }
        return result
    }
}

/// Any JSON value, read and thrown away.
struct SkippedValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

enum RequestDecoding {
    /// Decodes a request body into a wire type, mapping every failure to a ``RequestError``.
    /// The wire type finds the endpoint in its decoder's `userInfo[.tollgateEndpoint]`.
    static func decode<Wire: Decodable>(_ type: Wire.Type, from body: Data, endpoint: Endpoint) throws(RequestError) -> Wire {
        guard UTF8Validation.isValid(body) else { throw .invalidUTF8 }
        // Strict syntax first: Foundation's parser accepts some non-JSON (trailing commas) that the
        // providers refuse.
        switch JSONScanner.validate(body) {
        case .failure(let error): throw .malformedJSON(error.description)
        case .success(let first) where first != .openBrace: throw .notAnObject
        case .success: break
        }
        do {
            // Validated above: the scanned decoder reads just the members the wire type asks for.
            return try ScannedDecoder.decode(Wire.self, from: body, userInfo: [.tollgateEndpoint: endpoint],
                                             validated: true)
        } catch let error as FieldTypeMismatch {
            throw .wrongType(field: error.field, expected: error.expected.rawValue)
        } catch let error as FieldMissing {
            throw .missingField(error.field)
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw .notAnObject
        } catch DecodingError.valueNotFound(_, let context) where context.codingPath.isEmpty {
            throw .notAnObject
        } catch DecodingError.dataCorrupted(let context) {
            throw .malformedJSON(detail(context))
        } catch {
            throw .malformedJSON(String(describing: error))
        }
    }

    private static func detail(_ context: DecodingError.Context) -> String {
        guard let underlying = context.underlyingError else { return context.debugDescription }
        let nsError = underlying as NSError
        if let description = nsError.userInfo[NSDebugDescriptionErrorKey] as? String {
            return description
        }
        return context.debugDescription
    }
}

/// Strict UTF-8 validation (no overlong forms, no surrogates, nothing above U+10FFFF).
enum UTF8Validation {
    static func isValid(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in isValid(raw.assumingMemoryBound(to: UInt8.self)) }
    }

    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            @inline(__always) func continuation(_ offset: Int) -> UInt8? {
                let index = i + offset
                guard index < n, bytes[index] & 0xC0 == 0x80 else { return nil }
                return bytes[index]
            }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(1) != nil else { return false }
                i += 2
            case 0xE0...0xEF:
                guard let b1 = continuation(1), continuation(2) != nil else { return false }
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 > 0x9F { return false }  // surrogates
                i += 3
            case 0xF0...0xF4:
                guard let b1 = continuation(1), continuation(2) != nil, continuation(3) != nil else { return false }
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 > 0x8F { return false }  // above U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
