/// A class of tokens that providers bill at its own price.
///
/// Every token of a request belongs to exactly one class (see ``TokenUsage``), and a catalog price
/// exists per class. The raw value is the class name used as a key in ``CostBreakdown`` and in the
/// pricing catalog; ``TokenUsage`` spells the same names with a `_tokens` suffix.
public enum TokenClass: String, Sendable, Hashable, Codable, CaseIterable {
    /// Uncached input (prompt) tokens.
    case input
    /// Input tokens read from the provider's prompt cache.
    case cachedInputRead = "cached_input_read"
    /// Input tokens written to the prompt cache with a 5-minute lifetime.
    case cacheWrite5m = "cache_write_5m"
    /// Input tokens written to the prompt cache with a 1-hour lifetime.
    case cacheWrite1h = "cache_write_1h"
    /// Visible output (completion) tokens.
    case output
    /// Reasoning ("thinking") output tokens.
    case reasoning
    /// Audio input tokens.
    case audioInput = "audio_input"
    /// Audio output tokens.
    case audioOutput = "audio_output"
}

/// The tokens of one request, by token class.
///
/// The classes are disjoint: every token is counted in exactly one of them, so summing the classes
/// never double counts and the cost is the sum of each count times its class price. In particular:
///
/// - `input_tokens` **excludes** cached reads (`cached_input_read_tokens`), cache writes
///   (`cache_write_5m_tokens`, `cache_write_1h_tokens`) and audio input (`audio_input_tokens`).
///   Providers that report a total prompt count including cached tokens (OpenAI's `prompt_tokens`,
///   Gemini's `promptTokenCount`) have those subtracted; Anthropic's `input_tokens` already excludes
///   them.
/// - `output_tokens` **excludes** reasoning tokens (`reasoning_tokens`) and audio output
///   (`audio_output_tokens`). Providers that include reasoning in the output count
///   (OpenAI's `completion_tokens`) have it subtracted.
///
/// All counts are ≥ 0; decoding rejects negative counts. In JSON each count is an integer field
/// named after its class with a `_tokens` suffix (`cached_input_read_tokens`).
public struct TokenUsage: Sendable, Hashable, Codable {
    /// Uncached, non-audio input tokens (excludes cache reads, cache writes and audio input).
    public var inputTokens: Int64
    /// Input tokens served from the prompt cache.
    public var cachedInputReadTokens: Int64
    /// Input tokens written to the prompt cache with a 5-minute lifetime.
    public var cacheWrite5mTokens: Int64
    /// Input tokens written to the prompt cache with a 1-hour lifetime.
    public var cacheWrite1hTokens: Int64
    /// Visible, non-audio output tokens (excludes reasoning and audio output).
    public var outputTokens: Int64
    /// Reasoning output tokens.
    public var reasoningTokens: Int64
    /// Audio input tokens.
    public var audioInputTokens: Int64
    /// Audio output tokens.
    public var audioOutputTokens: Int64

    /// No tokens at all.
    public static let zero = TokenUsage()

    /// Creates a usage record; every class defaults to zero.
    public init(
        inputTokens: Int64 = 0,
        cachedInputReadTokens: Int64 = 0,
        cacheWrite5mTokens: Int64 = 0,
        cacheWrite1hTokens: Int64 = 0,
        outputTokens: Int64 = 0,
        reasoningTokens: Int64 = 0,
        audioInputTokens: Int64 = 0,
        audioOutputTokens: Int64 = 0
    ) {
        self.inputTokens = inputTokens
        self.cachedInputReadTokens = cachedInputReadTokens
        self.cacheWrite5mTokens = cacheWrite5mTokens
        self.cacheWrite1hTokens = cacheWrite1hTokens
        self.outputTokens = outputTokens
        self.reasoningTokens = reasoningTokens
        self.audioInputTokens = audioInputTokens
        self.audioOutputTokens = audioOutputTokens
    }

    /// The count of one class.
    public subscript(tokenClass: TokenClass) -> Int64 {
        get {
            switch tokenClass {
            case .input: inputTokens
            case .cachedInputRead: cachedInputReadTokens
            case .cacheWrite5m: cacheWrite5mTokens
            case .cacheWrite1h: cacheWrite1hTokens
            case .output: outputTokens
            case .reasoning: reasoningTokens
            case .audioInput: audioInputTokens
            case .audioOutput: audioOutputTokens
            }
        }
        set {
            switch tokenClass {
            case .input: inputTokens = newValue
            case .cachedInputRead: cachedInputReadTokens = newValue
            case .cacheWrite5m: cacheWrite5mTokens = newValue
            case .cacheWrite1h: cacheWrite1hTokens = newValue
            case .output: outputTokens = newValue
            case .reasoning: reasoningTokens = newValue
            case .audioInput: audioInputTokens = newValue
            case .audioOutput: audioOutputTokens = newValue
            }
        }
    }

    /// All tokens of the request (the classes are disjoint, so this is their plain sum).
    public var totalTokens: Int64 {
        TokenClass.allCases.reduce(0) { $0 + self[$1] }
    }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens"
        case cachedInputReadTokens = "cached_input_read_tokens"
        case cacheWrite5mTokens = "cache_write_5m_tokens"
        case cacheWrite1hTokens = "cache_write_1h_tokens"
        case outputTokens = "output_tokens"
        case reasoningTokens = "reasoning_tokens"
        case audioInputTokens = "audio_input_tokens"
        case audioOutputTokens = "audio_output_tokens"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> Int64 {
            let value = try container.decode(Int64.self, forKey: key)
            guard value >= 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container, debugDescription: "token count must be >= 0, got \(value)")
            }
            return value
        }
        self.init(
            inputTokens: try count(.inputTokens),
            cachedInputReadTokens: try count(.cachedInputReadTokens),
            cacheWrite5mTokens: try count(.cacheWrite5mTokens),
            cacheWrite1hTokens: try count(.cacheWrite1hTokens),
            outputTokens: try count(.outputTokens),
            reasoningTokens: try count(.reasoningTokens),
            audioInputTokens: try count(.audioInputTokens),
            audioOutputTokens: try count(.audioOutputTokens)
        )
    }
}

/// The cost of one request, by token class, in nano-USD.
///
/// Each class's cost is its token count (see ``TokenUsage``) times the catalog price of that class
/// for the served model; `total` is the sum of the eight classes. In JSON the keys are the
/// ``TokenClass`` raw values (`input`, `cached_input_read`, …) plus `total`, each a bare integer of
/// nano-USD. An unpriced request has every field zero (see ``UsageData/priced``).
public struct CostBreakdown: Sendable, Hashable, Codable {
    /// Cost of ``TokenUsage/inputTokens``.
    public var input: Money
    /// Cost of ``TokenUsage/cachedInputReadTokens``.
    public var cachedInputRead: Money
    /// Cost of ``TokenUsage/cacheWrite5mTokens``.
    public var cacheWrite5m: Money
    /// Cost of ``TokenUsage/cacheWrite1hTokens``.
    public var cacheWrite1h: Money
    /// Cost of ``TokenUsage/outputTokens``.
    public var output: Money
    /// Cost of ``TokenUsage/reasoningTokens``.
    public var reasoning: Money
    /// Cost of ``TokenUsage/audioInputTokens``.
    public var audioInput: Money
    /// Cost of ``TokenUsage/audioOutputTokens``.
    public var audioOutput: Money
    /// The sum of the eight classes.
    public var total: Money

    /// All zero: the cost of an unpriced request.
    public static let zero = CostBreakdown(
        input: .zero, cachedInputRead: .zero, cacheWrite5m: .zero, cacheWrite1h: .zero,
        output: .zero, reasoning: .zero, audioInput: .zero, audioOutput: .zero, total: .zero)

    /// Creates a breakdown from every field, `total` included (it should be the sum of the others;
    /// see ``isConsistent``).
    public init(
        input: Money, cachedInputRead: Money, cacheWrite5m: Money, cacheWrite1h: Money,
        output: Money, reasoning: Money, audioInput: Money, audioOutput: Money, total: Money
    ) {
        self.input = input
        self.cachedInputRead = cachedInputRead
        self.cacheWrite5m = cacheWrite5m
        self.cacheWrite1h = cacheWrite1h
        self.output = output
        self.reasoning = reasoning
        self.audioInput = audioInput
        self.audioOutput = audioOutput
        self.total = total
    }

    /// Creates a breakdown from per-class costs (missing classes cost zero) and computes `total`;
    /// `nil` if the total overflows.
    public init?(perClass: [TokenClass: Money]) {
        self = .zero
        for (tokenClass, cost) in perClass { self[tokenClass] = cost }
        guard let total = Money.sum(TokenClass.allCases.map { self[$0] }) else { return nil }
        self.total = total
    }

    /// The cost of one class.
    public subscript(tokenClass: TokenClass) -> Money {
        get {
            switch tokenClass {
            case .input: input
            case .cachedInputRead: cachedInputRead
            case .cacheWrite5m: cacheWrite5m
            case .cacheWrite1h: cacheWrite1h
            case .output: output
            case .reasoning: reasoning
            case .audioInput: audioInput
            case .audioOutput: audioOutput
            }
        }
        set {
            switch tokenClass {
            case .input: input = newValue
            case .cachedInputRead: cachedInputRead = newValue
            case .cacheWrite5m: cacheWrite5m = newValue
            case .cacheWrite1h: cacheWrite1h = newValue
            case .output: output = newValue
            case .reasoning: reasoning = newValue
            case .audioInput: audioInput = newValue
            case .audioOutput: audioOutput = newValue
            }
        }
    }

    /// Whether `total` equals the sum of the eight classes.
    public var isConsistent: Bool {
        Money.sum(TokenClass.allCases.map { self[$0] }) == total
    }

    enum CodingKeys: String, CodingKey {
        case input
        case cachedInputRead = "cached_input_read"
        case cacheWrite5m = "cache_write_5m"
        case cacheWrite1h = "cache_write_1h"
        case output
        case reasoning
        case audioInput = "audio_input"
        case audioOutput = "audio_output"
        case total
    }
}
