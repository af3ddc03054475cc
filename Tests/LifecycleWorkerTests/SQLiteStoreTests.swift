import Foundation
import GRDB
import Lifecycle
import LifecycleStore
import Testing

@Suite("SQLite store")
struct SQLiteStoreTests {
    static func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)/nested/state.sqlite").path
    }

    static func command(_ employee: String, priority: CommandPriority = .normal, event: String = UUID().uuidString) -> NewCommand {
        let desired = DesiredDuoState(employeeID: employee, profile: EmployeeProfile(username: employee.lowercased()))
        let c = ProvisioningCommand(employeeID: employee, desired: desired, priority: priority, eventID: event, eventSource: "urn:t", eventType: .hired)
        let source = SourceRecord(topic: "t", partition: 0, offset: 1, timestampMs: 1, key: nil, value: [1, 2], headers: [], receivedAt: Date())
        return NewCommand(command: c, source: source, notBefore: Date(timeIntervalSince1970: 0))
    }

    @Test("The database is created with its folders, in WAL mode, and reopens with its data")
    func walAndReopen() throws {
        let path = Self.tempPath()
        let store = try SQLiteLifecycleStore(path: path)
        try store.write { try $0.insertCommand(Self.command("A")) }
        let mode = try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        #expect(try SQLiteLifecycleStore(path: path).allCommands().count == 1)
    }

    @Test("Host crash durability: every commit is synced to disk (synchronous = FULL), so Kafka never holds an offset the store lost")
    func hostCrashDurability() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try store.write { try $0.insertCommand(Self.command("A")) }
        #expect(try store.synchronousSetting() == "FULL")
    }

    @Test("Leases: a command left running by a failed store write is claimable again once its lease expires, before its employee's newer commands")
    func leases() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try store.write { try $0.insertCommand(Self.command("A")) }
        let now = Date()
        let first = try store.claimReady(limit: 5, now: now, lease: .seconds(60))
        #expect(first.count == 1)
        // Recording its outcome failed: the command stays running. A termination for A arrives.
        try store.write { try $0.insertCommand(Self.command("A", priority: .termination, event: "A-leaves")) }
        #expect(try store.claimReady(limit: 5, now: now.addingTimeInterval(30), lease: .seconds(60)).isEmpty, "within the lease nothing of A runs")
        let again = try store.claimReady(limit: 5, now: now.addingTimeInterval(61), lease: .seconds(60))
        #expect(again.map(\.id) == [first[0].id], "the expired command is claimable again, ahead of A's newer one")
        // A lease renewed in time keeps it.
        try store.renewLeases([first[0].id], until: now.addingTimeInterval(200))
        #expect(try store.claimReady(limit: 5, now: now.addingTimeInterval(150), lease: .seconds(60)).isEmpty)
    }

    @Test("Retention: inbox rows and finished commands older than the retention go; waiting commands, employees and links stay")
    func inboxAndCommandRetention() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        let old = Date(timeIntervalSinceNow: -40 * 86400)
        try store.write { tx in
            try tx.recordInbox(source: "urn:t", id: "old", topic: "t", partition: 0, offset: 1, receivedAt: old)
            try tx.recordInbox(source: "urn:t", id: "new", topic: "t", partition: 0, offset: 2, receivedAt: Date())
            let done = try tx.insertCommand(Self.command("A"))
            try tx.updateCommand(id: done, state: .done, attempts: 1, nextAttemptAt: nil, firstFailureAt: nil, lastError: nil, now: old)
            try tx.insertCommand(Self.command("B"))
            try tx.saveEmployeeState(EmployeeState(employeeID: "A"))
            _ = try tx.claimDuoUser("DUA", username: "a", employeeID: "A")
        }
        #expect(try store.purgeFinished(before: Date(timeIntervalSinceNow: -30 * 86400)) == 2)
        let (oldKept, newKept, state, links) = try store.write { tx in
            (try tx.inboxContains(source: "urn:t", id: "old"), try tx.inboxContains(source: "urn:t", id: "new"),
             try tx.employeeState("A"), try tx.linkedDuoUserIDs(employeeID: "A"))
        }
        #expect(!oldKept && newKept)
        #expect(state != nil && links == ["DUA"], "ordering and identity are kept")
        #expect(try store.allCommands().map(\.command.employeeID) == ["B"])
    }

    @Test("Statistics cost the same at 10 million rows as at 10 thousand: every query they run is answered from an index")
    func statisticsUseIndexes() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        for sql in SQLiteLifecycleStore.statisticsQueries {
            let plan = try store.queryPlan(sql)
            #expect(!plan.isEmpty)
            // A SEARCH is an index lookup; a SCAN is allowed only over the partial indexes that hold
            // live rows alone (waiting or running commands, unsent outbox rows), never a whole table.
            let live = ["commands_ready", "commands_running", "outbox_unsent"]
            for step in plan {
                #expect(step.hasPrefix("SEARCH") || live.contains { step.hasSuffix("INDEX \($0)") || step.contains("INDEX \($0) ") }, "\(sql): \(step)")
            }
        }
    }

    @Test("Claims take terminations first, then oldest, one command per employee, none whose employee is running")
    func claimOrder() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try store.write { tx in
            try tx.insertCommand(Self.command("A"))
            try tx.insertCommand(Self.command("B"))
            try tx.insertCommand(Self.command("A", event: "second-A"))
            try tx.insertCommand(Self.command("C", priority: .termination))
        }
        let first = try store.claimReady(limit: 2, now: Date())
        #expect(first.map(\.command.employeeID) == ["C", "A"])
        let second = try store.claimReady(limit: 5, now: Date())
        #expect(second.map(\.command.employeeID) == ["B"], "A already has a command running")
        #expect(try store.recoverRunning() == 3)
        #expect(try store.claimReady(limit: 5, now: Date()).count == 3)
    }

    @Test("Sent outbox rows are deleted after the retention period; unsent ones never")
    func retention() throws {
        let store = try SQLiteLifecycleStore(path: Self.tempPath())
        try store.write { tx in
            for i in 0..<3 { try tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: nil, value: [UInt8(i)], headers: [])) }
        }
        let unsent = try store.unsentOutbox(limit: 10)
        #expect(unsent.count == 3)
        try store.markSent([unsent[0].id], at: Date(timeIntervalSinceNow: -7200))
        try store.markSent([unsent[1].id], at: Date())
        #expect(try store.purgeSent(before: Date(timeIntervalSinceNow: -3600)) == 1)
        #expect(try store.unsentOutbox(limit: 10).map(\.id) == [unsent[2].id])
        #expect(try store.statistics(now: Date()).outboxBacklog == 1)
    }
}
