import AsyncHTTPClient
import Foundation
import JSONText
import Synchronization
import Logging
import NIOCore
import NIOHTTP1

/// Settings of a ``DuoAdminClient``.
public struct DuoAdminConfiguration: Sendable {
    /// Where the Admin API is.
    public enum Endpoint: Sendable, Hashable {
        /// A real Duo API host, reached over HTTPS, for example `api-xxxxxxxx.duosecurity.com`.
        case host(String)
        /// Any base URL, for example the emulator's `http://127.0.0.1:8081`.
        case url(String)
    }

    public var endpoint: Endpoint
    /// The integration key (`DI…`).
    public var integrationKey: String
    /// The secret key. It is only ever used to sign; it is never logged or printed.
    public var secretKey: DuoSecretKey
    /// How requests are signed. Default: `v5`.
    public var signature: DuoSignatureScheme = .v5
    /// The most requests per second across all calls of this client; `nil` for no limit. Default: 10.
    public var requestsPerSecond: Double? = 10
    /// The most calls in flight at once. Default: 8.
    public var maxConcurrency: Int = 8
    /// The timeout of one HTTP request. Default: 30 s.
    public var requestTimeout: Duration = .seconds(30)
    /// Built-in retries. Default: Duo's official schedule (1 s doubling to 32 s, with jitter).
    public var retry: DuoRetryPolicy = DuoRetryPolicy()
    /// Page size for list calls (Duo clamps it to its maxima). Default: 300.
    public var pageLimit: Int = 300

    public init(endpoint: Endpoint, integrationKey: String, secretKey: DuoSecretKey) {
        self.endpoint = endpoint
        self.integrationKey = integrationKey
        self.secretKey = secretKey
    }

    /// The base URL, without a trailing slash.
    var baseURL: String {
        switch endpoint {
        case .host(let host): return "https://\(host)"
        case .url(let url): return url.hasSuffix("/") ? String(url.dropLast()) : url
        }
    }

    /// The host line that is signed: the API host, lowercased.
    var signingHost: String {
        switch endpoint {
        case .host(let host): return host.lowercased()
        case .url(let url):
            guard let components = URLComponents(string: url), let host = components.host else { return url.lowercased() }
            return (components.port.map { "\(host):\($0)" } ?? host).lowercased()
        }
    }
}

/// A typed, async client for the parts of Duo's Admin API that lifecycle work needs.
///
/// Every call is signed (v5 by default), shares the client's rate limit and concurrency cap, and
/// is retried on retriable failures with exponential backoff, signed again with a fresh date each
/// time. Failures are ``DuoAdminError``s that say whether they are worth retrying.
public final class DuoAdminClient: Sendable {
    public let configuration: DuoAdminConfiguration
    private let http: HTTPClient
    private let ownsHTTPClient: Bool
    /// Set once the owned HTTP client's shutdown has begun (by `shutdown()` or `deinit`).
    private let httpShutDown = Mutex(false)
    private let limiter: DuoRequestLimiter
    private let sleeper: DuoSleeper
    private let logger: Logger
    private let callObserver: (@Sendable (DuoCallRecord) -> Void)?

    /// - Parameters:
    ///   - httpClient: an HTTP client to share; by default the client makes and owns one.
    ///   - sleeper: where backoff waits happen (tests pass a recording one).
    ///   - callObserver: told about every HTTP attempt, for metrics.
    public init(configuration: DuoAdminConfiguration, httpClient: HTTPClient? = nil, sleeper: DuoSleeper = .live,
                logger: Logger = Logger(label: "duo.admin"), callObserver: (@Sendable (DuoCallRecord) -> Void)? = nil) {
        self.configuration = configuration
        if let httpClient {
            self.http = httpClient
            self.ownsHTTPClient = false
        } else {
            var config = HTTPClient.Configuration()
            config.timeout = .init(connect: .seconds(10))
            config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.maxConcurrency))
            config.decompression = .enabled(limit: .ratio(20))
            self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
            self.ownsHTTPClient = true
        }
        self.limiter = DuoRequestLimiter(requestsPerSecond: configuration.requestsPerSecond, maxConcurrency: configuration.maxConcurrency)
        self.sleeper = sleeper
        self.logger = logger
        self.callObserver = callObserver
    }

    /// Waits for what a call needs to go out (a slot among `maxConcurrency` and a rate permit,
    /// urgent callers first) and returns it, so the caller can decide what to send at the moment
    /// it may send: a bulk writer then takes every write queued meanwhile. Pass it to ``call(_:_:parameters:permit:)``
    /// or ``bulk(_:permit:)``, or ``DuoRequestPermit/release()`` it unused.
    public func permit() async throws -> DuoRequestPermit {
        try await limiter.acquire()
        return DuoRequestPermit(limiter: limiter)
    }

    /// Closes the client's connections. Call it once you are done.
    public func shutdown() async throws {
        guard beginHTTPShutdown() else { return }
        try await http.shutdown()
    }

    /// A client released without `shutdown()` (say, on an error path that skipped it) closes its
    /// own HTTP client in the background. Otherwise its connections would stay open until they
    /// idle out, and AsyncHTTPClient traps in a debug build, taking the whole process down.
    deinit {
        guard beginHTTPShutdown() else { return }
        logger.debug("Duo Admin API client released without shutdown(); closing its connections")
        http.shutdown(queue: .global()) { _ in }
    }

    /// True the first time, for a client that owns its HTTP client.
    private func beginHTTPShutdown() -> Bool {
        ownsHTTPClient && httpShutDown.withLock { done in defer { done = true }; return !done }
    }

    // MARK: - Calls

    /// Makes a signed call and returns Duo's `response` and `metadata` as raw JSON.
    ///
    /// With a `permit` from ``permit()``, the first attempt goes out on it instead of waiting for
    /// its own; the permit is used up either way.
    public func call(_ method: HTTPMethod, _ path: String, parameters: [DuoParameter] = [], permit: DuoRequestPermit? = nil) async throws -> DuoResponse {
        let label = "\(method.rawValue) \(path)"
        var retry = 0
        defer { permit?.release() }
        while true {
            do {
                var response = try await attempt(method, path, parameters: parameters, permit: retry == 0 ? permit : nil)
                response.attempts = retry + 1
                return response
            } catch var error as DuoAdminError {
                error.attempts = retry + 1
                retry += 1
                guard configuration.retry.shouldRetry(error), let backoff = configuration.retry.backoff(beforeRetry: retry) else { throw error }
                let wait = backoff + sleeper.jitter(configuration.retry.maxJitter)
                logger.notice("Duo call failed; retrying", metadata: [
                    "duo.request": "\(label)", "duo.error": "\(error)", "duo.retry": "\(retry)", "duo.wait_ms": "\(Int64(wait / .milliseconds(1)))",
                ])
                try await sleeper.sleep(wait)
            }
        }
    }

    /// One signed HTTP attempt, with a fresh date.
    private func attempt(_ method: HTTPMethod, _ path: String, parameters: [DuoParameter], permit: DuoRequestPermit?) async throws -> DuoResponse {
        let label = "\(method.rawValue) \(path)"
        let hasBody = [.POST, .PUT, .PATCH].contains(method)
        let scheme = configuration.signature
        var query: [DuoParameter] = []
        var body: [UInt8] = []
        var contentType: String?
        if hasBody {
            if scheme == .v5 {
                body = Self.jsonBody(parameters)
                contentType = "application/json"
            } else {
                body = Array(DuoSigning.encodeQuery(parameters).utf8)
                contentType = "application/x-www-form-urlencoded"
            }
        } else {
            query = parameters
        }
        let date = DuoSigning.rfc2822Date(Date())
        let canonical = DuoSigning.canonicalRequest(
            version: scheme.version, date: date, method: method.rawValue, host: configuration.signingHost, path: path,
            parameters: scheme == .v5 ? query : (hasBody ? parameters : query), body: body)
        let signature = DuoSigning.signature(canonical: canonical, secretKey: configuration.secretKey, digest: scheme.digest)

        var url = configuration.baseURL + path
        if !query.isEmpty { url += "?" + DuoSigning.encodeQuery(query) }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Date", value: date)
        request.headers.add(name: "Authorization", value: DuoSigning.authorization(integrationKey: configuration.integrationKey, signature: signature))
        request.headers.add(name: "User-Agent", value: "duo-lifecycle")
        request.headers.add(name: "Accept", value: "application/json")
        if let contentType {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }

        if permit == nil { try await limiter.acquire() }
        defer { if let permit { permit.release() } else { limiter.release() } }
        let started = ContinuousClock.now
        let status: Int
        let payload: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: TimeAmount(configuration.requestTimeout))
            status = Int(response.status.code)
            payload = try await response.body.collect(upTo: 16 * 1024 * 1024)
        } catch {
            let failure = Self.transportError(error, request: label)
            callObserver?(DuoCallRecord(method: method.rawValue, path: path, status: nil, error: failure, duration: .now - started))
            throw failure
        }
        callObserver?(DuoCallRecord(method: method.rawValue, path: path, status: status, error: nil, duration: .now - started))
        return try Self.decodeEnvelope(status: status, body: payload, request: label)
    }

    /// Duo's JSON body: sorted keys, compact, as Duo's Python client sends it. The same bytes are hashed and sent.
    static func jsonBody(_ parameters: [DuoParameter]) -> [UInt8] {
        // A name given more than once is a list of its values, in order.
        var values: [String: [String]] = [:]
        for p in parameters { values[p.key, default: []].append(p.value) }
        var json = JSONText()
        json.beginObject()
        for key in values.keys.sorted() {
            json.key(key)
            let list = values[key]!
            if list.count == 1 {
                json.string(list[0])
            } else {
                json.beginArray()
                for v in list { json.string(v) }
                json.endArray()
            }
        }
        json.endObject()
        return json.bytes
    }

    static func transportError(_ error: any Error, request: String) -> DuoAdminError {
        if let e = error as? HTTPClientError, e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout || e == .writeTimeout {
            return DuoAdminError(kind: .timeout, message: "The request timed out", request: request)
        }
        return DuoAdminError(kind: .connection, message: "Connection failed: \(error)", request: request)
    }

    /// Duo's failure envelope, and the metadata of a success.
    private struct EnvelopeHead: Decodable {
        var stat: String?
        var code: Int?
        var message: String?
        var messageDetail: String?
        var metadata: DuoPageMetadata?
        enum CodingKeys: String, CodingKey { case stat, code, message, messageDetail = "message_detail", metadata }
    }

    static func decodeEnvelope(status: Int, body: ByteBuffer, request: String) throws -> DuoResponse {
        let bytes = Data(body.readableBytesView)
        guard let head = try? JSONDecoder().decode(EnvelopeHead.self, from: bytes) else {
            let snippet = String(decoding: bytes.prefix(200), as: UTF8.self)
            throw DuoAdminError(kind: status == 200 ? .invalidResponse : .duo, httpStatus: status, code: status == 429 ? 42901 : nil,
                                message: status == 200 ? "Duo's response is not JSON: \(snippet)" : "HTTP \(status) without Duo's envelope: \(snippet)",
                                request: request)
        }
        if status != 200 || head.stat != "OK" {
            throw DuoAdminError(kind: .duo, httpStatus: status, code: head.code, message: head.message ?? "Duo answered stat=\(head.stat ?? "nil")",
                                messageDetail: head.messageDetail, request: request)
        }
        return DuoResponse(body: bytes, metadata: head.metadata)
    }
}

/// Duo's answer: the raw envelope, decoded on demand, and its paging `metadata`.
public struct DuoResponse: Sendable {
    /// The whole envelope as received.
    public var body: Data
    public var metadata: DuoPageMetadata?
    /// Attempts it took, retries included.
    public var attempts: Int = 1

    private struct Envelope<T: Decodable>: Decodable { var response: T }

    /// The `response` member, as parsed by `JSONSerialization`.
    public var response: Any {
        ((try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])) as? [String: Any])?["response"] ?? NSNull()
    }

    /// Decodes `response` into a model.
    public func decode<T: Decodable>(_ type: T.Type, request: String) throws -> T {
        do {
            return try JSONDecoder().decode(Envelope<T>.self, from: body).response
        } catch {
            throw DuoAdminError(kind: .invalidResponse, httpStatus: 200, message: "Unexpected response shape: \(error)", request: request)
        }
    }
}

/// One HTTP attempt, for metrics and the command log.
public struct DuoCallRecord: Sendable {
    public var method: String
    public var path: String
    /// HTTP status, or nil when there was no response.
    public var status: Int?
    public var error: DuoAdminError?
    public var duration: Duration
}

/// A request slot and rate permit held for one call (see ``DuoAdminClient/permit()``).
public final class DuoRequestPermit: Sendable {
    private let limiter: DuoRequestLimiter
    private let released = Mutex(false)

    init(limiter: DuoRequestLimiter) { self.limiter = limiter }

    /// Gives the slot back (once; later calls do nothing). The rate permit is spent.
    public func release() {
        let first = released.withLock { r -> Bool in defer { r = true }; return !r }
        if first { limiter.release() }
    }

    deinit { release() }
}
