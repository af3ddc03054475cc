@testable import Kafka
import Logging
import Testing

/// Where the consumer resumes a partition after a pause: the highest offset it handed over. A
/// rebalance callback can run while the poll thread drains a batch, and no mock-cluster test can
/// time one to fall inside a batch, so the rule is held here on the consumer's own bookkeeping.
@Suite("Kafka consumer resume positions")
struct KafkaConsumerPositionTests {
    let p0 = TopicPartition(topic: "hr", partition: 0)
    let p1 = TopicPartition(topic: "hr", partition: 1)

    func context() -> ConsumerContext {
        ConsumerContext(logger: Logger(label: "test"), statistics: RDKafkaStatistics(role: "consumer", group: "g"),
                        maxBuffered: 100, offsetReset: .earliest, prefetchLimit: PrefetchLimit([:]), holdLimit: .zero)
    }

    @Test("A batch handed over records each partition's highest offset")
    func batchRecordsPositions() {
        let context = context()
        var reader = context.reader()
        for offset in 10...41 { reader.note(topic: "hr", partition: 0, offset: Int64(offset), bytes: 100) }
        reader.note(topic: "hr", partition: 1, offset: 7, bytes: 100)
        context.handedOver(reader, queuedBefore: 0)
        #expect(context.deliveredOffset(p0) == 41)
        #expect(context.deliveredOffset(p1) == 7)
    }

    @Test("A batch read across a revocation records nothing, so no partition resumes after a message it did not hand over")
    func batchAcrossRevocationRecordsNothing() {
        let context = context()
        var first = context.reader()
        first.note(topic: "hr", partition: 1, offset: 5, bytes: 100)
        context.handedOver(first, queuedBefore: 0)

        var batch = context.reader()
        batch.note(topic: "hr", partition: 0, offset: 41, bytes: 100)
        batch.note(topic: "hr", partition: 1, offset: 7, bytes: 100)
        // The rebalance callback, run by librdkafka inside the drain, revokes partition 0.
        context.revoked([p0])
        context.handedOver(batch, queuedBefore: 0)

        #expect(context.deliveredOffset(p0) == nil, "revoked: its next owner starts from the committed offset")
        // Partition 1 stays assigned and keeps the position of the batch before: a resume repeats
        // offsets 6 and 7 (the inbox drops the repeats) rather than trusting a batch cut in two.
        #expect(context.deliveredOffset(p1) == 5)
    }
}
