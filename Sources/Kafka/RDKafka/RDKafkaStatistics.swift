import Foundation
import Metrics
import Synchronization

/// Turns librdkafka's statistics JSON into metrics, consumer lag per partition among them.
final class RDKafkaStatistics: Sendable {
    private let role: String
    private let group: String?
    private let latest = Mutex<[TopicPartition: Int64]>([:])

    init(role: String, group: String? = nil) {
        self.role = role
        self.group = group
    }

    /// The consumer lag per partition from the latest statistics, as librdkafka computes it
    /// (high watermark minus the committed offset).
    var consumerLag: [TopicPartition: Int64] { latest.withLock { $0 } }

    func record(json: Data) {
        guard let root = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return }
        let base: [(String, String)] = [("client", role)]
        if let v = root["msg_cnt"] as? Int { Gauge(label: "kafka_client_queued_messages", dimensions: base).record(v) }
        if let v = root["txmsgs"] as? Int { Gauge(label: "kafka_client_tx_messages", dimensions: base).record(v) }
        if let v = root["rxmsgs"] as? Int { Gauge(label: "kafka_client_rx_messages", dimensions: base).record(v) }
        guard role == "consumer", let topics = root["topics"] as? [String: Any] else { return }
        var lags: [TopicPartition: Int64] = [:]
        for (topic, value) in topics {
            guard let partitions = (value as? [String: Any])?["partitions"] as? [String: Any] else { continue }
            for (key, p) in partitions {
                guard let partition = Int32(key), partition >= 0, let p = p as? [String: Any] else { continue }
                // Only partitions this consumer fetches have a meaningful lag.
                guard let lag = (p["consumer_lag"] as? NSNumber)?.int64Value, lag >= 0 else { continue }
                lags[TopicPartition(topic: topic, partition: partition)] = lag
                var dims = [("topic", topic), ("partition", key)]
                if let group { dims.append(("group", group)) }
                Gauge(label: "kafka_consumer_lag", dimensions: dims).record(lag)
            }
        }
        latest.withLock { $0 = lags }
    }
}
