import Foundation

/// How urgent a command is. Terminations come first: a leaver must be locked out within seconds,
/// even behind a backlog of hires.
public enum CommandPriority: Int, Sendable, Codable, Comparable, CaseIterable {
    case termination = 0
    case normal = 10
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A command to bring one employee's Duo user to a desired state. It carries the full state, so it
/// is idempotent and a newer one supersedes an older pending one.
public struct ProvisioningCommand: Sendable, Hashable, Codable {
    public var employeeID: String
    public var desired: DesiredDuoState
    public var priority: CommandPriority
    /// The event that produced it.
    public var eventID: String
    public var eventSource: String
    public var eventType: LifecycleEventType
    /// When to apply it, if not at once: the event's effective date, when it is in the future.
    public var applyAt: Date?

    /// A leaver's command: it goes ahead of everything else, in the Duo client's queues and the
    /// store's, and its writes never share a bulk request. Its priority says so; its desired
    /// state is checked too, so a command stored with the wrong priority is still treated as one.
    public var isLockout: Bool { priority == .termination || desired.terminated }

    public init(employeeID: String, desired: DesiredDuoState, priority: CommandPriority, eventID: String, eventSource: String, eventType: LifecycleEventType) {
        self.employeeID = employeeID
        self.desired = desired
        self.priority = priority
        self.eventID = eventID
        self.eventSource = eventSource
        self.eventType = eventType
    }
}

/// What to do with an event.
public enum PlanDecision: Sendable, Hashable {
    /// Apply this command; remember this new employee state.
    case command(ProvisioningCommand, EmployeeState)
    /// The event is older than the last one accepted for the employee: nothing changes.
    case stale(lastAccepted: EventOrdering)
    /// The event is valid but the policy forbids applying it.
    case rejected(PolicyViolation)
}

/// Turns a lifecycle event and what is known of the employee into a command.
public struct LifecyclePlanner: Sendable {
    public var mapping: MappingPolicy
    public var termination: TerminationPolicy

    public init(mapping: MappingPolicy, termination: TerminationPolicy) {
        self.mapping = mapping
        self.termination = termination
    }

    public func plan(_ event: EmployeeLifecycleEvent, state: EmployeeState?) -> PlanDecision {
        let ordering = event.ordering
        if let last = state?.lastAccepted, ordering.isOlder(than: last) { return .stale(lastAccepted: last) }

        var employee = state ?? EmployeeState(employeeID: event.employeeID)
        var desired = employee.desired
        // Profile fields present in the event replace what was known.
        desired.profile = desired.profile.updated(with: event.profile)
        if desired.username == nil { desired.username = mapping.derivedUsername(email: desired.email, employeeID: event.employeeID) }

        var roleGroups: Set<String>?
        if let roles = event.roles {
            switch mapping.groups(for: roles) {
            case .success(let groups): roleGroups = groups
            case .failure(let violation): return .rejected(violation)
            }
        }

        // A termination whose date is still ahead of this (newer) event has not happened yet.
        let pendingTermination = desired.terminated ? employee.terminationEffectiveAt.flatMap { $0 > event.time ? $0 : nil } : nil
        var applyAt: Date?
        switch event.type {
        case .hired where pendingTermination != nil:
            // A rescinded termination: HR hires again before the leaving date, so access stays.
            desired.terminated = false
            desired.status = .active
            desired.removal = .none
            if let roleGroups { desired.groups = roleGroups }
            employee.terminationEffectiveAt = nil
            applyAt = event.effectiveAt
        case .hired, .updated, .roleChanged:
            // Only a rehire re-enables a leaver: a hire, update or role change after termination
            // updates the profile but leaves the user locked out and their groups as they are.
            // An update never brings a scheduled lockout forward or cancels it: it waits with it.
            if event.type == .hired { employee.activeFrom = event.effectiveAt }
            applyAt = pendingTermination ?? max(event.effectiveAt, employee.activeFrom ?? event.effectiveAt)
            if !desired.terminated {
                desired.status = .active
                if let roleGroups { desired.groups = roleGroups }
            }
        case .rehired:
            employee.activeFrom = event.effectiveAt
            employee.terminationEffectiveAt = nil
            applyAt = event.effectiveAt
            desired.terminated = false
            desired.status = .active
            desired.removal = .none
            desired.groups = roleGroups ?? desired.groups
        case .terminated:
            // Locked out on the effective date, or at once when effective dates are not honoured.
            applyAt = termination.honorEffectiveAt ? event.effectiveAt : nil
            employee.terminationEffectiveAt = applyAt
            desired.terminated = true
            desired.status = .disabled
            if termination.removeManagedGroups { desired.groups = [] }
            switch termination.action {
            case .disable: desired.removal = .none
            case .delete: desired.removal = .delete(at: event.effectiveAt.addingTimeInterval(termination.deleteAfter / .seconds(1)))
            case .trash: desired.removal = .trash
            }
        }

        guard let username = desired.username, !username.isEmpty else {
            return .rejected(PolicyViolation(code: "unknown_user",
                                             message: "Cannot identify the Duo user of employee \(event.employeeID): no username or email is known"))
        }
        desired.username = username
        employee.knownUsernames = [username] + (employee.knownUsernames ?? []).filter { $0 != username }
        employee.desired = desired
        employee.lastAccepted = ordering
        // A command that locks someone out is a termination whatever event carried it (an update
        // during a notice period carries the scheduled lockout too).
        var command = ProvisioningCommand(employeeID: event.employeeID, desired: desired,
                                          priority: desired.terminated ? .termination : .normal,
                                          eventID: event.id, eventSource: event.source, eventType: event.type)
        // Only a date after the event's own time is a schedule; anything else applies at once.
        command.applyAt = applyAt.flatMap { $0 > event.time ? $0 : nil }
        return .command(command, employee)
    }
}
