import ArgumentParser
import DuoAdmin
import Foundation
import Kafka
import Lifecycle
import LifecycleWorker
import Logging

struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Audit Duo against the employees: leavers still active, orphaned and missing accounts, drift, enrollment gaps, dormant users.",
        discussion: """
        The desired side is the store's employees (the worker's store.path or store.url), or --roster, \
        a CSV (header employee_id,status,username,email,first_name,last_name,roles with roles \
        separated by ;) or JSON lines ({"employee_id", "status": "active"|"terminated", "username", \
        "email", "roles": [...]}), which also covers employees the worker has never seen. Duo is read \
        page by page at duo.requests_per_second.

        Finding kinds: leaver_active (critical), orphaned_account, missing_account, status_drift, \
        profile_drift, group_drift (managed groups only), not_enrolled (reconcile.enrollment_grace, \
        default 7d), dormant (reconcile.dormant_after, default 90d), allowlisted \
        (reconcile.allowlist_usernames and allowlist_groups).

        --dry-run (the default) reports. --fix publishes lifecycle events that the worker applies \
        through its command bus: a termination for a leaver, the desired state again for drift and \
        missing accounts; orphans are disabled only with reconcile.disable_orphans: true. Nothing \
        writes to Duo directly. Every run publishes a duo.directory.reconciled report to \
        reconcile.report_topic and each finding to reconcile.findings_topic.

        --format json prints one finding per line, then {"summary": {kind: count}}.
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, csv }

    @Option(help: "The worker's YAML configuration file.") var config: String
    @Option(help: "A roster snapshot (CSV or JSON lines) to audit against instead of the store's employees.") var roster: String?
    @Flag(help: "Report only (the default).") var dryRun = false
    @Flag(help: "Publish the lifecycle events that fix what was found.") var fix = false
    @Option(help: "table, json or csv.") var format: Format = .table
    @Option(help: "Write the findings to this file instead of standard output.") var output: String?

    func validate() throws {
        if dryRun && fix { throw ValidationError("Give --dry-run or --fix, not both") }
    }

    func run() async throws {
        let settings = try loadWorkerConfiguration(config)
        let entries: [RosterEntry]?
        do { entries = try roster.map(RosterEntry.load) } catch let error as RosterError { throw ValidationError(error.description) }
        var logger = Logger(label: "duo-lifecycle.reconcile")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel) ?? .info
        var duo = settings.duo
        duo.retry = DuoRetryPolicy()
        let client = DuoAdminClient(configuration: duo, logger: logger)
        let store = try await WorkerRuntime.openStore(settings, logger: logger)
        let reconciler = DirectoryReconciler(configuration: settings, store: store, client: client, logger: logger)
        let interactive = isatty(STDERR_FILENO) == 1
        let pageLimit = duo.pageLimit
        let report: DirectoryReconciler.Report
        do {
            report = try await reconciler.audit(roster: entries) { p in
                guard interactive else { return }
                let seconds = max(p.elapsed / .seconds(1), 0.001)
                let pages = (p.users + pageLimit - 1) / pageLimit
                Console.err("\r  read \(p.users) Duo users in \(pages) page(s), \(Int(Double(p.users) / seconds)) users/s, \(String(format: "%.1f", Double(pages) / seconds)) pages/s   ")
            }
            if interactive { Console.err("\n") }
        } catch {
            await store.close()
            try? await client.shutdown()
            throw error
        }
        var published = report
        var failure: (any Error)?
        do {
            var producerConfig = KafkaProducerConfiguration(bootstrapServers: settings.kafka.bootstrapServers)
            producerConfig.client = settings.kafka
            producerConfig.client.statisticsInterval = nil
            producerConfig.deliveryTimeout = .seconds(30)
            let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
            if fix { published.fixes = try await reconciler.fixes(for: report, roster: entries) }
            let messages = published.fixes + (try reconciler.reportMessages(published, fixed: fix))
            let failed = await producer.send(batch: messages).compactMap { if case .failure(let e) = $0 { e } else { nil } }
            await producer.shutdown()
            if let first = failed.first { failure = ReconcileFailure("\(failed.count) of \(messages.count) events could not be published: \(first)") }
        } catch {
            failure = error
        }
        await store.close()
        try? await client.shutdown()

        let text = Self.render(report.findings, summary: report.summary, format: format)
        if let output {
            do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch { throw ReconcileFailure("Cannot write \(output): \(error)") }
        } else {
            Console.out(text)
        }
        let note = fix ? "\(published.fixes.count) fix event(s) published to \(settings.pipeline.lifecycleTopics[0])" : "dry run: nothing fixed"
        Console.err("reconcile: \(report.usersRead) Duo users, \(report.employees) employees, \(report.findings.count) finding(s); \(note)\n")
        if let failure { throw failure }
    }

    static func render(_ findings: [AuditFinding], summary: [String: Int], format: Format) -> String {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var lines = findings.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }
            lines.append(String(decoding: (try? encoder.encode(["summary": summary])) ?? Data(), as: UTF8.self))
            return lines.joined(separator: "\n") + "\n"
        case .csv:
            func cell(_ s: String?) -> String {
                guard let s else { return "" }
                return s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
            }
            return (["kind,severity,employee_id,duo_user_id,username,detail,fix"] + findings.map {
                [$0.kind.rawValue, $0.severity.rawValue, $0.employeeID, $0.duoUserID, $0.username, $0.detail, $0.fix.rawValue].map(cell).joined(separator: ",")
            }).joined(separator: "\n") + "\n"
        case .table:
            let header = ["kind", "severity", "employee", "duo user", "username", "detail", "fix"]
            let rows = findings.map { [$0.kind.rawValue, $0.severity.rawValue, $0.employeeID ?? "-", $0.duoUserID ?? "-", $0.username ?? "-", $0.detail, $0.fix.rawValue] }
            let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
            func line(_ c: [String]) -> String { c.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
            var out = ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
            out += "\n\nSummary: " + summary.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return out + (findings.isEmpty ? "nothing found" : "") + "\n"
        }
    }
}

struct ReconcileFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
