import Crypto
public import Foundation
public import TollgateEvents

/// An e-mail address with an optional display name: `ops@example.com` or `Tollgate <ops@example.com>`.
///
/// Addresses are ASCII `local@domain` (no SMTPUTF8); display names may be any text and are encoded for
/// the header when needed.
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The display name, if any.
    public var displayName: String?
    /// `local@domain`.
    public var address: String

    /// Creates an address without checking it.
    public init(address: String, displayName: String? = nil) {
        self.address = address
        self.displayName = displayName
    }

    /// Why text is not an e-mail address.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `addr@example.com`, `<addr@example.com>`, `Name <addr@example.com>` or
    /// `"Name, Quoted" <addr@example.com>`.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var name: String?
        var address = trimmed
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var display = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if display.count >= 2, display.hasPrefix("\""), display.hasSuffix("\"") {
                display = String(display.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                    .replacingOccurrences(of: "\\\\", with: "\\")
            }
            name = display.isEmpty ? nil : display
        }
        guard Self.isValidAddress(address) else {
            throw ParseError(description: "\"\(text)\" is not an e-mail address (local@domain, ASCII)")
        }
        if let name, name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ParseError(description: "\"\(text)\": the display name contains control characters")
        }
        self.init(address: address, displayName: name)
    }

    /// The part after `@`.
    public var domain: String {
        address.split(separator: "@", omittingEmptySubsequences: false).last.map(String.init) ?? ""
    }

    /// `Name <addr>` or `addr`.
    public var description: String {
        displayName.map { "\($0) <\(address)>" } ?? address
    }

    /// The address as written in a header: the display name as atoms, a quoted string, or RFC 2047 encoded
    /// words, then `<addr>`.
    var headerValue: String {
        guard let displayName, !displayName.isEmpty else { return address }
        return "\(EmailFormat.phrase(displayName)) <\(address)>"
    }

    static let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".utf8)

    static func isValidAddress(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, address.utf8.count <= 254 else { return false }
        let local = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard local.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { atext.contains($0) } }) else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A)
                    || ($0 >= 0x61 && $0 <= 0x7A) || $0 == UInt8(ascii: "-") }
        }
    }
}

/// An RFC 5322 message.
public struct EmailMessage: Sendable, Hashable {
    /// `From`.
    public var from: MailAddress
    /// `To`.
    public var to: [MailAddress]
    /// `Subject`, as text (encoded when rendered).
    public var subject: String
    /// `Message-ID`, with its angle brackets.
    public var messageID: String
    /// `Date`.
    public var date: Date
    /// The plain-text body.
    public var text: String
    /// Extra headers, in order, with ASCII values (`X-Tollgate-Alert-Id` and the like).
    public var extraHeaders: [WebhookFormat.Header]

    public init(from: MailAddress, to: [MailAddress], subject: String, messageID: String, date: Date, text: String,
                extraHeaders: [WebhookFormat.Header] = []) {
        self.from = from
        self.to = to
        self.subject = subject
        self.messageID = messageID
        self.date = date
        self.text = text
        self.extraHeaders = extraHeaders
    }

    /// The message's bytes: headers folded at 78 characters, CRLF line ends, a UTF-8 plain-text body in
    /// quoted-printable.
    public func rendered() -> Data {
        var lines: [String] = []
        lines.append("Date: " + EmailFormat.date(date))
        lines.append(EmailFormat.addressHeader("From", [from]))
        lines.append(EmailFormat.addressHeader("To", to))
        lines.append(EmailFormat.unstructuredHeader("Subject", subject))
        lines.append("Message-ID: " + messageID)
        lines.append("MIME-Version: 1.0")
        lines.append("Content-Type: text/plain; charset=utf-8")
        lines.append("Content-Transfer-Encoding: quoted-printable")
        lines.append("Auto-Submitted: auto-generated")
        for header in extraHeaders { lines.append("\(header.name): \(header.value)") }
        var output = lines.joined(separator: "\r\n") + "\r\n\r\n"
        output += EmailFormat.quotedPrintable(text)
        output += "\r\n"
        return Data(output.utf8)
    }
}

/// What an e-mail channel sends: one RFC 5322 message per alert and channel.
///
/// - `Subject: [Tollgate <severity>] <title>`, RFC 2047-encoded (`=?UTF-8?B?...?=`) when not ASCII;
/// - `Message-ID: <alert.<32 hex digits>@<from's domain>>`, the hex digits being the start of the SHA-256 of
///   `<alert_id>#<channel>` (the delivery id): the same on every attempt, so a mail system or reader can
///   drop a duplicate;
/// - `Date` (the attempt's time), `From`, `To`, `MIME-Version`, `Auto-Submitted: auto-generated` (RFC 3834,
///   so auto-responders stay quiet), `X-Tollgate-Alert-Id`, `X-Tollgate-Delivery`;
/// - a `text/plain; charset=utf-8` body in quoted-printable: title, message, facts, observations, ids.
public enum EmailFormat {
    /// The message for one delivery, dated `date`.
    public static func message(for delivery: AlertDelivery, from: MailAddress, to: [MailAddress],
                               date: Date = Date()) -> EmailMessage {
        let alert = delivery.event.data
        return EmailMessage(
            from: from, to: to, subject: subject(alert), messageID: messageID(deliveryID: delivery.id, domain: from.domain),
            date: date, text: text(delivery),
            extraHeaders: [
                .init(WebhookFormat.alertIDHeader, WebhookFormat.headerSafe(alert.alertID)),
                .init(WebhookFormat.deliveryHeader, WebhookFormat.headerSafe(delivery.id)),
            ])
    }

    /// `[Tollgate <severity>] <title>`.
    public static func subject(_ alert: AlertData) -> String {
        "[Tollgate \(alert.severity.rawValue)] \(alert.title)"
    }

    /// `<alert.<first 32 hex digits of SHA-256(delivery id)>@<domain>>`.
    public static func messageID(deliveryID: String, domain: String) -> String {
        let digest = SHA256.hash(data: Data(deliveryID.utf8))
        let hex = digest.prefix(16).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let host = MailAddress.isValidAddress("x@" + domain) ? domain : "tollgate.invalid"
        return "<alert.\(hex)@\(host)>"
    }

    /// The plain-text body.
    public static func text(_ delivery: AlertDelivery) -> String {
        let alert = delivery.event.data
        var lines = [alert.title, "", alert.message, ""]
        let facts = AlertText.facts(alert)
        let width = facts.map(\.0.count).max() ?? 0
        for (name, value) in facts {
            lines.append(name + ":" + String(repeating: " ", count: width - name.count + 1) + value)
        }
        let observed = AlertText.observed(alert)
        if !observed.isEmpty {
            lines += ["", "Observed:"]
            for (name, value) in observed { lines.append("  \(name): \(value)") }
        }
        lines += [
            "",
            "Alert id: \(alert.alertID)",
            "Delivery: \(delivery.id)",
            "",
            "-- ",
            "Sent by Tollgate. Each alert is sent once per rule, scope, period and level.",
        ]
        return lines.joined(separator: "\n")
    }

    // MARK: RFC 5322 pieces

    /// `Sun, 29 Nov 2026 08:00:03 +0000`.
    public static func date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int?) -> String { let v = value ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[(parts.weekday ?? 1) - 1]), \(two(parts.day)) \(months[(parts.month ?? 1) - 1]) \(parts.year ?? 1970) "
            + "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) +0000"
    }

    /// A display name as an RFC 5322 phrase: atoms when it is plain ASCII words, a quoted string when it is
    /// other printable ASCII, RFC 2047 encoded words otherwise.
    static func phrase(_ text: String) -> String {
        let bytes = Array(text.utf8)
        let printable = bytes.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
        if printable, !text.contains("=?") {
            if bytes.allSatisfy({ MailAddress.atext.contains($0) || $0 == 0x20 }), !text.hasPrefix(" "), !text.hasSuffix(" ") {
                return text
            }
            return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return encodedWords(text).joined(separator: " ")
    }

    /// RFC 2047 `B` encoded words of UTF-8 text, each at most 75 characters and never splitting a character.
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        func flush() {
            if !chunk.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
            chunk = []
        }
        // 39 bytes make 52 characters of base64; with `=?UTF-8?B?` and `?=` a word is 64 characters, so that
        // `Subject: ` and one word fit in 78.
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 39 { flush() }
            chunk += bytes
        }
        flush()
        return words
    }

    /// An unstructured header (`Subject`): plain and folded at spaces when printable ASCII, encoded words
    /// one per line otherwise.
    static func unstructuredHeader(_ name: String, _ value: String) -> String {
        let bytes = Array(value.utf8)
        if bytes.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }), !value.contains("=?") {
            return fold(name + ": ", value.split(separator: " ", omittingEmptySubsequences: false).map(String.init),
                        separator: " ")
        }
        return fold(name + ": ", encodedWords(value), separator: " ")
    }

    /// An address list header, folded at the spaces between and inside addresses.
    static func addressHeader(_ name: String, _ addresses: [MailAddress]) -> String {
        var tokens: [String] = []
        for (index, address) in addresses.enumerated() {
            var words = address.headerValue.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            if index < addresses.count - 1 { words[words.count - 1] += "," }
            tokens += words
        }
        return fold(name + ": ", tokens, separator: " ")
    }

    /// Joins `items` after `prefix` with `separator`, starting a continuation line (CRLF and a space)
    /// instead wherever a line would pass 78 characters.
    static func fold(_ prefix: String, _ items: [String], separator: String) -> String {
        var output = prefix
        var lineLength = prefix.count
        for (index, item) in items.enumerated() {
            if index > 0 {
                if lineLength + separator.count + item.count > 78, lineLength > prefix.count {
                    output += "\r\n "
                    lineLength = 1
                } else {
                    output += separator
                    lineLength += separator.count
                }
            }
            output += item
            lineLength += item.count
        }
        return output
    }

    /// Quoted-printable (RFC 2045) of UTF-8 text: lines end in CRLF, encoded lines are at most 76 characters.
    static func quotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        for (lineIndex, line) in lines.enumerated() {
            if lineIndex > 0 { output += Array("\r\n".utf8) }
            let bytes = Array(line.utf8)
            var length = 0
            for (index, byte) in bytes.enumerated() {
                let isLast = index == bytes.count - 1
                var token: [UInt8]
                if (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "=")) || ((byte == 0x20 || byte == 0x09) && !isLast) {
                    token = [byte]
                } else {
                    token = [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                }
                // Leave room for a soft line break ("=") unless this is the line's last token.
                let room = isLast ? 76 : 75
                if length + token.count > room {
                    output += Array("=\r\n".utf8)
                    length = 0
                }
                // A line starting with "." is fine (the SMTP client dot-stuffs); "From " at the start of a line
                // is encoded for mbox readers.
                if length == 0, token == [UInt8(ascii: "F")], bytes[index...].starts(with: Array("From ".utf8)) {
                    token = Array("=46".utf8)
                }
                output += token
                length += token.count
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
