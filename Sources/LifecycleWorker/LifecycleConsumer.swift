import Foundation
import Kafka
import LifecycleStore
import Logging
import ServiceLifecycle

/// Consumes lifecycle events and makes each polled batch durable before its offsets are stored.
public final class LifecycleConsumer: Service, Sendable {
    public let consumer: KafkaConsumer
    let ingestor: EventIngestor
    let logger: Logger
    let onIngested: @Sendable (EventIngestor.Summary) -> Void

    public init(consumer: KafkaConsumer, ingestor: EventIngestor, logger: Logger, onIngested: @escaping @Sendable (EventIngestor.Summary) -> Void = { _ in }) {
        self.consumer = consumer
        self.ingestor = ingestor
        self.logger = logger
        self.onIngested = onIngested
    }

    public func run() async throws {
        for await batch in consumer.batches.cancelOnGracefulShutdown() {
            var summary: EventIngestor.Summary?
            // INVARIANT: an offset is stored only once its event is durable — in the inbox, as a
            // command, or as a dead letter in the outbox. The whole batch commits in one store
            // transaction first; if that fails, the batch is retried and no offset is stored, so
            // a crash at any point means redelivery (deduplicated by the inbox), never loss.
            while summary == nil {
                do {
                    summary = try await ingestor.ingest(batch)
                } catch {
                    // The store is down or refused the batch: no offset is stored, nothing is
                    // dead-lettered, and the same batch is tried again until it commits.
                    logger.error("Could not persist a batch; retrying it", metadata: ["error": "\(error)", "size": "\(batch.count)"])
                    try? await Task.sleep(for: .milliseconds(500))
                    if Task.isCancelled { break }
                }
            }
            guard let summary else { break }
            do {
                try consumer.storeOffsets(for: batch)
            } catch {
                // The partition moved to another consumer, which will redeliver; the inbox dedupes.
                logger.notice("Offsets not stored after a rebalance", metadata: ["error": "\(error)"])
            }
            logger.debug("Batch ingested", metadata: ["size": "\(batch.count)", "commands": "\(summary.commands)", "scheduled": "\(summary.scheduled)",
                                                 "superseded": "\(summary.superseded)", "duplicates": "\(summary.duplicates)",
                                                 "stale": "\(summary.stale)", "dead_lettered": "\(summary.deadLettered)"])
            onIngested(summary)
        }
        await consumer.close()
        logger.info("Consumer stopped; stored offsets committed")
    }
}
