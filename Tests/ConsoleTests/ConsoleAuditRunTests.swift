import DuoAdmin
import Foundation
@testable import LifecycleConsole
import LifecycleStore
import LifecycleWorker
import Logging
import Prometheus
import Testing

@Suite("Dry-run audits started from the console")
struct ConsoleAuditRunTests {
    /// A store whose writes fail, as a full disk or a lost database would make them.
    struct WritesFail: ForwardingLifecycleStore {
        struct Refused: Error, CustomStringConvertible { var description: String { "the store refused the write" } }
        let inner: any LifecycleStore
        func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T { throw Refused() }
    }

    @Test("An audit whose audit-trail entry cannot be written is not left marked as running, and can be started again")
    func failedAuditTrailWriteDoesNotLeaveTheAuditRunning() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("console-audit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "console-audit-test-secret-0123456789abcdef".write(toFile: directory + "/skey", atomically: true, encoding: .utf8)
        // Nothing listens on the Kafka or Duo addresses: the audit trail write fails before either is used.
        let configuration = try WorkerConfiguration.parse(yaml: """
            kafka:
              bootstrap_servers: "127.0.0.1:9"
            duo:
              api_url: http://127.0.0.1:9
              ikey: DICONSOLEAUDITTEST01
              skey_file: \(directory)/skey
            store:
              path: \(directory)/store.sqlite
            """)
        var logger = Logger(label: "console.test")
        logger.logLevel = .critical
        let client = DuoAdminClient(configuration: configuration.duo, logger: logger)
        let runtime = try WorkerRuntime(configuration: configuration, store: WritesFail(inner: try SQLiteLifecycleStore(path: configuration.storePath)),
                                        client: client, registry: PrometheusCollectorRegistry(), logger: logger)
        let console = ConsoleServer(runtime: runtime, logger: logger)
        let ops = Principal(name: "ops", role: .operator, sessionID: "token:ops:operator", fromSession: false)

        for _ in 0..<2 {
            await #expect(throws: WritesFail.Refused.self) { _ = try await console.runAudit(ops) }
            #expect(!runtime.latestReconcile.isRunning, "no audit runs, so none is shown as running")
            let page = console.findings(ops, kind: nil).body.text
            #expect(page.contains("Run a dry-run audit now"), "the operator is offered the button again")
            #expect(!page.contains("one is running now"))
        }
        try await client.shutdown()
    }
}
