import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import Logging
import ServiceLifecycle

/// The worker's parts, wired together: the consumer that makes events durable, the dispatcher
/// that applies commands to Duo, and the relay that publishes results and dead letters.
public struct LifecyclePipeline: Sendable {
    public let store: any LifecycleStore
    public let producer: KafkaProducer
    public let consumer: LifecycleConsumer
    public let dispatcher: CommandDispatcher
    public let relay: OutboxRelay

    /// - Parameters:
    ///   - kafka: bootstrap servers and any librdkafka properties, shared by the consumer and producer.
    public init(configuration: PipelineConfiguration, kafka: KafkaClientConfiguration, store: any LifecycleStore,
                directory: any DuoDirectoryPort, logger: Logger, consumerTuning: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws {
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: kafka.bootstrapServers)
        producerConfig.client = kafka
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        var consumerConfig = KafkaConsumerConfiguration(bootstrapServers: kafka.bootstrapServers, groupID: configuration.groupID,
                                                        topics: configuration.lifecycleTopics)
        consumerConfig.client = kafka
        if configuration.staticMembership { consumerConfig.groupInstanceID = configuration.workerID }
        // Each batch is written in one store transaction, as large as the store takes.
        consumerConfig.maxBatchSize = store.ingestBatchSize
        consumerTuning(&consumerConfig)
        let kafkaConsumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
        let relay = OutboxRelay(store: store, producer: producer, retention: configuration.outboxRetention, logger: logger)
        // With one writer (SQLite), commands finishing together share a synced commit.
        let dispatchStore: any LifecycleStore = store is SQLiteLifecycleStore ? GroupCommitStore(inner: store) : store
        let dispatcher = CommandDispatcher(store: dispatchStore, directory: directory, configuration: configuration, logger: logger, outboxWakeup: relay.wakeup)
        let ingestor = EventIngestor(store: store, configuration: configuration)
        self.consumer = LifecycleConsumer(consumer: kafkaConsumer, ingestor: ingestor, logger: logger) { summary in
            if summary.commands > 0 { dispatcher.wakeup.signal() }
            relay.wakeup.signal()
        }
        self.store = store
        self.producer = producer
        self.dispatcher = dispatcher
        self.relay = relay
    }

    /// The services in dependency order: a graceful shutdown stops them in reverse — the
    /// consumer first (no new work), then the dispatcher (finishes what is in flight), then the
    /// relay (flushes the outbox and the producer).
    public var services: [any Service] { [relay, dispatcher, consumer] }
}
