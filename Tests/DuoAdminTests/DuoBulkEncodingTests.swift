@testable import DuoAdmin
import Foundation
import JSONText
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

    @Test("A v5 request body is the JSON Foundation writes (sorted keys, compact, slashes as is), a repeated parameter a list; keys in code point order, as Duo's Python client sorts them")
    func jsonBodyMatchesFoundation() throws {
        let parameters = [DuoParameter("username", "ada/\"x\"\\\n\t\u{1} J\u{F6}s\u{E9} \u{1F600}"), DuoParameter("realname", "Ada"),
                          DuoParameter("group_id", "DG1"), DuoParameter("group_id", "DG2"), DuoParameter("alias1", "")]
        let foundation = try JSONSerialization.data(withJSONObject: ["username": parameters[0].value, "realname": "Ada", "group_id": ["DG1", "DG2"],
                                                                     "alias1": ""] as [String: Any],
                                                    options: [.sortedKeys, .withoutEscapingSlashes])
        #expect(DuoAdminClient.jsonBody(parameters) == Array(foundation),
                "\(String(decoding: DuoAdminClient.jsonBody(parameters), as: UTF8.self))\n\(String(decoding: foundation, as: UTF8.self))")
        #expect(DuoAdminClient.jsonBody([]) == Array("{}".utf8))
        // Foundation orders "Zeta" after "alias1"; Python's sort_keys (and this) before.
        #expect(DuoAdminClient.jsonBody([DuoParameter("alias1", "a"), DuoParameter("Zeta", "z")]) == Array(#"{"Zeta":"z","alias1":"a"}"#.utf8))
    }

    @Test("Each bulk outcome maps to its operation: a user object as its JSON, an empty answer, a refusal with Duo's code and message, a malformed entry, a stat that is not a string named as its JSON")
    func bulkOutcomesMapToOperations() throws {
        let answer = #"{"stat":"OK","response":[{"stat":"OK","response":{"user_id":"DU1","username":"ada","groups":[],"created":1790000000,"alias1":null}},"#
            + #"{"stat":"OK","response":""},{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"},"#
            + #"{"stat":"FAIL","code":"40401","message":"Resource not found"},7,{"stat":{"state":"odd","n":[1,2.50]}}]}"#
        let items = try #require(try JSONValue.parse(Array(answer.utf8))["response"]?.arrayValue)
        let op = DuoBulkOperation.deleteUser(id: "DU1")
        guard case .ok(let user) = DuoAdminClient.bulkOutcome(items[0], of: op) else { Issue.record("not ok"); return }
        let object = try #require(try JSONSerialization.jsonObject(with: user) as? NSDictionary)
        #expect(object == ["user_id": "DU1", "username": "ada", "groups": [], "created": 1_790_000_000, "alias1": NSNull()] as NSDictionary)
        guard case .ok(let empty) = DuoAdminClient.bulkOutcome(items[1], of: op) else { Issue.record("not ok"); return }
        #expect(empty == Data("\"\"".utf8))
        guard case .failed(let refused) = DuoAdminClient.bulkOutcome(items[2], of: op) else { Issue.record("not failed"); return }
        #expect(refused.code == 40002 && refused.message == "Invalid request parameters" && refused.messageDetail == "username" && refused.kind == .duo)
        guard case .failed(let notFound) = DuoAdminClient.bulkOutcome(items[3], of: op) else { Issue.record("not failed"); return }
        #expect(notFound.code == 40401)
        guard case .failed(let malformed) = DuoAdminClient.bulkOutcome(items[4], of: op) else { Issue.record("not failed"); return }
        #expect(malformed.kind == .invalidResponse)
        // A stat that is not a string is named as the JSON Duo sent.
        guard case .failed(let odd) = DuoAdminClient.bulkOutcome(items[5], of: op) else { Issue.record("not failed"); return }
        #expect(odd.message == #"Duo answered stat={"state":"odd","n":[1,2.50]}"#)
    }
}
