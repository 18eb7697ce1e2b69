import Foundation
import Testing
import TollgateEvents

@Suite struct EnvelopeTests {
    let revoked = KeyRevokedEvent(
        id: "key-revoked:key_1", source: "tollgate/admin/host-1",
        time: date("2026-11-29T08:00:00.123Z"), subject: "key:key_1",
        data: KeyRevokedData(keyID: "key_1", revokedAt: date("2026-11-29T08:00:00Z"), reason: "a/b"))

    @Test func encodesStableBytes() throws {
        let json = String(decoding: try EventCoding.encode(revoked), as: UTF8.self)
        #expect(
            json == #"{"data":{"key_id":"key_1","reason":"a/b","revoked_at":"2026-11-29T08:00:00.000Z"},"#
                + #""datacontenttype":"application/json","id":"key-revoked:key_1","source":"tollgate/admin/host-1","#
                + #""specversion":"1.0","subject":"key:key_1","time":"2026-11-29T08:00:00.123Z","#
                + #""type":"tollgate.control.key.revoked.v1"}"#)
        #expect(try EventCoding.encode(revoked) == EventCoding.encode(revoked))
    }

    @Test func omitsAbsentOptionals() throws {
        var event = revoked
        event.subject = nil
        event.data.reason = nil
        let value = try JSONValue(parsing: EventCoding.encode(event))
        #expect(value["subject"] == nil)
        #expect(value["data"]?["reason"] == nil)
        #expect(try EventCoding.decode(KeyRevokedData.self, from: EventCoding.encode(event)) == event)
    }

    @Test func roundTrips() throws {
        #expect(try EventCoding.decode(KeyRevokedData.self, from: EventCoding.encode(revoked)) == revoked)
    }

    @Test func rejectsAnotherType() throws {
        let data = try EventCoding.encode(revoked)
        #expect(
            throws: EventDecodingError.typeMismatch(
                expected: "tollgate.control.key.created.v1", found: "tollgate.control.key.revoked.v1")
        ) {
            try EventCoding.decode(KeyCreatedData.self, from: data)
        }
        let error = EventDecodingError.typeMismatch(expected: "a.v1", found: "b.v1")
        #expect(error.description == #"event type mismatch: expected "a.v1", found "b.v1""#)
    }

    private func mutated(_ key: String, _ value: JSONValue?) throws -> Data {
        guard case .object(var object) = try JSONValue(parsing: EventCoding.encode(revoked)) else {
            Issue.record("not an object")
            return Data()
        }
        object[key] = value
        return try JSONValue.object(object).encoded()
    }

    @Test func rejectsOtherSpecVersions() throws {
        let data = try mutated("specversion", .string("0.3"))
        #expect(throws: EventDecodingError.unsupportedSpecVersion(found: "0.3")) {
            try EventCoding.decode(KeyRevokedData.self, from: data)
        }
        #expect(throws: EventDecodingError.unsupportedSpecVersion(found: "0.3")) {
            try EventHeader.decode(from: data)
        }
        #expect(throws: DecodingError.self) {
            try EventCoding.decode(KeyRevokedData.self, from: mutated("specversion", nil))
        }
    }

    @Test func checksDataContentType() throws {
        #expect(throws: EventDecodingError.unsupportedDataContentType(found: "application/xml")) {
            try EventCoding.decode(KeyRevokedData.self, from: mutated("datacontenttype", .string("application/xml")))
        }
        // Optional in CloudEvents: absent is accepted.
        #expect(try EventCoding.decode(KeyRevokedData.self, from: mutated("datacontenttype", nil)) == revoked)
    }

    @Test func headerIgnoresData() throws {
        let data = try mutated("data", .int(42))
        let header = try EventHeader.decode(from: data)
        #expect(header.type == KeyRevokedData.eventType)
        #expect(header.id == "key-revoked:key_1")
        #expect(header.source == "tollgate/admin/host-1")
        #expect(header.subject == "key:key_1")
        #expect(header.time == date("2026-11-29T08:00:00.123Z"))
        #expect(throws: DecodingError.self) { try EventCoding.decode(KeyRevokedData.self, from: data) }
    }

    @Test(arguments: [
        ("2026-11-29T08:00:00.123Z", "2026-11-29T08:00:00.123Z"),
        ("2026-11-29T08:00:00Z", "2026-11-29T08:00:00.000Z"),
        ("2026-11-29T08:00:00.1Z", "2026-11-29T08:00:00.100Z"),
        ("2026-11-29T08:00:00.123456789Z", "2026-11-29T08:00:00.123Z"),
        ("2026-11-29T08:00:00.9996Z", "2026-11-29T08:00:01.000Z"),
        ("2026-11-29t08:00:00.5z", "2026-11-29T08:00:00.500Z"),
        ("2026-11-29T10:30:00.250+02:30", "2026-11-29T08:00:00.250Z"),
        ("2026-11-28T23:00:00-09:00", "2026-11-29T08:00:00.000Z"),
        ("2024-02-29T23:59:59.999Z", "2024-02-29T23:59:59.999Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        ("1969-12-31T23:59:59.001Z", "1969-12-31T23:59:59.001Z"),
        ("2000-03-01T00:00:00Z", "2000-03-01T00:00:00.000Z"),
    ])
    func parsesRFC3339WithOrWithoutFractions(text: String, formatted: String) throws {
        let parsed = try #require(EventTime.parse(text))
        #expect(EventTime.format(parsed) == formatted)
        // Through the decoder too.
        let decoded = try EventCoding.makeDecoder().decode([Date].self, from: Data("[\"\(text)\"]".utf8))
        #expect(decoded == [parsed])
    }

    @Test func agreesWithFoundationOnTheEpoch() throws {
        #expect(EventTime.parse("2026-11-29T08:00:00Z") == Date(timeIntervalSince1970: 1_795_939_200))
        #expect(EventTime.format(Date(timeIntervalSince1970: 1_795_939_200.123)) == "2026-11-29T08:00:00.123Z")
        #expect(EventTime.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test(arguments: [
        "", "2026-11-29", "2026-11-29T08:00:00", "2026-11-29 08:00:00Z", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T08:60:00Z",
        "2026-11-29T08:00:60Z", "2026-11-29T08:00:00.Z", "2026-11-29T08:00:00+0200", "2026-11-29T08:00:00Zx",
        "26-11-29T08:00:00Z", "2026-11-29T08:00:00.12a3Z",
    ])
    func rejectsMalformedTimes(text: String) throws {
        #expect(EventTime.parse(text) == nil)
        #expect(throws: DecodingError.self) {
            try EventCoding.makeDecoder().decode([Date].self, from: Data("[\"\(text)\"]".utf8))
        }
    }
}
