/// What the fake model answers to one request, before any provider's format: a text reply or one tool
/// call, plus hidden reasoning.
struct Plan: Sendable {
    enum Content: Sendable {
        case text(FakeRules.Reply)
        case toolCall(FakeRules.ToolCall)
    }

    var content: Content
    var reasoningTokens: Int

    /// A tool call when `tool` is set, otherwise the echo of `lastText`.
    init(lastText: String, maxTokens: Int?, tool: FakeRules.ToolCall?, reasoningTokens: Int) {
        if let tool {
            content = .toolCall(tool)
        } else {
            content = .text(FakeRules.reply(echoing: lastText, maxTokens: maxTokens))
        }
        self.reasoningTokens = reasoningTokens
    }

    /// Output tokens of the visible answer (reply words or tool-call arguments), reasoning excluded.
    var visibleTokens: Int {
        switch content {
        case .text(let reply): reply.outputTokens
        case .toolCall(let call): call.outputTokens
        }
    }

    var truncated: Bool {
        if case .text(let reply) = content { return reply.truncated }
        return false
    }

    var toolCall: FakeRules.ToolCall? {
        if case .toolCall(let call) = content { return call }
        return nil
    }

    var reply: FakeRules.Reply? {
        if case .text(let reply) = content { return reply }
        return nil
    }
}

/// The text fields of a request, gathered by the provider's rules: counted bytes and the last text.
struct TextTally: Sendable {
    var bytes = 0
    var lastText = ""

    mutating func count(_ texts: [String]) {
        for text in texts { bytes += text.utf8.count }
    }

    var tokens: Int { FakeRules.tokens(utf8Bytes: bytes) }
}

enum Texts {
    /// The texts of a content value: the string itself, or the `text` of each part of an array (and the
    /// nested `content` of parts that have one, such as Anthropic's `tool_result`).
    static func of(_ content: JSON?) -> [String] {
        switch content {
        case .string(let text)?: return [text]
        case .array(let parts)?:
            var texts: [String] = []
            for part in parts {
                if case .string(let text)? = part["text"] {
                    texts.append(text)
                } else if part["type"]?.stringValue == "tool_result" || part["type"]?.stringValue == "function_call_output" {
                    texts.append(contentsOf: of(part["content"] ?? part["output"]))
                } else if case .string(let text) = part {
                    texts.append(text)
                }
            }
            return texts
        default: return []
        }
    }

    /// The texts joined by single spaces (the echo source of a multi-part message).
    static func joined(_ texts: [String]) -> String { texts.joined(separator: " ") }
}

extension Failure {
    static func missing(_ name: String) -> Failure {
        .invalidRequest("Missing required parameter: '\(name)'.", param: name, code: "missing_required_parameter")
    }
}
