import Foundation

/// The Gemini endpoints: `models/{model}:{method}` under `/v1beta/` and `/v1/`.
extension FakeProvider {
    func gemini(_ call: Call, target: String) throws(Failure) -> Outcome {
        var decoded = target
        if !decoded.contains(":"), decoded.contains("%3A") || decoded.contains("%3a") {
            decoded = decoded.replacingOccurrences(of: "%3A", with: ":").replacingOccurrences(of: "%3a", with: ":")
        }
        guard let colon = decoded.lastIndex(of: ":") else {
            throw .notFound("Requested entity was not found.")
        }
        let model = String(decoded[..<colon])
        let method = String(decoded[decoded.index(after: colon)...])
        switch method {
        case "generateContent": return try geminiGenerate(call, model: model, stream: false)
        case "streamGenerateContent": return try geminiGenerate(call, model: model, stream: true)
        case "countTokens": return try geminiCountTokens(call)
        case "embedContent":
            return .json(.object([("embedding", try geminiEmbedding(call.body))]))
        case "batchEmbedContents":
            guard let requests = Gemini.field(call.body, "requests")?.arrayValue else {
                throw .invalidRequest("* BatchEmbedContentsRequest.requests: requests is not specified\n")
            }
            var embeddings: [JSON] = []
            for request in requests { embeddings.append(try geminiEmbedding(request)) }
            return .json(.object([("embeddings", .array(embeddings))]))
        default:
            throw .notFound("Requested entity was not found.")
        }
    }

    /// The counted text of a generate request (``FakeProvider``'s Gemini rules).
    struct GeminiTally {
        var tally = TextTally()
        var lastIsToolResult = false
    }

    func geminiTally(_ body: JSON) throws(Failure) -> GeminiTally {
        guard let contents = Gemini.field(body, "contents")?.arrayValue else {
            throw .invalidRequest("* GenerateContentRequest.contents: contents is not specified\n")
        }
        var result = GeminiTally()
        if let system = Gemini.field(body, "systemInstruction", "system_instruction") {
            result.tally.count(Gemini.texts(system))
        }
        for content in contents { result.tally.count(Gemini.texts(content)) }
        if let last = contents.last {
            result.tally.lastText = Texts.joined(Gemini.texts(last))
            result.lastIsToolResult =
                last["parts"]?.arrayValue?.contains {
                    Gemini.field($0, "functionResponse", "function_response") != nil
                } ?? false
        }
        return result
    }

    func geminiGenerate(_ call: Call, model: String, stream: Bool) throws(Failure) -> Outcome {
        let body = call.body
        let counted = try geminiTally(body)
        let config = Gemini.field(body, "generationConfig", "generation_config")
        let maxTokens: Int?
        if let value = config.flatMap({ Gemini.field($0, "maxOutputTokens", "max_output_tokens") }), !value.isNull {
            guard let limit = value.intValue, limit >= 1 else {
                throw .invalidRequest("* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n")
            }
            maxTokens = limit
        } else {
            maxTokens = nil
        }
        var reasoning = 0
        var includeThoughts = false
        if let thinking = config.flatMap({ Gemini.field($0, "thinkingConfig", "thinking_config") }) {
            if let budget = Gemini.field(thinking, "thinkingBudget", "thinking_budget")?.intValue {
                reasoning = FakeRules.reasoningTokens(budget: budget)
            } else if let level = Gemini.field(thinking, "thinkingLevel", "thinking_level")?.stringValue {
                reasoning = FakeRules.reasoningTokens(effort: level)
            }
            includeThoughts = Gemini.field(thinking, "includeThoughts", "include_thoughts")?.boolValue ?? false
        }

        var tool: FakeRules.ToolCall?
        if !counted.lastIsToolResult, let tools = Gemini.field(body, "tools")?.arrayValue {
            let declarations = tools.flatMap { tool -> [(String, JSON?)] in
                (Gemini.field(tool, "functionDeclarations", "function_declarations")?.arrayValue ?? []).compactMap {
                    declaration in
                    guard let name = declaration["name"]?.stringValue else { return nil }
                    return (name, Gemini.field(declaration, "parameters") ?? Gemini.field(declaration, "parametersJsonSchema", "parameters_json_schema"))
                }
            }
            let calling = Gemini.field(body, "toolConfig", "tool_config")
                .flatMap { Gemini.field($0, "functionCallingConfig", "function_calling_config") }
            let mode = calling.flatMap { Gemini.field($0, "mode") }?.stringValue?.uppercased() ?? "AUTO"
            let allowed = calling.flatMap { Gemini.field($0, "allowedFunctionNames", "allowed_function_names") }?
                .arrayValue?.compactMap(\.stringValue) ?? []
            if mode != "NONE",
               let chosen = declarations.first(where: { allowed.isEmpty || allowed.contains($0.0) })
            {
                tool = FakeRules.ToolCall(name: chosen.0, schema: chosen.1)
            }
        }
        let plan = Plan(
            lastText: counted.tally.lastText, maxTokens: maxTokens, tool: tool, reasoningTokens: reasoning)
        let cached = Gemini.field(body, "cachedContent", "cached_content")?.stringValue != nil
            ? FakeRules.geminiCachedContentTokens : 0
        let prompt = counted.tally.tokens + cached
        let responseID = call.id("", "response")
        let modelVersion = model.hasPrefix("models/") ? String(model.dropFirst("models/".count)) : model
        let finishReason = plan.truncated ? "MAX_TOKENS" : "STOP"

        func usage(candidates: Int) -> JSON {
            var members: [(String, JSON)] = [
                ("promptTokenCount", .int(prompt)), ("candidatesTokenCount", .int(candidates)),
                ("totalTokenCount", .int(prompt + candidates + plan.reasoningTokens)),
            ]
            if cached > 0 { members.append(("cachedContentTokenCount", .int(cached))) }
            members.append(("promptTokensDetails", [.object([("modality", "TEXT"), ("tokenCount", .int(prompt))])]))
            if cached > 0 {
                members.append(("cacheTokensDetails", [.object([("modality", "TEXT"), ("tokenCount", .int(cached))])]))
            }
            if plan.reasoningTokens > 0 { members.append(("thoughtsTokenCount", .int(plan.reasoningTokens))) }
            return .object(members)
        }
        func chunk(parts: [JSON], finish: Bool, candidates: Int) -> JSON {
            var candidate: [(String, JSON)] = [("content", .object([("parts", .array(parts)), ("role", "model")]))]
            if finish { candidate.append(("finishReason", .string(finishReason))) }
            candidate.append(("index", 0))
            return .object([
                ("candidates", [.object(candidate)]), ("usageMetadata", usage(candidates: candidates)),
                ("modelVersion", .string(modelVersion)), ("responseId", .string(responseID)),
            ])
        }
        let thoughtPart: JSON? =
            includeThoughts && plan.reasoningTokens > 0
            ? .object([("text", .string(FakeRules.reasoningText)), ("thought", true)]) : nil
        func functionCallPart(_ toolCall: FakeRules.ToolCall) -> JSON {
            .object([("functionCall", .object([("name", .string(toolCall.name)), ("args", toolCall.arguments)]))])
        }

        guard stream else {
            var parts: [JSON] = thoughtPart.map { [$0] } ?? []
            switch plan.content {
            case .text(let reply): parts.append(.object([("text", .string(reply.text))]))
            case .toolCall(let toolCall): parts.append(functionCallPart(toolCall))
            }
            return .json(chunk(parts: parts, finish: true, candidates: plan.visibleTokens))
        }

        // Each chunk carries the usage so far; the last one has the final numbers and the finish reason.
        var chunks: [JSON] = []
        if let thoughtPart { chunks.append(chunk(parts: [thoughtPart], finish: false, candidates: 0)) }
        switch plan.content {
        case .text(let reply):
            for (index, piece) in reply.deltas.enumerated() {
                chunks.append(chunk(
                    parts: [.object([("text", .string(piece))])], finish: index == reply.deltas.count - 1,
                    candidates: index + 1))
            }
        case .toolCall(let toolCall):
            chunks.append(chunk(parts: [functionCallPart(toolCall)], finish: true, candidates: toolCall.outputTokens))
        }
        if call.query["alt"] == "sse" {
            return .stream(chunks.map { "data: " + $0.serialized + "\r\n\r\n" }, contentType: "text/event-stream")
        }
        var frames = chunks.enumerated().map { ($0.offset == 0 ? "[" : ",\r\n") + $0.element.serialized }
        frames.append("]")
        return .stream(frames, contentType: "application/json; charset=UTF-8")
    }

    func geminiCountTokens(_ call: Call) throws(Failure) -> Outcome {
        let request = Gemini.field(call.body, "generateContentRequest", "generate_content_request") ?? call.body
        let counted = try geminiTally(request)
        let cached = Gemini.field(request, "cachedContent", "cached_content")?.stringValue != nil
            ? FakeRules.geminiCachedContentTokens : 0
        let total = counted.tally.tokens + cached
        var members: [(String, JSON)] = [("totalTokens", .int(total))]
        if cached > 0 { members.append(("cachedContentTokenCount", .int(cached))) }
        members.append(("promptTokensDetails", [.object([("modality", "TEXT"), ("tokenCount", .int(total))])]))
        return .json(.object(members))
    }

    /// `{"values": [...]}` for one embed request (`content`, optional `outputDimensionality`).
    func geminiEmbedding(_ request: JSON) throws(Failure) -> JSON {
        guard let content = Gemini.field(request, "content") else {
            throw .invalidRequest("* EmbedContentRequest.content: content is not specified\n")
        }
        var dimensions = FakeRules.defaultEmbeddingDimensions
        if let value = Gemini.field(request, "outputDimensionality", "output_dimensionality"), !value.isNull {
            guard let requested = value.intValue, (1...8192).contains(requested) else {
                throw .invalidRequest("* EmbedContentRequest.output_dimensionality: must be between 1 and 8192\n")
            }
            dimensions = requested
        }
        let text = Texts.joined(Gemini.texts(content))
        return .object([("values", .array(FakeRules.embedding(of: text, dimensions: dimensions).map(JSON.double)))])
    }

    static let geminiModelIDs = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash", "gemini-embedding-001"]

    func geminiModels() -> Outcome {
        .json(.object([
            ("models", .array(Self.geminiModelIDs.map { id in
                .object([
                    ("name", .string("models/" + id)), ("version", "001"), ("displayName", .string(id)),
                    ("inputTokenLimit", 1_048_576), ("outputTokenLimit", 65_536),
                    ("supportedGenerationMethods", id.contains("embedding")
                        ? ["embedContent"] : ["generateContent", "countTokens"]),
                ])
            })),
        ]))
    }
}

enum Gemini {
    /// A field by its camelCase name or its snake_case alias (the REST API accepts both).
    static func field(_ object: JSON, _ name: String, _ alias: String? = nil) -> JSON? {
        if let value = object[name] { return value }
        return alias.flatMap { object[$0] }
    }

    /// The `text` of every part of a `Content`.
    static func texts(_ content: JSON) -> [String] {
        (content["parts"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }
    }
}
