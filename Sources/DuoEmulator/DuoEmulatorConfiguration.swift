import DuoAdmin

/// Settings of a ``DuoEmulator``.
public struct DuoEmulatorConfiguration: Sendable {
    /// Address to listen on. Default: `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one. Default: 0.
    public var port: Int = 0
    /// The API hostname clients may sign with (besides the `Host` header, with or without its port),
    /// for example `api-emulator.duosecurity.com`. Default: none.
    public var apiHostname: String?
    /// Integration keys and their secret keys. Several integrations can be configured.
    public var integrations: [String: DuoSecretKey]
    /// How far a request's date may be from the emulator's clock. Default: 300 s.
    public var clockSkew: Duration = .seconds(300)
    /// Faults to inject. Default: none.
    public var faults = DuoEmulatorFaults()
    /// Whether the control API under `/__emulator/` is on. Default: off.
    public var controlEnabled = false
    /// A JSON file to load the directory from at start and save it to on stop. Default: none.
    public var stateFile: String?

    public init(integrations: [String: DuoSecretKey]) {
        self.integrations = integrations
    }
}

/// Faults the emulator injects, for reliability tests and benchmarks. They can be changed while
/// it runs through `PUT /__emulator/faults` (the JSON field names are the snake_case of these).
public struct DuoEmulatorFaults: Sendable, Codable, Hashable {
    /// Most requests accepted in any one-second window; past it, 429/42901 with no `Retry-After`,
    /// as Duo does. `nil`: no limit.
    public var rateLimit: Double?
    /// Added latency in milliseconds, fixed, or drawn uniformly from `latencyMs...latencyMaxMs`.
    public var latencyMs: Int?
    public var latencyMaxMs: Int?
    /// Fraction of requests answered 500/50001.
    public var errorRate: Double = 0
    /// Fraction of requests answered 503.
    public var unavailableRate: Double = 0
    /// Fraction of requests answered 429/42901 regardless of the rate limit.
    public var throttleRate: Double = 0
    /// Fraction of requests whose connection is closed without an answer.
    public var resetRate: Double = 0
    /// When set, every Admin API request fails with this HTTP status (400, 401, 403, 429, 500 or 503).
    public var failAll: Int?
    /// The next N requests fail with ``failNextStatus``.
    public var failNext: Int = 0
    /// Status for ``failNext``. Default: 429.
    public var failNextStatus: Int = 429
    /// Routes that always fail, by `METHOD /route/{template}` (as the counters name them), with
    /// the status to answer, for example `["POST /admin/v1/users/{id}/groups": 503]`.
    public var failRoutes: [String: Int] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case rateLimit = "rate_limit", latencyMs = "latency_ms", latencyMaxMs = "latency_max_ms", errorRate = "error_rate"
        case unavailableRate = "unavailable_rate", throttleRate = "throttle_rate", resetRate = "reset_rate", failAll = "fail_all"
        case failNext = "fail_next", failNextStatus = "fail_next_status", failRoutes = "fail_routes"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rateLimit = try c.decodeIfPresent(Double.self, forKey: .rateLimit)
        latencyMs = try c.decodeIfPresent(Int.self, forKey: .latencyMs)
        latencyMaxMs = try c.decodeIfPresent(Int.self, forKey: .latencyMaxMs)
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate) ?? 0
        unavailableRate = try c.decodeIfPresent(Double.self, forKey: .unavailableRate) ?? 0
        throttleRate = try c.decodeIfPresent(Double.self, forKey: .throttleRate) ?? 0
        resetRate = try c.decodeIfPresent(Double.self, forKey: .resetRate) ?? 0
        failAll = try c.decodeIfPresent(Int.self, forKey: .failAll)
        failNext = try c.decodeIfPresent(Int.self, forKey: .failNext) ?? 0
        failNextStatus = try c.decodeIfPresent(Int.self, forKey: .failNextStatus) ?? 429
        failRoutes = try c.decodeIfPresent([String: Int].self, forKey: .failRoutes) ?? [:]
    }

    /// Checks the values, naming the first that is out of range.
    public func validate() throws(DuoEmulatorError) {
        for (name, rate) in [("error_rate", errorRate), ("unavailable_rate", unavailableRate), ("throttle_rate", throttleRate), ("reset_rate", resetRate)]
        where !(0...1).contains(rate) {
            throw .invalidParameter(name, "\(name) must be between 0 and 1")
        }
        if let rateLimit, rateLimit <= 0 { throw .invalidParameter("rate_limit", "rate_limit must be positive") }
        if let latencyMs, latencyMs < 0 { throw .invalidParameter("latency_ms", "latency_ms must not be negative") }
        if let latencyMaxMs, latencyMaxMs < (latencyMs ?? 0) { throw .invalidParameter("latency_max_ms", "latency_max_ms must be at least latency_ms") }
        let statuses = [400, 401, 403, 429, 500, 503]
        if let failAll, !statuses.contains(failAll) { throw .invalidParameter("fail_all", "fail_all must be 400, 401, 403, 429, 500 or 503") }
        if !statuses.contains(failNextStatus) { throw .invalidParameter("fail_next_status", "fail_next_status must be 400, 401, 403, 429, 500 or 503") }
        if let bad = failRoutes.first(where: { !statuses.contains($0.value) }) {
            throw .invalidParameter("fail_routes", "fail_routes.\(bad.key) must be 400, 401, 403, 429, 500 or 503")
        }
        if failNext < 0 { throw .invalidParameter("fail_next", "fail_next must not be negative") }
    }
}

/// A failure the emulator answers with, in Duo's envelope.
public struct DuoEmulatorError: Error, Sendable {
    public var httpStatus: Int
    public var code: Int
    public var message: String
    public var detail: String?

    public init(httpStatus: Int, code: Int, message: String, detail: String? = nil) {
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.detail = detail
    }

    static func invalidParameter(_ name: String, _ detail: String? = nil) -> Self {
        .init(httpStatus: 400, code: 40002, message: "Invalid request parameters", detail: detail ?? name)
    }
    static func missingParameter(_ name: String) -> Self {
        .init(httpStatus: 400, code: 40001, message: "Missing required request parameters", detail: name)
    }
    static let notFound = Self(httpStatus: 404, code: 40401, message: "Resource not found")
    static let missingCredentials = Self(httpStatus: 401, code: 40101, message: "Missing request credentials")
    static let invalidIntegrationKey = Self(httpStatus: 401, code: 40102, message: "Invalid integration key in request credentials")
    static let invalidSignature = Self(httpStatus: 401, code: 40103, message: "Invalid signature in request credentials")
    static let missingTimestamp = Self(httpStatus: 401, code: 40104, message: "Missing request timestamp")
    /// The integration lacks the permission the call needs (for example "Grant write resource").
    static let forbidden = Self(httpStatus: 403, code: 40301, message: "Access forbidden")
    static let tooManyRequests = Self(httpStatus: 429, code: 42901, message: "Too Many Requests")
    static let internalError = Self(httpStatus: 500, code: 50001, message: "Unknown internal server error")
    static let unavailable = Self(httpStatus: 503, code: 50301, message: "Service Unavailable")
}
