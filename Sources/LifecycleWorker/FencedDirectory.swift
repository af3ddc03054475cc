import Foundation
import Lifecycle
import LifecycleStore

/// The Duo directory as one command sees it: every write first checks that the worker still
/// holds the command's claim, with some lease left, so a worker that was paused or cut off past
/// its lease makes no further Duo write for a command another worker now holds. Reads pass through.
struct FencedDirectory: DuoDirectoryPort {
    /// The error code of a write refused because the claim was lost.
    static let fencedCode = "fenced"

    let base: any DuoDirectoryPort
    let store: any LifecycleStore
    /// Nil for a command that was not claimed (tests that apply directly): nothing to check.
    let lease: CommandLease?
    /// How much of the lease must be left for a write to start.
    let margin: Duration

    private func checkLease() async throws(DirectoryError) {
        guard let lease else { return }
        let held: Bool
        do { held = try await store.holdsLease(lease, now: Date(), margin: margin) } catch {
            // Without the store this worker cannot know it still holds the claim: no write.
            throw DirectoryError(code: "store", message: "Could not check the claim on command \(lease.commandID): \(error)", isRetriable: true)
        }
        guard held else {
            throw DirectoryError(code: Self.fencedCode, message: LeaseLost(lease).description, isRetriable: false)
        }
    }

    func afterLockout<T: Sendable>(_ body: @Sendable () async -> T) async -> T { await base.afterLockout(body) }

    func user(id: String) async throws(DirectoryError) -> DuoUserSnapshot? { try await base.user(id: id) }
    func user(username: String) async throws(DirectoryError) -> DuoUserSnapshot? { try await base.user(username: username) }
    func groupIDs(named names: Set<String>) async throws(DirectoryError) -> [String: String] { try await base.groupIDs(named: names) }

    func createUser(_ changes: DuoUserChanges) async throws(DirectoryError) -> DuoUserSnapshot {
        try await checkLease()
        return try await base.createUser(changes)
    }

    func updateUser(id: String, _ changes: DuoUserChanges) async throws(DirectoryError) {
        try await checkLease()
        try await base.updateUser(id: id, changes)
    }

    /// Creates a group unless another worker just did: under a lock all workers sharing the store
    /// respect, Duo's groups are listed again first (the group was missing from this worker's
    /// view, so the listing is fresh), so two replicas never create the same group twice.
    func createGroup(name: String) async throws(DirectoryError) -> String {
        try await checkLease()
        do {
            return try await store.withExclusiveLock("duo-group:\(name)") {
                if let id = try await base.groupIDs(named: [name])[name] { return id }
                try await checkLease()
                return try await base.createGroup(name: name)
            }
        } catch let error as DirectoryError {
            throw error
        } catch {
            throw DirectoryError(code: "store", message: "Could not take the group-creation lock: \(error)", isRetriable: true)
        }
    }

    func addUser(_ userID: String, toGroup groupID: String) async throws(DirectoryError) {
        try await checkLease()
        try await base.addUser(userID, toGroup: groupID)
    }

    func removeUser(_ userID: String, fromGroup groupID: String) async throws(DirectoryError) {
        try await checkLease()
        try await base.removeUser(userID, fromGroup: groupID)
    }

    func deleteUser(id: String) async throws(DirectoryError) {
        try await checkLease()
        try await base.deleteUser(id: id)
    }

    func sendToTrash(userID: String) async throws(DirectoryError) {
        try await checkLease()
        try await base.sendToTrash(userID: userID)
    }

    func restoreFromTrash(userID: String) async throws(DirectoryError) {
        try await checkLease()
        try await base.restoreFromTrash(userID: userID)
    }
}
