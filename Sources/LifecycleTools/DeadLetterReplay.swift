import Foundation
import Kafka
import Lifecycle

/// Turns a dead letter back into the record to republish: `dlq replay` and the console do the
/// same thing through this.
public enum DeadLetterReplay {
    public struct NoDestination: Error, CustomStringConvertible {
        public var offset: Int64
        public var description: String { "Dead letter at offset \(offset) has no kafka_dlt-original-topic header; give a destination topic" }
    }

    /// The record to publish: the original key, `value` (the dead letter's own unless given: a
    /// whole value read back from the store, or an operator's correction), the original headers
    /// without the dead-letter ones, and `dlq-replayed-at` (with `dlq-replayed-by` and
    /// `dlq-edited` when known), to the original topic or `topic`.
    public static func message(for letter: KafkaConsumerMessage, value: [UInt8]?, topic: String? = nil, at: Date = Date(),
                               by actor: String? = nil, edited: Bool = false) throws -> KafkaProducerMessage {
        guard let destination = topic ?? letter.deadLetterOrigin?.topic ?? letter.headers[string: DeadLetterOrigin.Name.topic] else {
            throw NoDestination(offset: letter.offset)
        }
        var headers = letter.headers.filter { !DeadLetterOrigin.isDeadLetterHeader($0.key) }
        headers.append(KafkaHeader(key: "dlq-replayed-at", string: RFC3339.format(at)))
        if let actor { headers.append(KafkaHeader(key: "dlq-replayed-by", string: actor)) }
        if edited { headers.append(KafkaHeader(key: "dlq-edited", string: "true")) }
        return KafkaProducerMessage(topic: destination, key: letter.key, value: value, headers: headers)
    }

    /// Whether `value` would now pass the event contract, as the worker decodes it: nil when it
    /// does, else the rejection in words.
    public static func validationProblem(of letter: KafkaConsumerMessage, value: [UInt8]?) -> String? {
        let headers = letter.headers.filter { !DeadLetterOrigin.isDeadLetterHeader($0.key) }.map { MessageHeader(name: $0.key, value: $0.value) }
        let record = LifecycleRecord(key: letter.key, value: value, headers: headers,
                                     timestamp: letter.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        switch LifecycleEventDecoder().decode(record) {
        case .success: return nil
        case .failure(let rejection): return "\(rejection.path): \(rejection.message)"
        }
    }
}

extension KafkaConsumerMessage {
    /// Where this dead letter's record came from: from our headers or from Spring's.
    public var deadLetterOrigin: DeadLetterOrigin? { DeadLetterOrigin { headers.first(named: $0)?.value } }

    /// The CloudEvents id of the event in this record: the `ce_id` header, or a structured
    /// event's `id`.
    public var cloudEventID: String? {
        if let id = headers[string: "ce_id"] { return id }
        return (value.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } as? [String: Any])?["id"] as? String
    }
}
