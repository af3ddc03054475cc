// LifecycleStore owns the durable state: inbox, employees, commands and outbox, behind a protocol,
// in SQLite through GRDB.
import Foundation
import Lifecycle

/// The durable state of the worker: the inbox of consumed events, the employees' state, the
/// commands, and the outbox of result events and dead letters.
///
/// Everything that must change together changes in one ``write(_:)`` transaction: a command's
/// new state and the result event or dead letter it causes, or a polled batch's inbox rows,
/// commands and dead letters. Two implementations: ``SQLiteLifecycleStore`` (one replica, the
/// embedded default) and ``PostgresLifecycleStore`` (any number of replicas sharing it).
public protocol LifecycleStore: Sendable {
    /// Runs `body` in one transaction; everything it writes commits together or not at all. A
    /// transaction the database does not finish in time fails (PostgreSQL), so a caller is never
    /// stuck on a connection that died under it.
    func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T

    /// Puts commands that a previous run of this worker (`owner`) left `running` back to
    /// `pending`: that run has stopped, so they would otherwise wait for their leases to expire.
    /// Commands other replicas are running are left alone. Returns how many.
    func recoverRunning(owner: String) async throws -> Int

    /// Claims up to `limit` ready commands of at least `priority` (a lower raw value is more
    /// urgent), highest priority first, then oldest; never two of the same employee, and never one
    /// whose employee has a command running anywhere. They become `running` with a lease until
    /// `now + lease`, held by `owner` under a fencing token (``StoredCommand/lease``) that no
    /// other claim of the command shares. A running command whose lease has expired (its worker
    /// failed, stopped or was paused) is claimable again, ahead of its employee's newer commands,
    /// and its old holder's token stops being valid.
    func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner: String) async throws -> [StoredCommand]

    /// Extends the leases still held (same token, not expired); returns the commands whose lease
    /// was lost.
    func renewLeases(_ leases: [CommandLease], until: Date, now: Date) async throws -> Set<Int64>

    /// Whether the lease is still held and has at least `margin` left: a worker checks this before
    /// each Duo write it makes for the command.
    func holdsLease(_ lease: CommandLease, now: Date, margin: Duration) async throws -> Bool

    /// The earliest time a waiting command becomes ready, if any.
    func nextReadyAt() async throws -> Date?

    /// Outbox messages not yet sent, oldest first. On a shared store they are claimed for
    /// `claimFor`, so replicas relay different messages; an unconfirmed claim expires and the
    /// message is sent again (a result sent twice is the same CloudEvent).
    func unsentOutbox(limit: Int, now: Date, claimFor: Duration) async throws -> [OutboxMessage]

    /// Marks outbox messages sent.
    func markSent(_ ids: [Int64], at: Date) async throws

    /// Sets aside an outbox message that Kafka can never accept, so it stops being sent; it stays
    /// in the store with the reason.
    func park(_ id: Int64, reason: String, at: Date) async throws

    /// Deletes sent outbox messages older than `cutoff`. Returns how many.
    func purgeSent(before cutoff: Date) async throws -> Int

    /// Deletes what no longer serves deduplication or ordering: inbox rows received before
    /// `cutoff`, finished commands (done, dead, superseded) last changed before it, and the whole
    /// values kept for truncated dead letters sent before it. Employees' state (the ordering
    /// watermark) and identity links are kept. Returns how many rows went.
    func purgeFinished(before cutoff: Date) async throws -> Int

    /// Counts for health and metrics. They cost the same however many rows the store holds.
    func statistics(now: Date) async throws -> StoreStatistics

    /// The whole original value of a dead letter that was published truncated, found by where
    /// the original record was.
    func deadLetterOriginal(topic: String, partition: Int32, offset: Int64) async throws -> [UInt8]?

    /// Runs `body` while holding a lock named `name` that every worker sharing the store respects
    /// (a process-wide lock for SQLite, an advisory lock for PostgreSQL): for the rare Duo writes
    /// that two replicas must not race on, such as creating a group.
    func withExclusiveLock<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T

    /// Every command, oldest first, for tests and tools.
    func allCommands() async throws -> [StoredCommand]
    /// Every employee's remembered state and the Duo users ever linked to employees, for
    /// reconciliation (the desired side of an audit).
    func allEmployeeStates() async throws -> [EmployeeState]
    func allDuoLinks() async throws -> [DuoLink]
    /// The operators' actions (the console's audit trail), newest first.
    func auditLog(limit: Int) async throws -> [AuditEntry]

    /// What a claimed command reads before it runs: its employee's state, the employee's waiting
    /// commands (oldest first) and the Duo users linked to the employee (newest first), read on
    /// one consistent snapshot. SQLite reads it beside the writer, so a command starting never
    /// waits behind other commands' writes.
    func commandContext(employeeID: String) async throws -> CommandContext

    /// Closes connections. The store cannot be used afterwards.
    func close() async

    /// The most events one ingest transaction takes: the consumer hands over batches of up to
    /// this many. A batch is whatever is ready, so a quiet topic still gives small ones at once.
    var ingestBatchSize: Int { get }
}

/// See ``LifecycleStore/commandContext(employeeID:)``.
public struct CommandContext: Sendable {
    public var state: EmployeeState?
    public var waiting: [StoredCommand]
    public var linkedDuoUserIDs: [String]
    public init(state: EmployeeState?, waiting: [StoredCommand], linkedDuoUserIDs: [String]) {
        self.state = state
        self.waiting = waiting
        self.linkedDuoUserIDs = linkedDuoUserIDs
    }
}

extension LifecycleStore {
    /// The lease a claim takes unless told otherwise: one minute.
    public static var defaultLease: Duration { .seconds(60) }

    public func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority = .normal, lease: Duration = Self.defaultLease,
                           owner: String = "local") async throws -> [StoredCommand] {
        try await claimReady(limit: limit, now: now, atLeast: priority, lease: lease, owner: owner)
    }

    public func unsentOutbox(limit: Int) async throws -> [OutboxMessage] {
        try await unsentOutbox(limit: limit, now: Date(), claimFor: .seconds(30))
    }

    public func close() async {}

    /// In one transaction, for stores whose transactions run side by side (PostgreSQL).
    public func commandContext(employeeID: String) async throws -> CommandContext {
        try await write { tx in
            CommandContext(state: try await tx.employeeState(employeeID), waiting: try await tx.waitingCommands(employeeID: employeeID),
                           linkedDuoUserIDs: try await tx.linkedDuoUserIDs(employeeID: employeeID))
        }
    }
}

/// A claim on a running command: which command, and the fencing token of this claim.
public struct CommandLease: Sendable, Hashable {
    public var commandID: Int64
    public var token: Int64
    public init(commandID: Int64, token: Int64) {
        self.commandID = commandID
        self.token = token
    }
}

/// The lease on a command was lost: another worker claimed it after it expired, so this worker
/// may neither record an outcome nor write to Duo for it.
public struct LeaseLost: Error, CustomStringConvertible {
    public var lease: CommandLease
    public init(_ lease: CommandLease) { self.lease = lease }
    public var description: String { "The lease on command \(lease.commandID) (token \(lease.token)) was lost to another claim" }
}

/// The operations available inside a store transaction.
public protocol LifecycleStoreTransaction: Sendable {
    /// Whether an event with this CloudEvents source and id was consumed before.
    func inboxContains(source: String, id: String) async throws -> Bool
    /// Records a consumed event. Replays overwrite the earlier row.
    func recordInbox(source: String, id: String, topic: String, partition: Int32, offset: Int64, receivedAt: Date) async throws

    /// The employee's state. On a shared store this also locks the employee until the transaction
    /// ends, so two replicas never interleave their reads and writes of one employee.
    func employeeState(_ employeeID: String) async throws -> EmployeeState?
    func saveEmployeeState(_ state: EmployeeState) async throws

    /// The employee's newest waiting command (`pending` or `retry`), if any. A running one is not returned.
    func waitingCommand(employeeID: String) async throws -> StoredCommand?
    /// All the employee's waiting commands, oldest first.
    func waitingCommands(employeeID: String) async throws -> [StoredCommand]
    /// The employee's newest command, whatever its state.
    func newestCommand(employeeID: String) async throws -> StoredCommand?
    /// Adds a command.
    @discardableResult
    func insertCommand(_ command: NewCommand) async throws -> Int64
    /// Sets a command's state, attempts, next attempt time and error.
    func updateCommand(id: Int64, state: CommandState, attempts: Int, nextAttemptAt: Date?, firstFailureAt: Date?, lastError: String?, now: Date) async throws
    /// Throws ``LeaseLost`` unless `lease` is the command's current claim and it is still
    /// running; on a shared store, the command stays locked until the transaction ends, so no
    /// other claim can slip in before the outcome is recorded.
    func assertHolds(_ lease: CommandLease) async throws

    /// Adds a message to the outbox.
    func enqueue(_ message: NewOutboxMessage) async throws

    /// Records Duo writes a command made before it failed, so a result that supersedes or
    /// dead-letters it can say what was done.
    func addDoneOperations(commandID: Int64, _ operations: [DuoOperationKind]) async throws

    /// Links a Duo user to an employee (and records its username), unless it belongs to another
    /// employee: then nothing changes and that employee's id is returned.
    func claimDuoUser(_ duoUserID: String, username: String, employeeID: String) async throws -> String?
    /// The Duo users linked to an employee, the most recently linked first.
    func linkedDuoUserIDs(employeeID: String) async throws -> [String]
    /// The employee whose linked Duo user has this username (case-insensitively), if any.
    func employeeLinked(toUsername username: String) async throws -> String?
    /// The mass-deprovision guard: records that this command disables or deletes, if fewer than
    /// `limit` did within `window` before `now` (counted across replicas), and says whether it
    /// may go ahead. A command that already has its place (an approved hold, or a retry) keeps it.
    /// `limit` gets the number of Duo users linked to employees (for a percentage).
    func reserveDisable(commandID: Int64, now: Date, window: Duration, limit: @Sendable (Int) -> Int) async throws -> Bool
    /// Gives a command its place regardless of the guard (an operator approved it).
    func approveDisable(commandID: Int64, now: Date) async throws
    /// Records an operator's action in the audit trail.
    func recordAudit(_ entry: AuditEntry) async throws

    /// What a batch of events about to be ingested needs to know, read with a few statements
    /// instead of several per event. Nil from a store that answers one event at a time (a shared
    /// store, whose reads of an employee also lock it, one employee at a time).
    func prefetch(_ request: IngestPrefetch.Request) async throws -> IngestPrefetch?

    /// Writes what an ingest transaction gathered: inbox entries, employee states and new
    /// commands, each kind in the order given (a later state of one employee replaces an earlier
    /// one). A store may write each kind with a few statements instead of one per row.
    func insertIngested(_ rows: IngestRows) async throws
}

extension LifecycleStoreTransaction {
    public func prefetch(_ request: IngestPrefetch.Request) async throws -> IngestPrefetch? { nil }

    public func insertIngested(_ rows: IngestRows) async throws { try await insertIngestedRowByRow(rows) }

    /// Writes the rows one statement each, in order.
    public func insertIngestedRowByRow(_ rows: IngestRows) async throws {
        for e in rows.inbox { try await recordInbox(source: e.source, id: e.id, topic: e.topic, partition: e.partition, offset: e.offset, receivedAt: e.receivedAt) }
        for state in rows.states { try await saveEmployeeState(state) }
        for command in rows.commands { try await insertCommand(command) }
    }
}

/// Rows an ingest transaction adds, gathered to be written together
/// (``LifecycleStoreTransaction/insertIngested(_:)``).
public struct IngestRows: Sendable {
    public struct Inbox: Sendable {
        public var source: String
        public var id: String
        public var topic: String
        public var partition: Int32
        public var offset: Int64
        public var receivedAt: Date
        public init(source: String, id: String, topic: String, partition: Int32, offset: Int64, receivedAt: Date) {
            self.source = source
            self.id = id
            self.topic = topic
            self.partition = partition
            self.offset = offset
            self.receivedAt = receivedAt
        }
    }

    public var inbox: [Inbox] = []
    public var states: [EmployeeState] = []
    public var commands: [NewCommand] = []
    public var isEmpty: Bool { inbox.isEmpty && states.isEmpty && commands.isEmpty }
    public init() {}
}

/// A batch's inbox entries, employees' states, waiting commands and username links, read at once
/// at the start of its ingest transaction (see ``LifecycleStoreTransaction/prefetch(_:)``).
public struct IngestPrefetch: Sendable {
    public struct InboxKey: Sendable, Hashable {
        public var source: String
        public var id: String
        public init(source: String, id: String) { self.source = source; self.id = id }
    }

    public struct Request: Sendable {
        public var inbox: [InboxKey]
        public var employeeIDs: [String]
        public var usernames: [String]
        public init(inbox: [InboxKey], employeeIDs: [String], usernames: [String]) {
            self.inbox = inbox
            self.employeeIDs = employeeIDs
            self.usernames = usernames
        }
    }

    /// Those of the requested events the inbox has.
    public var inbox: Set<InboxKey> = []
    /// The requested employees' states; an employee not here has none.
    public var states: [String: EmployeeState] = [:]
    /// The requested employees' waiting commands, oldest first; an employee not here has none.
    public var waiting: [String: [StoredCommand]] = [:]
    /// The employee linked to each requested username that has a link, by the username in ASCII
    /// lower case. Only usernames in ASCII are answered (``answersUsername(_:)``): stores compare
    /// others by rules of their own.
    public var links: [String: String] = [:]

    public init() {}

    public static func answersUsername(_ username: String) -> Bool { username.utf8.allSatisfy { $0 < 0x80 } }
    public static func linkKey(_ username: String) -> String { String(decoding: username.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self) }
}

/// One operator action: who did what to what, when.
public struct AuditEntry: Sendable, Hashable, Codable {
    public var at: Date
    /// Who: the console login's name (a token's label, a basic-auth user or the proxy's user).
    public var actor: String
    /// `operator` or `readonly`.
    public var role: String
    /// What, for example `dlq.replay`, `holds.approve`, `holds.reject`.
    public var action: String
    /// To what: event ids, command ids.
    public var target: String
    /// The outcome, in words.
    public var detail: String

    public init(at: Date, actor: String, role: String, action: String, target: String, detail: String) {
        self.at = at
        self.actor = actor
        self.role = role
        self.action = action
        self.target = target
        self.detail = detail
    }
}

/// Where a command is in its life.
public enum CommandState: String, Sendable, Codable {
    /// Waiting for its turn.
    case pending
    /// Being applied.
    case running
    /// Failed in a retriable way; waiting for its next attempt.
    case retry
    /// Applied.
    case done
    /// Given up on; its event went to the dead-letter topic.
    case dead
    /// Replaced by a newer command for the same employee before it ran.
    case superseded
    /// Held back by the mass-deprovision guard until an operator approves or rejects it.
    case held
    /// A held command an operator rejected: never applied.
    case rejected
}

/// The Kafka record an event came from, kept so that results and dead letters can refer to it and
/// a dead letter can carry the original bytes.
public struct SourceRecord: Sendable, Hashable, Codable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var timestampMs: Int64?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [MessageHeader]
    public var receivedAt: Date

    public init(topic: String, partition: Int32, offset: Int64, timestampMs: Int64?, key: [UInt8]?, value: [UInt8]?, headers: [MessageHeader], receivedAt: Date) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMs = timestampMs
        self.key = key
        self.value = value
        self.headers = headers
        self.receivedAt = receivedAt
    }
}

/// A command to insert.
public struct NewCommand: Sendable {
    public var command: ProvisioningCommand
    public var source: SourceRecord
    public var state: CommandState
    public var notBefore: Date
    /// A follow-up (such as a scheduled deletion) has no input event of its own, so no result event.
    public var isFollowUp: Bool

    public init(command: ProvisioningCommand, source: SourceRecord, state: CommandState = .pending, notBefore: Date, isFollowUp: Bool = false) {
        self.command = command
        self.source = source
        self.state = state
        self.notBefore = notBefore
        self.isFollowUp = isFollowUp
    }
}

/// A command as stored.
public struct StoredCommand: Sendable, Hashable {
    public var id: Int64
    public var command: ProvisioningCommand
    public var source: SourceRecord
    public var state: CommandState
    public var attempts: Int
    public var nextAttemptAt: Date
    public var firstFailureAt: Date?
    public var lastError: String?
    public var isFollowUp: Bool
    public var createdAt: Date
    /// Duo writes made by earlier attempts that failed part-way.
    public var doneOperations: [DuoOperationKind] = []
    /// The fencing token of the claim that made it `running` (nil when not claimed).
    public var leaseToken: Int64? = nil

    /// The claim this worker holds on it, when it is running.
    public var lease: CommandLease? { leaseToken.map { CommandLease(commandID: id, token: $0) } }

    /// Waiting for a date still ahead (a future `effective_at`, a deletion's grace period), not
    /// for its turn or a retry.
    ///
    /// Stores keep times as seconds since 1970 in a double, and a time read back can come out a
    /// fraction of a microsecond later than it went in: a command stored as due `now` must not
    /// then count as scheduled (a hire ingested with a later termination would be superseded
    /// instead of applied first). Anything due within ``dueTolerance`` is due now.
    public func isScheduled(now: Date) -> Bool { state == .pending && nextAttemptAt.timeIntervalSince(now) > Self.dueTolerance }

    /// How far ahead a waiting command's time may be and still count as due now.
    public static let dueTolerance: TimeInterval = 0.001
}

/// What the outbox holds.
public enum OutboxKind: String, Sendable, Codable, CaseIterable { case result, deadLetter = "dead_letter", audit }

/// A message to publish.
public struct NewOutboxMessage: Sendable {
    public var kind: OutboxKind
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [MessageHeader]
    /// The whole original value, when `value` is a truncated copy (a dead letter too large to publish).
    public var originalValue: [UInt8]?

    public init(kind: OutboxKind, topic: String, key: [UInt8]?, value: [UInt8]?, headers: [MessageHeader], originalValue: [UInt8]? = nil) {
        self.kind = kind
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.originalValue = originalValue
    }
}

/// A message in the outbox.
public struct OutboxMessage: Sendable {
    public var id: Int64
    public var message: NewOutboxMessage
    public var createdAt: Date
}

/// Counts for health and metrics.
public struct StoreStatistics: Sendable, Hashable {
    /// Commands waiting or running (`pending`, `retry`, `running`); finished ones are counted by
    /// the `duo_lifecycle_commands_total` metric instead.
    public var commandsByState: [CommandState: Int]
    public var outboxBacklog: Int
    /// Age of the oldest unsent outbox message, in seconds.
    public var outboxOldestAge: Double
}

/// The JSON form in which both stores keep commands and employees' state (dates as milliseconds).
enum StateCoding {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .millisecondsSince1970
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return d
    }()
}

/// A Duo user linked to an employee: created for them, or found by their username.
public struct DuoLink: Sendable, Hashable {
    public var duoUserID: String
    public var employeeID: String
    public var username: String
    public init(duoUserID: String, employeeID: String, username: String) {
        self.duoUserID = duoUserID
        self.employeeID = employeeID
        self.username = username
    }
}

/// A store that passes every call to another: a wrapper implements only what it changes.
public protocol ForwardingLifecycleStore: LifecycleStore {
    var inner: any LifecycleStore { get }
}

extension ForwardingLifecycleStore {
    public func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T {
        try await inner.write(body)
    }
    public func recoverRunning(owner: String) async throws -> Int { try await inner.recoverRunning(owner: owner) }
    public func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner: String) async throws -> [StoredCommand] {
        try await inner.claimReady(limit: limit, now: now, atLeast: priority, lease: lease, owner: owner)
    }
    public func renewLeases(_ leases: [CommandLease], until: Date, now: Date) async throws -> Set<Int64> {
        try await inner.renewLeases(leases, until: until, now: now)
    }
    public func holdsLease(_ lease: CommandLease, now: Date, margin: Duration) async throws -> Bool {
        try await inner.holdsLease(lease, now: now, margin: margin)
    }
    public func nextReadyAt() async throws -> Date? { try await inner.nextReadyAt() }
    public func unsentOutbox(limit: Int, now: Date, claimFor: Duration) async throws -> [OutboxMessage] {
        try await inner.unsentOutbox(limit: limit, now: now, claimFor: claimFor)
    }
    public func markSent(_ ids: [Int64], at: Date) async throws { try await inner.markSent(ids, at: at) }
    public func park(_ id: Int64, reason: String, at: Date) async throws { try await inner.park(id, reason: reason, at: at) }
    public func purgeSent(before cutoff: Date) async throws -> Int { try await inner.purgeSent(before: cutoff) }
    public func purgeFinished(before cutoff: Date) async throws -> Int { try await inner.purgeFinished(before: cutoff) }
    public func statistics(now: Date) async throws -> StoreStatistics { try await inner.statistics(now: now) }
    public func deadLetterOriginal(topic: String, partition: Int32, offset: Int64) async throws -> [UInt8]? {
        try await inner.deadLetterOriginal(topic: topic, partition: partition, offset: offset)
    }
    public func withExclusiveLock<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        try await inner.withExclusiveLock(name, body)
    }
    public func allCommands() async throws -> [StoredCommand] { try await inner.allCommands() }
    public func allEmployeeStates() async throws -> [EmployeeState] { try await inner.allEmployeeStates() }
    public func allDuoLinks() async throws -> [DuoLink] { try await inner.allDuoLinks() }
    public func auditLog(limit: Int) async throws -> [AuditEntry] { try await inner.auditLog(limit: limit) }
    public func commandContext(employeeID: String) async throws -> CommandContext { try await inner.commandContext(employeeID: employeeID) }
    public func close() async { await inner.close() }
    public var ingestBatchSize: Int { inner.ingestBatchSize }
}
