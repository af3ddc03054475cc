import Foundation
import Kafka
import Lifecycle
@testable import LifecycleStore
import LifecycleWorker
import Testing

/// The ingest transaction reads and writes what a batch needs at once, on either store; a store
/// that cannot goes one event at a time. The outcome must be the same, including for events that
/// depend on earlier ones of the same batch.
@Suite("Ingesting a batch")
struct IngestBatchTests {
    static func consumed(_ events: [WorkerHarness.Event], from offset: Int64) -> [KafkaConsumerMessage] {
        events.enumerated().map { i, e in
            let m = WorkerHarness.message(e)
            return KafkaConsumerMessage(topic: m.topic, partition: 0, offset: offset + Int64(i), key: m.key, value: m.value, headers: m.headers,
                                        timestampMilliseconds: 1_790_000_000_000)
        }
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var summaries: [String]
        var commands: [String]
        var states: [String]
        var description: String { (summaries + commands + states).joined(separator: "\n") }
    }

    static func run(_ kind: StoreKind, eventByEvent: Bool = false) async throws -> Outcome {
        let store = try await kind.makeStore()
        if eventByEvent { (store as? PostgresLifecycleStore)?.batchesAtOnce.store(false, ordering: .relaxed) }
        var configuration = PipelineConfiguration()
        configuration.mapping = MappingPolicy(roles: ["engineering": ["Engineering", "VPN"], "sales": ["Sales"]])
        let ingestor = EventIngestor(store: store, configuration: configuration)
        let now = Date(timeIntervalSince1970: 1_794_000_000)  // after the events' ce_time
        let later = RFC3339.format(now.addingTimeInterval(3_600))
        let first = Self.consumed([
            WorkerHarness.event("hired", "A", seq: 1, roles: ["sales"]),
            WorkerHarness.event("hired", "B", seq: 1, roles: ["sales"]),
            WorkerHarness.event("hired", "C", seq: 1, roles: ["engineering"]),
        ], from: 0)
        var summaries = ["\(try await ingestor.ingest(first, now: now))"]
        // Another employee's Duo user is called "taken".
        _ = try await store.write { try await $0.claimDuoUser("DUZ", username: "taken", employeeID: "Z") }
        var invalid = WorkerHarness.message(WorkerHarness.event("hired", "X", seq: 1))
        invalid.value = Array("{not json".utf8)
        let second = Self.consumed([
            WorkerHarness.event("updated", "A", seq: 2, extra: ["first_name": "Ada"]),
            WorkerHarness.event("terminated", "A", seq: 3, extra: ["effective_at": later]),
            WorkerHarness.event("hired", "A", seq: 1, id: "A-hired-again", roles: ["sales"]),
            WorkerHarness.event("hired", "B", seq: 1, roles: ["sales"]),
            WorkerHarness.event("hired", "E", seq: 1, roles: ["sales"]),
            WorkerHarness.event("hired", "E", seq: 1, roles: ["sales"]),
            WorkerHarness.event("hired", "F", seq: 1, roles: ["sales"], extra: ["username": "TAKEN"]),
            WorkerHarness.event("role_changed", "C", seq: 2, roles: ["sales"]),
            WorkerHarness.event("hired", "G", seq: 1, roles: ["sales"], extra: ["username": "Zo\u{EB}"]),
            WorkerHarness.event("updated", "G", seq: 2, extra: ["last_name": "New"]),
            WorkerHarness.event("terminated", "C", seq: 3),
        ], from: 3) + [KafkaConsumerMessage(topic: invalid.topic, partition: 0, offset: 99, key: invalid.key, value: invalid.value, headers: invalid.headers,
                                             timestampMilliseconds: nil)]
        summaries.append("\(try await ingestor.ingest(second, now: now.addingTimeInterval(1)))")
        // The same batch again, as after a rebalance: every event is a duplicate.
        summaries.append("\(try await ingestor.ingest(second, now: now.addingTimeInterval(2)))")
        let commands = try await store.allCommands().map {
            "\($0.command.employeeID) \($0.command.eventID) \($0.state.rawValue) at \($0.nextAttemptAt.timeIntervalSince1970) \($0.command.desired.status.rawValue) "
                + "\(($0.command.desired.groups ?? []).sorted()) \($0.command.desired.profile.firstName ?? "-") \($0.command.desired.username ?? "-")"
        }
        var states: [String] = []
        for id in ["A", "B", "C", "E", "F", "G", "X"] {
            let state = try await store.write { try await $0.employeeState(id) }
            states.append("\(id): \(state.map { "\($0.desired) \(String(describing: $0.lastAccepted)) \(String(describing: $0.terminationEffectiveAt))" } ?? "none")")
        }
        await store.close()
        return Outcome(summaries: summaries, commands: commands, states: states)
    }

    @Test("A batch that depends on itself (an employee's events one after another, an event twice, a stale one, a username taken by another, an invalid one) ends the same read at once (SQLite, PostgreSQL) as read one event at a time")
    func batchReadAtOnceMatchesOneAtATime() async throws {
        let sqlite = try await Self.run(.sqlite)
        let postgres = try await Self.run(.postgres)
        let eventByEvent = try await Self.run(.postgres, eventByEvent: true)
        #expect(sqlite == eventByEvent, "SQLite:\n\(sqlite)\n\nPostgreSQL, event by event:\n\(eventByEvent)")
        #expect(postgres == eventByEvent, "PostgreSQL:\n\(postgres)\n\nPostgreSQL, event by event:\n\(eventByEvent)")
        // And the outcome is the expected one, not merely the same.
        #expect(sqlite.summaries[1].contains("duplicates: 2") && sqlite.summaries[1].contains("stale: 1") && sqlite.summaries[1].contains("deadLettered: 2"),
                "\(sqlite.summaries[1])")
        #expect(sqlite.summaries[2].contains("duplicates: 12"), "\(sqlite.summaries[2])")
        #expect(sqlite.commands.contains { $0.hasPrefix("A A-terminated-3 pending") }, "\(sqlite)")
        #expect(sqlite.commands.contains { $0.hasPrefix("A A-updated-2 pending") && $0.contains("Ada") }, "the update waits with the scheduled termination: \(sqlite.commands)")
        #expect(sqlite.commands.contains { $0.hasPrefix("C C-role_changed-2 superseded") }, "\(sqlite)")
        #expect(!sqlite.commands.contains { $0.hasPrefix("F ") }, "F's username belongs to another employee: \(sqlite)")
    }

    /// An operator replays a dead-lettered termination from the dead-letter topic twice in quick
    /// succession, and both copies land in one polled batch. PostgreSQL refuses to upsert one key
    /// twice in a statement: had the batch's inbox rows gone in unmerged, the batch would fail
    /// and be retried forever, and the leavers behind it in the partition would never be locked out.
    @Test("A termination replayed twice in one batch leaves one lockout waiting and its batch commits, on both stores; the leaver after it is locked out too",
          arguments: StoreKind.allCases)
    func replayedTwiceInOneBatchCommits(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        let ingestor = EventIngestor(store: store, configuration: PipelineConfiguration())
        func replayed(_ m: KafkaConsumerMessage) -> KafkaConsumerMessage {
            var m = m
            m.headers.append(KafkaHeader(key: "dlq-replayed-at", string: "2026-11-30T12:00:00Z"))
            return m
        }
        let batch = Self.consumed([
            WorkerHarness.event("terminated", "A", seq: 1),
            WorkerHarness.event("terminated", "A", seq: 1),
            WorkerHarness.event("terminated", "B", seq: 1),
        ], from: 0)
        let summary = try await ingestor.ingest([replayed(batch[0]), replayed(batch[1]), batch[2]], now: Date(timeIntervalSince1970: 1_794_000_000))
        // A replay is processed again, so the second copy's command supersedes the first's.
        #expect(summary.commands == 3 && summary.superseded == 1 && summary.deadLettered == 0, "\(summary)")
        let commands = try await store.allCommands()
        let waiting = commands.filter { $0.state == .pending }
        #expect(waiting.map(\.command.employeeID).sorted() == ["A", "B"], "\(commands.map { "\($0.command.eventID) \($0.state)" })")
        #expect(waiting.allSatisfy { $0.command.isLockout }, "\(waiting.map(\.command.eventID))")
        await store.close()
    }

    @Test("An event with a NUL character in its id or its employee id is dead-lettered and its batch commits, on both stores; the next event of the batch is applied",
          arguments: StoreKind.allCases)
    func eventWithNULIsDeadLetteredNotRetriedForever(kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        let ingestor = EventIngestor(store: store, configuration: PipelineConfiguration())
        let batch = Self.consumed([
            WorkerHarness.event("terminated", "A", seq: 1, id: "evt\u{0}1"),
            WorkerHarness.event("terminated", "B\u{0}1", seq: 1),
            WorkerHarness.event("terminated", "C", seq: 1),
        ], from: 0)
        let summary = try await ingestor.ingest(batch, now: Date(timeIntervalSince1970: 1_794_000_000))
        #expect(summary.deadLettered == 2 && summary.commands == 1, "\(summary)")
        #expect(try await store.allCommands().map(\.command.employeeID) == ["C"])
        let outbox = try await store.unsentOutbox(limit: 10)
        #expect(outbox.filter { $0.message.kind == .deadLetter }.count == 2)
        // Read again (a rebalance): the two are duplicates, known by where they sit in Kafka.
        let again = try await ingestor.ingest(batch, now: Date(timeIntervalSince1970: 1_794_000_001))
        #expect(again.duplicates == 3, "\(again)")
        await store.close()
    }
}
