import Foundation

/// A Duo user as the domain sees it. Profile fields read through to ``profile``
/// (`user.email`); its `displayName` is Duo's `realname`.
@dynamicMemberLookup
public struct DuoUserSnapshot: Sendable, Hashable {
    public var userID: String
    public var username: String
    /// The profile as Duo has it (username included).
    public var profile: EmployeeProfile
    /// Duo's status string: `active`, `bypass`, `disabled`, `locked out`, `pending deletion`, …
    public var status: String
    /// The user's groups: name → group id.
    public var groups: [String: String]

    public init(userID: String, username: String, profile: EmployeeProfile = EmployeeProfile(), status: String = "active", groups: [String: String] = [:]) {
        self.userID = userID
        self.username = username
        self.profile = profile
        self.profile.username = username
        self.status = status
        self.groups = groups
    }

    public subscript<T>(dynamicMember field: KeyPath<EmployeeProfile, T>) -> T { profile[keyPath: field] }
}

/// What to write to a Duo user. `nil` leaves a field alone; the profile's `displayName` is
/// written as Duo's `realname`.
public struct DuoUserChanges: Sendable, Hashable {
    public var profile: EmployeeProfile
    /// `active` or `disabled`.
    public var status: String?

    public init(profile: EmployeeProfile = EmployeeProfile(), status: String? = nil) {
        self.profile = profile
        self.status = status
    }

    public var isEmpty: Bool { profile.isEmpty && status == nil }
}

/// A failed call to Duo, classified so the dispatcher can decide from it alone: retry, or dead-letter.
public struct DirectoryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Duo's code (for example `40103`) or a transport kind (`timeout`, `connection`).
    public var code: String
    public var message: String
    public var isRetriable: Bool
    /// 401xx: the credentials are refused. The circuit breaker opens on these.
    public var isAuthenticationFailure: Bool
    /// 403xx: the integration lacks a permission the call needs. An outage too: the breaker opens.
    public var isPermissionDenied: Bool
    /// Duo is throttling (429): slow down, but Duo is up.
    public var isRateLimited: Bool
    /// Duo has no such object.
    public var isNotFound: Bool
    /// A username or alias that already exists.
    public var isConflict: Bool

    public init(code: String, message: String, isRetriable: Bool, isAuthenticationFailure: Bool = false, isPermissionDenied: Bool = false,
                isRateLimited: Bool = false, isNotFound: Bool = false, isConflict: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isAuthenticationFailure = isAuthenticationFailure
        self.isPermissionDenied = isPermissionDenied
        self.isRateLimited = isRateLimited
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
    /// Runs what follows a leaver's lockout at normal priority: it must not hold up other
    /// leavers' lockouts.
    func afterLockout<T: Sendable>(_ body: @Sendable () async -> T) async -> T
}

extension DuoDirectoryPort {
    public func afterLockout<T: Sendable>(_ body: @Sendable () async -> T) async -> T { await body() }
}
