import ArgumentParser
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleTools
import LifecycleWorker
import Logging

struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect and replay dead letters.",
        subcommands: [List.self, Replay.self]
    )

    struct Filters: ParsableArguments {
        @Option(help: "Kafka bootstrap servers (default: DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS).") var bootstrap: String = defaultBootstrap
        @Option(help: "The dead-letter topic.") var topic: String = "hr.employee.lifecycle.v1.dlq"
        @Option(help: "Only dead letters whose original record is at or after this RFC 3339 time.") var since: String?
        @Option(help: "Only this reason: validation, duo-permanent, retries-exhausted, policy or conflict.") var reason: String?
        @Option(help: "Only this employee id (the record key).") var employee: String?
        @Option(help: ArgumentHelp("The worker's store, as a SQLite path (store.path) or a postgres:// URL (store.url; the password from "
                                   + "PGPASSWORD if the URL has none): the whole value of a dead letter published truncated (dlq-value-truncated) is kept there.",
                                   valueName: "path-or-url")) var store: String?

        func validate() throws {
            try requireBootstrap(bootstrap)
            if let since, RFC3339.parse(since) == nil { throw ValidationError("--since must be an RFC 3339 time such as 2026-11-01T00:00:00Z") }
            if let reason, DeadLetterReason(rawValue: reason) == nil {
                throw ValidationError("--reason must be one of \(DeadLetterReason.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let store {
                if store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") {
                    do { _ = try PostgresStoreConfiguration(url: store) } catch { throw ValidationError("--store: \(error.description)") }
                } else if !FileManager.default.fileExists(atPath: store) {
                    throw ValidationError("--store: no such file \(store)")
                }
            }
        }

        /// The dead letter's original value: the whole one from the store when it was published
        /// truncated, which needs --store.
        func originalValue(_ m: KafkaConsumerMessage) async throws -> [UInt8]? {
            guard let size = m.headers[string: "dlq-value-truncated"] else { return m.value }
            guard let store else {
                throw ValidationError("The dead letter of \(DeadLetter(m).eventID ?? "offset \(m.offset)") was published truncated (its value had \(size) bytes); "
                                      + "give --store with the worker's store.path to read the whole value")
            }
            guard let origin = DeadLetter(m).origin,
                  let whole = try await Self.withStore(store, { try await $0.deadLetterOriginal(topic: origin.topic, partition: origin.partition, offset: origin.offset) })
            else { throw ValidationError("The store \(store) does not hold the whole value of the dead letter at offset \(m.offset) (older than store.retention?)") }
            return whole
        }

        /// Opens the store a `--store` value names, runs `body`, and closes it.
        static func withStore<T>(_ location: String, _ body: (any LifecycleStore) async throws -> T) async throws -> T {
            let store: any LifecycleStore
            if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
                var configuration = try PostgresStoreConfiguration(url: location)
                if configuration.password == nil { configuration.password = ProcessInfo.processInfo.environment["PGPASSWORD"] }
                var quiet = Logger(label: "store")
                quiet.logLevel = .error
                store = try await PostgresLifecycleStore(configuration: configuration, logger: quiet, connectTimeout: .seconds(10))
            } else {
                store = try SQLiteLifecycleStore(path: location)
            }
            do {
                let result = try await body(store)
                await store.close()
                return result
            } catch {
                await store.close()
                throw error
            }
        }

        var kafka: KafkaClientConfiguration {
            var k = KafkaClientConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init))
            k.statisticsInterval = nil
            return k
        }

        func matches(_ m: KafkaConsumerMessage, eventID: String? = nil) -> Bool {
            if let reason, m.headers[string: "dlq-reason"] != reason { return false }
            if let employee, m.key.map({ String(decoding: $0, as: UTF8.self) }) != employee { return false }
            if let since = since.flatMap(RFC3339.parse) {
                let ms = DeadLetter(m).origin?.timestampMs ?? m.timestampMilliseconds ?? 0
                if Double(ms) / 1000 < since.timeIntervalSince1970 { return false }
            }
            if let eventID, DeadLetter(m).eventID != eventID { return false }
            return true
        }

        func read() async throws -> [KafkaConsumerMessage] {
            var quiet = Logger(label: "dlq")
            quiet.logLevel = .error
            return try await TopicReader(kafka: kafka, logger: quiet).readAll(topic: topic)
        }
    }

    /// A dead letter's parts, as the commands show them.
    struct DeadLetter {
        let message: KafkaConsumerMessage
        init(_ m: KafkaConsumerMessage) { message = m }

        /// Where the dead letter's record came from: from our headers or from Spring's.
        var origin: DeadLetterOrigin? { message.deadLetterOrigin }
        var eventID: String? { message.cloudEventID }

        var json: [String: Any] {
            var o: [String: Any] = [
                "dlq_offset": message.offset, "dlq_partition": Int(message.partition),
                "key": message.key.map { String(decoding: $0, as: UTF8.self) } ?? NSNull(), "event_id": eventID ?? NSNull(),
                "event_type": message.headers[string: "ce_type"] ?? NSNull(),
            ]
            var headers: [String: String] = [:]
            for h in message.headers { headers[h.key] = h.stringValue ?? h.value.map { Data($0).base64EncodedString() } ?? "" }
            // Spring's binary numbers, shown as numbers.
            if let origin {
                headers[DeadLetterOrigin.Name.partition] = String(origin.partition)
                headers[DeadLetterOrigin.Name.offset] = String(origin.offset)
                headers[DeadLetterOrigin.Name.timestamp] = String(origin.timestampMs ?? -1)
                o["original"] = ["topic": origin.topic, "partition": Int(origin.partition), "offset": origin.offset,
                                 "timestamp_ms": origin.timestampMs ?? NSNull()] as [String: Any]
            }
            o["headers"] = headers
            if let v = message.value { o["value"] = String(validating: v, as: UTF8.self) ?? Data(v).base64EncodedString() }
            return o
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters with their reasons.")
        @OptionGroup var filters: Filters
        @Flag(help: "One JSON object per line instead of a table.") var json = false
        @Flag(help: "With --json: each original value whole (from --store when it was published truncated).") var show = false

        func run() async throws {
            let letters = try await filters.read().filter { filters.matches($0) }.map(DeadLetter.init)
            if json {
                for l in letters {
                    var object = l.json
                    if show, let whole = try await filters.originalValue(l.message) {
                        object["value"] = String(validating: whole, as: UTF8.self) ?? Data(whole).base64EncodedString()
                    }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            let rows = letters.map { l -> [String] in
                let h = l.message.headers
                let ms = l.origin?.timestampMs ?? -1
                return [ms >= 0 ? RFC3339.format(Date(timeIntervalSince1970: Double(ms) / 1000)) : "-",
                        l.message.key.map { String(decoding: $0, as: UTF8.self) } ?? "-", l.eventID ?? "-", h[string: "ce_type"] ?? "-",
                        h[string: "dlq-reason"] ?? h[string: DeadLetterOrigin.Name.exceptionFQCN] ?? "-", h[string: "dlq-attempts"] ?? "-", String((h[string: "kafka_dlt-exception-message"] ?? "").prefix(100))]
            }
            printTable(["original time", "employee", "event id", "type", "reason", "attempts", "message"], rows)
            print("\(letters.count) dead letter(s) on \(filters.topic)")
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Republish dead letters to their original topic (or --to), so the worker processes them again.",
            discussion: """
            Each dead letter's original key, value and headers are republished, with a dlq-replayed-at \
            header; the worker processes a replayed event again even though its inbox has seen it. \
            Replaying something that was already applied changes nothing in Duo.
            """
        )
        @OptionGroup var filters: Filters
        @Option(help: "Only the dead letter of this CloudEvents id.") var eventID: String?
        @Option(help: "Publish here instead of the original topic.") var to: String?
        @Flag(help: "Show what would be replayed, and change nothing.") var dryRun = false

        func run() async throws {
            let letters = try await filters.read().filter { filters.matches($0, eventID: eventID) }
            guard !letters.isEmpty else { print("No dead letters match."); return }
            let now = Date()
            var messages: [KafkaProducerMessage] = []
            for m in letters {
                // A dead letter published truncated is replayed with its whole value, from the store.
                do {
                    messages.append(try DeadLetterReplay.message(for: m, value: try await filters.originalValue(m), topic: to, at: now))
                } catch let error as DeadLetterReplay.NoDestination {
                    throw ValidationError("\(error.description) (--to)")
                }
            }
            if dryRun {
                for (m, out) in zip(letters, messages) {
                    print("would replay \(DeadLetter(m).eventID ?? "?") (\(m.headers[string: "dlq-reason"] ?? "?")) → \(out.topic)")
                }
                print("Dry run: \(messages.count) dead letter(s) would be replayed; nothing was published.")
                return
            }
            var quiet = Logger(label: "dlq")
            quiet.logLevel = .error
            var config = KafkaProducerConfiguration(bootstrapServers: filters.kafka.bootstrapServers)
            config.client.statisticsInterval = nil
            // A record that its topic once took (a whole value read back from the store) must fit
            // again: allow the largest one, with room for its headers.
            let largest = messages.map { ($0.value?.count ?? 0) + ($0.key?.count ?? 0) }.max() ?? 0
            config.client.additionalProperties["message.max.bytes"] = String(max(1_000_000, largest + 65_536))
            let producer = try KafkaProducer(configuration: config, logger: quiet)
            var replayed = 0, failed = 0
            for start in stride(from: 0, to: messages.count, by: 100) {
                let chunk = Array(messages[start..<min(messages.count, start + 100)])
                for (message, r) in zip(chunk, await producer.send(batch: chunk)) {
                    switch r {
                    case .success: replayed += 1
                    case .failure(let error):
                        failed += 1
                        Console.err("not replayed: \(message.headers[string: "ce_id"] ?? "?") → \(message.topic): \(error)\n")
                    }
                }
                if messages.count > 100 { Console.err("replayed \(replayed + failed)/\(messages.count)\n") }
            }
            await producer.shutdown()
            print("Replayed \(replayed) dead letter(s)" + (failed > 0 ? "; \(failed) failed" : "") + ".")
            if failed > 0 { throw ExitCode.failure }
        }
    }
}

func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    var out = line(header) + "\n" + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
    for r in rows { out += line(r) + "\n" }
    Console.out(out)
}
