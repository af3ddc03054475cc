import DuoAdmin
import Foundation

/// Users: list, get, create, modify, delete, groups, enrollment and the Trash, with Duo's rules.
extension DuoDirectory {
    func listUsers(_ p: DuoRequestParameters) throws(DuoEmulatorError) -> (Data, DuoPageMetadata?) {
        let (limit, offset) = try p.paging(defaultLimit: 100, maxLimit: 300)
        let username = p["username"], email = p["email"]
        let idList = try p.jsonList("user_id_list"), nameList = try p.jsonList("username_list")
        return state.withLock { s in
            var ids = s.userOrder
            if let idList { ids = idList.filter { s.users[$0] != nil } }
            if let nameList { ids = nameList.compactMap { findByName($0, s) } }
            if let username { ids = findByName(username, s).map { [$0] } ?? [] }
            if let email { ids = ids.filter { s.users[$0]?.email?.lowercased() == email.lowercased() } }
            let users = ids.compactMap { s.users[$0] }.map { withGroups($0, s) }
            if idList != nil || nameList != nil { return (encode(users), nil) }
            return page(users, limit: limit, offset: offset)
        }
    }

    func getUser(_ id: String) throws(DuoEmulatorError) -> Data {
        let user = state.withLock { s in s.users[id].map { withGroups($0, s) } }
        guard let user else { throw .notFound }
        return encode(user)
    }

    func createUser(_ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let username = p["username"], !username.isEmpty else { throw .missingParameter("username") }
        let fields = try validatedUserFields(p, creating: true)
        return try state.withLock { s throws(DuoEmulatorError) in
            guard findByName(username, s) == nil else { throw .invalidParameter("username", "username already exists") }
            try checkAliasesFree(fields.aliases, except: nil, s)
            var id: String
            repeat { id = Self.newID(prefix: "DU") } while s.users[id] != nil
            var user = DuoUser(userID: id, username: username, status: .active, created: Int(Date().timeIntervalSince1970))
            apply(fields, to: &user)
            s.put(user)
            return encode(journal(&s, "create_user", caller, userID: id).user)
        }
    }

    func modifyUser(_ id: String, _ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        let fields = try validatedUserFields(p, creating: false)
        return try state.withLock { s throws(DuoEmulatorError) in
            guard var user = s.users[id] else { throw .notFound }
            if let newName = p["username"] {
                guard !newName.isEmpty else { throw .invalidParameter("username") }
                if let other = findByName(newName, s), other != id { throw .invalidParameter("username", "username already exists") }
                user.username = newName
            }
            try checkAliasesFree(fields.aliases, except: id, s)
            apply(fields, to: &user)
            s.put(user)
            return encode(journal(&s, "modify_user", caller, userID: id).user)
        }
    }

    func deleteUser(_ id: String, caller: Caller) -> Data {
        state.withLock { s in
            // Deleting a user that does not exist succeeds and changes nothing.
            guard s.removeUser(id) != nil else { return encodeEmpty() }
            s.memberships[id] = nil
            _ = journal(&s, "delete_user", caller, userID: id)
            return encodeEmpty()
        }
    }

    func userGroups(_ id: String, _ p: DuoRequestParameters) throws(DuoEmulatorError) -> (Data, DuoPageMetadata?) {
        let (limit, offset) = try p.paging(defaultLimit: 100, maxLimit: 500)
        return try state.withLock { s throws(DuoEmulatorError) in
            guard s.users[id] != nil else { throw .notFound }
            return page((s.memberships[id] ?? []).compactMap { s.groups[$0] }, limit: limit, offset: offset)
        }
    }

    func addUserGroup(_ id: String, _ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let groupID = p["group_id"], !groupID.isEmpty else { throw .missingParameter("group_id") }
        return try state.withLock { s throws(DuoEmulatorError) in
            guard s.users[id] != nil else { throw .notFound }
            guard s.groups[groupID] != nil else { throw .invalidParameter("group_id", "no such group") }
            var groups = s.memberships[id] ?? []
            if !groups.contains(groupID) {
                guard groups.count < 100 else { throw .internalError }  // Duo's 100-groups-per-user limit answers 500/50001.
                groups.append(groupID)
                s.memberships[id] = groups
                _ = journal(&s, "add_user_group", caller, userID: id, groupID: groupID)
            }
            return encodeEmpty()
        }
    }

    func removeUserGroup(_ id: String, _ groupID: String, caller: Caller) throws(DuoEmulatorError) -> Data {
        try state.withLock { s throws(DuoEmulatorError) in
            guard s.users[id] != nil else { throw .notFound }
            // Removing a membership that does not exist succeeds.
            if let index = s.memberships[id]?.firstIndex(of: groupID) {
                s.memberships[id]?.remove(at: index)
                _ = journal(&s, "remove_user_group", caller, userID: id, groupID: groupID)
            }
            return encodeEmpty()
        }
    }

    func enroll(_ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let username = p["username"], !username.isEmpty else { throw .missingParameter("username") }
        guard let email = p["email"], !email.isEmpty else { throw .missingParameter("email") }
        guard Self.isEmail(email) else { throw .invalidParameter("email") }
        if let v = p["valid_secs"], (Int(v) ?? -1) < 0 { throw .invalidParameter("valid_secs") }
        return try state.withLock { s throws(DuoEmulatorError) in
            guard findByName(username, s) == nil else { throw .invalidParameter("username", "username already exists") }
            s.enrollments[username] = email
            _ = journal(&s, "enroll_user", caller)
            return encodeEmpty()
        }
    }

    func trash(_ p: DuoRequestParameters, restore: Bool, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let ids = try p.jsonList("user_id_list") else { throw .missingParameter("user_id_list") }
        guard ids.count <= 100 else { throw .invalidParameter("user_id_list", "at most 100 ids") }
        return try state.withLock { s throws(DuoEmulatorError) in
            guard ids.allSatisfy({ s.users[$0] != nil }) else { throw .invalidParameter("user_id_list", "unknown user id") }
            for id in ids {
                if var user = s.users[id] {
                    user.status = restore ? .active : .pendingDeletion
                    s.put(user)
                }
                _ = journal(&s, restore ? "restore_from_trash" : "send_to_trash", caller, userID: id)
            }
            return encodeEmpty()
        }
    }
}
