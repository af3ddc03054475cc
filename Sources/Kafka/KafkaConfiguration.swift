import CRdKafka
import Logging

/// Settings shared by every Kafka client.
public struct KafkaClientConfiguration: Sendable {
    /// `host:port` pairs of the bootstrap brokers. Default: `localhost:9092`.
    public var bootstrapServers: [String] = ["localhost:9092"]
    /// The `client.id` reported to brokers. Default: `duo-lifecycle`.
    public var clientID: String = "duo-lifecycle"
    /// How often librdkafka emits statistics, which become metrics (consumer lag among them).
    /// `nil` turns statistics off. Default: 5 seconds.
    public var statisticsInterval: Duration? = .seconds(5)
    /// Any other librdkafka property, passed through unchanged, for example `security.protocol`,
    /// `sasl.mechanisms`, `sasl.username` or `ssl.ca.location`. Default: empty.
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: [String] = ["localhost:9092"]) {
        self.bootstrapServers = bootstrapServers
    }

    func properties() -> [String: String] {
        var p: [String: String] = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientID,
            // Logs are served on the client's own poll thread, never on librdkafka's internal threads.
            "log.queue": "true",
        ]
        if let statisticsInterval { p["statistics.interval.ms"] = String(Int64(statisticsInterval / .milliseconds(1))) }
        return p
    }
}

/// Settings of a ``KafkaProducer``.
public struct KafkaProducerConfiguration: Sendable {
    /// Settings shared with every client.
    public var client: KafkaClientConfiguration
    /// Idempotent delivery: no duplicates and no reordering on retries. Implies `acks=all`. Default: `true`.
    public var enableIdempotence: Bool = true
    /// How long librdkafka keeps trying to deliver a message before reporting it failed. Default: 300 s.
    public var deliveryTimeout: Duration = .seconds(300)
    /// How long messages wait to be batched together. Default: 5 ms.
    public var linger: Duration = .milliseconds(5)
    /// Compression codec: `none`, `gzip`, `snappy`, `lz4` or `zstd`. Default: `none`.
    public var compression: String = "none"
    /// The most messages librdkafka buffers locally before `send` waits for room. Default: 100,000.
    public var queueBufferingMaxMessages: Int = 100_000

    public init(bootstrapServers: [String]) {
        self.client = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
    }

    func properties() -> [String: String] {
        var p = client.properties()
        p["enable.idempotence"] = enableIdempotence ? "true" : "false"
        if enableIdempotence { p["acks"] = "all" }
        p["delivery.timeout.ms"] = String(Int64(deliveryTimeout / .milliseconds(1)))
        p["linger.ms"] = String(Int64(linger / .milliseconds(1)))
        p["compression.codec"] = compression
        p["queue.buffering.max.messages"] = String(queueBufferingMaxMessages)
        return p.merging(client.additionalProperties) { _, user in user }
    }
}

/// Settings of a ``KafkaConsumer``.
public struct KafkaConsumerConfiguration: Sendable {
    /// Where a group with no committed offset starts reading.
    public enum OffsetReset: String, Sendable { case earliest, latest, error }

    /// Settings shared with every client.
    public var client: KafkaClientConfiguration
    /// The consumer group. Required.
    public var groupID: String
    /// The topics to subscribe to.
    public var topics: [String]
    /// Partition assignor. Default: `cooperative-sticky`, which moves only the partitions that must move.
    public var assignmentStrategy: String = "cooperative-sticky"

    /// The linked librdkafka's version, as `rd_kafka_version()` returns it (0xMMmmrrxx).
    public static var librdkafkaVersion: Int { Int(rd_kafka_version()) }
    /// Where to start without a committed offset. Default: `earliest`, so nothing published before
    /// the group first joined is skipped.
    public var autoOffsetReset: OffsetReset = .earliest
    /// How often stored offsets are committed. Default: 1 s.
    public var autoCommitInterval: Duration = .seconds(1)
    /// Static group membership (`group.instance.id`): a member that leaves and comes back with the
    /// same id within the session timeout keeps its partitions without a rebalance. Default: none.
    public var groupInstanceID: String?
    /// Session timeout for group membership. Default: 10 s.
    public var sessionTimeout: Duration = .seconds(10)
    /// The longest allowed gap between polls. The poll thread polls continuously, even while
    /// partitions are paused, so this is only reached if the process stalls. Default: 300 s.
    public var maxPollInterval: Duration = .seconds(300)
    /// How many messages may wait in memory for the application before the consumer holds back
    /// and then pauses fetching (backpressure). Default: 10,000.
    public var maxBufferedMessages: Int = 10_000
    /// The most messages handed over in one batch. Default: 500. A batch is whatever is ready
    /// when the application asks, so a quiet topic still gives small batches at once; only a
    /// backlog fills them.
    public var maxBatchSize: Int = 500
    /// How much librdkafka fetches ahead of the application, in kilobytes
    /// (`queued.max.messages.kbytes`; the message count, `queued.min.messages`, is set to its
    /// maximum so this is the one limit). Default: 4,096 (librdkafka's own is 65,536); with
    /// ``maxBufferedMessages`` already waiting on this side, more only adds memory. When the
    /// application falls behind, the consumer first holds back and librdkafka keeps this much
    /// fetched; once that queue is taken, fetching starts again at once.
    public var maxPrefetchKilobytes: Int = 4_096
    /// The most data one fetch brings back (`fetch.max.bytes`). Default: 8 MiB (librdkafka's own
    /// is 50 MiB, held in memory while any message of it is); raised to `message.max.bytes` when
    /// that is set higher, which librdkafka requires. A `kafka.properties` value wins over both.
    public var maxFetchBytes: Int = 8 << 20
    /// How long a broker may hold a fetch waiting for data. Lower means new events (a termination
    /// behind a quiet partition) are seen sooner, at the cost of more fetch requests. Default: 100 ms.
    public var fetchWaitMax: Duration = .milliseconds(100)
    /// The longest one poll of the poll thread waits for a message or event. Anything that
    /// arrives, the application catching up after a pause, and closing all end the wait at once,
    /// so this bounds only how often an idle consumer wakes. Internal: tests raise it to show
    /// that nothing waits for it.
    var pollWait: Duration = .milliseconds(100)
    /// How long the poll thread holds back, taking nothing more, for an application that fell
    /// ``maxBufferedMessages`` behind, before it pauses fetching. Internal: a test sets zero to
    /// pause at once.
    var holdLimit: Duration = .milliseconds(250)

    public init(bootstrapServers: [String], groupID: String, topics: [String]) {
        self.client = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
        self.groupID = groupID
        self.topics = topics
    }

    func properties() -> [String: String] {
        var p = client.properties()
        p["group.id"] = groupID
        p["partition.assignment.strategy"] = assignmentStrategy
        p["auto.offset.reset"] = autoOffsetReset.rawValue
        // Offsets are stored by the application once a message is handled durably, and then
        // committed in the background. Nothing is stored on the application's behalf.
        p["enable.auto.commit"] = "true"
        p["enable.auto.offset.store"] = "false"
        p["auto.commit.interval.ms"] = String(Int64(autoCommitInterval / .milliseconds(1)))
        p["session.timeout.ms"] = String(Int64(sessionTimeout / .milliseconds(1)))
        p["max.poll.interval.ms"] = String(Int64(maxPollInterval / .milliseconds(1)))
        p["enable.partition.eof"] = "false"
        p["fetch.wait.max.ms"] = String(Int64(fetchWaitMax / .milliseconds(1)))
        p["queued.max.messages.kbytes"] = String(maxPrefetchKilobytes)
        // The prefetch is bounded by its kilobytes alone, not also by librdkafka's count of
        // 100,000 messages: librdkafka 2.0.2 stops fetching at either limit and does not look
        // again for up to a second after the queue drains. Small messages reached the count
        // first, and a consumer that keeps up with its application stalled ~0.8 s at a time.
        p["queued.min.messages"] = "10000000"
        let largestMessage = client.additionalProperties["message.max.bytes"].flatMap { Int($0) } ?? 0
        p["fetch.max.bytes"] = String(max(maxFetchBytes, largestMessage))
        if let groupInstanceID { p["group.instance.id"] = groupInstanceID }
        return p.merging(client.additionalProperties) { _, user in user }
    }
}
