/// A Duo user's status. Unknown values are kept rather than rejected, so a new status Duo adds
/// does not break reading users.
public enum DuoUserStatus: Sendable, Hashable, Codable, CustomStringConvertible, RawRepresentable {
    case active, bypass, disabled, lockedOut, pendingDeletion
    case unknown(String)

    public init(rawValue: String) {
        switch rawValue.lowercased() {
        case "active": self = .active
        case "bypass": self = .bypass
        case "disabled": self = .disabled
        case "locked out": self = .lockedOut
        case "pending deletion": self = .pendingDeletion
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .active: "active"
        case .bypass: "bypass"
        case .disabled: "disabled"
        case .lockedOut: "locked out"
        case .pendingDeletion: "pending deletion"
        case .unknown(let v): v
        }
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// A Duo group.
public struct DuoGroup: Sendable, Hashable, Codable {
    public var groupID: String
    public var name: String
    public var desc: String?
    /// Duo spells this `active` or `Active` depending on the endpoint; it is kept as sent.
    public var status: String?
    public var pushEnabled: Bool?
    public var smsEnabled: Bool?
    public var voiceEnabled: Bool?
    public var mobileOTPEnabled: Bool?

    public init(groupID: String, name: String, desc: String? = nil, status: String? = "active") {
        self.groupID = groupID
        self.name = name
        self.desc = desc
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case groupID = "group_id", name, desc, status
        case pushEnabled = "push_enabled", smsEnabled = "sms_enabled", voiceEnabled = "voice_enabled", mobileOTPEnabled = "mobile_otp_enabled"
    }
}

/// A Duo user.
public struct DuoUser: Sendable, Hashable, Codable {
    public var userID: String
    public var username: String
    public var realname: String?
    public var email: String?
    public var firstname: String?
    public var lastname: String?
    public var notes: String?
    public var status: DuoUserStatus
    /// Aliases by slot (`alias1` … `alias8`).
    public var aliases: [String: String]
    /// Unix seconds.
    public var created: Int?
    public var lastLogin: Int?
    public var lastDirectorySync: Int?
    public var isEnrolled: Bool?
    public var lockoutReason: String?
    public var enableAutoPrompt: Bool?
    public var externalID: String?
    /// The user's groups, as Duo embeds them in the user object.
    public var groups: [DuoGroup]
    /// The user's phones, as Duo embeds them (an enrolled user has at least one device).
    public var phones: [DuoPhone] = []

    public init(userID: String, username: String, realname: String? = nil, email: String? = nil, firstname: String? = nil,
                lastname: String? = nil, notes: String? = "", status: DuoUserStatus = .active, aliases: [String: String] = [:],
                created: Int? = nil, groups: [DuoGroup] = []) {
        self.userID = userID
        self.username = username
        self.realname = realname
        self.email = email
        self.firstname = firstname
        self.lastname = lastname
        self.notes = notes
        self.status = status
        self.aliases = aliases
        self.created = created
        self.groups = groups
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", username, realname, email, firstname, lastname, notes, status, aliases, created
        case lastLogin = "last_login", lastDirectorySync = "last_directory_sync", isEnrolled = "is_enrolled"
        case lockoutReason = "lockout_reason", enableAutoPrompt = "enable_auto_prompt", externalID = "external_id", groups, phones
        case alias1, alias2, alias3, alias4
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        userID = try c.decode(String.self, forKey: .userID)
        username = try c.decode(String.self, forKey: .username)
        realname = try c.decodeIfPresent(String.self, forKey: .realname)
        email = try c.decodeIfPresent(String.self, forKey: .email)
        firstname = try c.decodeIfPresent(String.self, forKey: .firstname)
        lastname = try c.decodeIfPresent(String.self, forKey: .lastname)
        notes = try c.decodeIfPresent(String.self, forKey: .notes)
        status = try c.decodeIfPresent(DuoUserStatus.self, forKey: .status) ?? .active
        var aliases = (try? c.decodeIfPresent([String: String?].self, forKey: .aliases))??.compactMapValues { $0 } ?? [:]
        for (i, key) in [CodingKeys.alias1, .alias2, .alias3, .alias4].enumerated() {
            if let v = try c.decodeIfPresent(String.self, forKey: key), !v.isEmpty { aliases["alias\(i + 1)"] = v }
        }
        self.aliases = aliases
        created = try c.decodeIfPresent(Int.self, forKey: .created)
        lastLogin = try c.decodeIfPresent(Int.self, forKey: .lastLogin)
        lastDirectorySync = try c.decodeIfPresent(Int.self, forKey: .lastDirectorySync)
        isEnrolled = try c.decodeIfPresent(Bool.self, forKey: .isEnrolled)
        lockoutReason = try c.decodeIfPresent(String.self, forKey: .lockoutReason)
        enableAutoPrompt = try c.decodeIfPresent(Bool.self, forKey: .enableAutoPrompt)
        externalID = try c.decodeIfPresent(String.self, forKey: .externalID)
        groups = try c.decodeIfPresent([DuoGroup].self, forKey: .groups) ?? []
        phones = (try? c.decodeIfPresent([DuoPhone].self, forKey: .phones)) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(userID, forKey: .userID)
        try c.encode(username, forKey: .username)
        try c.encode(realname, forKey: .realname)
        try c.encode(email, forKey: .email)
        try c.encode(firstname, forKey: .firstname)
        try c.encode(lastname, forKey: .lastname)
        try c.encode(notes ?? "", forKey: .notes)
        try c.encode(status, forKey: .status)
        try c.encode(aliases, forKey: .aliases)
        for (i, key) in [CodingKeys.alias1, .alias2, .alias3, .alias4].enumerated() { try c.encode(aliases["alias\(i + 1)"], forKey: key) }
        try c.encodeIfPresent(created, forKey: .created)
        try c.encode(lastLogin, forKey: .lastLogin)
        try c.encode(lastDirectorySync, forKey: .lastDirectorySync)
        try c.encode(isEnrolled ?? false, forKey: .isEnrolled)
        try c.encode(lockoutReason, forKey: .lockoutReason)
        try c.encodeIfPresent(enableAutoPrompt, forKey: .enableAutoPrompt)
        try c.encodeIfPresent(externalID, forKey: .externalID)
        try c.encode(groups, forKey: .groups)
        try c.encode(phones, forKey: .phones)
    }
}

/// A phone as Duo embeds it in a user.
public struct DuoPhone: Sendable, Hashable, Codable {
    public var phoneID: String
    public var number: String
    /// `mobile`, `landline`, …
    public var type: String
    public var activated: Bool

    public init(phoneID: String, number: String, type: String = "mobile", activated: Bool = true) {
        self.phoneID = phoneID
        self.number = number
        self.type = type
        self.activated = activated
    }

    enum CodingKeys: String, CodingKey { case phoneID = "phone_id", number, type, activated }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        phoneID = try c.decode(String.self, forKey: .phoneID)
        number = try c.decodeIfPresent(String.self, forKey: .number) ?? ""
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
        activated = try c.decodeIfPresent(Bool.self, forKey: .activated) ?? false
    }
}

/// A member of a group, as the v2 group members endpoint lists it.
public struct DuoGroupMember: Sendable, Hashable, Codable {
    public var userID: String
    public var username: String
    public init(userID: String, username: String) { self.userID = userID; self.username = username }
    enum CodingKeys: String, CodingKey { case userID = "user_id", username }
}

/// Fields to set when creating or modifying a user. `nil` leaves a field as it is.
public struct DuoUserFields: Sendable, Hashable {
    public var username: String?
    public var realname: String?
    public var email: String?
    public var firstname: String?
    public var lastname: String?
    public var status: DuoUserStatus?
    public var notes: String?

    public init(username: String? = nil, realname: String? = nil, email: String? = nil, firstname: String? = nil,
                lastname: String? = nil, status: DuoUserStatus? = nil, notes: String? = nil) {
        self.username = username
        self.realname = realname
        self.email = email
        self.firstname = firstname
        self.lastname = lastname
        self.status = status
        self.notes = notes
    }

    public var isEmpty: Bool { parameters.isEmpty }

    /// The Admin API parameters for these fields.
    public var parameters: [DuoParameter] {
        var p: [DuoParameter] = []
        if let username { p.append(.init("username", username)) }
        if let realname { p.append(.init("realname", realname)) }
        if let email { p.append(.init("email", email)) }
        if let firstname { p.append(.init("firstname", firstname)) }
        if let lastname { p.append(.init("lastname", lastname)) }
        if let status { p.append(.init("status", status.rawValue)) }
        if let notes { p.append(.init("notes", notes)) }
        return p
    }
}

/// Paging metadata of a list response.
public struct DuoPageMetadata: Sendable, Hashable, Codable {
    public var totalObjects: Int?
    public var nextOffset: Int?
    public var prevOffset: Int?
    public init(totalObjects: Int?, nextOffset: Int?, prevOffset: Int?) {
        self.totalObjects = totalObjects
        self.nextOffset = nextOffset
        self.prevOffset = prevOffset
    }
    enum CodingKeys: String, CodingKey { case totalObjects = "total_objects", nextOffset = "next_offset", prevOffset = "prev_offset" }
}
