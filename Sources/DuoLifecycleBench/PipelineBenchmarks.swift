import DuoAdmin
import DuoEmulator
import Foundation
import Kafka
import Logging
import Synchronization

/// The four pipeline scenarios. Each runs the real pipeline end to end.
struct PipelineBenchmarks {
    let logger: Logger
    var store = BenchStore(kind: .sqlite, serverURL: nil, replicas: 1)

    func progress(_ s: String) { FileHandle.standardError.write(Data("  … \(s)\n".utf8)) }

    /// 20,000 events over 10,000 employees, published before the worker starts; no latency, no limit.
    func throughput(report: BenchReport) async throws {
        let env = try await BenchEnvironment(faults: DuoEmulatorFaults(), store: store, logger: logger)
        var messages: [KafkaProducerMessage] = []
        for i in 0..<10_000 {
            let e = "T\(i)"
            messages.append(try BenchEnvironment.event("hired", e, seq: 1, roles: ["engineering"]))
            if i < 2000 { messages.append(try BenchEnvironment.event("hired", e, seq: 2, roles: ["engineering", "sales"])) }
            if i % 10 < 6 { messages.append(try BenchEnvironment.event("role_changed", e, seq: 3, roles: ["support"])) }
            if i % 5 == 4 { messages.append(try BenchEnvironment.event("terminated", e, seq: 4)) }
        }
        progress("publishing \(messages.count) events")
        try await env.publish(messages)
        try await env.startWorker(requestsPerSecond: 100_000, maxConcurrency: 16)
        let peak = Mutex(0.0)
        let sampler = Task { while !Task.isCancelled { if let m = env.workerMemory() { peak.withLock { $0 = max($0, m.peak) } }; try? await Task.sleep(for: .milliseconds(200)) } }
        let results = try await env.awaitResults(count: messages.count, timeout: .seconds(900))
        sampler.cancel()
        if let m = env.workerMemory() { peak.withLock { $0 = max($0, m.peak) } }
        await env.stopWorker()
        guard let first = results.map(\.receivedAt).min(), let last = results.map(\.publishedMs).max() else { throw BenchError("No results arrived") }
        let start = first.timeIntervalSince1970
        let end = Double(last) / 1000
        let seconds = end - start
        let calls = env.emulator.counters.values.flatMap(\.values).reduce(0, +)
        let ceiling = try await emulatorCeiling(env)
        report.record("throughput", "events_per_s", Double(messages.count) / seconds, "events/s")
        report.record("throughput", "duo_calls_per_event", Double(calls) / Double(messages.count), "calls")
        report.record("throughput", "peak_rss_mb", peak.withLock { $0 }, "MB")
        report.record("throughput", "emulator_ceiling_rps", ceiling, "req/s")
        report.record("throughput", "ceiling_ratio", Double(calls) / seconds / ceiling, "ratio")
        await env.shutdown()
    }

    /// 2,000 hires against a Duo that answers in 50 ms, with the worker's default concurrency
    /// (`duo.max_concurrency: 8`) and no client-side rate limit: what latency alone allows.
    func latency(report: BenchReport) async throws {
        var faults = DuoEmulatorFaults()
        faults.latencyMs = 50
        let env = try await BenchEnvironment(faults: faults, store: store, logger: logger)
        let messages = try (0..<2000).map { try BenchEnvironment.event("hired", "S\($0)", seq: 1, roles: $0 % 2 == 0 ? ["engineering"] : ["sales"]) }
        progress("publishing \(messages.count) hires")
        try await env.publish(messages)
        try await env.startWorker(requestsPerSecond: 100_000, maxConcurrency: 8)
        let results = try await env.awaitResults(count: messages.count, timeout: .seconds(600))
        await env.stopWorker()
        guard let first = results.map(\.receivedAt).min(), let last = results.map(\.publishedMs).max() else { throw BenchError("No results arrived") }
        let seconds = Double(last) / 1000 - first.timeIntervalSince1970
        let calls = env.emulator.counters.values.flatMap(\.values).reduce(0, +)
        report.record("latency", "events_per_s", Double(messages.count) / seconds, "events/s")
        report.record("latency", "duo_calls_per_event", Double(calls) / Double(messages.count), "calls")
        await env.shutdown()
    }

    /// 10,000 hires published at once (a backfill: an acquisition, a first sync), with Duo
    /// limited to 10 requests a second, bulk requests on and `worker.max_concurrency` 64 (both
    /// the defaults). One call per change would allow 10 changes a second; bulk requests carry many.
    func backfill(report: BenchReport) async throws {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 10
        let env = try await BenchEnvironment(faults: faults, store: store, logger: logger)
        let count = 10_000
        let messages = try (0..<count).map { try BenchEnvironment.event("hired", "F\($0)", seq: 1, roles: $0 % 2 == 0 ? ["engineering"] : ["sales"]) }
        progress("publishing \(count) hires")
        try await env.publish(messages)
        try await env.startWorker(requestsPerSecond: 10, maxConcurrency: 8)
        let results = try await env.awaitResults(count: count, timeout: .seconds(1800))
        await env.stopWorker()
        guard let first = results.map(\.receivedAt).min(), let last = results.map(\.publishedMs).max() else { throw BenchError("No results arrived") }
        let seconds = Double(last) / 1000 - first.timeIntervalSince1970
        let changes = env.emulator.directory.journal().count
        let counters = env.emulator.counters
        let calls = counters.values.flatMap(\.values).reduce(0, +)
        let throttled = counters.values.compactMap { $0["429"] }.reduce(0, +)
        let applied = env.emulator.directory.allUsers.filter { $0.username.hasPrefix("f") && !$0.groups.isEmpty }.count
        guard applied == count else { throw BenchError("Only \(applied) of \(count) hires are in Duo with their groups") }
        report.record("backfill", "hires_per_s", Double(count) / seconds, "hires/s")
        report.record("backfill", "changes_per_call", Double(changes) / Double(max(1, calls)), "changes")
        report.record("backfill", "duo_calls", Double(calls), "calls")
        report.record("backfill", "fraction_429", Double(throttled) / Double(max(1, calls)), "ratio")
        await env.shutdown()
    }

    /// Requests/s the emulator serves to a tight client loop (signed GETs, 16 at a time, 5 s).
    func emulatorCeiling(_ env: BenchEnvironment) async throws -> Double {
        var config = DuoAdminConfiguration(endpoint: .url(env.stack.emulatorURL), integrationKey: env.stack.options.integrationKey,
                                           secretKey: DuoSecretKey(env.stack.options.secretKey))
        config.requestsPerSecond = nil
        config.maxConcurrency = 16
        config.retry = .disabled
        let client = DuoAdminClient(configuration: config, logger: logger)
        let id = env.emulator.directory.allUsers.first?.userID ?? "DUNONEXISTENT0000000"
        let end = ContinuousClock.now + .seconds(5)
        let total = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var n = 0
                    while ContinuousClock.now < end {
                        _ = try? await client.call(.GET, "/admin/v1/users/\(id)")
                        n += 1
                    }
                    return n
                }
            }
            return await group.reduce(0, +)
        }
        try await client.shutdown()
        return Double(total) / 5
    }

    /// 5,000 hires queued behind a 100 req/s, 20 ms Duo; 5 s later 50 terminations of provisioned users.
    /// 50 leavers, provisioned through the worker first (as in production, the worker knows
    /// their Duo ids), terminated together behind a backlog of 5,000 hires; Duo at 100 req/s with
    /// 20 ms latency. The floor is 50 calls at 100 req/s: 500 ms.
    func lockout(report: BenchReport) async throws {
        let env = try await lockoutEnvironment(leavers: 50, settle: .seconds(5))
        let terminations = try (0..<50).map { try BenchEnvironment.event("terminated", "L\($0)", seq: 2) }
        let published = Date()
        progress("publishing 50 terminations")
        try await env.publish(terminations)
        let disabledAt = try await waitForLockouts(env, leavers: Set((0..<50).map { "leaver\($0)" }), after: 0)
        guard let lastDisable = disabledAt.values.max() else { throw BenchError("No leaver was disabled") }
        // The 5,000 hires' creations before the last lockout (the leavers' own creations excluded).
        let hiresDone = env.emulator.directory.journal().filter {
            $0.operation == "create_user" && $0.timestampMs <= lastDisable && !($0.user?.username.hasPrefix("leaver") ?? false)
        }.count
        let latencies = disabledAt.values.map { Double($0) - published.timeIntervalSince1970 * 1000 }.sorted()
        // The first lockout shows what comes before Duo's rate (consume, ingest, claim); the
        // rest are spaced by that rate (50 disables at 100 req/s: 490 ms from first to last).
        report.record("lockout", "first_ms", latencies.first ?? .nan, "ms")
        report.record("lockout", "p50_ms", percentile(latencies, 50), "ms")
        report.record("lockout", "p95_ms", percentile(latencies, 95), "ms")
        report.record("lockout", "p99_ms", percentile(latencies, 99), "ms")
        report.record("lockout", "max_ms", latencies.last ?? .nan, "ms")
        report.record("lockout", "hires_pending", Double(5000 - hiresDone), "hires")
        await env.shutdown()
    }

    /// One termination every 200 ms while a backlog of 5,000 hires drains (Duo at 100 req/s,
    /// 20 ms latency): publish to disabled, per leaver.
    func lockoutSteady(report: BenchReport) async throws {
        let count = 50
        let env = try await lockoutEnvironment(leavers: count, settle: .seconds(3))
        let after = env.emulator.directory.journal().last?.sequence ?? 0
        progress("publishing one termination every 200 ms")
        var publishedAt: [String: Double] = [:]
        for i in 0..<count {
            publishedAt["leaver\(i)"] = Date().timeIntervalSince1970 * 1000
            try await env.publish([try BenchEnvironment.event("terminated", "L\(i)", seq: 2)])
            try await Task.sleep(for: .milliseconds(200))
        }
        let disabledAt = try await waitForLockouts(env, leavers: Set(publishedAt.keys), after: after)
        let latencies = disabledAt.map { Double($0.value) - (publishedAt[$0.key] ?? 0) }.sorted()
        report.record("lockout_steady", "p50_ms", percentile(latencies, 50), "ms")
        report.record("lockout_steady", "p99_ms", percentile(latencies, 99), "ms")
        report.record("lockout_steady", "max_ms", latencies.last ?? .nan, "ms")
        await env.shutdown()
    }

    /// Duo at 100 req/s with 20 ms latency, a worker, `leavers` leavers provisioned through it,
    /// then a backlog of 5,000 hires published and left to start for `settle`.
    func lockoutEnvironment(leavers: Int, settle: Duration) async throws -> BenchEnvironment {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 100
        faults.latencyMs = 20
        let env = try await BenchEnvironment(faults: faults, store: store, logger: logger)
        try await env.startWorker(requestsPerSecond: 100, maxConcurrency: 8)
        try await provisionLeavers(env, count: leavers)
        progress("publishing 5,000 hires")
        try await env.publish(try (0..<5000).map { try BenchEnvironment.event("hired", "H\($0)", seq: 1, roles: ["sales"]) })
        try await Task.sleep(for: settle)
        return env
    }

    /// Hires leaver0… through the worker and waits until each is applied, so the worker has
    /// linked their Duo users.
    func provisionLeavers(_ env: BenchEnvironment, count: Int) async throws {
        progress("provisioning \(count) leavers through the worker")
        try await env.publish(try (0..<count).map {
            try BenchEnvironment.event("hired", "L\($0)", seq: 1, roles: ["sales"], extra: ["username": "leaver\($0)", "email": "leaver\($0)@example.com"])
        })
        let deadline = ContinuousClock.now + .seconds(120)
        while env.emulator.directory.allUsers.filter({ $0.username.hasPrefix("leaver") }).count < count {
            guard ContinuousClock.now < deadline else { throw BenchError("The leavers were not provisioned in time") }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Their commands finish (and link the users) just after the users appear.
        try await Task.sleep(for: .seconds(2))
    }

    /// When each leaver's Duo user was disabled (journal entries after `after`).
    func waitForLockouts(_ env: BenchEnvironment, leavers: Set<String>, after: Int) async throws -> [String: Int64] {
        let deadline = ContinuousClock.now + .seconds(300)
        var disabledAt: [String: Int64] = [:]
        var seen = after  // Each poll reads only the entries it has not read yet.
        while disabledAt.count < leavers.count && ContinuousClock.now < deadline {
            for entry in env.emulator.directory.journal(after: seen) {
                seen = entry.sequence
                guard entry.operation == "modify_user" else { continue }
                if let u = entry.user, leavers.contains(u.username), u.status == .disabled, disabledAt[u.username] == nil { disabledAt[u.username] = entry.timestampMs }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard disabledAt.count == leavers.count else { throw BenchError("Only \(disabledAt.count) of \(leavers.count) leavers were disabled") }
        return disabledAt
    }

    /// 100,000 events consumed, validated and persisted while Duo fails every request.
    func ingest(report: BenchReport) async throws {
        var faults = DuoEmulatorFaults()
        faults.failAll = 503
        // 24 partitions: the mock cluster keeps about 5 MB per partition, and 100,000 events would overflow 6.
        let env = try await BenchEnvironment(faults: faults, store: store, logger: logger, partitions: 24)
        progress("publishing 100,000 events")
        try await env.publish(try (0..<100_000).map { try BenchEnvironment.event("hired", "I\($0)", seq: 1, roles: ["engineering"]) })
        try await env.startWorker(requestsPerSecond: 1000, maxConcurrency: 8)
        var start: ContinuousClock.Instant?
        var rss10k: Double?, rss100k: Double?
        var count = 0
        let deadline = ContinuousClock.now + .seconds(600)
        while count < 100_000 && ContinuousClock.now < deadline {
            count = await env.inboxCount()
            if count > 0 && start == nil { start = .now }
            if count >= 10_000 && rss10k == nil { rss10k = env.workerMemory()?.rss }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard count >= 100_000, let start else { throw BenchError("Only \(count) of 100,000 events were persisted") }
        let elapsed = ContinuousClock.now - start
        rss100k = env.workerMemory()?.rss
        let seconds = elapsed / .seconds(1)
        report.record("ingest", "events_per_s", 100_000 / seconds, "events/s")
        report.record("ingest", "rss_mb_10k", rss10k ?? .nan, "MB")
        report.record("ingest", "rss_mb_100k", rss100k ?? .nan, "MB")
        await env.shutdown()
    }

    /// 2,000 hires against a Duo limited to 50 req/s: the call rate achieved over a 30 s steady window.
    func ratelimit(report: BenchReport) async throws {
        var faults = DuoEmulatorFaults()
        faults.rateLimit = 50
        let env = try await BenchEnvironment(faults: faults, store: store, logger: logger)
        try await env.publish(try (0..<2000).map { try BenchEnvironment.event("hired", "R\($0)", seq: 1, roles: ["sales"]) })
        try await env.startWorker(requestsPerSecond: 50, maxConcurrency: 8)
        func totals() -> (ok: Int, throttled: Int, all: Int) {
            let values = env.emulator.counters.values
            let all = values.flatMap(\.values).reduce(0, +)
            let throttled = values.compactMap { $0["429"] }.reduce(0, +)
            return (all - throttled, throttled, all)
        }
        while totals().all == 0 { try await Task.sleep(for: .milliseconds(100)) }
        try await Task.sleep(for: .seconds(3))  // past the start-up burst
        progress("measuring for 30 s")
        let before = totals()
        try await Task.sleep(for: .seconds(30))
        let after = totals()
        let accepted = Double(after.ok - before.ok) / 30
        let answered = after.all - before.all
        report.record("ratelimit", "achieved_rps", accepted, "req/s")
        report.record("ratelimit", "limit_rps", 50, "req/s")
        report.record("ratelimit", "fraction_429", answered > 0 ? Double(after.throttled - before.throttled) / Double(answered) : 0, "ratio")
        await env.shutdown()
    }
}
