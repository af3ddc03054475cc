import Foundation
import Kafka
import LifecycleIngress

extension WorkerConfiguration {
    /// What `duo-lifecycle ingress` needs of the worker's file: the `kafka:` and `ingress:`
    /// sections (the file is checked whole, so a typo anywhere is still reported).
    public struct IngressSettings: Sendable {
        public var ingress: IngressConfiguration
        public var logLevel: String
        public var logFormat: String
    }

    public static func loadIngress(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> IngressSettings {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Problem("Cannot read the configuration file \(path)") }
        let r = Reader(tree: try tree(yaml: text, environment: environment))
        let topics = try r.stringList("kafka", "lifecycle_topics") ?? PipelineConfiguration().lifecycleTopics
        guard let ingress = try ingress(r, kafka: try kafkaClient(r), lifecycleTopics: topics) else {
            throw Problem("The file has no ingress: section; see deploy/config.example.yaml")
        }
        let format = try r.string("log", "format") ?? "json"
        guard ["json", "text"].contains(format) else { throw Problem("log.format must be json or text") }
        return IngressSettings(ingress: ingress, logLevel: try r.string("log", "level") ?? "info", logFormat: format)
    }

    static func kafkaClient(_ r: Reader) throws -> KafkaClientConfiguration {
        guard let bootstrap = try r.string("kafka", "bootstrap_servers") else { throw Problem("Missing required value kafka.bootstrap_servers") }
        var kafka = KafkaClientConfiguration(bootstrapServers: bootstrap.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        kafka.clientID = try r.string("kafka", "client_id") ?? "duo-lifecycle"
        kafka.additionalProperties = try r.stringMap("kafka", "properties")
        return kafka
    }

    /// The `ingress:` section; nil when the file has none.
    static func ingress(_ r: Reader, kafka: KafkaClientConfiguration, lifecycleTopics: [String]) throws -> IngressConfiguration? {
        guard (r.tree["ingress"] as? [String: Any]) != nil else { return nil }
        var c = IngressConfiguration()
        c.kafka = kafka
        c.host = try r.string("ingress", "host") ?? c.host
        c.port = try r.int("ingress", "port", in: 0...65535) ?? c.port
        c.tlsCertificateFile = try r.string("ingress", "tls_cert_file")
        c.tlsKeyFile = try r.string("ingress", "tls_key_file")
        guard (c.tlsCertificateFile == nil) == (c.tlsKeyFile == nil) else { throw Problem("ingress.tls_cert_file and ingress.tls_key_file go together: give both or neither") }
        for (key, file) in [("tls_cert_file", c.tlsCertificateFile), ("tls_key_file", c.tlsKeyFile)] {
            if let file, !FileManager.default.isReadableFile(atPath: file) { throw Problem("ingress.\(key): cannot read \(file)") }
        }
        if let raw = try r.value("ingress", "max_body") {
            guard let bytes = parseBytes(raw), (1024...(64 << 20)).contains(bytes) else {
                throw Problem("ingress.max_body must be a size from 1KiB to 64MiB, such as 1048576 or 1MiB, got '\(raw)'")
            }
            c.maxBody = bytes
        }
        c.topic = try r.string("ingress", "topic") ?? lifecycleTopics.first ?? c.topic
        c.deliveryTimeout = try r.duration("ingress", "delivery_timeout") ?? c.deliveryTimeout
        guard c.deliveryTimeout >= .seconds(1) else { throw Problem("ingress.delivery_timeout must be at least 1s") }
        guard let list = try r.value("ingress", "sources") as? [Any], !list.isEmpty else {
            throw Problem("ingress.sources must list at least one source (name, format and its secret)")
        }
        for (i, item) in list.enumerated() {
            guard let map = item as? [String: Any] else { throw Problem("ingress.sources[\(i)] must be a mapping") }
            let source = try webhookSource(map, at: "ingress.sources[\(i)]")
            guard !c.sources.contains(where: { $0.name == source.name }) else { throw Problem("ingress.sources: two sources are named '\(source.name)'") }
            c.sources.append(source)
        }
        return c
    }

    static let sourceKeys: Set<String> = ["name", "format", "secrets", "secrets_file", "secret_file", "tokens", "token_file", "signature_header", "tolerance", "rate_limit", "mapping"]
    static let mappingKeys: Set<String> = ["employees", "employee_id", "event_field", "event_values", "default_event", "fields", "roles", "role_values"]

    private static func webhookSource(_ map: [String: Any], at path: String) throws -> WebhookSource {
        for key in map.keys where !sourceKeys.contains(key) {
            throw Problem("Unknown key '\(path).\(key)'. Known keys of a source: \(sourceKeys.sorted().joined(separator: ", "))")
        }
        let r = Reader(tree: ["source": map])
        guard let name = try r.string("source", "name"), !name.isEmpty,
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }) else {
            throw Problem("\(path).name is required: lower-case letters, digits, - and _ (it is the route /webhooks/<name>)")
        }
        let at = "ingress.sources[\(name)]"
        guard let formatName = try r.string("source", "format"), let format = WebhookFormat(rawValue: formatName) else {
            throw Problem("\(at).format must be one of \(WebhookFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var source = WebhookSource(name: name, format: format)
        // Secrets: inline, or one per line in a file (a rotation lists the new one and the old one).
        var secrets = try stringList(map["secrets"], at: "\(at).secrets")
        for key in ["secrets_file", "secret_file"] {
            guard let file = try r.string("source", key) else { continue }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw Problem("\(at).\(key): cannot read \(file)") }
            secrets += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var tokens = try stringList(map["tokens"], at: "\(at).tokens")
        if let file = try r.string("source", "token_file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw Problem("\(at).token_file: cannot read \(file)") }
            tokens += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        switch format {
        case .standardWebhooks:
            guard !secrets.isEmpty else { throw Problem("\(at) needs secrets or secrets_file (whsec_<base64>)") }
            for (i, secret) in secrets.enumerated() {
                // The secret itself is never part of the message.
                guard let key = WebhookSignatures.standardWebhookKey(secret) else {
                    throw Problem("\(at): secret \(i + 1) is not whsec_ followed by base64")
                }
                source.secrets.append(key)
            }
            guard tokens.isEmpty else { throw Problem("\(at): tokens are for cloudevents sources") }
        case .cloudEvents:
            guard !secrets.isEmpty || !tokens.isEmpty else { throw Problem("\(at) needs tokens or token_file (bearer), or secrets or secrets_file (HMAC)") }
            source.secrets = secrets.map { Array($0.utf8) }
            source.tokens = tokens
        case .bambooHR:
            guard !secrets.isEmpty else { throw Problem("\(at) needs secret_file (or secrets): the webhook's private key") }
            source.secrets = secrets.map { Array($0.utf8) }
            guard tokens.isEmpty else { throw Problem("\(at): tokens are for cloudevents sources") }
            guard let mapping = map["mapping"] as? [String: Any] else { throw Problem("\(at).mapping is required for a bamboohr source") }
            source.mapping = try payloadMapping(mapping, at: "\(at).mapping")
        }
        if format != .bambooHR, map["mapping"] != nil { throw Problem("\(at).mapping is only for bamboohr sources") }
        source.signatureHeader = try r.string("source", "signature_header") ?? source.signatureHeader
        source.tolerance = try r.duration("source", "tolerance") ?? source.tolerance
        guard source.tolerance >= .seconds(1) else { throw Problem("\(at).tolerance must be at least 1s") }
        source.rateLimit = try r.double("source", "rate_limit", in: 0.1...1_000_000) ?? source.rateLimit
        return source
    }

    private static func payloadMapping(_ map: [String: Any], at: String) throws -> PayloadMapping {
        for key in map.keys where !mappingKeys.contains(key) {
            throw Problem("Unknown key '\(at).\(key)'. Known keys of a mapping: \(mappingKeys.sorted().joined(separator: ", "))")
        }
        func pointer(_ value: Any?, _ key: String) throws -> String? {
            guard let value, !(value is NSNull) else { return nil }
            guard let s = value as? String, s.hasPrefix("/"), JSONPointer.isValid(s) else { throw Problem("\(at).\(key) must be a JSON Pointer such as /fields/workEmail") }
            return s
        }
        func table(_ key: String) throws -> [String: String] {
            guard let raw = map[key], !(raw is NSNull) else { return [:] }
            guard let t = raw as? [String: Any] else { throw Problem("\(at).\(key) must be a mapping of values") }
            return t.mapValues { "\($0)" }
        }
        guard let id = try pointer(map["employee_id"], "employee_id") else { throw Problem("\(at).employee_id is required: where the employee id is, such as /id") }
        var m = PayloadMapping(employeeID: id)
        m.employees = try pointer(map["employees"], "employees") ?? m.employees
        m.eventField = try pointer(map["event_field"], "event_field")
        m.eventValues = try table("event_values")
        for (value, kind) in m.eventValues where !PayloadMapping.eventKinds.contains(kind) {
            throw Problem("\(at).event_values.\(value) must be one of \(PayloadMapping.eventKinds.sorted().joined(separator: ", ")), got '\(kind)'")
        }
        if let d = map["default_event"] as? String {
            guard PayloadMapping.eventKinds.contains(d) else { throw Problem("\(at).default_event must be one of \(PayloadMapping.eventKinds.sorted().joined(separator: ", "))") }
            m.defaultEvent = d
        }
        guard m.eventField != nil || m.defaultEvent != nil else { throw Problem("\(at) needs event_field with event_values, or default_event") }
        for (field, p) in try table("fields") {
            guard PayloadMapping.contractFields.contains(field) else {
                throw Problem("\(at).fields.\(field) is not a contract field; known: \(PayloadMapping.contractFields.sorted().joined(separator: ", "))")
            }
            m.fields[field] = try pointer(p, "fields.\(field)")
        }
        for (i, p) in try stringList(map["roles"], at: "\(at).roles").enumerated() { m.roles.append(try pointer(p, "roles[\(i)]")!) }
        m.roleValues = try table("role_values")
        return m
    }

    private static func stringList(_ raw: Any?, at: String) throws -> [String] {
        guard let raw, !(raw is NSNull) else { return [] }
        if let one = raw as? String { return [one] }
        guard let list = raw as? [Any], list.allSatisfy({ $0 is String }) else { throw Problem("\(at) must be a list of strings") }
        return list.map { $0 as! String }
    }

    /// `1048576`, `512KiB`, `1MiB`.
    static func parseBytes(_ raw: Any) -> Int? {
        if let n = raw as? Int { return n }
        guard let s = (raw as? String)?.trimmingCharacters(in: .whitespaces) else { return nil }
        for (suffix, scale) in [("KiB", 1024), ("MiB", 1 << 20), ("KB", 1000), ("MB", 1_000_000)] where s.hasSuffix(suffix) {
            return Int(s.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)).map { $0 * scale }
        }
        return Int(s)
    }
}
