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
    let mapping: MappingPolicy

    public init(store: any LifecycleStore, configuration: PipelineConfiguration) {
        self.store = store
        self.planner = LifecyclePlanner(mapping: configuration.mapping, termination: configuration.termination)
        self.mapping = configuration.mapping
        self.factory = OutboxMessageFactory(configuration: configuration)
    }

    /// A polled batch decoded and validated, ready to be written. Preparing needs no store, so
    /// the consumer prepares the next batch while the store writes this one.
    public struct PreparedBatch: Sendable {
        struct Entry: Sendable {
            var message: KafkaConsumerMessage
            var source: SourceRecord
            var isReplay: Bool
            var decoded: Result<EmployeeLifecycleEvent, EventRejection>
        }
        var entries: [Entry]
        public var count: Int { entries.count }
    }

    /// Decodes and validates every message of the batch (no I/O).
    public func prepare(_ batch: [KafkaConsumerMessage], receivedAt: Date = Date()) -> PreparedBatch {
        PreparedBatch(entries: batch.map { message in
            let headers = message.headers.map { MessageHeader(name: $0.key, value: $0.value) }
            let source = SourceRecord(topic: message.topic, partition: message.partition, offset: message.offset, timestampMs: message.timestampMilliseconds,
                                      key: message.key, value: message.value, headers: headers, receivedAt: receivedAt)
            // A replay from the dead-letter topic is processed again even though the inbox has it.
            let isReplay = message.headers.contains { $0.key == "dlq-replayed-at" }
            let record = LifecycleRecord(key: message.key, value: message.value, headers: headers,
                                         timestamp: message.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
            return PreparedBatch.Entry(message: message, source: source, isReplay: isReplay, decoded: decoder.decode(record))
        })
    }

    /// Records every message of the batch durably: in the inbox, as a command, or as a dead
    /// letter (with its result event) in the outbox. Invalid events never block the partition:
    /// they become dead letters like any other outcome.
    public func ingest(_ batch: [KafkaConsumerMessage], now: Date = Date()) async throws -> Summary {
        try await write(prepare(batch, receivedAt: now), now: now)
    }

    /// Writes a prepared batch in one store transaction.
    public func write(_ batch: PreparedBatch, now: Date = Date()) async throws -> Summary {
        let summary = try await store.write { tx in
            var summary = Summary()
            let request = prefetchRequest(batch)
            let view = BatchView(tx: tx, prefetch: try await tx.prefetch(request), request: request)
            for entry in batch.entries { try await ingest(entry, tx: tx, view: view, now: now, summary: &summary) }
            try await view.flush()
            return summary
        }
        Counter(label: "duo_lifecycle_events_in_total").increment(by: batch.count)
        if summary.deadLettered > 0 { Counter(label: "duo_lifecycle_dead_letters_total", dimensions: [("stage", "ingest")]).increment(by: summary.deadLettered) }
        return summary
    }

    /// What the batch's events will ask the store, so a store that can reads it all at once: their
    /// inbox entries, their employees' states and waiting commands, and the links of the
    /// usernames they are likely to have.
    private func prefetchRequest(_ batch: PreparedBatch) -> IngestPrefetch.Request {
        var request = IngestPrefetch.Request(inbox: [], employeeIDs: [], usernames: [])
        for entry in batch.entries {
            guard case .success(let event) = entry.decoded else { continue }
            request.inbox.append(.init(source: event.source, id: event.id))
            request.employeeIDs.append(event.employeeID)
            if let username = event.profile.username { request.usernames.append(username) }
            if let derived = mapping.derivedUsername(email: event.profile.email, employeeID: event.employeeID) { request.usernames.append(derived) }
        }
        return request
    }

    private func ingest(_ entry: PreparedBatch.Entry, tx: any LifecycleStoreTransaction, view: BatchView, now: Date, summary: inout Summary) async throws {
        let message = entry.message, source = entry.source, isReplay = entry.isReplay
        switch entry.decoded {
        case .failure(let rejection):
            // An event without a readable id is known by where it sits in Kafka. So is one whose
            // id or source holds a NUL character, which no store can keep as text.
            let inboxSource: String, inboxID: String
            if let source = rejection.eventSource, let id = rejection.eventID, !source.utf8.contains(0), !id.utf8.contains(0) {
                (inboxSource, inboxID) = (source, id)
            } else {
                (inboxSource, inboxID) = ("kafka:\(message.topic)", "\(message.partition):\(message.offset)")
            }
            if try await view.inboxContains(source: inboxSource, id: inboxID), !isReplay { summary.duplicates += 1; return }
            try await view.recordInbox(source: inboxSource, id: inboxID, topic: message.topic, partition: message.partition, offset: message.offset, receivedAt: now)
            let identity = OutboxMessageFactory.EventIdentity(id: rejection.eventID, source: rejection.eventSource, type: rejection.eventType, employeeID: rejection.employeeID)
            try await tx.enqueue(factory.deadLetter(record: source, reason: .validation, message: "Invalid event: \(rejection.description)",
                                              errorCode: "validation.\(rejection.rule)", attempts: 0, firstFailureAt: now))
            try await tx.enqueue(factory.result(for: identity, record: source, outcome: .deadLettered,
                                          error: .init(code: "validation", message: rejection.description, retriable: false), now: now))
            summary.deadLettered += 1

        case .success(let event):
            if try await view.inboxContains(source: event.source, id: event.id), !isReplay { summary.duplicates += 1; return }
            try await view.recordInbox(source: event.source, id: event.id, topic: message.topic, partition: message.partition, offset: message.offset, receivedAt: now)
            let identity = OutboxMessageFactory.EventIdentity(id: event.id, source: event.source, type: event.type.rawValue, employeeID: event.employeeID)
            switch planner.plan(event, state: try await view.employeeState(event.employeeID)) {
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
                if let username = command.desired.username, let owner = try await view.employeeLinked(toUsername: username), owner != event.employeeID {
                    // Another employee's Duo user has this username: never touch it, change nothing.
                    let violation = CommandApplier.conflict(username, owner: owner, employee: event.employeeID)
                    try await tx.enqueue(factory.deadLetter(record: source, reason: .conflict, message: violation.message, errorCode: "conflict",
                                                      attempts: 0, firstFailureAt: now))
                    try await tx.enqueue(factory.result(for: identity, record: source, outcome: .deadLettered,
                                                  error: .init(code: "conflict", message: violation.message, retriable: false), now: now))
                    summary.deadLettered += 1
                    return
                }
                view.saveEmployeeState(state)
                // The newer command carries the full desired state, so the waiting ones are
                // superseded — except, when the newer one is scheduled, one that is due now (a hire
                // keeps its access until a termination's date): it runs first. A running one is
                // left to finish. Applying a command supersedes its employee's older waiting ones.
                let notBefore = max(now, command.applyAt ?? now)
                for waiting in try await view.waitingCommands(employeeID: event.employeeID)
                where notBefore <= now || waiting.isScheduled(now: now) {
                    if try await factory.supersede(waiting, in: view.flushed(), now: now) { summary.superseded += 1 }
                }
                // An event effective later waits for its date, durably (a restart keeps the schedule).
                view.insertCommand(NewCommand(command: command, source: source, notBefore: notBefore))
                if notBefore > now {
                    try await tx.enqueue(factory.result(for: identity, record: source, outcome: .scheduled, scheduledFor: notBefore, now: now))
                    summary.scheduled += 1
                }
                summary.commands += 1
            }
        }
    }
}

/// The store as one ingest transaction sees it: what the batch's prefetch answered, with what the
/// transaction itself has written since laid over it. Anything the prefetch was not asked (or a
/// store that does not prefetch) is read from the transaction.
///
/// Inbox entries, states and commands are gathered and written together
/// (``LifecycleStoreTransaction/insertIngested(_:)``): before anything is read from the
/// transaction or changed in it other than through the outbox, and at the end of the batch.
private final class BatchView {
    private let tx: any LifecycleStoreTransaction
    let prefetch: IngestPrefetch?
    private var gathered = IngestRows()
    private var recordedInbox: Set<IngestPrefetch.InboxKey> = []
    private var savedStates: [String: EmployeeState] = [:]
    /// Employees given a command by this transaction (the ones it superseded went with it): their
    /// waiting commands are read again.
    private var commandsChanged: Set<String> = []
    private let askedInbox: Set<IngestPrefetch.InboxKey>
    private let askedEmployees: Set<String>
    private let askedUsernames: Set<String>

    init(tx: any LifecycleStoreTransaction, prefetch: IngestPrefetch?, request: IngestPrefetch.Request) {
        self.tx = tx
        self.prefetch = prefetch
        askedInbox = prefetch == nil ? [] : Set(request.inbox)
        askedEmployees = prefetch == nil ? [] : Set(request.employeeIDs)
        askedUsernames = prefetch == nil ? [] : Set(request.usernames.filter(IngestPrefetch.answersUsername).map(IngestPrefetch.linkKey))
    }

    func inboxContains(source: String, id: String) async throws -> Bool {
        let key = IngestPrefetch.InboxKey(source: source, id: id)
        if recordedInbox.contains(key) { return true }
        if let prefetch, askedInbox.contains(key) { return prefetch.inbox.contains(key) }
        return try await flushed().inboxContains(source: source, id: id)
    }

    func recordInbox(source: String, id: String, topic: String, partition: Int32, offset: Int64, receivedAt: Date) async throws {
        gathered.inbox.append(.init(source: source, id: id, topic: topic, partition: partition, offset: offset, receivedAt: receivedAt))
        recordedInbox.insert(.init(source: source, id: id))
    }

    /// Writes what was gathered.
    func flush() async throws {
        guard !gathered.isEmpty else { return }
        let rows = gathered
        gathered = IngestRows()
        try await tx.insertIngested(rows)
    }

    /// The transaction, with everything gathered written to it.
    func flushed() async throws -> any LifecycleStoreTransaction {
        try await flush()
        return tx
    }

    func employeeState(_ employeeID: String) async throws -> EmployeeState? {
        if let saved = savedStates[employeeID] { return saved }
        if let prefetch, askedEmployees.contains(employeeID) { return prefetch.states[employeeID] }
        return try await flushed().employeeState(employeeID)
    }

    func saveEmployeeState(_ state: EmployeeState) {
        gathered.states.append(state)
        savedStates[state.employeeID] = state
    }

    func waitingCommands(employeeID: String) async throws -> [StoredCommand] {
        if let prefetch, askedEmployees.contains(employeeID), !commandsChanged.contains(employeeID) { return prefetch.waiting[employeeID] ?? [] }
        return try await flushed().waitingCommands(employeeID: employeeID)
    }

    func insertCommand(_ command: NewCommand) {
        commandsChanged.insert(command.command.employeeID)
        gathered.commands.append(command)
    }

    func employeeLinked(toUsername username: String) async throws -> String? {
        let key = IngestPrefetch.linkKey(username)
        if let prefetch, IngestPrefetch.answersUsername(username), askedUsernames.contains(key) { return prefetch.links[key] }
        return try await flushed().employeeLinked(toUsername: username)
    }
}
