import DuoAdmin
import Foundation
import Synchronization

/// One state-changing request, as the journal records it.
public struct DuoJournalEntry: Sendable, Codable, Hashable {
    /// Position in the journal, from 1.
    public var sequence: Int
    /// When the change was made, in milliseconds since the epoch.
    public var timestampMs: Int64
    /// `create_user`, `modify_user`, `delete_user`, `add_user_group`, `remove_user_group`,
    /// `create_group`, `modify_group`, `delete_group`, `send_to_trash`, `restore_from_trash`, `enroll_user`.
    public var operation: String
    public var method: String
    public var path: String
    public var integrationKey: String?
    public var userID: String?
    public var groupID: String?
    /// The user's state after the change (nil once deleted).
    public var user: DuoUser?
    /// The group's state after the change (nil once deleted).
    public var group: DuoGroup?

    enum CodingKeys: String, CodingKey {
        case sequence, timestampMs = "timestamp_ms", operation, method, path, integrationKey = "integration_key"
        case userID = "user_id", groupID = "group_id", user, group
    }
}

/// The emulated directory: users, groups, memberships, and the journal of changes. All access
/// goes through one lock; every operation is short and never suspends while holding it.
public final class DuoDirectory: Sendable {
    struct State {
        var users: [String: DuoUser] = [:]
        var userOrder: [String] = []
        var groups: [String: DuoGroup] = [:]
        var groupOrder: [String] = []
        var memberships: [String: [String]] = [:]  // user id -> group ids, in the order added
        var journal: [DuoJournalEntry] = []
        var enrollments: [String: String] = [:]  // username -> email
    }
    private let state = Mutex(State())

    public init() {}

    /// Who made a request, for the journal.
    struct Caller { var method: String; var path: String; var integrationKey: String? }

    // MARK: Snapshots

    /// A snapshot that can be saved to a file and loaded again.
    public struct Snapshot: Codable, Sendable {
        public var users: [DuoUser]
        public var groups: [DuoGroup]
        public var memberships: [String: [String]]
    }

    public func snapshot() -> Snapshot {
        state.withLock { s in
            Snapshot(users: s.userOrder.compactMap { s.users[$0] }.map { withGroups($0, s) },
                     groups: s.groupOrder.compactMap { s.groups[$0] }, memberships: s.memberships)
        }
    }

    /// Replaces the whole directory and clears the journal.
    public func restore(_ snapshot: Snapshot) {
        state.withLock { s in
            s = State()
            for var u in snapshot.users {
                u.groups = []
                s.users[u.userID] = u
                s.userOrder.append(u.userID)
            }
            for g in snapshot.groups {
                s.groups[g.groupID] = g
                s.groupOrder.append(g.groupID)
            }
            s.memberships = snapshot.memberships.mapValues { $0.filter { s.groups[$0] != nil } }
        }
    }

    public func reset() { state.withLock { $0 = State() } }

    /// Every journal entry after `sequence`.
    public func journal(after sequence: Int = 0) -> [DuoJournalEntry] {
        state.withLock { s in Array(s.journal.drop { $0.sequence <= sequence }) }
    }

    /// A user with its groups, by id.
    public func user(id: String) -> DuoUser? { state.withLock { s in s.users[id].map { withGroups($0, s) } } }

    /// A user with its groups, by username or alias.
    public func user(username: String) -> DuoUser? {
        state.withLock { s in findByName(username, s).flatMap { s.users[$0] }.map { withGroups($0, s) } }
    }

    public var allUsers: [DuoUser] { snapshot().users }
    public var allGroups: [DuoGroup] { snapshot().groups }

    // MARK: Users

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
            s.users[id] = user
            s.userOrder.append(id)
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
            s.users[id] = user
            return encode(journal(&s, "modify_user", caller, userID: id).user)
        }
    }

    func deleteUser(_ id: String, caller: Caller) -> Data {
        state.withLock { s in
            // Deleting a user that does not exist succeeds and changes nothing.
            guard s.users.removeValue(forKey: id) != nil else { return encodeEmpty() }
            s.userOrder.removeAll { $0 == id }
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
                s.users[id]?.status = restore ? .active : .pendingDeletion
                _ = journal(&s, restore ? "restore_from_trash" : "send_to_trash", caller, userID: id)
            }
            return encodeEmpty()
        }
    }

    // MARK: Groups

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

    // MARK: Seeding (control API)

    /// Seeds groups by name and users with their group names; existing names are reused.
    public func seed(users: [DuoEmulatorSeedUser], groups: [String]) -> (users: Int, groups: Int) {
        state.withLock { s in
            var groupIDs: [String: String] = [:]
            for id in s.groupOrder { if let g = s.groups[id] { groupIDs[g.name] = id } }
            var createdGroups = 0, createdUsers = 0
            func group(_ name: String) -> String {
                if let id = groupIDs[name] { return id }
                let id = Self.newID(prefix: "DG")
                s.groups[id] = DuoGroup(groupID: id, name: name, desc: "", status: "active")
                s.groupOrder.append(id)
                groupIDs[name] = id
                createdGroups += 1
                return id
            }
            for name in groups { _ = group(name) }
            for seed in users where findByName(seed.username, s) == nil {
                let id = Self.newID(prefix: "DU")
                var u = DuoUser(userID: id, username: seed.username, realname: seed.realname, email: seed.email,
                                firstname: seed.firstname, lastname: seed.lastname, status: DuoUserStatus(rawValue: seed.status ?? "active"),
                                created: Int(Date().timeIntervalSince1970))
                u.notes = seed.notes ?? ""
                s.users[id] = u
                s.userOrder.append(id)
                s.memberships[id] = (seed.groups ?? []).map(group)
                createdUsers += 1
            }
            return (createdUsers, createdGroups)
        }
    }

    // MARK: Helpers (called with the lock held)

    private struct UserFields {
        var values: [String: String] = [:]
        var status: DuoUserStatus?
        var aliases: [String: String?] = [:]
    }

    private func validatedUserFields(_ p: DuoRequestParameters, creating: Bool) throws(DuoEmulatorError) -> UserFields {
        var f = UserFields()
        for key in ["realname", "email", "firstname", "lastname", "notes"] {
            if let v = p[key] {
                guard v.count <= (key == "notes" ? 512 : 256) else { throw .invalidParameter(key) }
                f.values[key] = v
            }
        }
        if let email = f.values["email"], !email.isEmpty, !Self.isEmail(email) { throw .invalidParameter("email") }
        if let status = p["status"] {
            let allowed = creating ? ["active", "bypass", "disabled"] : ["active", "bypass", "disabled", "locked out"]
            guard allowed.contains(status) else { throw .invalidParameter("status") }
            f.status = DuoUserStatus(rawValue: status)
        }
        for i in 1...4 { if let a = p["alias\(i)"] { f.aliases["alias\(i)"] = a.isEmpty ? .some(nil) : a } }
        if let aliases = p["aliases"] {
            guard f.aliases.isEmpty else { throw .invalidParameter("aliases", "aliases and alias1..alias4 are mutually exclusive") }
            guard let parsed = DuoSigning.parseQuery(Substring(aliases)), parsed.count <= 8,
                  parsed.allSatisfy({ $0.key.hasPrefix("alias") && (1...8).contains(Int($0.key.dropFirst(5)) ?? 0) })
            else { throw .invalidParameter("aliases") }
            for a in parsed { f.aliases[a.key] = a.value.isEmpty ? .some(nil) : a.value }
        }
        return f
    }

    private func apply(_ f: UserFields, to user: inout DuoUser) {
        if let v = f.values["realname"] { user.realname = v }
        if let v = f.values["email"] { user.email = v }
        if let v = f.values["firstname"] { user.firstname = v }
        if let v = f.values["lastname"] { user.lastname = v }
        if let v = f.values["notes"] { user.notes = v }
        if let status = f.status { user.status = status }
        for (slot, value) in f.aliases { user.aliases[slot] = value }
    }

    private func checkAliasesFree(_ aliases: [String: String?], except id: String?, _ s: State) throws(DuoEmulatorError) {
        for case let (_, alias?) in aliases {
            if let other = findByName(alias, s), other != id { throw .invalidParameter("aliases", "alias already in use") }
        }
    }

    /// Usernames and aliases are unique, case-insensitively.
    private func findByName(_ name: String, _ s: State) -> String? {
        let lower = name.lowercased()
        return s.userOrder.first { id in
            guard let u = s.users[id] else { return false }
            return u.username.lowercased() == lower || u.aliases.values.contains { $0.lowercased() == lower }
        }
    }

    private func withGroups(_ user: DuoUser, _ s: State) -> DuoUser {
        var u = user
        u.groups = (s.memberships[user.userID] ?? []).compactMap { s.groups[$0] }
        return u
    }

    private func journal(_ s: inout State, _ operation: String, _ caller: Caller, userID: String? = nil, groupID: String? = nil) -> DuoJournalEntry {
        let entry = DuoJournalEntry(
            sequence: s.journal.count + 1, timestampMs: Int64(Date().timeIntervalSince1970 * 1000), operation: operation,
            method: caller.method, path: caller.path, integrationKey: caller.integrationKey, userID: userID, groupID: groupID,
            user: userID.flatMap { s.users[$0] }.map { withGroups($0, s) }, group: groupID.flatMap { s.groups[$0] })
        s.journal.append(entry)
        return entry
    }

    private func page<T: Encodable>(_ items: [T], limit: Int, offset: Int) -> (Data, DuoPageMetadata?) {
        let slice = offset < items.count ? Array(items[offset..<min(items.count, offset + limit)]) : []
        let next = offset + limit < items.count ? offset + limit : nil
        let prev = offset > 0 ? max(0, offset - limit) : nil
        return (encode(slice), DuoPageMetadata(totalObjects: items.count, nextOffset: next, prevOffset: prev))
    }

    static func groupStatus(_ value: String?) throws(DuoEmulatorError) -> String? {
        guard let value else { return nil }
        guard ["active", "bypass", "disabled"].contains(value.lowercased()) else { throw .invalidParameter("status") }
        return value.lowercased()
    }

    static func isEmail(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !s.contains(" ")
    }

    private static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    /// Ids shaped like Duo's: a two-letter prefix and 18 more characters, 20 in all.
    static func newID(prefix: String) -> String {
        prefix + String((0..<18).map { _ in idAlphabet[Int.random(in: 0..<idAlphabet.count)] })
    }
}

/// A user to seed through the control API.
public struct DuoEmulatorSeedUser: Codable, Sendable {
    public var username: String
    public var realname: String?
    public var email: String?
    public var firstname: String?
    public var lastname: String?
    public var status: String?
    public var notes: String?
    /// Group names; missing groups are created.
    public var groups: [String]?

    public init(username: String, realname: String? = nil, email: String? = nil, status: String? = nil, groups: [String]? = nil) {
        self.username = username
        self.realname = realname
        self.email = email
        self.status = status
        self.groups = groups
    }
}

let emulatorEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
}()

func encode<T: Encodable>(_ value: T) -> Data { (try? emulatorEncoder.encode(value)) ?? Data("null".utf8) }
func encodeEmpty() -> Data { Data("\"\"".utf8) }
