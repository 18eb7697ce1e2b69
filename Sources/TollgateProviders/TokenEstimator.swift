internal import Foundation

/// A local, provider-independent estimate of token counts from text.
///
/// Tollgate needs token counts before the provider reports them (to reserve a request's worst-case
/// cost) and when it never does (a stream cut before its usage arrived). The estimate is deliberately
/// simple and the same for every provider and model:
///
/// **tokens = ⌈UTF-8 bytes of text ÷ 4⌉**
///
/// Four bytes per token is the usual rule of thumb for English text with the GPT, Claude and Gemini
/// tokenizers; it overestimates slightly for code and underestimates for some scripts (CJK text is
/// about one token per character, which is three UTF-8 bytes — counting bytes rather than characters
/// keeps that error small).
///
/// For a request body, the text is every string value inside the members that carry model input —
/// messages, `input`, `prompt`, `system`, `instructions`, `contents`, `systemInstruction`, tools —
/// with their escapes decoded. Not counted:
/// - media: string values of members named `data` (base64 images, audio and documents) and strings
///   beginning with `data:` (data URIs): their cost depends on the provider's image and audio
///   tokenization, not on their base64 length;
/// - keys, except inside tool definitions (a tool's schema property names are read by the model);
/// - numbers, except in `prompt` (OpenAI completions) and `input` (embeddings), where an array of
///   integers is an array of token ids and counts one token per number.
///
/// ```swift
/// TokenEstimator.tokens(for: "Hello, world!")      // 4 (13 bytes)
/// TokenEstimator.tokens(utf8Count: 0)              // 0
/// TokenEstimator.tokens(utf8Count: meter.outputCharacters)
/// ```
public enum TokenEstimator {
    /// UTF-8 bytes of text per token.
    public static let bytesPerToken = 4

    /// ⌈`utf8Count` ÷ ``bytesPerToken``⌉ (0 for 0 or less).
    public static func tokens(utf8Count: Int) -> Int {
        guard utf8Count > 0 else { return 0 }
        return utf8Count / bytesPerToken + (utf8Count % bytesPerToken == 0 ? 0 : 1)
    }

    /// The estimate for a text.
    public static func tokens(for text: some StringProtocol) -> Int {
        tokens(utf8Count: text.utf8.count)
    }

    /// A top-level member of a request body whose content is model input.
    struct Field: Sendable, Hashable {
        var name: String
        /// Count object keys too (tool definitions).
        var countKeys = false
        /// Numbers are token ids (OpenAI `prompt` and embeddings `input`).
        var numbersAreTokens = false

        static func text(_ name: String) -> Field { Field(name: name) }
        static func tools(_ name: String) -> Field { Field(name: name, countKeys: true) }
        static func tokenIDs(_ name: String) -> Field { Field(name: name, numbersAreTokens: true) }
    }

    /// The estimate for the input carried by `fields` of the JSON object `body` (0 if it is not one).
    static func inputTokens(body: Data, fields: [Field]) -> Int {
        JSONScanner.with(body) { scanner in
            guard let root = scanner.rootObject() else { return 0 }
            var textBytes = 0
            var tokenIDs = 0
            for member in root.members {
                guard let field = fields.first(where: { scanner.key(of: member, is: $0.name) }) else { continue }
                let stats = scanner.textStatistics(in: member.valueRange, countKeys: field.countKeys)
                textBytes += stats.textBytes
                if field.numbersAreTokens { tokenIDs += stats.numbers }
            }
            return tokens(utf8Count: textBytes) + tokenIDs
        }
    }
}
