import Foundation

/// The Duo state an employee should have: profile, status and managed groups.
///
/// A command carries the full desired state, never a delta, so a newer command can replace an
/// older pending one for the same employee, and applying a command twice changes nothing.
public struct DesiredDuoState: Sendable, Hashable, Codable {
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
    public var username: String?
    public var email: String?
    public var firstName: String?
    public var lastName: String?
    public var displayName: String?
    public var status: Status
    /// The managed groups the user should be in, by Duo group name; `nil` when no event has said
    /// (for example a profile update of an employee never seen hired).
    public var groups: Set<String>?
    public var terminated: Bool
    public var removal: Removal

    public init(employeeID: String, username: String? = nil, email: String? = nil, firstName: String? = nil, lastName: String? = nil,
                displayName: String? = nil, status: Status = .active, groups: Set<String>? = nil, terminated: Bool = false, removal: Removal = .none) {
        self.employeeID = employeeID
        self.username = username
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.displayName = displayName
        self.status = status
        self.groups = groups
        self.terminated = terminated
        self.removal = removal
    }

    /// Duo's `realname`: the display name, or first and last name.
    public var realname: String? {
        if let displayName, !displayName.isEmpty { return displayName }
        let parts = [firstName, lastName].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
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

    public init(employeeID: String, lastAccepted: EventOrdering? = nil, desired: DesiredDuoState? = nil, duoUserID: String? = nil) {
        self.employeeID = employeeID
        self.lastAccepted = lastAccepted
        self.desired = desired ?? DesiredDuoState(employeeID: employeeID)
        self.duoUserID = duoUserID
    }
}
