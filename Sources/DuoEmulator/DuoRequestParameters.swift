import DuoAdmin
import Foundation

/// The parameters of one Admin API request, from its query string and its form or JSON body.
struct DuoRequestParameters: Sendable {
    private(set) var all: [DuoParameter]

    init(_ all: [DuoParameter]) { self.all = all }

    /// The first value of a parameter.
    subscript(key: String) -> String? { all.first { $0.key == key }?.value }

    /// `limit` and `offset`, with `limit` clamped to Duo's maximum (Duo treats it as a request).
    func paging(defaultLimit: Int, maxLimit: Int) throws(DuoEmulatorError) -> (limit: Int, offset: Int) {
        var limit = defaultLimit, offset = 0
        if let v = self["limit"] {
            guard let n = Int(v), n >= 1 else { throw .invalidParameter("limit") }
            limit = min(n, maxLimit)
        }
        if let v = self["offset"] {
            guard let n = Int(v), n >= 0 else { throw .invalidParameter("offset") }
            offset = n
        }
        return (limit, offset)
    }

    /// A JSON-array-of-strings parameter such as `user_id_list`, at most 100 items.
    func jsonList(_ key: String) throws(DuoEmulatorError) -> [String]? {
        guard let v = self[key] else { return nil }
        guard let list = (try? JSONSerialization.jsonObject(with: Data(v.utf8))) as? [String], list.count <= 100 else {
            throw .invalidParameter(key)
        }
        return list
    }

    /// Parameters of a JSON object body: strings stay, numbers and booleans become strings the way
    /// Duo's Python client normalises them, arrays become repeated values.
    static func fromJSON(_ body: Data) throws(DuoEmulatorError) -> [DuoParameter] {
        guard !body.isEmpty else { return [] }
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw DuoEmulatorError(httpStatus: 400, code: 40002, message: "Invalid request parameters", detail: "JSON request must be an object")
        }
        var result: [DuoParameter] = []
        for (key, value) in object {
            for v in (value as? [Any]) ?? [value] {
                switch v {
                case let s as String: result.append(DuoParameter(key, s))
                case let n as NSNumber:
                    if String(cString: n.objCType) == "c" { result.append(DuoParameter(key, n.boolValue ? "true" : "false")) }
                    else { result.append(DuoParameter(key, n.stringValue)) }
                case is NSNull: continue
                default:
                    let data = (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys])) ?? Data()
                    result.append(DuoParameter(key, String(decoding: data, as: UTF8.self)))
                }
            }
        }
        return result
    }
}
