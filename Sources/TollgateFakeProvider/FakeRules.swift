/// The fake provider's deterministic rules: how many tokens a request costs, what the reply says, how
/// much it "reasons", what it caches, what a tool call's arguments are and what an embedding is.
///
/// They are public so that tests elsewhere (the ingress, the cost service, benchmarks) can compute the
/// usage they must see without hard-coding numbers. ``FakeProvider`` documents how each provider's
/// request fields map onto these rules.
public enum FakeRules {
    /// Tokens of a text of `bytes` UTF-8 bytes: `ceil(bytes / 4)`.
    public static func tokens(utf8Bytes bytes: Int) -> Int { (max(0, bytes) + 3) / 4 }

    /// Tokens of `text`: `ceil(UTF-8 bytes / 4)`.
    public static func tokens(_ text: String) -> Int { tokens(utf8Bytes: text.utf8.count) }

    /// The most words a reply has when the request sets no lower limit.
    public static let maximumReplyWords = 32

    /// The first word of every text reply.
    public static let replyPrefix = "Echo:"

    /// A text reply.
    public struct Reply: Sendable, Equatable {
        /// The reply's words; the text is these joined by single spaces.
        public var words: [String]
        /// True when the request's output limit cut the reply short (finish reason `length`,
        /// `max_tokens`, `MAX_TOKENS`, Responses status `incomplete`).
        public var truncated: Bool

        public var text: String { words.joined(separator: " ") }
        /// Output tokens of the reply: one per word.
        public var outputTokens: Int { words.count }

        /// The pieces a stream sends: the first word, then a space and each following word.
        public var deltas: [String] {
            words.enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }
        }
    }

    /// The reply to a request whose last message says `text`, allowed at most `maxTokens` output tokens.
    ///
    /// The reply is `Echo:` followed by the words of `text` (split on ASCII whitespace: space, tab, LF,
    /// CR, FF, VT), at most ``maximumReplyWords`` words in all. When `maxTokens` is smaller than that,
    /// the reply keeps `maxTokens` words (at least one) and counts as truncated.
    public static func reply(echoing text: String, maxTokens: Int?) -> Reply {
        let natural = Array(([replyPrefix] + words(of: text, limit: maximumReplyWords)).prefix(maximumReplyWords))
        if let maxTokens, maxTokens < natural.count {
            return Reply(words: Array(natural.prefix(max(1, maxTokens))), truncated: true)
        }
        return Reply(words: natural, truncated: false)
    }

    /// The words of `text`, split on runs of ASCII whitespace.
    public static func words(of text: String) -> [String] {
        words(of: text, limit: .max)
    }

    /// The first `limit` words of `text` (the reply never uses more than ``maximumReplyWords``).
    static func words(of text: String, limit: Int) -> [String] {
        var text = text
        return text.withUTF8 { bytes in
            var result: [String] = []
            var start: Int?
            for index in 0...bytes.count {
                let isSpace = index == bytes.count
                    || { $0 == 0x20 || (0x09...0x0D).contains($0) }(bytes[index])
                if isSpace {
                    if let first = start {
                        result.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[first..<index]), as: UTF8.self))
                        if result.count >= limit { break }
                        start = nil
                    }
                } else if start == nil {
                    start = index
                }
            }
            return result
        }
    }

    /// Reasoning tokens for a reasoning effort: `minimal` 8, `low` 32, `medium` 64, `high` 128,
    /// `xhigh` 256, `none` 0. Unknown efforts count as `medium`. Matched case-insensitively (Gemini's
    /// `thinkingLevel` is `LOW`/`HIGH`).
    public static func reasoningTokens(effort: String) -> Int {
        switch effort.lowercased() {
        case "none": return 0
        case "minimal": return 8
        case "low": return 32
        case "high": return 128
        case "xhigh": return 256
        default: return 64
        }
    }

    /// Reasoning tokens for a thinking budget: `min(budget, 64)`; a negative budget (Gemini's dynamic
    /// `-1`) counts as 64.
    public static func reasoningTokens(budget: Int) -> Int {
        budget < 0 ? 64 : min(budget, 64)
    }

    /// Whether an OpenAI model reasons without being asked: its name is `o` followed by a digit
    /// (`o1`, `o3-mini`, `o4-mini`).
    public static func isOpenAIReasoningModel(_ model: String) -> Bool {
        let utf8 = Array(model.utf8.prefix(2))
        return utf8.count == 2 && utf8[0] == UInt8(ascii: "o") && (0x30...0x39).contains(utf8[1])
    }

    /// OpenAI's cached prompt tokens: when the request has a `prompt_cache_key` and at least 1024 input
    /// tokens, the largest multiple of 128 not above the input tokens; otherwise 0.
    public static func openAICachedTokens(inputTokens: Int, hasPromptCacheKey: Bool) -> Int {
        guard hasPromptCacheKey, inputTokens >= 1024 else { return 0 }
        return inputTokens / 128 * 128
    }

    /// Gemini's cached tokens when the request names a `cachedContent`.
    public static let geminiCachedContentTokens = 1024

    /// Dimensions of an embedding when the request does not ask for a number.
    public static let defaultEmbeddingDimensions = 16

    /// The embedding of `text`: `dimensions` values, each a multiple of 1/1024 in [-1, 1] (exact in
    /// float32), derived from a 64-bit FNV-1a hash of the text's UTF-8 bytes. The same text always
    /// gets the same vector.
    public static func embedding(of text: String, dimensions: Int) -> [Double] {
        let seed = fnv1a(text.utf8)
        return (0..<max(1, dimensions)).map { index in
            let mixed = splitMix(seed &+ UInt64(index))
            return Double(Int(mixed % 2049) - 1024) / 1024
        }
    }

    /// Placeholder arguments for a tool whose parameters follow the JSON schema `schema`.
    ///
    /// An object with each property listed in the schema's `required` array, in that order: a `const`
    /// or the first `enum` value when there is one, otherwise by `type` (case-insensitive, so Gemini's
    /// `STRING` works too): string `"fake"`, integer and number `1`, boolean `true`, array `[]`, object
    /// the same rule applied to its own schema, null `null`; no type gives `"fake"`. Optional
    /// properties are left out. A schema without `required` gives `{}`.
    public static func placeholderArguments(for schema: JSON?) -> JSON {
        // A tool's parameters are an object even when the schema leaves `type` out.
        guard let schema, schema["type"] != nil || schema["const"] != nil || schema["enum"] != nil else {
            return placeholder(for: .object([("type", "object")] + (schema?.objectValue ?? [])), depth: 0)
        }
        return placeholder(for: schema, depth: 0)
    }

    private static func placeholder(for schema: JSON, depth: Int) -> JSON {
        if let constant = schema["const"] { return constant }
        if let first = schema["enum"]?[0] { return first }
        var type = schema["type"]?.stringValue?.lowercased()
        if type == nil, let types = schema["type"]?.arrayValue {
            type = types.compactMap { $0.stringValue?.lowercased() }.first { $0 != "null" }
        }
        if type == nil, schema["properties"] != nil { type = "object" }
        switch type {
        case "object":
            guard depth < 16 else { return .object([]) }
            let properties = schema["properties"]
            let required = schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return .object(required.map { name in
                (name, placeholder(for: properties?[name] ?? .object([]), depth: depth + 1))
            })
        case "integer", "number": return .int(1)
        case "boolean": return .bool(true)
        case "array": return .array([])
        case "null": return .null
        default: return .string("fake")
        }
    }

    /// A tool call the reply makes: the tool's name and its arguments as compact JSON text (no spaces,
    /// keys in the order of the schema's `required`). Its output tokens are
    /// `ceil(UTF-8 bytes of the arguments text / 4)`.
    public struct ToolCall: Sendable, Equatable {
        public var name: String
        public var arguments: JSON
        public var argumentsText: String { arguments.serialized }
        public var outputTokens: Int { FakeRules.tokens(argumentsText) }

        public init(name: String, schema: JSON?) {
            self.name = name
            self.arguments = FakeRules.placeholderArguments(for: schema)
        }
    }

    /// The text of the fake reasoning a reply shows when the provider shows reasoning (Anthropic
    /// thinking blocks, Gemini thought parts when `includeThoughts` is set). Not related to the number of
    /// reasoning tokens.
    public static let reasoningText = "Thinking about the request."

    // MARK: - Hashing

    static func fnv1a(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    static func splitMix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
