/// OpenAI's Responses API: `POST /v1/responses`, whole or streamed as typed events.
extension FakeProvider {
    func openAIResponse(_ call: Call) throws(Failure) -> Outcome {
        let body = call.body
        let model = try OpenAIRequest.model(body)
        var tally = TextTally()
        if let instructions = body["instructions"]?.stringValue { tally.count([instructions]) }
        var lastIsToolResult = false
        switch body["input"] {
        case .string(let text)?:
            tally.count([text])
            tally.lastText = text
        case .array(let items)?:
            for item in items {
                let texts = Self.responseItemTexts(item)
                tally.count(texts)
            }
            if let last = items.last {
                tally.lastText = Texts.joined(Self.responseItemTexts(last))
                lastIsToolResult = last["type"]?.stringValue == "function_call_output"
            }
        case nil, .null?: break
        default: throw .invalidRequest("Invalid type for 'input': expected a string or an array.", param: "input")
        }
        let stream = body["stream"]?.boolValue ?? false
        let reasoningConfig = body["reasoning"]
        let reasoning = OpenAIRequest.reasoningTokens(effort: reasoningConfig?["effort"]?.stringValue, model: model)
        let tool = try OpenAIRequest.toolCall(
            tools: body["tools"], choice: body["tool_choice"], skip: lastIsToolResult,
            definition: { tool in
                guard tool["type"]?.stringValue == "function", let name = tool["name"]?.stringValue else { return nil }
                return (name, tool["parameters"])
            },
            chosenName: { $0["type"]?.stringValue == "function" ? $0["name"]?.stringValue : nil })
        let maxOutput = try OpenAIRequest.limit(body, "max_output_tokens")
        let plan = Plan(lastText: tally.lastText, maxTokens: maxOutput, tool: tool, reasoningTokens: reasoning)
        let input = tally.tokens
        let cached = FakeRules.openAICachedTokens(
            inputTokens: input, hasPromptCacheKey: body["prompt_cache_key"]?.stringValue != nil)
        let output = plan.visibleTokens + plan.reasoningTokens
        let usage: JSON = .object([
            ("input_tokens", .int(input)),
            ("input_tokens_details", .object([("cached_tokens", .int(cached)), ("cache_write_tokens", 0)])),
            ("output_tokens", .int(output)),
            ("output_tokens_details", .object([("reasoning_tokens", .int(plan.reasoningTokens))])),
            ("total_tokens", .int(input + output)),
        ])

        let responseID = call.id("resp_")
        let reasoningID = call.id("rs_", "reasoning")
        let messageID = call.id("msg_", "message")
        let functionID = call.id("fc_", "function")
        let callID = call.id("call_", "tool")
        let finalStatus = plan.truncated ? "incomplete" : "completed"

        func response(status: String, output: [JSON], usage: JSON?) -> JSON {
            var members: [(String, JSON)] = [
                ("id", .string(responseID)), ("object", "response"), ("created_at", .int(call.created)),
                ("status", .string(status)), ("background", false), ("error", .null),
                ("incomplete_details", status == "incomplete" ? .object([("reason", "max_output_tokens")]) : .null),
                ("instructions", body["instructions"] ?? .null),
                ("max_output_tokens", maxOutput.map(JSON.int) ?? .null), ("max_tool_calls", .null),
                ("model", .string(model)), ("output", .array(output)),
                ("parallel_tool_calls", body["parallel_tool_calls"] ?? true),
                ("previous_response_id", body["previous_response_id"] ?? .null),
                ("prompt_cache_key", body["prompt_cache_key"] ?? .null),
                ("reasoning", .object([
                    ("effort", reasoningConfig?["effort"] ?? (reasoning > 0 ? "medium" : .null)),
                    ("summary", reasoningConfig?["summary"] ?? .null),
                ])),
                ("safety_identifier", .null), ("service_tier", "default"), ("store", body["store"] ?? true),
                ("temperature", body["temperature"] ?? 1.0),
                ("text", .object([("format", .object([("type", "text")])), ("verbosity", "medium")])),
                ("tool_choice", body["tool_choice"] ?? "auto"), ("tools", body["tools"] ?? []),
                ("top_logprobs", 0), ("top_p", body["top_p"] ?? 1.0), ("truncation", "disabled"),
                ("usage", usage ?? .null), ("user", .null), ("metadata", body["metadata"] ?? .object([])),
            ]
            if status == "completed" { members.insert(("completed_at", .int(call.created)), at: 4) }
            return .object(members)
        }
        let reasoningItem: JSON = .object([("id", .string(reasoningID)), ("type", "reasoning"), ("summary", [])])
        func textPart(_ text: String) -> JSON {
            .object([("type", "output_text"), ("annotations", []), ("logprobs", []), ("text", .string(text))])
        }
        func messageItem(status: String, content: [JSON]) -> JSON {
            .object([
                ("id", .string(messageID)), ("type", "message"), ("status", .string(status)),
                ("content", .array(content)), ("role", "assistant"),
            ])
        }
        func functionItem(status: String, arguments: String, name: String) -> JSON {
            .object([
                ("id", .string(functionID)), ("type", "function_call"), ("status", .string(status)),
                ("arguments", .string(arguments)), ("call_id", .string(callID)), ("name", .string(name)),
            ])
        }
        var finalOutput: [JSON] = reasoning > 0 ? [reasoningItem] : []
        switch plan.content {
        case .text(let reply): finalOutput.append(messageItem(status: finalStatus, content: [textPart(reply.text)]))
        case .toolCall(let toolCall):
            finalOutput.append(functionItem(status: "completed", arguments: toolCall.argumentsText, name: toolCall.name))
        }
        guard stream else { return .json(response(status: finalStatus, output: finalOutput, usage: usage)) }

        var frames: [String] = []
        func emit(_ type: String, _ fields: [(String, JSON)]) {
            let event: JSON = .object([("type", .string(type))] + fields + [("sequence_number", .int(frames.count))])
            frames.append(Frames.event(type, event))
        }
        emit("response.created", [("response", response(status: "in_progress", output: [], usage: nil))])
        emit("response.in_progress", [("response", response(status: "in_progress", output: [], usage: nil))])
        var index = 0
        if reasoning > 0 {
            emit("response.output_item.added", [("output_index", .int(index)), ("item", reasoningItem)])
            emit("response.output_item.done", [("output_index", .int(index)), ("item", reasoningItem)])
            index += 1
        }
        switch plan.content {
        case .text(let reply):
            let location: [(String, JSON)] = [
                ("item_id", .string(messageID)), ("output_index", .int(index)), ("content_index", 0),
            ]
            emit("response.output_item.added", [
                ("output_index", .int(index)), ("item", messageItem(status: "in_progress", content: [])),
            ])
            emit("response.content_part.added", location + [("part", textPart(""))])
            for delta in reply.deltas {
                emit("response.output_text.delta", location + [("delta", .string(delta)), ("logprobs", [])])
            }
            emit("response.output_text.done", location + [("text", .string(reply.text)), ("logprobs", [])])
            emit("response.content_part.done", location + [("part", textPart(reply.text))])
            emit("response.output_item.done", [
                ("output_index", .int(index)),
                ("item", messageItem(status: finalStatus, content: [textPart(reply.text)])),
            ])
        case .toolCall(let toolCall):
            emit("response.output_item.added", [
                ("output_index", .int(index)),
                ("item", functionItem(status: "in_progress", arguments: "", name: toolCall.name)),
            ])
            for fragment in OpenAIRequest.fragments(of: toolCall.argumentsText) {
                emit("response.function_call_arguments.delta", [
                    ("item_id", .string(functionID)), ("output_index", .int(index)), ("delta", .string(fragment)),
                ])
            }
            emit("response.function_call_arguments.done", [
                ("item_id", .string(functionID)), ("output_index", .int(index)),
                ("name", .string(toolCall.name)), ("arguments", .string(toolCall.argumentsText)),
            ])
            emit("response.output_item.done", [
                ("output_index", .int(index)),
                ("item", functionItem(status: "completed", arguments: toolCall.argumentsText, name: toolCall.name)),
            ])
        }
        emit(plan.truncated ? "response.incomplete" : "response.completed", [
            ("response", response(status: finalStatus, output: finalOutput, usage: usage)),
        ])
        return .stream(frames, contentType: Frames.eventStream)
    }

    /// The counted texts of one Responses input item: a message's `content` (string or the parts'
    /// `text`), or a `function_call_output`'s `output` (string or the parts' `text`).
    static func responseItemTexts(_ item: JSON) -> [String] {
        switch item["type"]?.stringValue {
        case "function_call_output"?: return Texts.of(item["output"])
        case nil, "message"?: return Texts.of(item["content"])
        default: return []  // function calls, reasoning and other items are not counted
        }
    }
}
