import Foundation
import Lifecycle
import Testing

/// A binary-mode record, as an HR system publishes it.
func binaryRecord(type: String = "hr.employee.hired", data: String, key: String? = "E1",
                  headers extra: [String: String?] = [:], drop: Set<String> = []) -> LifecycleRecord {
    var headers: [String: String?] = [
        "ce_specversion": "1.0", "ce_id": "evt-1", "ce_source": "urn:test", "ce_type": type,
        "ce_time": "2026-11-02T09:00:00Z", "content-type": "application/json",
    ]
    for (k, v) in extra { headers[k] = v }
    for k in drop { headers[k] = nil }
    return LifecycleRecord(key: key.map { Array($0.utf8) }, value: Array(data.utf8),
                           headers: headers.sorted { $0.key < $1.key }.map { MessageHeader(name: $0.key, value: $0.value.map { Array($0.utf8) }) })
}

@Suite("Decoding lifecycle events")
struct LifecycleEventDecoderTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        var type: String
        var data: String
        var testDescription: String { type }
    }

    static let valid: [Valid] = [
        Valid(type: "hr.employee.hired", data: #"{"employee_id":"E1","email":"ada@example.com","roles":["eng"],"first_name":"Ada","sequence":3,"extra":{"x":1}}"#),
        Valid(type: "hr.employee.updated", data: #"{"employee_id":"E1","display_name":"Ada King"}"#),
        Valid(type: "hr.employee.role_changed", data: #"{"employee_id":"E1","roles":[]}"#),
        Valid(type: "hr.employee.terminated", data: #"{"employee_id":"E1","effective_at":"2026-11-20T17:00:00.5+01:00"}"#),
        Valid(type: "hr.employee.rehired", data: #"{"employee_id":"E1","roles":["eng"]}"#),
    ]

    @Test("Every event type decodes in binary mode", arguments: valid)
    func decodesEveryType(_ v: Valid) throws {
        let event = try LifecycleEventDecoder().decode(binaryRecord(type: v.type, data: v.data)).get()
        #expect(event.type.rawValue == v.type)
        #expect(event.employeeID == "E1" && event.id == "evt-1" && event.source == "urn:test" && event.mode == .binary)
    }

    @Test("Fields are typed: effective_at defaults to the event time, sequence and roles are read")
    func fields() throws {
        let hired = try LifecycleEventDecoder().decode(binaryRecord(data: Self.valid[0].data)).get()
        #expect(hired.sequence == 3 && hired.roles == ["eng"] && hired.firstName == "Ada" && hired.email == "ada@example.com")
        #expect(hired.effectiveAt == hired.time)
        #expect(hired.time == Date(timeIntervalSince1970: 1_793_610_000))
        let terminated = try LifecycleEventDecoder().decode(binaryRecord(type: "hr.employee.terminated", data: Self.valid[3].data)).get()
        #expect(terminated.effectiveAt == Date(timeIntervalSince1970: 1_795_190_400.5))
    }

    @Test("Structured mode decodes too")
    func structured() throws {
        let json = #"{"specversion":"1.0","id":"s-1","source":"urn:s","type":"hr.employee.terminated","time":"2026-11-02T09:00:00Z","data":{"employee_id":"E9"}}"#
        let record = LifecycleRecord(key: Array("E9".utf8), value: Array(json.utf8), headers: [MessageHeader(name: "content-type", value: Array("application/cloudevents+json; charset=utf-8".utf8))])
        let event = try LifecycleEventDecoder().decode(record).get()
        #expect(event.mode == .structured && event.employeeID == "E9" && event.type == .terminated)
    }

    struct Rejection: Sendable, CustomTestStringConvertible {
        var name: String
        var record: LifecycleRecord
        var path: String
        var rule: String
        var testDescription: String { name }
    }

    static let hired = #"{"employee_id":"E1","email":"a@example.com","roles":[]}"#
    static let rejections: [Rejection] = [
        Rejection(name: "no value", record: LifecycleRecord(key: nil, value: nil, headers: []), path: "$", rule: "required"),
        Rejection(name: "value over 64 KiB", record: binaryRecord(data: "{\"employee_id\":\"E1\",\"pad\":\"" + String(repeating: "x", count: 70_000) + "\"}"), path: "$", rule: "maxBytes 65536"),
        Rejection(name: "not JSON", record: binaryRecord(data: "{oops"), path: "$", rule: "json"),
        Rejection(name: "a JSON string, not an object", record: binaryRecord(data: #""E1""#), path: "$", rule: "json"),
        Rejection(name: "text after the value", record: binaryRecord(data: hired + " {}"), path: "$", rule: "json"),
        Rejection(name: "NUL in employee_id (SQLite would cut it there, PostgreSQL refuse it)",
                  record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E\u00001"}"#, key: "E\u{0}1"), path: "data.employee_id", rule: "not pattern \\u0000"),
        Rejection(name: "NUL in a role", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com","roles":["eng\u0000"]}"#), path: "data.roles[0]", rule: "not pattern \\u0000"),
        Rejection(name: "NUL in ce_id", record: binaryRecord(data: hired, headers: ["ce_id": "evt\u{0}1"]), path: "ce_id", rule: "not pattern \\u0000"),
        Rejection(name: "null employee_id", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":null}"#), path: "data.employee_id", rule: "type string"),
        Rejection(name: "sequence as a string", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":"3"}"#), path: "data.sequence", rule: "type integer"),
        Rejection(name: "sequence over 2^53-1", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":9007199254740993}"#), path: "data.sequence", rule: "minimum 0"),
        Rejection(name: "wrong content-type", record: binaryRecord(data: hired, headers: ["content-type": "text/plain"]), path: "content-type", rule: "enum"),
        Rejection(name: "missing ce_id", record: binaryRecord(data: hired, drop: ["ce_id"]), path: "ce_id", rule: "required"),
        Rejection(name: "missing ce_time", record: binaryRecord(data: hired, drop: ["ce_time"]), path: "ce_time", rule: "required"),
        Rejection(name: "specversion 0.3", record: binaryRecord(data: hired, headers: ["ce_specversion": "0.3"]), path: "ce_specversion", rule: "const 1.0"),
        Rejection(name: "bad time", record: binaryRecord(data: hired, headers: ["ce_time": "yesterday"]), path: "ce_time", rule: "format date-time"),
        Rejection(name: "unknown type", record: binaryRecord(type: "hr.employee.promoted", data: hired), path: "ce_type", rule: "enum"),
        Rejection(name: "data not an object", record: binaryRecord(data: "[1,2]"), path: "data", rule: "type object"),
        Rejection(name: "missing employee_id", record: binaryRecord(type: "hr.employee.terminated", data: "{}"), path: "data.employee_id", rule: "required"),
        Rejection(name: "empty employee_id", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":""}"#), path: "data.employee_id", rule: "minLength 1"),
        Rejection(name: "employee_id not a string", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":7}"#), path: "data.employee_id", rule: "type string"),
        Rejection(name: "empty username", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com","roles":[],"username":""}"#), path: "data.username", rule: "minLength 1"),
        Rejection(name: "bad email", record: binaryRecord(data: #"{"employee_id":"E1","email":"nope","roles":[]}"#), path: "data.email", rule: "pattern"),
        Rejection(name: "long last_name", record: binaryRecord(data: "{\"employee_id\":\"E1\",\"email\":\"a@example.com\",\"roles\":[],\"last_name\":\"" + String(repeating: "é", count: 257) + "\"}"), path: "data.last_name", rule: "maxLength 256"),
        Rejection(name: "roles not an array", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com","roles":"eng"}"#), path: "data.roles", rule: "type array"),
        Rejection(name: "101 roles", record: binaryRecord(data: "{\"employee_id\":\"E1\",\"email\":\"a@example.com\",\"roles\":[" + (0..<101).map { "\"r\($0)\"" }.joined(separator: ",") + "]}"), path: "data.roles", rule: "maxItems 100"),
        Rejection(name: "role not a string", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com","roles":["a",2]}"#), path: "data.roles[1]", rule: "type string"),
        Rejection(name: "empty role", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com","roles":[""]}"#), path: "data.roles[0]", rule: "minLength 1"),
        Rejection(name: "bad effective_at", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","effective_at":"2026-13-01T00:00:00Z"}"#), path: "data.effective_at", rule: "format date-time"),
        Rejection(name: "fractional sequence", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":1.5}"#), path: "data.sequence", rule: "type integer"),
        Rejection(name: "boolean sequence", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":true}"#), path: "data.sequence", rule: "type integer"),
        Rejection(name: "negative sequence", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":-2}"#), path: "data.sequence", rule: "minimum 0"),
        Rejection(name: "hired without email", record: binaryRecord(data: #"{"employee_id":"E1","roles":[]}"#), path: "data.email", rule: "required"),
        Rejection(name: "hired without roles", record: binaryRecord(data: #"{"employee_id":"E1","email":"a@example.com"}"#), path: "data.roles", rule: "required"),
        Rejection(name: "updated without a profile field", record: binaryRecord(type: "hr.employee.updated", data: #"{"employee_id":"E1","roles":[]}"#), path: "data", rule: "anyOf required"),
        Rejection(name: "role_changed without roles", record: binaryRecord(type: "hr.employee.role_changed", data: #"{"employee_id":"E1"}"#), path: "data.roles", rule: "required"),
        Rejection(name: "rehired without roles", record: binaryRecord(type: "hr.employee.rehired", data: #"{"employee_id":"E1"}"#), path: "data.roles", rule: "required"),
        Rejection(name: "records without a usable key: none", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1"}"#, key: nil),
                  path: "key", rule: "required"),
        Rejection(name: "records without a usable key: empty", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1"}"#, key: ""),
                  path: "key", rule: "required"),
        Rejection(name: "records without a usable key: not UTF-8",
                  record: LifecycleRecord(key: [0xFF, 0xFE], value: Array(#"{"employee_id":"E1"}"#.utf8),
                                          headers: binaryRecord(type: "hr.employee.terminated", data: "{}").headers),
                  path: "key", rule: "utf8"),
        Rejection(name: "key is not the employee id", record: binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1"}"#, key: "E2"), path: "key", rule: "equals data.employee_id"),
    ]

    @Test("Each rule broken gives a rejection naming the field and the rule", arguments: rejections)
    func rejection(_ r: Rejection) {
        switch LifecycleEventDecoder().decode(r.record) {
        case .success(let event): Issue.record("accepted \(event)")
        case .failure(let rejection):
            #expect(rejection.path == r.path)
            #expect(rejection.rule == r.rule)
            #expect(!rejection.message.isEmpty)
        }
    }

    @Test("Headers are found in any case, the last of a name counting; a member given twice counts once, the last; an integral sequence in any JSON form is read")
    func headersMembersAndNumbers() throws {
        var record = binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E0","employee_id":"E1","sequence":5.0}"#)
        record.headers.insert(MessageHeader("CE_ID", "overridden"), at: 0)
        record.headers.append(MessageHeader("Ce_Source", "urn:last"))
        record.headers = record.headers.map { $0.name == "content-type" ? MessageHeader("Content-Type", "Application/JSON") : $0 }
        let event = try LifecycleEventDecoder().decode(record).get()
        #expect(event.id == "evt-1" && event.source == "urn:last" && event.employeeID == "E1" && event.sequence == 5)
        let exponent = try LifecycleEventDecoder().decode(binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E1","sequence":1e2}"#)).get()
        #expect(exponent.sequence == 100)
        let escaped = try LifecycleEventDecoder().decode(binaryRecord(type: "hr.employee.terminated", data: #"{"employee_id":"E\u0031"}"#)).get()
        #expect(escaped.employeeID == "E1")
    }

    @Test("A trailing comma passes, as it did when JSONSerialization read events: a leaver from a producer that writes one is still locked out")
    func trailingCommaPassesAsBefore() throws {
        let data = #"{"employee_id":"E1","roles":["eng",],}"#
        let event = try LifecycleEventDecoder().decode(binaryRecord(type: "hr.employee.terminated", data: data)).get()
        #expect(event.type == .terminated && event.employeeID == "E1" && event.roles == ["eng"])
        // The same document, as Foundation reads it.
        #expect(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? NSDictionary == ["employee_id": "E1", "roles": ["eng"]] as NSDictionary)
    }

    @Test("A rejection keeps what could be read, for the result and the dead letter")
    func rejectionContext() throws {
        guard case .failure(let r) = LifecycleEventDecoder().decode(binaryRecord(type: "hr.employee.promoted", data: Self.hired)) else {
            Issue.record("accepted"); return
        }
        #expect(r.eventID == "evt-1" && r.eventSource == "urn:test" && r.eventType == "hr.employee.promoted" && r.employeeID == "E1")
    }
}

@Suite("CloudEvents time")
struct CloudEventsTimeTests {
    @Test("An event without time (optional in CloudEvents 1.0) takes the Kafka record's timestamp; without either it is refused naming time")
    func timeIsOptional() throws {
        let headers = [("ce_specversion", "1.0"), ("ce_id", "no-time-1"), ("ce_source", "urn:sdk"), ("ce_type", "hr.employee.terminated"),
                       ("content-type", "application/json")].map { MessageHeader(name: $0.0, value: Array($0.1.utf8)) }
        let stamp = Date(timeIntervalSince1970: 1_790_000_000)
        let record = LifecycleRecord(key: Array("E1".utf8), value: Array(#"{"employee_id":"E1"}"#.utf8), headers: headers, timestamp: stamp)
        let event = try LifecycleEventDecoder().decode(record).get()
        #expect(event.time == stamp && event.ordering.time == stamp)
        let untimed = LifecycleRecord(key: Array("E1".utf8), value: Array(#"{"employee_id":"E1"}"#.utf8), headers: headers)
        guard case .failure(let rejection) = LifecycleEventDecoder().decode(untimed) else { Issue.record("accepted without any time"); return }
        #expect(rejection.path == "ce_time" && rejection.rule == "required")
    }
}
