// DuoEmulator owns a local stand-in for Duo's Admin API: the directory with Duo's semantics, and a
// Hummingbird application that checks signatures, injects faults and serves a control API.
import DuoAdmin
import Foundation

/// Groups: list, get, create, modify, delete and members, with Duo's rules.
extension DuoDirectory {
    func listGroups(_ p: DuoRequestParameters) throws(DuoEmulatorError) -> (Data, DuoPageMetadata?) {
        let (limit, offset) = try p.paging(defaultLimit: 100, maxLimit: 100)
        let idList = try p.jsonList("group_id_list")
        return state.withLock { s in
            let ids = idList ?? s.groupOrder
            let groups = ids.compactMap { s.groups[$0] }
            if idList != nil { return (encode(groups), nil) }
            return page(groups, limit: limit, offset: offset)
        }
    }

    func getGroup(_ id: String) throws(DuoEmulatorError) -> Data {
        guard let group = state.withLock({ $0.groups[id] }) else { throw .notFound }
        return encode(group)
    }

    func createGroup(_ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let name = p["name"], !name.isEmpty else { throw .missingParameter("name") }
        let status = try Self.groupStatus(p["status"]) ?? "active"
        return state.withLock { s in
            var id: String
            repeat { id = Self.newID(prefix: "DG") } while s.groups[id] != nil
            var group = DuoGroup(groupID: id, name: name, desc: p["desc"] ?? "", status: status)
            group.pushEnabled = true; group.smsEnabled = true; group.voiceEnabled = true; group.mobileOTPEnabled = true
            s.groups[id] = group
            s.groupOrder.append(id)
            return encode(journal(&s, "create_group", caller, groupID: id).group)
        }
    }

    func modifyGroup(_ id: String, _ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        let status = try Self.groupStatus(p["status"])
        if let name = p["name"], name.isEmpty { throw .invalidParameter("name") }
        return try state.withLock { s throws(DuoEmulatorError) in
            guard var group = s.groups[id] else { throw .notFound }
            if let name = p["name"] { group.name = name }
            if let desc = p["desc"] { group.desc = desc }
            if let status { group.status = status }
            s.groups[id] = group
            return encode(journal(&s, "modify_group", caller, groupID: id).group)
        }
    }

    func deleteGroup(_ id: String, caller: Caller) -> Data {
        state.withLock { s in
            guard s.groups.removeValue(forKey: id) != nil else { return encodeEmpty() }
            s.groupOrder.removeAll { $0 == id }
            for key in s.memberships.keys { s.memberships[key]?.removeAll { $0 == id } }
            _ = journal(&s, "delete_group", caller, groupID: id)
            return encodeEmpty()
        }
    }

    func groupMembers(_ id: String, _ p: DuoRequestParameters) throws(DuoEmulatorError) -> (Data, DuoPageMetadata?) {
        let (limit, offset) = try p.paging(defaultLimit: 100, maxLimit: 500)
        return try state.withLock { s throws(DuoEmulatorError) in
            guard s.groups[id] != nil else { throw .notFound }
            let members = s.userOrder.filter { s.memberships[$0]?.contains(id) == true }
                .compactMap { s.users[$0] }.map { DuoGroupMember(userID: $0.userID, username: $0.username) }
            return page(members, limit: limit, offset: offset)
        }
    }
}
