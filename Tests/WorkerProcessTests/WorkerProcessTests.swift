import DuoEmulator
import Foundation
import Kafka
import Lifecycle
import LifecycleTools
import LifecycleWorker
import Testing

/// Multi-process tests: the worker runs as `duo-lifecycle run`, events go in with
/// `duo-lifecycle publish`, and the test checks what a user would see.
@Suite("The worker as a separate process", .serialized, .timeLimit(.minutes(6)))
struct WorkerProcessTests {
    @Test("`duo-lifecycle dev` exits 0 with the expected outcome for every sample event and the malformed one as a dead letter, webhooks through the ingress included")
    func dev() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dev-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try await CLIProcess.run(["dev"], directory: dir, timeout: .seconds(180))
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("✔ Every sample event ended as expected."))
        #expect(!result.stdout.contains("✘"))
        #expect(result.stdout.contains("E666  dev-bad   validation"))
        // The webhook path end to end: both webhooks acknowledged, their three employees applied.
        #expect(result.stdout.contains("/webhooks/hris: 1 event(s) durable in Kafka"))
        #expect(result.stdout.contains("/webhooks/bamboohr: 2 event(s) durable in Kafka"))
        for (employee, username) in [("E104", "katherine"), ("E105", "margaret"), ("E106", "edsger")] {
            #expect(result.stdout.contains("\(employee)      \(username)"), "\(employee) in Duo")
        }
        #expect(FileManager.default.fileExists(atPath: "\(dir)/.duo-lifecycle/dev.sqlite"))
    }

    @Test("Secrets and bad configuration: a YAML error never prints the secret; out-of-range values exit 2 naming the key")
    func secretsAndBadConfiguration() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let secret = "s3cr3t-Duo-skey-0123456789abcdefghijklmn"
        let base = "kafka:\n  bootstrap_servers: 127.0.0.1:9\nduo:\n  api_url: http://127.0.0.1:9\n  ikey: DIXXXXXXXXXXXXXXXXXX\n"
        let cases: [(yaml: String, key: String)] = [
            (base + "  skey: \"\(secret)\n  timeout: 5s\n", "duo.skey"),
            (base + "  skey: '\(secret)\n", "duo.skey"),
            (base + "  skey: \(secret)\nworker:\n  shutdown_timeout: infs\n", "worker.shutdown_timeout"),
            (base + "  skey: \(secret)\nretry:\n  max_age: 1e30d\n", "retry.max_age"),
            (base + "  skey: \(secret)\n  requests_per_second: 1e-12\n", "duo.requests_per_second"),
            (base + "  skey: \(secret)\n  requests_per_second: nan\n", "duo.requests_per_second"),
            (base + "  skey: \(secret)\n  max_concurrency: 0\n", "duo.max_concurrency"),
        ]
        for (n, c) in cases.enumerated() {
            let path = "\(dir)/bad-\(n).yaml"
            try c.yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try await CLIProcess.run(["run", "--config", path, "--check"], directory: dir, timeout: .seconds(30))
            #expect(result.status == 2, "case \(n): exit \(result.status)\n\(result.stderr)")
            #expect(result.stderr.contains(c.key), "case \(n) names \(c.key): \(result.stderr)")
            #expect(!(result.stdout + result.stderr).contains(secret), "case \(n) never prints the secret: \(result.stderr)")
        }
    }

    @Test("A dead letter published truncated: dlq list --show --store prints it whole; dlq replay needs --store and then replays it whole")
    func truncatedDeadLetters() async throws {
        let env = try await WorkerEnvironment()
        let config = try env.writeConfig(httpPort: WorkerEnvironment.freePort())
        let worker = try CLIProcess(["run", "--config", config], directory: env.directory)
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [env.cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        producerConfig.client.additionalProperties["message.max.bytes"] = "4000000"
        let big = try KafkaProducer(configuration: producerConfig, logger: env.logger)
        let huge = String(repeating: "y", count: 1_200_000)
        let poison = KafkaProducerMessage(topic: "hr.employee.lifecycle.v1", key: Array("T1".utf8), value: Array(huge.utf8), headers: [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: "big-1"),
            KafkaHeader(key: "ce_source", string: "urn:test:hr"), KafkaHeader(key: "ce_type", string: "hr.employee.hired"),
            KafkaHeader(key: "ce_time", string: "2026-11-02T09:00:00Z"), KafkaHeader(key: "content-type", string: "application/json"),
        ])
        for r in await big.send(batch: [poison]) { _ = try r.get() }
        await big.shutdown()
        _ = try await env.waitForResults(["big-1"])
        let store = env.stack.storePath()
        let bootstrap = env.cluster.bootstrapServers
        let shown = try await CLIProcess.run(["dlq", "list", "--bootstrap", bootstrap, "--json", "--show", "--store", store], directory: env.directory)
        #expect(shown.status == 0, "\(shown.stderr)")
        let line = try #require(shown.stdout.split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((object["value"] as? String)?.count == huge.count, "the whole value, from the store")
        #expect((object["headers"] as? [String: String])?["dlq-value-truncated"] == "1200000")
        let refused = try await CLIProcess.run(["dlq", "replay", "--bootstrap", bootstrap, "--event-id", "big-1"], directory: env.directory)
        #expect(refused.status == 2 && refused.stderr.contains("--store"), "a cut value is never replayed: \(refused.stderr)")
        let replayed = try await CLIProcess.run(["dlq", "replay", "--bootstrap", bootstrap, "--event-id", "big-1", "--store", store], directory: env.directory)
        #expect(replayed.status == 0 && replayed.stdout.contains("Replayed 1 dead letter(s)."), "\(replayed.stdout)\(replayed.stderr)")
        let end = TopicReader(kafka: env.kafka, logger: env.logger)
        let republished = try await end.readAll(topic: "hr.employee.lifecycle.v1").filter { $0.headers[string: "dlq-replayed-at"] != nil }
        #expect(republished.count == 1 && republished.first?.value?.count == huge.count, "replayed whole")
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(20)) == 0)
        await env.shutdown()
    }

    @Test("dlq list and replay read a dead-letter topic that Spring Kafka's DeadLetterPublishingRecoverer wrote")
    func springWrittenDeadLetters() async throws {
        let env = try await WorkerEnvironment()
        func big<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        let event = try JSONSerialization.data(withJSONObject: WorkerEnvironment.hire("S1", id: "spring-1"), options: [.sortedKeys])
        // What Spring writes: binary numbers, no readable copies, none of our dlq-* headers. The
        // offset has eight decimal digits, as long as Spring's eight bytes.
        let letter = KafkaProducerMessage(topic: "hr.employee.lifecycle.v1.dlq", key: Array("S1".utf8), value: Array(event), headers: [
            KafkaHeader(key: "kafka_dlt-original-topic", string: "hr.employee.lifecycle.v1"),
            KafkaHeader(key: "kafka_dlt-original-partition", value: big(Int32(2))),
            KafkaHeader(key: "kafka_dlt-original-offset", value: big(Int64(12_345_678))),
            KafkaHeader(key: "kafka_dlt-original-timestamp", value: big(Int64(1_793_610_000_000))),
            KafkaHeader(key: "kafka_dlt-original-timestamp-type", string: "CreateTime"),
            KafkaHeader(key: "kafka_dlt-exception-fqcn", string: "org.springframework.kafka.listener.ListenerExecutionFailedException"),
            KafkaHeader(key: "kafka_dlt-exception-message", string: "Listener failed; nested exception is java.lang.IllegalStateException"),
            KafkaHeader(key: "kafka_dlt-exception-stacktrace", string: "java.lang.IllegalStateException\n\tat com.example.Listener"),
        ])
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [env.cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        let producer = try KafkaProducer(configuration: producerConfig, logger: env.logger)
        for r in await producer.send(batch: [letter]) { _ = try r.get() }
        await producer.shutdown()
        let bootstrap = env.cluster.bootstrapServers

        let list = try await CLIProcess.run(["dlq", "list", "--bootstrap", bootstrap, "--json"], directory: env.directory)
        #expect(list.status == 0, "\(list.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let original = try #require(object["original"] as? [String: Any])
        #expect(original["topic"] as? String == "hr.employee.lifecycle.v1")
        #expect(original["partition"] as? Int == 2)
        #expect((original["offset"] as? NSNumber)?.int64Value == 12_345_678)
        #expect((original["timestamp_ms"] as? NSNumber)?.int64Value == 1_793_610_000_000)
        #expect((object["headers"] as? [String: String])?["kafka_dlt-original-offset"] == "12345678", "shown as a number, not as bytes")
        let table = try await CLIProcess.run(["dlq", "list", "--bootstrap", bootstrap, "--since", "2026-11-01T00:00:00Z"], directory: env.directory)
        #expect(table.stdout.contains("2026-11-02T") && table.stdout.contains("ListenerExecutionFailedException") && table.stdout.contains("spring-1"),
                "the original time and Spring's exception class: \(table.stdout)")

        let replay = try await CLIProcess.run(["dlq", "replay", "--bootstrap", bootstrap, "--event-id", "spring-1"], directory: env.directory)
        #expect(replay.status == 0 && replay.stdout.contains("Replayed 1 dead letter(s)."), "\(replay.stdout)\(replay.stderr)")
        let republished = try await TopicReader(kafka: env.kafka, logger: env.logger).readAll(topic: "hr.employee.lifecycle.v1")
        #expect(republished.count == 1 && republished.first?.value == Array(event), "to the original topic, with the original value")
        #expect(republished.first?.headers.contains { $0.key.hasPrefix("kafka_dlt-") } == false, "Spring's dead-letter headers are left out")
        #expect(republished.first?.headers[string: "dlq-replayed-at"] != nil)
        await env.shutdown()
    }

    @Test("A worker whose operations port is taken exits 1 at once, naming the port and its setting, instead of running on half stopped")
    func takenPortExitsNamingIt() async throws {
        let env = try await WorkerEnvironment(partitions: 1)
        // The emulator already listens on this port.
        let taken = try #require(URL(string: env.stack.emulatorURL)?.port)
        let worker = try CLIProcess(["run", "--config", try env.writeConfig(httpPort: taken)], directory: env.directory)
        let status = await worker.wait(timeout: .seconds(30))
        if status == nil { worker.signal(SIGKILL) }
        #expect(status == 1, "\(worker.stderr.suffix(2000))")
        #expect(worker.stderr.contains("Could not listen on 127.0.0.1:\(taken) (http.host, http.port)"), "\(worker.stderr.suffix(2000))")
        await env.shutdown()
    }

    @Test("Readiness means able to work: ready without partitions (another member holds them all), 503 naming Kafka while no broker answers, ready again after")
    func readinessFollowsKafka() async throws {
        let env = try await WorkerEnvironment(partitions: 1)
        // Another member of the worker's group takes the only partition first.
        var holderConfig = KafkaConsumerConfiguration(bootstrapServers: [env.cluster.bootstrapServers], groupID: "duo-lifecycle",
                                                      topics: ["hr.employee.lifecycle.v1"])
        holderConfig.client.statisticsInterval = nil
        let holder = try KafkaConsumer(configuration: holderConfig, logger: env.logger)
        let drain = Task { for await _ in holder.batches {} }
        let assignedBy = ContinuousClock.now + .seconds(30)
        while holder.assignment.isEmpty && ContinuousClock.now < assignedBy { try await Task.sleep(for: .milliseconds(100)) }
        #expect(holder.assignment.count == 1)

        let port = WorkerEnvironment.freePort()
        let worker = try CLIProcess(["run", "--config", try env.writeConfig(httpPort: port)], directory: env.directory)
        try await WorkerEnvironment.waitUntilReady(port: port)
        #expect(holder.assignment.count == 1, "the worker is ready with no partition of its own")
        func readyz() async -> (status: Int, body: String)? { await WorkerEnvironment.get("http://127.0.0.1:\(port)/readyz") }

        try env.cluster.setBrokerDown(1)
        var answer = await readyz()
        let downBy = ContinuousClock.now + .seconds(20)
        while answer?.status != 503 && ContinuousClock.now < downBy {
            try await Task.sleep(for: .milliseconds(250))
            answer = await readyz()
        }
        #expect(answer?.status == 503 && answer?.body.contains("no Kafka broker answers") == true, "\(String(describing: answer))")
        #expect(await WorkerEnvironment.get("http://127.0.0.1:\(port)/healthz")?.status == 200, "alive all along: no restart for a Kafka outage")
        try env.cluster.setBrokerUp(1)
        try await WorkerEnvironment.waitUntilReady(port: port, timeout: .seconds(30))

        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(30)) == 0)
        await holder.close()
        _ = await drain.value
        await env.shutdown()
    }

    @Test("run: health, metrics, events via publish, SIGTERM exits 0 in time, and a restart continues with nothing lost")
    func runProcess() async throws {
        let env = try await WorkerEnvironment()
        let port = WorkerEnvironment.freePort()
        let config = try env.writeConfig(httpPort: port)
        let check = try await CLIProcess.run(["run", "--config", config, "--check"], directory: env.directory)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("Check passed."))

        let worker = try CLIProcess(["run", "--config", config], directory: env.directory)
        var ready = false
        for _ in 0..<300 where !ready {
            ready = await WorkerEnvironment.get("http://127.0.0.1:\(port)/readyz")?.status == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        #expect(await WorkerEnvironment.get("http://127.0.0.1:\(port)/healthz")?.status == 200)
        // Before any event: every counter series is there at 0 (rates and alerts see it before first
        // use), and the queue gauge does not share a name with the commands counter (OpenMetrics).
        let atStart = await WorkerEnvironment.get("http://127.0.0.1:\(port)/metrics")?.body ?? ""
        for series in ["duo_lifecycle_retries_total 0", #"duo_lifecycle_dead_letters_total{stage="ingest"} 0"#,
                       #"duo_lifecycle_commands_total{outcome="held"} 0"#, #"duo_lifecycle_commands_total{outcome="dead_lettered"} 0"#,
                       #"duo_lifecycle_commands_queued{state="held"} 0"#, "duo_lifecycle_duo_bulk_requests_total 0",
                       "duo_lifecycle_duo_bulk_writes_total 0"] {
            #expect(atStart.split(separator: "\n").contains { $0.hasPrefix(series) }, "\(series) at start")
        }
        #expect(!atStart.split(separator: "\n").contains { $0.hasPrefix("duo_lifecycle_commands{") })

        let batch1 = (0..<50).map { WorkerEnvironment.hire("W\($0)", id: "w-\($0)") }
        let published = try await CLIProcess.run(["publish", "--bootstrap", env.cluster.bootstrapServers, "--file", try env.writeEvents(batch1, name: "b1.jsonl")],
                                                 directory: env.directory)
        #expect(published.status == 0, "\(published.stderr)")
        #expect(published.stdout.split(separator: "\n").count == 50)
        _ = try await env.waitForResults(Set((0..<50).map { "w-\($0)" }))

        // Consumer lag comes with librdkafka's statistics, every few seconds: wait for the first.
        var metrics = ""
        let statisticsBy = ContinuousClock.now + .seconds(20)
        repeat {
            metrics = await WorkerEnvironment.get("http://127.0.0.1:\(port)/metrics")?.body ?? ""
            if !metrics.contains("kafka_consumer_lag") { try await Task.sleep(for: .milliseconds(250)) }
        } while !metrics.contains("kafka_consumer_lag") && ContinuousClock.now < statisticsBy
        for name in ["duo_lifecycle_events_in_total", "duo_lifecycle_commands_total", "duo_lifecycle_duo_calls_total",
                     "duo_lifecycle_outbox_backlog", "duo_lifecycle_circuit_breaker_open", "kafka_consumer_lag"] {
            #expect(metrics.contains(name), "metric \(name)")
        }
        #expect(!worker.stderr.contains(WorkerEnvironment.skey), "the secret key never appears in logs")
        #expect(worker.stderr.contains("\"level\""), "JSON logs")

        // Publish more, then SIGTERM while they may be in flight.
        let batch2 = (50..<80).map { WorkerEnvironment.hire("W\($0)", id: "w-\($0)", roles: ["sales"]) }
        _ = try await CLIProcess.run(["publish", "--bootstrap", env.cluster.bootstrapServers, "--file", try env.writeEvents(batch2, name: "b2.jsonl")],
                                     directory: env.directory)
        let stopAt = ContinuousClock.now
        worker.signal(SIGTERM)
        let status = await worker.wait(timeout: .seconds(15))
        #expect(status == 0, "exit 0 on SIGTERM: \(worker.stderr.suffix(2000))")
        #expect(ContinuousClock.now - stopAt < .seconds(11), "within the configured 10 s")

        let restarted = try CLIProcess(["run", "--config", config], directory: env.directory)
        let results = try await env.waitForResults(Set((0..<80).map { "w-\($0)" }))
        #expect(results.count == 80, "nothing lost")
        #expect(env.emulator.directory.journal().filter { $0.operation == "create_user" }.count == 80, "nothing applied twice")
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(15)) == 0)
        await env.shutdown()
    }

    @Test("DLQ replay: a fixed cause applies when replayed; --dry-run changes nothing; replaying again changes nothing")
    func dlqReplay() async throws {
        let env = try await WorkerEnvironment()
        let port = WorkerEnvironment.freePort()
        let strict = try env.writeConfig(name: "strict.yaml", httpPort: port, unmapped: "reject")
        var worker = try CLIProcess(["run", "--config", strict], directory: env.directory)
        let event = WorkerEnvironment.hire("A1", id: "astro-1", roles: ["astronaut"])
        _ = try await CLIProcess.run(["publish", "--bootstrap", env.cluster.bootstrapServers, "--file", try env.writeEvents([event], name: "a.jsonl")],
                                     directory: env.directory)
        #expect(try await env.waitForResults(["astro-1"])["astro-1"] == ["dead_lettered"])
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(15)) == 0)

        let list = try await CLIProcess.run(["dlq", "list", "--bootstrap", env.cluster.bootstrapServers, "--json"], directory: env.directory)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("\"dlq-reason\":\"policy\"") && list.stdout.contains("astro-1"))
        let table = try await CLIProcess.run(["dlq", "list", "--bootstrap", env.cluster.bootstrapServers, "--reason", "policy"], directory: env.directory)
        #expect(table.stdout.contains("astronaut") && table.stdout.contains("1 dead letter(s)"))

        // Fix the cause: map the role.
        let fixed = try env.writeConfig(name: "fixed.yaml", httpPort: port, roles: ["engineering": ["Engineering"], "astronaut": ["Space"]], unmapped: "reject")
        worker = try CLIProcess(["run", "--config", fixed], directory: env.directory)
        var endsBefore: [Int64] = []
        for p in 0..<4 { endsBefore.append(try await KafkaAdminClient(configuration: env.kafka, logger: env.logger).watermarks(topic: "hr.employee.lifecycle.v1", partition: Int32(p)).high) }
        let dry = try await CLIProcess.run(["dlq", "replay", "--bootstrap", env.cluster.bootstrapServers, "--event-id", "astro-1", "--dry-run"], directory: env.directory)
        #expect(dry.status == 0 && dry.stdout.contains("would replay astro-1"))
        try await Task.sleep(for: .seconds(2))
        var endsAfterDry: [Int64] = []
        for p in 0..<4 { endsAfterDry.append(try await KafkaAdminClient(configuration: env.kafka, logger: env.logger).watermarks(topic: "hr.employee.lifecycle.v1", partition: Int32(p)).high) }
        #expect(endsAfterDry == endsBefore, "--dry-run publishes nothing")
        #expect(env.emulator.directory.user(username: "a1") == nil)

        let replay = try await CLIProcess.run(["dlq", "replay", "--bootstrap", env.cluster.bootstrapServers, "--reason", "policy"], directory: env.directory)
        #expect(replay.status == 0 && replay.stdout.contains("Replayed 1 dead letter(s)."), "\(replay.stdout)\(replay.stderr)")
        let deadline = ContinuousClock.now + .seconds(60)
        // The command creates the user, then the group, then the membership: wait for its result.
        while try await env.results()["astro-1"]?.count ?? 0 < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(env.emulator.directory.user(username: "a1")?.groups.map(\.name) == ["Space"])
        let writes = env.emulator.directory.journal().count

        // Replaying what was already applied changes nothing.
        _ = try await CLIProcess.run(["dlq", "replay", "--bootstrap", env.cluster.bootstrapServers, "--event-id", "astro-1"], directory: env.directory)
        let outcomes = try await { () async throws -> [String] in
            let end = ContinuousClock.now + .seconds(60)
            while true {
                let o = try await env.results()["astro-1"] ?? []
                if o.count >= 3 || ContinuousClock.now > end { return o }
                try await Task.sleep(for: .milliseconds(500))
            }
        }()
        #expect(outcomes == ["dead_lettered", "applied", "no_change"])
        #expect(env.emulator.directory.journal().count == writes)
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(15)) == 0)
        await env.shutdown()
    }

    @Test("Crash: kill -9 during 2,000 hires, then a restart: every event gets a result, Duo is right, no user created twice")
    func crash() async throws {
        let env = try await WorkerEnvironment(emulatorRateLimit: 400)
        let config = try env.writeConfig(httpPort: WorkerEnvironment.freePort(), requestsPerSecond: 350)
        let events = (0..<2000).map { WorkerEnvironment.hire("K\($0)", id: "k-\($0)", roles: $0 % 2 == 0 ? ["engineering"] : ["sales"]) }
        _ = try await CLIProcess.run(["publish", "--bootstrap", env.cluster.bootstrapServers, "--file", try env.writeEvents(events, name: "k.jsonl")],
                                     directory: env.directory)
        let worker = try CLIProcess(["run", "--config", config], directory: env.directory)
        let deadline = ContinuousClock.now + .seconds(120)
        while env.emulator.directory.journal().filter({ $0.operation == "create_user" }).count < 300 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        worker.signal(SIGKILL)
        _ = await worker.wait(timeout: .seconds(10))
        let before = env.emulator.directory.allUsers.count
        #expect(before > 0 && before < 2000, "killed mid-way (\(before) users)")

        let restarted = try CLIProcess(["run", "--config", config], directory: env.directory)
        let results = try await env.waitForResults(Set(events.map { $0["id"] as! String }), timeout: .seconds(240))
        #expect(results.count == 2000, "every event gets a result")
        #expect(env.emulator.directory.journal().filter { $0.operation == "create_user" }.count == 2000, "no Duo user was created twice")
        let users = env.emulator.directory.allUsers
        #expect(users.count == 2000)
        #expect(users.allSatisfy { u in
            let n = Int(u.username.dropFirst())!
            return Set(u.groups.map(\.name)) == (n % 2 == 0 ? ["Engineering", "VPN"] : ["Sales"])
        })
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(15)) == 0)
        await env.shutdown()
    }
}

/// Issue 12's acceptance: the promise that a leaver stays locked out, under a mix of everything
/// that used to break it, with the worker as a separate process.
@Suite("A leaver stays locked out (1,000 employees)", .serialized, .timeLimit(.minutes(6)))
struct LeaverLockoutProcessTests {
    static func message(_ type: String, _ employee: String, id: String, seq: Int, email: String? = nil, username: String? = nil,
                        roles: [String]? = nil, effective: Date? = nil) throws -> KafkaProducerMessage {
        var data: [String: Any] = ["employee_id": employee, "sequence": seq, "email": email ?? "\(employee.lowercased())@example.com"]
        if let username { data["username"] = username }
        if let roles { data["roles"] = roles }
        if let effective { data["effective_at"] = RFC3339.format(effective) }
        return try LifecycleEventMessage.make(topic: "hr.employee.lifecycle.v1", type: "hr.employee.\(type)", data: data, id: id, source: "urn:test:hr")
    }

    @Test("Future-dated hires and terminations, rescissions, renames during group-add failures and duplicate usernames end right")
    func mixedLifecycle() async throws {
        let env = try await WorkerEnvironment()
        let port = WorkerEnvironment.freePort()
        let config = try env.writeConfig(httpPort: port, requestsPerSecond: 2000)
        let worker = try CLIProcess(["run", "--config", config], directory: env.directory)
        // Ready (partitions assigned) before anything is published, so the schedules below start
        // when the worker can see them.
        let readyBy = ContinuousClock.now + .seconds(60)
        while await WorkerEnvironment.get("http://127.0.0.1:\(port)/readyz")?.status != 200 && ContinuousClock.now < readyBy {
            try await Task.sleep(for: .milliseconds(200))
        }
        let start = Date()
        func due(_ i: Int) -> Date { start.addingTimeInterval(5 + Double(i % 16)) }  // 5 to 20 s from now
        func e(_ i: Int) -> String { String(format: "E%04d", i) }
        let plain = 0..<400, futureHires = 400..<550, leaving = 550..<700, rescinded = 700..<750, renamed = 750..<850, duplicates = 850..<900, leftNow = 900..<1000
        var expectedScheduled = Set<String>()
        var finalOf: [String: Set<String>] = [:]  // event id → acceptable final outcomes

        // Group adds fail while the first batch is applied: the renamed employees' hires wait to retry.
        env.emulator.faults = { var f = DuoEmulatorFaults(); f.failRoutes = ["POST /admin/v1/users/{id}/groups": 503]; return f }()
        var first: [KafkaProducerMessage] = []
        for i in plain.lowerBound..<leftNow.upperBound {
            let id = "\(e(i))-hire"
            switch i {
            case futureHires:
                first.append(try Self.message("hired", e(i), id: id, seq: 1, roles: ["sales"], effective: due(i)))
                expectedScheduled.insert(id)
                finalOf[id] = ["applied"]
            case renamed:
                first.append(try Self.message("hired", e(i), id: id, seq: 1, email: "old\(i)@example.com", roles: ["sales"]))
                finalOf[id] = ["superseded", "applied"]
            case duplicates:
                let pair = (i - duplicates.lowerBound) / 2
                first.append(try Self.message("hired", e(i), id: id, seq: 1, email: "dup\(pair)@\(i % 2 == 0 ? "example.com" : "other.example")", roles: ["sales"]))
                finalOf[id] = ["applied", "dead_lettered"]
            default:
                first.append(try Self.message("hired", e(i), id: id, seq: 1, roles: ["sales"]))
                finalOf[id] = ["applied"]
            }
        }
        try await env.stack.publish(first)
        try await Task.sleep(for: .seconds(2))
        // HR renames employees whose hire is waiting to retry.
        try await env.stack.publish(try renamed.map { i in
            finalOf["\(e(i))-rename"] = ["applied"]
            return try Self.message("updated", e(i), id: "\(e(i))-rename", seq: 2, email: "old\(i)@example.com", username: "new\(i)")
        })
        try await Task.sleep(for: .seconds(1))
        env.emulator.faults = DuoEmulatorFaults()
        // Once the employees who will leave have their accounts, HR gives notice.
        let hired = Array(leaving) + Array(rescinded) + Array(leftNow)
        let hiredBy = ContinuousClock.now + .seconds(120)
        while try await !{ let r = try await env.results(); return hired.allSatisfy { r["\(e($0))-hire"] != nil } }() && ContinuousClock.now < hiredBy {
            try await Task.sleep(for: .seconds(1))
        }
        let notice = Date()
        func leaves(_ i: Int) -> Date { notice.addingTimeInterval(5 + Double(i % 16)) }  // 5 to 20 s after notice
        // Terminations: scheduled ones, immediate ones, and ones rescinded before their date.
        var second: [KafkaProducerMessage] = []
        for i in leaving {
            second.append(try Self.message("terminated", e(i), id: "\(e(i))-leave", seq: 2, effective: leaves(i)))
            expectedScheduled.insert("\(e(i))-leave")
            finalOf["\(e(i))-leave"] = ["applied"]
        }
        for i in rescinded {
            second.append(try Self.message("terminated", e(i), id: "\(e(i))-leave", seq: 2, effective: notice.addingTimeInterval(20)))
            expectedScheduled.insert("\(e(i))-leave")
            finalOf["\(e(i))-leave"] = ["superseded"]
        }
        for i in leftNow {
            second.append(try Self.message("terminated", e(i), id: "\(e(i))-leave", seq: 2))
            finalOf["\(e(i))-leave"] = ["applied"]
        }
        try await env.stack.publish(second)
        try await Task.sleep(for: .seconds(1))
        try await env.stack.publish(try rescinded.map { i in
            finalOf["\(e(i))-rescind"] = ["applied", "no_change"]
            return try Self.message("hired", e(i), id: "\(e(i))-rescind", seq: 3, roles: ["sales"])
        })

        // Every event ends with exactly one final result; scheduled ones said so first.
        var results: [String: [String]] = [:]
        let deadline = ContinuousClock.now + .seconds(150)
        while ContinuousClock.now < deadline {
            results = try await env.results()
            if finalOf.keys.allSatisfy({ (results[$0] ?? []).contains { $0 != "scheduled" } }) { break }
            try await Task.sleep(for: .seconds(1))
        }
        try await Task.sleep(for: .seconds(2))
        results = try await env.results()
        for (id, acceptable) in finalOf {
            let outcomes = results[id] ?? []
            let finals = outcomes.filter { $0 != "scheduled" }
            #expect(finals.count == 1 && acceptable.contains(finals[0]), "\(id): \(outcomes)")
            if expectedScheduled.contains(id) { #expect(outcomes.first == "scheduled", "\(id) reports scheduled first: \(outcomes)") }
        }
        #expect(Date() >= notice.addingTimeInterval(20), "the last scheduled termination was applied at its date, not before")

        let users = env.emulator.directory.allUsers
        let byName = Dictionary(users.map { ($0.username, $0) }, uniquingKeysWith: { a, _ in a })
        // No terminated employee has an active Duo user.
        for i in Array(leaving) + Array(leftNow) {
            #expect(byName[e(i).lowercased()]?.status != .active, "\(e(i)) left")
        }
        // Rescinded terminations left access alone; renamed employees have one user, renamed.
        for i in rescinded { #expect(byName[e(i).lowercased()]?.status == .active, "\(e(i)) stays") }
        for i in renamed {
            #expect(byName["new\(i)"]?.status == .active && byName["old\(i)"] == nil, "\(e(i)) renamed, not duplicated")
        }
        // No employee has two Duo users: one user per username created, one per duplicate pair.
        let created = env.emulator.directory.journal().filter { $0.operation == "create_user" }
        #expect(created.count == users.count, "no user created twice")
        #expect(users.count == 1000 - duplicates.count / 2, "\(users.count) users: one per employee, one per duplicate pair")
        for pair in 0..<(duplicates.count / 2) {
            let outcomes = [duplicates.lowerBound + 2 * pair, duplicates.lowerBound + 2 * pair + 1].map { (results["\(e($0))-hire"] ?? []).last ?? "-" }
            #expect(outcomes.sorted() == ["applied", "dead_lettered"], "pair \(pair): \(outcomes)")
        }
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(20)) == 0)
        await env.shutdown()
    }
}
