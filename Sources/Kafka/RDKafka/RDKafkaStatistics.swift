import Foundation
import Metrics
import Synchronization

/// Turns librdkafka's statistics JSON into metrics, consumer lag per partition among them.
final class RDKafkaStatistics: Sendable {
    private let role: String
    private let group: String?
    private struct State {
        var lag: [TopicPartition: Int64] = [:]
        /// The lag series exported, so that a partition this consumer no longer has loses its series.
        var lagGauges: [TopicPartition: Gauge] = [:]
        /// librdkafka's running totals at the last statistics, to add only what is new to the counters.
        var tx = 0, rx = 0
    }
    private let state = Mutex(State())
    private let txCounter: Counter
    private let rxCounter: Counter

    init(role: String, group: String? = nil) {
        self.role = role
        self.group = group
        txCounter = Counter(label: "kafka_client_tx_messages_total", dimensions: [("client", role)])
        rxCounter = Counter(label: "kafka_client_rx_messages_total", dimensions: [("client", role)])
    }

    /// The consumer lag per partition from the latest statistics, as librdkafka computes it
    /// (high watermark minus the committed offset).
    var consumerLag: [TopicPartition: Int64] { state.withLock { $0.lag } }

    /// The partitions whose lag series are exported now.
    var lagSeries: Set<TopicPartition> { state.withLock { Set($0.lagGauges.keys) } }

    func record(json: Data) {
        guard let root = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return }
        let base: [(String, String)] = [("client", role)]
        if let v = root["msg_cnt"] as? Int { Gauge(label: "kafka_client_queued_messages", dimensions: base).record(v) }
        // librdkafka's txmsgs and rxmsgs are running totals of this client: counters.
        let (tx, rx) = state.withLock { s -> (Int, Int) in
            let t = root["txmsgs"] as? Int ?? s.tx, r = root["rxmsgs"] as? Int ?? s.rx
            defer { s.tx = t; s.rx = r }
            return (t >= s.tx ? t - s.tx : t, r >= s.rx ? r - s.rx : r)
        }
        txCounter.increment(by: tx)
        rxCounter.increment(by: rx)
        guard role == "consumer", let topics = root["topics"] as? [String: Any] else { return }
        var lags: [TopicPartition: Int64] = [:]
        for (topic, value) in topics {
            guard let partitions = (value as? [String: Any])?["partitions"] as? [String: Any] else { continue }
            for (key, p) in partitions {
                guard let partition = Int32(key), partition >= 0, let p = p as? [String: Any] else { continue }
                // Only partitions this consumer fetches have a meaningful lag: librdkafka keeps
                // reporting a revoked partition (fetch_state "none" or "stopped") with its old lag.
                if let fetch = p["fetch_state"] as? String, ["none", "stopping", "stopped"].contains(fetch) { continue }
                guard let lag = (p["consumer_lag"] as? NSNumber)?.int64Value, lag >= 0 else { continue }
                lags[TopicPartition(topic: topic, partition: partition)] = lag
            }
        }
        let gone = state.withLock { s -> [Gauge] in
            s.lag = lags
            for (tp, lag) in lags {
                let gauge = s.lagGauges[tp] ?? {
                    var dims = [("topic", tp.topic), ("partition", String(tp.partition))]
                    if let group { dims.append(("group", group)) }
                    return Gauge(label: "kafka_consumer_lag", dimensions: dims)
                }()
                s.lagGauges[tp] = gauge
                gauge.record(lag)
            }
            let stale = s.lagGauges.keys.filter { lags[$0] == nil }
            return stale.compactMap { s.lagGauges.removeValue(forKey: $0) }
        }
        for gauge in gone { gauge.destroy() }
    }

    /// Drops the lag of partitions this consumer no longer has (revoked, or every partition when
    /// nil): their series leave `/metrics` at once rather than stay at their last value.
    func forget(_ partitions: [TopicPartition]?) {
        let gone = state.withLock { s -> [Gauge] in
            let drop = partitions ?? Array(s.lagGauges.keys)
            for tp in drop { s.lag[tp] = nil }
            return drop.compactMap { s.lagGauges.removeValue(forKey: $0) }
        }
        for gauge in gone { gauge.destroy() }
    }
}
