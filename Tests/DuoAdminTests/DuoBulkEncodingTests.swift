@testable import DuoAdmin
import Foundation
import Testing

@Suite("Duo bulk request encoding")
struct DuoBulkEncodingTests {
    @Test("The operations parameter is the JSON Foundation writes, with the same members, values and escapes, members in key order")
    func operationsMatchFoundation() throws {
        var fields = DuoUserFields(username: "ada \"the\" lovelace", realname: "Ada\\Lovelace\n\t\u{1}", email: "ada/x@example.com",
                                   firstname: "Zo\u{EB} \u{1F600}", status: .active, notes: "")
        fields.lastname = "</script>"
        let operations: [DuoBulkOperation] = [
            .createUser(fields), .modifyUser(id: "DU/1 2", fields), .deleteUser(id: "DU3"), .addUser("DU4", toGroup: "DG\"5"),
            .removeUser("DU6", fromGroup: "DG7"),
            DuoBulkOperation(method: "POST", path: "/admin/v1/users", body: [DuoParameter("username", "first"), DuoParameter("username", "last")]),
        ]
        let written = DuoAdminClient.operationsJSON(operations)
        let list: [[String: Any]] = operations.map { op in
            var body: [String: Any] = [:]
            for p in op.body { body[p.key] = p.value }
            return ["method": op.method, "path": op.path, "body": body]
        }
        let foundation = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys, .withoutEscapingSlashes])
        let ours = try #require(try JSONSerialization.jsonObject(with: Data(written.utf8)) as? NSArray)
        let theirs = try #require(try JSONSerialization.jsonObject(with: foundation) as? NSArray)
        #expect(ours == theirs, "\(written)\n\(String(decoding: foundation, as: UTF8.self))")
        #expect(written.hasPrefix(#"[{"body":{"email":"ada/x@example.com","firstname":"#), "\(written)")
        #expect(written.contains(#"{"body":{"username":"last"},"method":"POST","path":"/admin/v1/users"}"#), "\(written)")
    }
}
