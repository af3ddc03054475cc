import DuoAdmin
import Foundation
import Lifecycle
import Synchronization

/// The domain's ``DuoDirectoryPort``, implemented with the Duo Admin API client.
///
/// Group ids by name are cached for a short time: every command needs them, and groups change
/// rarely. A name missing from the cache always triggers a fresh listing, and the groups this
/// worker creates are added to it.
public struct DuoAdminDirectory: DuoDirectoryPort {
    public let client: DuoAdminClient
    private let groupCache: GroupCache
    /// Batches the writes of commands that may share a bulk request; nil: every write alone.
    private let bulk: DuoBulkWriter?

    public init(client: DuoAdminClient, groupCacheTTL: Duration = .seconds(60), bulk: DuoBulkWriter? = nil) {
        self.client = client
        self.groupCache = GroupCache(ttl: groupCacheTTL)
        self.bulk = bulk
    }

    /// A write through the bulk writer when the current command may share a request, else alone.
    private func write(_ operation: DuoBulkOperation, single: () async throws -> Void) async throws {
        if let bulk, DuoBulkWriter.eligible { _ = try await bulk.perform(operation) } else { try await single() }
    }

    final class GroupCache: Sendable {
        let ttl: Duration
        let state = Mutex<(ids: [String: String], loadedAt: ContinuousClock.Instant?)>(([:], nil))
        init(ttl: Duration) { self.ttl = ttl }

        func lookup(_ names: Set<String>) -> [String: String]? {
            state.withLock { s in
                guard let at = s.loadedAt, ContinuousClock.now - at < ttl, names.allSatisfy({ s.ids[$0] != nil }) else { return nil }
                return s.ids.filter { names.contains($0.key) }
            }
        }

        /// The listing in progress, or a new one made by `start`; it is forgotten once done.
        let inFlight = Mutex<Task<[String: String], any Error>?>(nil)
        func listing(_ start: () -> Task<[String: String], any Error>) -> Task<[String: String], any Error> {
            let (task, isNew) = inFlight.withLock { current -> (Task<[String: String], any Error>, Bool) in
                if let current { return (current, false) }
                let task = start()
                current = task
                return (task, true)
            }
            if isNew {
                Task { _ = try? await task.value; inFlight.withLock { if $0 == task { $0 = nil } } }
            }
            return task
        }

        func store(_ ids: [String: String]) { state.withLock { $0 = (ids, .now) } }
        func add(_ name: String, _ id: String) { state.withLock { $0.ids[name] = id } }
        func invalidate() { state.withLock { $0 = ([:], nil) } }
    }

    public func user(id: String) async throws(DirectoryError) -> DuoUserSnapshot? {
        do { return Self.snapshot(try await client.getUser(id: id)) } catch let e as DuoAdminError where e.isNotFound { return nil } catch { throw Self.map(error) }
    }

    public func user(username: String) async throws(DirectoryError) -> DuoUserSnapshot? {
        do { return try await client.findUser(username: username).map(Self.snapshot) } catch { throw Self.map(error) }
    }

    public func groupIDs(named names: Set<String>) async throws(DirectoryError) -> [String: String] {
        if let cached = groupCache.lookup(names) { return cached }
        // Commands that miss the cache at once share one listing.
        let client = client, cache = groupCache
        let listing = groupCache.listing {
            Task {
                var all: [String: String] = [:]
                for try await group in client.groups() where all[group.name] == nil { all[group.name] = group.groupID }
                cache.store(all)
                return all
            }
        }
        do {
            return try await listing.value.filter { names.contains($0.key) }
        } catch { throw Self.map(error) }
    }

    public func createUser(_ changes: DuoUserChanges) async throws(DirectoryError) -> DuoUserSnapshot {
        let fields = Self.fields(changes)
        let operation = DuoBulkOperation.createUser(fields)
        do {
            if let bulk, DuoBulkWriter.eligible { return Self.snapshot(try await bulk.perform(operation).user(of: operation)) }
            return Self.snapshot(try await client.createUser(fields))
        } catch { throw Self.map(error) }
    }

    /// What follows a lockout goes through the client's queues at normal priority.
    public func afterLockout<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        await DuoRequestPriority.$current.withValue(.normal) { await body() }
    }

    public func updateUser(id: String, _ changes: DuoUserChanges) async throws(DirectoryError) {
        let fields = Self.fields(changes)
        do { try await write(.modifyUser(id: id, fields)) { _ = try await client.modifyUser(id: id, fields) } } catch { throw Self.map(error) }
    }

    public func createGroup(name: String) async throws(DirectoryError) -> String {
        do {
            let id = try await client.createGroup(name: name, desc: "Managed by duo-lifecycle").groupID
            groupCache.add(name, id)
            return id
        } catch { throw Self.map(error) }
    }

    public func addUser(_ userID: String, toGroup groupID: String) async throws(DirectoryError) {
        do { try await write(.addUser(userID, toGroup: groupID)) { try await client.addUser(userID, toGroup: groupID) } } catch let e as DuoAdminError where e.code == 40002 && e.messageDetail?.contains("group") == true {
            // The cached group may have been deleted in Duo: forget the cache and try again with a fresh listing.
            groupCache.invalidate()
            throw DirectoryError(code: "40002", message: "Group \(groupID) is gone; refreshing groups: \(e.message)", isRetriable: true)
        } catch { throw Self.map(error) }
    }

    public func removeUser(_ userID: String, fromGroup groupID: String) async throws(DirectoryError) {
        do { try await write(.removeUser(userID, fromGroup: groupID)) { try await client.removeUser(userID, fromGroup: groupID) } }
        catch { throw Self.map(error) }
    }

    public func deleteUser(id: String) async throws(DirectoryError) {
        do { try await write(.deleteUser(id: id)) { try await client.deleteUser(id: id) } } catch { throw Self.map(error) }
    }

    public func sendToTrash(userID: String) async throws(DirectoryError) {
        do { try await client.sendToTrash(userIDs: [userID]) } catch { throw Self.map(error) }
    }

    public func restoreFromTrash(userID: String) async throws(DirectoryError) {
        do { try await client.restoreFromTrash(userIDs: [userID]) } catch { throw Self.map(error) }
    }

    static func snapshot(_ u: DuoUser) -> DuoUserSnapshot {
        DuoUserSnapshot(userID: u.userID, username: u.username,
                        profile: EmployeeProfile(email: u.email, firstName: u.firstname, lastName: u.lastname, displayName: u.realname),
                        status: u.status.rawValue,
                        groups: Dictionary(u.groups.map { ($0.name, $0.groupID) }, uniquingKeysWith: { a, _ in a }))
    }

    static func fields(_ c: DuoUserChanges) -> DuoUserFields {
        DuoUserFields(username: c.profile.username, realname: c.profile.displayName, email: c.profile.email,
                      firstname: c.profile.firstName, lastname: c.profile.lastName,
                      status: c.status.map(DuoUserStatus.init(rawValue:)))
    }

    static func map(_ error: any Error) -> DirectoryError {
        guard let e = error as? DuoAdminError else {
            return DirectoryError(code: "internal", message: "\(error)", isRetriable: true)
        }
        var message = e.messageDetail.map { "\(e.message) [\($0)]" } ?? e.message
        if e.isPermissionDenied {
            // Say which permission: Duo's Admin API application grants reads and writes of users and groups separately.
            let grant = e.request.hasPrefix("GET ") ? "Grant read resource" : "Grant write resource"
            message += " on \(e.request): the Admin API application lacks the \"\(grant)\" permission"
        } else if e.isAuthenticationFailure {
            message += " on \(e.request): check duo.ikey, duo.skey and the clock"
        }
        return DirectoryError(code: e.code.map(String.init) ?? e.kind.description, message: message,
                              isRetriable: e.isRetriable, isAuthenticationFailure: e.isAuthenticationFailure,
                              isPermissionDenied: e.isPermissionDenied, isRateLimited: e.isRateLimited, isNotFound: e.isNotFound,
                              isConflict: e.code == 40002 && e.messageDetail?.contains("already") == true)
    }
}
