import AsyncHTTPClient
import Foundation
import Kafka
import LifecycleIngress
import LifecycleTools
import LifecycleWorker
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// A webhook ingress on a free port, publishing to a mock Kafka cluster over TCP.
final class IngressHarness: Sendable {
    static let topic = "hr.employee.lifecycle.v1"
    static let hrisSecret = "whsec_" + Data("hris-signing-key-0123456789abcdef".utf8).base64EncodedString()
    static let rotatedSecret = "whsec_" + Data("hris-new-signing-key-fedcba98765".utf8).base64EncodedString()
    static let token = "ce-bearer-token-7f3a9c"
    static let hmacSecret = "ce-hmac-secret-55aa"
    static let bambooKey = "bamboo-private-key-9d8e7f"

    let cluster: KafkaMockCluster
    let server: IngressServer
    let group: ServiceGroup
    let running: Task<Void, any Error>
    let port: Int
    let directory: String
    let logger: Logger

    static func yaml(bootstrap: String, extra: String = "", deliveryTimeout: String = "10s") -> String {
        """
        kafka:
          bootstrap_servers: \(bootstrap)
        ingress:
          host: 127.0.0.1
          port: 0
          max_body: 64KiB
          delivery_timeout: \(deliveryTimeout)
          sources:
            - name: hris
              format: standard-webhooks
              secrets: ["\(hrisSecret)", "\(rotatedSecret)"]
              rate_limit: 100000
            - name: events
              format: cloudevents
              tokens: ["\(token)"]
              secrets: ["\(hmacSecret)"]
              rate_limit: 100000
            - name: bamboohr
              format: bamboohr
              secrets: ["\(bambooKey)"]
              mapping:
                employees: /employees
                employee_id: /id
                event_field: /fields/status
                event_values: {Active: hired, Inactive: terminated}
                fields: {email: /fields/workEmail, first_name: /fields/firstName, last_name: /fields/lastName}
                roles: [/fields/department]
                role_values: {Engineering: engineering, Sales: sales}
            - name: slow
              format: standard-webhooks
              secrets: ["\(hrisSecret)"]
              rate_limit: 1
        \(extra)
        """
    }

    init(brokers: Int = 1, deliveryTimeout: String = "10s", tls: (certificate: String, key: String)? = nil) async throws {
        var logger = Logger(label: "ingress-test")
        // Broker-down tests make librdkafka log connection errors; they are expected here.
        logger.logLevel = .critical
        self.logger = logger
        cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        try cluster.createTopic(Self.topic, partitions: 3)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ingress-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/config.yaml"
        let tlsKeys = tls.map { "  tls_cert_file: \($0.certificate)\n  tls_key_file: \($0.key)\n" } ?? ""
        try Self.yaml(bootstrap: cluster.bootstrapServers, deliveryTimeout: deliveryTimeout)
            .replacingOccurrences(of: "ingress:\n", with: "ingress:\n" + tlsKeys).write(toFile: path, atomically: true, encoding: .utf8)
        var settings = try WorkerConfiguration.loadIngress(path: path, environment: [:]).ingress
        settings.kafka.statisticsInterval = nil
        server = try IngressServer(configuration: settings, logger: logger)
        let bound = Mutex(0)
        let service = try server.service { port in bound.withLock { $0 = port } }
        group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger))
        running = Task { [group] in try await group.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while bound.withLock({ $0 }) == 0 {
            guard ContinuousClock.now < deadline else { throw HarnessError("the ingress did not start") }
            try await Task.sleep(for: .milliseconds(10))
        }
        port = bound.withLock { $0 }
    }

    func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        await cluster.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Reply: Sendable {
        var status: Int
        var contentType: String
        var retryAfter: String?
        var text: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
        var eventIDs: [String] { json["events"] as? [String] ?? [] }
    }

    func post(_ source: String, headers: [(String, String)], body: [UInt8]) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/webhooks/\(source)")
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), contentType: response.headers.first(name: "content-type") ?? "",
                     retryAfter: response.headers.first(name: "retry-after"), text: String(buffer: bytes))
    }

    // MARK: Requests as senders sign them

    static func standardWebhook(id: String, kind: String, data: [String: Any], secret: String = hrisSecret,
                                timestamp: Int64 = Int64(Date().timeIntervalSince1970)) throws -> (headers: [(String, String)], body: [UInt8]) {
        let body = Array(try JSONSerialization.data(withJSONObject: ["type": "hr.employee.\(kind)", "timestamp": "2026-11-30T09:00:00Z", "data": data],
                                                    options: [.sortedKeys]))
        return (signedStandard(id: id, body: body, secret: secret, timestamp: timestamp), body)
    }

    static func signedStandard(id: String, body: [UInt8], secret: String = hrisSecret, timestamp: Int64 = Int64(Date().timeIntervalSince1970)) -> [(String, String)] {
        let signature = WebhookSignatures.standardWebhookSignature(id: id, timestamp: timestamp, body: body, key: WebhookSignatures.standardWebhookKey(secret)!)
        return [("content-type", "application/json"), ("webhook-id", id), ("webhook-timestamp", "\(timestamp)"), ("webhook-signature", signature)]
    }

    static func bamboo(_ employees: [[String: Any]], key: String = bambooKey, timestamp: Int64 = Int64(Date().timeIntervalSince1970)) throws -> (headers: [(String, String)], body: [UInt8]) {
        let body = Array(try JSONSerialization.data(withJSONObject: ["employees": employees], options: [.sortedKeys]))
        let stamp = "\(timestamp)"
        return ([("content-type", "application/json"), ("X-BambooHR-Timestamp", stamp),
                 ("X-BambooHR-Signature", WebhookSignatures.bambooHRSignature(body: body, timestamp: stamp, key: Array(key.utf8)))], body)
    }

    /// The events on the lifecycle topic: ce_id → (type, key, data).
    func published() async throws -> [(id: String, type: String, key: String, data: [String: Any])] {
        var config = KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers])
        config.statisticsInterval = nil
        return try await TopicReader(kafka: config, logger: logger).readAll(topic: Self.topic).map { m in
            (m.headers[string: "ce_id"] ?? "", m.headers[string: "ce_type"] ?? "", m.key.map { String(decoding: $0, as: UTF8.self) } ?? "",
             m.value.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } as? [String: Any] ?? [:])
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Shared mutable state for concurrent test tasks.
final class Locked<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    func callAsFunction<T>(_ body: (inout Value) -> T) -> T { state.withLock { body(&$0) } }
    var value: Value { state.withLock { $0 } }
}
