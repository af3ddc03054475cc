/// A failed Duo Admin API call.
///
/// It carries Duo's own `code`, `message` and `message_detail` when Duo answered with its failure
/// envelope, and the HTTP status. ``isRetriable`` tells a caller whether trying again later can
/// help (429, 5xx, timeouts, connection errors) or not (400xx, 401xx, 403xx, 404xx). It never
/// contains request headers, so the secret key and signatures cannot leak through it.
public struct DuoAdminError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Duo answered with its failure envelope (or a non-200 status).
        case duo
        /// The request did not complete in time.
        case timeout
        /// The connection failed or was reset.
        case connection
        /// Duo answered with something that is not the expected JSON.
        case invalidResponse
        /// The client was asked to do something it cannot (a usage error before any call).
        case invalidRequest
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
        case .invalidRequest: return false
        case .invalidResponse: return (httpStatus ?? 500) >= 500
        case .duo:
            if let status = httpStatus { return status == 429 || status >= 500 }
            if let code { return code == 42901 || code >= 50000 }
            return false
        }
    }

    /// Duo refused the credentials (401xx): wrong integration key, signature, or timestamp.
    public var isAuthenticationFailure: Bool { (code.map { (40100..<40200).contains($0) } ?? false) || httpStatus == 401 }
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
