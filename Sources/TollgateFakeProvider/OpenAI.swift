import Foundation

/// The OpenAI endpoints: chat completions, legacy completions, embeddings, responses, models.
extension FakeProvider {
    // MARK: Chat completions

    func openAIChat(_ call: Call) throws(Failure) -> Outcome {
        let body = call.body
        let model = try OpenAIRequest.model(body)
        guard let messages = body["messages"]?.arrayValue else { throw .missing("messages") }
        guard let last = messages.last else {
            throw .invalidRequest(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                param: "messages", code: "empty_array")
        }
        var tally = TextTally()
        for message in messages { tally.count(Texts.of(message["content"])) }
        tally.lastText = Texts.joined(Texts.of(last["content"]))
        let stream = try OpenAIRequest.stream(body)
        let includeUsage = stream && body["stream_options"]?["include_usage"]?.boolValue == true
        let lastIsToolResult = ["tool", "function"].contains(last["role"]?.stringValue ?? "")

        let effort = body["reasoning_effort"]?.stringValue
        let reasoning = OpenAIRequest.reasoningTokens(effort: effort, model: model)
        let tool = try OpenAIRequest.toolCall(
            tools: body["tools"], choice: body["tool_choice"], skip: lastIsToolResult,
            definition: { tool in
                guard tool["type"]?.stringValue ?? "function" == "function", let function = tool["function"],
                      let name = function["name"]?.stringValue
                else { return nil }
                return (name, function["parameters"])
            },
            chosenName: { $0["function"]?["name"]?.stringValue })
        let legacyLimit = try OpenAIRequest.limit(body, "max_tokens")
        let maxTokens = try OpenAIRequest.limit(body, "max_completion_tokens") ?? legacyLimit
        let plan = Plan(lastText: tally.lastText, maxTokens: maxTokens, tool: tool, reasoningTokens: reasoning)
        let prompt = tally.tokens
        let cached = FakeRules.openAICachedTokens(
            inputTokens: prompt, hasPromptCacheKey: body["prompt_cache_key"]?.stringValue != nil)
        let completion = plan.visibleTokens + plan.reasoningTokens
        let usage: JSON = .object([
            ("prompt_tokens", .int(prompt)), ("completion_tokens", .int(completion)),
            ("total_tokens", .int(prompt + completion)),
            ("prompt_tokens_details", .object([("cached_tokens", .int(cached)), ("audio_tokens", 0)])),
            ("completion_tokens_details", .object([
                ("reasoning_tokens", .int(plan.reasoningTokens)), ("audio_tokens", 0),
                ("accepted_prediction_tokens", 0), ("rejected_prediction_tokens", 0),
            ])),
        ])
        let id = call.id("chatcmpl-")
        let callID = call.id("call_", "tool")
        let finish = plan.toolCall != nil ? "tool_calls" : plan.truncated ? "length" : "stop"

        func envelope(_ object: String, _ choices: JSON, usage: JSON?) -> JSON {
            var members: [(String, JSON)] = [
                ("id", .string(id)), ("object", .string(object)), ("created", .int(call.created)),
                ("model", .string(model)), ("service_tier", "default"), ("system_fingerprint", "fp_fake"),
                ("choices", choices),
            ]
            if let usage { members.append(("usage", usage)) }
            return .object(members)
        }

        guard stream else {
            var message: [(String, JSON)] = [("role", "assistant")]
            switch plan.content {
            case .text(let reply):
                message.append(("content", .string(reply.text)))
            case .toolCall(let toolCall):
                message.append(("content", .null))
                message.append(("tool_calls", [.object([
                    ("id", .string(callID)), ("type", "function"),
                    ("function", .object([
                        ("name", .string(toolCall.name)), ("arguments", .string(toolCall.argumentsText)),
                    ])),
                ])]))
            }
            message.append(("refusal", .null))
            message.append(("annotations", []))
            let choice: JSON = .object([
                ("index", 0), ("message", .object(message)), ("logprobs", .null), ("finish_reason", .string(finish)),
            ])
            return .json(envelope("chat.completion", [choice], usage: usage))
        }

        func chunk(_ delta: [(String, JSON)], finish: String? = nil) -> String {
            let choice: JSON = .object([
                ("index", 0), ("delta", .object(delta)), ("logprobs", .null), ("finish_reason", .optional(finish)),
            ])
            return Frames.data(envelope("chat.completion.chunk", [choice], usage: includeUsage ? .null : nil))
        }

        var frames: [String] = []
        switch plan.content {
        case .text(let reply):
            frames.append(chunk([("role", "assistant"), ("content", ""), ("refusal", .null)]))
            for delta in reply.deltas { frames.append(chunk([("content", .string(delta))])) }
        case .toolCall(let toolCall):
            frames.append(chunk([
                ("role", "assistant"), ("content", .null),
                ("tool_calls", [.object([
                    ("index", 0), ("id", .string(callID)), ("type", "function"),
                    ("function", .object([("name", .string(toolCall.name)), ("arguments", "")])),
                ])]),
                ("refusal", .null),
            ]))
            for fragment in OpenAIRequest.fragments(of: toolCall.argumentsText) {
                frames.append(chunk([
                    ("tool_calls", [.object([("index", 0), ("function", .object([("arguments", .string(fragment))]))])]),
                ]))
            }
        }
        frames.append(chunk([], finish: finish))
        if includeUsage { frames.append(Frames.data(envelope("chat.completion.chunk", [], usage: usage))) }
        frames.append("data: [DONE]\n\n")
        return .stream(frames, contentType: Frames.eventStream)
    }

    // MARK: Legacy completions

    func openAICompletion(_ call: Call) throws(Failure) -> Outcome {
        let body = call.body
        let model = try OpenAIRequest.model(body)
        guard let prompt = body["prompt"] else { throw .missing("prompt") }
        let (texts, tokenCount) = OpenAIRequest.inputs(prompt)
        let promptTokens = FakeRules.tokens(utf8Bytes: texts.reduce(0) { $0 + $1.utf8.count }) + tokenCount
        let stream = try OpenAIRequest.stream(body)
        let includeUsage = stream && body["stream_options"]?["include_usage"]?.boolValue == true
        // The legacy endpoint's `max_tokens` defaults to 16, as on the real API.
        let requestedLimit = try OpenAIRequest.limit(body, "max_tokens")
        let maxTokens = requestedLimit ?? 16
        let reply = FakeRules.reply(echoing: texts.last ?? "", maxTokens: maxTokens)
        let usage: JSON = .object([
            ("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(reply.outputTokens)),
            ("total_tokens", .int(promptTokens + reply.outputTokens)),
        ])
        let id = call.id("cmpl-")
        let finish = reply.truncated ? "length" : "stop"

        func envelope(_ choices: JSON, usage: JSON?) -> JSON {
            var members: [(String, JSON)] = [
                ("id", .string(id)), ("object", "text_completion"), ("created", .int(call.created)),
                ("model", .string(model)), ("system_fingerprint", "fp_fake"), ("choices", choices),
            ]
            if let usage { members.append(("usage", usage)) }
            return .object(members)
        }
        func choice(_ text: String, _ finish: String?) -> JSON {
            .object([("text", .string(text)), ("index", 0), ("logprobs", .null), ("finish_reason", .optional(finish))])
        }

        guard stream else { return .json(envelope([choice(reply.text, finish)], usage: usage)) }
        var frames = reply.deltas.map { Frames.data(envelope([choice($0, nil)], usage: includeUsage ? .null : nil)) }
        frames.append(Frames.data(envelope([choice("", finish)], usage: includeUsage ? .null : nil)))
        if includeUsage { frames.append(Frames.data(envelope([], usage: usage))) }
        frames.append("data: [DONE]\n\n")
        return .stream(frames, contentType: Frames.eventStream)
    }

    // MARK: Embeddings

    func openAIEmbeddings(_ call: Call) throws(Failure) -> Outcome {
        let body = call.body
        let model = try OpenAIRequest.model(body)
        guard let input = body["input"], !input.isNull else { throw .missing("input") }
        // Each input is embedded on its own; a token array is embedded as its numbers' text.
        var items: [String] = []
        var stringBytes = 0
        var tokenCount = 0
        func add(_ element: JSON) throws(Failure) {
            switch element {
            case .string(let text):
                items.append(text)
                stringBytes += text.utf8.count
            case .array(let tokens) where tokens.allSatisfy({ $0.intValue != nil }):
                items.append(tokens.compactMap { $0.intValue.map(String.init) }.joined(separator: " "))
                tokenCount += tokens.count
            default: throw .invalidRequest("'$.input' is invalid.", param: "input")
            }
        }
        if case .array(let elements) = input, !elements.isEmpty, elements.allSatisfy({ $0.intValue != nil }) {
            try add(input)
        } else if case .array(let elements) = input {
            for element in elements { try add(element) }
        } else {
            try add(input)
        }
        guard !items.isEmpty else { throw .invalidRequest("'$.input' is invalid.", param: "input") }
        let promptTokens = FakeRules.tokens(utf8Bytes: stringBytes) + tokenCount
        var dimensions = FakeRules.defaultEmbeddingDimensions
        if let requested = body["dimensions"], !requested.isNull {
            guard let value = requested.intValue, (1...8192).contains(value) else {
                throw .invalidRequest("Invalid 'dimensions': expected an integer between 1 and 8192.", param: "dimensions")
            }
            dimensions = value
        }
        let format = body["encoding_format"]?.stringValue ?? "float"
        guard format == "float" || format == "base64" else {
            throw .invalidRequest(
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.", param: "encoding_format")
        }
        let data: [JSON] = items.enumerated().map { index, text in
            let vector = FakeRules.embedding(of: text, dimensions: dimensions)
            let embedding: JSON
            if format == "base64" {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(vector.count * 4)
                for value in vector {
                    let bits = Float(value).bitPattern.littleEndian
                    withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
                }
                embedding = .string(Data(bytes).base64EncodedString())
            } else {
                embedding = .array(vector.map(JSON.double))
            }
            return .object([("object", "embedding"), ("index", .int(index)), ("embedding", embedding)])
        }
        return .json(.object([
            ("object", "list"), ("data", .array(data)), ("model", .string(model)),
            ("usage", .object([("prompt_tokens", .int(promptTokens)), ("total_tokens", .int(promptTokens))])),
        ]))
    }

    // MARK: Models

    static let openAIModelIDs = [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-3.5-turbo-instruct",
        "text-embedding-3-small", "text-embedding-3-large",
    ]

    func openAIModels() -> Outcome {
        .json(.object([
            ("object", "list"),
            ("data", .array(Self.openAIModelIDs.map { id in
                .object([("id", .string(id)), ("object", "model"), ("created", 1_700_000_000), ("owned_by", "system")])
            })),
        ]))
    }
}

/// Request fields shared by the OpenAI endpoints.
enum OpenAIRequest {
    static func model(_ body: JSON) throws(Failure) -> String {
        guard let model = body["model"]?.stringValue, !model.isEmpty else {
            throw .invalidRequest("you must provide a model parameter")
        }
        return model
    }

    /// The `stream` flag; `stream_options` without streaming is a 400 as on the real API.
    static func stream(_ body: JSON) throws(Failure) -> Bool {
        let stream = body["stream"]?.boolValue ?? false
        if let options = body["stream_options"], !options.isNull, !stream {
            throw .invalidRequest(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: "stream_options")
        }
        return stream
    }

    /// A positive integer limit under `key`, or nil when absent or null.
    static func limit(_ body: JSON, _ key: String) throws(Failure) -> Int? {
        guard let value = body[key], !value.isNull else { return nil }
        guard let limit = value.intValue, limit >= 1 else {
            throw .invalidRequest(
                "Invalid '\(key)': integer below minimum value. Expected a value >= 1.", param: key,
                code: "integer_below_min_value")
        }
        return limit
    }

    static func reasoningTokens(effort: String?, model: String) -> Int {
        if let effort { return FakeRules.reasoningTokens(effort: effort) }
        return FakeRules.isOpenAIReasoningModel(model) ? FakeRules.reasoningTokens(effort: "medium") : 0
    }

    /// Strings of a `prompt`/`input` value, and how many tokens it gives as token arrays.
    static func inputs(_ value: JSON) -> (texts: [String], tokens: Int) {
        switch value {
        case .string(let text): return ([text], 0)
        case .array(let elements):
            var texts: [String] = []
            var tokens = 0
            for element in elements {
                switch element {
                case .string(let text): texts.append(text)
                case .array(let inner): tokens += inner.count
                case .int: tokens += 1
                default: break
                }
            }
            return (texts, tokens)
        default: return ([], 0)
        }
    }

    /// The tool call the reply makes, if any: `choice` `none` forbids, a named choice picks that tool
    /// (a 400 if it is not offered), anything else picks the first function tool.
    static func toolCall(
        tools: JSON?, choice: JSON?, skip: Bool,
        definition: (JSON) -> (String, JSON?)?, chosenName: (JSON) -> String?
    ) throws(Failure) -> FakeRules.ToolCall? {
        guard !skip, let tools = tools?.arrayValue else { return nil }
        let functions = tools.compactMap(definition)
        guard let first = functions.first else { return nil }
        switch choice {
        case .string("none")?: return nil
        case .object?:
            if let name = chosenName(choice!) {
                guard let chosen = functions.first(where: { $0.0 == name }) else {
                    throw .invalidRequest(
                        "Invalid value for 'tool_choice': function '\(name)' not found in 'tools'.", param: "tool_choice")
                }
                return FakeRules.ToolCall(name: chosen.0, schema: chosen.1)
            }
            return FakeRules.ToolCall(name: first.0, schema: first.1)
        default:
            return FakeRules.ToolCall(name: first.0, schema: first.1)
        }
    }

    /// Pieces of at most 8 characters: how streamed tool arguments arrive.
    static func fragments(of text: String, size: Int = 8) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.count == size {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}
