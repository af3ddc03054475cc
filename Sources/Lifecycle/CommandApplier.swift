import Foundation

/// The result of applying a command.
public struct ApplyOutcome: Sendable, Hashable {
    /// Duo's user id, when the user exists (or existed until deleted).
    public var userID: String?
    /// The writes made, in order.
    public var operations: [DuoOperationKind]
    /// Set when a deletion is due later; the command must run again then.
    public var deleteAt: Date?
}

/// Why a command could not be applied.
public enum ApplyFailure: Error, Sendable, Hashable {
    /// Duo refused or failed a call; `operations` are the writes that succeeded before it.
    case directory(DirectoryError, operations: [DuoOperationKind], userID: String?)
    /// The policy forbids the change (for example a missing group that may not be created).
    case policy(PolicyViolation)
}

/// Applies a command idempotently: it reads Duo, computes the difference, and makes only the
/// writes needed. Applying the same command again makes no writes.
public struct CommandApplier: Sendable {
    public var mapping: MappingPolicy

    public init(mapping: MappingPolicy) { self.mapping = mapping }

    public func apply(_ command: ProvisioningCommand, knownUserID: String?, directory: some DuoDirectoryPort, now: Date = Date()) async -> Result<ApplyOutcome, ApplyFailure> {
        var done: [DuoOperationKind] = []
        var userID = knownUserID
        do throws(DirectoryError) {
            // Find the user: by the id seen last time (usernames can change), else by username.
            var current: DuoUserSnapshot?
            if let knownUserID { current = try await directory.user(id: knownUserID) }
            if current == nil, let username = command.desired.username { current = try await directory.user(username: username) }
            userID = current?.userID ?? userID

            let wanted = command.desired.groups ?? []
            let existing = try await wanted.isEmpty ? [:] : directory.groupIDs(named: wanted)
            var groupIDs = existing.merging(current?.groups ?? [:]) { a, _ in a }
            let diff: ProvisioningDiff
            switch ProvisioningDiff.compute(desired: command.desired, current: current, existingGroups: Set(existing.keys),
                                            managedGroups: mapping.managedGroups, createMissingGroups: mapping.createMissingGroups, now: now) {
            case .success(let d): diff = d
            case .failure(let violation): return .failure(.policy(violation))
            }

            for op in diff.operations {
                switch op {
                case .createUser(let changes):
                    do {
                        let created = try await directory.createUser(changes)
                        userID = created.userID
                    } catch where error.isConflict {
                        // Someone created it between our read and our write: converge on the next run.
                        throw DirectoryError(code: error.code, message: "User \(changes.username ?? "?") appeared concurrently; will retry", isRetriable: true)
                    }
                case .updateUser(let changes): try await directory.updateUser(id: userID!, changes)
                case .disableUser: try await directory.updateUser(id: userID!, DuoUserChanges(status: "disabled"))
                case .enableUser: try await directory.updateUser(id: userID!, DuoUserChanges(status: "active"))
                case .restoreFromTrash: try await directory.restoreFromTrash(userID: userID!)
                case .createGroup(let name): groupIDs[name] = try await directory.createGroup(name: name)
                case .addGroup(let name): try await directory.addUser(userID!, toGroup: groupIDs[name]!)
                case .removeGroup(let name): try await directory.removeUser(userID!, fromGroup: groupIDs[name]!)
                case .deleteUser: try await directory.deleteUser(id: userID!)
                case .sendToTrash: try await directory.sendToTrash(userID: userID!)
                }
                done.append(op.kind)
            }
            return .success(ApplyOutcome(userID: userID, operations: done, deleteAt: diff.deleteAt))
        } catch {
            return .failure(.directory(error, operations: done, userID: userID))
        }
    }
}
