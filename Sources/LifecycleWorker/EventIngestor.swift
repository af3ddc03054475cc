import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import Logging
import Metrics

/// Turns a polled batch of records into durable state, in one store transaction.
public struct EventIngestor: Sendable {
    public struct Summary: Sendable, Hashable {
        public var commands = 0
        public var duplicates = 0
        public var stale = 0
        public var deadLettered = 0
        public var superseded = 0
        /// Commands that wait for their effective date.
        public var scheduled = 0
    }

    let store: any LifecycleStore
    let planner: LifecyclePlanner
    let factory: OutboxMessageFactory
    let decoder = LifecycleEventDecoder()

    public init(store: any LifecycleStore, configuration: PipelineConfiguration) {
        self.store = store
        self.planner = LifecyclePlanner(mapping: configuration.mapping, termination: configuration.termination)
        self.factory = OutboxMessageFactory(configuration: configuration)
    }

    /// Records every message of the batch durably: in the inbox, as a command, or as a dead
    /// letter (with its result event) in the outbox. Invalid events never block the partition:
    /// they become dead letters like any other outcome.
    public func ingest(_ batch: [KafkaConsumerMessage], now: Date = Date()) async throws -> Summary {
        let summary = try await store.write { tx in
            var summary = Summary()
            for message in batch { try await ingest(message, tx: tx, now: now, summary: &summary) }
            return summary
        }
        Counter(label: "duo_lifecycle_events_in_total").increment(by: batch.count)
        if summary.deadLettered > 0 { Counter(label: "duo_lifecycle_dead_letters_total", dimensions: [("stage", "ingest")]).increment(by: summary.deadLettered) }
        return summary
    }

    private func ingest(_ message: KafkaConsumerMessage, tx: any LifecycleStoreTransaction, now: Date, summary: inout Summary) async throws {
        let headers = message.headers.map { MessageHeader(name: $0.key, value: $0.value) }
        let source = SourceRecord(topic: message.topic, partition: message.partition, offset: message.offset, timestampMs: message.timestampMilliseconds,
                                  key: message.key, value: message.value, headers: headers,
                                  receivedAt: now)
        // A replay from the dead-letter topic is processed again even though the inbox has it.
        let isReplay = message.headers.contains { $0.key == "dlq-replayed-at" }
        let record = LifecycleRecord(key: message.key, value: message.value, headers: headers,
                                     timestamp: message.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        switch decoder.decode(record) {
        case .failure(let rejection):
            // An event without a readable id is known by where it sits in Kafka.
            let inboxSource = rejection.eventSource.flatMap { rejection.eventID != nil ? $0 : nil } ?? "kafka:\(message.topic)"
            let inboxID = rejection.eventSource != nil ? (rejection.eventID ?? "\(message.partition):\(message.offset)") : "\(message.partition):\(message.offset)"
            if try await tx.inboxContains(source: inboxSource, id: inboxID), !isReplay { summary.duplicates += 1; return }
            try await tx.recordInbox(source: inboxSource, id: inboxID, topic: message.topic, partition: message.partition, offset: message.offset, receivedAt: now)
            let identity = OutboxMessageFactory.EventIdentity(id: rejection.eventID, source: rejection.eventSource, type: rejection.eventType, employeeID: rejection.employeeID)
            try await tx.enqueue(factory.deadLetter(record: source, reason: .validation, message: "Invalid event: \(rejection.description)",
                                              errorCode: "validation.\(rejection.rule)", attempts: 0, firstFailureAt: now))
            try await tx.enqueue(factory.result(for: identity, record: source, outcome: .deadLettered,
                                          error: .init(code: "validation", message: rejection.description, retriable: false), now: now))
            summary.deadLettered += 1

        case .success(let event):
            if try await tx.inboxContains(source: event.source, id: event.id), !isReplay { summary.duplicates += 1; return }
            try await tx.recordInbox(source: event.source, id: event.id, topic: message.topic, partition: message.partition, offset: message.offset, receivedAt: now)
            let identity = OutboxMessageFactory.EventIdentity(id: event.id, source: event.source, type: event.type.rawValue, employeeID: event.employeeID)
            switch planner.plan(event, state: try await tx.employeeState(event.employeeID)) {
            case .stale:
                try await tx.enqueue(factory.result(for: identity, record: source, outcome: .stale, now: now))
                summary.stale += 1
            case .rejected(let violation):
                try await tx.enqueue(factory.deadLetter(record: source, reason: .policy, message: violation.message, errorCode: "policy.\(violation.code)",
                                                  attempts: 0, firstFailureAt: now))
                try await tx.enqueue(factory.result(for: identity, record: source, outcome: .deadLettered,
                                              error: .init(code: "policy.\(violation.code)", message: violation.message, retriable: false), now: now))
                summary.deadLettered += 1
            case .command(let command, let state):
                if let username = command.desired.username, let owner = try await tx.employeeLinked(toUsername: username), owner != event.employeeID {
                    // Another employee's Duo user has this username: never touch it, change nothing.
                    let violation = CommandApplier.conflict(username, owner: owner, employee: event.employeeID)
                    try await tx.enqueue(factory.deadLetter(record: source, reason: .conflict, message: violation.message, errorCode: "conflict",
                                                      attempts: 0, firstFailureAt: now))
                    try await tx.enqueue(factory.result(for: identity, record: source, outcome: .deadLettered,
                                                  error: .init(code: "conflict", message: violation.message, retriable: false), now: now))
                    summary.deadLettered += 1
                    return
                }
                try await tx.saveEmployeeState(state)
                // The newer command carries the full desired state, so the waiting ones are
                // superseded — except, when the newer one is scheduled, one that is due now (a hire
                // keeps its access until a termination's date): it runs first. A running one is
                // left to finish. Applying a command supersedes its employee's older waiting ones.
                let notBefore = max(now, command.applyAt ?? now)
                for waiting in try await tx.waitingCommands(employeeID: event.employeeID)
                where notBefore <= now || waiting.isScheduled(now: now) {
                    if try await factory.supersede(waiting, in: tx, now: now) { summary.superseded += 1 }
                }
                // An event effective later waits for its date, durably (a restart keeps the schedule).
                try await tx.insertCommand(NewCommand(command: command, source: source, notBefore: notBefore))
                if notBefore > now {
                    try await tx.enqueue(factory.result(for: identity, record: source, outcome: .scheduled, scheduledFor: notBefore, now: now))
                    summary.scheduled += 1
                }
                summary.commands += 1
            }
        }
    }
}
