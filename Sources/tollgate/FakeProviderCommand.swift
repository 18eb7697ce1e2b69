import ArgumentParser
import Foundation
import TollgateFakeProvider

/// `tollgate fake-provider`: a deterministic stand-in for the OpenAI, Anthropic and Gemini APIs.
struct FakeProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-provider",
        abstract: "A deterministic stand-in for the OpenAI, Anthropic and Gemini APIs.",
        discussion: """
            Serves, on one port, the providers' own paths: OpenAI /v1/chat/completions, /v1/completions, \
            /v1/embeddings, /v1/responses, GET /v1/models; Anthropic /v1/messages, \
            /v1/messages/count_tokens; Gemini /v1beta/ and /v1/ models/{model}:generateContent, \
            :streamGenerateContent (?alt=sse), :countTokens, :embedContent, :batchEmbedContents. \
            Streams are the providers' real SSE event sequences.

            Authentication as the real APIs: OpenAI "Authorization: Bearer K"; Anthropic "x-api-key: K" \
            (or Bearer) and an anthropic-version header; Gemini "x-goog-api-key: K" or ?key=K. With \
            --require-key, any other key is refused in the provider's own error shape.

            Usage rules:
              tokens(text) = ceil(UTF-8 bytes / 4), over the request's text: OpenAI message contents \
            (strings or parts' text), prompt, input, Responses instructions/input items; Anthropic \
            system and message text blocks and tool_result contents; Gemini systemInstruction and \
            contents parts' text. Tools and other fields are not counted.
              reply = "Echo:" + the words (ASCII whitespace) of the last message, at most 32 words, \
            cut to the request's max tokens (then finish reason length / max_tokens / MAX_TOKENS); \
            output tokens = words. Legacy completions default to max_tokens 16.
              tool call (tools offered, choice not none, last message not a tool result): the named or \
            first tool, arguments = the schema's required properties ("fake", 1, true, [], nested \
            objects, first enum value); output tokens = ceil(bytes of the compact arguments JSON / 4).
              reasoning: OpenAI reasoning_effort / reasoning.effort or an o<digit> model (medium): \
            minimal 8, low 32, medium 64, high 128, xhigh 256 (in completion/output tokens). \
            Anthropic thinking enabled: min(budget_tokens, 64), adaptive 64 (in output_tokens). Gemini \
            thinkingBudget: min(budget, 64), -1 gives 64; thinkingLevel: the effort table \
            (thoughtsTokenCount, not in candidatesTokenCount).
              cache: OpenAI prompt_cache_key and >= 1024 input tokens: cached = input rounded down to a \
            multiple of 128 (included in prompt tokens). Anthropic: text of blocks with cache_control \
            is a cache write (ttl "1h": 1-hour, else 5-minute), or a cache read with header \
            "x-fake-cache: read"; each class ceil(bytes / 4), input_tokens excludes them. Gemini: \
            cachedContent gives 1024 cached tokens, included in promptTokenCount.
              embeddings: 16 dimensions unless asked; values are multiples of 1/1024 from a hash of \
            the text; OpenAI base64 encoding supported.

            Failure modes (header x-fake-mode, or --mode for every request): none, rate_limit (429, \
            retry-after: 1), server_error (500), overloaded (Anthropic 529, others 503), slow_stream \
            (x-fake-delay-ms, default --delay-ms, between chunks), cut_stream (half the stream, then \
            the connection closes), timeout (no answer until the client leaves, at most \
            --max-hang-seconds, then 504).

            Logs "fake provider listening" with tollgate.port=N on standard error and prints its \
            base URL on standard output once it accepts connections. Runs until SIGINT or SIGTERM.
            """)

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one, logged as tollgate.port).")
    var port: Int = 4010

    @Option(help: "Failure mode of requests without an x-fake-mode header: \(FailureMode.allCases.map(\.rawValue).joined(separator: ", ")).")
    var mode: String = "none"

    @Option(help: "Accept only this API key (env TOLLGATE_FAKE_REQUIRE_KEY).")
    var requireKey: String?

    @Option(help: "Delay between stream chunks in slow_stream mode, in milliseconds.")
    var delayMs: Int = 100

    @Option(help: "Longest a timeout-mode request hangs before a 504, in seconds.")
    var maxHangSeconds: Int = 60

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard FailureMode(rawValue: mode) != nil else {
            throw ValidationError(
                "--mode must be one of \(FailureMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (0...600_000).contains(delayMs) else { throw ValidationError("--delay-ms must be 0...600000") }
        guard (1...3_600).contains(maxHangSeconds) else { throw ValidationError("--max-hang-seconds must be 1...3600") }
    }

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        let requiredKey = requireKey ?? ProcessInfo.processInfo.environment["TOLLGATE_FAKE_REQUIRE_KEY"]
        let configuration = FakeProvider.Configuration(
            mode: FailureMode(rawValue: mode) ?? .none,
            requiredKey: requiredKey?.isEmpty == false ? requiredKey : nil,
            streamDelay: .milliseconds(delayMs),
            maximumHang: .seconds(maxHangSeconds))
        let host = self.host
        try await FakeProvider(configuration: configuration, logger: logger).run(host: host, port: port) { port in
            Output.line("http://\(host):\(port)")
        }
    }
}
