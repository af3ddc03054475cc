import AsyncHTTPClient
import Foundation
import Kafka
import LifecycleIngress
import LifecycleTools
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The webhook ingress on loopback: 5,000 signed Standard Webhooks at concurrency 32, one in ten
/// sent a second time with the same id, as an HR system retrying would. Reports requests per
/// second and the acknowledgement latency (request sent → 202, which waits for Kafka's acks=all),
/// and checks that exactly 5,000 distinct events reached Kafka.
struct IngressBenchmark {
    let logger: Logger
    var webhooks = 5_000
    var concurrency = 32

    func run(report: BenchReport) async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = "hr.employee.lifecycle.v1"
        try cluster.createTopic(topic, partitions: 6)
        let secret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let key = WebhookSignatures.standardWebhookKey(secret)!
        var configuration = IngressConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.topic = topic
        configuration.kafka = KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers])
        configuration.kafka.statisticsInterval = nil
        var source = WebhookSource(name: "hris", format: .standardWebhooks)
        source.secrets = [key]
        source.rateLimit = 1_000_000
        configuration.sources = [source]
        let server = try IngressServer(configuration: configuration, logger: logger)
        let bound = Mutex(0)
        let group = ServiceGroup(configuration: .init(services: [.init(service: try server.service { port in bound.withLock { $0 = port } })], logger: logger))
        let running = Task { try await group.run() }
        while bound.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let url = "http://127.0.0.1:\(bound.withLock { $0 })/webhooks/hris"

        // Signed before the clock starts: the sender's cost is not the ingress's.
        func signed(_ id: String, _ i: Int) throws -> HTTPClientRequest {
            let now = Int64(Date().timeIntervalSince1970)
            let body = Array(try JSONSerialization.data(withJSONObject: [
                "type": "hr.employee.hired", "timestamp": "2026-11-30T09:00:00Z",
                "data": ["employee_id": "B\(i % 2000)", "email": "b\(i)@example.com", "roles": ["engineering"], "sequence": 1],
            ] as [String: Any]))
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "webhook-id", value: id)
            request.headers.add(name: "webhook-timestamp", value: "\(now)")
            request.headers.add(name: "webhook-signature", value: WebhookSignatures.standardWebhookSignature(id: id, timestamp: now, body: body, key: key))
            request.body = .bytes(ByteBuffer(bytes: body))
            return request
        }
        let warmUp = try (0..<64).map { try signed("warm-\($0)", $0) }
        var requests: [HTTPClientRequest] = []
        for i in 0..<webhooks {
            let request = try signed("bench-\(i)", i)
            requests.append(request)
            if i % 10 == 0 { requests.append(request) }
        }
        let all = requests
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)))
        final class Tally: Sendable {
            let latencies = Mutex<[Duration]>([])
            let failures = Mutex<[Int: Int]>([:])
            let next = Mutex(0)
        }
        func drive(_ list: [HTTPClientRequest], into tally: Tally) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        while true {
                            let i = tally.next.withLock { n -> Int in defer { n += 1 }; return n }
                            guard i < list.count else { return }
                            let sent = ContinuousClock.now
                            let response = try await client.execute(list[i], timeout: .seconds(30))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            let took = ContinuousClock.now - sent
                            if response.status.code == 202 { tally.latencies.withLock { $0.append(took) } }
                            else { tally.failures.withLock { $0[Int(response.status.code), default: 0] += 1 } }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await drive(warmUp, into: Tally())
        let tally = Tally()
        let started = ContinuousClock.now
        try await drive(all, into: tally)
        let elapsed = ContinuousClock.now - started
        try await client.shutdown()

        let failures = tally.failures.withLock { $0 }
        guard failures.isEmpty else { throw BenchError("webhooks not acknowledged: \(failures)") }
        let sorted = tally.latencies.withLock { $0 }.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] / .milliseconds(1) }
        report.record("webhooks", "requests", Double(all.count), "requests")
        report.record("webhooks", "requests_per_s", Double(all.count) / (elapsed / .seconds(1)), "req/s")
        report.record("webhooks", "ack_latency_p50", percentile(0.50), "ms")
        report.record("webhooks", "ack_latency_p99", percentile(0.99), "ms")
        report.record("webhooks", "ack_latency_max", sorted.last.map { $0 / .milliseconds(1) } ?? 0, "ms")

        var readerConfig = KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers])
        readerConfig.statisticsInterval = nil
        let ids = try await TopicReader(kafka: readerConfig, logger: logger).readAll(topic: topic).compactMap { $0.headers[string: "ce_id"] }
        let distinct = Set(ids.filter { $0.hasPrefix("bench-") })
        report.record("webhooks", "distinct_events_in_kafka", Double(distinct.count), "events")
        report.record("webhooks", "copies_in_kafka", Double(ids.filter { $0.hasPrefix("bench-") }.count - distinct.count), "events")
        guard distinct.count == webhooks else { throw BenchError("\(distinct.count) distinct events in Kafka, expected \(webhooks)") }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        await cluster.shutdown()
    }
}
