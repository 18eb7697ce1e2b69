internal import Foundation

/// Byte-preserving rewrites of a request body's members (see ``ProviderDialect/upstreamBody(endpoint:body:facts:model:)``).
enum BodyRewrite {
    /// Edits that set the top-level `model` to `model`: every `model` member's value is replaced (JSON
    /// allows duplicate keys and servers read the last one, so all are rewritten); if there is none,
    /// `"model":…` is inserted as the first member.
    static func setModel(_ model: String, scanner: JSONScanner, root: JSONObjectLayout) -> [ByteEdit] {
        let literal = Array(JSONText.string(model).utf8)
        let existing = scanner.members(of: root, named: "model")
        if existing.isEmpty {
            return [prepend(Array("\"model\":".utf8) + literal, to: root)]
        }
        return existing.map { ByteEdit(range: $0.valueRange, replacement: literal) }
    }

    /// Inserts `member` (`"key":value`) as the first member of `object`.
    static func prepend(_ member: [UInt8], to object: JSONObjectLayout) -> ByteEdit {
        let text = object.members.isEmpty ? member : member + [.comma]
        return ByteEdit(range: (object.open + 1)..<(object.open + 1), replacement: text)
    }

    /// Inserts `member` (`"key":value`) right after the last member of `object`.
    static func append(_ member: [UInt8], to object: JSONObjectLayout) -> ByteEdit {
        guard let last = object.members.last else { return prepend(member, to: object) }
        let position = last.valueRange.upperBound
        return ByteEdit(range: position..<position, replacement: [.comma] + member)
    }

    /// Runs `body` on the body's top-level object and applies the edits it returns; the body comes back
    /// unchanged when it is not a JSON object or there is nothing to edit.
    static func rewrite(_ data: Data, _ body: (JSONScanner, JSONObjectLayout) -> [ByteEdit]) -> Data {
        let edits: [ByteEdit] = JSONScanner.with(data) { scanner in
            guard let root = scanner.rootObject() else { return [] }
            return body(scanner, root)
        }
        return ByteEdit.apply(edits, to: data)
    }
}

/// Arithmetic on provider token counts: absent and negative counts are 0, differences never go below 0,
/// sums saturate instead of overflowing.
enum TokenCount {
    static func clamp(_ value: Int64?) -> Int64 {
        max(0, value ?? 0)
    }

    /// `total` minus each of `parts`, never below 0.
    static func remainder(_ total: Int64?, minus parts: Int64...) -> Int64 {
        var result = clamp(total)
        for part in parts {
            result -= min(result, max(0, part))
        }
        return result
    }

    static func sum(_ values: Int64...) -> Int64 {
        var total: Int64 = 0
        for value in values {
            let (result, overflow) = total.addingReportingOverflow(max(0, value))
            total = overflow ? .max : result
        }
        return total
    }
}

extension CodingUserInfoKey {
    /// The ``Endpoint`` a request body is decoded for.
    static let tollgateEndpoint = CodingUserInfoKey(rawValue: "tollgate.endpoint")!
}

/// Lenient decoding of response bodies and stream events: wire types read only the fields they need,
/// and a body that does not decode yields `nil`.
enum ResponseDecoding {
    /// Decodes a response body, stream event or error body (``ScannedDecoder``: no tree, no copies).
    static func decode<Wire: Decodable>(_ type: Wire.Type, from data: Data) -> Wire? {
        try? ScannedDecoder.decode(Wire.self, from: data)
    }

    /// Decodes only the named top-level members of a JSON object (a response's `model` and `usage`,
    /// skipping its bulk, such as `choices` or `content`): the scanner finds their bytes, and the decoder
    /// sees a small object made of just those. Falls back to decoding everything when `data` is not an
    /// object.
    static func decode<Wire: Decodable>(_ type: Wire.Type, from data: Data, keeping names: [String]) -> Wire? {
        let slim: Data? = JSONScanner.with(data) { scanner in
            guard let root = scanner.rootObject() else { return nil }
            var output = Data([UInt8(ascii: "{")])
            for member in root.members where names.contains(where: { scanner.key(of: member, is: $0) }) {
                if output.count > 1 { output.append(UInt8(ascii: ",")) }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: scanner.bytes[member.keyRange]))
                output.append(UInt8(ascii: ":"))
                output.append(contentsOf: UnsafeBufferPointer(rebasing: scanner.bytes[member.valueRange]))
            }
            output.append(UInt8(ascii: "}"))
            return output
        }
        return decode(Wire.self, from: slim ?? data)
    }

    static func decode<Wire: Decodable>(_ type: Wire.Type, from text: String) -> Wire? {
        decode(Wire.self, from: Data(text.utf8))
    }
}
