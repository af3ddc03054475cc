import Foundation

/// One employee as an audit expects them: from the store's remembered state, or from a roster.
public struct AuditEmployee: Sendable, Hashable {
    public var employeeID: String
    public var terminated: Bool
    public var username: String?
    public var email: String?
    public var profile: EmployeeProfile
    /// The managed Duo groups they should be in; nil when nothing says (no roles known).
    public var groups: Set<String>?
    /// The roles a roster gave, for a fix that hires them.
    public var roles: [String]?
    /// Usernames they had before (a rename), so their user is still recognised.
    public var otherUsernames: [String]
    /// A change for them is waiting or being applied: Duo may not match yet, and that is no finding.
    public var inFlight = false

    public init(employeeID: String, terminated: Bool, username: String?, email: String?, profile: EmployeeProfile = EmployeeProfile(),
                groups: Set<String>?, roles: [String]? = nil, otherUsernames: [String] = []) {
        self.employeeID = employeeID
        self.terminated = terminated
        self.username = username
        self.email = email
        self.profile = profile
        self.groups = groups
        self.roles = roles
        self.otherUsernames = otherUsernames
    }
}

/// One Duo user as an audit reads it.
public struct AuditDuoUser: Sendable, Hashable {
    public var userID: String
    public var username: String
    /// Duo's status, lower-case: `active`, `disabled`, `bypass`, `locked out`, `pending deletion`.
    public var status: String
    public var email: String?
    public var firstname: String?
    public var lastname: String?
    public var realname: String?
    public var isEnrolled: Bool
    /// Unix seconds.
    public var created: Int?
    public var lastLogin: Int?
    public var groups: Set<String>

    public init(userID: String, username: String, status: String, email: String?, firstname: String?, lastname: String?, realname: String?,
                isEnrolled: Bool, created: Int?, lastLogin: Int?, groups: Set<String>) {
        self.userID = userID
        self.username = username
        self.status = status.lowercased()
        self.email = email
        self.firstname = firstname
        self.lastname = lastname
        self.realname = realname
        self.isEnrolled = isEnrolled
        self.created = created
        self.lastLogin = lastLogin
        self.groups = groups
    }

    var isActive: Bool { !["disabled", "pending deletion"].contains(status) }
}

/// What an audit found.
public struct AuditFinding: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case leaverActive = "leaver_active", orphanedAccount = "orphaned_account", missingAccount = "missing_account"
        case statusDrift = "status_drift", profileDrift = "profile_drift", groupDrift = "group_drift"
        case notEnrolled = "not_enrolled", dormant
        /// An account nobody employs that the allowlist says to keep (service, break-glass).
        case allowlisted
    }
    public enum Severity: String, Sendable, Codable { case critical, high, medium, low, info }
    /// What `--fix` does about it.
    public enum Fix: String, Sendable, Codable {
        /// A `terminated` event for the employee: the worker locks the user out.
        case terminate
        /// The employee's desired state applied again (an `updated` event, or a `hired` one for a roster employee).
        case reapply
        /// A `terminated` event for the account itself (`reconcile.disable_orphans`).
        case disableOrphan = "disable_orphan"
        /// Nothing automatic: a person looks at it.
        case review
        case none
    }

    public var kind: Kind
    public var severity: Severity
    public var employeeID: String?
    public var duoUserID: String?
    public var username: String?
    public var detail: String
    public var fix: Fix

    public init(kind: Kind, severity: Severity, employeeID: String?, duoUserID: String?, username: String?, detail: String, fix: Fix) {
        self.kind = kind
        self.severity = severity
        self.employeeID = employeeID
        self.duoUserID = duoUserID
        self.username = username
        self.detail = detail
        self.fix = fix
    }

    enum CodingKeys: String, CodingKey { case kind, severity, employeeID = "employee_id", duoUserID = "duo_user_id", username, detail, fix }
}

/// What an audit tolerates and looks for.
public struct AuditPolicy: Sendable {
    /// The groups the worker manages; drift in others is not ours to report.
    public var managedGroups: Set<String>
    /// An active user not enrolled this long after creation is an enrollment gap. Default: 7 days.
    public var enrollmentGrace: TimeInterval = 7 * 86400
    /// An enrolled user without a login this long is dormant. Default: 90 days.
    public var dormantAfter: TimeInterval = 90 * 86400
    /// Glob patterns (`*`, `?`) of usernames that may exist without an employee.
    public var allowlistUsernames: [String] = []
    /// Groups whose members may exist without an employee.
    public var allowlistGroups: Set<String> = []
    /// Whether `--fix` disables orphaned accounts. Default: false (they are reported for review).
    public var disableOrphans = false

    public init(managedGroups: Set<String>) { self.managedGroups = managedGroups }

    func allowlisted(_ user: AuditDuoUser) -> Bool {
        !user.groups.isDisjoint(with: allowlistGroups) || allowlistUsernames.contains { Self.glob($0, matches: user.username.lowercased()) }
    }

    /// `*` any run of characters, `?` one character; case-insensitive.
    public static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.lowercased()), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) { pi += 1; ti += 1 }
            else if pi < p.count && p[pi] == "*" { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// Compares Duo's users, read one at a time, with the employees: memory grows with the employees
/// and the findings, never with Duo's directory.
public struct DirectoryAudit: Sendable {
    public let policy: AuditPolicy
    public let now: Date
    private let employees: [String: AuditEmployee]
    /// Duo user id → employee id, from the store's links.
    private let linked: [String: String]
    /// Lower-cased username → employee id, current names first.
    private let byUsername: [String: String]
    private var matched: Set<String> = []
    public private(set) var findings: [AuditFinding] = []
    public private(set) var usersRead = 0

    public init(employees: [AuditEmployee], links: [(duoUserID: String, employeeID: String)], policy: AuditPolicy, now: Date = Date()) {
        self.policy = policy
        self.now = now
        self.employees = Dictionary(employees.map { ($0.employeeID, $0) }) { _, last in last }
        self.linked = Dictionary(links.map { ($0.duoUserID, $0.employeeID) }) { _, last in last }
        var names: [String: String] = [:]
        for e in employees { for n in e.otherUsernames { names[n.lowercased()] = e.employeeID } }
        for e in employees { if let n = e.username { names[n.lowercased()] = e.employeeID } }
        self.byUsername = names
    }

    /// Checks one Duo user.
    public mutating func observe(_ user: AuditDuoUser) {
        usersRead += 1
        let employeeID = linked[user.userID].flatMap { employees[$0] != nil ? $0 : nil } ?? byUsername[user.username.lowercased()]
        guard let employeeID, let employee = employees[employeeID] else {
            guard user.isActive else { return }
            if policy.allowlisted(user) {
                findings.append(.init(kind: .allowlisted, severity: .info, employeeID: nil, duoUserID: user.userID, username: user.username,
                                      detail: "No employee; kept by the allowlist", fix: .none))
            } else {
                findings.append(.init(kind: .orphanedAccount, severity: .high, employeeID: nil, duoUserID: user.userID, username: user.username,
                                      detail: "Active Duo user linked to no employee", fix: policy.disableOrphans ? .disableOrphan : .review))
            }
            return
        }
        matched.insert(employeeID)
        if employee.inFlight { return }
        func finding(_ kind: AuditFinding.Kind, _ severity: AuditFinding.Severity, _ detail: String, _ fix: AuditFinding.Fix) {
            findings.append(.init(kind: kind, severity: severity, employeeID: employeeID, duoUserID: user.userID, username: user.username, detail: detail, fix: fix))
        }
        if employee.terminated {
            if user.isActive { finding(.leaverActive, .critical, "Terminated in HR, Duo status \(user.status)", .terminate) }
            return
        }
        if !user.isActive { finding(.statusDrift, .medium, "Active in HR, Duo status \(user.status)", .reapply) }
        var differences: [String] = []
        if let email = employee.email, user.email?.lowercased() != email.lowercased() { differences.append("email \(user.email ?? "none") ≠ \(email)") }
        if let first = employee.profile.firstName, user.firstname != first { differences.append("first name \(user.firstname ?? "none") ≠ \(first)") }
        if let last = employee.profile.lastName, user.lastname != last { differences.append("last name \(user.lastname ?? "none") ≠ \(last)") }
        if !differences.isEmpty { finding(.profileDrift, .low, differences.joined(separator: "; "), .reapply) }
        if let wanted = employee.groups.map({ $0.intersection(policy.managedGroups) }) {
            let have = user.groups.intersection(policy.managedGroups)
            if have != wanted {
                let missing = wanted.subtracting(have).sorted(), extra = have.subtracting(wanted).sorted()
                finding(.groupDrift, .medium, [missing.isEmpty ? nil : "missing \(missing.joined(separator: ", "))",
                                               extra.isEmpty ? nil : "extra \(extra.joined(separator: ", "))"].compactMap { $0 }.joined(separator: "; "), .reapply)
            }
        }
        guard user.isActive else { return }
        let nowSeconds = now.timeIntervalSince1970
        if !user.isEnrolled, let created = user.created, nowSeconds - TimeInterval(created) > policy.enrollmentGrace {
            finding(.notEnrolled, .medium, "Not enrolled \(Int((nowSeconds - TimeInterval(created)) / 86400)) days after creation", .review)
        } else if user.isEnrolled, let seen = user.lastLogin ?? user.created, nowSeconds - TimeInterval(seen) > policy.dormantAfter {
            finding(.dormant, .low, user.lastLogin == nil ? "Never logged in since creation \(Int((nowSeconds - TimeInterval(seen)) / 86400)) days ago"
                                                         : "No login for \(Int((nowSeconds - TimeInterval(seen)) / 86400)) days", .review)
        }
    }

    /// Ends the audit: active employees no Duo user belongs to are missing accounts.
    public mutating func finish() -> [AuditFinding] {
        for (id, employee) in employees.sorted(by: { $0.key < $1.key }) where !employee.terminated && !employee.inFlight && !matched.contains(id) {
            findings.append(.init(kind: .missingAccount, severity: .medium, employeeID: id, duoUserID: nil, username: employee.username,
                                  detail: "Active in HR, no Duo user", fix: .reapply))
        }
        return findings
    }

    /// Findings per kind, every kind present (zero when none).
    public static func summary(_ findings: [AuditFinding]) -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: AuditFinding.Kind.allCases.map { ($0.rawValue, 0) })
        for f in findings { counts[f.kind.rawValue, default: 0] += 1 }
        return counts
    }
}
