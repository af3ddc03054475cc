import Foundation

/// A request the ingress refuses, answered as RFC 9457 `application/problem+json`.
public struct WebhookProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var status: Int
    /// The last segment of the problem type URI, for example `invalid-signature`.
    public var slug: String
    public var title: String
    /// What was wrong with this request; names the field or header. Never holds a secret or the body.
    public var detail: String
    /// Seconds, for 429 and 503.
    public var retryAfter: Int?

    public init(status: Int, slug: String, title: String, detail: String, retryAfter: Int? = nil) {
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status) \(slug): \(detail)" }

    public static let typeBase = "https://duo-lifecycle.dev/problems/"

    /// The problem document.
    public func body(instance: String) -> [UInt8] {
        let object: [String: Any] = ["type": Self.typeBase + slug, "title": title, "status": status, "detail": detail, "instance": instance]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
    }

    static func unauthorized(_ detail: String) -> Self { .init(status: 401, slug: "unauthorized", title: "The request is not authenticated", detail: detail) }
    static func malformed(_ detail: String) -> Self { .init(status: 400, slug: "malformed-payload", title: "The payload does not decode", detail: detail) }
    static func unmappable(_ detail: String) -> Self { .init(status: 422, slug: "invalid-event", title: "The payload does not map to a valid lifecycle event", detail: detail) }
    static func unsupportedMediaType(_ detail: String) -> Self { .init(status: 415, slug: "unsupported-media-type", title: "Unsupported content type", detail: detail) }
    static func tooLarge(_ limit: Int) -> Self {
        .init(status: 413, slug: "payload-too-large", title: "The body is too large", detail: "The body is larger than ingress.max_body (\(limit) bytes)")
    }
    static func rateLimited(_ source: String, _ rate: Double) -> Self {
        .init(status: 429, slug: "rate-limited", title: "Too many requests",
              detail: "Source \(source) accepts at most \(rate == rate.rounded() ? String(Int(rate)) : String(rate)) requests per second", retryAfter: 1)
    }
    static func unknownSource(_ name: String) -> Self {
        .init(status: 404, slug: "unknown-source", title: "No such webhook source", detail: "No source named '\(name)' is configured")
    }
    static func kafkaUnavailable(_ detail: String) -> Self {
        .init(status: 503, slug: "kafka-unavailable", title: "Events cannot be made durable now",
              detail: detail + "; nothing was acknowledged, send it again", retryAfter: 5)
    }
}
