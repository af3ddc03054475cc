import DuoEmulator
import Foundation
import Kafka
import LifecycleStore
import LifecycleTools
import Testing
import TestSupport

/// Issue 13's acceptance: several worker processes sharing one PostgreSQL store.
@Suite("Replicas sharing PostgreSQL", .serialized, .timeLimit(.minutes(8)))
struct ReplicaProcessTests {
    static func message(_ type: String, _ employee: String, id: String, seq: Int, roles: [String]? = nil) throws -> KafkaProducerMessage {
        try LeaverLockoutProcessTests.message(type, employee, id: id, seq: seq, roles: roles)
    }

    /// A `run` process on the shared store, with its own `worker.id` and a short lease, so a
    /// replica lost for good frees its commands within seconds.
    static func startReplica(_ name: String, env: WorkerEnvironment, storeURL: String, lease: String = "5s",
                             requestsPerSecond: Int = 1000) throws -> (process: CLIProcess, port: Int) {
        let port = WorkerEnvironment.freePort()
        let config = try env.writeConfig(name: "\(name).yaml", httpPort: port, requestsPerSecond: requestsPerSecond, storeURL: storeURL,
                                         workerID: name, commandLease: lease)
        return (try CLIProcess(["run", "--config", config], directory: env.directory), port)
    }

    @Test("Three replicas, one PostgreSQL, 12 partitions: 3,000 events for 1,000 employees through a kill -9, a late replica and two rebalances end exactly right")
    func threeReplicas() async throws {
        let database = try await TestPostgres.freshDatabase()
        let storeURL = database.url
        let env = try await WorkerEnvironment(partitions: 12)
        var replicas: [String: (process: CLIProcess, port: Int)] = [:]
        for name in ["replica-1", "replica-2", "replica-3"] { replicas[name] = try Self.startReplica(name, env: env, storeURL: storeURL) }
        for (_, r) in replicas { try await WorkerEnvironment.waitUntilReady(port: r.port) }
        func e(_ i: Int) -> String { String(format: "E%04d", i) }
        func roles(_ i: Int, changed: Bool) -> [String] { (i % 2 == 0) != changed ? ["engineering"] : ["sales"] }
        var expected: [String: Set<String>] = [:]  // event id → acceptable outcomes

        // Hires, then kill -9 one replica in the middle of applying them.
        var hires: [KafkaProducerMessage] = []
        for i in 0..<1000 {
            hires.append(try Self.message("hired", e(i), id: "\(e(i))-hire", seq: 1, roles: roles(i, changed: false)))
            // no_change: a hire applied by the replica killed with -9, which could not record it, is
            // applied again by another and then finds Duo right.
            expected["\(e(i))-hire"] = ["applied", "superseded", "no_change"]
        }
        try await env.stack.publish(hires)
        try await Task.sleep(for: .seconds(2))
        replicas["replica-1"]?.process.signal(SIGKILL)

        // Role changes; a fourth replica joins (a rebalance).
        var changes: [KafkaProducerMessage] = []
        for i in 0..<1000 {
            changes.append(try Self.message("role_changed", e(i), id: "\(e(i))-role", seq: 2, roles: roles(i, changed: true)))
            expected["\(e(i))-role"] = ["applied", "superseded", "no_change"]
        }
        try await env.stack.publish(changes)
        replicas["replica-4"] = try Self.startReplica("replica-4", env: env, storeURL: storeURL)
        try await WorkerEnvironment.waitUntilReady(port: replicas["replica-4"]!.port)

        // 300 terminations; a replica leaves gracefully (another rebalance).
        try await env.stack.publish(try (0..<300).map { i in
            // no_change: terminations go first, so a leaver's hire may never have been applied.
            expected["\(e(i))-leave"] = ["applied", "superseded", "no_change"]
            return try Self.message("terminated", e(i), id: "\(e(i))-leave", seq: 3)
        })
        try await Task.sleep(for: .seconds(1))
        replicas["replica-2"]?.process.signal(SIGTERM)
        let stopped = await replicas["replica-2"]?.process.wait(timeout: .seconds(30))
        // Its errors, and its last lines whatever they are: an abort in C code (librdkafka's
        // assertions, glibc) prints no Swift "Fatal error".
        let lines = (replicas["replica-2"]?.process.stderr ?? "").split(separator: "\n")
        let crash = lines.filter { $0.contains("rror") || $0.contains("Crash") || $0.contains("recondition") || $0.contains("ssert") || $0.contains("***") }
            .suffix(12) + ["-- last lines:"] + lines.suffix(8)
        #expect(stopped == 0, "a graceful stop exits 0, got \(String(describing: stopped)): \(crash.joined(separator: "\n"))")

        // 100 rehires, 400 duplicates of earlier events, 200 late old hires of leavers.
        var last: [KafkaProducerMessage] = try (0..<100).map { i in
            // no_change: the rehire superseded the termination before it ran, and Duo already matches.
            expected["\(e(i))-rehire"] = ["applied", "no_change"]
            return try Self.message("rehired", e(i), id: "\(e(i))-rehire", seq: 4, roles: ["sales"])
        }
        last += try (500..<700).map { i in try Self.message("hired", e(i), id: "\(e(i))-hire", seq: 1, roles: roles(i, changed: false)) }
        last += try (700..<900).map { i in try Self.message("role_changed", e(i), id: "\(e(i))-role", seq: 2, roles: roles(i, changed: true)) }
        last += try (100..<300).map { i in
            expected["\(e(i))-late-hire"] = ["stale"]
            return try Self.message("hired", e(i), id: "\(e(i))-late-hire", seq: 1, roles: ["engineering"])
        }
        try await env.stack.publish(last)

        // Every event has a result; one CloudEvent each, however often it was published.
        var events: [(ceID: String, eventID: String, outcome: String)] = []
        let deadline = ContinuousClock.now + .seconds(240)
        while ContinuousClock.now < deadline {
            events = try await env.resultEvents()
            if Set(expected.keys).isSubset(of: Set(events.map(\.eventID))) { break }
            try await Task.sleep(for: .seconds(1))
        }
        try await Task.sleep(for: .seconds(3))
        events = try await env.resultEvents()
        let ceIDsByEvent = Dictionary(grouping: events, by: \.eventID).mapValues { Set($0.map(\.ceID)) }
        let outcomesByEvent = Dictionary(grouping: events, by: \.eventID).mapValues { Set($0.map(\.outcome)) }
        #expect(Set(events.map(\.ceID)).count == expected.count, "\(Set(events.map(\.ceID)).count) distinct results for \(expected.count) events")
        for (id, acceptable) in expected {
            #expect(ceIDsByEvent[id]?.count == 1, "\(id): \(ceIDsByEvent[id]?.count ?? 0) distinct results")
            #expect(outcomesByEvent[id].map { $0.count == 1 && $0.isSubset(of: acceptable) } == true, "\(id): \(outcomesByEvent[id] ?? [])")
        }

        // Duo matches the last accepted event of every employee; no user was created twice.
        let users = env.emulator.directory.allUsers
        let byName = Dictionary(users.map { ($0.username, $0) }, uniquingKeysWith: { a, _ in a })
        // A leaver whose termination overtook the hire (terminations go first) never got a user.
        let neverCreated = (100..<300).filter { byName[e($0).lowercased()] == nil }.count
        #expect(users.count == 1000 - neverCreated)
        #expect(env.emulator.directory.journal().filter { $0.operation == "create_user" }.count == users.count, "no user created twice")
        let groupNames = env.emulator.directory.allGroups.map(\.name)
        #expect(groupNames.sorted() == ["Engineering", "Sales", "VPN"], "no group created twice: \(groupNames.sorted())")
        for i in 0..<1000 {
            let user = byName[e(i).lowercased()]
            switch i {
            case 0..<100:
                #expect(user?.status == .active && Set(user?.groups.map(\.name) ?? []) == ["Sales"], "\(e(i)) rehired: \(String(describing: user))")
            case 100..<300:
                #expect(user == nil || user?.status == .disabled, "\(e(i)) left and a late old hire did not bring them back")
            default:
                let groups: Set<String> = roles(i, changed: true) == ["engineering"] ? ["Engineering", "VPN"] : ["Sales"]
                #expect(user?.status == .active && Set(user?.groups.map(\.name) ?? []) == groups, "\(e(i)): \(String(describing: user))")
            }
        }
        for (name, r) in replicas where name != "replica-1" && name != "replica-2" {
            r.process.signal(SIGTERM)
            #expect(await r.process.wait(timeout: .seconds(30)) == 0)
        }
        await env.shutdown()
    }

    @Test("A stale owner is fenced: a replica paused (SIGSTOP) past its lease, holding the group-creation lock, while another applies the employee's termination never stalls it and never writes to Duo for that command after SIGCONT")
    func staleOwnerIsFenced() async throws {
        let database = try await TestPostgres.freshDatabase()
        let storeURL = database.url
        let env = try await WorkerEnvironment(partitions: 2)
        let a = try Self.startReplica("replica-a", env: env, storeURL: storeURL, lease: "3s")
        try await WorkerEnvironment.waitUntilReady(port: a.port)
        // Every Duo call takes 1.5 s, so the hire's calls are still going when replica A is paused.
        env.emulator.faults = { var f = DuoEmulatorFaults(); f.latencyMs = 1500; return f }()
        try await env.stack.publish([try Self.message("hired", "S1", id: "S1-hire", seq: 1, roles: ["engineering"])])
        let createdBy = ContinuousClock.now + .seconds(60)
        while env.emulator.directory.user(username: "s1") == nil {
            if ContinuousClock.now > createdBy { throw ProcessTimeout(what: "S1's user to be created") }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Then A takes the group-creation lock and lists Duo's groups (1.5 s): pause it in there,
        // so the lock's holder is the paused replica (a session advisory lock here stalled B for
        // good: B re-runs the hire once A's lease is gone and needs the same lock).
        try await Task.sleep(for: .milliseconds(700))
        a.process.signal(SIGSTOP)
        let userID = try #require(env.emulator.directory.user(username: "s1")?.userID)

        // Replica B takes over A's partitions and, once A's lease has expired, the employee.
        env.emulator.faults = DuoEmulatorFaults()
        let b = try Self.startReplica("replica-b", env: env, storeURL: storeURL, lease: "3s")
        try await env.stack.publish([try Self.message("terminated", "S1", id: "S1-leave", seq: 2)])
        let disabledBy = ContinuousClock.now + .seconds(90)
        while env.emulator.directory.user(id: userID)?.status != .disabled {
            if ContinuousClock.now > disabledBy {
                // What B was doing: its warnings and errors and every line about S1 or its partitions.
                let lines = b.process.stderr.split(separator: "\n").filter {
                    $0.contains("S1") || $0.contains("\"warning\"") || $0.contains("\"error\"") || $0.contains("assign") || $0.contains("revok")
                }
                throw ProcessTimeout(what: "S1 to be disabled by replica B; B's log:\n\(lines.suffix(60).joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let lockedOutAt = env.emulator.directory.journal().last?.sequence ?? 0

        // A resumes, its lease long gone.
        a.process.signal(SIGCONT)
        try await Task.sleep(for: .seconds(10))
        let after = env.emulator.directory.journal(after: lockedOutAt).filter { $0.userID == userID }
        #expect(after.isEmpty, "writes to the leaver after the lockout: \(after.map(\.operation))")
        #expect(env.emulator.directory.user(id: userID)?.status == .disabled)
        #expect(a.process.process.isRunning, "the paused replica carries on with other work")
        let results = try await env.waitForResults(["S1-hire", "S1-leave"])
        #expect(Set(results["S1-hire"] ?? []).count == 1, "one outcome for the hire: \(results["S1-hire"] ?? [])")
        #expect(results["S1-leave"] == ["applied"] || Set(results["S1-leave"] ?? []) == ["applied"])
        for p in [a.process, b.process] {
            p.signal(SIGTERM)
            _ = await p.wait(timeout: .seconds(30))
        }
        await env.shutdown()
    }

    @Test("PostgreSQL restarts during a run: nothing is lost or dead-lettered, and the run completes by itself")
    func postgresRestart() async throws {
        let server = try await PrivatePostgres()
        let env = try await WorkerEnvironment(partitions: 4)
        let w = try Self.startReplica("replica-r", env: env, storeURL: server.url, requestsPerSecond: 100)
        try await WorkerEnvironment.waitUntilReady(port: w.port)
        func e(_ i: Int) -> String { String(format: "R%04d", i) }
        try await env.stack.publish(try (0..<300).map { i in try Self.message("hired", e(i), id: "\(e(i))-hire", seq: 1, roles: ["sales"]) })
        // Stop the database while the hires are being applied (Duo at 100 req/s takes seconds).
        let startedBy = ContinuousClock.now + .seconds(60)
        while env.emulator.directory.allUsers.count < 20 {
            if ContinuousClock.now > startedBy { throw ProcessTimeout(what: "the first hires") }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await server.stop()
        try await env.stack.publish(try (300..<400).map { i in try Self.message("hired", e(i), id: "\(e(i))-hire", seq: 1, roles: ["sales"]) })
        try await Task.sleep(for: .seconds(4))
        #expect(w.process.process.isRunning, "the worker waits for its database")
        #expect(await WorkerEnvironment.get("http://127.0.0.1:\(w.port)/readyz")?.status == 503, "not ready without its database")
        try await server.start()

        _ = try await env.waitForResults(Set((0..<400).map { "\(e($0))-hire" }), timeout: .seconds(180))
        // One result each, counted by its CloudEvents id as consumers deduplicate: a result the
        // relay published just before the database went away, and could not mark sent, is
        // published again with the same ce_id. A hire whose Duo writes landed but whose outcome
        // could not be recorded runs again and then reports no_change.
        var byEvent: [String: [String: String]] = [:]  // event id → ce_id → outcome
        for r in try await env.resultEvents() { byEvent[r.eventID, default: [:]][r.ceID] = r.outcome }
        let wrong = byEvent.filter { $0.value.count != 1 || !$0.value.values.allSatisfy { ["applied", "no_change"].contains($0) } }
        #expect(byEvent.count == 400 && wrong.isEmpty, "\(wrong.sorted { $0.key < $1.key }.prefix(5).map { "\($0.key): \($0.value)" })")
        #expect(env.emulator.directory.allUsers.count == 400)
        let letters = try await TopicReader(kafka: env.kafka, logger: env.logger).readAll(topic: "hr.employee.lifecycle.v1.dlq")
        #expect(letters.isEmpty, "nothing dead-lettered")
        try await WorkerEnvironment.waitUntilReady(port: w.port)
        w.process.signal(SIGTERM)
        let status = await w.process.wait(timeout: .seconds(30))
        #expect(status == 0)
        if status != 0 { try? w.process.stderr.write(toFile: "/tmp/restart-worker.log", atomically: true, encoding: .utf8) }
        await env.shutdown()
        await server.destroy()
    }

    @Test("Prometheus: /metrics passes promtool check metrics (HELP for every family, librdkafka totals as counters), and a replica's lag series of partitions handed to another replica go")
    func prometheusExposition() async throws {
        let database = try await TestPostgres.freshDatabase()
        let env = try await WorkerEnvironment(partitions: 4)
        let a = try Self.startReplica("replica-a", env: env, storeURL: database.url)
        try await WorkerEnvironment.waitUntilReady(port: a.port)
        var messages = try (0..<20).map { try Self.message("hired", "P\($0)", id: "p-\($0)-hire", seq: 1, roles: ["sales"]) }
        messages.append(try Self.message("terminated", "P0", id: "p-0-leave", seq: 2))
        messages.append(KafkaProducerMessage(topic: "hr.employee.lifecycle.v1", key: Array("bad".utf8), value: Array("{".utf8)))
        try await env.stack.publish(Array(messages.prefix(20)))
        _ = try await env.waitForResults(Set((0..<20).map { "p-\($0)-hire" }))
        try await env.stack.publish(Array(messages.suffix(2)))
        _ = try await env.waitForResults(["p-0-leave"])

        func lagPartitions(_ metrics: String) -> Set<String> {
            Set(metrics.split(separator: "\n").filter { $0.hasPrefix("kafka_consumer_lag{") }.compactMap { line in
                line.firstRange(of: "partition=\"").map { String(line[$0.upperBound...].prefix { $0 != "\"" }) }
            })
        }
        func metrics(_ port: Int) async -> String { await WorkerEnvironment.get("http://127.0.0.1:\(port)/metrics")?.body ?? "" }
        var text = ""
        let statisticsBy = ContinuousClock.now + .seconds(30)
        repeat {
            text = await metrics(a.port)
            if lagPartitions(text).count < 4 { try await Task.sleep(for: .milliseconds(250)) }
        } while lagPartitions(text).count < 4 && ContinuousClock.now < statisticsBy
        #expect(lagPartitions(text) == ["0", "1", "2", "3"], "one replica: the lag of every partition")

        let path = "\(env.directory)/metrics.txt"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try await ExternalTool.run("promtool", ["check", "metrics"], stdin: path)
        #expect(check.status == 0 && check.output.isEmpty, "promtool check metrics: \(check.output)")
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        for family in families { #expect(text.contains("# HELP \(family) "), "HELP for \(family)") }
        #expect(text.contains("# TYPE kafka_client_rx_messages_total counter") && !text.contains("kafka_client_rx_messages "))
        #expect(text.contains("duo_lifecycle_lockout_seconds_count 1"), "the leaver's lockout was measured")

        // A second replica takes half the partitions: the first stops reporting their lag.
        let b = try Self.startReplica("replica-b", env: env, storeURL: database.url)
        try await WorkerEnvironment.waitUntilReady(port: b.port)
        var (lagA, lagB) = (Set<String>(), Set<String>())
        let splitBy = ContinuousClock.now + .seconds(60)
        repeat {
            try await Task.sleep(for: .milliseconds(500))
            (lagA, lagB) = (lagPartitions(await metrics(a.port)), lagPartitions(await metrics(b.port)))
        } while !(lagA.count == 2 && lagB.count == 2) && ContinuousClock.now < splitBy
        #expect(lagA.count == 2 && lagB.count == 2 && lagA.isDisjoint(with: lagB), "A reports \(lagA), B reports \(lagB)")

        for r in [a, b] { r.process.signal(SIGTERM) }
        for r in [a, b] { #expect(await r.process.wait(timeout: .seconds(30)) == 0) }
        await env.shutdown()
    }
}

/// Runs a tool from the machine (promtool) with a file as its standard input, off the
/// cooperative threads.
enum ExternalTool {
    static func run(_ tool: String, _ arguments: [String], stdin: String) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    process.arguments = [tool] + arguments
                    process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdin))
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    process.standardError = pipe
                    try KafkaMockCluster.startingChildProcess { try process.run() }
                    let output = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (process.terminationStatus, String(decoding: output, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
