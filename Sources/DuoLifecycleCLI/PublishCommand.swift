import ArgumentParser
import Foundation
import LifecycleTools
import Kafka
import Lifecycle
import LifecycleWorker
import Logging

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish lifecycle events the way an HR system would (binary-mode CloudEvents, keyed by employee id).",
        discussion: """
        Either --file events.jsonl, one event per line: a structured CloudEvent, or the shorthand \
        {"type": "hired", "data": {"employee_id": "E1", ...}}; or one event from options:
          duo-lifecycle publish --bootstrap B --type hired --employee-id E1 --email ada@example.com --roles engineering
        """
    )

    @Option(help: "Kafka bootstrap servers (default: DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS).") var bootstrap: String = defaultBootstrap
    @Option(help: "Topic to publish to.") var topic: String = "hr.employee.lifecycle.v1"
    @Option(help: "A JSON Lines file of events.") var file: String?
    @Option(help: "Event type: hired, updated, role_changed, terminated, rehired (or the full hr.employee.* name).") var type: String?
    @Option(help: "The employee id (also the Kafka key).") var employeeID: String?
    @Option var username: String?
    @Option var email: String?
    @Option var firstName: String?
    @Option var lastName: String?
    @Option var displayName: String?
    @Option(help: "The complete role list, comma-separated (an empty string for none).") var roles: String?
    @Option(help: "The HR system's version for this employee.") var sequence: Int?
    @Option(help: "RFC 3339 time the change takes effect.") var effectiveAt: String?
    @Option(help: "The CloudEvents id (default: a new UUID).") var id: String?

    func validate() throws {
        try requireBootstrap(bootstrap)
        guard (file == nil) != (type == nil) else { throw ValidationError("Give either --file or --type with --employee-id") }
        if type != nil, employeeID == nil { throw ValidationError("--type needs --employee-id") }
    }

    func run() async throws {
        var messages: [KafkaProducerMessage] = []
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("Cannot read \(file)") }
            for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                do { messages.append(try LifecycleEventMessage.fromJSONLine(String(line), topic: topic)) } catch {
                    throw ValidationError("\(file):\(n + 1): \(error)")
                }
            }
        } else if let type, let employeeID {
            var data: [String: Any] = ["employee_id": employeeID]
            if let username { data["username"] = username }
            if let email { data["email"] = email }
            if let firstName { data["first_name"] = firstName }
            if let lastName { data["last_name"] = lastName }
            if let displayName { data["display_name"] = displayName }
            if let roles { data["roles"] = roles.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let sequence { data["sequence"] = sequence }
            if let effectiveAt { data["effective_at"] = effectiveAt }
            let fullType = type.contains(".") ? type : "hr.employee.\(type)"
            messages.append(try LifecycleEventMessage.make(topic: topic, type: fullType, data: data, id: id ?? UUID().uuidString.lowercased()))
        }
        // The worker's own decoder: an event it would dead-letter is refused here (exit 2).
        let decoder = LifecycleEventDecoder()
        for (n, message) in messages.enumerated() {
            let record = LifecycleRecord(key: message.key, value: message.value, headers: message.headers.map { MessageHeader(name: $0.key, value: $0.value) })
            if case .failure(let rejection) = decoder.decode(record) {
                let which = file.map { "\($0): event \(n + 1): " } ?? ""
                throw ValidationError("\(which)\(rejection.path): \(rejection.message) — not published")
            }
        }
        var quiet = Logger(label: "publish")
        quiet.logLevel = .error
        var config = KafkaProducerConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init))
        config.client.statisticsInterval = nil
        config.deliveryTimeout = .seconds(30)
        let producer = try KafkaProducer(configuration: config, logger: quiet)
        let results = await producer.send(batch: messages)
        await producer.shutdown()
        var failures = 0
        for (message, result) in zip(messages, results) {
            let id = message.headers[string: "ce_id"] ?? "?"
            let type = message.headers[string: "ce_type"] ?? "?"
            let key = message.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
            switch result {
            case .success(let r): print("published \(type) \(key) id=\(id) → \(r.topic)[\(r.partition)]@\(r.offset)")
            case .failure(let e): failures += 1; Console.err("failed \(type) \(key) id=\(id): \(e)\n")
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }
}
