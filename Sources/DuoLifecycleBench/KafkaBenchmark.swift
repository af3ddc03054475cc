import Foundation
import Kafka
import Logging

/// Produce and consume throughput through the Swift Kafka layer, and through kcat on the same
/// embedded cluster, for 200,000 messages of 100 bytes.
///
/// One pass takes a fraction of a second a side, so a single pass swings with whatever else the
/// machine does (0.28 to 0.79 for the produce ratio in five runs in a row). The scenario runs
/// `rounds` passes, each on a fresh cluster with Swift and kcat back to back, and reports each
/// figure's median; the ratios are those of the medians.
struct KafkaBenchmark {
    let logger: Logger
    var messageCount = 200_000
    var messageSize = 100
    var rounds = 5

    struct Round {
        var swiftProduce, swiftConsume, kcatProduce, kcatConsume: Duration
    }

    func run(report: BenchReport) async throws {
        var passes: [Round] = []
        for n in 1...rounds {
            let r = try await round()
            passes.append(r)
            let rate = { (d: Duration) in Int(Double(messageCount) / (d / .seconds(1))) }
            FileHandle.standardError.write(Data("  … round \(n) of \(rounds): produce Swift \(rate(r.swiftProduce)), kcat \(rate(r.kcatProduce)); consume Swift \(rate(r.swiftConsume)), kcat \(rate(r.kcatConsume)) msg/s\n".utf8))
        }
        func median(_ time: (Round) -> Duration) -> Double {
            let sorted = passes.map { time($0) / .seconds(1) }.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let swiftProduce = median(\.swiftProduce), swiftConsume = median(\.swiftConsume)
        let kcatProduce = median(\.kcatProduce), kcatConsume = median(\.kcatConsume)
        let n = Double(messageCount)
        report.record("kafka", "rounds", Double(rounds), "rounds")
        report.record("kafka", "swift_produce_msgs_per_s", n / swiftProduce, "msg/s")
        report.record("kafka", "swift_consume_msgs_per_s", n / swiftConsume, "msg/s")
        report.record("kafka", "kcat_produce_msgs_per_s", n / kcatProduce, "msg/s")
        report.record("kafka", "kcat_consume_msgs_per_s", n / kcatConsume, "msg/s")
        report.record("kafka", "produce_ratio_swift_over_kcat", kcatProduce / swiftProduce, "x")
        report.record("kafka", "consume_ratio_swift_over_kcat", kcatConsume / swiftConsume, "x")
    }

    /// One pass on a cluster of its own (the cluster keeps every message in memory until it is shut down).
    func round() async throws -> Round {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: messageSize)

        // Swift layer: produce with the idempotent producer, consume with a group consumer.
        let swiftTopic = "bench-swift"
        try cluster.createTopic(swiftTopic, partitions: 6)
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        producerConfig.queueBufferingMaxMessages = 500_000
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        let messages = (0..<messageCount).map { i in
            KafkaProducerMessage(topic: swiftTopic, key: Array("k\(i % 1000)".utf8), value: payload)
        }
        // One message first: the producer's connection and idempotent-producer id are set up
        // before the clock starts, as in the worker, whose producer lives for the whole run.
        _ = try await producer.send(KafkaProducerMessage(topic: swiftTopic, key: Array("warm-up".utf8), value: payload))
        let produceStart = ContinuousClock.now
        let results = await producer.send(batch: messages)
        let produceTime = ContinuousClock.now - produceStart
        let failures = results.filter { if case .failure = $0 { true } else { false } }.count
        guard failures == 0 else { throw BenchError("\(failures) messages failed to produce") }
        await producer.shutdown()

        var consumerConfig = KafkaConsumerConfiguration(bootstrapServers: [cluster.bootstrapServers], groupID: "bench", topics: [swiftTopic])
        consumerConfig.client.statisticsInterval = nil
        consumerConfig.maxBatchSize = 1000
        let consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
        var consumed = 0
        var consumeStart: ContinuousClock.Instant?
        for await batch in consumer.batches {
            if consumeStart == nil { consumeStart = .now }  // Start at the first message: excludes the group join.
            consumed += batch.count
            try? consumer.storeOffsets(for: batch)
            if consumed >= messageCount { break }
        }
        let consumeTime = ContinuousClock.now - (consumeStart ?? .now)
        await consumer.close()
        guard consumed >= messageCount else { throw BenchError("The Swift consumer stopped after \(consumed) of \(messageCount) messages") }

        // kcat on the same cluster, with the same producer guarantees.
        let kcatTopic = "bench-kcat"
        try cluster.createTopic(kcatTopic, partitions: 6)
        // The same messages as the Swift side: key `k<i % 1000>` (kcat's `-K` splits it off at the
        // tab), so both hash keys to partitions; keyless, kcat's sticky partitioner fills fewer,
        // larger batches.
        let value = String(repeating: "x", count: messageSize)
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("duo-lifecycle-bench-\(getpid()).txt")
        var lines = ""
        lines.reserveCapacity(messageCount * (messageSize + 8))
        for i in 0..<messageCount { lines += "k\(i % 1000)\t\(value)\n" }
        try Data(lines.utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let kcatProduce = try timed("/usr/bin/kcat", ["-b", cluster.bootstrapServers, "-P", "-t", kcatTopic, "-K", "\t",
                                                      "-X", "enable.idempotence=true", "-X", "linger.ms=5", "-l", input.path])
        let kcatConsume = try timed("/usr/bin/kcat", ["-b", cluster.bootstrapServers, "-C", "-t", kcatTopic, "-o", "beginning",
                                                      "-c", String(messageCount), "-e", "-q", "-f", "%o\n"])
        await cluster.shutdown()
        return Round(swiftProduce: produceTime, swiftConsume: consumeTime, kcatProduce: kcatProduce, kcatConsume: kcatConsume)
    }

    private func timed(_ path: String, _ arguments: [String]) throws -> Duration {
        guard FileManager.default.isExecutableFile(atPath: path) else { throw BenchError("\(path) is missing: apt-get install kcat") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let start = ContinuousClock.now
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("kcat \(arguments.joined(separator: " ")) exited \(process.terminationStatus)") }
        return ContinuousClock.now - start
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
