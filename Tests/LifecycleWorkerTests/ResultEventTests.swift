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
