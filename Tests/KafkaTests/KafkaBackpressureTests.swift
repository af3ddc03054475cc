import Foundation
@testable import Kafka
import Testing

@Suite("Kafka consumer backpressure", .timeLimit(.minutes(3)))
struct KafkaBackpressureTests {
    @Test("A slow application holds back or pauses fetching and still receives every message of every partition",
          arguments: [(2000, 500, true), (300, 100, true),
                      // So small, and pausing without holding back first, that fetching pauses before most
                      // partitions delivered anything: they must resume from their committed offset, not
                      // after what the pause dropped.
                      (40, 10, false)])
    func slowConsumer(buffer: Int, batch: Int, holdsBack: Bool) async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("backpressure")
        try cluster.createTopic(topic, partitions: 6)
        let producer = try KafkaTestSupport.producer(cluster)
        let total = 12_000
        // Values of a realistic size, so that one fetch does not hold a whole partition.
        let padding = String(repeating: "x", count: 300)
        for r in await producer.send(batch: (0..<total).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("\($0)|\(padding)".utf8)) }) {
            _ = try r.get()
        }
        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-bp"), topics: [topic]) {
            $0.maxBufferedMessages = buffer
            $0.maxBatchSize = batch
            if !holdsBack { $0.holdLimit = .zero }
        }
        var seen = Set<String>()
        var perPartition: [Int32: Int] = [:]
        let deadline = ContinuousClock.now + .seconds(120)
        for await batch in consumer.batches {
            for m in batch {
                seen.insert("\(m.partition):\(m.offset)")
                perPartition[m.partition, default: 0] += 1
            }
            try consumer.storeOffsets(for: batch)
            try await Task.sleep(for: .milliseconds(5))  // a slow application
            if seen.count >= total || ContinuousClock.now > deadline { break }
        }
        #expect(seen.count == total, "per partition: \(perPartition.sorted { $0.key < $1.key })")
        #expect(perPartition.count == 6)
        await consumer.close()
        await producer.shutdown()
    }
}

/// Needs the consumer's internal poll wait, to show that nothing waits for it.
@Suite("Kafka consumer backpressure, without waiting for a poll", .timeLimit(.minutes(3)))
struct KafkaBackpressureWakeupTests {
    @Test("Fetching resumes as soon as the application catches up, not when the poll thread's wait ends",
          arguments: [true, false])
    func resumeDoesNotWaitForThePoll(holdsBack: Bool) async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("backpressure-wake")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaTestSupport.producer(cluster)
        let total = 300
        for r in await producer.send(batch: (0..<total).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("\($0)".utf8)) }) {
            _ = try r.get()
        }
        await producer.shutdown()
        // Backpressure holds back or pauses fetching about every 20 messages. The poll thread,
        // finding nothing to fetch while paused, waits in its poll; a wait of a minute makes any
        // resume that waits for it miss the deadline below by far.
        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-wake"), topics: [topic]) {
            $0.maxBufferedMessages = 20
            $0.maxBatchSize = 10
            $0.pollWait = .seconds(60)
            if !holdsBack { $0.holdLimit = .zero }  // pause at once
        }
        let received = try await KafkaTestSupport.collect(consumer, count: total, within: .seconds(30))
        #expect(Set(received.map(\.offset)).count == total)
        // Closing ends the poll thread's wait too.
        let closing = ContinuousClock.now
        await consumer.close()
        #expect(ContinuousClock.now - closing < .seconds(30))
        await cluster.shutdown()
    }
}

@Suite("Kafka consumer prefetch limit", .timeLimit(.minutes(3)))
struct KafkaPrefetchLimitTests {
    @Test("A consumer whose prefetch reaches its limit goes on fetching as soon as it has taken what was fetched")
    func fullPrefetchDoesNotStall() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("prefetch-full")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaTestSupport.producer(cluster)
        // 40 message sets of 50 messages of 100 bytes, each one fetch and each over the limit.
        let sets = 40, perSet = 50
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        for s in 0..<sets {
            for r in await producer.send(batch: (0..<perSet).map { KafkaProducerMessage(topic: topic, key: Array("k\(s)-\($0)".utf8), value: value) }) {
                _ = try r.get()
            }
        }
        await producer.shutdown()
        // librdkafka stops fetching once a kilobyte is queued, and librdkafka 2.0.2 does not
        // fetch again when the queue empties; it looks again only after up to a second, so 40
        // fetches took tens of seconds.
        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-prefetch"), topics: [topic]) {
            $0.maxPrefetchKilobytes = 1
        }
        // The group join comes first; the clock starts at the first message.
        var received = try await KafkaTestSupport.collect(consumer, count: 1, within: .seconds(60))
        let start = ContinuousClock.now
        received += try await KafkaTestSupport.collect(consumer, count: sets * perSet - received.count, within: .seconds(60))
        let elapsed = ContinuousClock.now - start
        #expect(Set(received.map(\.offset)).count == sets * perSet)
        #expect(received.map(\.offset) == received.map(\.offset).sorted(), "one partition arrives in order")
        #expect(elapsed < .seconds(10), "\(sets) fetches took \(elapsed)")
        await consumer.close()
        await cluster.shutdown()
    }
}
