import Foundation
import GRDB
import Lifecycle
import LifecycleStore
import Synchronization
import Testing
import TestSupport

/// The store's contract, on SQLite and on PostgreSQL alike (each test runs on both), then what
/// only one of them has: SQLite's file settings, PostgreSQL's replicas competing for one table.
@Suite("Store")
struct StoreTests {
    static func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)/nested/state.sqlite").path
    }

    static func command(_ employee: String, priority: CommandPriority = .normal, event: String = UUID().uuidString) -> NewCommand {
        let desired = DesiredDuoState(employeeID: employee, profile: EmployeeProfile(username: employee.lowercased()))
        let c = ProvisioningCommand(employeeID: employee, desired: desired, priority: priority, eventID: event, eventSource: "urn:t", eventType: .hired)
        let source = SourceRecord(topic: "t", partition: 0, offset: 1, timestampMs: 1, key: nil, value: [1, 2], headers: [], receivedAt: Date())
        return NewCommand(command: c, source: source, notBefore: Date(timeIntervalSince1970: 0))
    }

    /// A store call tried again when it fails for want of the database, as the worker does: on a
    /// loaded machine the server may end a transaction whose task was starved of CPU.
    static func retryingUnavailable<T>(_ body: () async throws -> T) async throws -> T {
        for _ in 0..<4 {
            do { return try await body() } catch is StoreUnavailable { continue }
        }
        return try await body()
    }

    // MARK: Both stores

    @Test("An ingest's rows written together: every inbox entry, each employee's last state, and the commands in the order given, across more rows than one statement holds",
          arguments: StoreKind.allCases)
    func ingestedRowsWrittenTogether(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        var rows = IngestRows()
        let at = Date(timeIntervalSince1970: 1_790_000_000)
        for i in 0..<150 {
            rows.inbox.append(.init(source: "urn:t", id: "e\(i)", topic: "t", partition: 2, offset: Int64(i), receivedAt: at))
            // Employees E0 to E119; the last 30 rows are second states of E0 to E29.
            let employee = "E\(i % 120)"
            var state = EmployeeState(employeeID: employee)
            state.desired.profile.firstName = i < 120 ? "first" : "second"
            rows.states.append(state)
            var command = Self.command(employee, event: "e\(i)")
            command.source.headers = [MessageHeader(name: "ce_id", value: Array("e\(i)".utf8)), MessageHeader(name: "empty", value: nil)]
            rows.commands.append(command)
        }
        // A replayed event recorded twice in one batch.
        rows.inbox.append(.init(source: "urn:t", id: "e7", topic: "t", partition: 2, offset: 999, receivedAt: at))
        let written = rows
        try await Self.retryingUnavailable { try await store.write { try await $0.insertIngested(written) } }

        let commands = try await store.allCommands().sorted { $0.id < $1.id }
        #expect(commands.map(\.command.eventID) == (0..<150).map { "e\($0)" })
        #expect(commands.allSatisfy { $0.state == .pending && $0.source.headers.count == 2 && $0.source.headers[1].value == nil })
        #expect(commands.last?.source.headers.first?.value == Array("e149".utf8))
        try await Self.retryingUnavailable {
            try await store.write { tx in
                for i in 0..<150 { #expect(try await tx.inboxContains(source: "urn:t", id: "e\(i)")) }
                for i in 0..<120 {
                    let state = try await tx.employeeState("E\(i)")
                    #expect(state?.desired.profile.firstName == (i < 30 ? "second" : "first"), "E\(i)")
                }
            }
        }
        await store.close()
    }


    @Test("Leases and fencing: an expired claim is taken again, ahead of its employee's newer commands, under a new token; the old holder can neither renew, nor write to Duo, nor record an outcome",
          arguments: StoreKind.allCases)
    func leasesAndFencing(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        try await store.write { try await $0.insertCommand(Self.command("A")) }
        let now = Date()
        let first = try await store.claimReady(limit: 5, now: now, atLeast: .normal, lease: .seconds(60), owner: "w1")
        let old = try #require(first.first?.lease)
        #expect(first.count == 1)
        // The holder is paused; a termination for A arrives meanwhile.
        try await store.write { try await $0.insertCommand(Self.command("A", priority: .termination, event: "A-leaves")) }
        #expect(try await store.claimReady(limit: 5, now: now.addingTimeInterval(30), atLeast: .normal, lease: .seconds(60), owner: "w2").isEmpty,
                "within the lease nothing of A runs")
        #expect(try await store.holdsLease(old, now: now.addingTimeInterval(30), margin: .seconds(10)))
        #expect(try await !store.holdsLease(old, now: now.addingTimeInterval(55), margin: .seconds(10)), "too little lease left to start a Duo write")
        let again = try await store.claimReady(limit: 5, now: now.addingTimeInterval(61), atLeast: .normal, lease: .seconds(60), owner: "w2")
        #expect(again.map(\.id) == [first[0].id], "the expired command is claimable again, ahead of A's newer one")
        let new = try #require(again.first?.lease)
        #expect(new.token > old.token)
        // The old holder wakes up: every door is shut.
        #expect(try await !store.holdsLease(old, now: now.addingTimeInterval(62), margin: .zero))
        #expect(try await store.renewLeases([old], until: now.addingTimeInterval(200), now: now.addingTimeInterval(62)) == [old.commandID])
        await #expect(throws: LeaseLost.self) {
            try await store.write { tx in
                try await tx.assertHolds(old)
                try await tx.updateCommand(id: old.commandID, state: .done, attempts: 1, nextAttemptAt: nil, firstFailureAt: nil, lastError: nil, now: Date())
            }
        }
        #expect(try await store.allCommands().first { $0.id == old.commandID }?.state == .running, "the fenced outcome was not recorded")
        // The new holder renews and records.
        #expect(try await store.renewLeases([new], until: now.addingTimeInterval(200), now: now.addingTimeInterval(62)).isEmpty)
        #expect(try await store.claimReady(limit: 5, now: now.addingTimeInterval(150), atLeast: .normal, lease: .seconds(60), owner: "w3").isEmpty)
        try await store.write { tx in
            try await tx.assertHolds(new)
            try await tx.updateCommand(id: new.commandID, state: .done, attempts: 1, nextAttemptAt: nil, firstFailureAt: nil, lastError: nil, now: Date())
        }
        await store.close()
    }

    @Test("Retention: inbox rows and finished commands older than the retention go; waiting commands, employees and links stay",
          arguments: StoreKind.allCases)
    func inboxAndCommandRetention(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        let old = Date(timeIntervalSinceNow: -40 * 86400)
        try await store.write { tx in
            try await tx.recordInbox(source: "urn:t", id: "old", topic: "t", partition: 0, offset: 1, receivedAt: old)
            try await tx.recordInbox(source: "urn:t", id: "new", topic: "t", partition: 0, offset: 2, receivedAt: Date())
            let done = try await tx.insertCommand(Self.command("A"))
            try await tx.updateCommand(id: done, state: .done, attempts: 1, nextAttemptAt: nil, firstFailureAt: nil, lastError: nil, now: old)
            try await tx.insertCommand(Self.command("B"))
            try await tx.saveEmployeeState(EmployeeState(employeeID: "A"))
            _ = try await tx.claimDuoUser("DUA", username: "a", employeeID: "A")
        }
        #expect(try await store.purgeFinished(before: Date(timeIntervalSinceNow: -30 * 86400)) == 2)
        let (oldKept, newKept, state, links) = try await store.write { tx in
            (try await tx.inboxContains(source: "urn:t", id: "old"), try await tx.inboxContains(source: "urn:t", id: "new"),
             try await tx.employeeState("A"), try await tx.linkedDuoUserIDs(employeeID: "A"))
        }
        #expect(!oldKept && newKept)
        #expect(state != nil && links == ["DUA"], "ordering and identity are kept")
        #expect(try await store.allCommands().map(\.command.employeeID) == ["B"])
        await store.close()
    }

    @Test("Claims take terminations first, then oldest, one command per employee, none whose employee is running; a restart takes back only its own",
          arguments: StoreKind.allCases)
    func claimOrder(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        try await store.write { tx in
            try await tx.insertCommand(Self.command("A"))
            try await tx.insertCommand(Self.command("B"))
            try await tx.insertCommand(Self.command("A", event: "second-A"))
            try await tx.insertCommand(Self.command("C", priority: .termination))
        }
        let first = try await store.claimReady(limit: 2, now: Date(), atLeast: .normal, lease: .seconds(60), owner: "w1")
        #expect(first.map(\.command.employeeID) == ["C", "A"])
        let second = try await store.claimReady(limit: 5, now: Date(), atLeast: .normal, lease: .seconds(60), owner: "w1")
        #expect(second.map(\.command.employeeID) == ["B"], "A already has a command running")
        if kind == .postgres {
            #expect(try await store.recoverRunning(owner: "w2") == 0, "another replica's running commands are left alone")
        }
        #expect(try await store.recoverRunning(owner: "w1") == 3)
        #expect(try await store.claimReady(limit: 5, now: Date()).count == 3)
        await store.close()
    }

    @Test("Sent outbox rows are deleted after the retention period; unsent ones never", arguments: StoreKind.allCases)
    func outboxRetention(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        try await store.write { tx in
            for i in 0..<3 { try await tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: nil, value: [UInt8(i)], headers: [])) }
        }
        let unsent = try await store.unsentOutbox(limit: 10)
        #expect(unsent.count == 3)
        try await store.markSent([unsent[0].id], at: Date(timeIntervalSinceNow: -7200))
        try await store.markSent([unsent[1].id], at: Date())
        #expect(try await store.purgeSent(before: Date(timeIntervalSinceNow: -3600)) == 1)
        // A claim not confirmed by markSent expires, and the row is offered again.
        #expect(try await store.unsentOutbox(limit: 10, now: Date().addingTimeInterval(60), claimFor: .seconds(30)).map(\.id) == [unsent[2].id])
        #expect(try await store.statistics(now: Date()).outboxBacklog == 1)
        await store.close()
    }

    @Test("Marking many outbox rows sent at once marks exactly those", arguments: StoreKind.allCases)
    func markManySent(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        for chunk in 0..<6 {
            try await Self.retryingUnavailable {
                try await store.write { tx in
                    for i in 0..<100 { try await tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: nil, value: [UInt8(chunk), UInt8(i)], headers: [])) }
                }
            }
        }
        let unsent = try await Self.retryingUnavailable { try await store.unsentOutbox(limit: 600) }
        #expect(unsent.count == 600)
        // Every row but every seventh: more ids than one statement of placeholders held before.
        let sent = unsent.enumerated().filter { $0.offset % 7 != 3 }.map(\.element.id)
        try await Self.retryingUnavailable { try await store.markSent(sent, at: Date()) }
        let left = try await Self.retryingUnavailable { try await store.unsentOutbox(limit: 1_000, now: Date().addingTimeInterval(60), claimFor: .seconds(30)) }
        #expect(left.map(\.id) == unsent.enumerated().filter { $0.offset % 7 == 3 }.map(\.element.id))
        await store.close()
    }

    @Test("A command stored as due now reads back as due now, never as scheduled: a hire ingested with a later termination keeps its turn whatever the clock's last digits",
          arguments: StoreKind.allCases)
    func commandDueNowIsNotScheduled(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        // Times are stored as seconds since 1970 in a double; read back, some come out a fraction
        // of a microsecond later than they went in. 400 instants make that certain to show.
        let start = Date()
        let instants = (0..<400).map { start.addingTimeInterval(Double($0) * 0.001_37) }
        try await Self.retryingUnavailable {
            try await store.write { tx in
                for (i, instant) in instants.enumerated() {
                    var c = Self.command("E\(i)")
                    c.notBefore = instant
                    try await tx.insertCommand(c)
                }
            }
        }
        var scheduled: [String] = []
        let read = try await Self.retryingUnavailable {
            try await store.write { tx in try await (0..<instants.count).asyncMap { try await tx.waitingCommands(employeeID: "E\($0)") } }
        }
        for (i, instant) in instants.enumerated() {
            let waiting = read[i]
            #expect(waiting.count == 1)
            if waiting.contains(where: { $0.isScheduled(now: instant) }) { scheduled.append("E\(i)") }
            #expect(waiting.allSatisfy { $0.isScheduled(now: instant.addingTimeInterval(-1)) }, "a second earlier, it was still ahead")
        }
        #expect(scheduled.isEmpty, "due at the instant they were stored for, yet read back as scheduled: \(scheduled.prefix(10))")
        await store.close()
    }

    @Test("A transaction that throws leaves nothing behind", arguments: StoreKind.allCases)
    func rollback(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await store.write { tx in
                try await tx.insertCommand(Self.command("A"))
                try await tx.saveEmployeeState(EmployeeState(employeeID: "A"))
                throw Boom()
            }
        }
        #expect(try await store.allCommands().isEmpty)
        #expect(try await store.write { try await $0.employeeState("A") } == nil)
        await store.close()
    }

    @Test("A command's context (state, waiting commands oldest first, links newest first) is read from what is committed, without waiting for a write transaction that is open",
          arguments: StoreKind.allCases)
    func commandContextReadsBesideAnOpenWrite(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        var state = EmployeeState(employeeID: "A", duoUserID: "DU-old")
        state.knownUsernames = ["a"]
        let committed = state
        let ids = try await store.write { tx in
            try await tx.saveEmployeeState(committed)
            let first = try await tx.insertCommand(Self.command("A"))
            let second = try await tx.insertCommand(Self.command("A"))
            _ = try await tx.insertCommand(Self.command("B"))
            _ = try await tx.claimDuoUser("DU1", username: "a", employeeID: "A")
            _ = try await tx.claimDuoUser("DU2", username: "a.b", employeeID: "A")
            return [first, second]
        }
        // A write transaction holds the writer, with a change not yet committed, until the read is done.
        let read = AsyncStream<CommandContext>.makeStream()
        let entered = AsyncStream<Void>.makeStream()
        let writer = Task {
            try await store.write { tx in
                var changed = committed
                changed.duoUserID = "DU-uncommitted"
                try await tx.saveEmployeeState(changed)
                _ = try await tx.insertCommand(Self.command("A"))
                entered.continuation.yield()
                for await _ in read.stream { break }
            }
        }
        for await _ in entered.stream { break }
        let context = try await store.commandContext(employeeID: "A")
        read.continuation.yield(context)
        read.continuation.finish()
        try await writer.value
        #expect(context.state == committed)
        #expect(context.waiting.map(\.id) == ids)
        #expect(context.linkedDuoUserIDs.count == 2 && Set(context.linkedDuoUserIDs) == ["DU1", "DU2"])
        // After the commit, the change is read.
        let after = try await store.commandContext(employeeID: "A")
        #expect(after.state?.duoUserID == "DU-uncommitted" && after.waiting.count == 3)
        #expect(try await store.commandContext(employeeID: "nobody").state == nil)
        await store.close()
    }

    @Test("Identity links: a Duo user belongs to one employee; usernames match case-insensitively", arguments: StoreKind.allCases)
    func identityLinks(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        let (first, second, again, byName) = try await store.write { tx in
            (try await tx.claimDuoUser("DU1", username: "Ann", employeeID: "E1"), try await tx.claimDuoUser("DU1", username: "ann", employeeID: "E2"),
             try await tx.claimDuoUser("DU1", username: "ann.b", employeeID: "E1"), try await tx.employeeLinked(toUsername: "ANN.B"))
        }
        #expect(first == nil && second == "E1" && again == nil)
        #expect(byName == "E1", "the rename followed the link")
        await store.close()
    }

    @Test("A dead letter's whole value is found by where its original record was", arguments: StoreKind.allCases)
    func deadLetterOriginal(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        let whole = Array(repeating: UInt8(ascii: "x"), count: 5000)
        try await store.write { tx in
            try await tx.enqueue(NewOutboxMessage(kind: .deadLetter, topic: "dlq", key: nil, value: Array(whole.prefix(10)), headers: [
                MessageHeader("kafka_dlt-original-topic", "t"), MessageHeader("kafka_dlt-original-partition", "3"),
                MessageHeader("kafka_dlt-original-offset", "42"),
            ], originalValue: whole))
        }
        let unsent = try await store.unsentOutbox(limit: 5)
        try await store.markSent(unsent.map(\.id), at: Date())
        #expect(try await store.deadLetterOriginal(topic: "t", partition: 3, offset: 42) == whole)
        #expect(try await store.deadLetterOriginal(topic: "t", partition: 3, offset: 43) == nil)
        await store.close()
    }

    // MARK: SQLite

    @Test("SQLite: the database is created with its folders, in WAL mode, and reopens with its data")
    func walAndReopen() async throws {
        let path = Self.tempPath()
        let store = try SQLiteLifecycleStore(path: path)
        try await store.write { try await $0.insertCommand(Self.command("A")) }
        let mode = try await DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        #expect(try await SQLiteLifecycleStore(path: path).allCommands().count == 1)
    }

    @Test("SQLite host crash durability: every commit is synced to disk (synchronous = FULL), so Kafka never holds an offset the store lost")
    func hostCrashDurability() async throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try await store.write { try await $0.insertCommand(Self.command("A")) }
        #expect(try await store.synchronousSetting() == "FULL")
    }

    @Test("SQLite statistics cost the same at 10 million rows as at 10 thousand: every query they run is answered from an index")
    func statisticsUseIndexes() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        for sql in SQLiteLifecycleStore.statisticsQueries {
            let plan = try store.queryPlan(sql)
            #expect(!plan.isEmpty)
            // A SEARCH is an index lookup; a SCAN is allowed only over the partial indexes that hold
            // live rows alone (waiting or running commands, unsent outbox rows), never a whole table.
            let live = ["commands_waiting", "commands_running", "outbox_unsent"]
            for step in plan {
                #expect(step.hasPrefix("SEARCH") || live.contains { step.hasSuffix("INDEX \($0)") || step.contains("INDEX \($0) ") }, "\(sql): \(step)")
            }
        }
    }

    @Test("SQLite claims cost the same whatever the backlog: each query walks an index in claim order and stops, with no sort of the waiting commands")
    func claimsWalkAnIndex() async throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        let queries = SQLiteLifecycleStore.claimQueries
        for sql in [queries.waiting, queries.nextDue] {
            let plan = try store.queryPlan(sql)
            #expect(plan.first?.hasPrefix("SEARCH") == true && plan.first?.contains("INDEX commands_waiting") == true, "\(sql): \(plan)")
            #expect(!plan.contains { $0.hasPrefix("SCAN") || $0.contains("TEMP B-TREE") }, "\(sql): \(plan)")
        }
        // Expired claims are looked for among running commands only (a handful), and may be sorted.
        let expired = try store.queryPlan(queries.expired)
        #expect(expired.first?.contains("INDEX commands_running") == true && !expired.contains { $0.hasPrefix("SCAN") }, "\(expired)")
        // And what they claim is still right: terminations first, then oldest, one per employee.
        let now = Date()
        try await store.write { tx in
            // Enough to order, few enough not to hold a thread of the tests running beside it.
            for i in 0..<900 {
                var c = Self.command("W\(i % 300)", priority: i % 7 == 3 ? .termination : .normal)
                c.notBefore = now.addingTimeInterval(Double(i) * 0.001 - 30)
                try await tx.insertCommand(c)
            }
        }
        let claimed = try await store.claimReady(limit: 8, now: now, atLeast: .normal, lease: .seconds(60), owner: "w")
        #expect(claimed.map(\.command.priority) == Array(repeating: .termination, count: 8))
        #expect(Set(claimed.map(\.command.employeeID)).count == 8)
        #expect(claimed.map(\.nextAttemptAt) == claimed.map(\.nextAttemptAt).sorted())
        #expect(try await store.nextReadyAt().map { abs($0.timeIntervalSince(now.addingTimeInterval(-30))) < 0.01 } == true)
        await store.close()
    }

    @Test("SQLite: transactions from many tasks at once are serialised, none lost")
    func concurrentTransactions() async throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    try await store.write { tx in
                        try await tx.insertCommand(Self.command("E\(i)"))
                        try await Task.sleep(for: .milliseconds(2))  // a suspension inside the transaction
                        try await tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: nil, value: [UInt8(i)], headers: []))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.allCommands().count == 20)
        #expect(try await store.unsentOutbox(limit: 100).count == 20)
    }

    // MARK: PostgreSQL: replicas sharing the store

    @Test("PostgreSQL: replicas starting at once migrate the schema once")
    func concurrentMigrations() async throws {
        let database = try await TestPostgres.freshDatabase()
        let stores = try await withThrowingTaskGroup(of: PostgresLifecycleStore.self) { group in
            for _ in 0..<4 { group.addTask { try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 4)
        #expect(try await stores[0].appliedMigrations() == PostgresLifecycleStore.migrations.map(\.version))
        for store in stores { await store.close() }
    }

    @Test("SQLite named locks are per name: a long holder of one (a scheduled reconcile) does not block another (a group creation); the same name waits")
    func sqliteNamedLocksArePerName() async throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        let release = AsyncStream<Void>.makeStream()
        let holding = AsyncStream<Void>.makeStream()
        let reconcile = Task {
            try await store.withExclusiveLock("reconcile") {
                holding.continuation.yield()
                for await _ in release.stream { break }
            }
        }
        for await _ in holding.stream { break }
        // Another name goes ahead at once (checked without waiting on it, so a failure cannot hang).
        let otherDone = Mutex(false)
        let other = Task { try await store.withExclusiveLock("duo-group:Engineering") {}; otherDone.withLock { $0 = true } }
        let deadline = ContinuousClock.now + .seconds(2)
        while !otherDone.withLock({ $0 }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(otherDone.withLock { $0 }, "a different name is not blocked")
        // The same name waits for the holder.
        let second = Task { () -> ContinuousClock.Instant in
            try await store.withExclusiveLock("reconcile") {}
            return ContinuousClock.now
        }
        try await Task.sleep(for: .milliseconds(300))
        let releasedAt = ContinuousClock.now
        release.continuation.yield()
        try await reconcile.value
        #expect(try await second.value >= releasedAt, "the same name waits until the holder releases it")
        try await other.value
        await store.close()
    }

    @Test("PostgreSQL named lock: holders on two replicas never overlap, one that works past a renewal period keeps it, and a released lock is free at once")
    func namedLockIsExclusive() async throws {
        let database = try await TestPostgres.freshDatabase()
        let replicas = [try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger),
                        try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)]
        struct Tally { var inside = 0; var most = 0; var entries = 0 }
        final class Shared: Sendable { let tally = Mutex(Tally()) }
        let shared = Shared()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<6 {
                let store = replicas[worker % 2]
                group.addTask {
                    for round in 0..<3 {
                        try await store.withExclusiveLock("duo-group:Engineering") {
                            shared.tally.withLock { $0.inside += 1; $0.most = max($0.most, $0.inside); $0.entries += 1 }
                            // One holder stays past a renewal period (a third of the lease).
                            let hold: Duration = worker == 0 && round == 0 ? PostgresLifecycleStore.namedLockLease / 3 + .seconds(1) : .milliseconds(5)
                            try await Task.sleep(for: hold)
                            shared.tally.withLock { $0.inside -= 1 }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let tally = shared.tally.withLock { $0 }
        #expect(tally.entries == 18)
        #expect(tally.most == 1, "holders at once: \(tally.most)")
        // Released: the other replica takes it without waiting for the lease to run out.
        let started = ContinuousClock.now
        try await replicas[1].withExclusiveLock("duo-group:Engineering") {}
        #expect(ContinuousClock.now - started < .seconds(2))
        for store in replicas { await store.close() }
    }

    @Test("PostgreSQL claims cost the same whatever the backlog: each query walks an index in claim order and stops, with no sort of the waiting commands")
    func postgresClaimsWalkAnIndex() async throws {
        let store = try await TestPostgres.freshStore()
        let now = Date()
        try await Self.retryingUnavailable {
            try await store.write { tx in
                for i in 0..<3_000 {
                    var c = Self.command("P\(i)", priority: i % 5 == 4 ? .termination : .normal)
                    c.notBefore = now.addingTimeInterval(Double(i) * 0.001 - 30)
                    try await tx.insertCommand(c)
                }
            }
        }
        let waiting = try await store.claimPlan(PostgresLifecycleStore.claimQueries.waiting)
        #expect(waiting.contains { $0.contains("Index Scan using commands_ready") } && !waiting.contains { $0.contains("Sort") || $0.contains("Seq Scan on commands c") },
                "\(waiting.joined(separator: "\n"))")
        let expired = try await store.claimPlan(PostgresLifecycleStore.claimQueries.expired)
        // Expired claims are looked for among running commands only (a partial index of them), and may be sorted.
        #expect(expired.contains { $0.contains("commands_running_lease") || $0.contains("commands_one_running") } && !expired.contains { $0.contains("Seq Scan") },
                "\(expired.joined(separator: "\n"))")
        let next = try await store.claimPlan(PostgresLifecycleStore.nextDueSQL)
        #expect(next.contains { $0.contains("Index Only Scan using commands_ready") } && !next.contains { $0.contains("Seq Scan") }, "\(next.joined(separator: "\n"))")
        // And the claim still takes terminations first, oldest first.
        let claimed = try await store.claimReady(limit: 8, now: now, atLeast: .normal, lease: .seconds(60), owner: "w")
        #expect(claimed.map(\.command.priority) == Array(repeating: .termination, count: 8))
        #expect(claimed.map(\.nextAttemptAt) == claimed.map(\.nextAttemptAt).sorted())
        #expect(try await store.nextReadyAt().map { abs($0.timeIntervalSince(now.addingTimeInterval(-29.995))) < 0.01 } == true)
        await store.close()
    }

    @Test("PostgreSQL competing consumers: four claimers on two replicas run every command exactly once, never two of one employee at a time")
    func competingClaims() async throws {
        let database = try await TestPostgres.freshDatabase()
        let replicas = [try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger),
                        try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)]
        try await Self.retryingUnavailable {
            try await replicas[0].write { tx in
                for round in 0..<4 {
                    for e in 0..<50 { try await tx.insertCommand(Self.command("E\(e)", priority: round == 3 && e < 10 ? .termination : .normal)) }
                }
            }
        }
        struct Tally { var running = Set<String>(); var overlaps: [String] = []; var applied: [Int64] = []; var retried: [String] = [] }
        final class Shared: Sendable { let tally = Mutex(Tally()) }
        let shared = Shared()
        // As the dispatcher does, a store call that fails for want of the database (on a loaded
        // machine the server may end a transaction whose process was starved of CPU) is tried again.
        @Sendable func retryingUnavailable<T>(_ shared: Shared, _ body: () async throws -> T) async throws -> T {
            for _ in 0..<4 {
                do { return try await body() } catch let error as StoreUnavailable {
                    shared.tally.withLock { $0.retried.append(error.description) }
                }
            }
            return try await body()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for claimer in 0..<4 {
                let store = replicas[claimer % 2]
                group.addTask {
                    var idle = 0
                    while idle < 5 {
                        let claimed = try await retryingUnavailable(shared) {
                            try await store.claimReady(limit: 4, now: Date(), atLeast: .normal, lease: .seconds(30), owner: "claimer-\(claimer)")
                        }
                        if claimed.isEmpty { idle += 1; try await Task.sleep(for: .milliseconds(20)); continue }
                        idle = 0
                        for command in claimed {
                            shared.tally.withLock {
                                if !$0.running.insert(command.command.employeeID).inserted { $0.overlaps.append(command.command.employeeID) }
                            }
                        }
                        try await Task.sleep(for: .milliseconds(3))
                        for command in claimed {
                            let lease = try #require(command.lease)
                            shared.tally.withLock { $0.running.remove(command.command.employeeID); $0.applied.append(command.id) }
                            try await retryingUnavailable(shared) {
                                try await store.write { tx in
                                    try await tx.assertHolds(lease)
                                    try await tx.updateCommand(id: command.id, state: .done, attempts: 1, nextAttemptAt: nil, firstFailureAt: nil,
                                                               lastError: nil, now: Date())
                                }
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let result = shared.tally.withLock { $0 }
        #expect(result.overlaps.isEmpty, "employees run twice at once: \(result.overlaps)")
        #expect(result.applied.count == 200 && Set(result.applied).count == 200,
                "\(result.applied.count) applications of \(Set(result.applied).count) commands; store calls tried again: \(result.retried)")
        #expect(try await replicas[0].allCommands().allSatisfy { $0.state == .done })
        for store in replicas { await store.close() }
    }

    @Test("PostgreSQL: relays on two replicas take different outbox rows")
    func outboxClaims() async throws {
        let database = try await TestPostgres.freshDatabase()
        let a = try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)
        let b = try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)
        try await a.write { tx in
            for i in 0..<100 { try await tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: nil, value: [UInt8(i)], headers: [])) }
        }
        async let fromA = a.unsentOutbox(limit: 60)
        async let fromB = b.unsentOutbox(limit: 60)
        let (x, y) = try await (fromA, fromB)
        #expect(Set(x.map(\.id)).isDisjoint(with: y.map(\.id)))
        #expect(x.count + y.count == 100)
        await a.close()
        await b.close()
    }

    @Test("PostgreSQL ordering is shared: two replicas changing one employee at once are serialised, so neither change is lost")
    func employeeChangesSerialised() async throws {
        let database = try await TestPostgres.freshDatabase()
        let a = try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)
        let b = try await PostgresLifecycleStore(configuration: database, logger: TestPostgres.quietLogger)
        try await a.write { try await $0.saveEmployeeState(EmployeeState(employeeID: "E")) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (store, name) in [(a, "from-a"), (b, "from-b")] {
                group.addTask {
                    try await store.write { tx in
                        var state = try #require(try await tx.employeeState("E"))
                        try await Task.sleep(for: .milliseconds(200))  // the other replica tries meanwhile
                        state.knownUsernames = (state.knownUsernames ?? []) + [name]
                        try await tx.saveEmployeeState(state)
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await a.write { try await $0.employeeState("E") }
        #expect(Set(final?.knownUsernames ?? []) == ["from-a", "from-b"])
        await a.close()
        await b.close()
    }

    @Test("PostgreSQL restart under load: transactions in flight when it stops and calls made while it is down fail or finish once it is back; none hangs",
          .timeLimit(.minutes(2)))
    func callsDuringOutageDoNotHang() async throws {
        let server = try await PrivatePostgres()
        let store = try await PostgresLifecycleStore(configuration: try PostgresStoreConfiguration(url: server.url), logger: TestPostgres.quietLogger)
        try await store.write { try await $0.insertCommand(Self.command("A")) }
        final class Outcomes: Sendable { let done = Mutex(0); let stop = Mutex(false) }
        let outcomes = Outcomes()
        // Twelve tasks busy with transactions when the server stops, and still calling while it is down.
        let calls = (0..<12).map { i in
            Task {
                var n = 0
                while !outcomes.stop.withLock({ $0 }) {
                    n += 1
                    let name = "E\(i)-\(n)"
                    _ = try? await store.write { tx in
                        _ = try await tx.employeeState("E\(i)")
                        try await tx.saveEmployeeState(EmployeeState(employeeID: name))
                    }
                }
                outcomes.done.withLock { $0 += 1 }
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        try await server.stop()
        try await Task.sleep(for: .seconds(3))
        try await server.start()
        outcomes.stop.withLock { $0 = true }
        // Each call left finishes: at the latest when the store's operation deadline (30 s) passes.
        let deadline = ContinuousClock.now + .seconds(60)
        while outcomes.done.withLock({ $0 }) < calls.count && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(outcomes.done.withLock { $0 } == calls.count, "calls still waiting 60 s after the database came back")
        #expect(try await store.allCommands().count == 1, "the store works again")
        await store.close()
        await server.destroy()
    }

    @Test("PostgreSQL: a transaction the server ends for sitting idle (its process starved of CPU) fails with the server's reason, not after the store's 30 s deadline; the store works after",
          .timeLimit(.minutes(1)))
    func idleTransactionEndedByServerFailsAtOnce() async throws {
        let store = try await TestPostgres.freshStore()
        do {
            try await store.write { tx in
                _ = try await tx.employeeState("A")
                try await Task.sleep(for: PostgresLifecycleStore.idleInTransactionTimeout + .seconds(1.5))
                try await tx.saveEmployeeState(EmployeeState(employeeID: "A"))
            }
            Issue.record("a transaction idle past the server's timeout committed")
        } catch {
            // PostgresNIO sent the next statement on the closed connection and waited forever;
            // only the store's operation deadline ended it ("No answer from PostgreSQL within 30 s").
            #expect(!"\(error)".contains("No answer"), "\(error)")
            #expect("\(error)".contains("closed this connection"), "\(error)")
        }
        #expect(try await store.write { try await $0.employeeState("A") } == nil, "the idle transaction's write was rolled back")
        try await store.write { try await $0.saveEmployeeState(EmployeeState(employeeID: "B")) }
        #expect(try await store.write { try await $0.employeeState("B") } != nil)
        await store.close()
    }

    @Test("PostgreSQL: a store URL names its parts, takes libpq's sslmode, and keeps its password out of logs")
    func storeURL() throws {
        let c = try PostgresStoreConfiguration(url: "postgres://duo:s3cr%40t@db.internal:6432/lifecycle?sslmode=verify-full&sslrootcert=/ca.pem")
        #expect(c.host == "db.internal" && c.port == 6432 && c.username == "duo" && c.password == "s3cr@t" && c.database == "lifecycle")
        #expect(c.tls == .verifyFull && c.caFile == "/ca.pem")
        #expect(!c.redactedDescription.contains("s3cr"))
        #expect(throws: StoreURLError.self) { try PostgresStoreConfiguration(url: "postgres://db.internal/lifecycle") }
        #expect(throws: StoreURLError.self) { try PostgresStoreConfiguration(url: "postgres://duo@db.internal/") }
        #expect(throws: StoreURLError.self) { try PostgresStoreConfiguration(url: "postgres://duo@db/x?sslmode=sometimes") }
    }
}
