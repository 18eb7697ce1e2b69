import AsyncHTTPClient
import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import TollgateBudget
import TollgateEvents
import TollgateLog
import TollgateProviders

/// The pass-through proxy: authenticates, meters and forwards one call to its provider.
///
/// Request bodies go upstream unchanged except for documented rewrites (``ProviderDialect/upstreamBody``);
/// responses come back unchanged (minus hop-by-hop headers) plus `x-tollgate-request-id`. Streams are
/// relayed event by event as they arrive. Every call, refused ones included, produces a `response.v1`
/// event; admitted calls also a `request.v1` event first. Events are queued for the log and never waited on.
public struct Proxy: Sendable {
    public let configuration: IngressConfiguration
    public let control: ControlPlane
    public let events: EventPublisher
    let upstreams: UpstreamClients
    let logger: Logger
    /// Budget enforcement; `nil` when the process enforces no budgets.
    public let budgets: BudgetPlane?
    let metrics: RequestMetrics

    init(configuration: IngressConfiguration, control: ControlPlane, events: EventPublisher,
         upstreams: UpstreamClients, budgets: BudgetPlane? = nil, metrics: RequestMetrics = RequestMetrics(),
         logger: Logger) {
        self.metrics = metrics
        self.configuration = configuration
        self.control = control
        self.events = events
        self.upstreams = upstreams
        self.budgets = budgets
        self.logger = logger
    }

    /// Headers never forwarded in either direction (RFC 9110 §7.6.1), plus ones the proxy sets itself.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    ]
    /// Client headers that carry credentials or Tollgate options: never sent upstream.
    static let clientOnly: Set<String> = ["authorization", "x-api-key", "x-goog-api-key", "accept-encoding"]

    // MARK: Entry point

    /// Handles a call to `endpoint`, whose upstream path is `upstreamPath` (Gemini: the model is in it).
    func handle<D: ProviderDialect>(_ dialect: D.Type, endpoint: Endpoint, request: Request,
                                    pathModel: String?) async -> Response {
        let call = Call(requestID: RequestID.make(), endpoint: endpoint, receivedAt: Date(),
                        started: ContinuousClock.now)
        let logger = CallLogger(base: self.logger, requestID: call.requestID)

        // Authenticate.
        let presented = Self.presentedKey(request, provider: endpoint.provider)
        let key: KeyTable.Entry
        switch control.keys.authenticate(presented) {
        case .success(let entry): key = entry
        case .failure(let refusal):
            return refuse(dialect, call: call, kind: .unauthenticated, message: refusal.message, key: nil,
                          model: pathModel, logger: logger)
        }

        // Read and parse the body.
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxRequestBytes)
        } catch {
            return refuse(dialect, call: call, kind: .requestTooLarge,
                          message: "Request body exceeds the limit of \(configuration.maxRequestBytes) bytes.",
                          key: key, model: pathModel, logger: logger)
        }
        let bodyData = Data(buffer: body, byteTransferStrategy: .noCopy)
        let facts: RequestFacts
        if endpoint == .openAIModels {
            facts = RequestFacts(model: nil, stream: false, maxOutputTokens: nil, toolCount: 0, user: nil,
                                 estimatedInputTokens: 0, clientRequestedStreamUsage: false)
        } else {
            do {
                facts = try D.requestFacts(endpoint: endpoint, body: bodyData, pathModel: pathModel)
            } catch {
                return refuse(dialect, call: call, kind: .invalidRequest, message: error.description, key: key,
                              model: pathModel, logger: logger)
            }
        }
        guard endpoint == .openAIModels || key.allows(model: facts.model) else {
            return refuse(dialect, call: call, kind: .permissionDenied,
                          message: "This key may not use model '\(facts.model ?? "")'. Allowed: \(key.data.models.joined(separator: ", ")).",
                          key: key, model: facts.model, logger: logger)
        }
        let attribution: Attribution
        do {
            attribution = try Attribution(key: key, request: request, facts: facts)
        } catch {
            return refuse(dialect, call: call, kind: .invalidRequest, message: "\(error)", key: key,
                          model: facts.model, logger: logger)
        }
        if endpoint == .openAIModels, !key.data.models.isEmpty {
            return modelList(key: key, call: call, attribution: attribution)
        }
        guard let upstream = configuration.upstreams[endpoint.provider], upstream.apiKey != nil else {
            return refuse(dialect, call: call, kind: .upstreamUnavailable,
                          message: "Tollgate has no API key configured for \(endpoint.provider.rawValue).",
                          key: key, model: facts.model, logger: logger)
        }

        // Budgets: reserve the worst case; refuse, or downgrade the model.
        var routing: ResponseData.Routing?
        var upstreamModel: String?
        var reserved: Money?
        if let budgets, let model = facts.model, endpoint != .openAIModels {
            let admission = budgets.admit(
                BudgetGuard.Request(requestID: call.requestID, keyID: key.keyID, project: attribution.project,
                                    team: attribution.team, customer: attribution.customer, tags: attribution.tags,
                                    model: model),
                provider: endpoint.provider, estimatedInputTokens: Int64(facts.estimatedInputTokens),
                maxOutputTokens: facts.maxOutputTokens.map(Int64.init), now: call.receivedAt)
            switch admission {
            case .allow(let ticket):
                if !ticket.budgets.isEmpty { reserved = Money(nanoUSD: ticket.reservedNanoUSD) }
            case .downgrade(let from, let to, let budgetID, let ticket):
                upstreamModel = to
                reserved = Money(nanoUSD: ticket.reservedNanoUSD)
                routing = ResponseData.Routing(policy: "budget:\(budgetID)", reason: "downgrade", downgradedFrom: from)
                logger.info("model downgraded by a budget", metadata: ["tollgate.budget": "\(budgetID)",
                                                                      "tollgate.model": "\(from) -> \(to)"])
            case .block(let refusal):
                var response = refuse(dialect, call: call, kind: .quotaExceeded, message: Self.budgetMessage(refusal),
                                      key: key, model: facts.model, attribution: attribution, logger: logger)
                Self.addBudgetHeaders(refusal, to: &response)
                return response
            }
        }

        // Admit: the request event, then upstream.
        events.publish(CloudEvent(
            id: "request:\(call.requestID)", source: configuration.source, time: call.receivedAt,
            subject: attribution.team,
            data: RequestData(
                requestID: call.requestID, keyID: key.keyID, team: attribution.team, project: attribution.project,
                customer: attribution.customer, tags: attribution.tags, provider: endpoint.provider,
                endpoint: endpoint.eventName, requestedModel: facts.model ?? "", stream: facts.stream,
                maxOutputTokens: facts.maxOutputTokens.map(Int64.init),
                estimatedInputTokens: Int64(facts.estimatedInputTokens), reservedCostNanoUSD: reserved,
                receivedAt: call.receivedAt)),
            prefix: configuration.topicPrefix)

        let upstreamBody = endpoint == .openAIModels ? bodyData
            : D.upstreamBody(endpoint: endpoint, body: bodyData, facts: facts, model: upstreamModel)
        var upstreamPath = request.uri.path
        if let upstreamModel, let from = routing?.downgradedFrom, endpoint.provider == .gemini {
            upstreamPath = Self.geminiPath(upstreamPath, model: from, replacedBy: upstreamModel)
        }
        var outgoing = HTTPClientRequest(url: upstream.url(forPath: upstreamPath,
                                                           query: Self.upstreamQuery(request.uri.query)))
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        outgoing.headers = Self.upstreamHeaders(request.headers, provider: endpoint.provider,
                                                apiKey: upstream.apiKey ?? "")
        if request.method != .get {
            outgoing.body = .bytes(ByteBuffer(data: upstreamBody))
        }
        var context = UpstreamContext(call: call, key: key, attribution: attribution, facts: facts)
        context.routing = routing
        context.upstreamSentAt = Date()
        let response: HTTPClientResponse
        do {
            response = try await upstreams.current.execute(outgoing, deadline: .now() + .seconds(configuration.requestDeadline.components.seconds),
                                              logger: logger.forHTTPClient)
        } catch {
            let kind = Self.classify(error)
            logger.warning("upstream call failed", metadata: ["tollgate.provider": "\(endpoint.provider.rawValue)",
                                                              "tollgate.error": "\(Self.describe(error))"])
            return refuse(dialect, call: call, kind: kind, message: kind == .upstreamTimeout
                          ? "The provider did not answer in time." : "The provider could not be reached.",
                          key: key, model: facts.model, attribution: attribution, logger: logger)
        }
        context.status = Int(response.status.code)
        var headers = Self.downstreamHeaders(response.headers, requestID: call.requestID, streaming: false)
        if let from = routing?.downgradedFrom { headers[Self.downgradedFromHeader] = from }
        let isEventStream = response.headers.first(name: "content-type")?.lowercased()
            .hasPrefix("text/event-stream") ?? false

        if (200..<300).contains(response.status.code) && isEventStream {
            return relayStream(dialect, response: response, context: context, logger: logger)
        }
        if (200..<300).contains(response.status.code) && endpoint == .geminiStreamGenerateContent {
            // `streamGenerateContent` without `alt=sse` streams one JSON array: relay it as it comes.
            return relayRaw(dialect, response: response, context: context, logger: logger)
        }

        // A complete body.
        let responseBody: ByteBuffer
        do {
            responseBody = try await response.body.collect(upTo: configuration.maxResponseBytes)
        } catch {
            let kind = Self.classify(error)
            return refuse(dialect, call: call, kind: kind == .internalError ? .upstreamUnavailable : kind,
                          message: "The provider's response could not be read.", key: key, model: facts.model,
                          attribution: attribution, logger: logger)
        }
        let responseData = Data(buffer: responseBody, byteTransferStrategy: .noCopy)
        finishComplete(dialect, context: context, body: responseData)
        return Response(status: .init(code: Int(response.status.code)), headers: headers,
                        body: ResponseBody(byteBuffer: responseBody))
    }

    // MARK: Streams

    private func relayStream<D: ProviderDialect>(_ dialect: D.Type, response: HTTPClientResponse,
                                                 context: UpstreamContext, logger: CallLogger) -> Response {
        var headers = Self.downstreamHeaders(response.headers, requestID: context.call.requestID, streaming: true)
        if let from = context.routing?.downgradedFrom { headers[Self.downgradedFromHeader] = from }
        let body = response.body
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: ResponseBody { writer in
            var parser = SSEParser()
            var meter = D.meter(endpoint: context.call.endpoint, facts: context.facts)
            var context = context
            var ending = StreamEnding.upstreamFinished
            do {
                for try await chunk in body {
                    if context.firstByteAt == nil { context.firstByteAt = ContinuousClock.now }
                    var out = ByteBuffer()
                    for event in parser.feed(chunk.readableBytesView) where meter.observe(event) == .forward {
                        out.writeBytes(event.raw)
                    }
                    if out.readableBytes > 0 {
                        do {
                            try await writer.write(out)
                        } catch {
                            ending = .clientGone
                            break
                        }
                    }
                }
            } catch {
                ending = Self.classify(error) == .upstreamTimeout ? .upstreamTimedOut : .upstreamFailed
                logger.warning("upstream stream failed", metadata: ["tollgate.error": "\(Self.describe(error))"])
            }
            if ending == .upstreamFinished {
                var out = ByteBuffer()
                for event in parser.finish() where meter.observe(event) == .forward { out.writeBytes(event.raw) }
                if out.readableBytes > 0 { try? await writer.write(out) }
            }
            context.upstreamDoneAt = ContinuousClock.now
            finishStream(context: context, seen: StreamSeen(meter), ending: ending)
            try await Self.end(&writer, ending)
        })
    }

    /// Relays a streamed body that is not SSE, keeping a bounded copy to read usage from at the end.
    private func relayRaw<D: ProviderDialect>(_ dialect: D.Type, response: HTTPClientResponse,
                                              context: UpstreamContext, logger: CallLogger) -> Response {
        var headers = Self.downstreamHeaders(response.headers, requestID: context.call.requestID, streaming: true)
        if let from = context.routing?.downgradedFrom { headers[Self.downgradedFromHeader] = from }
        let body = response.body
        let limit = configuration.maxResponseBytes
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: ResponseBody { writer in
            var context = context
            var copy = Data()
            var ending = StreamEnding.upstreamFinished
            do {
                for try await chunk in body {
                    if context.firstByteAt == nil { context.firstByteAt = ContinuousClock.now }
                    if copy.count + chunk.readableBytes <= limit { copy.append(contentsOf: chunk.readableBytesView) }
                    do { try await writer.write(chunk) } catch { ending = .clientGone; break }
                }
            } catch {
                ending = .upstreamFailed
            }
            context.upstreamDoneAt = ContinuousClock.now
            if ending == .upstreamFinished {
                finishComplete(dialect, context: context, body: copy)  // the dialect reads the array's last usage
                try? await writer.finish(nil)
            } else {
                // JSON text is a fair stand-in for generated characters when estimating.
                let seen = StreamSeen(usage: nil, servedModel: nil, completed: false, outputCharacters: copy.count)
                finishStream(context: context, seen: seen, ending: ending)
                try await Self.end(&writer, ending)
            }
        })
    }

    /// The upstream broke off a stream: the client's connection is broken off too, so its SDK sees the
    /// same truncated stream it would have seen from the provider, not a clean end.
    struct UpstreamStreamBroken: Error {}

    /// Ends the client's response the way the upstream's ended.
    static func end(_ writer: inout any ResponseBodyWriter, _ ending: StreamEnding) async throws {
        switch ending {
        case .upstreamFinished: try await writer.finish(nil)
        case .clientGone: return
        case .upstreamFailed, .upstreamTimedOut: throw UpstreamStreamBroken()
        }
    }

    enum StreamEnding: Sendable {
        case upstreamFinished
        case upstreamFailed
        case upstreamTimedOut
        case clientGone
    }

    // MARK: Response events

    struct UpstreamContext: Sendable {
        var call: Call
        var key: KeyTable.Entry
        var attribution: Attribution
        var facts: RequestFacts
        var upstreamSentAt: Date?
        var status: Int = 0
        var firstByteAt: ContinuousClock.Instant?
        var upstreamDoneAt: ContinuousClock.Instant?
        /// Set when a budget downgraded the model.
        var routing: ResponseData.Routing?
    }

    private func finishComplete<D: ProviderDialect>(_ dialect: D.Type, context: UpstreamContext, body: Data) {
        var context = context
        if context.upstreamDoneAt == nil { context.upstreamDoneAt = ContinuousClock.now }
        let success = (200..<300).contains(context.status)
        let endpoint = context.call.endpoint
        var usage = TokenUsage()
        var source = ResponseData.UsageSource.none
        // One read of the body for both usage and the served model.
        let summary = success ? D.responseSummary(endpoint: endpoint, responseBody: body) : nil
        if success && endpoint.isBilled {
            if let reported = summary?.usage {
                usage = reported
                source = .provider
            } else {
                usage.inputTokens = Int64(context.facts.estimatedInputTokens)
                source = .estimated
            }
        }
        emitResponse(context: context,
                     servedModel: summary?.servedModel,
                     outcome: success ? .success : .providerError,
                     errorType: success ? nil : (D.errorType(status: context.status, responseBody: body)
                                                 ?? "http_\(context.status)"),
                     usage: usage, usageSource: source)
    }

    /// What a stream showed of itself.
    struct StreamSeen: Sendable {
        var usage: TokenUsage?
        var servedModel: String?
        var completed: Bool
        var outputCharacters: Int

        init(usage: TokenUsage?, servedModel: String?, completed: Bool, outputCharacters: Int) {
            self.usage = usage
            self.servedModel = servedModel
            self.completed = completed
            self.outputCharacters = outputCharacters
        }

        init(_ meter: some StreamMeter) {
            self.init(usage: meter.usage, servedModel: meter.servedModel, completed: meter.completed,
                      outputCharacters: meter.outputCharacters)
        }
    }

    private func finishStream(context: UpstreamContext, seen: StreamSeen, ending: StreamEnding) {
        var usage = seen.usage ?? TokenUsage()
        var source = ResponseData.UsageSource.provider
        let finished = ending == .upstreamFinished && seen.completed
        if seen.usage == nil || !finished {
            // Cut off, or the client left: never zero, and never a partial report taken as final (Anthropic
            // reports input at the start and output only at the end). Keep what the provider reported, and
            // estimate the rest from what was asked and what streamed (about four characters per token).
            if seen.usage == nil { usage.inputTokens = Int64(context.facts.estimatedInputTokens) }
            usage.outputTokens = max(usage.outputTokens, Int64((seen.outputCharacters + 3) / 4))
            source = .estimated
        }
        let outcome: ResponseData.Outcome
        let errorType: String?
        switch ending {
        case .clientGone:
            outcome = .clientCancelled
            errorType = "client_disconnected"
        case .upstreamFailed:
            outcome = .providerError
            errorType = "stream_interrupted"
        case .upstreamTimedOut:
            outcome = .providerError
            errorType = "stream_timeout"
        case .upstreamFinished:
            outcome = seen.completed ? .success : .providerError
            errorType = seen.completed ? nil : "stream_incomplete"
        }
        emitResponse(context: context, servedModel: seen.servedModel, outcome: outcome, errorType: errorType,
                     usage: usage, usageSource: source)
    }

    private func emitResponse(context: UpstreamContext, servedModel: String?, outcome: ResponseData.Outcome,
                              errorType: String?, usage: TokenUsage, usageSource: ResponseData.UsageSource) {
        let call = context.call
        let now = ContinuousClock.now
        let timings = ResponseData.Timings(
            receivedAt: call.receivedAt, upstreamSentAt: context.upstreamSentAt,
            firstByteMs: context.firstByteAt.map { Self.milliseconds($0 - call.started) },
            durationMs: Self.milliseconds(now - call.started),
            upstreamMs: context.upstreamSentAt.map { sent in
                Self.milliseconds((context.upstreamDoneAt ?? now) - call.started)
                    - Int64((sent.timeIntervalSince(call.receivedAt) * 1000).rounded())
            })
        let requested = context.facts.model ?? ""
        metrics.record(provider: call.endpoint.provider, model: servedModel ?? requested, status: context.status,
                       durationNanoseconds: (now - call.started).nanosecondsClamped)
        events.publish(CloudEvent(
            id: "response:\(call.requestID)", source: configuration.source, time: Date(),
            subject: context.attribution.team,
            data: ResponseData(
                requestID: call.requestID, keyID: context.key.keyID, team: context.attribution.team,
                project: context.attribution.project, customer: context.attribution.customer,
                tags: context.attribution.tags, provider: call.endpoint.provider, endpoint: call.endpoint.eventName,
                requestedModel: requested, servedModel: servedModel ?? requested, stream: context.facts.stream,
                status: context.status, outcome: outcome, errorType: errorType, serviceTier: nil, timings: timings,
                usage: usage, usageSource: usageSource, routing: context.routing)),
            prefix: configuration.topicPrefix)
        budgets?.settle(call.requestID, provider: call.endpoint.provider, model: servedModel ?? requested,
                        usage: usage, receivedAt: call.receivedAt)
    }

    // MARK: Refusals

    /// A Tollgate-originated error in the provider's shape, with its response event.
    func refuse<D: ProviderDialect>(_ dialect: D.Type, call: Call, kind: GatewayErrorKind, message: String,
                                    key: KeyTable.Entry?, model: String?, attribution: Attribution? = nil,
                                    logger: CallLogger) -> Response {
        let error = D.errorResponse(kind, message: message)
        logger.info("request refused", metadata: ["tollgate.status": "\(error.status)",
                                                  "tollgate.reason": "\(kind.rawValue)"])
        recordRefusal(requestID: call.requestID, receivedAt: call.receivedAt, started: call.started,
                      provider: call.endpoint.provider, endpoint: call.endpoint.eventName, kind: kind,
                      status: error.status, key: key, model: model, attribution: attribution)
        return Self.errorResponse(error, requestID: call.requestID)
    }

    /// The response event of a call Tollgate answered itself.
    func recordRefusal(requestID: String, receivedAt: Date, started: ContinuousClock.Instant, provider: Provider,
                       endpoint: String, kind: GatewayErrorKind, status: Int, key: KeyTable.Entry?, model: String?,
                       attribution: Attribution?) {
        let attribution = attribution ?? key.map { Attribution(key: $0) } ?? Attribution.anonymous
        metrics.record(provider: provider, model: model ?? "", status: status,
                       durationNanoseconds: (ContinuousClock.now - started).nanosecondsClamped)
        let timings = ResponseData.Timings(
            receivedAt: receivedAt, upstreamSentAt: nil, firstByteMs: nil,
            durationMs: Self.milliseconds(ContinuousClock.now - started), upstreamMs: nil)
        events.publish(CloudEvent(
            id: "response:\(requestID)", source: configuration.source, time: Date(), subject: attribution.team,
            data: ResponseData(
                requestID: requestID, keyID: key?.keyID ?? "anonymous", team: attribution.team,
                project: attribution.project, customer: attribution.customer, tags: attribution.tags,
                provider: provider, endpoint: endpoint, requestedModel: model ?? "",
                servedModel: model ?? "", stream: false, status: status, outcome: .gatewayError,
                errorType: kind.rawValue, serviceTier: nil, timings: timings, usage: TokenUsage(),
                usageSource: .none, routing: nil)),
            prefix: configuration.topicPrefix)
        // A reservation made before the failure is released (nothing was billed).
        budgets?.settle(requestID, provider: provider, model: model ?? "", usage: .zero, receivedAt: receivedAt)
    }

    static func errorResponse(_ error: ErrorResponse, requestID: String) -> Response {
        var headers: HTTPFields = [.contentType: error.contentType]
        headers[requestIDHeader] = requestID
        return Response(status: .init(code: error.status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(data: error.body)))
    }

    /// `GET /v1/models` for a key limited to some models: just those.
    private func modelList(key: KeyTable.Entry, call: Call, attribution: Attribution) -> Response {
        struct Model: Encodable {
            var id: String
            var object = "model"
            var created: Int
            var owned_by = "tollgate"
        }
        struct List: Encodable {
            var object = "list"
            var data: [Model]
        }
        let created = Int(key.data.createdAt.timeIntervalSince1970)
        let list = List(data: key.data.models.map { Model(id: $0, created: created) })
        let data = (try? JSONEncoder().encode(list)) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[Self.requestIDHeader] = call.requestID
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: data)))
    }

    // MARK: Helpers

    static let requestIDHeader = HTTPField.Name("x-tollgate-request-id")!

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// The key a client presented, where its provider's SDK puts it.
    static func presentedKey(_ request: Request, provider: Provider) -> String? {
        func bearer() -> String? {
            guard let value = request.headers[.authorization] else { return nil }
            if let token = fastBearer(value) { return token }
            let parts = value.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            return String(parts[1]).trimmingCharacters(in: .whitespaces)
        }
        switch provider {
        case .openai:
            return bearer()
        case .anthropic:
            return request.headers[HTTPField.Name("x-api-key")!] ?? bearer()
        case .gemini:
            if let header = request.headers[HTTPField.Name("x-goog-api-key")!] { return header }
            return request.uri.queryParameters.get("key") ?? bearer()
        }
    }

    /// `Bearer <token>` with exactly one space and a token of printable ASCII without spaces (what every
    /// SDK sends): the token, without the general path's splitting and Unicode trimming. `nil` for
    /// anything else, which then takes the general path.
    static func fastBearer(_ value: String) -> String? {
        var value = value
        return value.withUTF8 { bytes -> String? in
            let prefix: StaticString = "bearer "
            guard bytes.count > prefix.utf8CodeUnitCount else { return nil }
            for index in 0..<prefix.utf8CodeUnitCount {
                let byte = bytes[index]
                let lower = (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
                guard lower == prefix.utf8Start[index] else { return nil }
            }
            let token = UnsafeBufferPointer(rebasing: bytes[prefix.utf8CodeUnitCount...])
            guard token.allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
            return String(decoding: token, as: UTF8.self)
        }
    }

    /// The query string without the client's `key` parameter (Gemini).
    static func upstreamQuery(_ query: String?) -> String? {
        guard let query, !query.isEmpty else { return nil }
        let kept = query.split(separator: "&").filter { !$0.hasPrefix("key=") && $0 != "key" }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }

    static func upstreamHeaders(_ fields: HTTPFields, provider: Provider, apiKey: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for field in fields {
            let name = field.name.canonicalName
            if hopByHop.contains(name) || clientOnly.contains(name) || name.hasPrefix("x-tollgate-") { continue }
            headers.add(name: field.name.rawName, value: field.value)
        }
        switch provider {
        case .openai: headers.add(name: "authorization", value: "Bearer \(apiKey)")
        case .anthropic: headers.add(name: "x-api-key", value: apiKey)
        case .gemini: headers.add(name: "x-goog-api-key", value: apiKey)
        }
        return headers
    }

    static func downstreamHeaders(_ headers: HTTPHeaders, requestID: String, streaming: Bool) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            let lower = name.lowercased()
            if hopByHop.contains(lower) { continue }
            guard let fieldName = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        fields[requestIDHeader] = requestID
        return fields
    }

    static func classify(_ error: any Error) -> GatewayErrorKind {
        if let client = error as? HTTPClientError {
            switch client {
            case .readTimeout, .deadlineExceeded, .connectTimeout:
                return client == .connectTimeout ? .upstreamUnavailable : .upstreamTimeout
            default:
                return .upstreamUnavailable
            }
        }
        return .upstreamUnavailable
    }

    /// An error description safe to log (no URLs with query strings, no headers).
    static func describe(_ error: any Error) -> String {
        if let client = error as? HTTPClientError { return "\(client)" }
        return String(describing: type(of: error)) + ": " + "\(error)".prefix(200)
    }
}

/// The logger of one call: `tollgate.request_id` in its metadata.
///
/// The metadata is attached only when a line is actually logged: setting metadata on a logger makes
/// `StreamLogHandler` re-render all of it, a cost that showed on every call although most calls log
/// nothing at the default level.
struct CallLogger: Sendable {
    var base: Logger
    var requestID: String

    /// The logger with the call's metadata.
    var logger: Logger {
        var logger = base
        logger[metadataKey: "tollgate.request_id"] = "\(requestID)"
        return logger
    }

    /// For the HTTP client, which logs only at debug and trace: the call's logger when those levels are
    /// on, otherwise none (the client then uses its own disabled logger).
    var forHTTPClient: Logger? {
        base.logLevel <= .debug ? logger : nil
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard base.logLevel <= .info else { return }
        logger.info(message(), metadata: metadata())
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard base.logLevel <= .warning else { return }
        logger.warning(message(), metadata: metadata())
    }
}

/// One call's identity and clocks.
struct Call: Sendable {
    var requestID: String
    var endpoint: Endpoint
    var receivedAt: Date
    var started: ContinuousClock.Instant
}

/// Who a call is attributed to: key → project → team; customer and tags from headers.
struct Attribution: Sendable {
    var team: String
    var project: String
    var customer: String?
    var tags: [String: String]

    static let anonymous = Attribution(team: "", project: "", customer: nil, tags: [:])

    struct InvalidTags: Error, CustomStringConvertible {
        var value: String
        var description: String {
            "x-tollgate-tags must be comma-separated name=value pairs (e.g. feature=search,env=prod), got '\(value)'"
        }
    }

    init(team: String, project: String, customer: String?, tags: [String: String]) {
        self.team = team
        self.project = project
        self.customer = customer
        self.tags = tags
    }

    init(key: KeyTable.Entry) {
        self.init(team: key.data.team, project: key.data.project, customer: key.data.customer, tags: key.data.tags)
    }

    init(key: KeyTable.Entry, request: Request, facts: RequestFacts) throws {
        self.init(key: key)
        if let customer = request.headers[HTTPField.Name("x-tollgate-customer")!], !customer.isEmpty {
            self.customer = customer
        } else if customer == nil, let user = facts.user, !user.isEmpty {
            self.customer = user
        }
        if let header = request.headers[HTTPField.Name("x-tollgate-tags")!] {
            for pair in header.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw InvalidTags(value: header) }
                let name = parts[0].trimmingCharacters(in: .whitespaces)
                let value = parts[1].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { throw InvalidTags(value: header) }
                tags[name] = value
            }
        }
    }
}

/// Request ids: `req_` + 26 Crockford base-32 characters (48-bit millisecond time, 80 random bits), so
/// they sort by time.
enum RequestID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let high = generator.next() as UInt64
        let low = generator.next() as UInt16
        var characters = [UInt8](repeating: 0, count: 26)
        var time = milliseconds
        for index in stride(from: 9, through: 0, by: -1) {
            characters[index] = alphabet[Int(time & 31)]
            time >>= 5
        }
        var random = high
        for index in 10..<23 {
            characters[index] = alphabet[Int(random & 31)]
            random >>= 5
        }
        var rest = UInt64(low) << 1 | (high >> 63)
        for index in 23..<26 {
            characters[index] = alphabet[Int(rest & 31)]
            rest >>= 5
        }
        return "req_" + String(decoding: characters, as: UTF8.self)
    }
}

extension Endpoint {
    /// The endpoint as events name it: the path template.
    var eventName: String {
        switch self {
        case .geminiGenerateContent, .geminiStreamGenerateContent, .geminiCountTokens, .geminiEmbedContent,
             .geminiBatchEmbedContents:
            return "/models/{model}" + rawValue
        default:
            return rawValue
        }
    }
}
