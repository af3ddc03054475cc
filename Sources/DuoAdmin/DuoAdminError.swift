/// A failed Duo Admin API call.
///
/// It carries Duo's own `code`, `message` and `message_detail` when Duo answered with its failure
/// envelope, and the HTTP status. ``isRetriable`` tells a caller whether trying again later can
/// help (429, 5xx, timeouts, connection errors) or not (400xx, 401xx, 403xx, 404xx). It never
/// contains request headers, so the secret key and signatures cannot leak through it.
public struct DuoAdminError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it was. A struct around a private code, like AsyncHTTPClient's
    /// `HTTPClientError`, so a new kind added later breaks no caller's `switch`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Code: String, Sendable, Hashable { case duo, timeout, connection, invalidResponse, invalidRequest }
        private let code: Code
        private init(_ code: Code) { self.code = code }

        /// Duo answered with its failure envelope (or a non-200 status).
        public static let duo = Kind(.duo)
        /// The request did not complete in time.
        public static let timeout = Kind(.timeout)
        /// The connection failed or was reset.
        public static let connection = Kind(.connection)
        /// Duo answered with something that is not the expected JSON.
        public static let invalidResponse = Kind(.invalidResponse)
        /// The client was asked to do something it cannot (a usage error before any call).
        public static let invalidRequest = Kind(.invalidRequest)

        /// `duo`, `timeout`, `connection`, `invalidResponse` or `invalidRequest`.
        public var description: String { code.rawValue }
    }

    public var kind: Kind
    /// HTTP status, when there was a response.
    public var httpStatus: Int?
    /// Duo's numeric error code, for example 40103 or 42901.
    public var code: Int?
    public var message: String
    /// Duo's `message_detail`, often the name of the offending parameter.
    public var messageDetail: String?
    /// `METHOD /path` of the call.
    public var request: String
    /// How many attempts were made, retries included.
    public var attempts: Int = 1

    public init(kind: Kind, httpStatus: Int? = nil, code: Int? = nil, message: String, messageDetail: String? = nil, request: String) {
        self.kind = kind
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.messageDetail = messageDetail
        self.request = request
    }

    /// Whether trying again later can succeed.
    public var isRetriable: Bool {
        switch kind {
        case .timeout, .connection: return true
        case .duo:
            if let status = httpStatus { return status == 429 || status >= 500 }
            if let code { return code == 42901 || code >= 50000 }
            return false
        case .invalidResponse: return (httpStatus ?? 500) >= 500
        default: return false
        }
    }

    /// Duo refused the credentials (401xx): wrong integration key, signature, or timestamp.
    public var isAuthenticationFailure: Bool { (code.map { (40100..<40200).contains($0) } ?? false) || httpStatus == 401 }
    /// The integration lacks a permission the call needs (403 / 403xx), for example "Grant write
    /// resource" for writes. No retry fixes it until an administrator grants it.
    public var isPermissionDenied: Bool { (code.map { (40300..<40400).contains($0) } ?? false) || httpStatus == 403 }
    /// Duo is throttling (429 / 42901).
    public var isRateLimited: Bool { httpStatus == 429 || code == 42901 }
    /// The object does not exist (404 / 40401).
    public var isNotFound: Bool { httpStatus == 404 || code == 40401 }

    public var description: String {
        var s = "Duo "
        if let code { s += "\(code) " }
        if let httpStatus { s += "(HTTP \(httpStatus)) " }
        s += message
        if let messageDetail, !messageDetail.isEmpty { s += " [\(messageDetail)]" }
        s += " — \(request)"
        if attempts > 1 { s += " after \(attempts) attempts" }
        return s
    }
}
