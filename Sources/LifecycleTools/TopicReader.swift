import Foundation
import Kafka
import Logging

/// Reads a topic from its beginning to its current end, without joining the worker's group or
/// committing anything. The `dlq` and `dev` commands use it.
public struct TopicReader: Sendable {
    public let kafka: KafkaClientConfiguration
    public let logger: Logger

    public init(kafka: KafkaClientConfiguration, logger: Logger) {
        self.kafka = kafka
        self.logger = logger
    }

    /// Every message now on `topic`, in partition order.
    public func readAll(topic: String, timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        let admin = try KafkaAdminClient(configuration: kafka, logger: logger)
        defer { Task { await admin.shutdown() } }
        guard let meta = try await admin.metadata(topic: topic).topic(topic), meta.error == nil else {
            throw KafkaError(code: .unknownTopicOrPartition, message: "Topic \(topic) does not exist")
        }
        var ends: [Int32: Int64] = [:]
        for p in meta.partitions {
            let (low, high) = try await admin.watermarks(topic: topic, partition: p.id)
            if high > low { ends[p.id] = high }
        }
        guard !ends.isEmpty else { return [] }
        var config = KafkaConsumerConfiguration(bootstrapServers: kafka.bootstrapServers, groupID: "duo-lifecycle-reader-\(UUID().uuidString)", topics: [topic])
        config.client = kafka
        config.client.statisticsInterval = nil
        config.client.additionalProperties["enable.auto.commit"] = "false"
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        var messages: [KafkaConsumerMessage] = []
        var reached: [Int32: Int64] = [:]
        let deadline = ContinuousClock.now + timeout
        let watchdog = Task {
            try await Task.sleep(until: deadline)
            await consumer.close()
        }
        for await batch in consumer.batches {
            messages += batch
            for m in batch { reached[m.partition] = max(reached[m.partition] ?? -1, m.offset) }
            if ends.allSatisfy({ (reached[$0.key] ?? -1) >= $0.value - 1 }) { break }
        }
        watchdog.cancel()
        await consumer.close()
        guard ends.allSatisfy({ (reached[$0.key] ?? -1) >= $0.value - 1 }) else {
            throw KafkaError(code: .timedOut, message: "Timed out reading \(topic) to its end")
        }
        return messages.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }
}
