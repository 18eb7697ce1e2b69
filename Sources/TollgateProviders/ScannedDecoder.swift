internal import Foundation

/// Decodes the providers' response wire types straight from JSON bytes, without building a tree.
///
/// Foundation's `JSONDecoder` parses the whole document into its own map and allocates per value;
/// responses and stream chunks are read on every call, where that showed as the largest share of the
/// proxy's own CPU. This decoder checks the document with the strict ``JSONScanner/validate(_:)``
/// first, then reads only the members a wire type asks for, locating each value by its byte range.
///
/// It answers what `JSONDecoder` (default strategies) answers for the wire types here: absent
/// members and `null` are `nil` for `decodeIfPresent`; a value of another JSON type is a
/// `DecodingError.typeMismatch`; integers written with a fraction or exponent decode when their value
/// is integral (`1.0`, `1e3`); with duplicate keys the first one wins.
///
/// ```swift
/// let wire = try ScannedDecoder.decode(ResponseWire.self, from: body)
/// ```
enum ScannedDecoder {
    /// Decodes `type` from `data`; throws on malformed JSON (strict RFC 8259) and on any mismatch.
    ///
    /// - Parameters:
    ///   - userInfo: what the wire type finds in its decoder's `userInfo`.
    ///   - validated: the caller already checked `data` with ``JSONScanner/validate(_:)``.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, userInfo: [CodingUserInfoKey: Any] = [:],
                                     validated: Bool = false) throws -> T {
        try data.withUnsafeBytes { raw in
            let scanner = JSONScanner(raw.assumingMemoryBound(to: UInt8.self))
            let start = validated ? scanner.skipWhitespace(from: 0) : try scanner.validatedRoot()
            guard let end = scanner.valueEnd(from: start) else { throw Self.corrupted([]) }
            return try T(from: ScannedValueDecoder(scanner: scanner, range: start..<end, codingPath: [],
                                                   userInfo: userInfo))
        }
    }

    static func corrupted(_ path: [any CodingKey], _ text: String = "The given data was not valid JSON.") -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: path, debugDescription: text))
    }

    static func mismatch(_ type: Any.Type, _ path: [any CodingKey], _ found: String) -> DecodingError {
        .typeMismatch(type, DecodingError.Context(
            codingPath: path, debugDescription: "Expected to decode \(type) but found \(found) instead."))
    }
}

extension JSONScanner {
    /// Offset of the document's first value once the whole document is checked (strict grammar).
    fileprivate func validatedRoot() throws -> Int {
        if case .failure(let error) = validateBuffer() {
            throw ScannedDecoder.corrupted([], "The given data was not valid JSON: \(error)")
        }
        return skipWhitespace(from: 0)
    }

    /// The elements of the array whose `[` is at `index`, as byte ranges.
    func arrayElements(at index: Int) -> [Range<Int>]? {
        guard index < bytes.count, bytes[index] == .openBracket else { return nil }
        var elements: [Range<Int>] = []
        var i = skipWhitespace(from: index + 1)
        guard i < bytes.count else { return nil }
        if bytes[i] == .closeBracket { return [] }
        while true {
            guard let end = valueEnd(from: i) else { return nil }
            elements.append(i..<end)
            i = skipWhitespace(from: end)
            guard i < bytes.count else { return nil }
            if bytes[i] == .comma {
                i = skipWhitespace(from: i + 1)
            } else if bytes[i] == .closeBracket {
                return elements
            } else {
                return nil
            }
        }
    }

    /// A short name of the JSON type at `range`, for mismatch messages.
    func typeName(of range: Range<Int>) -> String {
        switch firstByte(of: range) {
        case .quote: return "a string"
        case .openBrace: return "a dictionary"
        case .openBracket: return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "bool"
        case UInt8(ascii: "n"): return "null"
        default: return "a number"
        }
    }

    func isNull(_ range: Range<Int>) -> Bool {
        range.count == 4 && bytes[range.lowerBound] == UInt8(ascii: "n")
    }

    /// The integer at `range`: plain digits directly, otherwise through `Double` when integral.
    func integer<T: FixedWidthInteger>(_ type: T.Type, at range: Range<Int>) -> T? {
        guard let first = firstByte(of: range), first == UInt8(ascii: "-") || (0x30...0x39).contains(first) else {
            return nil
        }
        var value: T = 0
        var i = range.lowerBound
        let negative = first == UInt8(ascii: "-")
        if negative { i += 1 }
        var plain = i < range.upperBound
        while i < range.upperBound {
            let b = bytes[i]
            guard (0x30...0x39).contains(b) else {
                plain = false
                break
            }
            let digit = T(b - 0x30)
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(digit)
                : shifted.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = next
            i += 1
        }
        if plain { return value }
        guard let double = self.double(at: range) else { return nil }
        return T(exactly: double)
    }

    func double(at range: Range<Int>) -> Double? {
        guard let first = firstByte(of: range), first == UInt8(ascii: "-") || (0x30...0x39).contains(first) else {
            return nil
        }
        return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self))
    }

    fileprivate func validateBuffer() -> Result<UInt8, JSONSyntaxError> {
        Result { () throws(JSONSyntaxError) -> UInt8 in try validateDocument() }
    }
}

/// One JSON value as a `Decoder`.
///
/// The coding path is kept as the parent's path plus this value's key and only joined when asked for
/// (by a nested container, or an error): a member read that succeeds then allocates no path array.
private struct ScannedValueDecoder: Decoder, SingleValueDecodingContainer {
    let scanner: JSONScanner
    let range: Range<Int>
    let parentPath: [any CodingKey]
    let key: (any CodingKey)?
    let userInfo: [CodingUserInfoKey: Any]

    init(scanner: JSONScanner, range: Range<Int>, codingPath: [any CodingKey], key: (any CodingKey)? = nil,
         userInfo: [CodingUserInfoKey: Any]) {
        self.scanner = scanner
        self.range = range
        self.parentPath = codingPath
        self.key = key
        self.userInfo = userInfo
    }

    var codingPath: [any CodingKey] {
        guard let key else { return parentPath }
        return parentPath + [key]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let layout = scanner.object(at: range.lowerBound) else {
            throw ScannedDecoder.mismatch([String: Any].self, codingPath, scanner.typeName(of: range))
        }
        return KeyedDecodingContainer(ScannedKeyedContainer<Key>(scanner: scanner, layout: layout, codingPath: codingPath,
                                                               userInfo: userInfo))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard let elements = scanner.arrayElements(at: range.lowerBound) else {
            throw ScannedDecoder.mismatch([Any].self, codingPath, scanner.typeName(of: range))
        }
        return ScannedUnkeyedContainer(scanner: scanner, elements: elements, codingPath: codingPath, userInfo: userInfo)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: SingleValueDecodingContainer

    func decodeNil() -> Bool { scanner.isNull(range) }

    func decode(_ type: Bool.Type) throws -> Bool {
        switch scanner.firstByte(of: range) {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw ScannedDecoder.mismatch(type, codingPath, scanner.typeName(of: range))
        }
    }

    func decode(_ type: String.Type) throws -> String {
        guard scanner.firstByte(of: range) == .quote else {
            throw ScannedDecoder.mismatch(type, codingPath, scanner.typeName(of: range))
        }
        guard let string = scanner.decodeString(literal: range) else { throw ScannedDecoder.corrupted(codingPath) }
        return string
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard let value = scanner.double(at: range) else {
            throw ScannedDecoder.mismatch(type, codingPath, scanner.typeName(of: range))
        }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let value = scanner.integer(type, at: range) else {
            if scanner.typeName(of: range) == "a number" {
                throw ScannedDecoder.corrupted(codingPath, "Number does not fit in \(type).")
            }
            throw ScannedDecoder.mismatch(type, codingPath, scanner.typeName(of: range))
        }
        return value
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }
}

private struct ScannedKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let scanner: JSONScanner
    let layout: JSONObjectLayout
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    var allKeys: [Key] {
        layout.members.compactMap { member in
            scanner.decodeString(literal: member.keyRange).flatMap { Key(stringValue: $0) }
        }
    }

    /// The value of the first member named `key` (duplicates: the first one wins, as in `JSONDecoder`).
    private func valueRange(_ key: Key) -> Range<Int>? {
        let name = key.stringValue
        for member in layout.members where scanner.key(of: member, is: name) {
            return member.valueRange
        }
        return nil
    }

    private func value(_ key: Key) throws -> ScannedValueDecoder {
        guard let range = valueRange(key) else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(
                codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)."))
        }
        return ScannedValueDecoder(scanner: scanner, range: range, codingPath: codingPath, key: key, userInfo: userInfo)
    }

    func contains(_ key: Key) -> Bool { valueRange(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key).decodeNil() }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try value(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try value(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try value(key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try value(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try value(key).decode(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try value(key).decode(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try value(key).decode(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try value(key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try value(key).decode(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try value(key).decode(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try value(key).decode(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try value(key).decode(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try value(key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try value(key).decode(type) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try value(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> {
        try value(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try value(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ScannedValueDecoder(scanner: scanner, range: layout.open..<(layout.close + 1), codingPath: codingPath,
                            userInfo: userInfo)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { try value(key) }
}

private struct ScannedUnkeyedContainer: UnkeyedDecodingContainer {
    struct IndexKey: CodingKey {
        var intValue: Int?
        var stringValue: String { "Index \(intValue ?? 0)" }
        init(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { nil }
    }

    let scanner: JSONScanner
    let elements: [Range<Int>]
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]
    var currentIndex = 0

    init(scanner: JSONScanner, elements: [Range<Int>], codingPath: [any CodingKey],
         userInfo: [CodingUserInfoKey: Any]) {
        self.scanner = scanner
        self.elements = elements
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    /// The next element; moves past it only once it decoded.
    private mutating func next<T>(_ type: T.Type, _ body: (ScannedValueDecoder) throws -> T) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, DecodingError.Context(
                codingPath: codingPath + [IndexKey(intValue: currentIndex)], debugDescription: "Unkeyed container is at end."))
        }
        let value = try body(ScannedValueDecoder(scanner: scanner, range: elements[currentIndex],
                                                 codingPath: codingPath, key: IndexKey(intValue: currentIndex),
                                                 userInfo: userInfo))
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if scanner.isNull(elements[currentIndex]) {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type) { try $0.decode(type) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type) { try $0.decode(type) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(type) { try $0.decode(type) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey> {
        try next(KeyedDecodingContainer<NestedKey>.self) { try $0.container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next((any UnkeyedDecodingContainer).self) { try $0.unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        try next((any Decoder).self) { $0 }
    }
}
