import Foundation
import JSONText

/// Turns an incoming record into a typed ``EmployeeLifecycleEvent``, or a typed
/// ``EventRejection`` that names the field and the rule broken.
///
/// The rules are those of the JSON Schemas in `contracts/schemas/`; a test checks that both agree
/// on every example in `contracts/examples/`.
public struct LifecycleEventDecoder: Sendable {
    /// The largest value accepted.
    public static let maxValueBytes = 64 * 1024
    /// The longest string accepted.
    public static let maxStringLength = 256
    /// The most roles accepted.
    public static let maxRoles = 100

    public init() {}

    public func decode(_ record: LifecycleRecord) -> Result<EmployeeLifecycleEvent, EventRejection> {
        var context = Context()
        do {
            let event = try decode(record, &context)
            return .success(event)
        } catch var rejection {
            rejection.eventID = context.id
            rejection.eventSource = context.source
            rejection.eventType = context.type
            rejection.employeeID = context.employeeID ?? record.key.flatMap { String(validating: $0, as: UTF8.self) }
            return .failure(rejection)
        }
    }

    /// What has been read so far, kept for the rejection.
    private struct Context { var id, source, type, employeeID: String? }

    private func decode(_ record: LifecycleRecord, _ c: inout Context) throws(EventRejection) -> EmployeeLifecycleEvent {
        let headers = CloudEventHeaders(record.headers)
        if headers.specversion != nil {
            c.id = headers.id
            c.source = headers.source
            c.type = headers.type
        }
        guard let value = record.value, !value.isEmpty else { throw EventRejection(path: "$", rule: "required", message: "The record has no value") }
        guard value.count <= Self.maxValueBytes else {
            throw EventRejection(path: "$", rule: "maxBytes \(Self.maxValueBytes)", message: "The value is \(value.count) bytes; at most \(Self.maxValueBytes) are accepted")
        }
        let contentType = headers.contentType?.lowercased()
        let structured = contentType?.hasPrefix("application/cloudevents+json") == true
            || (contentType == nil && headers.specversion == nil)
        if !structured {
            // Binary-mode attributes are readable even when the value is not, so a rejection can name the event.
            c.id = headers.id
            c.source = headers.source
            c.type = headers.type
        }
        // A JSON text whose value is an object or an array (the value of an event is one of them).
        // A trailing comma passes, as it always has (JSONSerialization read events before): a
        // producer's leaver must not become a dead letter because the reader changed.
        guard let json = try? JSONValue.parse(value, trailingCommas: true), json.objectValue != nil || json.arrayValue != nil else {
            throw EventRejection(path: "$", rule: "json", message: "The value is not valid JSON")
        }
        let attributes: Attributes
        let data: JSONValue?
        let mode: CloudEventMode
        if structured {
            guard case .object = json else { throw EventRejection(path: "$", rule: "type object", message: "A structured-mode event must be a JSON object") }
            attributes = .document(json)
            data = json["data"]
            mode = .structured
            if let dct = json["datacontenttype"] {
                guard let s = dct.stringValue, s.lowercased().hasPrefix("application/json") else {
                    throw EventRejection(path: "datacontenttype", rule: "const application/json", message: "datacontenttype must be application/json")
                }
            }
        } else {
            if let contentType, !contentType.hasPrefix("application/json") {
                throw EventRejection(path: "content-type", rule: "enum", message: "content-type must be application/json (binary mode) or application/cloudevents+json (structured mode), not \(contentType)")
            }
            attributes = .headers(headers)
            data = json
            mode = .binary
        }
        let prefix = structured ? "" : "ce_"
        c.id = attributes["id"]?.stringValue
        c.source = attributes["source"]?.stringValue
        c.type = attributes["type"]?.stringValue

        guard let spec = attributes["specversion"] else { throw EventRejection(path: prefix + "specversion", rule: "required", message: "specversion is missing") }
        guard spec.stringValue == "1.0" else { throw EventRejection(path: prefix + "specversion", rule: "const 1.0", message: "Only CloudEvents specversion 1.0 is accepted") }
        let id = try attribute(attributes, "id", prefix)
        let source = try attribute(attributes, "source", prefix)
        let typeName = try attribute(attributes, "type", prefix)
        // `time` is optional in CloudEvents 1.0: without it the Kafka record's timestamp orders the event.
        let time: Date
        if attributes["time"] != nil || record.timestamp == nil {
            let timeString = try attribute(attributes, "time", prefix, max: 64)
            guard let parsed = RFC3339.parse(timeString) else {
                throw EventRejection(path: prefix + "time", rule: "format date-time", message: "time must be an RFC 3339 timestamp, got '\(timeString)'")
            }
            time = parsed
        } else {
            time = record.timestamp!
        }
        var subject: String?
        if attributes["subject"] != nil { subject = try attribute(attributes, "subject", prefix) }
        guard let type = LifecycleEventType(rawValue: typeName) else {
            throw EventRejection(path: prefix + "type", rule: "enum",
                                 message: "Unknown event type '\(typeName)'; expected one of \(LifecycleEventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }

        guard let data else { throw EventRejection(path: "data", rule: "required", message: "The event has no data") }
        guard case .object = data else { throw EventRejection(path: "data", rule: "type object", message: "data must be a JSON object") }
        let d = data
        guard let employeeID = try string(d, "employee_id", min: 1) else {
            throw EventRejection(path: "data.employee_id", rule: "required", message: "employee_id is required for \(type.rawValue)")
        }
        c.employeeID = employeeID
        let username = try string(d, "username", min: 1)
        let email = try string(d, "email")
        if let email, !Self.isEmail(email) {
            throw EventRejection(path: "data.email", rule: "pattern", message: "email '\(email)' is not an email address")
        }
        let firstName = try string(d, "first_name")
        let lastName = try string(d, "last_name")
        let displayName = try string(d, "display_name")
        let roles = try roleList(d)
        var effectiveAt: Date?
        if let raw = try string(d, "effective_at", max: 64) {
            guard let parsed = RFC3339.parse(raw) else {
                throw EventRejection(path: "data.effective_at", rule: "format date-time", message: "effective_at must be an RFC 3339 timestamp, got '\(raw)'")
            }
            effectiveAt = parsed
        }
        let sequence = try sequenceNumber(d)

        func require(_ field: String, _ present: Bool) throws(EventRejection) {
            if !present { throw EventRejection(path: "data.\(field)", rule: "required", message: "\(field) is required for \(type.rawValue)") }
        }
        switch type {
        case .hired:
            try require("email", email != nil)
            try require("roles", roles != nil)
        case .updated:
            guard username != nil || email != nil || firstName != nil || lastName != nil || displayName != nil else {
                throw EventRejection(path: "data", rule: "anyOf required",
                                     message: "hr.employee.updated needs at least one of username, email, first_name, last_name, display_name")
            }
        case .roleChanged, .rehired:
            try require("roles", roles != nil)
        case .terminated:
            break
        }
        // The key decides the partition, and so the order of an employee's events: an event whose
        // key is missing, unreadable or another employee's could overtake that employee's others.
        guard let key = record.key, !key.isEmpty else {
            throw EventRejection(path: "key", rule: "required",
                                 message: "The Kafka record has no key; key every event by its employee id ('\(employeeID)') so an employee's events keep their order")
        }
        guard let keyString = String(validating: key, as: UTF8.self) else {
            throw EventRejection(path: "key", rule: "utf8", message: "The Kafka key is not UTF-8 text; it must be the employee id '\(employeeID)'")
        }
        if keyString != employeeID {
            throw EventRejection(path: "key", rule: "equals data.employee_id",
                                 message: "The Kafka key '\(keyString)' is not the employee id '\(employeeID)'; events of one employee must share a key to keep their order")
        }
        return EmployeeLifecycleEvent(id: id, source: source, type: type, time: time, subject: subject, mode: mode, employeeID: employeeID,
                                      profile: EmployeeProfile(username: username, email: email, firstName: firstName, lastName: lastName, displayName: displayName),
                                      roles: roles, effectiveAt: effectiveAt, sequence: sequence)
    }

    private func attribute(_ a: Attributes, _ name: String, _ prefix: String, max: Int = maxStringLength) throws(EventRejection) -> String {
        guard let raw = a[name] else { throw EventRejection(path: prefix + name, rule: "required", message: "\(name) is missing") }
        guard let s = raw.stringValue else { throw EventRejection(path: prefix + name, rule: "type string", message: "\(name) must be a string") }
        guard !s.isEmpty else { throw EventRejection(path: prefix + name, rule: "minLength 1", message: "\(name) must not be empty") }
        try Self.refuseNUL(s, path: prefix + name)
        guard s.count <= max else { throw EventRejection(path: prefix + name, rule: "maxLength \(max)", message: "\(name) is longer than \(max) characters") }
        return s
    }

    private func string(_ d: JSONValue, _ field: String, min: Int = 0, max: Int = maxStringLength) throws(EventRejection) -> String? {
        guard let raw = d[field] else { return nil }
        guard let s = raw.stringValue else { throw EventRejection(path: "data.\(field)", rule: "type string", message: "\(field) must be a string") }
        try Self.refuseNUL(s, path: "data.\(field)")
        guard s.count >= min else { throw EventRejection(path: "data.\(field)", rule: "minLength \(min)", message: "\(field) must not be empty") }
        guard s.count <= max else { throw EventRejection(path: "data.\(field)", rule: "maxLength \(max)", message: "\(field) is longer than \(max) characters") }
        return s
    }

    private func roleList(_ d: JSONValue) throws(EventRejection) -> [String]? {
        guard let raw = d["roles"] else { return nil }
        guard let array = raw.arrayValue else { throw EventRejection(path: "data.roles", rule: "type array", message: "roles must be an array of strings") }
        guard array.count <= Self.maxRoles else {
            throw EventRejection(path: "data.roles", rule: "maxItems \(Self.maxRoles)", message: "\(array.count) roles; at most \(Self.maxRoles) are accepted")
        }
        var roles: [String] = []
        for (i, item) in array.enumerated() {
            guard let s = item.stringValue else { throw EventRejection(path: "data.roles[\(i)]", rule: "type string", message: "each role must be a string") }
            guard !s.isEmpty else { throw EventRejection(path: "data.roles[\(i)]", rule: "minLength 1", message: "a role must not be empty") }
            try Self.refuseNUL(s, path: "data.roles[\(i)]")
            guard s.count <= Self.maxStringLength else {
                throw EventRejection(path: "data.roles[\(i)]", rule: "maxLength \(Self.maxStringLength)", message: "a role is longer than \(Self.maxStringLength) characters")
            }
            roles.append(s)
        }
        return roles
    }

    private func sequenceNumber(_ d: JSONValue) throws(EventRejection) -> Int64? {
        guard let raw = d["sequence"] else { return nil }
        // A number with no fraction (JSON Schema's integer: 5 and 5.0 alike); not a boolean.
        guard let n = raw.doubleValue, n.rounded() == n else {
            throw EventRejection(path: "data.sequence", rule: "type integer", message: "sequence must be an integer")
        }
        guard n >= 0, n <= 9_007_199_254_740_991 else {
            throw EventRejection(path: "data.sequence", rule: "minimum 0", message: "sequence must be between 0 and 2^53-1")
        }
        return Int64(n)
    }

    /// No string may hold U+0000: SQLite's bindings end a string there (two employees "E\0" and
    /// "E\01" would share one row) and PostgreSQL refuses it (the batch would fail again and
    /// again, holding up its partition). A clear dead letter instead.
    static func refuseNUL(_ s: String, path: String) throws(EventRejection) {
        guard s.utf8.contains(0) else { return }
        throw EventRejection(path: path, rule: "not pattern \\u0000", message: "\(path) contains a NUL character (U+0000), which no store can keep")
    }

    static func isEmail(_ s: String) -> Bool {
        s.utf8.allSatisfy({ $0 < 0x80 }) ? isASCIIEmail(Array(s.utf8)) : isEmailByCharacters(s)
    }

    static func isEmailByCharacters(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !s.contains(where: \.isWhitespace) else { return false }
        // As the schema's pattern ^[^@\s]+@[^@\s]+\.[^@\s]+$: a dot in the domain with something on each side.
        let domain = Array(parts[1])
        return domain.indices.contains { $0 > 0 && $0 < domain.count - 1 && domain[$0] == "." }
    }

    /// ``isEmail(_:)`` for an address in ASCII, byte by byte (it runs for every event): one `@`
    /// with something before it, no whitespace, a dot in the domain with something on each side.
    static func isASCIIEmail(_ bytes: [UInt8]) -> Bool {
        var at: Int?
        for (i, b) in bytes.enumerated() {
            if b == 0x20 || (0x09...0x0D).contains(b) { return false }
            if b == UInt8(ascii: "@") {
                if at != nil { return false }
                at = i
            }
        }
        guard let at, at > 0 else { return false }
        return bytes.indices.contains { $0 > at + 1 && $0 < bytes.count - 1 && bytes[$0] == UInt8(ascii: ".") }
    }
}

/// The CloudEvents attributes: the structured-mode document's members, or the binary-mode headers.
private enum Attributes {
    case document(JSONValue)
    case headers(CloudEventHeaders)

    subscript(name: String) -> JSONValue? {
        switch self {
        case .document(let json): return json[name]
        case .headers(let h):
            let value: String? = switch name {
            case "specversion": h.specversion
            case "id": h.id
            case "source": h.source
            case "type": h.type
            case "time": h.time
            case "subject": h.subject
            default: nil
            }
            return value.map(JSONValue.string)
        }
    }
}

/// The headers the decoder reads, found in one pass over the record's headers (it runs for every
/// event): for each, the last header of that name in any case, if its value is UTF-8.
struct CloudEventHeaders {
    var specversion, id, source, type, time, subject, contentType: String?

    init(_ headers: [MessageHeader]) {
        for header in headers {
            guard let name = Self.known(header.name) else { continue }
            let value = header.value.flatMap { String(validating: $0, as: UTF8.self) }
            switch name {
            case "ce_specversion": specversion = value
            case "ce_id": id = value
            case "ce_source": source = value
            case "ce_type": type = value
            case "ce_time": time = value
            case "ce_subject": subject = value
            default: contentType = value
            }
        }
    }

    static let names: Set<String> = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"]

    /// The name in lower case if it is one of ``names``.
    static func known(_ name: String) -> String? {
        guard name.utf8.count <= 14 else { return nil }
        let lowered = name.utf8.allSatisfy({ $0 < 0x80 })
            ? String(decoding: name.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self) : name.lowercased()
        return names.contains(lowered) ? lowered : nil
    }
}
