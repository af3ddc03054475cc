import Foundation
import Kafka
import LifecycleStore
import Logging
import Metrics
import ServiceLifecycle

/// Publishes the outbox (result events and dead letters) through the idempotent producer and
/// marks rows sent once Kafka has acknowledged them. Sent rows are deleted after a retention period.
public final class OutboxRelay: Service, Sendable {
    let store: any LifecycleStore
    let producer: KafkaProducer
    let retention: Duration
    let logger: Logger
    public let wakeup = WakeupSignal()

    public init(store: any LifecycleStore, producer: KafkaProducer, retention: Duration, logger: Logger) {
        self.store = store
        self.producer = producer
        self.retention = retention
        self.logger = logger
    }

    public func run() async throws {
        var lastPurge = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let sent = await relayOnce()
            if ContinuousClock.now - lastPurge > .seconds(60) {
                lastPurge = .now
                if let purged = try? await store.purgeSent(before: Date().addingTimeInterval(-(retention / .seconds(1)))), purged > 0 {
                    logger.debug("Purged sent outbox rows", metadata: ["count": "\(purged)"])
                }
            }
            if sent == 0 { await wakeup.wait(timeout: .milliseconds(200)) }
        }
        // Flush: everything written before shutdown is published before the producer stops.
        for _ in 0..<50 where await relayOnce() > 0 {}
        await producer.shutdown(timeout: .seconds(10))
        logger.info("Outbox relay stopped")
    }

    /// Publishes one batch. Returns how many were sent.
    @discardableResult
    public func relayOnce(limit: Int = 1000) async -> Int {
        let pending: [OutboxMessage]
        do { pending = try await store.unsentOutbox(limit: limit, now: Date(), claimFor: .seconds(30)) } catch {
            logger.error("Could not read the outbox", metadata: ["error": "\(error)"])
            return 0
        }
        guard !pending.isEmpty else {
            if let stats = try? await store.statistics(now: Date()) { Gauge(label: "duo_lifecycle_outbox_backlog").record(stats.outboxBacklog) }
            return 0
        }
        let results = await producer.send(batch: pending.map {
            KafkaProducerMessage(topic: $0.message.topic, key: $0.message.key, value: $0.message.value,
                                 headers: $0.message.headers.map { KafkaHeader(key: $0.name, value: $0.value) })
        })
        var sent: [Int64] = []
        for (message, result) in zip(pending, results) {
            switch result {
            case .success: sent.append(message.id)
            case .failure(let error) where error.isMessageRejected:
                // Kafka will never take it: set it aside (it stays in the store) so it cannot hold
                // up the others, count it, and say so once.
                do {
                    try await store.park(message.id, reason: error.description, at: Date())
                    Counter(label: "duo_lifecycle_outbox_parked_total", dimensions: [("kind", message.message.kind.rawValue)]).increment()
                    logger.error("Outbox message parked: Kafka rejects it and will not accept it on retry; it stays in the store",
                                 metadata: ["outbox_id": "\(message.id)", "topic": "\(message.message.topic)", "error": "\(error)"])
                } catch {
                    logger.error("Could not park an undeliverable outbox message", metadata: ["outbox_id": "\(message.id)", "error": "\(error)"])
                }
            case .failure(let error): logger.warning("Outbox message not delivered; will retry", metadata: ["outbox_id": "\(message.id)", "error": "\(error)"])
            }
        }
        do { try await store.markSent(sent, at: Date()) } catch {
            // They will be sent again: result consumers dedupe by ce_id.
            logger.error("Could not mark outbox rows sent", metadata: ["error": "\(error)"])
        }
        Counter(label: "duo_lifecycle_outbox_published_total").increment(by: sent.count)
        if let oldest = pending.first { Gauge(label: "duo_lifecycle_outbox_oldest_age_seconds").record(Date().timeIntervalSince(oldest.createdAt)) }
        return sent.count
    }
}
