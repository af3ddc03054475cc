import Crypto
import Foundation
import JSONText
import Lifecycle
import LifecycleStore

/// The outcome a result event reports.
public enum ProvisioningOutcome: String, Sendable, Codable, CaseIterable {
    case applied, noChange = "no_change", superseded, stale, scheduled, deadLettered = "dead_lettered"
    /// Held back by the mass-deprovision guard; a later result says how it ended.
    case held
    /// A held command an operator rejected.
    case rejected
}

/// Why an event went to the dead-letter topic (`dlq-reason`).
public enum DeadLetterReason: String, Sendable, Codable, CaseIterable {
    case validation, duoPermanent = "duo-permanent", retriesExhausted = "retries-exhausted", policy
    /// The employee maps to a Duo user that belongs to another employee.
    case conflict

    /// What Spring's `kafka_dlt-exception-fqcn` header says for this reason: a class-like name
    /// that Spring tooling groups and filters by.
    public var exceptionName: String {
        switch self {
        case .validation: "duo_lifecycle.InvalidEventException"
        case .duoPermanent: "duo_lifecycle.DuoPermanentErrorException"
        case .retriesExhausted: "duo_lifecycle.RetriesExhaustedException"
        case .policy: "duo_lifecycle.PolicyRefusalException"
        case .conflict: "duo_lifecycle.AccountConflictException"
        }
    }
}

/// Builds the outbox messages: result events (binary-mode CloudEvents) and dead letters.
public struct OutboxMessageFactory: Sendable {
    public var configuration: PipelineConfiguration

    public init(configuration: PipelineConfiguration) { self.configuration = configuration }

    /// The identity of the event a result is about.
    public struct EventIdentity: Sendable {
        public var id: String?
        public var source: String?
        public var type: String?
        public var employeeID: String?
        public init(id: String?, source: String?, type: String?, employeeID: String?) {
            self.id = id
            self.source = source
            self.type = type
            self.employeeID = employeeID
        }
    }

    /// A failure, as a result event reports it.
    public struct Failure: Sendable {
        public var code: String
        public var message: String
        public var retriable: Bool
        public init(code: String, message: String, retriable: Bool) {
            self.code = code
            self.message = message
            self.retriable = retriable
        }
    }

    public func result(for event: EventIdentity, record: SourceRecord, outcome: ProvisioningOutcome, userID: String? = nil,
                       operations: [DuoOperationKind] = [], attempts: Int = 0, error: Failure? = nil, scheduledFor: Date? = nil,
                       now: Date = Date()) -> NewOutboxMessage {
        // Members in key order, as the contract's examples have them.
        var json = JSONText()
        json.beginObject()
        json.key("attempts"); json.int(Int64(attempts))
        json.key("completed_at"); json.string(RFC3339.format(now))
        json.key("employee_id"); json.string(event.employeeID)
        if let error {
            json.key("error")
            json.beginObject()
            json.key("code"); json.string(error.code)
            json.key("message"); json.string(error.message)
            json.key("retriable"); json.bool(error.retriable)
            json.endObject()
        }
        json.key("latency_ms"); json.int(Int64(max(0, (now.timeIntervalSince(record.receivedAt) * 1000).rounded())))
        json.key("operations")
        json.beginArray()
        for op in operations { json.string(op.rawValue) }
        json.endArray()
        json.key("outcome"); json.string(outcome.rawValue)
        json.key("received_at"); json.string(RFC3339.format(record.receivedAt))
        if let scheduledFor { json.key("scheduled_for"); json.string(RFC3339.format(scheduledFor)) }
        json.key("source_event")
        json.beginObject()
        json.key("id"); json.string(event.id)
        json.key("offset"); json.int(record.offset)
        json.key("partition"); json.int(Int64(record.partition))
        json.key("source"); json.string(event.source)
        json.key("topic"); json.string(record.topic)
        json.key("type"); json.string(event.type)
        json.endObject()
        json.key("user_id"); json.string(userID)
        json.endObject()
        let value = json.bytes
        var headers: [MessageHeader] = [
            .init("ce_specversion", "1.0"), .init("ce_id", Self.resultID(for: event, record: record, outcome: outcome)),
            .init("ce_source", configuration.resultSource),
            .init("ce_type", "duo.provisioning.result"), .init("ce_time", RFC3339.format(now)),
        ]
        // CloudEvents: a subject, when present, is non-empty; a keyless record's result has none.
        if let employee = event.employeeID, !employee.isEmpty { headers.append(.init("ce_subject", employee)) }
        headers.append(.init("content-type", "application/json"))
        return NewOutboxMessage(kind: .result, topic: configuration.resultsTopic, key: event.employeeID.map { Array($0.utf8) },
                                value: value, headers: headers)
    }

    /// A result's CloudEvents id, derived from what it is about: a UUIDv5 of the source event (its
    /// CloudEvents source and id, or where it sat in Kafka when it had none), the outcome, and the
    /// replay it came from, if any. A result published twice (a crash between Kafka's
    /// acknowledgement and marking the outbox row sent) is the same CloudEvent, which consumers
    /// drop; a scheduled event's `scheduled` and final results differ.
    static func resultID(for event: EventIdentity, record: SourceRecord, outcome: ProvisioningOutcome) -> String {
        let replay = record.headers.last { $0.name == "dlq-replayed-at" }?.value.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let subject = event.id.flatMap { id in event.source.map { "\($0)\n\(id)" } } ?? "kafka:\(record.topic)/\(record.partition)/\(record.offset)"
        return uuidV5(name: "\(subject)\n\(outcome.rawValue)\n\(replay)").uuidString.lowercased()
    }

    /// The namespace of result ids (a fixed, random UUID).
    static let resultNamespace: uuid_t = (0x6f, 0x1c, 0x2a, 0x4e, 0x9b, 0x57, 0x4d, 0x1e, 0xa3, 0x08, 0x52, 0xd4, 0x7e, 0x61, 0x0b, 0x93)

    /// RFC 9562 name-based UUID, version 5 (SHA-1).
    static func uuidV5(name: String) -> UUID {
        var bytes = withUnsafeBytes(of: resultNamespace) { Array($0) }
        bytes += Array(name.utf8)
        var h = Array(Insecure.SHA1.hash(data: bytes).prefix(16))
        h[6] = (h[6] & 0x0F) | 0x50
        h[8] = (h[8] & 0x3F) | 0x80
        return UUID(uuid: (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]))
    }

    /// The original record, byte for byte, with the dead-letter headers added.
    public func deadLetter(record: SourceRecord, reason: DeadLetterReason, message: String, errorCode: String?, attempts: Int,
                           firstFailureAt: Date) -> NewOutboxMessage {
        var headers = record.headers.filter { !DeadLetterOrigin.isDeadLetterHeader($0.name) }
        headers += DeadLetterOrigin(topic: record.topic, partition: record.partition, offset: record.offset, timestampMs: record.timestampMs,
                                    consumerGroup: configuration.groupID).headers
        headers += [
            .init(DeadLetterOrigin.Name.exceptionFQCN, reason.exceptionName), .init(DeadLetterOrigin.Name.exceptionMessage, message),
            .init("dlq-reason", reason.rawValue), .init("dlq-attempts", String(attempts)), .init("dlq-first-failure-at", RFC3339.format(firstFailureAt)),
        ]
        if let errorCode { headers.append(.init("dlq-error-code", errorCode)) }
        // A dead letter must always be publishable: a value that would not fit is cut, the header
        // says so, and the whole value stays in the store.
        let overhead = (record.key?.count ?? 0) + headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) + 16 } + 1024
        if let value = record.value, value.count + overhead > configuration.maxDeadLetterBytes {
            headers.append(.init("dlq-value-truncated", String(value.count)))
            let kept = max(0, configuration.maxDeadLetterBytes - overhead - 64)
            return NewOutboxMessage(kind: .deadLetter, topic: configuration.deadLetterTopic, key: record.key, value: Array(value.prefix(kept)),
                                    headers: headers, originalValue: value)
        }
        return NewOutboxMessage(kind: .deadLetter, topic: configuration.deadLetterTopic, key: record.key, value: record.value, headers: headers)
    }
}

extension OutboxMessageFactory.EventIdentity {
    /// The event a command came from.
    public init(_ command: ProvisioningCommand) {
        self.init(id: command.eventID, source: command.eventSource, type: command.eventType.rawValue, employeeID: command.employeeID)
    }
}

extension OutboxMessageFactory {
    /// Marks a waiting command superseded by a newer one of its employee and, unless it is a
    /// follow-up, publishes its event's result (with the writes its attempts made). Returns
    /// whether a result was written.
    @discardableResult
    func supersede(_ waiting: StoredCommand, in tx: any LifecycleStoreTransaction, now: Date) async throws -> Bool {
        try await tx.updateCommand(id: waiting.id, state: .superseded, attempts: waiting.attempts, nextAttemptAt: nil,
                             firstFailureAt: waiting.firstFailureAt, lastError: waiting.lastError, now: now)
        guard !waiting.isFollowUp else { return false }
        try await tx.enqueue(result(for: EventIdentity(waiting.command), record: waiting.source, outcome: .superseded,
                              operations: waiting.doneOperations, attempts: waiting.attempts, now: now))
        return true
    }
}
