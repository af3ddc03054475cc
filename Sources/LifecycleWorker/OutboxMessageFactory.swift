import Foundation
import Lifecycle
import LifecycleStore

/// The outcome a result event reports.
public enum ProvisioningOutcome: String, Sendable, Codable {
    case applied, noChange = "no_change", superseded, stale, scheduled, deadLettered = "dead_lettered"
}

/// Why an event went to the dead-letter topic (`dlq-reason`).
public enum DeadLetterReason: String, Sendable, Codable, CaseIterable {
    case validation, duoPermanent = "duo-permanent", retriesExhausted = "retries-exhausted", policy
    /// The employee maps to a Duo user that belongs to another employee.
    case conflict
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
        var data: [String: Any] = [
            "employee_id": event.employeeID ?? NSNull(),
            "source_event": [
                "id": event.id ?? NSNull(), "source": event.source ?? NSNull(), "type": event.type ?? NSNull(),
                "topic": record.topic, "partition": Int(record.partition), "offset": record.offset,
            ] as [String: Any],
            "outcome": outcome.rawValue,
            "user_id": userID ?? NSNull(),
            "operations": operations.map(\.rawValue),
            "attempts": attempts,
            "received_at": RFC3339.format(record.receivedAt),
            "completed_at": RFC3339.format(now),
            "latency_ms": max(0, (now.timeIntervalSince(record.receivedAt) * 1000).rounded()),
        ]
        if let scheduledFor { data["scheduled_for"] = RFC3339.format(scheduledFor) }
        if let error { data["error"] = ["code": error.code, "message": error.message, "retriable": error.retriable] as [String: Any] }
        let value = (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        let headers: [MessageHeader] = [
            .init("ce_specversion", "1.0"), .init("ce_id", UUID().uuidString.lowercased()), .init("ce_source", configuration.resultSource),
            .init("ce_type", "duo.provisioning.result"), .init("ce_time", RFC3339.format(now)),
            .init("ce_subject", event.employeeID ?? ""), .init("content-type", "application/json"),
        ]
        return NewOutboxMessage(kind: .result, topic: configuration.resultsTopic, key: event.employeeID.map { Array($0.utf8) },
                                value: Array(value), headers: headers)
    }

    /// The original record, byte for byte, with the dead-letter headers added.
    public func deadLetter(record: SourceRecord, reason: DeadLetterReason, message: String, errorCode: String?, attempts: Int,
                           firstFailureAt: Date) -> NewOutboxMessage {
        var headers = record.headers.filter { !$0.name.hasPrefix("kafka_dlt-") && !$0.name.hasPrefix("dlq-") }
        headers += [
            .init("kafka_dlt-original-topic", record.topic), .init("kafka_dlt-original-partition", String(record.partition)),
            .init("kafka_dlt-original-offset", String(record.offset)), .init("kafka_dlt-original-timestamp", String(record.timestampMs ?? -1)),
            .init("kafka_dlt-original-consumer-group", configuration.groupID), .init("kafka_dlt-exception-message", message),
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


