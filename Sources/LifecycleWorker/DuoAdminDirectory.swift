import DuoAdmin
import Lifecycle

/// The domain's ``DuoDirectoryPort``, implemented with the Duo Admin API client.
public struct DuoAdminDirectory: DuoDirectoryPort {
    public let client: DuoAdminClient

    public init(client: DuoAdminClient) { self.client = client }

    public func user(id: String) async throws(DirectoryError) -> DuoUserSnapshot? {
        do { return Self.snapshot(try await client.getUser(id: id)) } catch let e as DuoAdminError where e.isNotFound { return nil } catch { throw Self.map(error) }
    }

    public func user(username: String) async throws(DirectoryError) -> DuoUserSnapshot? {
        do { return try await client.findUser(username: username).map(Self.snapshot) } catch { throw Self.map(error) }
    }

    public func groupIDs(named names: Set<String>) async throws(DirectoryError) -> [String: String] {
        do {
            var ids: [String: String] = [:]
            for try await group in client.groups() where names.contains(group.name) && ids[group.name] == nil { ids[group.name] = group.groupID }
            return ids
        } catch { throw Self.map(error) }
    }

    public func createUser(_ changes: DuoUserChanges) async throws(DirectoryError) -> DuoUserSnapshot {
        do { return Self.snapshot(try await client.createUser(Self.fields(changes))) } catch { throw Self.map(error) }
    }

    public func updateUser(id: String, _ changes: DuoUserChanges) async throws(DirectoryError) {
        do { _ = try await client.modifyUser(id: id, Self.fields(changes)) } catch { throw Self.map(error) }
    }

    public func createGroup(name: String) async throws(DirectoryError) -> String {
        do { return try await client.createGroup(name: name, desc: "Managed by duo-lifecycle").groupID } catch { throw Self.map(error) }
    }

    public func addUser(_ userID: String, toGroup groupID: String) async throws(DirectoryError) {
        do { try await client.addUser(userID, toGroup: groupID) } catch { throw Self.map(error) }
    }

    public func removeUser(_ userID: String, fromGroup groupID: String) async throws(DirectoryError) {
        do { try await client.removeUser(userID, fromGroup: groupID) } catch { throw Self.map(error) }
    }

    public func deleteUser(id: String) async throws(DirectoryError) {
        do { try await client.deleteUser(id: id) } catch { throw Self.map(error) }
    }

    public func sendToTrash(userID: String) async throws(DirectoryError) {
        do { try await client.sendToTrash(userIDs: [userID]) } catch { throw Self.map(error) }
    }

    public func restoreFromTrash(userID: String) async throws(DirectoryError) {
        do { try await client.restoreFromTrash(userIDs: [userID]) } catch { throw Self.map(error) }
    }

    static func snapshot(_ u: DuoUser) -> DuoUserSnapshot {
        DuoUserSnapshot(userID: u.userID, username: u.username, realname: u.realname, email: u.email, firstName: u.firstname,
                        lastName: u.lastname, status: u.status.rawValue,
                        groups: Dictionary(u.groups.map { ($0.name, $0.groupID) }, uniquingKeysWith: { a, _ in a }))
    }

    static func fields(_ c: DuoUserChanges) -> DuoUserFields {
        DuoUserFields(username: c.username, realname: c.realname, email: c.email, firstname: c.firstName, lastname: c.lastName,
                      status: c.status.map(DuoUserStatus.init(rawValue:)))
    }

    static func map(_ error: any Error) -> DirectoryError {
        guard let e = error as? DuoAdminError else {
            return DirectoryError(code: "internal", message: "\(error)", isRetriable: true)
        }
        return DirectoryError(code: e.code.map(String.init) ?? e.kind.rawValue, message: e.messageDetail.map { "\(e.message) [\($0)]" } ?? e.message,
                              isRetriable: e.isRetriable, isAuthenticationFailure: e.isAuthenticationFailure, isNotFound: e.isNotFound,
                              isConflict: e.code == 40002 && e.messageDetail?.contains("already") == true)
    }
}
