import Foundation
import Lifecycle
import Testing

/// The Swift decoder must agree with the JSON Schemas (checked by contracts/validate.py) on
/// every example in contracts/examples/.
enum ContractExamples {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contracts/examples")

    static var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }
}

@Suite("Contract examples")
struct ContractExamplesTests {
    @Test("There is a valid and an invalid example for every event type")
    func coverage() {
        for type in ["hired", "updated", "role_changed", "terminated", "rehired"] {
            #expect(ContractExamples.names.contains { $0.hasPrefix("valid-\(type)") }, "valid-\(type)")
            #expect(ContractExamples.names.contains { $0.hasPrefix("invalid-\(type)") }, "invalid-\(type)")
        }
    }

    @Test("The decoder agrees with the schema", arguments: ContractExamples.names)
    func example(_ name: String) throws {
        let bytes = try Data(contentsOf: ContractExamples.directory.appendingPathComponent(name))
        // Keyed as the contract says: by the employee id (when the example has a readable one).
        let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any]
        let key = ((object?["data"] as? [String: Any])?["employee_id"] as? String).map { Array($0.utf8) }
        // As the worker reads it: a Kafka record, which always has a timestamp.
        let record = LifecycleRecord(key: key, value: Array(bytes), headers: [MessageHeader(name: "content-type", value: Array("application/cloudevents+json".utf8))],
                                     timestamp: Date(timeIntervalSince1970: 1_790_000_000))
        let result = LifecycleEventDecoder().decode(record)
        if name.hasPrefix("valid-") {
            #expect((try? result.get()) != nil, "\(name): \(result)")
        } else {
            #expect((try? result.get()) == nil, "\(name) should be rejected")
        }
    }
}
