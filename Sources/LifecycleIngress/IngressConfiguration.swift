// LifecycleIngress turns HR systems' webhooks into durable lifecycle events on Kafka: it
// authenticates each request, maps it to the lifecycle contracts, and answers 202 only once
// Kafka has acknowledged every event of it.
import Foundation
import Kafka

/// The `ingress:` section: where the webhook server listens and which sources it accepts.
public struct IngressConfiguration: Sendable {
    /// Address to listen on. Default: `0.0.0.0`.
    public var host = "0.0.0.0"
    /// Port to listen on; 0 picks a free one. Default: 8090.
    public var port = 8090
    /// PEM certificate chain and private key; both or neither. Default: plain HTTP.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// The largest request body accepted; larger ones get 413. Default: 1 MiB.
    public var maxBody = 1 << 20
    /// The lifecycle topic events are published to. Default: the first of `kafka.lifecycle_topics`.
    public var topic = "hr.employee.lifecycle.v1"
    /// How long a request waits for Kafka's acknowledgement before it is answered 503. Default: 10 s.
    public var deliveryTimeout: Duration = .seconds(10)
    /// Where to reach Kafka.
    public var kafka = KafkaClientConfiguration()
    /// One route per source: `POST /webhooks/{name}`.
    public var sources: [WebhookSource] = []

    public init() {}
}

/// The wire format a source posts in.
public enum WebhookFormat: String, Sendable, CaseIterable {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    case standardWebhooks = "standard-webhooks"
    /// CloudEvents over HTTP: binary, structured or batch; a bearer token or an HMAC header.
    case cloudEvents = "cloudevents"
    /// BambooHR's webhook: a list of changed employees, signed with HMAC-SHA256, mapped by ``PayloadMapping``.
    case bambooHR = "bamboohr"
}

/// One configured webhook source.
public struct WebhookSource: Sendable {
    /// The route's last segment, `[a-z0-9_-]+`.
    public var name: String
    public var format: WebhookFormat
    /// HMAC keys; several during a rotation, any of which may sign. For Standard Webhooks the
    /// bytes behind `whsec_<base64>`; for the others the bytes of the secret as written.
    public var secrets: [[UInt8]] = []
    /// Bearer tokens a CloudEvents source may send (`Authorization: Bearer <token>`).
    public var tokens: [String] = []
    /// The header a CloudEvents source signs in, `sha256=<hex HMAC-SHA256 of the body>`. Default: `X-Signature`.
    public var signatureHeader = "x-signature"
    /// How far a signed timestamp may be from now. Default: 5 minutes.
    public var tolerance: Duration = .seconds(300)
    /// Most requests per second accepted from this source; above it, 429. Default: 100.
    public var rateLimit: Double = 100
    /// How a vendor payload maps onto lifecycle events (BambooHR).
    public var mapping: PayloadMapping?

    /// The `ce_source` of the events it produces (CloudEvents sources keep their own).
    public var eventSource: String { "urn:duo-lifecycle:ingress:\(name)" }

    public init(name: String, format: WebhookFormat) {
        self.name = name
        self.format = format
    }
}

/// A declarative mapping from a vendor payload to lifecycle events: JSON Pointers (RFC 6901)
/// into each employee's object, and value tables.
public struct PayloadMapping: Sendable {
    /// Where the list of changed employees is; each becomes one event. Default: `/employees`.
    public var employees = "/employees"
    /// The employee id, within an employee's object. Required.
    public var employeeID: String
    /// The field whose value says which event this is, and the table from its values to event
    /// kinds (`hired`, `updated`, `role_changed`, `terminated`, `rehired`).
    public var eventField: String?
    public var eventValues: [String: String] = [:]
    /// The kind when the field is absent or its value is not in the table; nil makes that a 422.
    public var defaultEvent: String?
    /// Contract fields (`email`, `username`, `first_name`, `last_name`, `display_name`,
    /// `effective_at`, `sequence`) to pointers.
    public var fields: [String: String] = [:]
    /// Pointers whose values (a string or a list of strings) become the employee's roles.
    public var roles: [String] = []
    /// Optional table from vendor values (a department, a job title) to role names; values not
    /// in it are used as they are.
    public var roleValues: [String: String] = [:]

    public static let contractFields: Set<String> = ["email", "username", "first_name", "last_name", "display_name", "effective_at", "sequence"]
    public static let eventKinds: Set<String> = ["hired", "updated", "role_changed", "terminated", "rehired"]

    public init(employeeID: String) { self.employeeID = employeeID }
}
