import Foundation
import Kafka
import Synchronization
import Testing

@Suite("Kafka layer against the mock cluster", .timeLimit(.minutes(3)))
struct KafkaRoundTripTests {
    @Test("10,000 keyed messages with headers arrive intact, in order per key")
    func roundTrip() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("roundtrip")
        try cluster.createTopic(topic, partitions: 6)
        let producer = try KafkaTestSupport.producer(cluster)

        let keys = (0..<50).map { "employee-\($0)" }
        var sent: [KafkaProducerMessage] = []
        for i in 0..<10_000 {
            let key = keys[i % keys.count]
            sent.append(KafkaProducerMessage(
                topic: topic, key: Array(key.utf8), value: Array("\(key)|\(i)|ünïcødé".utf8),
                headers: [KafkaHeader(key: "ce_id", string: "id-\(i)"),
                          KafkaHeader(key: "binary", value: [0, 1, 2, UInt8(i % 256)]),
                          KafkaHeader(key: "null-header", value: nil)]))
        }
        let reports = await producer.send(batch: sent)
        #expect(reports.allSatisfy { (try? $0.get()) != nil })

        let consumer = try KafkaTestSupport.consumer(cluster, group: "g-roundtrip", topics: [topic])
        let received = try await KafkaTestSupport.collect(consumer, count: sent.count)
        #expect(received.count == sent.count)

        var lastIndexPerKey: [String: Int] = [:]
        var seen = Set<Int>()
        for message in received {
            let key = String(decoding: try #require(message.key), as: UTF8.self)
            let parts = String(decoding: try #require(message.value), as: UTF8.self).split(separator: "|")
            #expect(parts.count == 3 && String(parts[0]) == key && parts[2] == "ünïcødé")
            let index = try #require(Int(parts[1]))
            #expect(message.headers[string: "ce_id"] == "id-\(index)")
            #expect(message.headers.first(named: "binary")?.value == [0, 1, 2, UInt8(index % 256)])
            #expect(message.headers.contains { $0.key == "null-header" && $0.value == nil })
            #expect(message.timestampMilliseconds != nil)
            if let last = lastIndexPerKey[key] { #expect(index > last, "order per key broken for \(key)") }
            lastIndexPerKey[key] = index
            seen.insert(index)
        }
        #expect(seen.count == 10_000)
        await consumer.close()
        await producer.shutdown()
    }

    @Test("A consumer that stored offsets for 50 of 100 messages hands over at message 50")
    func atLeastOnce() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("alo")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaTestSupport.producer(cluster)
        let results = await producer.send(batch: (0..<100).map {
            KafkaProducerMessage(topic: topic, key: nil, value: Array("m\($0)".utf8))
        })
        #expect(results.allSatisfy { (try? $0.get()) != nil })

        let first = try KafkaTestSupport.consumer(cluster, group: "g-alo", topics: [topic])
        let received = try await KafkaTestSupport.collect(first, count: 100)
        #expect(received.count == 100)
        try first.storeOffsets(for: Array(received.prefix(50)))
        await first.close()

        let second = try KafkaTestSupport.consumer(cluster, group: "g-alo", topics: [topic])
        let again = try await KafkaTestSupport.collect(second, count: 50)
        #expect(again.first?.offset == 50)
        #expect(again.first.flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } } == "m50")
        #expect(again.count == 50)
        await second.close()
        await producer.shutdown()
    }

    @Test("Storing an offset for a partition that is not assigned is an error, not a crash")
    func storeUnassigned() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("unassigned")
        try cluster.createTopic(topic, partitions: 1)
        let consumer = try KafkaTestSupport.consumer(cluster, group: "g-unassigned", topics: [topic])
        let stray = KafkaConsumerMessage(topic: topic, partition: 7, offset: 3, key: nil, value: nil, headers: [], timestampMilliseconds: nil)
        let error = #expect(throws: KafkaError.self) { try consumer.storeOffset(stray) }
        #expect(error?.code == .state)
        await consumer.close()
    }

    @Test("Pause stops delivery from a partition and resume continues where it left off")
    func pauseResume() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("pause")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaTestSupport.producer(cluster)
        _ = await producer.send(batch: (0..<20).map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 2), key: nil, value: Array("a\($0)".utf8)) })
        let consumer = try KafkaTestSupport.consumer(cluster, group: "g-pause", topics: [topic])
        let firstRound = try await KafkaTestSupport.collect(consumer, count: 20)
        #expect(firstRound.count == 20)
        let paused = TopicPartition(topic: topic, partition: 0)
        try consumer.pause([paused])
        _ = await producer.send(batch: (0..<20).map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 2), key: nil, value: Array("b\($0)".utf8)) })
        let whilePaused = try await KafkaTestSupport.collect(consumer, count: 10)
        #expect(whilePaused.allSatisfy { $0.partition == 1 })
        try await Task.sleep(for: .milliseconds(500))
        try consumer.resume([paused])
        let afterResume = try await KafkaTestSupport.collect(consumer, count: 10)
        #expect(afterResume.allSatisfy { $0.partition == 0 })
        #expect(afterResume.map(\.offset) == Array(10..<20))
        await consumer.close()
        await producer.shutdown()
    }

    @Test("Admin reads metadata; CreateTopics reports a clear error where the cluster has no controller")
    func admin() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaTestSupport.logger)
        let admin = try KafkaAdminClient(configuration: KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers]),
                                         logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("admin")
        try cluster.createTopic(topic, partitions: 5)
        let metadata = try await admin.metadata()
        #expect(metadata.brokers.map(\.id) == [1, 2, 3])
        #expect(metadata.topic(topic)?.partitions.map(\.id) == [0, 1, 2, 3, 4])
        #expect(metadata.topic(topic)?.partitions.allSatisfy { (1...3).contains($0.leader) } == true)
        let one = try await admin.metadata(topic: topic)
        #expect(one.topics.map(\.name) == [topic])
        // librdkafka's mock cluster (2.0.x) has no controller, so CreateTopics, meant for real
        // clusters, must fail with a retriable, descriptive error instead of hanging.
        let error = await #expect(throws: KafkaError.self) {
            try await admin.createTopics([KafkaTopicSpecification(name: topic + "-new", partitions: 5)], timeout: .seconds(2))
        }
        #expect(error?.isRetriable == true)
        #expect(error?.message.contains("CreateTopics") == true)
        await admin.shutdown()
    }

    @Test("An invalid librdkafka property is a configuration error that names it")
    func invalidProperty() throws {
        var config = KafkaProducerConfiguration(bootstrapServers: ["127.0.0.1:1"])
        config.client.additionalProperties["no.such.property"] = "1"
        let error = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: config) }
        #expect(error?.message.contains("no.such.property") == true)
    }

    /// The consumer caps `fetch.max.bytes` below librdkafka's default to bound memory; librdkafka
    /// refuses a consumer whose `fetch.max.bytes` is below its `message.max.bytes`.
    @Test("A consumer allowed messages larger than the default fetch size starts and receives one")
    func largeMessagesAboveTheFetchCap() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("large")
        try cluster.createTopic(topic, partitions: 1)
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        producerConfig.client.additionalProperties["message.max.bytes"] = "12000000"
        let producer = try KafkaProducer(configuration: producerConfig, logger: KafkaTestSupport.logger)
        let value = [UInt8](repeating: 0x61, count: 9_000_000)
        let reports = await producer.send(batch: [KafkaProducerMessage(topic: topic, key: nil, value: value)])
        #expect(reports.allSatisfy { (try? $0.get()) != nil })

        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-large"), topics: [topic]) {
            $0.client.additionalProperties["message.max.bytes"] = "12000000"
        }
        let received = try await KafkaTestSupport.collect(consumer, count: 1)
        #expect(received.first?.value == value)
        await consumer.close()
        await producer.shutdown()
    }
}
