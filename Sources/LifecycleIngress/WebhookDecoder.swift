import Crypto
import Foundation
import Kafka
import Lifecycle
import LifecycleTools

/// A webhook as received: lower-cased header names, the raw body.
public struct WebhookRequest: Sendable {
    public var headers: [String: String]
    public var body: [UInt8]

    public init(headers: [String: String], body: [UInt8]) {
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }) { _, last in last }
        self.body = body
    }

    /// The media type without parameters, lower-cased.
    var mediaType: String {
        (headers["content-type"] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }
}

/// One lifecycle event a webhook became, ready for Kafka.
public struct IngressEvent: Sendable {
    public var message: KafkaProducerMessage
    public var eventID: String
    public var employeeID: String
    /// For replay detection: the id a sender may repeat, and the digest of what it carried.
    var replayKey: String?
    var digest: [UInt8]
}

/// Authenticates a webhook and turns it into lifecycle events that the worker will accept: each
/// is built in binary CloudEvents mode and checked with the worker's own ``LifecycleEventDecoder``,
/// so an event that would be dead-lettered is refused here with the field named instead.
public struct WebhookDecoder: Sendable {
    public let source: WebhookSource
    public let topic: String
    let contracts = LifecycleEventDecoder()

    public init(source: WebhookSource, topic: String) {
        self.source = source
        self.topic = topic
    }

    public func decode(_ request: WebhookRequest, now: Date = Date()) throws(WebhookProblem) -> [IngressEvent] {
        switch source.format {
        case .standardWebhooks: try standardWebhook(request, now: now)
        case .cloudEvents: try cloudEvents(request, now: now)
        case .bambooHR: try bambooHR(request, now: now)
        }
    }

    // MARK: Standard Webhooks

    private func standardWebhook(_ request: WebhookRequest, now: Date) throws(WebhookProblem) -> [IngressEvent] {
        guard request.mediaType == "application/json" else {
            throw .unsupportedMediaType("A Standard Webhook must be application/json, not '\(request.mediaType)'")
        }
        guard let id = request.headers["webhook-id"], !id.isEmpty, let stamp = request.headers["webhook-timestamp"],
              let signature = request.headers["webhook-signature"] else {
            throw .unauthorized("webhook-id, webhook-timestamp and webhook-signature are required")
        }
        let timestamp = try checkedTimestamp(stamp, header: "webhook-timestamp", now: now)
        guard WebhookSignatures.verifyStandardWebhook(id: id, timestamp: timestamp, body: request.body, signatureHeader: signature, keys: source.secrets) else {
            throw .unauthorized("No valid v1 signature in webhook-signature for this source's secrets")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] else {
            throw .malformed("The body is not a JSON object")
        }
        guard let rawType = object["type"] as? String else { throw .unmappable("type: required, a string such as hr.employee.hired") }
        guard let data = object["data"] as? [String: Any] else { throw .unmappable("data: required, an object with the event's fields") }
        var time = Date(timeIntervalSince1970: TimeInterval(timestamp))
        if let t = object["timestamp"] {
            guard let s = t as? String, let parsed = RFC3339.parse(s) else { throw .unmappable("timestamp: must be an RFC 3339 date-time") }
            time = parsed
        }
        let type = rawType.contains(".") ? rawType : "hr.employee.\(rawType)"
        var event = try event(type: type, data: data, id: id, source: source.eventSource, time: time, subject: nil, at: "")
        event.replayKey = id
        return [event]
    }

    // MARK: CloudEvents

    private func cloudEvents(_ request: WebhookRequest, now: Date) throws(WebhookProblem) -> [IngressEvent] {
        let media = request.mediaType
        guard ["application/json", "application/cloudevents+json", "application/cloudevents-batch+json"].contains(media) else {
            throw .unsupportedMediaType("CloudEvents are application/json (binary mode), application/cloudevents+json or application/cloudevents-batch+json, not '\(media)'")
        }
        try authenticateCloudEvents(request)
        switch media {
        case "application/cloudevents+json":
            guard let object = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] else {
                throw .malformed("A structured CloudEvent must be a JSON object")
            }
            return [try structured(object, at: "")]
        case "application/cloudevents-batch+json":
            guard let list = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [Any] else {
                throw .malformed("A CloudEvents batch must be a JSON array")
            }
            guard !list.isEmpty else { throw .unmappable("$: the batch is empty") }
            var events: [IngressEvent] = []
            for (i, item) in list.enumerated() {
                guard let object = item as? [String: Any] else { throw .unmappable("[\(i)]: must be a CloudEvent object") }
                events.append(try structured(object, at: "[\(i)]."))
            }
            return events
        default:
            var attributes: [String: Any] = [:]
            for name in ["specversion", "id", "source", "type", "time", "subject"] {
                if let v = request.headers["ce-" + name] { attributes[name] = v }
            }
            for name in ["specversion", "id", "source", "type"] where attributes[name] == nil {
                throw .unmappable("ce-\(name): required header in binary mode")
            }
            guard let data = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] else {
                throw .malformed("The body (the event's data) is not a JSON object")
            }
            attributes["data"] = data
            return [try structured(attributes, at: "", headerPrefix: "ce-")]
        }
    }

    private func authenticateCloudEvents(_ request: WebhookRequest) throws(WebhookProblem) {
        if !source.tokens.isEmpty, let authorization = request.headers["authorization"], authorization.lowercased().hasPrefix("bearer "),
           WebhookSignatures.tokenMatches(String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces), source.tokens) {
            return
        }
        if !source.secrets.isEmpty, let signature = request.headers[source.signatureHeader.lowercased()],
           WebhookSignatures.verifyBodySignature(body: request.body, header: signature, keys: source.secrets) {
            return
        }
        var ways: [String] = []
        if !source.tokens.isEmpty { ways.append("Authorization: Bearer <token>") }
        if !source.secrets.isEmpty { ways.append("\(source.signatureHeader): sha256=<hex HMAC-SHA256 of the body>") }
        throw .unauthorized("Missing or invalid credentials; this source takes \(ways.joined(separator: " or "))")
    }

    private func structured(_ object: [String: Any], at prefix: String, headerPrefix: String = "") throws(WebhookProblem) -> IngressEvent {
        func field(_ name: String) throws(WebhookProblem) -> String {
            guard let v = object[name] as? String, !v.isEmpty else { throw .unmappable("\(prefix)\(headerPrefix)\(name): required, a non-empty string") }
            return v
        }
        guard try field("specversion") == "1.0" else { throw .unmappable("\(prefix)\(headerPrefix)specversion: must be 1.0") }
        let id = try field("id"), eventSource = try field("source"), type = try field("type")
        var time = Date()
        if let t = object["time"] {
            guard let s = t as? String, let parsed = RFC3339.parse(s) else { throw .unmappable("\(prefix)\(headerPrefix)time: must be an RFC 3339 date-time") }
            time = parsed
        }
        if let dct = object["datacontenttype"] as? String, !dct.lowercased().hasPrefix("application/json") {
            throw .unmappable("\(prefix)datacontenttype: must be application/json")
        }
        guard let data = object["data"] as? [String: Any] else { throw .unmappable("\(prefix)data: required, an object") }
        var event = try event(type: type, data: data, id: id, source: eventSource, time: time, subject: object["subject"] as? String, at: prefix)
        event.replayKey = "\(eventSource)\u{0}\(id)"
        return event
    }

    // MARK: BambooHR

    private func bambooHR(_ request: WebhookRequest, now: Date) throws(WebhookProblem) -> [IngressEvent] {
        guard request.mediaType == "application/json" else {
            throw .unsupportedMediaType("A BambooHR webhook must be application/json, not '\(request.mediaType)'")
        }
        guard let signature = request.headers["x-bamboohr-signature"], let stamp = request.headers["x-bamboohr-timestamp"] else {
            throw .unauthorized("X-BambooHR-Signature and X-BambooHR-Timestamp are required")
        }
        let timestamp = try checkedTimestamp(stamp, header: "X-BambooHR-Timestamp", now: now)
        guard WebhookSignatures.verifyBambooHR(body: request.body, timestamp: stamp, signature: signature, keys: source.secrets) else {
            throw .unauthorized("X-BambooHR-Signature does not match the body and timestamp under this source's key")
        }
        guard let document = try? JSONSerialization.jsonObject(with: Data(request.body)) else { throw .malformed("The body is not JSON") }
        guard let mapping = source.mapping else { throw .unmappable("The source has no mapping") }
        guard let employees = JSONPointer.resolve(mapping.employees, in: document) as? [Any] else {
            throw .unmappable("\(mapping.employees): must be a list of employees (mapping.employees)")
        }
        // The delivery's id: the same body at the same timestamp is the same delivery, retried.
        let delivery = WebhookSignatures.hex(SHA256.hash(data: Array(stamp.utf8) + [0] + request.body).prefix(16))
        let time = Date(timeIntervalSince1970: TimeInterval(timestamp))
        var events: [IngressEvent] = []
        for (i, item) in employees.enumerated() {
            let at = "\(mapping.employees)/\(i)"
            guard let employee = item as? [String: Any] else { throw .unmappable("\(at): must be an object") }
            let (type, data) = try map(employee, with: mapping, at: at)
            let employeeID = data["employee_id"] as? String ?? ""
            events.append(try event(type: type, data: data, id: "\(delivery)/\(employeeID)", source: source.eventSource, time: time, subject: nil, at: "\(at): "))
        }
        return events
    }

    /// One employee's object to an event type and its data, as the mapping says.
    func map(_ employee: [String: Any], with mapping: PayloadMapping, at: String) throws(WebhookProblem) -> (String, [String: Any]) {
        func text(_ value: Any?) -> String? {
            switch value {
            case let s as String: s
            case let n as NSNumber: n.stringValue
            default: nil
            }
        }
        guard let id = text(JSONPointer.resolve(mapping.employeeID, in: employee)), !id.isEmpty else {
            throw .unmappable("\(at)\(mapping.employeeID): the employee id (mapping.employee_id) is missing or not a string")
        }
        var kind = mapping.defaultEvent
        if let pointer = mapping.eventField {
            let value = text(JSONPointer.resolve(pointer, in: employee))
            if let value, let mapped = mapping.eventValues[value] { kind = mapped }
            guard kind != nil else {
                throw .unmappable("\(at)\(pointer): value \(value.map { "'\($0)'" } ?? "absent") is not in mapping.event_values (\(mapping.eventValues.keys.sorted().joined(separator: ", "))) and there is no mapping.default_event")
            }
        }
        guard let kind else { throw .unmappable("\(at): no mapping.event_field or mapping.default_event says which event this is") }
        var data: [String: Any] = ["employee_id": id]
        for (field, pointer) in mapping.fields {
            guard let value = JSONPointer.resolve(pointer, in: employee) else { continue }
            if field == "sequence" {
                guard let n = (value as? Int) ?? text(value).flatMap({ Int($0) }) else { throw .unmappable("\(at)\(pointer): sequence must be a whole number") }
                data[field] = n
            } else if let s = text(value) {
                data[field] = s
            }
        }
        if !mapping.roles.isEmpty {
            var roles: [String] = []
            for pointer in mapping.roles {
                let values: [String] = switch JSONPointer.resolve(pointer, in: employee) {
                case let s as String: [s]
                case let list as [Any]: list.compactMap { text($0) }
                default: []
                }
                for v in values where !v.isEmpty {
                    let role = mapping.roleValues[v] ?? v
                    if !roles.contains(role) { roles.append(role) }
                }
            }
            data["roles"] = roles
        }
        return ("hr.employee.\(kind)", data)
    }

    // MARK: Shared

    private func checkedTimestamp(_ text: String, header: String, now: Date) throws(WebhookProblem) -> Int64 {
        guard let seconds = Int64(text.trimmingCharacters(in: .whitespaces)) else { throw .unauthorized("\(header) must be whole seconds since 1970") }
        let skew = abs(now.timeIntervalSince1970 - TimeInterval(seconds))
        guard skew <= source.tolerance / .seconds(1) else {
            throw .unauthorized("\(header) is \(Int(skew)) s from now; at most \(Int(source.tolerance / .seconds(1))) s are tolerated")
        }
        return seconds
    }

    /// Builds the binary-mode message and checks it against the contracts, as the worker will.
    private func event(type: String, data: [String: Any], id: String, source eventSource: String, time: Date, subject: String?, at prefix: String) throws(WebhookProblem) -> IngressEvent {
        guard let employeeID = data["employee_id"] as? String, !employeeID.isEmpty else {
            throw .unmappable("\(prefix)data.employee_id: required, a non-empty string")
        }
        let message: KafkaProducerMessage
        do { message = try LifecycleEventMessage.make(topic: topic, type: type, data: data, id: id, source: eventSource, time: time, subject: subject) } catch {
            throw .unmappable("\(prefix)data: \(error)")
        }
        let record = LifecycleRecord(key: message.key, value: message.value, headers: message.headers.map { MessageHeader(name: $0.key, value: $0.value) })
        if case .failure(let rejection) = contracts.decode(record) {
            throw .unmappable("\(prefix)\(rejection.path): \(rejection.message)")
        }
        let digest = Array(SHA256.hash(data: Array(type.utf8) + [0] + (message.value ?? [])))
        return IngressEvent(message: message, eventID: id, employeeID: employeeID, replayKey: nil, digest: digest)
    }
}
