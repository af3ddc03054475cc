// Lifecycle owns the domain: events and their contracts, mapping and termination policy, ordering,
// desired state, the difference with Duo and the idempotent applier. It does no I/O.
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
    /// The policy forbids the change (for example a missing group that may not be created), or
    /// the Duo user belongs to another employee (code `conflict`).
    case policy(PolicyViolation)
}

/// What the worker knows of an employee's Duo identity: the Duo users linked to them (the most
/// recent first) and the usernames they have had (the most recent first).
public struct KnownIdentity: Sendable, Hashable {
    public var userIDs: [String]
    public var usernames: [String]
    /// The employee's last applied command already locked them out. A termination then reads Duo
    /// before writing (a replay makes no write); otherwise its first call is the disable.
    public var lockedOut: Bool

    public init(userIDs: [String] = [], usernames: [String] = [], lockedOut: Bool = false) {
        self.userIDs = userIDs
        self.usernames = usernames
        self.lockedOut = lockedOut
    }
}

/// Which employee each Duo user belongs to. The applier claims a user the moment it finds or
/// creates it, before writing to it, so an id is never lost to a retry and one employee never
/// changes another's user.
public protocol IdentityLedger: Sendable {
    /// Links the Duo user to the employee (recording its username) and returns nil, or returns
    /// the other employee it already belongs to, recording nothing.
    func claim(duoUserID: String, username: String, for employeeID: String) async throws(DirectoryError) -> String?
}

/// Applies a command idempotently: it reads Duo, computes the difference, and makes only the
/// writes needed. Applying the same command again makes no writes.
public struct CommandApplier: Sendable {
    public var mapping: MappingPolicy

    public init(mapping: MappingPolicy) { self.mapping = mapping }

    public func apply(_ command: ProvisioningCommand, known: KnownIdentity, directory: some DuoDirectoryPort, ledger: some IdentityLedger,
                      now: Date = Date()) async -> Result<ApplyOutcome, ApplyFailure> {
        var done: [DuoOperationKind] = []
        let userID = known.userIDs.first
        // Lockout first: a leaver whose Duo user is known is disabled with the command's first
        // call, before any read, so the lockout never waits for one. The rest of the command
        // (reading Duo, profile and group changes, other linked users, trash or deletion) follows
        // at normal priority. A linked user Duo no longer has is looked for as usual.
        if command.desired.terminated, !known.lockedOut, let id = userID {
            do throws(DirectoryError) {
                try await directory.updateUser(id: id, DuoUserChanges(status: "disabled"))
                done.append(.disableUser)
            } catch where error.isNotFound {
                // Gone from Duo: the full path below finds the user, if any.
            } catch {
                return .failure(.directory(error, operations: done, userID: userID))
            }
            if !done.isEmpty {
                let rest = await directory.afterLockout {
                    await self.converge(command, known: known, directory: directory, ledger: ledger, now: now)
                }
                return rest.map { ApplyOutcome(userID: $0.userID, operations: done + $0.operations, deleteAt: $0.deleteAt) }
                    .mapError { failure in
                        guard case .directory(let error, let operations, let id) = failure else { return failure }
                        return .directory(error, operations: done + operations, userID: id)
                    }
            }
        }
        // An employee never linked to a Duo user and never known by another name, hired: the user
        // is created without looking it up by name first, one call fewer per hire (and a write that can share a bulk request).
        // If Duo refuses the creation (the name is taken, by this employee's earlier attempt or
        // by someone else), the command runs again the usual way, which finds the user by name
        // and checks whose it is.
        if known.userIDs.isEmpty, let username = command.desired.username, known.usernames.allSatisfy({ $0 == username }), !command.desired.terminated {
            let optimistic = await converge(command, known: known, directory: directory, ledger: ledger, now: now, lookUpByName: false)
            if case .failure(.directory(let error, let operations, _)) = optimistic, operations.isEmpty, !error.isRetriable || error.isConflict {
                return await converge(command, known: known, directory: directory, ledger: ledger, now: now)
            }
            return optimistic
        }
        return await converge(command, known: known, directory: directory, ledger: ledger, now: now)
    }

    /// Reads Duo and makes the writes that bring it to the command's desired state. Without
    /// `lookUpByName`, Duo is taken to have no user by the employee's names.
    func converge(_ command: ProvisioningCommand, known: KnownIdentity, directory: some DuoDirectoryPort, ledger: some IdentityLedger,
                  now: Date, lookUpByName: Bool = true) async -> Result<ApplyOutcome, ApplyFailure> {
        var done: [DuoOperationKind] = []
        var userID = known.userIDs.first
        let employeeID = command.employeeID
        do throws(DirectoryError) {
            // Find the user: by an id linked before (usernames change), else by the wanted username,
            // else by a username the employee had before (a rename that raced a failed attempt).
            var current: DuoUserSnapshot?
            for id in known.userIDs where current == nil { current = try await directory.user(id: id) }
            var names = command.desired.username.map { [$0] } ?? []
            names += known.usernames.filter { !names.contains($0) }
            for name in names where current == nil && lookUpByName {
                guard let found = try await directory.user(username: name) else { continue }
                // Found by name: it is this employee's only if nobody else has it.
                if let owner = try await ledger.claim(duoUserID: found.userID, username: found.username, for: employeeID) {
                    return .failure(.policy(Self.conflict(found.username, owner: owner, employee: employeeID)))
                }
                current = found
            }
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
                // Every write but a creation targets a user that exists: the diff only plans them
                // for a user it was given (or one created earlier in the same plan), and a group
                // add or remove only for a group it found or created. `Plan` checks that rather
                // than trusting it, so a broken rule is a retriable error, never a crash.
                let plan = Plan(userID: userID, groupIDs: groupIDs)
                switch op {
                case .createUser(let changes):
                    do {
                        let created = try await directory.createUser(changes)
                        userID = created.userID
                        // Claimed at once: a crash or a failure after this point cannot lose it.
                        if let owner = try await ledger.claim(duoUserID: created.userID, username: created.username, for: employeeID) {
                            return .failure(.policy(Self.conflict(created.username, owner: owner, employee: employeeID)))
                        }
                    } catch where error.isConflict && lookUpByName {
                        // Someone created it between our read and our write: converge on the next run.
                        throw DirectoryError(code: error.code, message: "User \(changes.profile.username ?? "?") appeared concurrently; will retry", isRetriable: true)
                    }
                case .updateUser(let changes): try await directory.updateUser(id: plan.user(for: op), changes)
                case .disableUser: try await directory.updateUser(id: plan.user(for: op), DuoUserChanges(status: "disabled"))
                case .enableUser: try await directory.updateUser(id: plan.user(for: op), DuoUserChanges(status: "active"))
                case .restoreFromTrash: try await directory.restoreFromTrash(userID: plan.user(for: op))
                case .createGroup(let name): groupIDs[name] = try await directory.createGroup(name: name)
                case .addGroup(let name): try await directory.addUser(plan.user(for: op), toGroup: plan.group(name, for: op))
                case .removeGroup(let name): try await directory.removeUser(plan.user(for: op), fromGroup: plan.group(name, for: op))
                case .deleteUser: try await directory.deleteUser(id: plan.user(for: op))
                case .sendToTrash: try await directory.sendToTrash(userID: plan.user(for: op))
                }
                done.append(op.kind)
            }
            // A leaver loses every Duo user ever linked to them, not only the current one.
            if command.desired.terminated {
                for id in known.userIDs where id != userID {
                    guard let other = try await directory.user(id: id), !["disabled", "pending deletion"].contains(other.status.lowercased()) else { continue }
                    try await directory.updateUser(id: id, DuoUserChanges(status: "disabled"))
                    done.append(.disableUser)
                }
            }
            return .success(ApplyOutcome(userID: userID, operations: done, deleteAt: diff.deleteAt))
        } catch {
            return .failure(.directory(error, operations: done, userID: userID))
        }
    }
}

extension CommandApplier {
    /// Why an employee cannot have a Duo user that belongs to another employee.
    public static func conflict(_ username: String, owner: String, employee: String) -> PolicyViolation {
        PolicyViolation(code: "conflict", message: "Duo user '\(username)' belongs to employee \(owner); employee \(employee) maps to the same username, "
                        + "so nothing was changed. Give one of them another username (data.username) and replay.")
    }
}

/// The ids a write needs, checked before the write is made.
private struct Plan {
    var userID: String?
    var groupIDs: [String: String]

    func user(for op: DuoOperation) throws(DirectoryError) -> String {
        guard let userID else { throw Self.broken("\(op.kind.rawValue) planned without a Duo user id") }
        return userID
    }

    func group(_ name: String, for op: DuoOperation) throws(DirectoryError) -> String {
        guard let id = groupIDs[name] else { throw Self.broken("\(op.kind.rawValue) planned for group '\(name)', whose Duo id is unknown") }
        return id
    }

    /// Retriable: the next attempt reads Duo again and plans afresh.
    private static func broken(_ message: String) -> DirectoryError {
        DirectoryError(code: "plan", message: message, isRetriable: true)
    }
}
