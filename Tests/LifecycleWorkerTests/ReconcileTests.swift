import DuoAdmin
import DuoEmulator
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Testing

@Suite("Reconciliation", .timeLimit(.minutes(5)))
struct ReconcileTests {
    /// 2,000 Duo users: 1,835 in step with the roster, 25 leavers still active, 60 not enrolled
    /// past the grace period, 30 in the wrong managed groups, 40 orphans and 10 service accounts
    /// the allowlist keeps.
    @Test("A seeded directory: the audit finds exactly the planted leavers, orphans, enrollment gaps, drifted groups and allowlisted accounts; fixing through the bus leaves only the allowlisted and unenrolled")
    func seededDirectory() async throws {
        let h = try await WorkerHarness()
        let now = Int(Date().timeIntervalSince1970)
        let day = 86400
        var seeds: [DuoEmulatorSeedUser] = []
        var roster = "employee_id,status,username,email,roles\n"
        func user(_ name: String, groups: [String], enrolled: Bool = true, created: Int = now - 200 * 86400, lastLogin: Int? = now - 86400) -> DuoEmulatorSeedUser {
            var u = DuoEmulatorSeedUser(username: name, email: "\(name)@example.com", groups: groups)
            u.isEnrolled = enrolled
            u.created = created
            u.lastLogin = enrolled ? lastLogin : nil
            return u
        }
        func employees(_ prefix: String, _ count: Int) -> [String] { (0..<count).map { String(format: "%@%04d", prefix, $0) } }
        for id in employees("N", 1835) {
            seeds.append(user(id.lowercased(), groups: ["Sales"]))
            roster += "\(id),active,\(id.lowercased()),\(id.lowercased())@example.com,sales\n"
        }
        for id in employees("L", 25) {
            seeds.append(user(id.lowercased(), groups: ["Sales"]))
            roster += "\(id),terminated,\(id.lowercased()),\(id.lowercased())@example.com,sales\n"
        }
        for id in employees("U", 60) {
            seeds.append(user(id.lowercased(), groups: ["Sales"], enrolled: false, created: now - 30 * day))
            roster += "\(id),active,\(id.lowercased()),\(id.lowercased())@example.com,sales\n"
        }
        for id in employees("G", 30) {
            seeds.append(user(id.lowercased(), groups: ["Sales"]))
            roster += "\(id),active,\(id.lowercased()),\(id.lowercased())@example.com,engineering\n"
        }
        for name in employees("orphan", 40) { seeds.append(user(name, groups: ["Sales"])) }
        for name in employees("svc-backup-", 10) { seeds.append(user(name, groups: [])) }
        // A user created yesterday and not enrolled yet is within the grace period: not a finding.
        seeds.append(user("n9999", groups: ["Sales"], enrolled: false, created: now - day))
        roster += "N9999,active,n9999,n9999@example.com,sales\n"
        #expect(seeds.count == 2001)
        _ = h.emulator.directory.seed(users: seeds, groups: ["Engineering", "VPN", "Support"])
        let rosterPath = FileManager.default.temporaryDirectory.appendingPathComponent("roster-\(UUID().uuidString).csv").path
        try roster.write(toFile: rosterPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rosterPath) }
        let entries = try RosterEntry.load(path: rosterPath)
        #expect(entries.count == 1951)

        var config = h.workerConfiguration
        config.reconcile.allowlistUsernames = ["svc-*"]
        config.reconcile.disableOrphans = true
        try h.startWorker()
        let store = try SQLiteLifecycleStore(path: h.storePath)
        let client = DuoAdminClient(configuration: config.duo, logger: h.logger)
        let reconciler = DirectoryReconciler(configuration: config, store: store, client: client, logger: h.logger)

        let first = try await reconciler.audit(roster: entries)
        #expect(first.usersRead == 2001)
        var expected = Dictionary(uniqueKeysWithValues: AuditFinding.Kind.allCases.map { ($0.rawValue, 0) })
        expected["leaver_active"] = 25
        expected["orphaned_account"] = 40
        expected["not_enrolled"] = 60
        expected["group_drift"] = 30
        expected["allowlisted"] = 10
        #expect(first.summary == expected)
        func usernames(_ kind: AuditFinding.Kind, in report: DirectoryReconciler.Report) -> Set<String> {
            Set(report.findings.filter { $0.kind == kind }.compactMap(\.username))
        }
        #expect(usernames(.leaverActive, in: first) == Set(employees("l", 25)))
        #expect(usernames(.orphanedAccount, in: first) == Set(employees("orphan", 40)))
        #expect(usernames(.notEnrolled, in: first) == Set(employees("u", 60)))
        #expect(usernames(.groupDrift, in: first) == Set(employees("g", 30)))
        #expect(usernames(.allowlisted, in: first) == Set(employees("svc-backup-", 10)))
        #expect(first.findings.filter { $0.kind == .leaverActive }.allSatisfy { $0.severity == .critical && $0.fix == .terminate })

        // Fixing publishes lifecycle events; the worker applies them and publishes their results.
        let fixes = try await reconciler.fixes(for: first, roster: entries)
        #expect(fixes.count == 25 + 30 + 40)
        #expect(fixes.allSatisfy { $0.topic == WorkerHarness.topic && $0.headers[string: "ce_source"] == "urn:duo-lifecycle:reconcile" })
        try await h.publishRaw(fixes)
        let results = try await h.results(count: fixes.count, timeout: .seconds(180))
        #expect(results.count == fixes.count)
        #expect(Set(results.map(\.outcome)) == ["applied"], "\(Dictionary(grouping: results, by: \.outcome).mapValues(\.count))")

        let second = try await reconciler.audit(roster: entries)
        var after = Dictionary(uniqueKeysWithValues: AuditFinding.Kind.allCases.map { ($0.rawValue, 0) })
        after["not_enrolled"] = 60
        after["allowlisted"] = 10
        #expect(second.summary == after)
        for name in employees("l", 25) + employees("orphan", 40) {
            #expect(h.emulator.directory.user(username: name)?.status == .disabled, "\(name) locked out")
        }
        #expect(Set(h.emulator.directory.user(username: "g0000")?.groups.map(\.name) ?? []) == ["Engineering", "VPN"])
        #expect(h.emulator.directory.user(username: "svc-backup-0000")?.status == .active, "the allowlist keeps service accounts")

        // The report and the findings, as SIEMs read them.
        let messages = try reconciler.reportMessages(second, fixed: false)
        #expect(messages.first?.headers[string: "ce_type"] == "duo.directory.reconciled")
        #expect(messages.dropFirst().count == 70 && messages.dropFirst().allSatisfy { $0.headers[string: "ce_type"] == "duo.directory.finding" })
        try await client.shutdown()
        await h.shutdown()
    }

    @Test("The audit alone: glob allowlists, dormant and enrolled users, status and profile drift, missing accounts, and leavers already disabled")
    func auditRules() {
        let now = Date(timeIntervalSince1970: 2_000_000_000)
        let t = Int(now.timeIntervalSince1970)
        var policy = AuditPolicy(managedGroups: ["Engineering", "Sales"])
        policy.allowlistUsernames = ["svc-?ackup", "break-glass*"]
        policy.allowlistGroups = ["Service Accounts"]
        func duo(_ name: String, status: String = "active", enrolled: Bool = true, lastLogin: Int? = nil, groups: Set<String> = [], email: String? = nil) -> AuditDuoUser {
            AuditDuoUser(userID: "DU-\(name)", username: name, status: status, email: email ?? "\(name)@example.com", firstname: nil, lastname: nil,
                         realname: nil, isEnrolled: enrolled, created: t - 400 * 86400, lastLogin: lastLogin ?? t - 86400, groups: groups)
        }
        let staff = [
            AuditEmployee(employeeID: "E1", terminated: false, username: "ada", email: "ada@example.com", groups: ["Engineering"]),
            AuditEmployee(employeeID: "E2", terminated: true, username: "bob", email: "bob@example.com", groups: []),
            AuditEmployee(employeeID: "E3", terminated: false, username: "cy", email: "cy@example.com", groups: ["Sales"]),
            AuditEmployee(employeeID: "E4", terminated: false, username: "dee", email: "dee@example.com", groups: nil),
            AuditEmployee(employeeID: "E5", terminated: false, username: "eve", email: "eve@example.com", groups: nil, otherUsernames: ["eve.old"]),
            AuditEmployee(employeeID: "E6", terminated: false, username: "fay", email: "fay@example.com", groups: ["Sales"]),
        ]
        var audit = DirectoryAudit(employees: staff, links: [("DU-linked", "E3")], policy: policy, now: now)
        audit.observe(duo("ada", groups: ["Engineering", "Other"]))                 // in step; unmanaged groups ignored
        audit.observe(duo("bob", status: "disabled"))                               // a leaver already locked out
        audit.observe(duo("renamed-by-admin", groups: ["Engineering"]))              // nobody's: an orphan
        audit.observe(AuditDuoUser(userID: "DU-linked", username: "cy-renamed", status: "disabled", email: "cy@example.com", firstname: nil,
                                   lastname: nil, realname: nil, isEnrolled: true, created: t - 400 * 86400, lastLogin: t - 86400, groups: ["Sales"]))
        audit.observe(duo("dee", lastLogin: t - 200 * 86400, email: "dee@elsewhere.example"))  // dormant and profile drift
        audit.observe(duo("eve.old", email: "eve@example.com"))                     // a former username still finds E5
        audit.observe(duo("svc-backup"))
        audit.observe(duo("break-glass-1"))
        audit.observe(duo("robot", groups: ["Service Accounts"]))
        audit.observe(duo("svc-backups"))                                           // the glob does not match: an orphan
        audit.observe(duo("ghost", status: "disabled"))                             // a disabled orphan is nothing to act on
        let findings = audit.finish()
        let kinds = findings.map { "\($0.kind.rawValue):\($0.username ?? $0.employeeID ?? "")" }.sorted()
        #expect(kinds == ["allowlisted:break-glass-1", "allowlisted:robot", "allowlisted:svc-backup", "dormant:dee", "missing_account:fay", "orphaned_account:renamed-by-admin",
                          "orphaned_account:svc-backups", "profile_drift:dee", "status_drift:cy-renamed"], "\(kinds)")
        #expect(AuditPolicy.glob("svc-*", matches: "svc-") && !AuditPolicy.glob("svc-*", matches: "svc") && AuditPolicy.glob("*", matches: ""))
    }

    @Test("reconcile.every inside the worker: a leaver a Duo admin re-enabled by hand is found and locked out again through the bus, and the run's report is published")
    func scheduledReconcileLocksOutAManualReenable() async throws {
        let h = try await WorkerHarness(configureWorker: { $0.reconcile.every = .seconds(1); $0.reconcile.fix = true })
        try h.startWorker()
        try await h.publish([WorkerHarness.event("hired", "S1", seq: 1, roles: ["sales"])])
        try await h.waitUntil("S1 hired") { h.emulator.directory.user(username: "s1")?.status == .active }
        try await h.publish([WorkerHarness.event("terminated", "S1", seq: 2)])
        try await h.waitUntil("S1 locked out") { h.emulator.directory.user(username: "s1")?.status == .disabled }
        let userID = try #require(h.emulator.directory.user(username: "s1")?.userID)
        // A Duo administrator re-enables the leaver by hand.
        let admin = DuoAdminClient(configuration: h.workerConfiguration.duo, logger: h.logger)
        var fields = DuoUserFields()
        fields.status = .active
        let reenabled = try await admin.modifyUser(id: userID, fields)
        try await admin.shutdown()
        // The reconciliation runs every second and may lock S1 out again before Duo is read here:
        // the re-enable is checked in Duo's answer and its journal, not in the state that follows.
        #expect(reenabled.status == .active)
        let reenable = try #require(h.emulator.directory.journal().last { $0.userID == userID && $0.user?.status == .active }).sequence
        try await h.waitUntil("the scheduled reconciliation locks S1 out again", timeout: .seconds(60)) {
            h.emulator.directory.user(id: userID)?.status == .disabled
                && h.emulator.directory.journal(after: reenable).contains { $0.userID == userID && $0.user?.status == .disabled }
        }
        let reports = try await h.read(topic: h.workerConfiguration.reconcile.reportTopic, count: 1, timeout: .seconds(30))
        let report = try #require(reports.first.flatMap { $0.value }.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] })
        #expect(report["mode"] as? String == "fix")
        #expect(reports.first?.headers[string: "ce_type"] == "duo.directory.reconciled")
        await h.shutdown()
    }

    @Test("A roster in JSON lines loads; a bad line is refused naming its line and the rule")
    func rosterJSONLines() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("roster-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            {"employee_id": "E1", "status": "active", "username": "ada", "email": "ada@example.com", "roles": ["engineering"]}

            {"employee_id": "E2", "status": "terminated"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let entries = try RosterEntry.load(path: path)
        #expect(entries == [RosterEntry(employeeID: "E1", terminated: false, username: "ada", email: "ada@example.com", roles: ["engineering"]),
                            RosterEntry(employeeID: "E2", terminated: true)])
        try "{\"employee_id\": \"E3\", \"status\": \"gone\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: RosterError.self) { try RosterEntry.load(path: path) }
        do { _ = try RosterEntry.load(path: path) } catch { #expect("\(error)".contains(":1: status must be active or terminated")) }
        try "employee_id,status,roles\nE4,active,\"sales;support\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try RosterEntry.load(path: path) == [RosterEntry(employeeID: "E4", terminated: false, roles: ["sales", "support"])])
    }

    @Test("A fix never makes a later HR event stale: after a drift fix, the employee's next HR termination (older clock, next sequence) is applied")
    func fixNeverShadowsLaterHREvents() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        // HR's events carry sequence numbers and HR's own clock (ce_time 2026-11-02).
        try await h.publish([WorkerHarness.event("hired", "F1", seq: 1, roles: ["sales"])])
        try await h.waitUntil("F1 hired") { h.emulator.directory.user(username: "f1")?.groups.isEmpty == false }
        // Its result too: until the hire's command is done, the audit leaves F1 alone (a change
        // under way is not drift), and on a loaded machine it can finish after Duo shows the groups.
        #expect(try await h.results(count: 1).map(\.outcome) == ["applied"])
        // A Duo admin removes F1 from Sales; an audit's fix puts it back through the bus.
        let admin = DuoAdminClient(configuration: h.workerConfiguration.duo, logger: h.logger)
        let user = try #require(h.emulator.directory.user(username: "f1"))
        for group in user.groups { try await admin.removeUser(user.userID, fromGroup: group.groupID) }
        try await admin.shutdown()
        let reader = DuoAdminClient(configuration: h.workerConfiguration.duo, logger: h.logger)
        let reconciler = DirectoryReconciler(configuration: h.workerConfiguration, store: try SQLiteLifecycleStore(path: h.storePath),
                                             client: reader, logger: h.logger)
        let report = try await reconciler.audit(roster: nil)
        #expect(report.findings.map(\.kind) == [.groupDrift])
        try await h.publishRaw(try await reconciler.fixes(for: report, roster: nil))
        _ = try await h.results(count: 2)
        try await h.waitUntil("Sales restored") { h.emulator.directory.user(username: "f1")?.groups.map(\.name) == ["Sales"] }
        // HR terminates F1: the next sequence, HR's clock. It must apply, not be stale.
        try await h.publish([WorkerHarness.event("terminated", "F1", seq: 2)])
        let results = try await h.results(count: 3)
        #expect(results.first { $0.eventID == "F1-terminated-2" }?.outcome == "applied", "\(results.map { "\($0.eventID ?? "?"): \($0.outcome)" })")
        #expect(h.emulator.directory.user(username: "f1")?.status == .disabled)
        try await reader.shutdown()
        await h.shutdown()
    }
}
