import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import LifecycleStore
import LifecycleWorker
import Logging
import Synchronization

/// Reading Duo for an audit: 10,000 users at `duo.requests_per_second: 50`, 300 a page. Reports
/// the time against what the paging calls alone need (pages / rate) and how much this process's
/// resident memory grew while reading (the audit streams; it never holds the directory).
struct ReconcileBenchmark {
    let logger: Logger
    var rate = 50.0

    /// 2,000 users, then 10,000: memory that grows with the directory would show as a difference.
    func run(report: BenchReport) async throws {
        for users in [2_000, 10_000] { try await run(users: users, report: report) }
    }

    func run(users: Int, report: BenchReport) async throws {
        let stack = try await EmbeddedStack(options: EmbeddedStack.Options(), logger: logger)
        var seeds: [DuoEmulatorSeedUser] = []
        let now = Int(Date().timeIntervalSince1970)
        for i in 0..<users {
            var u = DuoEmulatorSeedUser(username: String(format: "user%05d", i), email: "user\(i)@example.com", groups: [i % 2 == 0 ? "Sales" : "Engineering"])
            u.isEnrolled = i % 10 != 0
            u.created = now - 30 * 86400
            u.lastLogin = now - 86400
            seeds.append(u)
        }
        _ = stack.emulator.directory.seed(users: seeds, groups: [])
        seeds = []
        var config = try stack.workerConfiguration()
        config.duo.requestsPerSecond = rate
        let store = try SQLiteLifecycleStore(path: stack.storePath())
        var duo = config.duo
        duo.retry = DuoRetryPolicy()
        let client = DuoAdminClient(configuration: duo, logger: logger)
        let reconciler = DirectoryReconciler(configuration: config, store: store, client: client, logger: logger)

        let before = Self.residentMB()
        let peak = Mutex(before)
        let sampler = Task {
            while !Task.isCancelled {
                let now = Self.residentMB()
                peak.withLock { $0 = max($0, now) }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let started = ContinuousClock.now
        let result = try await reconciler.audit(roster: nil)
        let elapsed = (ContinuousClock.now - started) / .seconds(1)
        sampler.cancel()
        let pages = Double((users + duo.pageLimit - 1) / duo.pageLimit)
        report.record("reconcile_\(users)", "users_read", Double(result.usersRead), "users")
        report.record("reconcile_\(users)", "pages", pages, "pages")
        report.record("reconcile_\(users)", "read_seconds", elapsed, "s")
        report.record("reconcile_\(users)", "pages_over_rate_seconds", pages / rate, "s")
        report.record("reconcile_\(users)", "overhead_seconds", elapsed - pages / rate, "s")
        report.record("reconcile_\(users)", "users_per_s", Double(result.usersRead) / elapsed, "users/s")
        report.record("reconcile_\(users)", "rss_growth_while_reading_mb", peak.withLock { $0 } - before, "MB")
        report.record("reconcile_\(users)", "findings", Double(result.findings.count), "findings")
        try await client.shutdown()
        await store.close()
        await stack.shutdown()
    }

    static func residentMB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }
}
