import Foundation
import Kafka
import Logging
import Synchronization
import Testing

@Suite("Kafka statistics and logs", .timeLimit(.minutes(1)))
struct KafkaStatisticsTests {
    @Test("Consumer lag per partition follows the committed offsets")
    func consumerLag() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("lag")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaTestSupport.producer(cluster)
        _ = await producer.send(batch: (0..<100).map { KafkaProducerMessage(topic: topic, key: nil, value: Array("\($0)".utf8)) })
        let consumer = try KafkaTestSupport.consumer(cluster, group: "g-lag", topics: [topic]) {
            $0.client.statisticsInterval = .milliseconds(200)
        }
        let received = try await KafkaTestSupport.collect(consumer, count: 100)
        try consumer.storeOffsets(for: Array(received.prefix(30)))
        try await consumer.commit()
        let tp = TopicPartition(topic: topic, partition: 0)
        let deadline = ContinuousClock.now + .seconds(10)
        while consumer.consumerLag[tp] != 70 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(consumer.consumerLag[tp] == 70)
        await consumer.close()
        await producer.shutdown()
    }

    @Test("librdkafka's logs reach swift-log")
    func logsForwarded() async throws {
        let records = LogRecords()
        var logger = Logger(label: "kafka.capture") { _ in CapturingLogHandler(records: records) }
        logger.logLevel = .debug
        var config = KafkaProducerConfiguration(bootstrapServers: ["127.0.0.1:1"])
        config.client.additionalProperties["debug"] = "broker"
        let producer = try KafkaProducer(configuration: config, logger: logger)
        let deadline = ContinuousClock.now + .seconds(5)
        while records.count == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(records.count > 0)
        #expect(records.all.contains { $0.metadata?["rdkafka.facility"] != nil })
        await producer.shutdown(timeout: .milliseconds(10))
    }
}

final class LogRecords: Sendable {
    struct Record: Sendable { var level: Logger.Level; var message: String; var metadata: Logger.Metadata? }
    private let records = Mutex<[Record]>([])
    func append(_ r: Record) { records.withLock { $0.append(r) } }
    var all: [Record] { records.withLock { $0 } }
    var count: Int { records.withLock { $0.count } }
}

struct CapturingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        records.append(.init(level: event.level, message: "\(event.message)", metadata: event.metadata))
    }
}
