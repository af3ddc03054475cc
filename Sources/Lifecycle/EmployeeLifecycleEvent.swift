import Foundation

/// The lifecycle event types a worker accepts.
public enum LifecycleEventType: String, Sendable, Codable, CaseIterable {
    case hired = "hr.employee.hired"
    case updated = "hr.employee.updated"
    case roleChanged = "hr.employee.role_changed"
    case terminated = "hr.employee.terminated"
    case rehired = "hr.employee.rehired"
}

/// How the event travelled: CloudEvents binary mode (ce_* headers) or structured mode (one JSON document).
public enum CloudEventMode: String, Sendable, Codable { case binary, structured }

/// A validated employee-lifecycle event. Profile fields read through to ``profile``
/// (`event.email`).
@dynamicMemberLookup
public struct EmployeeLifecycleEvent: Sendable, Hashable, Codable {
    /// CloudEvents `id`; with `source` it identifies the event (the inbox key).
    public var id: String
    public var source: String
    public var type: LifecycleEventType
    public var time: Date
    public var subject: String?
    public var mode: CloudEventMode

    public var employeeID: String
    /// The profile fields the event carries; the others are nil.
    public var profile: EmployeeProfile
    /// The complete current role list (state, not a delta), when the event carries it.
    public var roles: [String]?
    /// When the change takes effect; the event's time when not given.
    public var effectiveAt: Date
    /// The HR system's increasing version for this employee.
    public var sequence: Int64?

    public init(id: String, source: String, type: LifecycleEventType, time: Date, subject: String? = nil, mode: CloudEventMode = .binary,
                employeeID: String, profile: EmployeeProfile = EmployeeProfile(), roles: [String]? = nil, effectiveAt: Date? = nil, sequence: Int64? = nil) {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.subject = subject
        self.mode = mode
        self.employeeID = employeeID
        self.profile = profile
        self.roles = roles
        self.effectiveAt = effectiveAt ?? time
        self.sequence = sequence
    }

    public subscript<T>(dynamicMember field: KeyPath<EmployeeProfile, T>) -> T { profile[keyPath: field] }

    /// Where this event stands among the employee's events.
    public var ordering: EventOrdering { EventOrdering(sequence: sequence, effectiveAt: effectiveAt, time: time) }
}

/// What orders an employee's events: `sequence` when both events carry one, otherwise the event
/// time (`ce_time`). The effective date never orders events: it schedules them.
public struct EventOrdering: Sendable, Hashable, Codable {
    public var sequence: Int64?
    public var effectiveAt: Date
    public var time: Date

    public init(sequence: Int64?, effectiveAt: Date, time: Date) {
        self.sequence = sequence
        self.effectiveAt = effectiveAt
        self.time = time
    }

    /// Strictly older than `other`. Equal orderings are not older, so two events with the same
    /// time both apply, in the order they arrive.
    public func isOlder(than other: EventOrdering) -> Bool {
        if let a = sequence, let b = other.sequence { return a < b }
        return time < other.time
    }
}

/// A message header outside the Kafka layer: what the decoder reads, the store keeps and the
/// outbox writes. The worker converts from and to Kafka's own header type at its edge.
public struct MessageHeader: Sendable, Hashable, Codable {
    public var name: String
    /// The raw bytes; nil for a header with no value (Kafka allows that).
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) { self.init(name: name, value: Array(value.utf8)) }
}

/// A Kafka-free view of an incoming record: what the decoder needs.
public struct LifecycleRecord: Sendable {
    public var key: [UInt8]?
    public var value: [UInt8]?
    /// Header names and values, in order.
    public var headers: [MessageHeader]
    /// The Kafka record's timestamp: an event's time when the CloudEvent has no `time` (it is
    /// optional in CloudEvents 1.0, and some SDKs leave it out).
    public var timestamp: Date?

    public init(key: [UInt8]?, value: [UInt8]?, headers: [MessageHeader], timestamp: Date? = nil) {
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// Why an event was rejected: the field path, the rule it broke, and a sentence a human can act on.
public struct EventRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// For example `data.roles[3]`, `ce_time`, or `$` for the record as a whole.
    public var path: String
    /// The rule, for example `required`, `maxLength 256`, `enum`, `type string`.
    public var rule: String
    public var message: String
    /// What could be read of the event despite the rejection, for the result and the dead letter.
    public var eventID: String?
    public var eventSource: String?
    public var eventType: String?
    public var employeeID: String?

    public init(path: String, rule: String, message: String) {
        self.path = path
        self.rule = rule
        self.message = message
    }

    public var description: String { "\(path): \(message) (\(rule))" }
}
