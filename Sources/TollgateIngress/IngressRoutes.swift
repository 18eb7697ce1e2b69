import Foundation
public import Hummingbird
import HTTPTypes
import TollgateEvents
import TollgateProviders

/// The providers' own paths, served by the ``Proxy``.
///
/// ```swift
/// let router = Router()
/// IngressRoutes.add(to: router, proxy: proxy)
/// ```
public enum IngressRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, proxy: Proxy) {
        // OpenAI
        router.post("/v1/chat/completions") { request, _ in
            await proxy.handle(OpenAIDialect.self, endpoint: .openAIChatCompletions, request: request, pathModel: nil)
        }
        router.post("/v1/completions") { request, _ in
            await proxy.handle(OpenAIDialect.self, endpoint: .openAICompletions, request: request, pathModel: nil)
        }
        router.post("/v1/embeddings") { request, _ in
            await proxy.handle(OpenAIDialect.self, endpoint: .openAIEmbeddings, request: request, pathModel: nil)
        }
        router.post("/v1/responses") { request, _ in
            await proxy.handle(OpenAIDialect.self, endpoint: .openAIResponses, request: request, pathModel: nil)
        }
        router.get("/v1/models") { request, _ in
            await proxy.handle(OpenAIDialect.self, endpoint: .openAIModels, request: request, pathModel: nil)
        }
        // Anthropic
        router.post("/v1/messages") { request, _ in
            await proxy.handle(AnthropicDialect.self, endpoint: .anthropicMessages, request: request, pathModel: nil)
        }
        router.post("/v1/messages/count_tokens") { request, _ in
            await proxy.handle(AnthropicDialect.self, endpoint: .anthropicCountTokens, request: request,
                               pathModel: nil)
        }
        // Gemini: `/v1beta/models/{model}:{method}` and the same under `/v1/`.
        for version in ["v1beta", "v1"] {
            router.post("/\(version)/models/{target}") { request, context in
                let target = context.parameters.get("target") ?? ""
                guard let (model, endpoint) = geminiTarget(target) else {
                    return proxy.notFound(request, provider: .gemini)
                }
                return await proxy.handle(GeminiDialect.self, endpoint: endpoint, request: request, pathModel: model)
            }
        }
        // Everything else: 404 in the shape the caller's SDK expects.
        // The router does not backtrack out of a matched prefix, so each prefix gets its own catch-all.
        for prefix in ["", "/v1", "/v1beta", "/v1/messages", "/v1/chat"] {
            for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
                router.on("\(prefix)/**", method: method) { request, _ in
                    proxy.notFound(request, provider: guessProvider(request))
                }
            }
        }
    }

    /// `gemini-2.5-flash:generateContent` → (`gemini-2.5-flash`, `.geminiGenerateContent`).
    static func geminiTarget(_ target: String) -> (String, Endpoint)? {
        guard let colon = target.lastIndex(of: ":") else { return nil }
        let model = String(target[..<colon])
        let method = String(target[colon...])
        guard !model.isEmpty else { return nil }
        let endpoints: [Endpoint] = [.geminiGenerateContent, .geminiStreamGenerateContent, .geminiCountTokens,
                                     .geminiEmbedContent, .geminiBatchEmbedContents]
        guard let endpoint = endpoints.first(where: { $0.rawValue == method }) else { return nil }
        return (model, endpoint)
    }

    /// Whose error shape an unknown path gets: by path and credential header.
    static func guessProvider(_ request: Request) -> Provider {
        let path = request.uri.path
        if path.hasPrefix("/v1beta") || request.headers[HTTPField.Name("x-goog-api-key")!] != nil
            || path.contains(":") { return .gemini }
        if request.headers[HTTPField.Name("x-api-key")!] != nil
            || request.headers[HTTPField.Name("anthropic-version")!] != nil { return .anthropic }
        return .openai
    }
}

extension Proxy {
    /// A 404 for an unknown path, in `provider`'s shape. A call made with a valid key is still recorded
    /// (a wrong base URL in an app shows up in its team's figures), under the path it asked for.
    func notFound(_ request: Request, provider: Provider) -> Response {
        let message = "Unknown path: \(request.method.rawValue) \(request.uri.path)"
        let error: ErrorResponse
        switch provider {
        case .openai: error = OpenAIDialect.errorResponse(.notFound, message: message)
        case .anthropic: error = AnthropicDialect.errorResponse(.notFound, message: message)
        case .gemini: error = GeminiDialect.errorResponse(.notFound, message: message)
        }
        let requestID = RequestID.make()
        if case .success(let key) = control.keys.authenticate(Self.presentedKey(request, provider: provider)) {
            // No endpoint matched: the event names the path asked for.
            recordRefusal(requestID: requestID, receivedAt: Date(), started: .now, provider: provider,
                          endpoint: String(request.uri.path.prefix(200)), kind: .notFound, status: error.status,
                          key: key, model: nil, attribution: nil)
        }
        return Self.errorResponse(error, requestID: requestID)
    }
}
