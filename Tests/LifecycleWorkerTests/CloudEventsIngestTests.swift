import Foundation
import Kafka
import Testing

@Suite("CloudEvents from SDKs", .timeLimit(.minutes(3)))
struct CloudEventsIngestTests {
    @Test("An event without ce_time (as SDKs that omit the optional time publish it) is applied, not dead-lettered, ordered by its Kafka timestamp")
    func eventWithoutTimeIsApplied() async throws {
        let h = try await WorkerHarness()
        try h.startWorker()
        func message(_ type: String, _ id: String, _ data: String) -> KafkaProducerMessage {
            KafkaProducerMessage(topic: WorkerHarness.topic, key: Array("T1".utf8), value: Array(data.utf8), headers: [
                KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: id),
                KafkaHeader(key: "ce_source", string: "urn:sdk:java"), KafkaHeader(key: "ce_type", string: "hr.employee.\(type)"),
                KafkaHeader(key: "content-type", string: "application/json"),
            ])
        }
        try await h.publishRaw([message("hired", "sdk-1", #"{"employee_id":"T1","email":"t1@example.com","roles":["sales"]}"#)])
        try await h.waitUntil("T1 created") { h.emulator.directory.user(username: "t1")?.status == .active }
        try await h.publishRaw([message("terminated", "sdk-2", #"{"employee_id":"T1"}"#)])
        let results = try await h.results(count: 2)
        #expect(Set(results.map(\.outcome)) == ["applied"], "\(results.map { "\($0.eventID ?? "?"): \($0.outcome)" })")
        #expect(h.emulator.directory.user(username: "t1")?.status == .disabled, "the later record's timestamp orders the termination after the hire")
        await h.shutdown()
    }
}
