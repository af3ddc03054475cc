import Foundation

/// The profile fields an employee has in HR and a user has in Duo: the one list of them that the
/// event, the desired state, the diff and the Duo adapter share.
///
/// `nil` means "not known" (or, in a change, "leave alone"). On the Duo side `displayName` holds
/// Duo's `realname`.
public struct EmployeeProfile: Sendable, Hashable, Codable {
    public var username: String?
    public var email: String?
    public var firstName: String?
    public var lastName: String?
    public var displayName: String?

    public init(username: String? = nil, email: String? = nil, firstName: String? = nil, lastName: String? = nil, displayName: String? = nil) {
        self.username = username
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.displayName = displayName
    }

    /// Every field of the profile, for code that treats them alike.
    static let fields: [WritableKeyPath<EmployeeProfile, String?> & Sendable] = [\.username, \.email, \.firstName, \.lastName, \.displayName]

    /// No field is set.
    public var isEmpty: Bool { Self.fields.allSatisfy { self[keyPath: $0] == nil } }

    /// This profile with every field that `newer` sets replaced by `newer`'s value.
    public func updated(with newer: EmployeeProfile) -> EmployeeProfile {
        var merged = self
        for field in Self.fields { if let value = newer[keyPath: field] { merged[keyPath: field] = value } }
        return merged
    }

    /// Duo's `realname`: the display name, or first and last name.
    public var realname: String? {
        if let displayName, !displayName.isEmpty { return displayName }
        let parts = [firstName, lastName].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// The fields to write so that a Duo user whose profile is `current` gets this one: the
    /// username, the realname (as `displayName`), email (compared without case), first and last
    /// name, each only when it is known here and differs there.
    public func duoChanges(from current: EmployeeProfile) -> EmployeeProfile {
        var changes = EmployeeProfile()
        if let v = username, v != current.username { changes.username = v }
        if let v = realname, v != (current.displayName ?? "") { changes.displayName = v }
        if let v = email, v.lowercased() != (current.email ?? "").lowercased() { changes.email = v }
        if let v = firstName, v != (current.firstName ?? "") { changes.firstName = v }
        if let v = lastName, v != (current.lastName ?? "") { changes.lastName = v }
        return changes
    }
}
