import Foundation

/// A Duo user as the domain sees it.
public struct DuoUserSnapshot: Sendable, Hashable {
    public var userID: String
    public var username: String
    public var realname: String?
    public var email: String?
    public var firstName: String?
    public var lastName: String?
    /// Duo's status string: `active`, `bypass`, `disabled`, `locked out`, `pending deletion`, …
    public var status: String
    /// The user's groups: name → group id.
    public var groups: [String: String]

    public init(userID: String, username: String, realname: String? = nil, email: String? = nil, firstName: String? = nil,
                lastName: String? = nil, status: String = "active", groups: [String: String] = [:]) {
        self.userID = userID
        self.username = username
        self.realname = realname
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.status = status
        self.groups = groups
    }
}

/// Profile fields to write. `nil` leaves a field alone.
public struct DuoUserChanges: Sendable, Hashable {
    public var username: String?
    public var realname: String?
    public var email: String?
    public var firstName: String?
    public var lastName: String?
    /// `active` or `disabled`.
    public var status: String?

    public init(username: String? = nil, realname: String? = nil, email: String? = nil, firstName: String? = nil, lastName: String? = nil, status: String? = nil) {
        self.username = username
        self.realname = realname
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.status = status
    }

    public var isEmpty: Bool { self == DuoUserChanges() }
}

/// A failed call to Duo, classified so the dispatcher can decide from it alone: retry, or dead-letter.
public struct DirectoryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Duo's code (for example `40103`) or a transport kind (`timeout`, `connection`).
    public var code: String
    public var message: String
    public var isRetriable: Bool
    /// 401xx: the credentials are refused. The circuit breaker opens on these.
    public var isAuthenticationFailure: Bool
    /// Duo has no such object.
    public var isNotFound: Bool
    /// A username or alias that already exists.
    public var isConflict: Bool

    public init(code: String, message: String, isRetriable: Bool, isAuthenticationFailure: Bool = false, isNotFound: Bool = false, isConflict: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isAuthenticationFailure = isAuthenticationFailure
        self.isNotFound = isNotFound
        self.isConflict = isConflict
    }

    public var description: String { "\(code): \(message)" }
}

/// The Duo calls the domain needs. The worker implements it with the Duo Admin API client; the
/// domain itself knows nothing of HTTP.
public protocol DuoDirectoryPort: Sendable {
    /// The user with this id, or nil if there is none.
    func user(id: String) async throws(DirectoryError) -> DuoUserSnapshot?
    /// The user with this username (or alias), or nil.
    func user(username: String) async throws(DirectoryError) -> DuoUserSnapshot?
    /// Group ids by name, for the names that exist.
    func groupIDs(named names: Set<String>) async throws(DirectoryError) -> [String: String]
    func createUser(_ changes: DuoUserChanges) async throws(DirectoryError) -> DuoUserSnapshot
    func updateUser(id: String, _ changes: DuoUserChanges) async throws(DirectoryError)
    func createGroup(name: String) async throws(DirectoryError) -> String
    func addUser(_ userID: String, toGroup groupID: String) async throws(DirectoryError)
    func removeUser(_ userID: String, fromGroup groupID: String) async throws(DirectoryError)
    func deleteUser(id: String) async throws(DirectoryError)
    func sendToTrash(userID: String) async throws(DirectoryError)
    func restoreFromTrash(userID: String) async throws(DirectoryError)
}
