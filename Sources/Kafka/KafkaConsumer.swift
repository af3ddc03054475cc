import CRdKafka
import Logging
import Synchronization

/// A Kafka consumer in a consumer group.
///
/// Offsets are never stored on the application's behalf (`enable.auto.offset.store=false`): the
/// application calls ``storeOffset(_:)`` once a message has been handled durably, and stored
/// offsets are committed in the background, when partitions are revoked, and on ``close()``.
///
/// A dedicated thread polls librdkafka continuously, also while partitions are paused, so
/// `max.poll.interval.ms` is never exceeded by a slow application. When the application falls
/// behind by ``KafkaConsumerConfiguration/maxBufferedMessages`` the thread holds back (librdkafka
/// keeps at most ``KafkaConsumerConfiguration/maxPrefetchKilobytes`` fetched meanwhile), and if
/// the application has not caught up by half within a quarter of a second, pauses fetching until
/// it has, so memory stays bounded.
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let context: ConsumerContext
    private let pollThread: RDKafkaPollThread
    private let stream: AsyncStream<[KafkaConsumerMessage]>
    private let configuration: KafkaConsumerConfiguration

    public init(configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "kafka.consumer")) throws {
        guard !configuration.topics.isEmpty else { throw KafkaError.configuration("A consumer needs at least one topic") }
        guard !configuration.groupID.isEmpty else { throw KafkaError.configuration("A consumer needs a group id") }
        let (stream, continuation) = AsyncStream.makeStream(of: [KafkaConsumerMessage].self, bufferingPolicy: .unbounded)
        let properties = configuration.properties()
        let context = ConsumerContext(logger: logger, statistics: RDKafkaStatistics(role: "consumer", group: configuration.groupID),
                                      maxBuffered: configuration.maxBufferedMessages, offsetReset: configuration.autoOffsetReset,
                                      prefetchLimit: PrefetchLimit(properties), holdLimit: configuration.holdLimit)
        let client = try RDKafkaClient.make(kind: .consumer, properties: properties, context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rdkafkaRebalanceCallback)
        }
        try client.withHandle { rk in
            // The main queue (logs, statistics, errors) is served by the consumer poll.
            rd_kafka_poll_set_consumer(rk)
            let list = rd_kafka_topic_partition_list_new(Int32(configuration.topics.count))!  // librdkafka aborts rather than return NULL
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for topic in configuration.topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
            let err = rd_kafka_subscribe(rk, list)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "Could not subscribe to \(configuration.topics)") }
        }
        context.client = client
        self.client = client
        self.context = context
        self.stream = stream
        self.configuration = configuration
        let maxBatch = max(1, configuration.maxBatchSize)
        let pollWait = Int32(clamping: Int64(configuration.pollWait / .milliseconds(1)))
        // The queue `rd_kafka_consumer_poll` reads (the group's, which the main queue is
        // forwarded to), to drain it many messages a call. Released after the consumer closes.
        let queue = client.withHandle { ConsumerQueue(consumer: rd_kafka_queue_get_consumer($0), hold: rd_kafka_queue_new($0)) }
        context.queue = queue
        self.pollThread = RDKafkaPollThread(
            name: "kafka-consumer-poll",
            iteration: {
                // While the application is behind, take nothing more for a while: librdkafka
                // keeps what it has fetched (up to its prefetch limit) for when it catches up.
                if let hold = context.applyBackpressure() {
                    queue.waitForApplication(hold)
                    return
                }
                let (batch, emptied) = client.withHandle { rk -> ([KafkaConsumerMessage], Bool) in
                    // Wait for one message (or event) at most `pollWait` (100 ms), so a lone event
                    // is handed over at once and `max.poll.interval.ms` sees the application polling.
                    guard let first = rd_kafka_consumer_poll(rk, pollWait) else { return ([], true) }
                    let queued = queue.length + 1
                    var reader = context.reader()
                    var batch: [KafkaConsumerMessage] = []
                    reader.take(first, into: &batch)
                    // Then take what is already fetched without waiting, up to one batch, in
                    // calls of up to 256 messages (one queue lock each instead of one a message).
                    // Rebalance callbacks and other events met on the way are served as in a poll.
                    var emptied = false
                    while batch.count < maxBatch {
                        let wanted = min(ConsumerQueue.chunk, maxBatch - batch.count)
                        let taken = queue.drain(wanted) { reader.take($0, into: &batch) }
                        if taken < wanted { emptied = true; break }  // the queue is empty
                    }
                    context.handedOver(reader, queuedBefore: queued)
                    return (batch, emptied)
                }
                if emptied { context.restartFetchingIfStopped() }
                if !batch.isEmpty {
                    context.buffered(batch.count)
                    continuation.yield(batch)
                }
            },
            finish: {
                // Leaving the group revokes every partition, which commits the stored offsets.
                client.withHandle { rk in
                    let err = rd_kafka_consumer_close(rk)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                        context.logger.warning("Kafka consumer close reported an error", metadata: ["kafka.error": "\(KafkaError(err))"])
                    }
                }
                queue.release()
                continuation.finish()
            }
        )
    }

    /// Messages one by one. Iterate either this or ``batches``, and only once.
    public var messages: KafkaConsumerMessages { KafkaConsumerMessages(batches: batches) }

    /// Messages in the batches they were polled in. Iterate either this or ``messages``, and only once.
    public var batches: KafkaConsumerBatches { KafkaConsumerBatches(stream: stream, context: context) }

    /// The partitions currently assigned to this consumer.
    public var assignment: Set<TopicPartition> { context.assignment }

    /// Consumer lag per partition, from librdkafka's latest statistics.
    public var consumerLag: [TopicPartition: Int64] { context.statistics.consumerLag }

    /// Records that this message, and every earlier one in its partition, has been handled durably.
    ///
    /// Throws a `KafkaError` with code `state` if the partition is no longer assigned to this
    /// consumer: its new owner will deliver the message again, so nothing is lost.
    public func storeOffset(_ message: KafkaConsumerMessage) throws {
        try storeOffsets(for: [message])
    }

    /// Stores the offsets of several messages at once: for each partition, the highest one given.
    public func storeOffsets(for messages: [KafkaConsumerMessage]) throws {
        var offsets = HighestOffsets()
        for m in messages { offsets.note(topic: m.topic, partition: m.partition, offset: m.offset) }
        let highest = offsets.result()
        guard !highest.isEmpty else { return }
        let assigned = context.assignment
        let notAssigned = highest.keys.filter { !assigned.contains($0) }.sorted()
        let toStore = highest.filter { assigned.contains($0.key) }
        if !toStore.isEmpty {
            try client.withHandle { rk in
                let list = rd_kafka_topic_partition_list_new(Int32(toStore.count))!  // librdkafka aborts rather than return NULL
                defer { rd_kafka_topic_partition_list_destroy(list) }
                for (tp, offset) in toStore {
                    // The committed offset is the next one to read.
                    rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset + 1
                }
                let err = rd_kafka_offsets_store(rk, list)
                var failed: [String] = []
                for i in 0..<Int(list.pointee.cnt) {
                    let e = list.pointee.elems[i]
                    if e.err != RD_KAFKA_RESP_ERR_NO_ERROR { failed.append("\(String(cString: e.topic))[\(e.partition)]: \(KafkaError(e.err).message)") }
                }
                if !failed.isEmpty || err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: .state, message: "Offsets not stored: \(failed.joined(separator: ", "))", isRetriable: false)
                }
            }
        }
        if !notAssigned.isEmpty {
            throw KafkaError(code: .state,
                             message: "Partitions \(notAssigned.map(\.description).joined(separator: ", ")) are no longer assigned to this consumer; their offsets were not stored and their new owner will deliver the messages again",
                             isRetriable: false)
        }
    }

    /// Stops fetching from these partitions. Polling goes on, so group membership is kept.
    public func pause(_ partitions: [TopicPartition]) throws {
        context.userPaused(partitions, paused: true)
        try context.setPaused(partitions, paused: true)
    }

    /// Fetches again from these partitions, from where the application left off.
    public func resume(_ partitions: [TopicPartition]) throws {
        context.userPaused(partitions, paused: false)
        try context.setPaused(partitions.filter { _ in !context.isBackpressured }, paused: false)
    }

    /// Commits the stored offsets now and waits for the broker's answer.
    public func commit() async throws {
        let client = self.client
        let err = await runBlocking("kafka-consumer-commit") { client.withHandle { rd_kafka_commit($0, nil, 0) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(err, context: "Commit failed")
        }
    }

    /// Nil when a broker answers a metadata request within `timeout` (the cluster is reachable
    /// and this client can talk to it, whatever partitions it has); else why not.
    public func brokerProblem(timeout: Duration) async -> KafkaError? {
        let client = self.client
        let ms = Int32(clamping: Int64(timeout / .milliseconds(1)))
        return await runBlocking("kafka-consumer-probe") {
            client.withHandle { rk in
                var md: UnsafePointer<rd_kafka_metadata>?
                // Brokers and every topic: answered from any broker, whatever this client subscribes to.
                let err = rd_kafka_metadata(rk, 1, nil, &md, ms)
                defer { if let md { rd_kafka_metadata_destroy(md) } }
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return KafkaError(err, context: "Kafka metadata request") }
                guard let md, md.pointee.broker_cnt > 0 else { return KafkaError(code: .transport, message: "Kafka metadata named no broker") }
                return nil
            }
        }
    }

    /// Leaves the group: stored offsets are committed, partitions handed over, and the message
    /// sequence ends. Safe to call more than once.
    public func close() async {
        pollThread.requestStop()
        context.queue?.wake()  // the poll thread may be waiting in a poll
        await pollThread.stop()
    }

    deinit {
        pollThread.requestStop()
        context.queue?.wake()
    }
}

/// The consumer's messages, batch by batch.
public struct KafkaConsumerBatches: AsyncSequence, Sendable {
    public typealias Element = [KafkaConsumerMessage]
    let stream: AsyncStream<[KafkaConsumerMessage]>
    let context: ConsumerContext

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[KafkaConsumerMessage]>.AsyncIterator
        let context: ConsumerContext
        public mutating func next() async -> [KafkaConsumerMessage]? {
            guard let batch = await base.next() else { return nil }
            context.consumed(batch.count)
            return batch
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), context: context)
    }
}

/// The consumer's messages, one by one.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumerMessage
    let batches: KafkaConsumerBatches

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: KafkaConsumerBatches.AsyncIterator
        var pending: [KafkaConsumerMessage] = []
        var index = 0
        public mutating func next() async -> KafkaConsumerMessage? {
            while index >= pending.count {
                guard let batch = await base.next() else { return nil }
                pending = batch
                index = 0
            }
            defer { index += 1 }
            return pending[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: batches.makeAsyncIterator()) }
}

/// The consumer's state that the poll thread and the application share.
// @unchecked: its state is behind a Mutex; `client` is set once before the poll thread starts.
final class ConsumerContext: RDKafkaClientContext, @unchecked Sendable {
    private struct State {
        var assignment: Set<TopicPartition> = []
        var userPaused: Set<TopicPartition> = []
        var buffered = 0
        /// Fetching is paused because the application is behind.
        var backpressured = false
        /// Since when the poll thread has held back, the application being behind; it pauses
        /// fetching if the application has not caught up within `holdLimit`.
        var holdingSince: ContinuousClock.Instant?
        /// The highest offset handed to the application, per partition.
        var delivered: [TopicPartition: Int64] = [:]
        /// A resume whose seek failed as a whole (it timed out on a loaded machine): retried at
        /// every poll until it goes through, so no partition stays paused for good.
        var resumePending = false
        /// Counts revocations, so a batch read across one does not record stale positions.
        var revocations = 0
        /// librdkafka's prefetch queue was seen near its limit, where librdkafka stops fetching.
        var prefetchFull = false
    }
    private let state = Mutex(State())
    private let maxBuffered: Int
    private let offsetReset: KafkaConsumerConfiguration.OffsetReset
    private let prefetchLimit: PrefetchLimit
    private let holdLimit: Duration
    /// Set once, right after the handle is made; read only by the poll thread and the consumer.
    nonisolated(unsafe) weak var client: RDKafkaClient?
    /// Set once, before the poll thread starts: the queue its poll waits on.
    nonisolated(unsafe) var queue: ConsumerQueue?

    init(logger: Logger, statistics: RDKafkaStatistics, maxBuffered: Int, offsetReset: KafkaConsumerConfiguration.OffsetReset,
         prefetchLimit: PrefetchLimit, holdLimit: Duration) {
        self.maxBuffered = max(1, maxBuffered)
        self.offsetReset = offsetReset
        self.prefetchLimit = prefetchLimit
        self.holdLimit = holdLimit
        super.init(logger: logger, statistics: statistics)
    }

    var assignment: Set<TopicPartition> { state.withLock { $0.assignment } }
    var isBackpressured: Bool { state.withLock { $0.backpressured } }

    /// Turns polled librdkafka messages into ``KafkaConsumerMessage``s for one batch, and notes
    /// the highest offset handed over per partition; ``handedOver(_:queuedBefore:)`` records those at once.
    struct BatchReader {
        fileprivate let context: ConsumerContext
        fileprivate let revocations: Int
        private var topicHandle: OpaquePointer?
        private var topicName = ""
        fileprivate var offsets = HighestOffsets()
        fileprivate var messages = 0
        fileprivate var bytes = 0

        fileprivate init(context: ConsumerContext, revocations: Int) {
            self.context = context
            self.revocations = revocations
        }

        /// Notes a message handed over: its partition's highest offset, and its size.
        mutating func note(topic: String, partition: Int32, offset: Int64, bytes size: Int) {
            offsets.note(topic: topic, partition: partition, offset: offset)
            messages += 1
            bytes += size
        }

        /// Takes one message (and destroys librdkafka's copy). Errors are logged, not handed over.
        mutating func take(_ message: UnsafeMutablePointer<rd_kafka_message_t>, into batch: inout [KafkaConsumerMessage]) {
            defer { rd_kafka_message_destroy(message) }
            let m = message.pointee
            // Consecutive messages are mostly of one topic: its name is made once.
            if m.rkt != topicHandle {
                topicHandle = m.rkt
                topicName = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
            }
            let topic = topicName
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                let error = KafkaError(m.err, context: topic.isEmpty ? "Consumer error" : "Consumer error on \(topic)[\(m.partition)]")
                context.logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
                return
            }
            if m.rkt != nil { note(topic: topic, partition: m.partition, offset: m.offset, bytes: m.len + m.key_len) }
            var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let ts = rd_kafka_message_timestamp(message, &tsType)
            batch.append(KafkaConsumerMessage(
                topic: topic, partition: m.partition, offset: m.offset,
                key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) },
                headers: rdkafkaHeaders(of: message),
                timestampMilliseconds: tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0 ? nil : ts))
        }
    }

    /// The position where the application resumes in `partition` after a pause: the highest
    /// offset handed over since it was assigned, if any.
    func deliveredOffset(_ partition: TopicPartition) -> Int64? { state.withLock { $0.delivered[partition] } }

    func reader() -> BatchReader { BatchReader(context: self, revocations: state.withLock { $0.revocations }) }

    /// Records what a batch handed over: each partition's highest offset, where a resume after a
    /// pause continues. If partitions were revoked while the batch was read (a rebalance callback
    /// runs inside a poll), nothing is recorded: those partitions then resume from their
    /// committed offsets, which can deliver a message twice (the inbox dedupes) but never skips one.
    ///
    /// `queuedBefore` is how many messages librdkafka held fetched when the batch was taken. With
    /// the batch's mean size it tells whether that queue was near `queued.max.messages.kbytes`
    /// (or `queued.min.messages`). librdkafka 2.0.2 stops fetching there and does not look again
    /// when the application empties the queue: its broker thread sleeps until something wakes it,
    /// up to a second. So that is remembered, and once the queue is empty
    /// ``restartFetchingIfStopped()`` wakes the fetch.
    func handedOver(_ reader: BatchReader, queuedBefore: Int) {
        var offsets = reader.offsets
        let highest = offsets.result()
        guard !highest.isEmpty else { return }
        let queuedBytes = Double(queuedBefore) * Double(reader.bytes) / Double(max(1, reader.messages))
        let nearLimit = prefetchLimit.isNear(messages: queuedBefore, bytes: queuedBytes)
        state.withLock { s in
            if nearLimit { s.prefetchFull = true }
            guard s.revocations == reader.revocations else { return }
            for (tp, offset) in highest { s.delivered[tp] = max(s.delivered[tp] ?? -1, offset) }
        }
    }

    /// If librdkafka's prefetch queue was near its limit and is now empty, moves each partition
    /// that delivered messages to right after the last one the application received. That is
    /// where fetching stands anyway (nothing is skipped; a fetch in flight is repeated), and a
    /// seek is what wakes librdkafka's broker thread.
    func restartFetchingIfStopped() {
        let positions = state.withLock { s -> [TopicPartition: Int64] in
            guard s.prefetchFull else { return [:] }
            s.prefetchFull = false
            // A pause has nothing to fetch, and its resume seeks anyway.
            guard !s.backpressured else { return [:] }
            return s.delivered.filter { s.assignment.contains($0.key) && !s.userPaused.contains($0.key) }
        }
        guard !positions.isEmpty, let client else { return }
        client.withHandle { rk in
            let list = rd_kafka_topic_partition_list_new(Int32(positions.count))!  // librdkafka aborts rather than return NULL
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for (tp, last) in positions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = last + 1 }
            if let error = rd_kafka_seek_partitions(rk, list, 5000) {
                logger.debug("Kafka seek to restart fetching failed; fetching restarts within a second", metadata: ["kafka.error": "\(KafkaError(consuming: error, context: "Seek"))"])
            }
        }
    }

    func buffered(_ count: Int) { state.withLock { $0.buffered += count } }
    /// The application took `count` messages. If that caught it up far enough to end a hold or
    /// a pause, the poll thread is woken to go on now: paused, it would otherwise wait out its
    /// poll, as nothing arrives (100 ms, which was most of the time a catching-up consumer took).
    func consumed(_ count: Int) {
        let resume = state.withLock { s -> Bool in
            let before = s.buffered
            s.buffered -= count
            return (s.backpressured || s.holdingSince != nil) && before > maxBuffered / 2 && s.buffered <= maxBuffered / 2
        }
        if resume { queue?.wake() }
    }

    func userPaused(_ partitions: [TopicPartition], paused: Bool) {
        state.withLock { s in
            if paused { s.userPaused.formUnion(partitions) } else { s.userPaused.subtract(partitions) }
        }
    }

    /// Pauses everything while the application is too far behind, and resumes (except what the
    /// application paused itself) once it has caught up by half.
    ///
    /// A lag is first met by holding back: the poll thread takes nothing more and waits (the
    /// returned time at most) for the application, while librdkafka keeps what it has fetched.
    /// Only a lag longer than `holdLimit` pauses fetching, which makes librdkafka drop its
    /// prefetch and fetch it again on resume, and wait for any fetch still in flight (up to
    /// `fetch.wait.max.ms` where a partition's end was reached). The hold is short because the
    /// thread serves no event meanwhile (a rebalance waits for it).
    func applyBackpressure() -> Duration? {
        enum Step { case hold(Duration), pause([TopicPartition]), resume([TopicPartition]), none }
        let now = ContinuousClock.now
        let step = state.withLock { s -> Step in
            if !s.backpressured && s.holdingSince == nil && s.buffered >= maxBuffered { s.holdingSince = now }
            if let since = s.holdingSince {
                if s.buffered > maxBuffered / 2 {
                    if now - since < holdLimit { return .hold(holdLimit - (now - since)) }
                    s.backpressured = true
                }
                s.holdingSince = nil
                if s.backpressured { return .pause(Array(s.assignment)) }
            }
            if s.backpressured && s.buffered <= maxBuffered / 2 {
                s.backpressured = false
                s.resumePending = false
                return .resume(Array(s.assignment.subtracting(s.userPaused)))
            }
            if !s.backpressured && s.resumePending {
                s.resumePending = false
                return .resume(Array(s.assignment.subtracting(s.userPaused)))
            }
            return .none
        }
        switch step {
        case .hold(let wait):
            return wait
        case .pause(let partitions):
            try? setPaused(partitions, paused: true)
        case .resume(let partitions):
            do { try setPaused(partitions, paused: false) } catch {
                // Nothing was resumed: try the whole resume again at the next poll.
                state.withLock { if !$0.backpressured { $0.resumePending = true } }
                logger.debug("Kafka resume failed; retried at the next poll", metadata: ["kafka.error": "\(error)"])
            }
        case .none:
            break
        }
        return nil
    }

    func setPaused(_ partitions: [TopicPartition], paused: Bool) throws {
        guard !partitions.isEmpty, let client else { return }
        let delivered = state.withLock { $0.delivered }
        try client.withHandle { rk in
            let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!  // librdkafka aborts rather than return NULL
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
            if paused {
                let err = rd_kafka_pause_partitions(rk, list)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Pause failed") }
                return
            }
            // Pausing drops what librdkafka had fetched but not handed over, and librdkafka would
            // resume from its fetch position, after the dropped messages. So each partition is
            // first moved to exactly after the last message the application received, or, if it
            // received none, to the committed offset (where this assignment started).
            try resumePositions(rk, list, delivered: delivered)
            // A seek only times out when librdkafka's threads are starved (a loaded machine);
            // it is idempotent, so it is tried again before the resume is given up.
            for attempt in 1...3 {
                guard let error = rd_kafka_seek_partitions(rk, list, 5000) else { break }
                let failure = KafkaError(consuming: error, context: "Seek before resume failed")
                guard failure.code == .timedOut, attempt < 3 else { throw failure }
            }
            let err = rd_kafka_resume_partitions(rk, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Resume failed") }
            // A resume does not wake librdkafka's broker threads, which sleep up to a second when
            // every partition is paused; a seek does. The same positions again, so nothing moves.
            if let error = rd_kafka_seek_partitions(rk, list, 5000) {
                logger.debug("Kafka seek after resume failed; fetching starts within a second", metadata: ["kafka.error": "\(KafkaError(consuming: error, context: "Seek after resume"))"])
            }
        }
    }

    /// Sets each partition's offset in `list` to where the application resumes: after the last
    /// message it received, else the committed offset, else where `auto.offset.reset` says.
    private func resumePositions(_ rk: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
                                 delivered: [TopicPartition: Int64]) throws {
        var unreceived: [Int] = []
        for i in 0..<Int(list.pointee.cnt) {
            let tp = TopicPartition(topic: String(cString: list.pointee.elems[i].topic), partition: list.pointee.elems[i].partition)
            if let last = delivered[tp] { list.pointee.elems[i].offset = last + 1 } else { unreceived.append(i) }
        }
        guard !unreceived.isEmpty else { return }
        let query = rd_kafka_topic_partition_list_new(Int32(unreceived.count))!  // librdkafka aborts rather than return NULL
        defer { rd_kafka_topic_partition_list_destroy(query) }
        for i in unreceived { rd_kafka_topic_partition_list_add(query, list.pointee.elems[i].topic, list.pointee.elems[i].partition) }
        let err = rd_kafka_committed(rk, query, 5000)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not read committed offsets before resuming") }
        for (j, i) in unreceived.enumerated() {
            let committed = query.pointee.elems[j]
            if committed.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(committed.err, context: "Could not read a committed offset before resuming") }
            guard committed.offset < 0 else { list.pointee.elems[i].offset = committed.offset; continue }
            switch offsetReset {
            case .earliest: list.pointee.elems[i].offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
            case .latest: list.pointee.elems[i].offset = Int64(RD_KAFKA_OFFSET_END)
            case .error: list.pointee.elems[i].offset = Int64(RD_KAFKA_OFFSET_INVALID)  // librdkafka reports the missing offset
            }
        }
    }

    fileprivate func assigned(_ partitions: [TopicPartition]) -> [TopicPartition] {
        state.withLock { s in
            s.assignment.formUnion(partitions)
            // Newly assigned partitions join an ongoing pause.
            return partitions.filter { s.backpressured || s.userPaused.contains($0) }
        }
    }

    func revoked(_ partitions: [TopicPartition]?) {
        statistics.forget(partitions)
        state.withLock { s in
            s.revocations += 1
            if let partitions {
                s.assignment.subtract(partitions)
                for tp in partitions { s.delivered[tp] = nil }
            } else {
                s.assignment = []
                s.delivered = [:]
            }
        }
    }
}

private func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
    guard let list else { return [] }
    return (0..<Int(list.pointee.cnt)).map {
        TopicPartition(topic: String(cString: list.pointee.elems[$0].topic), partition: list.pointee.elems[$0].partition)
    }
}

/// The one callback librdkafka requires: it does the assign or unassign, copies the partitions
/// into Swift values, and nothing more.
private func rdkafkaRebalanceCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                                      _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let context = RDKafkaClientContext.from(rk) as? ConsumerContext else { return }
    let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    let changed = partitions(of: list)
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        if cooperative {
            if let error = rd_kafka_incremental_assign(rk, list) {
                context.logger.error("Kafka incremental assign failed", metadata: ["kafka.error": "\(KafkaError(consuming: error))"])
            }
        } else {
            _ = rd_kafka_assign(rk, list)
        }
        let toPause = context.assigned(changed)
        try? context.setPaused(toPause, paused: true)
        context.logger.info("Kafka partitions assigned", metadata: ["kafka.partitions": "\(changed.map(\.description))"])
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        // Stop accepting offsets for these partitions first, then commit what was stored, so the
        // next owner starts right after the last message handled durably here.
        context.revoked(changed)
        if rd_kafka_assignment_lost(rk) == 0 {
            let commitErr = rd_kafka_commit(rk, nil, 0)
            if commitErr != RD_KAFKA_RESP_ERR_NO_ERROR && commitErr != RD_KAFKA_RESP_ERR__NO_OFFSET {
                context.logger.warning("Kafka commit on revoke failed", metadata: ["kafka.error": "\(KafkaError(commitErr))"])
            }
        }
        if cooperative {
            if let error = rd_kafka_incremental_unassign(rk, list) {
                context.logger.error("Kafka incremental unassign failed", metadata: ["kafka.error": "\(KafkaError(consuming: error))"])
            }
        } else {
            _ = rd_kafka_assign(rk, nil)
        }
        context.logger.info("Kafka partitions revoked", metadata: ["kafka.partitions": "\(changed.map(\.description))"])
    default:
        context.logger.error("Kafka rebalance failed", metadata: ["kafka.error": "\(KafkaError(err))"])
        context.revoked(nil)
        _ = rd_kafka_assign(rk, nil)
    }
}

/// The highest offset per partition of messages that come in runs of one partition, as a polled
/// batch does: a run is hashed into the table once, not each message. A topic is compared by its
/// string, which within a batch is one shared string (a cheap comparison).
struct HighestOffsets {
    private var run: (topic: String, partition: Int32, offset: Int64)?
    private var table: [TopicPartition: Int64] = [:]

    mutating func note(topic: String, partition: Int32, offset: Int64) {
        if let r = run, r.partition == partition, r.topic == topic {
            run = (r.topic, r.partition, max(r.offset, offset))
        } else {
            endRun()
            run = (topic, partition, offset)
        }
    }

    mutating func result() -> [TopicPartition: Int64] {
        endRun()
        return table
    }

    private mutating func endRun() {
        guard let r = run else { return }
        let tp = TopicPartition(topic: r.topic, partition: r.partition)
        table[tp] = max(table[tp] ?? -1, r.offset)
        run = nil
    }
}

/// The consumer's queue, and the poll thread's array that `rd_kafka_consume_batch_queue` fills.
// @unchecked: drained and released by the poll thread only; ``wake()``, from any thread, takes
// the lock that ``release()`` takes.
final class ConsumerQueue: @unchecked Sendable {
    static let chunk = 256
    private var queue: OpaquePointer?
    /// A queue nothing is ever put on: the poll thread waits on it while it holds back, and
    /// ``wake()`` ends that wait.
    private var hold: OpaquePointer?
    private var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: ConsumerQueue.chunk)
    private let released = Mutex(false)

    init(consumer queue: OpaquePointer?, hold: OpaquePointer?) {
        self.queue = queue
        self.hold = hold
    }

    /// Waits until ``wake()`` or for `limit` at most.
    func waitForApplication(_ limit: Duration) {
        guard let hold else { return }
        let ms = Int32(clamping: max(1, Int64(limit / .milliseconds(1))))
        if let event = rd_kafka_queue_poll(hold, ms) { rd_kafka_event_destroy(event) }
    }

    /// How many messages and events wait in the queue.
    var length: Int { queue.map { Int(rd_kafka_queue_length($0)) } ?? 0 }

    /// Ends a poll or a hold now (or the next one, if none is waiting), from any thread.
    func wake() {
        released.withLock { released in
            guard !released else { return }
            if let queue { rd_kafka_queue_yield(queue) }
            if let hold { rd_kafka_queue_yield(hold) }
        }
    }

    /// Takes up to `count` (at most ``chunk``) messages already queued, without waiting, and
    /// passes each to `body`, which owns it. Returns how many there were.
    func drain(_ count: Int, _ body: (UnsafeMutablePointer<rd_kafka_message_t>) -> Void) -> Int {
        guard let queue, count > 0 else { return 0 }
        let wanted = min(count, buffer.count)
        return buffer.withUnsafeMutableBufferPointer { messages in
            let n = max(0, rd_kafka_consume_batch_queue(queue, 0, messages.baseAddress, wanted))
            for i in 0..<n { if let m = messages[i] { body(m) } }
            return n
        }
    }

    /// Drops the queue reference (after the consumer is closed, before the handle is destroyed).
    func release() {
        released.withLock { released in
            if let queue { rd_kafka_queue_destroy(queue) }
            if let hold { rd_kafka_queue_destroy(hold) }
            queue = nil
            hold = nil
            released = true
        }
    }
}

/// Where librdkafka stops fetching ahead of the application: `queued.max.messages.kbytes` and
/// `queued.min.messages`, as configured.
struct PrefetchLimit {
    var bytes: Double
    var messages: Int

    init(_ properties: [String: String]) {
        bytes = Double(properties["queued.max.messages.kbytes"].flatMap { Int($0) } ?? 65_536) * 1024
        messages = properties["queued.min.messages"].flatMap { Int($0) } ?? 100_000
    }

    /// Within a fifth of either limit: the queue may have reached it between two looks.
    func isNear(messages queued: Int, bytes queuedBytes: Double) -> Bool {
        Double(queued) >= 0.8 * Double(messages) || queuedBytes >= 0.8 * bytes
    }
}
