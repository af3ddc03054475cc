// DuoAdmin owns the Duo Admin API client: signing (v5, v2), typed models, paging, errors,
// retries on Duo's schedule, the shared rate limit and credentials.
import NIOHTTP1

extension DuoAdminClient {
    /// Every group, page by page.
    public func groups() -> DuoPagedSequence<DuoGroup> {
        DuoPagedSequence(client: self, path: "/admin/v1/groups", parameters: [], limit: min(configuration.pageLimit, 100))
    }

    /// Every group, collected.
    public func listGroups() async throws -> [DuoGroup] { try await groups().collect() }

    /// The group with this id (v2 endpoint).
    public func getGroup(id: String) async throws -> DuoGroup {
        let path = "/admin/v2/groups/\(Self.segment(id))"
        return try await call(.GET, path).decode(DuoGroup.self, request: "GET \(path)")
    }

    /// Creates a group.
    public func createGroup(name: String, desc: String? = nil, status: String? = nil) async throws -> DuoGroup {
        var params = [DuoParameter("name", name)]
        if let desc { params.append(DuoParameter("desc", desc)) }
        if let status { params.append(DuoParameter("status", status)) }
        return try await call(.POST, "/admin/v1/groups", parameters: params).decode(DuoGroup.self, request: "POST /admin/v1/groups")
    }

    /// Changes a group's name, description or status.
    public func modifyGroup(id: String, name: String? = nil, desc: String? = nil, status: String? = nil) async throws -> DuoGroup {
        var params: [DuoParameter] = []
        if let name { params.append(DuoParameter("name", name)) }
        if let desc { params.append(DuoParameter("desc", desc)) }
        if let status { params.append(DuoParameter("status", status)) }
        let path = "/admin/v1/groups/\(Self.segment(id))"
        return try await call(.POST, path, parameters: params).decode(DuoGroup.self, request: "POST \(path)")
    }

    /// Deletes a group.
    public func deleteGroup(id: String) async throws {
        _ = try await call(.DELETE, "/admin/v1/groups/\(Self.segment(id))")
    }

    /// The group's members (v2 endpoint), page by page.
    public func groupMembers(groupID: String) -> DuoPagedSequence<DuoGroupMember> {
        DuoPagedSequence(client: self, path: "/admin/v2/groups/\(Self.segment(groupID))/users", parameters: [], limit: 500)
    }
}
