import HTTPTypes
/// The Anthropic endpoints: messages (whole or streamed), token counting, models.
extension FakeProvider {
    /// The request's text by cache class (see ``FakeProvider``'s cache rules).
    struct AnthropicTally {
        var uncached = 0
        var write5m = 0
        var write1h = 0
        var read = 0
        var lastText = ""
        var lastIsToolResult = false

        var inputTokens: Int { FakeRules.tokens(utf8Bytes: uncached) }
        var write5mTokens: Int { FakeRules.tokens(utf8Bytes: write5m) }
        var write1hTokens: Int { FakeRules.tokens(utf8Bytes: write1h) }
        var readTokens: Int { FakeRules.tokens(utf8Bytes: read) }
        var totalTokens: Int { inputTokens + write5mTokens + write1hTokens + readTokens }

        mutating func add(_ bytes: Int, cacheControl: JSON?, cacheRead: Bool) {
            guard let cacheControl, !cacheControl.isNull else {
                uncached += bytes
                return
            }
            if cacheRead {
                read += bytes
            } else if cacheControl["ttl"]?.stringValue == "1h" {
                write1h += bytes
            } else {
                write5m += bytes
            }
        }
    }

    func anthropicTally(_ body: JSON, headers: HTTPFields) throws(Failure) -> AnthropicTally {
        guard body["model"]?.stringValue?.isEmpty == false else { throw .invalidRequest("model: Field required") }
        guard let messages = body["messages"]?.arrayValue else { throw .invalidRequest("messages: Field required") }
        guard let last = messages.last else { throw .invalidRequest("messages: at least one message is required") }
        let cacheRead = headers[.xFakeCache]?.lowercased() == "read"
        var tally = AnthropicTally()
        func addContent(_ content: JSON?) {
            switch content {
            case .string(let text)?:
                tally.add(text.utf8.count, cacheControl: nil, cacheRead: cacheRead)
            case .array(let blocks)?:
                for block in blocks {
                    let bytes = Self.anthropicTexts(.array([block])).reduce(0) { $0 + $1.utf8.count }
                    tally.add(bytes, cacheControl: block["cache_control"], cacheRead: cacheRead)
                }
            default: break
            }
        }
        addContent(body["system"])
        for message in messages { addContent(message["content"]) }
        tally.lastText = Texts.joined(Self.anthropicTexts(last["content"]))
        tally.lastIsToolResult =
            last["content"]?.arrayValue?.contains { $0["type"]?.stringValue == "tool_result" } ?? false
        return tally
    }

    static func anthropicTexts(_ content: JSON?) -> [String] {
        switch content {
        case .string(let text)?: return [text]
        case .array(let blocks)?:
            return blocks.flatMap { block -> [String] in
                if let text = block["text"]?.stringValue, block["type"]?.stringValue ?? "text" == "text" { return [text] }
                if block["type"]?.stringValue == "tool_result" { return Texts.of(block["content"]) }
                return []
            }
        default: return []
        }
    }

    func anthropicMessage(_ call: Call) throws(Failure) -> Outcome {
        let body = call.body
        let tally = try anthropicTally(body, headers: call.headers)
        let model = body["model"]!.stringValue!
        guard let maxTokensValue = body["max_tokens"], !maxTokensValue.isNull else {
            throw .invalidRequest("max_tokens: Field required")
        }
        guard let maxTokens = maxTokensValue.intValue, maxTokens >= 1 else {
            throw .invalidRequest("max_tokens: Input should be greater than or equal to 1")
        }
        let stream = body["stream"]?.boolValue ?? false

        var reasoning = 0
        switch body["thinking"]?["type"]?.stringValue {
        case "enabled"?: reasoning = FakeRules.reasoningTokens(budget: body["thinking"]?["budget_tokens"]?.intValue ?? 64)
        case "adaptive"?: reasoning = FakeRules.reasoningTokens(budget: -1)
        default: break
        }

        var tool: FakeRules.ToolCall?
        if !tally.lastIsToolResult, let tools = body["tools"]?.arrayValue {
            let custom = tools.compactMap { tool -> (String, JSON?)? in
                let type = tool["type"]?.stringValue ?? "custom"
                guard type == "custom", let name = tool["name"]?.stringValue else { return nil }
                return (name, tool["input_schema"])
            }
            let choice = body["tool_choice"]
            switch choice?["type"]?.stringValue {
            case "none"?: break
            case "tool"?:
                let name = choice?["name"]?.stringValue ?? ""
                guard let chosen = custom.first(where: { $0.0 == name }) else {
                    throw .invalidRequest("tool_choice: tool '\(name)' not found in tools")
                }
                tool = FakeRules.ToolCall(name: chosen.0, schema: chosen.1)
            default:
                if let first = custom.first { tool = FakeRules.ToolCall(name: first.0, schema: first.1) }
            }
        }
        let plan = Plan(lastText: tally.lastText, maxTokens: maxTokens, tool: tool, reasoningTokens: reasoning)
        let outputTokens = plan.visibleTokens + plan.reasoningTokens
        let stopReason = plan.toolCall != nil ? "tool_use" : plan.truncated ? "max_tokens" : "end_turn"
        let messageID = call.id("msg_")
        let toolID = call.id("toolu_", "tool")
        let signature = "ZmFrZS1zaWduYXR1cmUt" + call.id("", "signature")

        func usage(output: Int) -> JSON {
            .object([
                ("input_tokens", .int(tally.inputTokens)),
                ("cache_creation_input_tokens", .int(tally.write5mTokens + tally.write1hTokens)),
                ("cache_read_input_tokens", .int(tally.readTokens)),
                ("cache_creation", .object([
                    ("ephemeral_5m_input_tokens", .int(tally.write5mTokens)),
                    ("ephemeral_1h_input_tokens", .int(tally.write1hTokens)),
                ])),
                ("output_tokens", .int(output)), ("service_tier", "standard"),
            ])
        }
        func message(content: [JSON], stopReason: String?, output: Int) -> JSON {
            .object([
                ("id", .string(messageID)), ("type", "message"), ("role", "assistant"), ("model", .string(model)),
                ("content", .array(content)), ("stop_reason", .optional(stopReason)), ("stop_sequence", .null),
                ("usage", usage(output: output)),
            ])
        }
        var blocks: [JSON] = []
        if reasoning > 0 {
            blocks.append(.object([
                ("type", "thinking"), ("thinking", .string(FakeRules.reasoningText)), ("signature", .string(signature)),
            ]))
        }
        switch plan.content {
        case .text(let reply): blocks.append(.object([("type", "text"), ("text", .string(reply.text))]))
        case .toolCall(let toolCall):
            blocks.append(.object([
                ("type", "tool_use"), ("id", .string(toolID)), ("name", .string(toolCall.name)),
                ("input", toolCall.arguments),
            ]))
        }
        guard stream else { return .json(message(content: blocks, stopReason: stopReason, output: outputTokens)) }

        var frames: [String] = []
        func emit(_ type: String, _ fields: [(String, JSON)]) {
            frames.append(Frames.event(type, .object([("type", .string(type))] + fields)))
        }
        func delta(_ index: Int, _ delta: JSON) {
            emit("content_block_delta", [("index", .int(index)), ("delta", delta)])
        }
        emit("message_start", [("message", message(content: [], stopReason: nil, output: 1))])
        var index = 0
        func start(_ block: JSON) {
            emit("content_block_start", [("index", .int(index)), ("content_block", block)])
            if index == 0 { emit("ping", []) }
        }
        if reasoning > 0 {
            start(.object([("type", "thinking"), ("thinking", ""), ("signature", "")]))
            delta(index, .object([("type", "thinking_delta"), ("thinking", .string(FakeRules.reasoningText))]))
            delta(index, .object([("type", "signature_delta"), ("signature", .string(signature))]))
            emit("content_block_stop", [("index", .int(index))])
            index += 1
        }
        switch plan.content {
        case .text(let reply):
            start(.object([("type", "text"), ("text", "")]))
            for piece in reply.deltas { delta(index, .object([("type", "text_delta"), ("text", .string(piece))])) }
        case .toolCall(let toolCall):
            start(.object([
                ("type", "tool_use"), ("id", .string(toolID)), ("name", .string(toolCall.name)), ("input", .object([])),
            ]))
            for piece in [""] + OpenAIRequest.fragments(of: toolCall.argumentsText) {
                delta(index, .object([("type", "input_json_delta"), ("partial_json", .string(piece))]))
            }
        }
        emit("content_block_stop", [("index", .int(index))])
        emit("message_delta", [
            ("delta", .object([("stop_reason", .string(stopReason)), ("stop_sequence", .null)])),
            ("usage", .object([
                ("input_tokens", .int(tally.inputTokens)),
                ("cache_creation_input_tokens", .int(tally.write5mTokens + tally.write1hTokens)),
                ("cache_read_input_tokens", .int(tally.readTokens)),
                ("output_tokens", .int(outputTokens)),
            ])),
        ])
        emit("message_stop", [])
        return .stream(frames, contentType: Frames.eventStream)
    }

    func anthropicCountTokens(_ call: Call) throws(Failure) -> Outcome {
        let tally = try anthropicTally(call.body, headers: call.headers)
        return .json(.object([("input_tokens", .int(tally.totalTokens))]))
    }

    static let anthropicModelIDs: [(String, String)] = [
        ("claude-opus-4-6", "Claude Opus 4.6"), ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
        ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ]

    func anthropicModels() -> Outcome {
        .json(.object([
            ("data", .array(Self.anthropicModelIDs.map { id, name in
                .object([
                    ("type", "model"), ("id", .string(id)), ("display_name", .string(name)),
                    ("created_at", "2025-01-01T00:00:00Z"),
                ])
            })),
            ("has_more", false), ("first_id", .string(Self.anthropicModelIDs.first!.0)),
            ("last_id", .string(Self.anthropicModelIDs.last!.0)),
        ]))
    }
}
