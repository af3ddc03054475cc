import DuoAdmin
import Foundation

/// Validation of request fields as Duo does it, and the lookups and bookkeeping every operation
/// shares (called with the lock held).
extension DuoDirectory {
    struct UserFields {
        var values: [String: String] = [:]
        var status: DuoUserStatus?
        var aliases: [String: String?] = [:]
    }

    func validatedUserFields(_ p: DuoRequestParameters, creating: Bool) throws(DuoEmulatorError) -> UserFields {
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

    func apply(_ f: UserFields, to user: inout DuoUser) {
        if let v = f.values["realname"] { user.realname = v }
        if let v = f.values["email"] { user.email = v }
        if let v = f.values["firstname"] { user.firstname = v }
        if let v = f.values["lastname"] { user.lastname = v }
        if let v = f.values["notes"] { user.notes = v }
        if let status = f.status { user.status = status }
        for (slot, value) in f.aliases { user.aliases[slot] = value }
    }

    func checkAliasesFree(_ aliases: [String: String?], except id: String?, _ s: State) throws(DuoEmulatorError) {
        for case let (_, alias?) in aliases {
            if let other = findByName(alias, s), other != id { throw .invalidParameter("aliases", "alias already in use") }
        }
    }

    /// Usernames and aliases are unique, case-insensitively.
    func findByName(_ name: String, _ s: State) -> String? {
        s.names[name.lowercased()]
    }

    func withGroups(_ user: DuoUser, _ s: State) -> DuoUser {
        var u = user
        u.groups = (s.memberships[user.userID] ?? []).compactMap { s.groups[$0] }
        return u
    }

    func journal(_ s: inout State, _ operation: String, _ caller: Caller, userID: String? = nil, groupID: String? = nil) -> DuoJournalEntry {
        let entry = DuoJournalEntry(
            sequence: s.journal.count + 1, timestampMs: Int64(Date().timeIntervalSince1970 * 1000), operation: operation,
            method: caller.method, path: caller.path, integrationKey: caller.integrationKey, userID: userID, groupID: groupID,
            user: userID.flatMap { s.users[$0] }.map { withGroups($0, s) }, group: groupID.flatMap { s.groups[$0] },
            bulk: caller.bulk ? true : nil)
        s.journal.append(entry)
        return entry
    }

    func page<T: Encodable>(_ items: [T], limit: Int, offset: Int) -> (Data, DuoPageMetadata?) {
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

    static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    /// Ids shaped like Duo's: a two-letter prefix and 18 more characters, 20 in all.
    static func newID(prefix: String) -> String {
        prefix + String((0..<18).map { _ in idAlphabet[Int.random(in: 0..<idAlphabet.count)] })
    }
}
