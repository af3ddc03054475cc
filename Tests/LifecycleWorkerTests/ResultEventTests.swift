import Foundation
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Testing

@Suite("Result events")
struct ResultEventTests {
    static func ceID(_ m: NewOutboxMessage) -> String? {
        m.headers.last { $0.name == "ce_id" }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("A result published twice is the same CloudEvent: its ce_id is a UUIDv5 of the event, the outcome and the replay")
    func resultIDsAreDerived() throws {
        let factory = OutboxMessageFactory(configuration: PipelineConfiguration())
        let record = SourceRecord(topic: "t", partition: 1, offset: 7, timestampMs: nil, key: nil, value: nil, headers: [], receivedAt: Date())
        let event = OutboxMessageFactory.EventIdentity(id: "e1", source: "urn:s", type: "hr.employee.hired", employeeID: "E1")
        let first = try #require(Self.ceID(factory.result(for: event, record: record, outcome: .applied)))
        #expect(Self.ceID(factory.result(for: event, record: record, outcome: .applied, attempts: 2)) == first, "the same result again")
        #expect(Self.ceID(factory.result(for: event, record: record, outcome: .scheduled)) != first, "scheduled, then applied: two results")
        var replayed = record
        replayed.headers = [MessageHeader("dlq-replayed-at", "2026-11-29T10:00:00Z")]
        #expect(Self.ceID(factory.result(for: event, record: replayed, outcome: .applied)) != first, "a replay is a new result")
        let other = OutboxMessageFactory.EventIdentity(id: "e2", source: "urn:s", type: "hr.employee.hired", employeeID: "E1")
        #expect(Self.ceID(factory.result(for: other, record: record, outcome: .applied)) != first)
        let uuid = try #require(UUID(uuidString: first))
        #expect(uuid.uuid.6 >> 4 == 5 && uuid.uuid.8 >> 6 == 0b10, "RFC 9562 version 5, variant 10")
    }

    @Test("A result's JSON, written by hand for speed, is the document JSONSerialization made: every member, escapes (quotes, backslashes, control characters, non-ASCII) and members in key order")
    func resultJSONMatchesFoundation() throws {
        let factory = OutboxMessageFactory(configuration: PipelineConfiguration())
        let received = Date(timeIntervalSince1970: 1_790_000_000.25)
        let now = received.addingTimeInterval(1.5)
        let tricky = "J\u{F6}s\u{E9} \"q\" back\\slash / line\nfeed\ttab\r\u{01}\u{1F} \u{1F600}"
        let cases: [(OutboxMessageFactory.EventIdentity, String?, [DuoOperationKind], OutboxMessageFactory.Failure?, Date?)] = [
            (.init(id: "e1", source: "urn:s", type: "hr.employee.hired", employeeID: "E1"), "DU123", [.createUser, .addGroup], nil, nil),
            (.init(id: tricky, source: tricky, type: nil, employeeID: tricky), nil, [], .init(code: tricky, message: tricky, retriable: false), now),
            (.init(id: nil, source: nil, type: nil, employeeID: nil), nil, [.disableUser], .init(code: "42901", message: "slow down", retriable: true), nil),
        ]
        for (event, userID, operations, error, scheduledFor) in cases {
            let record = SourceRecord(topic: "hr/\(tricky)", partition: 3, offset: 9_000_000_001, timestampMs: nil, key: nil, value: nil, headers: [], receivedAt: received)
            let message = factory.result(for: event, record: record, outcome: .applied, userID: userID, operations: operations, attempts: 2,
                                         error: error, scheduledFor: scheduledFor, now: now)
            // What the worker wrote before, with Foundation.
            var data: [String: Any] = [
                "employee_id": event.employeeID ?? NSNull(),
                "source_event": ["id": event.id ?? NSNull(), "source": event.source ?? NSNull(), "type": event.type ?? NSNull(),
                                 "topic": record.topic, "partition": 3, "offset": record.offset] as [String: Any],
                "outcome": "applied", "user_id": userID ?? NSNull(), "operations": operations.map(\.rawValue), "attempts": 2,
                "received_at": RFC3339.format(received), "completed_at": RFC3339.format(now), "latency_ms": 1500,
            ]
            if let scheduledFor { data["scheduled_for"] = RFC3339.format(scheduledFor) }
            if let error { data["error"] = ["code": error.code, "message": error.message, "retriable": error.retriable] as [String: Any] }
            let value = Data(try #require(message.value))
            let parsed = try #require(try JSONSerialization.jsonObject(with: value) as? NSDictionary, "\(String(decoding: value, as: UTF8.self))")
            #expect(parsed == data as NSDictionary, "\(String(decoding: value, as: UTF8.self))")
            // Members in key order at every level: byte for byte what Foundation wrote, when no string needs escaping.
            if event.id == "e1" {
                let expected = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
                #expect(value == expected, "\(String(decoding: value, as: UTF8.self))")
            }
        }
    }

    @Test("A result about a record without an employee leaves ce_subject out: CloudEvents forbids an empty subject")
    func resultSubjectNeverEmpty() throws {
        let factory = OutboxMessageFactory(configuration: PipelineConfiguration())
        let record = SourceRecord(topic: "t", partition: 1, offset: 7, timestampMs: nil, key: nil, value: nil, headers: [], receivedAt: Date())
        func subject(_ employee: String?) -> [String] {
            let event = OutboxMessageFactory.EventIdentity(id: "e1", source: "urn:s", type: "hr.employee.hired", employeeID: employee)
            return factory.result(for: event, record: record, outcome: .deadLettered).headers
                .filter { $0.name == "ce_subject" }.map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
        #expect(subject(nil).isEmpty, "a keyless record's result has no ce_subject")
        #expect(subject("").isEmpty)
        #expect(subject("E1") == ["E1"])
    }
}
