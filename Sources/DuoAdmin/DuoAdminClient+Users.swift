import Foundation
import NIOHTTP1

extension DuoAdminClient {
    static func segment(_ id: String) -> String { DuoSigning.percentEncode(id) }

    /// Every user, page by page.
    public func users() -> DuoPagedSequence<DuoUser> {
        DuoPagedSequence(client: self, path: "/admin/v1/users", parameters: [], limit: configuration.pageLimit)
    }

    /// Every user, collected.
    public func listUsers() async throws -> [DuoUser] { try await users().collect() }

    /// The user with this id. Throws a not-found ``DuoAdminError`` (40401) if there is none.
    public func getUser(id: String) async throws -> DuoUser {
        let path = "/admin/v1/users/\(Self.segment(id))"
        return try await call(.GET, path).decode(DuoUser.self, request: "GET \(path)")
    }

    /// The user with this username or alias, if any.
    public func findUser(username: String) async throws -> DuoUser? {
        try await call(.GET, "/admin/v1/users", parameters: [DuoParameter("username", username)])
            .decode([DuoUser].self, request: "GET /admin/v1/users").first
    }

    /// The users with this email address.
    public func findUsers(email: String) async throws -> [DuoUser] {
        try await call(.GET, "/admin/v1/users", parameters: [DuoParameter("email", email)])
            .decode([DuoUser].self, request: "GET /admin/v1/users")
    }

    /// Creates a user. `fields.username` is required.
    public func createUser(_ fields: DuoUserFields) async throws -> DuoUser {
        guard let username = fields.username, !username.isEmpty else {
            throw DuoAdminError(kind: .invalidRequest, message: "A username is required to create a user", request: "POST /admin/v1/users")
        }
        return try await call(.POST, "/admin/v1/users", parameters: fields.parameters).decode(DuoUser.self, request: "POST /admin/v1/users")
    }

    /// Changes any subset of a user's fields, status included.
    public func modifyUser(id: String, _ fields: DuoUserFields) async throws -> DuoUser {
        let path = "/admin/v1/users/\(Self.segment(id))"
        return try await call(.POST, path, parameters: fields.parameters).decode(DuoUser.self, request: "POST \(path)")
    }

    /// Deletes a user at once and for good. Deleting a user that does not exist succeeds.
    public func deleteUser(id: String) async throws {
        _ = try await call(.DELETE, "/admin/v1/users/\(Self.segment(id))")
    }

    /// The user's groups.
    public func userGroups(userID: String) -> DuoPagedSequence<DuoGroup> {
        DuoPagedSequence(client: self, path: "/admin/v1/users/\(Self.segment(userID))/groups", parameters: [], limit: 500)
    }

    /// The user's groups, collected.
    public func listUserGroups(userID: String) async throws -> [DuoGroup] { try await userGroups(userID: userID).collect() }

    /// Adds the user to a group.
    public func addUser(_ userID: String, toGroup groupID: String) async throws {
        _ = try await call(.POST, "/admin/v1/users/\(Self.segment(userID))/groups", parameters: [DuoParameter("group_id", groupID)])
    }

    /// Removes the user from a group. Removing a membership that does not exist succeeds.
    public func removeUser(_ userID: String, fromGroup groupID: String) async throws {
        _ = try await call(.DELETE, "/admin/v1/users/\(Self.segment(userID))/groups/\(Self.segment(groupID))")
    }

    /// Sends the enrollment email. `validFor` defaults to Duo's 30 days.
    public func enrollUser(username: String, email: String, validFor: Duration? = nil) async throws {
        var params = [DuoParameter("username", username), DuoParameter("email", email)]
        if let validFor { params.append(DuoParameter("valid_secs", String(validFor.components.seconds))) }
        _ = try await call(.POST, "/admin/v1/users/enroll", parameters: params)
    }

    /// Moves users to the Trash (a soft delete that can be undone with ``restoreFromTrash(userIDs:)``).
    public func sendToTrash(userIDs: [String]) async throws {
        _ = try await call(.POST, "/admin/v1/users/bulk_send_to_trash", parameters: [DuoParameter("user_id_list", Self.jsonList(userIDs))])
    }

    /// Restores users from the Trash.
    public func restoreFromTrash(userIDs: [String]) async throws {
        _ = try await call(.POST, "/admin/v1/users/bulk_restore", parameters: [DuoParameter("user_id_list", Self.jsonList(userIDs))])
    }

    static func jsonList(_ items: [String]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: items)) ?? Data("[]".utf8), as: UTF8.self)
    }
}
