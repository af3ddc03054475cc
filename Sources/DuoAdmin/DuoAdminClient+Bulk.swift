import Foundation
import JSONText
import NIOHTTP1

/// One write of a `POST /admin/v1/bulk` request: create, modify or delete a user, or add or
/// remove a user's group.
public struct DuoBulkOperation: Sendable, Hashable, CustomStringConvertible {
    public var method: String
    public var path: String
    public var body: [DuoParameter]

    public static func createUser(_ fields: DuoUserFields) -> Self {
        Self(method: "POST", path: "/admin/v1/users", body: fields.parameters)
    }

    public static func modifyUser(id: String, _ fields: DuoUserFields) -> Self {
        Self(method: "POST", path: "/admin/v1/users/\(DuoAdminClient.segment(id))", body: fields.parameters)
    }

    public static func deleteUser(id: String) -> Self {
        Self(method: "DELETE", path: "/admin/v1/users/\(DuoAdminClient.segment(id))", body: [])
    }

    public static func addUser(_ userID: String, toGroup groupID: String) -> Self {
        Self(method: "POST", path: "/admin/v1/users/\(DuoAdminClient.segment(userID))/groups", body: [DuoParameter("group_id", groupID)])
    }

    public static func removeUser(_ userID: String, fromGroup groupID: String) -> Self {
        Self(method: "DELETE", path: "/admin/v1/users/\(DuoAdminClient.segment(userID))/groups/\(DuoAdminClient.segment(groupID))", body: [])
    }

    /// `METHOD /path`, as errors name a request.
    public var description: String { "\(method) \(path)" }
}

/// What became of one operation of a bulk request.
public enum DuoBulkOutcome: Sendable {
    /// Done; Duo's `response` for it (a user object for a create or modify, `""` otherwise), as JSON.
    case ok(Data)
    /// Duo refused or failed it; the others are unaffected.
    case failed(DuoAdminError)
    /// Duo's answer has no outcome for it (it stopped early): it was not performed.
    case notPerformed
}

/// Duo's answer to one write, made alone or as one operation of a bulk request. Decoded only
/// when the caller needs it (a created user), and then once.
public enum DuoWriteResponse: Sendable {
    /// The write's own call.
    case call(DuoResponse)
    /// Its operation's `response` in a bulk answer, as JSON.
    case bulk(Data)

    /// The user a create or modify returned.
    public func user(of operation: DuoBulkOperation) throws -> DuoUser {
        switch self {
        case .call(let response): return try response.decode(DuoUser.self, request: operation.description)
        case .bulk(let data): return try DuoAdminClient.bulkUser(data, of: operation)
        }
    }
}

extension DuoAdminClient {
    /// The most operations one bulk request may hold.
    public static let maxBulkOperations = 50

    /// Performs up to 50 writes in one signed `POST /admin/v1/bulk` request, which counts once
    /// against the rate limit, and returns one outcome per operation, in order.
    ///
    /// The request as a whole is retried like any call. An operation's own failure is its
    /// outcome, not an error: only a failure of the whole request throws. Duo performs the
    /// operations in order; an answer with fewer outcomes than operations marks the rest
    /// ``DuoBulkOutcome/notPerformed``, so the caller can make them again one by one.
    public func bulk(_ operations: [DuoBulkOperation], permit: DuoRequestPermit? = nil) async throws -> [DuoBulkOutcome] {
        let request = "POST /admin/v1/bulk"
        guard (1...Self.maxBulkOperations).contains(operations.count) else {
            permit?.release()
            throw DuoAdminError(kind: .invalidRequest, message: "A bulk request holds 1 to \(Self.maxBulkOperations) operations, not \(operations.count)",
                                request: request)
        }
        let response = try await call(.POST, "/admin/v1/bulk", parameters: [DuoParameter("operations", Self.operationsJSON(operations))],
                                  permit: permit)
        guard let items = (try? JSONValue.parse(response.body))?["response"]?.arrayValue else {
            throw DuoAdminError(kind: .invalidResponse, httpStatus: 200, message: "A bulk response must list one outcome per operation", request: request)
        }
        return operations.indices.map { index in
            guard index < items.count else { return .notPerformed }
            return Self.bulkOutcome(items[index], of: operations[index])
        }
    }

    /// The `operations` parameter: `[{"body":{...},"method":...,"path":...}, ...]`, members in
    /// key order (a parameter given twice keeps its last value), as Duo's clients send it.
    static func operationsJSON(_ operations: [DuoBulkOperation]) -> String {
        var json = JSONText()
        json.beginArray()
        for op in operations {
            var body: [String: String] = [:]
            for p in op.body { body[p.key] = p.value }
            json.beginObject()
            json.key("body")
            json.beginObject()
            for key in body.keys.sorted() {
                json.key(key)
                json.string(body[key])
            }
            json.endObject()
            json.key("method")
            json.string(op.method)
            json.key("path")
            json.string(op.path)
            json.endObject()
        }
        json.endArray()
        return String(decoding: json.bytes, as: UTF8.self)
    }

    static func bulkOutcome(_ item: JSONValue, of operation: DuoBulkOperation) -> DuoBulkOutcome {
        guard case .object = item else {
            return .failed(DuoAdminError(kind: .invalidResponse, message: "A bulk outcome is not an object", request: operation.description))
        }
        if item["stat"]?.stringValue == "OK" {
            let response = item["response"] ?? .string("")
            // Writes other than a create or modify answer "": nothing to write again.
            if response.stringValue?.isEmpty == true { return .ok(Data("\"\"".utf8)) }
            var json = JSONText()
            json.value(response)
            return .ok(Data(json.bytes))
        }
        let code = item["code"]?.int64Value.flatMap { Int(exactly: $0) } ?? item["code"]?.stringValue.flatMap { Int($0) }
        let stat = item["stat"].map { $0.stringValue ?? "\($0)" } ?? "nil"
        return .failed(DuoAdminError(kind: .duo, code: code, message: item["message"]?.stringValue ?? "Duo answered stat=\(stat)",
                                     messageDetail: item["message_detail"]?.stringValue, request: operation.description))
    }

    /// Decodes a bulk create's or modify's user.
    public static func bulkUser(_ data: Data, of operation: DuoBulkOperation) throws -> DuoUser {
        do { return try JSONDecoder().decode(DuoUser.self, from: data) } catch {
            throw DuoAdminError(kind: .invalidResponse, httpStatus: 200, message: "Unexpected user shape in a bulk outcome: \(error)", request: operation.description)
        }
    }
}
