import Foundation
import Hummingbird
import HummingbirdTLS
import Kafka
import Logging
import Metrics
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The webhook server: `POST /webhooks/{source}`, `/healthz`, `/readyz` and, when given a
/// metrics handler, `/metrics`.
///
/// A request is answered `202` only after Kafka acknowledged (acks=all, idempotent producer)
/// every event it carried; when Kafka cannot take them in time the answer is `503` with
/// `Retry-After`, and the sender's retry carries the same ids, which the worker's inbox
/// deduplicates. Nothing is half-accepted: a request whose events do not all validate writes none.
public final class IngressServer: Sendable {
    public let configuration: IngressConfiguration
    let producer: KafkaProducer
    let decoders: [String: WebhookDecoder]
    let limiters: Mutex<[String: TokenBucket]>
    let replays = Mutex(ReplayCache(capacity: 200_000))
    let kafkaHealth = Mutex(KafkaHealth())
    let metricsText: (@Sendable () -> [UInt8])?
    let logger: Logger

    /// - Parameter metricsText: the Prometheus exposition to serve on `/metrics`; nil serves none
    ///   (the worker's operations port already does when `run` hosts the ingress).
    public init(configuration: IngressConfiguration, logger: Logger, metricsText: (@Sendable () -> [UInt8])? = nil) throws {
        self.configuration = configuration
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: configuration.kafka.bootstrapServers)
        producerConfig.client = configuration.kafka
        producerConfig.deliveryTimeout = configuration.deliveryTimeout
        producerConfig.client.clientID = configuration.kafka.clientID + "-ingress"
        producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        decoders = Dictionary(uniqueKeysWithValues: configuration.sources.map { ($0.name, WebhookDecoder(source: $0, topic: configuration.topic)) })
        limiters = Mutex(Dictionary(uniqueKeysWithValues: configuration.sources.map { ($0.name, TokenBucket(rate: $0.rateLimit)) }))
        self.metricsText = metricsText
        self.logger = logger
    }

    /// The service to run: it serves until graceful shutdown, lets requests in flight finish, then
    /// flushes the producer.
    public func service(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some Service {
        IngressService(server: self, application: try makeApplication(onRunning: onRunning))
    }

    func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void) throws -> some ApplicationProtocol {
        let router = Router()
        router.post("/webhooks/:source") { [self] request, context in await handle(request, context: context) }
        router.get("/healthz") { _, _ in Self.json(.ok, ["status": "ok"]) }
        router.get("/readyz") { [self] _, _ in
            let reasons = readinessProblems()
            return Self.json(reasons.isEmpty ? .ok : .serviceUnavailable, ["ready": reasons.isEmpty ? "true" : "false", "reasons": reasons.joined(separator: "; ")])
        }
        if let metricsText {
            router.get("/metrics") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: metricsText())))
            }
        }
        var appConfig = ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port))
        appConfig.serverName = "duo-lifecycle-ingress"
        if let cert = configuration.tlsCertificateFile, let key = configuration.tlsKeyFile {
            let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            return Application(router: router, server: try .tls(.http1(), tlsConfiguration: tls), configuration: appConfig,
                               onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: logger)
        }
        return Application(router: router, server: .http1(), configuration: appConfig,
                           onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: logger)
    }

    // MARK: Requests

    func handle(_ request: Request, context: BasicRequestContext) async -> Response {
        let started = ContinuousClock.now
        let name = context.parameters.get("source") ?? ""
        let instance = request.uri.path
        let known = decoders[name] != nil
        let metricSource = known ? name : "unknown"
        let response: Response
        var accepted = 0
        do {
            let ids = try await accept(request, source: name, context: context)
            accepted = ids.count
            let body: [String: Any] = ["status": "accepted", "events": ids]
            let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            response = Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } catch {
            if error.status >= 500 || error.status == 429 {
                logger.warning("Webhook refused", metadata: ["source": "\(metricSource)", "status": "\(error.status)", "problem": "\(error.slug)", "detail": "\(error.detail)"])
            } else {
                logger.info("Webhook refused", metadata: ["source": "\(metricSource)", "status": "\(error.status)", "problem": "\(error.slug)", "detail": "\(error.detail)"])
            }
            var headers: HTTPFields = [.contentType: "application/problem+json"]
            if let retry = error.retryAfter { headers[.retryAfter] = "\(retry)" }
            response = Response(status: .init(code: error.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: error.body(instance: instance))))
        }
        Counter(label: "duo_lifecycle_webhooks_total", dimensions: [("source", metricSource), ("status", "\(response.status.code)")]).increment()
        if accepted > 0 { Counter(label: "duo_lifecycle_webhook_events_total", dimensions: [("source", metricSource)]).increment(by: accepted) }
        Metrics.Timer(label: "duo_lifecycle_webhook_duration_seconds", dimensions: [("source", metricSource)]).recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
        return response
    }

    /// Checks, decodes and publishes one request; the ids of the events it carried.
    private func accept(_ request: Request, source name: String, context: BasicRequestContext) async throws(WebhookProblem) -> [String] {
        guard let decoder = decoders[name] else { throw .unknownSource(name) }
        guard limiters.withLock({ $0[name]?.take(now: .now) }) ?? true else { throw .rateLimited(name, decoder.source.rateLimit) }
        let limit = configuration.maxBody
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw .tooLarge(limit) }
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: limit) } catch {
            if let http = error as? HTTPError, http.status == .contentTooLarge { throw .tooLarge(limit) }
            throw .malformed("The body could not be read: \(error)")
        }
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = headers[field.name.canonicalName].map { "\($0), \(field.value)" } ?? field.value }
        let webhook = WebhookRequest(headers: headers, body: Array(body.readableBytesView))
        let events = try decoder.decode(webhook)

        // A sender repeating an id must repeat what it carried; an id already made durable with
        // the same content is acknowledged again without a second copy.
        let now = Date()
        var toSend: [IngressEvent] = []
        let ttl = max(decoder.source.tolerance / .seconds(1) * 2, 600)
        try replays.withLock { cache throws(WebhookProblem) in
            for event in events {
                guard let key = event.replayKey.map({ "\(name)\u{0}\($0)" }) else { toSend.append(event); continue }
                switch cache.check(key: key, digest: event.digest, now: now, ttl: ttl) {
                case .conflict: throw .unauthorized("Webhook id \(event.eventID) was already received with a different body")
                case .durable: continue
                case .new: toSend.append(event)
                }
            }
        }
        guard !toSend.isEmpty else { return events.map(\.eventID) }
        let results = await producer.send(batch: toSend.map(\.message))
        let failures = results.compactMap { result -> KafkaError? in if case .failure(let e) = result { e } else { nil } }
        if let failure = failures.first {
            kafkaHealth.withLock { $0.failed(at: .now, error: "\(failure)") }
            replays.withLock { cache in for event in toSend { if let key = event.replayKey { cache.forget("\(name)\u{0}\(key)") } } }
            throw .kafkaUnavailable("Kafka did not acknowledge \(failures.count) of \(toSend.count) event(s) within \(configuration.deliveryTimeout): \(failure.code)")
        }
        kafkaHealth.withLock { $0.succeeded(at: .now) }
        replays.withLock { cache in for event in toSend { if let key = event.replayKey { cache.markDurable("\(name)\u{0}\(key)") } } }
        return events.map(\.eventID)
    }

    func readinessProblems() -> [String] {
        kafkaHealth.withLock { $0.problem(now: .now) }.map { [$0] } ?? []
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: String]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func shutdown() async { await producer.shutdown(timeout: .seconds(10)) }
}

struct IngressService<App: ApplicationProtocol>: Service {
    let server: IngressServer
    let application: App

    func run() async throws {
        do { try await application.run() } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}

/// A per-source token bucket: `rate` requests a second, bursts up to one second's worth.
struct TokenBucket {
    let rate: Double
    var tokens: Double
    var last: ContinuousClock.Instant?

    init(rate: Double) {
        self.rate = rate
        self.tokens = max(rate, 1)
    }

    mutating func take(now: ContinuousClock.Instant) -> Bool {
        if let last { tokens = min(max(rate, 1), tokens + (now - last) / .seconds(1) * rate) }
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Ids seen recently, with the digest of what they carried and whether Kafka has them.
struct ReplayCache {
    enum Verdict { case new, durable, conflict }
    struct Entry { var digest: [UInt8]; var durable: Bool; var expires: Date }
    let capacity: Int
    var entries: [String: Entry] = [:]
    var order: [(String, Date)] = []
    var head = 0

    init(capacity: Int) { self.capacity = capacity }

    mutating func check(key: String, digest: [UInt8], now: Date, ttl: TimeInterval) -> Verdict {
        evict(now: now)
        if let entry = entries[key], entry.expires > now {
            if entry.digest != digest { return .conflict }
            if entry.durable { return .durable }
            return .new
        }
        let expires = now.addingTimeInterval(ttl)
        entries[key] = Entry(digest: digest, durable: false, expires: expires)
        order.append((key, expires))
        return .new
    }

    mutating func markDurable(_ key: String) { entries[key]?.durable = true }
    mutating func forget(_ key: String) { if entries[key]?.durable == false { entries[key] = nil } }

    private mutating func evict(now: Date) {
        while head < order.count, order[head].1 <= now || entries.count > capacity {
            if let e = entries[order[head].0], e.expires == order[head].1 { entries[order[head].0] = nil }
            head += 1
        }
        if head > 4096, head * 2 > order.count { order.removeFirst(head); head = 0 }
    }
}

/// Whether Kafka has been taking events: not ready after a failed delivery until one succeeds.
struct KafkaHealth {
    var lastFailure: (at: ContinuousClock.Instant, error: String)?

    mutating func failed(at: ContinuousClock.Instant, error: String) { lastFailure = (at, error) }
    mutating func succeeded(at: ContinuousClock.Instant) { lastFailure = nil }

    func problem(now: ContinuousClock.Instant) -> String? {
        guard let lastFailure, now - lastFailure.at < .seconds(30) else { return nil }
        return "Kafka did not acknowledge events recently: \(lastFailure.error)"
    }
}
