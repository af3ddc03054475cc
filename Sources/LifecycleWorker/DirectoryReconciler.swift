import DuoAdmin
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleTools
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One line of a roster: an employee as HR has them now.
public struct RosterEntry: Sendable, Hashable {
    public var employeeID: String
    public var terminated: Bool
    public var username: String?
    public var email: String?
    public var firstName: String?
    public var lastName: String?
    public var roles: [String]

    public init(employeeID: String, terminated: Bool, username: String? = nil, email: String? = nil, firstName: String? = nil,
                lastName: String? = nil, roles: [String] = []) {
        self.employeeID = employeeID
        self.terminated = terminated
        self.username = username
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.roles = roles
    }

    /// A CSV file (a header naming `employee_id`, `status`, and any of `username`, `email`,
    /// `first_name`, `last_name`, `roles` with roles separated by `;`) or JSON lines
    /// (`{"employee_id", "status": "active"|"terminated", "username", "email", "roles": [...]}`).
    public static func load(path: String) throws -> [RosterEntry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw RosterError("Cannot read the roster \(path)") }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard let first = lines.first else { return [] }
        if first.trimmingCharacters(in: .whitespaces).hasPrefix("{") {
            return try lines.enumerated().map { n, line in
                guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                    throw RosterError("\(path):\(n + 1): not a JSON object")
                }
                return try entry(o, at: "\(path):\(n + 1)")
            }
        }
        let header = csvFields(first).map { $0.lowercased() }
        guard header.contains("employee_id"), header.contains("status") else { throw RosterError("\(path):1: the CSV header must name employee_id and status") }
        return try lines.dropFirst().enumerated().map { n, line in
            let fields = csvFields(line)
            var o: [String: Any] = [:]
            for (i, name) in header.enumerated() where i < fields.count && !fields[i].isEmpty {
                o[name] = name == "roles" ? fields[i].split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) } : fields[i]
            }
            return try entry(o, at: "\(path):\(n + 2)")
        }
    }

    private static func entry(_ o: [String: Any], at: String) throws -> RosterEntry {
        guard let id = o["employee_id"] as? String, !id.isEmpty else { throw RosterError("\(at): employee_id is required") }
        guard let status = (o["status"] as? String)?.lowercased(), ["active", "terminated"].contains(status) else {
            throw RosterError("\(at): status must be active or terminated")
        }
        return RosterEntry(employeeID: id, terminated: status == "terminated", username: o["username"] as? String, email: o["email"] as? String,
                           firstName: o["first_name"] as? String, lastName: o["last_name"] as? String, roles: o["roles"] as? [String] ?? [])
    }

    /// A CSV line's fields, with RFC 4180 quoting.
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" { if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false } } else { field.append(c) }
            } else if c == "\"" { quoted = true } else if c == "," { fields.append(field); field = "" } else { field.append(c) }
        }
        fields.append(field)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

public struct RosterError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Audits Duo against the employees (the store's, or a roster's) and, when asked, fixes what it
/// finds by publishing lifecycle events, so every fix goes through the worker's command bus
/// (priorities, results, dead letters, the ordering guard) and nothing here writes to Duo.
public struct DirectoryReconciler: Sendable {
    public struct Progress: Sendable { public var users: Int; public var elapsed: Duration }
    public struct Report: Sendable {
        public var runID: String
        public var findings: [AuditFinding]
        public var usersRead: Int
        public var employees: Int
        public var fixes: [KafkaProducerMessage] = []
        public var startedAt: Date
        public var finishedAt: Date
        public var summary: [String: Int] { DirectoryAudit.summary(findings) }
    }

    let configuration: WorkerConfiguration
    let store: any LifecycleStore
    let client: DuoAdminClient
    let logger: Logger

    public init(configuration: WorkerConfiguration, store: any LifecycleStore, client: DuoAdminClient, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.client = client
        self.logger = logger
    }

    public var policy: AuditPolicy {
        let rc = configuration.reconcile
        var p = AuditPolicy(managedGroups: configuration.pipeline.mapping.managedGroups)
        p.enrollmentGrace = rc.enrollmentGrace / .seconds(1)
        p.dormantAfter = rc.dormantAfter / .seconds(1)
        p.allowlistUsernames = rc.allowlistUsernames
        p.allowlistGroups = Set(rc.allowlistGroups)
        p.disableOrphans = rc.disableOrphans
        return p
    }

    /// Reads Duo page by page (never holding the directory) and compares it with the employees.
    public func audit(roster: [RosterEntry]?, now: Date = Date(), progress: @Sendable (Progress) -> Void = { _ in }) async throws -> Report {
        let started = ContinuousClock.now
        let states = try await store.allEmployeeStates()
        let links = try await store.allDuoLinks()
        // Employees with a change waiting or under way are not compared: Duo may simply not have it yet.
        let busy = Set(try await store.allCommands().filter { [.pending, .retry, .running, .held].contains($0.state) }.map(\.command.employeeID))
        let mapping = configuration.pipeline.mapping
        var employees: [AuditEmployee]
        if let roster {
            let known = Dictionary(states.map { ($0.employeeID, $0) }) { _, last in last }
            employees = roster.map { r in
                let username = r.username ?? known[r.employeeID]?.desired.username ?? mapping.derivedUsername(email: r.email, employeeID: r.employeeID)
                let groups = (try? mapping.groups(for: r.roles).get()) ?? nil
                return AuditEmployee(employeeID: r.employeeID, terminated: r.terminated, username: username, email: r.email,
                                     profile: EmployeeProfile(username: username, email: r.email, firstName: r.firstName, lastName: r.lastName),
                                     groups: groups, roles: r.roles, otherUsernames: known[r.employeeID]?.knownUsernames ?? [])
            }
        } else {
            employees = states.map { s in
                AuditEmployee(employeeID: s.employeeID, terminated: s.desired.terminated, username: s.desired.username, email: s.desired.email,
                              profile: s.desired.profile, groups: s.desired.groups, otherUsernames: s.knownUsernames ?? [])
            }
        }
        for i in employees.indices where busy.contains(employees[i].employeeID) { employees[i].inFlight = true }
        var audit = DirectoryAudit(employees: employees, links: links.map { ($0.duoUserID, $0.employeeID) }, policy: policy, now: now)
        for try await user in client.users() {
            audit.observe(AuditDuoUser(userID: user.userID, username: user.username, status: user.status.rawValue, email: user.email,
                                       firstname: user.firstname, lastname: user.lastname, realname: user.realname, isEnrolled: user.isEnrolled ?? false,
                                       created: user.created, lastLogin: user.lastLogin, groups: Set(user.groups.map(\.name))))
            if audit.usersRead % 100 == 0 { progress(Progress(users: audit.usersRead, elapsed: ContinuousClock.now - started)) }
        }
        progress(Progress(users: audit.usersRead, elapsed: ContinuousClock.now - started))
        let findings = audit.finish()
        for (kind, count) in DirectoryAudit.summary(findings) {
            Gauge(label: "duo_lifecycle_reconcile_findings", dimensions: [("kind", kind)]).record(count)
        }
        return Report(runID: UUID().uuidString.lowercased(), findings: findings, usersRead: audit.usersRead, employees: employees.count,
                      startedAt: Date().addingTimeInterval(-((ContinuousClock.now - started) / .seconds(1))), finishedAt: Date())
    }

    /// The lifecycle events that fix what can be fixed: one per employee (a termination wins
    /// over a re-apply), and one per orphan when `reconcile.disable_orphans` is on.
    public func fixes(for report: Report, roster: [RosterEntry]?) async throws -> [KafkaProducerMessage] {
        let states = Dictionary(try await store.allEmployeeStates().map { ($0.employeeID, $0) }) { _, last in last }
        let topic = configuration.pipeline.lifecycleTopics[0]
        let source = "urn:duo-lifecycle:reconcile"
        let rosterByID = Dictionary((roster ?? []).map { ($0.employeeID, $0) }) { _, last in last }
        var byEmployee: [String: AuditFinding.Fix] = [:]
        var leaverUsernames: [String: String] = [:]
        var orphans: [String] = []
        for f in report.findings {
            switch f.fix {
            case .terminate:
                if let e = f.employeeID { byEmployee[e] = .terminate; leaverUsernames[e] = leaverUsernames[e] ?? f.username }
            case .reapply: if let e = f.employeeID, byEmployee[e] == nil { byEmployee[e] = .reapply }
            case .disableOrphan: if let u = f.username { orphans.append(u) }
            case .review, .none: break
            }
        }
        var messages: [KafkaProducerMessage] = []
        /// A fix carries the employee's last accepted ordering (equal is not older, so it applies)
        /// and never advances it: an HR event that comes later, with its own older clock, is never
        /// made stale by a fix. Without a known ordering it is as old as can be, for the same reason.
        func ordering(_ employee: String, _ data: inout [String: Any]) -> Date {
            guard let last = states[employee]?.lastAccepted else { return Date(timeIntervalSince1970: 0) }
            if let sequence = last.sequence { data["sequence"] = sequence }
            return last.time
        }
        for (employee, fix) in byEmployee.sorted(by: { $0.key < $1.key }) {
            let id = "reconcile-\(report.runID)-\(employee)"
            if fix == .terminate {
                // With the active account's username, so a leaver the worker never saw is found too.
                var data: [String: Any] = ["employee_id": employee]
                if states[employee]?.desired.username == nil, let username = leaverUsernames[employee] { data["username"] = username }
                let time = ordering(employee, &data)
                messages.append(try LifecycleEventMessage.make(topic: topic, type: "hr.employee.terminated", data: data, id: id, source: source, time: time))
                continue
            }
            if let r = rosterByID[employee] {
                // A roster employee: hired with what the roster says (a hire never re-enables a leaver).
                var data: [String: Any] = ["employee_id": employee, "roles": r.roles]
                if let v = r.email { data["email"] = v }
                if let v = r.username { data["username"] = v }
                if let v = r.firstName { data["first_name"] = v }
                if let v = r.lastName { data["last_name"] = v }
                // A hire needs an email; a roster line without one is reported, not fixed.
                guard data["email"] != nil else { continue }
                let time = ordering(employee, &data)
                messages.append(try LifecycleEventMessage.make(topic: topic, type: "hr.employee.hired", data: data, id: id, source: source, time: time))
            } else {
                // A store employee: an update carrying what is already desired, so the worker
                // applies the employee's whole desired state again.
                let state = states[employee]
                var data: [String: Any] = ["employee_id": employee]
                if let v = state?.desired.email { data["email"] = v } else if let v = state?.desired.username { data["username"] = v }
                guard data.count > 1 else { continue }
                let time = ordering(employee, &data)
                messages.append(try LifecycleEventMessage.make(topic: topic, type: "hr.employee.updated", data: data, id: id, source: source, time: time))
            }
        }
        for username in orphans.sorted() {
            // The account has no employee: a termination for one named after it, carrying its
            // username, makes the worker find it, link it and disable it.
            messages.append(try LifecycleEventMessage.make(topic: topic, type: "hr.employee.terminated",
                                                           data: ["employee_id": "duo-orphan:\(username)", "username": username],
                                                           id: "reconcile-\(report.runID)-orphan-\(username)", source: source,
                                                           time: Date(timeIntervalSince1970: 0)))
        }
        return messages
    }

    /// The run's report event, and one event per finding, for SIEMs.
    public func reportMessages(_ report: Report, fixed: Bool) throws -> [KafkaProducerMessage] {
        let rc = configuration.reconcile
        let source = "urn:duo-lifecycle:reconcile"
        var data: [String: Any] = [
            "run_id": report.runID, "mode": fixed ? "fix" : "dry_run", "users_read": report.usersRead, "employees": report.employees,
            "started_at": RFC3339.format(report.startedAt), "finished_at": RFC3339.format(report.finishedAt),
            "counts": report.summary, "fixes_published": report.fixes.count,
        ]
        data["findings"] = report.findings.count
        var messages = [try Self.event(topic: rc.reportTopic, type: "duo.directory.reconciled", key: report.runID, data: data,
                                       id: "reconciled-\(report.runID)", source: source)]
        for (i, f) in report.findings.enumerated() {
            var d: [String: Any] = ["run_id": report.runID, "kind": f.kind.rawValue, "severity": f.severity.rawValue, "detail": f.detail, "fix": f.fix.rawValue]
            if let v = f.employeeID { d["employee_id"] = v }
            if let v = f.duoUserID { d["duo_user_id"] = v }
            if let v = f.username { d["username"] = v }
            messages.append(try Self.event(topic: rc.findingsTopic, type: "duo.directory.finding", key: f.employeeID ?? f.duoUserID ?? report.runID,
                                           data: d, id: "finding-\(report.runID)-\(i)", source: source))
        }
        return messages
    }

    static func event(topic: String, type: String, key: String, data: [String: Any], id: String, source: String) throws -> KafkaProducerMessage {
        let value = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
        return KafkaProducerMessage(topic: topic, key: Array(key.utf8), value: Array(value), headers: [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: id), KafkaHeader(key: "ce_source", string: source),
            KafkaHeader(key: "ce_type", string: type), KafkaHeader(key: "ce_time", string: RFC3339.format(Date())),
            KafkaHeader(key: "ce_subject", string: key), KafkaHeader(key: "content-type", string: "application/json"),
        ])
    }
}

/// `reconcile.every`: audits the store's employees against Duo on a schedule inside `run`, under
/// a lock all replicas sharing the store respect; the report, the findings and (with
/// `reconcile.fix`) the fix events go through the outbox like results.
/// The newest reconcile report this process made.
public final class LatestReconcile: Sendable {
    private let report = Mutex<DirectoryReconciler.Report?>(nil)
    private let running = Mutex(false)
    public init() {}
    public var value: DirectoryReconciler.Report? { report.withLock { $0 } }
    public func set(_ r: DirectoryReconciler.Report) { report.withLock { $0 = r } }
    /// Marks a run as started; false when one is already going.
    public func begin() -> Bool { running.withLock { r in defer { r = true }; return !r } }
    public func end() { running.withLock { $0 = false } }
    public var isRunning: Bool { running.withLock { $0 } }
}

struct ScheduledReconcile: Service {
    let reconciler: DirectoryReconciler
    let store: any LifecycleStore
    let every: Duration
    let fix: Bool
    let latest: LatestReconcile
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            do {
                try await store.withExclusiveLock("reconcile") {
                    var report = try await reconciler.audit(roster: nil)
                    if fix { report.fixes = try await reconciler.fixes(for: report, roster: nil) }
                    let messages = report.fixes + (try reconciler.reportMessages(report, fixed: fix))
                    let outbox = messages.map {
                        NewOutboxMessage(kind: .result, topic: $0.topic, key: $0.key, value: $0.value, headers: $0.headers.map { MessageHeader(name: $0.key, value: $0.value) })
                    }
                    try await store.write { tx in for m in outbox { try await tx.enqueue(m) } }
                    latest.set(report)
                    let found = report.summary.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    if (report.summary["leaver_active"] ?? 0) > 0 {
                        logger.critical("Reconciliation found leavers still active in Duo", metadata: ["findings": "\(found)", "fixes": "\(report.fixes.count)"])
                    } else {
                        logger.info("Reconciliation done", metadata: ["users": "\(report.usersRead)", "findings": "\(found)", "fixes": "\(report.fixes.count)"])
                    }
                }
            } catch {
                logger.error("Scheduled reconciliation failed; it runs again at the next interval", metadata: ["error": "\(error)"])
            }
        }
    }
}
