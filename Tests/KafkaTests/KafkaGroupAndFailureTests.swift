import Foundation
import Kafka
import Synchronization
import Testing

@Suite("Kafka rebalance and broker failure", .timeLimit(.minutes(3)))
struct KafkaGroupAndFailureTests {
    /// Consumes and stores offsets until asked to stop, recording what it processed.
    final class Worker: Sendable {
        let consumer: KafkaConsumer
        let processed = Mutex<[String]>([])
        let storeErrors = Mutex<Int>(0)
        init(_ consumer: KafkaConsumer) { self.consumer = consumer }

        func run() async {
            for await batch in consumer.batches {
                processed.withLock { $0 += batch.map { "\($0.partition):\($0.offset)" } }
                do { try consumer.storeOffsets(for: batch) } catch { storeErrors.withLock { $0 += 1 } }
            }
        }
        var count: Int { processed.withLock { $0.count } }
        var keys: Set<String> { processed.withLock { Set($0) } }
    }

    static func waitUntil(_ timeout: Duration = .seconds(60), _ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline { throw TestTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test("When one of two consumers leaves, the other takes over its partitions and skips nothing")
    func rebalance() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("rebalance")
        try cluster.createTopic(topic, partitions: 6)
        let producer = try KafkaTestSupport.producer(cluster)
        var expected = Set<String>()
        for r in await producer.send(batch: (0..<3000).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("v\($0)".utf8)) }) {
            let report = try r.get()
            expected.insert("\(report.partition):\(report.offset)")
        }

        let group = KafkaTestSupport.uniqueName("g-rebalance")
        let a = Worker(try KafkaTestSupport.consumer(cluster, group: group, topics: [topic]) { $0.maxBatchSize = 50 })
        let b = Worker(try KafkaTestSupport.consumer(cluster, group: group, topics: [topic]) { $0.maxBatchSize = 50 })
        let runA = Task { await a.run() }
        let runB = Task { await b.run() }

        try await Self.waitUntil(.seconds(60), "both consumers to share the partitions") {
            a.consumer.assignment.count + b.consumer.assignment.count == 6 && !a.consumer.assignment.isEmpty && !b.consumer.assignment.isEmpty
        }
        #expect(a.consumer.assignment.isDisjoint(with: b.consumer.assignment))
        try await Self.waitUntil(.seconds(60), "B to process some messages") { b.count > 0 }
        await b.consumer.close()
        await runB.value

        try await Self.waitUntil(.seconds(60), "A to take over all six partitions") { a.consumer.assignment.count == 6 }
        var more = Set<String>()
        for r in await producer.send(batch: (0..<600).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("w\($0)".utf8)) }) {
            let report = try r.get()
            more.insert("\(report.partition):\(report.offset)")
        }
        expected.formUnion(more)
        try await Self.waitUntil(.seconds(60), "every message to be processed") { a.keys.union(b.keys).isSuperset(of: expected) }
        #expect(a.keys.union(b.keys) == expected, "nothing skipped, nothing invented")
        #expect(a.keys.isSuperset(of: more), "the survivor processed every later message")
        await a.consumer.close()
        await runA.value
        await producer.shutdown()
    }

    @Test("The idempotent producer survives a broker outage and request errors: each message exactly once, in order")
    func brokerFailure() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("failure")
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 3)
        var config = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        config.client.statisticsInterval = nil
        config.client.additionalProperties["retry.backoff.ms"] = "50"
        let producer = try KafkaProducer(configuration: config, logger: KafkaTestSupport.logger)

        // Warm up so the producer knows the leaders, then fail requests and a broker mid-stream.
        _ = try await producer.send(topic: topic, key: Array("warm".utf8), value: Array("warm".utf8))
        let total = 3000
        let messages = (0..<total).map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 3), key: Array("p\($0 % 3)".utf8), value: Array("\($0)".utf8)) }
        // ApiKey 0 is Produce: these responses fail and are retried by librdkafka.
        cluster.pushRequestErrors(apiKey: 0, errors: [.notEnoughReplicas, .requestTimedOut, .notLeaderForPartition, .notEnoughReplicasAfterAppend])
        let sending = Task { await producer.send(batch: messages) }
        try await Task.sleep(for: .milliseconds(100))
        let leader = try #require(try await KafkaAdminClient(configuration: .init(bootstrapServers: [cluster.bootstrapServers]), logger: KafkaTestSupport.logger)
            .metadata(topic: topic).topic(topic)?.partitions.first?.leader)
        try cluster.setBrokerDown(leader)
        try await Task.sleep(for: .seconds(2))
        try cluster.setBrokerUp(leader)
        let results = await sending.value
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        await producer.shutdown()

        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-failure"), topics: [topic])
        let received = try await KafkaTestSupport.collect(consumer, count: total + 1)
        let values = received.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }.filter { $0 != "warm" }
        #expect(values.count == total, "exactly once: no message lost, none duplicated")
        #expect(Set(values).count == total)
        for p in 0..<3 {
            let inPartition = received.filter { $0.partition == p }.compactMap { $0.value.flatMap { Int(String(decoding: $0, as: UTF8.self)) } }
            #expect(inPartition == inPartition.sorted(), "order kept in partition \(p)")
        }
        await consumer.close()
    }

    @Test("Taking a broker down waits while a child process is being started (librdkafka aborts if its port is held)")
    func brokerDownWaitsForChildProcessStart() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let started = DispatchSemaphore(value: 0)
        let bodyEnded = Atomic<Bool>(false)
        let starting = Thread {
            try? KafkaMockCluster.startingChildProcess {
                started.signal()
                Thread.sleep(forTimeInterval: 0.3)
                bodyEnded.store(true, ordering: .sequentiallyConsistent)
            }
        }
        starting.start()
        started.wait()
        try cluster.setBrokerDown(1)
        let endedFirst = bodyEnded.load(ordering: .sequentiallyConsistent)
        #expect(endedFirst, "the broker went down only after the child process was started")
        try cluster.setBrokerUp(1)
        await cluster.shutdown()
    }
}
