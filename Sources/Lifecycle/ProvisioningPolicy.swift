import Foundation

/// How HR roles become Duo groups, and how usernames are found.
public struct MappingPolicy: Sendable, Hashable, Codable {
    /// What to do with a role that maps to no group.
    public enum UnmappedRoles: String, Sendable, Codable { case ignore, reject }
    /// Where a username comes from when an event has none.
    public enum UsernameSource: String, Sendable, Codable {
        /// The part of the email before `@` (the default).
        case emailLocalPart = "email_local_part"
        /// The whole email address.
        case email
        /// The employee id.
        case employeeID = "employee_id"
    }

    /// Role → Duo group names. One role may map to several groups.
    public var roles: [String: [String]]
    /// Default: `ignore`.
    public var unmappedRoles: UnmappedRoles
    /// Default: `emailLocalPart`.
    public var usernameSource: UsernameSource
    /// Whether groups missing in Duo are created. Default: `true`.
    public var createMissingGroups: Bool

    public init(roles: [String: [String]] = [:], unmappedRoles: UnmappedRoles = .ignore,
                usernameSource: UsernameSource = .emailLocalPart, createMissingGroups: Bool = true) {
        self.roles = roles
        self.unmappedRoles = unmappedRoles
        self.usernameSource = usernameSource
        self.createMissingGroups = createMissingGroups
    }

    /// The groups this tool manages: the union of all mapped groups. Only these are ever added to
    /// or removed from a user; any other Duo group on a user is left alone.
    public var managedGroups: Set<String> { Set(roles.values.joined()) }

    /// The Duo groups for a role list, or the roles that have no mapping when those are rejected.
    public func groups(for roleList: [String]) -> Result<Set<String>, PolicyViolation> {
        var groups = Set<String>()
        var unmapped: [String] = []
        for role in roleList {
            if let mapped = roles[role] { groups.formUnion(mapped) } else { unmapped.append(role) }
        }
        if !unmapped.isEmpty && unmappedRoles == .reject {
            return .failure(PolicyViolation(code: "unmapped_role",
                                            message: "Roles with no Duo group mapping: \(unmapped.sorted().joined(separator: ", ")) (mapping.unmapped_roles is reject)"))
        }
        return .success(groups)
    }

    /// A username derived from the event's fields.
    /// The first part of an address that `@` does not split further: its local part. (ASCII
    /// byte by byte, as this runs for every event; anything else by characters.)
    static func localPart(_ email: String) -> String? {
        guard email.utf8.allSatisfy({ $0 < 0x80 }) else { return email.split(separator: "@").first.map(String.init) }
        return email.utf8.split(separator: UInt8(ascii: "@")).first.map { String(decoding: $0, as: UTF8.self) }
    }

    public func derivedUsername(email: String?, employeeID: String) -> String? {
        switch usernameSource {
        case .emailLocalPart: return email.flatMap(Self.localPart)
        case .email: return email
        case .employeeID: return employeeID
        }
    }
}

/// What happens to a leaver in Duo.
public struct TerminationPolicy: Sendable, Hashable, Codable {
    public enum Action: String, Sendable, Codable {
        /// Set status `disabled` and keep the user (the default).
        case disable
        /// Disable at once, then delete after ``TerminationPolicy/deleteAfter``.
        case delete
        /// Disable at once and move the user to Duo's Trash.
        case trash
    }

    /// Default: `disable`.
    public var action: Action
    /// The grace period before deletion, for `delete`. Default: 30 days.
    public var deleteAfter: Duration
    /// Whether managed groups are removed on termination. Default: `false`.
    public var removeManagedGroups: Bool
    /// Whether a termination waits for its `effective_at`. `false` locks a leaver out as soon as
    /// the event arrives, whatever its date (companies that lock out at notice). Default: `true`.
    public var honorEffectiveAt: Bool

    public init(action: Action = .disable, deleteAfter: Duration = .seconds(30 * 86400), removeManagedGroups: Bool = false, honorEffectiveAt: Bool = true) {
        self.action = action
        self.deleteAfter = deleteAfter
        self.removeManagedGroups = removeManagedGroups
        self.honorEffectiveAt = honorEffectiveAt
    }
}

/// An event that is valid but that the configured policy does not allow to apply.
public struct PolicyViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}
