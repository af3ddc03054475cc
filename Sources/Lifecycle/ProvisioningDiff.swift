import Foundation

/// The Duo operations a result event reports.
public enum DuoOperationKind: String, Sendable, Codable, CaseIterable {
    case createUser = "create_user", updateUser = "update_user", addGroup = "add_group", removeGroup = "remove_group"
    case createGroup = "create_group", disableUser = "disable_user", enableUser = "enable_user", deleteUser = "delete_user"
    case sendToTrash = "send_to_trash"
}

/// One write to make in Duo.
public enum DuoOperation: Sendable, Hashable {
    case createUser(DuoUserChanges)
    case updateUser(DuoUserChanges)
    case disableUser
    case enableUser
    case restoreFromTrash
    case createGroup(name: String)
    case addGroup(name: String)
    case removeGroup(name: String)
    case deleteUser
    case sendToTrash

    public var kind: DuoOperationKind {
        switch self {
        case .createUser: .createUser
        case .updateUser: .updateUser
        case .disableUser: .disableUser
        case .enableUser, .restoreFromTrash: .enableUser
        case .createGroup: .createGroup
        case .addGroup: .addGroup
        case .removeGroup: .removeGroup
        case .deleteUser: .deleteUser
        case .sendToTrash: .sendToTrash
        }
    }
}

/// The difference between a desired state and what Duo has: the writes needed, and nothing more.
public struct ProvisioningDiff: Sendable, Hashable {
    public var operations: [DuoOperation]
    /// Set when a deletion is due later: the command must run again then.
    public var deleteAt: Date?

    /// Computes the writes that bring `current` to `desired`.
    ///
    /// Locking out comes first: disabling is the first write for a leaver, before any group change.
    /// - Parameters:
    ///   - existingGroups: names of the Duo groups that exist.
    ///   - managedGroups: the only groups ever added or removed.
    public static func compute(desired: DesiredDuoState, current: DuoUserSnapshot?, existingGroups: Set<String>,
                               managedGroups: Set<String>, createMissingGroups: Bool, now: Date) -> Result<ProvisioningDiff, PolicyViolation> {
        var ops: [DuoOperation] = []
        var deleteAt: Date?
        guard let current else {
            // Nobody to lock out: a leaver without a Duo user needs nothing.
            if desired.terminated || desired.status == .disabled { return .success(ProvisioningDiff(operations: [])) }
            ops.append(.createUser(DuoUserChanges(profile: desired.profile.duoChanges(from: EmployeeProfile()), status: desired.status.rawValue)))
            for name in (desired.groups ?? []).sorted() {
                if !existingGroups.contains(name) {
                    guard createMissingGroups else { return .failure(missingGroup(name)) }
                    ops.append(.createGroup(name: name))
                }
                ops.append(.addGroup(name: name))
            }
            return .success(ProvisioningDiff(operations: ops))
        }

        let status = current.status.lowercased()
        if desired.removal == .trash {
            if status != "pending deletion" {
                if status != "disabled" { ops.append(.disableUser) }
                ops.append(.sendToTrash)
            }
            return .success(ProvisioningDiff(operations: ops))
        }
        if desired.status == .disabled {
            if status != "disabled" { ops.append(.disableUser) }
        } else if status == "pending deletion" {
            ops.append(.restoreFromTrash)
        } else if status == "disabled" || status == "locked out" {
            ops.append(.enableUser)
        }

        let changes = desired.profile.duoChanges(from: current.profile)
        if !changes.isEmpty { ops.append(.updateUser(DuoUserChanges(profile: changes))) }

        if let wanted = desired.groups {
            let have = Set(current.groups.keys).intersection(managedGroups)
            for name in wanted.subtracting(have).sorted() {
                if !existingGroups.contains(name) {
                    guard createMissingGroups else { return .failure(missingGroup(name)) }
                    ops.append(.createGroup(name: name))
                }
                ops.append(.addGroup(name: name))
            }
            for name in have.subtracting(wanted).sorted() { ops.append(.removeGroup(name: name)) }
        }

        if case .delete(let at) = desired.removal {
            if at <= now { ops = [.deleteUser] } else { deleteAt = at }
        }
        return .success(ProvisioningDiff(operations: ops, deleteAt: deleteAt))
    }

    private static func missingGroup(_ name: String) -> PolicyViolation {
        PolicyViolation(code: "missing_group", message: "Duo group '\(name)' does not exist and mapping.create_missing_groups is false")
    }
}
