import DuoAdmin
import Foundation

/// `POST /admin/v1/bulk`: up to 50 user and group-membership writes in one signed request, which
/// the rate limit counts once.
///
/// `operations` is a JSON array (sent as a string, as Duo's Python client sends it) of
/// `{"method", "path", "body"}` objects. Each operation is one of create user
/// (`POST /admin/v1/users`), modify user (`POST /admin/v1/users/{id}`), delete user
/// (`DELETE /admin/v1/users/{id}`), add a user to a group (`POST /admin/v1/users/{id}/groups`)
/// and remove a user from a group (`DELETE /admin/v1/users/{id}/groups/{group_id}`).
///
/// A request that is not such a list (not JSON, empty, more than 50, an operation of another
/// kind) fails whole, with nothing done. Otherwise the operations run in order, each with the
/// same rules as its single call, and the response lists one outcome per operation, in order,
/// in Duo's envelope: `{"stat":"OK","response":…}` or
/// `{"stat":"FAIL","code":…,"message":…,"message_detail":…}`. One operation failing does not stop
/// the others.
extension DuoDirectory {
    public static let maxBulkOperations = 50

    private struct BulkOperation {
        enum Kind { case createUser, modifyUser(String), deleteUser(String), addGroup(String), removeGroup(String, String) }
        var kind: Kind
        var method: String
        var path: String
        var body: [DuoParameter]
    }

    func bulk(_ p: DuoRequestParameters, caller: Caller) throws(DuoEmulatorError) -> Data {
        guard let raw = p["operations"] else { throw .missingParameter("operations") }
        guard let list = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [Any] else {
            throw .invalidParameter("operations", "operations must be a JSON array of {method, path, body} objects")
        }
        guard (1...Self.maxBulkOperations).contains(list.count) else {
            throw .invalidParameter("operations", "a bulk request holds 1 to \(Self.maxBulkOperations) operations, not \(list.count)")
        }
        var operations: [BulkOperation] = []
        for (index, item) in list.enumerated() {
            operations.append(try Self.bulkOperation(item, index: index))
        }
        var outcomes: [Data] = []
        for op in operations {
            let params = DuoRequestParameters(op.body)
            let opCaller = Caller(method: op.method, path: op.path, integrationKey: caller.integrationKey, bulk: true)
            do throws(DuoEmulatorError) {
                let response: Data
                switch op.kind {
                case .createUser: response = try createUser(params, caller: opCaller)
                case .modifyUser(let id): response = try modifyUser(id, params, caller: opCaller)
                case .deleteUser(let id): response = deleteUser(id, caller: opCaller)
                case .addGroup(let id): response = try addUserGroup(id, params, caller: opCaller)
                case .removeGroup(let id, let group): response = try removeUserGroup(id, group, caller: opCaller)
                }
                outcomes.append(Data(#"{"stat":"OK","response":"#.utf8) + response + Data("}".utf8))
            } catch {
                var object: [String: Any] = ["stat": "FAIL", "code": error.code, "message": error.message]
                if let detail = error.detail { object["message_detail"] = detail }
                outcomes.append((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
            }
        }
        return Data("[".utf8) + Data(outcomes.joined(separator: Data(",".utf8))) + Data("]".utf8)
    }

    private static func bulkOperation(_ item: Any, index: Int) throws(DuoEmulatorError) -> BulkOperation {
        guard let object = item as? [String: Any], let method = (object["method"] as? String)?.uppercased(), let path = object["path"] as? String else {
            throw .invalidParameter("operations", "operation \(index) needs a method and a path")
        }
        let bodyObject = object["body"] ?? [String: Any]()
        guard bodyObject is [String: Any], let bodyData = try? JSONSerialization.data(withJSONObject: bodyObject) else {
            throw .invalidParameter("operations", "operation \(index): body must be an object")
        }
        let body = try DuoRequestParameters.fromJSON(bodyData)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // "", "admin", "v1", "users", id?, "groups"?, group?
        guard parts.count >= 4, parts[0].isEmpty, parts[1] == "admin", parts[2] == "v1", parts[3] == "users" else {
            throw .invalidParameter("operations", "operation \(index): \(method) \(path) is not allowed in a bulk request")
        }
        let kind: BulkOperation.Kind
        switch (method, parts.count) {
        case ("POST", 4): kind = .createUser
        case ("POST", 5) where !parts[4].isEmpty: kind = .modifyUser(parts[4])
        case ("DELETE", 5) where !parts[4].isEmpty: kind = .deleteUser(parts[4])
        case ("POST", 6) where !parts[4].isEmpty && parts[5] == "groups": kind = .addGroup(parts[4])
        case ("DELETE", 7) where !parts[4].isEmpty && parts[5] == "groups" && !parts[6].isEmpty: kind = .removeGroup(parts[4], parts[6])
        default: throw .invalidParameter("operations", "operation \(index): \(method) \(path) is not allowed in a bulk request")
        }
        return BulkOperation(kind: kind, method: method, path: path, body: body)
    }
}
