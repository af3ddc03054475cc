// LifecycleTools owns the operator's tools over Kafka: building lifecycle events as an HR system
// publishes them, and reading a topic to its end.
import Foundation
import Kafka
import Lifecycle

/// Builds lifecycle events the way an HR system publishes them: binary-mode CloudEvents keyed by
/// employee id.
public enum LifecycleEventMessage {
    /// A binary-mode event. `data` must hold `employee_id`.
    public static func make(topic: String, type: String, data: [String: Any], id: String = UUID().uuidString.lowercased(),
                            source: String = "urn:duo-lifecycle:publish", time: Date = Date(), subject: String? = nil) throws -> KafkaProducerMessage {
        guard let employeeID = data["employee_id"] as? String, !employeeID.isEmpty else {
            throw PublishError("Every event needs data.employee_id")
        }
        let value = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
        var headers = [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: id),
            KafkaHeader(key: "ce_source", string: source), KafkaHeader(key: "ce_type", string: type),
            KafkaHeader(key: "ce_time", string: RFC3339.format(time)), KafkaHeader(key: "content-type", string: "application/json"),
        ]
        headers.append(KafkaHeader(key: "ce_subject", string: subject ?? employeeID))
        return KafkaProducerMessage(topic: topic, key: Array(employeeID.utf8), value: Array(value), headers: headers)
    }

    /// One line of an events file: a structured CloudEvent (`specversion`, `id`, `source`, `type`,
    /// `time`, `data`), or a shorthand `{"type": "...", "data": {...}}` whose id, source and time
    /// are filled in. Either way it is published in binary mode.
    public static func fromJSONLine(_ line: String, topic: String) throws -> KafkaProducerMessage {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw PublishError("Not a JSON object: \(line.prefix(80))")
        }
        guard var type = object["type"] as? String else { throw PublishError("Missing \"type\": \(line.prefix(80))") }
        if !type.contains(".") { type = "hr.employee.\(type)" }
        guard let data = object["data"] as? [String: Any] else { throw PublishError("Missing \"data\" object: \(line.prefix(80))") }
        let time = (object["time"] as? String).flatMap(RFC3339.parse) ?? Date()
        return try make(topic: topic, type: type, data: data, id: object["id"] as? String ?? UUID().uuidString.lowercased(),
                        source: object["source"] as? String ?? "urn:duo-lifecycle:publish", time: time, subject: object["subject"] as? String)
    }
}

public struct PublishError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
