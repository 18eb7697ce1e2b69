public import Foundation
public import TollgateEvents

/// What a Slack channel sends: an incoming-webhook message in Slack's Block Kit format.
///
/// The message has a `text` fallback (shown in notifications and by clients without blocks) and `blocks`:
///
/// 1. a `header` block: severity emoji and the alert's title (`plain_text`, at most 150 characters);
/// 2. a `section` block with the alert's message (`mrkdwn`, at most 3000 characters);
/// 3. a `section` block whose `fields` are the facts: severity, scope, rule, kind, level, period start,
///    raised at (at most 10 fields, each at most 2000 characters);
/// 4. when the alert has observations, `section` blocks of up to 10 `fields` each, values formatted
///    (`*_nano_usd` as dollars, `*_bp` as percentages);
/// 5. a `context` block with the alert id, the delivery id and the channel.
///
/// Text in `mrkdwn` objects and the fallback has `&`, `<` and `>` escaped as Slack requires, so an alert's
/// text can never turn into a mention or a link. Slack answers a good message with `200 ok`; its errors
/// (`400 invalid_payload`, `403`, `404 no_service`, `410 channel_is_archived`) dead-letter the delivery at
/// once, and `429`/`5xx` are retried (see ``WebhookFormat`` for the rules).
public enum SlackFormat {
    /// The most characters in a header block's text.
    public static let headerLimit = 150
    /// The most characters in a section block's text.
    public static let sectionLimit = 3000
    /// The most characters in one field.
    public static let fieldLimit = 2000
    /// The most fields in one section block.
    public static let fieldsPerSection = 10

    /// An incoming-webhook message.
    public struct Message: Sendable, Hashable, Codable {
        /// The fallback text.
        public var text: String
        /// The layout.
        public var blocks: [Block]
    }

    /// A layout block: `header`, `section` or `context` (the ones used here).
    public struct Block: Sendable, Hashable, Codable {
        /// `header`, `section` or `context`.
        public var type: String
        /// The text of a header or section block.
        public var text: Text?
        /// The two-column fields of a section block.
        public var fields: [Text]?
        /// The elements of a context block.
        public var elements: [Text]?

        public init(type: String, text: Text? = nil, fields: [Text]? = nil, elements: [Text]? = nil) {
            self.type = type
            self.text = text
            self.fields = fields
            self.elements = elements
        }
    }

    /// A text object: `plain_text` or `mrkdwn`.
    public struct Text: Sendable, Hashable, Codable {
        /// `plain_text` or `mrkdwn`.
        public var type: String
        /// The text.
        public var text: String
        /// For `plain_text`: turn `:emoji:` codes into emoji.
        public var emoji: Bool?

        public static func plain(_ text: String) -> Text { Text(type: "plain_text", text: text, emoji: true) }
        public static func mrkdwn(_ text: String) -> Text { Text(type: "mrkdwn", text: text, emoji: nil) }
    }

    /// The emoji code for a severity.
    public static func emoji(_ severity: AlertData.Severity) -> String {
        switch severity {
        case .info: ":information_source:"
        case .warning: ":warning:"
        case .critical: ":rotating_light:"
        }
    }

    /// The message for one delivery.
    public static func message(for delivery: AlertDelivery) -> Message {
        let alert = delivery.event.data
        var blocks: [Block] = [
            Block(type: "header", text: .plain(AlertText.truncated("\(emoji(alert.severity)) \(alert.title)", to: headerLimit))),
            // Slack refuses an empty section text.
            Block(type: "section", text: .mrkdwn(AlertText.truncated(
                escape(alert.message.isEmpty ? alert.title : alert.message), to: sectionLimit))),
            Block(type: "section", fields: AlertText.facts(alert).map(field)),
        ]
        let observed = AlertText.observed(alert)
        for start in stride(from: 0, to: observed.count, by: fieldsPerSection) {
            blocks.append(Block(type: "section",
                                fields: observed[start..<min(start + fieldsPerSection, observed.count)].map(field)))
        }
        blocks.append(Block(type: "context", elements: [
            .mrkdwn(AlertText.truncated(escape("Tollgate alert \(alert.alertID) · delivery to \(delivery.channel)"),
                                        to: fieldLimit)),
        ]))
        let fallback = "[\(alert.severity.rawValue)] \(alert.title) (\(alert.scope))"
        return Message(text: AlertText.truncated(escape(fallback), to: sectionLimit), blocks: blocks)
    }

    /// The JSON body for one delivery (keys sorted).
    public static func body(for delivery: AlertDelivery) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(message(for: delivery))
    }

    /// Escapes `&`, `<` and `>` as Slack's `mrkdwn` requires.
    public static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            default: output.append(character)
            }
        }
        return output
    }

    static func field(_ fact: (String, String)) -> Text {
        .mrkdwn(AlertText.truncated("*\(escape(fact.0))*\n\(escape(fact.1))", to: fieldLimit))
    }
}
