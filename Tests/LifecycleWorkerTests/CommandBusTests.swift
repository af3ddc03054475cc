import DuoAdmin
import DuoEmulator
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Synchronization
import Testing

@Suite("Durable command bus (mock Kafka, emulator over HTTP, SQLite file)", .serialized, .timeLimit(.minutes(5)))
struct CommandBusTests {
    static let groupsFor: [String: Set<String>] = ["engineering": ["Engineering", "VPN"], "sales": ["Sales"], "support": ["Support", "VPN"]]

    @Test("Faults: 1,000 events for 200 employees under 20% 500s and 10% 429s end right, one result each, no dead letters")
    func faults() async throws {
        var faults = DuoEmulatorFaults()
        faults.errorRate = 0.2
        faults.throttleRate = 0.1
        let h = try await WorkerHarness(emulatorFaults: faults)
        var events: [WorkerHarness.Event] = []
        for i in 0..<200 {
            let e = "F\(i)"
            events += [WorkerHarness.event("hired", e, seq: 1, roles: ["engineering"]),
                       WorkerHarness.event("role_changed", e, seq: 2, roles: ["sales"]),
                       WorkerHarness.event("updated", e, seq: 3, extra: ["display_name": "Employee \(i)"]),
                       WorkerHarness.event("role_changed", e, seq: 4, roles: i % 2 == 0 ? ["support"] : ["sales", "engineering"])]
            events.append(i % 4 == 0 ? WorkerHarness.event("terminated", e, seq: 5) : WorkerHarness.event("updated", e, seq: 5, extra: ["last_name": "Final"]))
        }
        try await h.publish(events)
        try h.startWorker()
        let results = try await h.results(count: 1000, timeout: .seconds(180))
        try await h.stopWorker()

        #expect(results.count == 1000, "exactly one result per input")
        #expect(Set(results.compactMap(\.eventID)) == Set(events.map(\.id)))
        #expect(!results.contains { $0.outcome == "dead_lettered" })
        #expect(try await h.deadLetters(count: 1, timeout: .seconds(3)).isEmpty)
        for i in 0..<200 {
            let found = h.emulator.directory.user(username: "f\(i)")
            if i % 4 == 0 {
                // A leaver ends without an active account: disabled, or never created when the
                // termination superseded the hire before it ran.
                #expect(found == nil || found?.status == .disabled, "F\(i)")
                continue
            }
            let user = try #require(found)
            #expect(user.status == .active, "F\(i)")
            #expect(Set(user.groups.map(\.name)) == (i % 2 == 0 ? ["Support", "VPN"] : ["Sales", "Engineering", "VPN"]), "F\(i)")
            #expect(user.realname == "Employee \(i)")
            if i % 4 != 0 { #expect(user.lastname == "Final") }
        }
        #expect(h.emulator.directory.journal().filter { $0.operation == "create_user" }.count == h.emulator.directory.allUsers.count, "no user created twice")
        await h.shutdown()
    }

    @Test("Order: duplicates and late re-deliveries never re-enable a leaver")
    func order() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        let hires = (0..<200).map { WorkerHarness.event("hired", "O\($0)", seq: 1, roles: ["engineering"]) }
        try await h.publish(hires)
        try await h.waitUntil("the hires to be applied") { h.emulator.directory.allUsers.count == 200 }
        var events: [WorkerHarness.Event] = []
        for i in 0..<200 {
            let roles = WorkerHarness.event("role_changed", "O\(i)", seq: 2, roles: ["sales"])
            let terminated = WorkerHarness.event("terminated", "O\(i)", seq: 3)
            events += [roles, hires[i], terminated, roles, hires[i]]  // duplicates, some after the termination
        }
        try await h.publish(events)
        // Late re-deliveries of older events (new ids, old sequences) after the terminations.
        try await Task.sleep(for: .seconds(1))
        try await h.publish((0..<200).map { WorkerHarness.event("hired", "O\($0)", seq: 1, id: "O\($0)-late-hire", roles: ["engineering"]) })
        let results = try await h.results(count: 800)
        try await h.stopWorker()

        #expect(results.count == 800, "one result per distinct event: duplicates are dropped by the inbox")
        #expect(results.filter { $0.eventID?.hasSuffix("-late-hire") == true }.allSatisfy { $0.outcome == "stale" })
        let journal = h.emulator.directory.journal()
        for i in 0..<200 {
            let user = try #require(h.emulator.directory.user(username: "o\(i)"))
            #expect(user.status == .disabled && Set(user.groups.map(\.name)) == ["Sales"])
            let entries = journal.filter { $0.userID == user.userID }
            let disabledAt = try #require(entries.firstIndex { $0.user?.status == .disabled })
            #expect(!entries[disabledAt...].contains { $0.user?.status == .active }, "O\(i) active again after the disable")
        }
        await h.shutdown()
    }

    @Test("Priority: 10 terminations behind 500 queued hires are applied before 100 more hires complete")
    func priority() async throws {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 20
        // One Duo call per write, as without bulk requests: this test is about the order of the
        // client's queues (the bulk test below has bulk requests sharing them with leavers).
        let h = try await WorkerHarness(requestsPerSecond: 20, emulatorFaults: faults) { $0.duoBulk = false }
        let leavers = (0..<10).map { DuoEmulatorSeedUser(username: "leaver\($0)", email: "leaver\($0)@example.com") }
        _ = h.emulator.directory.seed(users: leavers, groups: [])
        try await h.publish((0..<500).map { WorkerHarness.event("hired", "P\($0)", seq: 1, roles: ["sales"]) })
        try h.startWorker()
        try await h.waitUntil("the hires to be queued") { try await h.commands().count >= 500 }
        let hiresBefore = h.emulator.directory.journal().filter { $0.operation == "create_user" }.count
        try await h.publish((0..<10).map { WorkerHarness.event("terminated", "L\($0)", seq: 1, extra: ["username": "leaver\($0)", "email": "leaver\($0)@example.com"]) })
        try await h.waitUntil("every leaver to be disabled", timeout: .seconds(60)) {
            (0..<10).allSatisfy { h.emulator.directory.user(username: "leaver\($0)")?.status == .disabled }
        }
        let journal = h.emulator.directory.journal()
        let lastDisable = try #require(journal.lastIndex { $0.operation == "modify_user" && $0.user?.username.hasPrefix("leaver") == true })
        let hiresByThen = journal[...lastDisable].filter { $0.operation == "create_user" }.count
        #expect(hiresByThen - hiresBefore < 100, "\(hiresByThen - hiresBefore) hires completed while the terminations waited")
        #expect(hiresByThen < 500, "the terminations did not wait for the backlog")
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("Bulk requests: 400 hires at Duo's 10 requests a second share them (5 or more changes per write request), 10 leavers behind them are locked out by calls of their own, and every hire ends with its group")
    func bulkHiresNeverCarryALeaver() async throws {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 10
        // As the README advises for a backfill: more commands at once, so more writes per request.
        let h = try await WorkerHarness(requestsPerSecond: 10, emulatorFaults: faults) { $0.pipeline.maxConcurrency = 64 }
        #expect(h.workerConfiguration.duoBulk, "bulk requests are on by default")
        let leavers = (0..<10).map { DuoEmulatorSeedUser(username: "leaver\($0)", email: "leaver\($0)@example.com") }
        _ = h.emulator.directory.seed(users: leavers, groups: ["Sales"])
        try await h.publish((0..<400).map { WorkerHarness.event("hired", "B\($0)", seq: 1, roles: ["sales"]) })
        try h.startWorker()
        try await h.waitUntil("the hires to be under way") { h.emulator.directory.journal().filter { $0.operation == "create_user" }.count >= 50 }
        try await h.publish((0..<10).map { WorkerHarness.event("terminated", "L\($0)", seq: 1, extra: ["username": "leaver\($0)", "email": "leaver\($0)@example.com"]) })
        try await h.waitUntil("every leaver locked out and every hire in Sales", timeout: .seconds(120)) {
            (0..<10).allSatisfy { h.emulator.directory.user(username: "leaver\($0)")?.status == .disabled }
                && h.emulator.directory.allUsers.filter { $0.username.hasPrefix("b") && $0.groups.map(\.name) == ["Sales"] }.count == 400
        }
        _ = try await h.results(count: 410)
        try await h.stopWorker()
        let journal = h.emulator.directory.journal()
        let leaverIDs = Set(h.emulator.directory.allUsers.filter { $0.username.hasPrefix("leaver") }.map(\.userID))
        let leaverWrites = journal.filter { $0.userID.map(leaverIDs.contains) == true }
        #expect(!leaverWrites.isEmpty && leaverWrites.allSatisfy { $0.bulk == nil }, "a leaver's write went in a bulk request")
        let hireWrites = journal.filter { $0.userID.map(leaverIDs.contains) != true && $0.operation != "create_group" }
        #expect(hireWrites.count == 800, "one create and one group add per hire, nothing twice: \(hireWrites.count)")
        let writeRequests = h.emulator.counters.filter { $0.key.hasPrefix("POST ") || $0.key.hasPrefix("DELETE ") }
            .map { $0.value["200"] ?? 0 }.reduce(0, +)
        let perCall = Double(journal.count) / Double(max(1, writeRequests))
        #expect(perCall >= 5, "\(journal.count) changes in \(writeRequests) write requests: \(h.emulator.counters)")
        await h.shutdown()
    }

    @Test("A permanent Duo error dead-letters that event with its headers in Spring Kafka's encodings; later events still apply")
    func permanentError() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        let hire = WorkerHarness.event("hired", "D1", seq: 1, roles: ["engineering"])
        try await h.publish([hire])
        _ = try await h.results(count: 1, settle: .zero)
        var faults = DuoEmulatorFaults()
        faults.failNext = 1
        faults.failNextStatus = 400
        h.emulator.faults = faults
        let doomed = WorkerHarness.event("role_changed", "D1", seq: 2, roles: ["support"])
        try await h.publish([doomed])
        let dead = try await h.deadLetters(count: 1)
        let later = WorkerHarness.event("role_changed", "D1", seq: 3, roles: ["sales"])
        try await h.publish([later])
        let results = try await h.results(count: 3)
        try await h.stopWorker()

        #expect(dead.count == 1)
        let letter = try #require(dead.first)
        let original = h.message(doomed)
        #expect(letter.value == original.value && letter.key == original.key, "the original bytes and key")
        for header in original.headers { #expect(letter.headers[string: header.key] == header.stringValue, "original header \(header.key)") }
        #expect(letter.headers[string: "kafka_dlt-original-topic"] == WorkerHarness.topic)
        // Decoded the way Spring Kafka reads them: ByteBuffer.wrap(value).getInt() / getLong().
        let originals = try await h.read(topic: WorkerHarness.topic, count: 3, timeout: .seconds(30), settle: .zero)
        let published = try #require(originals.first { $0.headers[string: "ce_id"] == doomed.id }, "the original record")
        #expect(SpringHeaders.int(letter.headers.first(named: "kafka_dlt-original-partition")?.value) == published.partition)
        #expect(SpringHeaders.long(letter.headers.first(named: "kafka_dlt-original-offset")?.value) == published.offset)
        let timestamp = try #require(SpringHeaders.long(letter.headers.first(named: "kafka_dlt-original-timestamp")?.value))
        #expect(abs(Double(timestamp) / 1000 - Date().timeIntervalSince1970) < 600, "the record's timestamp in milliseconds")
        #expect(letter.headers[string: "kafka_dlt-original-timestamp-type"] == "CreateTime")
        #expect(letter.headers[string: "kafka_dlt-exception-fqcn"] == "duo_lifecycle.DuoPermanentErrorException")
        // Readable copies for people and for tools that are not Spring.
        #expect(letter.headers[string: "dlq-original-partition"] == String(published.partition))
        #expect(letter.headers[string: "dlq-original-offset"] == String(published.offset))
        #expect(letter.headers[string: "dlq-original-timestamp"] == String(timestamp))
        #expect(letter.headers[string: "kafka_dlt-original-consumer-group"] == "duo-lifecycle")
        #expect(letter.headers[string: "kafka_dlt-exception-message"]?.contains("40002") == true)
        #expect(letter.headers[string: "dlq-reason"] == "duo-permanent")
        #expect(letter.headers[string: "dlq-error-code"] == "40002")
        #expect(letter.headers[string: "dlq-attempts"] == "1")
        #expect(letter.headers[string: "dlq-first-failure-at"].flatMap(RFC3339.parse) != nil)
        #expect(!letter.headers.contains { $0.stringValue?.contains(WorkerHarness.skey) == true }, "no secret in a dead letter")
        #expect(results.first { $0.eventID == doomed.id }?.outcome == "dead_lettered")
        #expect(results.first { $0.eventID == later.id }?.outcome == "applied")
        #expect(h.emulator.directory.user(username: "d1")?.groups.map(\.name) == ["Sales"])
        await h.shutdown()
    }

    @Test("Effective dates: a future-dated hire reports scheduled, is applied when due, also after a restart")
    func effectiveDatesScheduling() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        // Far enough ahead that a busy machine ingests the events and restarts the worker before it.
        let due = Date().addingTimeInterval(20)
        let hires = ["S1", "S2"].map { WorkerHarness.event("hired", $0, seq: 1, roles: ["sales"], extra: ["effective_at": RFC3339.format(due)]) }
        try await h.publish(hires)
        let scheduled = try await h.results(count: 2, timeout: .seconds(30), settle: .milliseconds(500))
        #expect(scheduled.map(\.outcome) == ["scheduled", "scheduled"])
        #expect(scheduled.allSatisfy { $0.json["scheduled_for"] as? String == RFC3339.format(due) })
        #expect(h.emulator.directory.allUsers.isEmpty, "nothing applied before its date")
        // The worker restarts before the date: the schedule is durable.
        try await h.stopWorker()
        try h.startWorker()
        try await h.waitUntil("the hires to be applied", timeout: .seconds(60)) { h.emulator.directory.allUsers.count == 2 }
        #expect(Date() >= due.addingTimeInterval(-0.5), "applied when due, not before")
        let all = try await h.results(count: 4, timeout: .seconds(30))
        #expect(all.filter { $0.outcome == "applied" }.count == 2)
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("The dispatcher waits on events, not on a 1 ms timer, while every slot is busy and ready commands wait")
    func dispatcherDoesNotBusyPoll() async throws {
        var faults = DuoEmulatorFaults()
        faults.latencyMs = 4000
        let h = try await WorkerHarness(configure: { $0.maxConcurrency = 1 }, emulatorFaults: faults)
        let counting = CountingStore()
        try h.startWorker { counting.wrap($0) }
        try await h.publish((0..<3).map { WorkerHarness.event("hired", "BP\($0)", seq: 1, roles: ["sales"]) })
        try await h.waitUntil("a command to start") { counting.claims.withLock { $0 } > 0 }
        try await Task.sleep(for: .seconds(1))
        let before = counting.claims.withLock { $0 }
        try await Task.sleep(for: .seconds(2))
        let during = counting.claims.withLock { $0 } - before
        #expect(during < 40, "\(during) claims in 2 s with one slot busy and two commands waiting")
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("Outages dead-letter nothing at any volume: a quiet day's 503s past the retry age, and Duo's 403 on every call, terminations included")
    func outagesDeadLetterNothing() async throws {
        var faults = DuoEmulatorFaults()
        faults.failAll = 503
        let h = try await WorkerHarness(configure: { $0.retry = CommandRetryPolicy(base: .milliseconds(100), max: .milliseconds(300), maxAge: .seconds(2)) },
                                        emulatorFaults: faults)
        try h.startWorker()
        // A quiet day: one hire, while Duo answers 503 for longer than the retry age.
        try await h.publish([WorkerHarness.event("hired", "Q1", seq: 1, roles: ["sales"])])
        try await Task.sleep(for: .seconds(5))
        #expect(try await h.commands().allSatisfy { $0.state != .dead }, "not dead-lettered past the retry age while Duo is down")
        h.emulator.faults = DuoEmulatorFaults()
        try await h.waitUntil("the hire to be applied", timeout: .seconds(60)) { h.emulator.directory.user(username: "q1")?.status == .active }
        // Then the integration loses its write permission: every call is 403, a leaver's too.
        h.emulator.faults = { var f = DuoEmulatorFaults(); f.failAll = 403; return f }()
        try await h.publish([WorkerHarness.event("terminated", "Q1", seq: 2)])
        try await Task.sleep(for: .seconds(4))
        #expect(try await h.deadLetters(count: 1, timeout: .seconds(3)).isEmpty, "nothing dead-lettered during either outage")
        #expect(try await h.commands().allSatisfy { $0.state != .dead })
        h.emulator.faults = DuoEmulatorFaults()
        try await h.waitUntil("the leaver to be locked out", timeout: .seconds(60)) {
            h.emulator.directory.user(username: "q1")?.status == .disabled
        }
        let results = try await h.results(count: 2, timeout: .seconds(30))
        #expect(Set(results.map(\.outcome)).isSubset(of: ["applied", "superseded", "no_change"]), "\(results.map(\.outcome))")
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("Oversized poison records: a 1.5 MB value reaches the dead-letter topic truncated, saying so, and nothing waits behind it")
    func oversizedPoisonRecords() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        // An upstream producer allowed to write larger records than the worker's producer may.
        var config = KafkaProducerConfiguration(bootstrapServers: [h.stack.bootstrapServers])
        config.client.statisticsInterval = nil
        config.client.additionalProperties["message.max.bytes"] = "4000000"
        let big = try KafkaProducer(configuration: config, logger: h.logger)
        let huge = Array(repeating: UInt8(ascii: "x"), count: 1_500_000)
        let poison = KafkaProducerMessage(topic: WorkerHarness.topic, key: Array("P1".utf8), value: huge, headers: [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: "poison-1"),
            KafkaHeader(key: "ce_source", string: "urn:test:hr"), KafkaHeader(key: "ce_type", string: "hr.employee.hired"),
            KafkaHeader(key: "ce_time", string: "2026-11-02T09:00:00Z"), KafkaHeader(key: "content-type", string: "application/json"),
        ])
        for r in await big.send(batch: [poison]) { _ = try r.get() }
        await big.shutdown()
        try await h.publish([WorkerHarness.event("hired", "P2", seq: 1, roles: ["sales"])])
        let results = try await h.results(count: 2, timeout: .seconds(60))
        #expect(Set(results.compactMap(\.eventID)) == ["poison-1", "P2-hired-1"])
        let letters = try await h.deadLetters(count: 1, timeout: .seconds(30))
        let letter = try #require(letters.first)
        #expect(letter.headers[string: "dlq-value-truncated"] == "1500000")
        #expect((letter.value?.count ?? 0) < 1_000_000 && letter.value?.first == UInt8(ascii: "x"))
        #expect(letter.headers[string: "ce_id"] == "poison-1" && letter.headers[string: "dlq-reason"] == "validation")
        // The whole value stays in the store (for `dlq list --show --store` and `dlq replay --store`).
        let original = try await SQLiteLifecycleStore(path: h.storePath).deadLetterOriginal(
            topic: WorkerHarness.topic, partition: try #require(SpringHeaders.int(letter.headers.first(named: "kafka_dlt-original-partition")?.value)),
            offset: try #require(SpringHeaders.long(letter.headers.first(named: "kafka_dlt-original-offset")?.value)))
        #expect(original == huge)
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("The relay parks a row Kafka will never accept, counts it, and publishes the others")
    func relayParksUndeliverableRows() async throws {
        let h = try await WorkerHarness()
        let store = try SQLiteLifecycleStore(path: h.storePath)
        try await store.write { tx in
            try await tx.enqueue(NewOutboxMessage(kind: .result, topic: h.configuration.resultsTopic, key: nil,
                                                  value: Array(repeating: UInt8(ascii: "A"), count: 2_000_000), headers: []))
            try await tx.enqueue(NewOutboxMessage(kind: .result, topic: h.configuration.resultsTopic, key: nil, value: Array("{}".utf8), headers: []))
        }
        var config = KafkaProducerConfiguration(bootstrapServers: [h.stack.bootstrapServers])
        config.client.statisticsInterval = nil
        let producer = try KafkaProducer(configuration: config, logger: h.logger)
        let relay = OutboxRelay(store: store, producer: producer, retention: .seconds(3600), logger: h.logger)
        #expect(await relay.relayOnce() == 1)
        #expect(try await store.unsentOutbox(limit: 10).isEmpty, "the undeliverable row is parked, not sent again on every pass")
        #expect(try await store.statistics(now: Date()).outboxBacklog == 0)
        await producer.shutdown()
        await h.shutdown()
    }

    @Test("Two employees that map to one Duo username: the second is a conflict, dead-lettered, and the first's user is never touched")
    func usernameConflicts() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        let first = WorkerHarness.event("hired", "C1", seq: 1, roles: ["sales"], extra: ["email": "dup@example.com"])
        try await h.publish([first])
        _ = try await h.results(count: 1, timeout: .seconds(30), settle: .zero)
        // Another employee whose email gives the same username; then that employee leaves.
        try await h.publish([WorkerHarness.event("hired", "C2", seq: 1, roles: ["engineering"], extra: ["email": "dup@other.example"])])
        try await h.publish([WorkerHarness.event("terminated", "C2", seq: 2, extra: ["email": "dup@other.example"])])
        // And two more at once, racing for a username nobody has yet.
        try await h.publish([WorkerHarness.event("hired", "C3", seq: 1, roles: ["sales"], extra: ["email": "race@example.com"]),
                             WorkerHarness.event("hired", "C4", seq: 1, roles: ["sales"], extra: ["email": "race@other.example"])])
        let results = try await h.results(count: 5, timeout: .seconds(60))
        let byID = Dictionary(results.compactMap { r in r.eventID.map { ($0, r.outcome) } }, uniquingKeysWith: { a, _ in a })
        #expect(byID["C2-hired-1"] == "dead_lettered" && byID["C2-terminated-2"] == "dead_lettered", "\(byID)")
        #expect([byID["C3-hired-1"], byID["C4-hired-1"]].compactMap { $0 }.sorted() == ["applied", "dead_lettered"], "\(byID)")
        let dup = try #require(h.emulator.directory.user(username: "dup"))
        #expect(dup.status == .active && dup.groups.map(\.name) == ["Sales"], "the first employee's user is untouched")
        #expect(h.emulator.directory.journal().filter { $0.operation == "create_user" }.count == 2)
        let letters = try await h.deadLetters(count: 3, timeout: .seconds(30))
        #expect(letters.count == 3 && letters.allSatisfy { $0.headers[string: "dlq-reason"] == "conflict" }, "\(letters.map { $0.headers[string: "dlq-reason"] ?? "-" })")
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("A username change during a retry renames the Duo user rather than creating a second; the leaver's every user is disabled")
    func renameDuringRetry() async throws {
        var faults = DuoEmulatorFaults()
        faults.failRoutes = ["POST /admin/v1/users/{id}/groups": 503]
        let h = try await WorkerHarness(emulatorFaults: faults)
        try h.startWorker()
        try await h.publish([WorkerHarness.event("hired", "R1", seq: 1, roles: ["sales"], extra: ["email": "old@example.com"])])
        try await h.waitUntil("the user to be created") { h.emulator.directory.user(username: "old") != nil }
        try await Task.sleep(for: .seconds(1))
        // HR renames the employee while the hire waits to retry its group change.
        try await h.publish([WorkerHarness.event("updated", "R1", seq: 2, extra: ["username": "new"])])
        try await Task.sleep(for: .seconds(2))
        h.emulator.faults = DuoEmulatorFaults()
        try await h.waitUntil("the rename and the group", timeout: .seconds(60)) {
            h.emulator.directory.user(username: "new")?.groups.map(\.name) == ["Sales"]
        }
        #expect(h.emulator.directory.user(username: "old") == nil, "renamed, not duplicated")
        #expect(h.emulator.directory.journal().filter { $0.operation == "create_user" }.count == 1)
        let results = try await h.results(count: 2, timeout: .seconds(30))
        let hire = try #require(results.first { $0.eventID == "R1-hired-1" })
        #expect(hire.outcome == "superseded" && hire.operations.contains("create_user"), "a superseded event reports what it did: \(hire.operations)")
        try await h.publish([WorkerHarness.event("terminated", "R1", seq: 3)])
        try await h.waitUntil("the leaver to be disabled") { h.emulator.directory.user(username: "new")?.status == .disabled }
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("A hire due now keeps its access until a termination scheduled with it comes due, then the leaver is locked out")
    func hireBeforeScheduledTermination() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        // The worker is consuming before the two events go in (a busy machine can take seconds to
        // assign partitions), so both are ingested before the leaving date.
        try await h.publish([WorkerHarness.event("hired", "WARM", seq: 1, roles: ["sales"])])
        _ = try await h.results(count: 1, timeout: .seconds(60), settle: .zero)
        let leaves = Date().addingTimeInterval(10)
        try await h.publish([WorkerHarness.event("hired", "N1", seq: 1, roles: ["sales"]),
                             WorkerHarness.event("terminated", "N1", seq: 2, extra: ["effective_at": RFC3339.format(leaves)])])
        try await h.waitUntil("the hire to be applied") { h.emulator.directory.user(username: "n1")?.status == .active }
        #expect(Date() < leaves, "access before the leaving date")
        try await h.waitUntil("the leaver to be locked out", timeout: .seconds(30)) { h.emulator.directory.user(username: "n1")?.status == .disabled }
        #expect(Date() >= leaves.addingTimeInterval(-0.5), "not before the leaving date")
        let results = try await h.results(count: 4, timeout: .seconds(30))
        #expect(results.filter { $0.eventID == "N1-hired-1" }.map(\.outcome) == ["applied"])
        #expect(results.filter { $0.eventID == "N1-terminated-2" }.map(\.outcome) == ["scheduled", "applied"])
        try await h.stopWorker()
        await h.shutdown()
    }

    @Test("Duplicates: one event delivered three times gives one result and one round of Duo calls")
    func duplicates() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        let hire = WorkerHarness.event("hired", "X1", seq: 1, roles: ["engineering"])
        try await h.publish([hire, hire, hire])
        let results = try await h.results(count: 1, settle: .seconds(3))
        try await h.stopWorker()
        #expect(results.count == 1)
        #expect(results.first?.outcome == "applied")
        let journal = h.emulator.directory.journal()
        #expect(journal.filter { $0.operation == "create_user" }.count == 1)
        #expect(journal.filter { $0.operation == "add_user_group" }.count == 2)
        await h.shutdown()
    }

    @Test("Restart: a worker stopped mid-way continues on the same store; nothing lost, nothing applied twice")
    func restart() async throws {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 100
        let h = try await WorkerHarness(requestsPerSecond: 100, emulatorFaults: faults)
        let events = (0..<300).map { WorkerHarness.event("hired", "R\($0)", seq: 1, roles: ["support"]) }
        try await h.publish(events)
        try h.startWorker()
        try await h.waitUntil("some hires to be applied") { h.emulator.directory.journal().filter { $0.operation == "create_user" }.count >= 30 }
        try await h.stopWorker()
        let midway = h.emulator.directory.allUsers.count
        #expect(midway < 300, "stopped in the middle")
        try h.startWorker()
        let results = try await h.results(count: 300, timeout: .seconds(120))
        try await h.stopWorker()
        #expect(Set(results.compactMap(\.eventID)) == Set(events.map(\.id)), "nothing lost")
        #expect(results.count == 300, "one result each")
        #expect(h.emulator.directory.journal().filter { $0.operation == "create_user" }.count == 300, "no user created twice")
        #expect(h.emulator.directory.allUsers.allSatisfy { Set($0.groups.map(\.name)) == ["Support", "VPN"] })
        await h.shutdown()
    }

    @Test("Outage: 30 s of Duo failing every request (401s, then 503s) dead-letters nothing; all applies once Duo is back")
    func outage() async throws {
        let h = try await WorkerHarness()
        var faults = DuoEmulatorFaults()
        faults.failAll = 401
        h.emulator.faults = faults
        try h.startWorker()
        let events = (0..<50).map { WorkerHarness.event("hired", "U\($0)", seq: 1, roles: ["engineering"]) }
        try await h.publish(events)
        try await Task.sleep(for: .seconds(15))
        faults.failAll = 503
        h.emulator.faults = faults
        try await Task.sleep(for: .seconds(15))
        #expect(h.emulator.directory.allUsers.isEmpty, "nothing applied during the outage")
        h.emulator.faults = DuoEmulatorFaults()
        let results = try await h.results(count: 50, timeout: .seconds(90))
        try await h.stopWorker()
        #expect(results.count == 50 && results.allSatisfy { $0.outcome == "applied" })
        #expect(try await h.deadLetters(count: 1, timeout: .seconds(3)).isEmpty)
        #expect(h.emulator.directory.allUsers.count == 50)
        await h.shutdown()
    }

    @Test("An invalid event goes to the dead-letter topic with its reason and original bytes, and never blocks its partition")
    func invalidEvent() async throws {
        let h = try await WorkerHarness(partitions: 1)
        try h.startWorker()
        let garbage = KafkaProducerMessage(topic: WorkerHarness.topic, key: Array("V1".utf8), value: Array("{not json".utf8),
                                           headers: [KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: "bad-1")])
        try await h.publishRaw([garbage])
        try await h.publish([WorkerHarness.event("hired", "V1", seq: 1, roles: ["sales"])])
        let dead = try await h.deadLetters(count: 1)
        let results = try await h.results(count: 2)
        try await h.stopWorker()
        #expect(dead.first?.value == garbage.value)
        #expect(dead.first?.headers[string: "dlq-reason"] == "validation")
        #expect(dead.first?.headers[string: "kafka_dlt-exception-message"]?.contains("not valid JSON") == true)
        #expect(results.map(\.outcome).sorted() == ["applied", "dead_lettered"])
        #expect(h.emulator.directory.user(username: "v1")?.groups.map(\.name) == ["Sales"])
        await h.shutdown()
    }
}

/// A store that counts the dispatcher's claims, to see how often it polls.
final class CountingStore: Sendable {
    let claims = Mutex(0)

    func wrap(_ inner: any LifecycleStore) -> any LifecycleStore { Counted(inner: inner, owner: self) }

    struct Counted: ForwardingLifecycleStore {
        let inner: any LifecycleStore
        let owner: CountingStore
        func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner worker: String) async throws -> [StoredCommand] {
            owner.claims.withLock { $0 += 1 }
            return try await inner.claimReady(limit: limit, now: now, atLeast: priority, lease: lease, owner: worker)
        }
    }
}

/// Spring Kafka's reading of dead-letter headers, written independently of the worker's code:
/// `ByteBuffer.wrap(bytes).getInt()` for the partition and `getLong()` for the offset and the
/// timestamp, which fail (BufferUnderflowException) on fewer bytes than that.
enum SpringHeaders {
    static func int(_ bytes: [UInt8]?) -> Int32? {
        guard let bytes, bytes.count == 4 else { return nil }
        return Int32(bitPattern: UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
    }

    static func long(_ bytes: [UInt8]?) -> Int64? {
        guard let bytes, bytes.count == 8 else { return nil }
        return Int64(bitPattern: bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }
}
