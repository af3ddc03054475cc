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
    /// True when the change was one operation of a `POST /admin/v1/bulk` request (`method` and
    /// `path` are then the operation's).
    public var bulk: Bool?

    enum CodingKeys: String, CodingKey {
        case sequence, timestampMs = "timestamp_ms", operation, method, path, integrationKey = "integration_key"
        case userID = "user_id", groupID = "group_id", user, group, bulk
    }
}

/// The emulated directory: users, groups, memberships, and the journal of changes. All access
/// goes through one lock; every operation is short and never suspends while holding it.
public final class DuoDirectory: Sendable {
    struct State {
        /// Changed only through `put` and `removeUser`, which keep `userOrder` and `names` in step.
        private(set) var users: [String: DuoUser] = [:]
        private(set) var userOrder: [String] = []
        var groups: [String: DuoGroup] = [:]
        var groupOrder: [String] = []
        var memberships: [String: [String]] = [:]  // user id -> group ids, in the order added
        var journal: [DuoJournalEntry] = []
        var enrollments: [String: String] = [:]  // username -> email
        /// Every username and alias, lower-cased, to its user's id. Names are unique
        /// case-insensitively, and a lookup by name must not scan the directory: a create checks
        /// its name, so scanning made a directory of n users cost n² to fill.
        private(set) var names: [String: String] = [:]

        /// Adds a user, or replaces the one with its id, keeping `userOrder` and `names` in step.
        mutating func put(_ user: DuoUser) {
            if let old = users[user.userID] { unindex(old) } else { userOrder.append(user.userID) }
            users[user.userID] = user
            for key in Self.nameKeys(user) where names[key] == nil { names[key] = user.userID }
        }

        /// Removes a user and its names; nil if there was none with that id.
        mutating func removeUser(_ id: String) -> DuoUser? {
            guard let old = users.removeValue(forKey: id) else { return nil }
            unindex(old)
            userOrder.removeAll { $0 == id }
            return old
        }

        private mutating func unindex(_ user: DuoUser) {
            for key in Self.nameKeys(user) where names[key] == user.userID { names[key] = nil }
        }

        /// The keys of `names` a user holds: its username and aliases, lower-cased.
        private static func nameKeys(_ user: DuoUser) -> [String] {
            ([user.username] + user.aliases.values).map { $0.lowercased() }
        }
    }
    let state = Mutex(State())

    public init() {}

    /// Who made a request, for the journal.
    struct Caller { var method: String; var path: String; var integrationKey: String?; var bulk = false }

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
                s.put(u)
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
        // An entry's sequence is its position from 1, so the entries after it start at that index.
        state.withLock { s in Array(s.journal.dropFirst(max(0, sequence))) }
    }

    /// A user with its groups, by id.
    public func user(id: String) -> DuoUser? { state.withLock { s in s.users[id].map { withGroups($0, s) } } }

    /// A user with its groups, by username or alias.
    public func user(username: String) -> DuoUser? {
        state.withLock { s in findByName(username, s).flatMap { s.users[$0] }.map { withGroups($0, s) } }
    }

    public var allUsers: [DuoUser] { snapshot().users }
    public var allGroups: [DuoGroup] { snapshot().groups }

    /// Seeds groups by name and users with their group names; existing names are reused.
    // MARK: Seeding (control API)

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
                                created: seed.created ?? Int(Date().timeIntervalSince1970))
                u.notes = seed.notes ?? ""
                u.phones = (seed.phones ?? []).map { DuoPhone(phoneID: Self.newID(prefix: "DP"), number: $0) }
                u.isEnrolled = seed.isEnrolled ?? !u.phones.isEmpty
                u.lastLogin = seed.lastLogin
                s.put(u)
                s.memberships[id] = (seed.groups ?? []).map(group)
                createdUsers += 1
            }
            return (createdUsers, createdGroups)
        }
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
    /// As Duo returns them: whether the user has enrolled a device, and Unix seconds of the last
    /// login and of creation (default: now).
    public var isEnrolled: Bool?
    public var lastLogin: Int?
    public var created: Int?
    /// Phone numbers; a user with a phone is enrolled unless `is_enrolled` says otherwise.
    public var phones: [String]?

    enum CodingKeys: String, CodingKey {
        case username, realname, email, firstname, lastname, status, notes, groups
        case isEnrolled = "is_enrolled", lastLogin = "last_login", created, phones
    }

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
