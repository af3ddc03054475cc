import Foundation

/// The Duo state an employee should have: profile, status and managed groups.
///
/// A command carries the full desired state, never a delta, so a newer command can replace an
/// older pending one for the same employee, and applying a command twice changes nothing.
/// Profile fields read and write through to ``profile`` (`desired.username`).
@dynamicMemberLookup
public struct DesiredDuoState: Sendable, Hashable {
    public enum Status: String, Sendable, Codable { case active, disabled }
    /// What to do with the user beyond disabling it.
    public enum Removal: Sendable, Hashable, Codable {
        case none
        /// Delete the user once this time has passed.
        case delete(at: Date)
        /// Move the user to Duo's Trash.
        case trash
    }

    public var employeeID: String
    public var profile: EmployeeProfile
    public var status: Status
    /// The managed groups the user should be in, by Duo group name; `nil` when no event has said
    /// (for example a profile update of an employee never seen hired).
    public var groups: Set<String>?
    public var terminated: Bool
    public var removal: Removal

    public init(employeeID: String, profile: EmployeeProfile = EmployeeProfile(), status: Status = .active, groups: Set<String>? = nil,
                terminated: Bool = false, removal: Removal = .none) {
        self.employeeID = employeeID
        self.profile = profile
        self.status = status
        self.groups = groups
        self.terminated = terminated
        self.removal = removal
    }

    public subscript<T>(dynamicMember field: WritableKeyPath<EmployeeProfile, T>) -> T {
        get { profile[keyPath: field] }
        set { profile[keyPath: field] = newValue }
    }

    /// Duo's `realname`: the display name, or first and last name.
    public var realname: String? { profile.realname }

    /// Whether applying this state takes access away (disables or deletes a user), which the
    /// mass-deprovision guard counts.
    public var disablesAccess: Bool {
        if case .none = removal { return terminated || status == .disabled }
        return true
    }
}

/// Stored with the profile's fields beside the others (`username`, `email`, … at the top
/// level), as stores written before ``EmployeeProfile`` existed have them.
extension DesiredDuoState: Codable {
    /// Everything but the profile, with the coding Swift synthesises.
    private struct Rest: Codable {
        var employeeID: String
        var status: Status
        var groups: Set<String>?
        var terminated: Bool
        var removal: Removal
    }

    public init(from decoder: any Decoder) throws {
        let rest = try Rest(from: decoder)
        self.init(employeeID: rest.employeeID, profile: try EmployeeProfile(from: decoder), status: rest.status, groups: rest.groups,
                  terminated: rest.terminated, removal: rest.removal)
    }

    public func encode(to encoder: any Encoder) throws {
        try profile.encode(to: encoder)
        try Rest(employeeID: employeeID, status: status, groups: groups, terminated: terminated, removal: removal).encode(to: encoder)
    }
}

/// What the worker remembers about an employee between events.
public struct EmployeeState: Sendable, Hashable, Codable {
    public var employeeID: String
    /// The ordering of the last event accepted; older events are stale.
    public var lastAccepted: EventOrdering?
    /// The desired state after the last accepted event.
    public var desired: DesiredDuoState
    /// Duo's user id, once known.
    public var duoUserID: String?
    /// The start date of the last hire or rehire: changes before it wait for it.
    public var activeFrom: Date?
    /// The leaving date of a termination that is scheduled (honouring `effective_at`).
    public var terminationEffectiveAt: Date?
    /// Every username the employee has had, the most recent first: a user created under an old
    /// name is found (and renamed) even if its id was never recorded.
    public var knownUsernames: [String]?
    /// Whether the last command applied for the employee locked them out (a termination).
    public var lockedOut: Bool?

    public init(employeeID: String, lastAccepted: EventOrdering? = nil, desired: DesiredDuoState? = nil, duoUserID: String? = nil) {
        self.employeeID = employeeID
        self.lastAccepted = lastAccepted
        self.desired = desired ?? DesiredDuoState(employeeID: employeeID)
        self.duoUserID = duoUserID
    }
}
