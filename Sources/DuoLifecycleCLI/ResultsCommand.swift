import ArgumentParser
import Foundation
import Kafka
import Logging
import ServiceLifecycle

struct ResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results", abstract: "Follow provisioning results.", subcommands: [Tail.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Follow the result topic in human-readable form until Ctrl-C.")
        @Option(help: "Kafka bootstrap servers (default: DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS).") var bootstrap: String = defaultBootstrap
        @Option(help: "The result topic.") var topic: String = "duo.provisioning.results.v1"
        @Flag(help: "Start from the oldest result instead of new ones only.") var fromBeginning = false
        @Flag(help: "Print each result event as one JSON line (its data, with ce_id and ce_time) instead of a summary line.") var json = false

        func validate() throws { try requireBootstrap(bootstrap) }

        func run() async throws {
            var quiet = Logger(label: "results")
            quiet.logLevel = .error
            var config = KafkaConsumerConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init),
                                                    groupID: "duo-lifecycle-tail-\(UUID().uuidString)", topics: [topic])
            config.client.statisticsInterval = nil
            config.autoOffsetReset = fromBeginning ? .earliest : .latest
            config.client.additionalProperties["enable.auto.commit"] = "false"
            let consumer = try KafkaConsumer(configuration: config, logger: quiet)
            let tail = TailService(consumer: consumer, json: json)
            try await ServiceGroup(services: [tail], gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet).run()
        }
    }

    struct TailService: Service {
        let consumer: KafkaConsumer
        var json = false
        func run() async throws {
            for await message in consumer.messages.cancelOnGracefulShutdown() {
                print(json ? Self.jsonLine(message) : Self.describe(message))
            }
            await consumer.close()
        }

        /// The event's data as one JSON object, with its CloudEvents id and time added.
        static func jsonLine(_ m: KafkaConsumerMessage) -> String {
            var object = m.value.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } as? [String: Any]
                ?? ["error": "not a result event", "partition": Int(m.partition), "offset": m.offset]
            if let id = m.headers[string: "ce_id"] { object["ce_id"] = id }
            if let time = m.headers[string: "ce_time"] { object["ce_time"] = time }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }

        static func describe(_ m: KafkaConsumerMessage) -> String {
            guard let json = m.value.flatMap({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any] else {
                return "\(m.topic)[\(m.partition)]@\(m.offset): not a result event"
            }
            let source = json["source_event"] as? [String: Any] ?? [:]
            let ops = (json["operations"] as? [String] ?? []).joined(separator: ",")
            var line = "\(json["completed_at"] as? String ?? "-")  \(json["employee_id"] as? String ?? "-")  \((json["outcome"] as? String ?? "?").uppercased())"
            line += "  \(source["type"] as? String ?? "-") id=\(source["id"] as? String ?? "-")"
            if !ops.isEmpty { line += "  ops=\(ops)" }
            if let user = json["user_id"] as? String { line += "  duo=\(user)" }
            if let error = json["error"] as? [String: Any] { line += "  error=\(error["code"] ?? "?"): \(error["message"] ?? "")" }
            if let latency = json["latency_ms"] { line += "  \(latency)ms" }
            return line
        }
    }
}
