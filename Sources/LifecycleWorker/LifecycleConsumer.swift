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
        // The store writes one batch while the next is decoded and validated beside it (decoding
        // needs no store, and was a sixth of ingest's time). Batches are written one at a time and
        // in order; each one's offsets are stored, and the dispatcher told, as soon as its own
        // write has committed.
        var writing: Task<Bool, Never>?
        for await batch in consumer.batches.cancelOnGracefulShutdown() {
            let prepared = ingestor.prepare(batch)
            if let previous = writing {
                writing = nil
                guard await Self.wait(for: previous) else { break }
            }
            writing = Task {
                guard let summary = await self.persist(prepared) else { return false }
                self.finish(batch, summary)
                return true
            }
        }
        if let last = writing { _ = await Self.wait(for: last) }
        await consumer.close()
        logger.info("Consumer stopped; stored offsets committed")
    }

    /// Waits for a batch's write; cancelling the wait cancels the write's retries. False when the
    /// write was given up (cancelled before it committed).
    private static func wait(for task: Task<Bool, Never>) async -> Bool {
        await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
    }

    /// Writes a batch, trying again until it commits. Nil when cancelled first.
    private func persist(_ batch: EventIngestor.PreparedBatch) async -> EventIngestor.Summary? {
        // INVARIANT: an offset is stored only once its event is durable — in the inbox, as a
        // command, or as a dead letter in the outbox. The whole batch commits in one store
        // transaction first; if that fails, the batch is retried and no offset is stored, so
        // a crash at any point means redelivery (deduplicated by the inbox), never loss.
        while !Task.isCancelled {
            do {
                return try await ingestor.write(batch)
            } catch {
                // The store is down or refused the batch: no offset is stored, nothing is
                // dead-lettered, and the same batch is tried again until it commits.
                logger.error("Could not persist a batch; retrying it", metadata: ["error": "\(error)", "size": "\(batch.count)"])
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        return nil
    }

    /// After a batch committed: its offsets are stored, and the summary reported.
    private func finish(_ batch: [KafkaConsumerMessage], _ summary: EventIngestor.Summary) {
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
}
