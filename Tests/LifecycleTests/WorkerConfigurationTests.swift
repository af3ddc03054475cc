import DuoAdmin
import Foundation
import LifecycleStore
import LifecycleWorker
import Testing

@Suite("Worker configuration")
struct WorkerConfigurationTests {
    static let minimal = """
        kafka:
          bootstrap_servers: "k1:9092,k2:9092"
        duo:
          api_host: api-test.duosecurity.com
          ikey: DIXXXXXXXXXXXXXXXXXX
          skey: not-a-real-secret
        """

    @Test("The example configuration in deploy/ loads")
    func example() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/config.example.yaml").path
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("skey-\(UUID().uuidString)").path
        try "example-secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        // The ingress's secret files, where the example expects them.
        let secrets = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
        try "whsec_\(Data("new-key-new-key".utf8).base64EncodedString())\nwhsec_\(Data("old-key-old-key".utf8).base64EncodedString())\n"
            .write(toFile: "\(secrets)/hris-webhook-secrets", atomically: true, encoding: .utf8)
        try "token\n".write(toFile: "\(secrets)/ingress-token", atomically: true, encoding: .utf8)
        try "bamboo-key\n".write(toFile: "\(secrets)/bamboohr-key", atomically: true, encoding: .utf8)
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "/run/secrets/", with: "\(secrets)/")
        let copy = "\(secrets)/config.yaml"
        try text.write(toFile: copy, atomically: true, encoding: .utf8)
        let s = try WorkerConfiguration.load(path: copy, environment: ["DUO_LIFECYCLE_DUO_SKEY_FILE": secret])
        #expect(s.duo.secretKey.secret == "example-secret")
        let ingress = try #require(s.ingress)
        #expect(ingress.sources.map(\.name) == ["hris", "events", "bamboohr"] && ingress.port == 8090 && ingress.maxBody == 1 << 20)
        #expect(ingress.sources[0].secrets.count == 2, "a rotation: both secrets")
        #expect(ingress.sources[2].mapping?.roleValues["Support Engineer"] == "support")
        #expect(ingress.topic == "hr.employee.lifecycle.v1")
        #expect(s.pipeline.massDeprovisionGuard == MassDeprovisionGuard(maxDisables: 50, window: .seconds(600)))
        #expect(s.reconcile.allowlistUsernames == ["svc-*", "break-glass-*"] && s.reconcile.every == nil && !s.reconcile.disableOrphans)
        #expect(s.pipeline.mapping.roles["engineering"] == ["Engineering", "VPN"])
        #expect(s.pipeline.termination.deleteAfter == .seconds(30 * 86400))
    }

    @Test("The image's default configuration loads with the compose file's environment, and serves no ingress without its secrets")
    func containerConfiguration() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/config.container.yaml").path
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("skey-\(UUID().uuidString)").path
        try "compose-secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secret) }
        let s = try WorkerConfiguration.load(path: path, environment: [
            "DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "DUO_LIFECYCLE_DUO_API_URL": "http://emulator:8081",
            "DUO_LIFECYCLE_DUO_IKEY": "DICOMPOSEDEMO0000001", "DUO_LIFECYCLE_DUO_SKEY_FILE": secret,
            "DUO_LIFECYCLE_STORE_PATH": "/var/lib/duo-lifecycle/state.sqlite",
        ])
        #expect(s.kafka.bootstrapServers == ["kafka:9092"] && s.ingress == nil && s.storePath == "/var/lib/duo-lifecycle/state.sqlite")
    }

    @Test("Defaults are sane and the minimal file is enough")
    func defaults() throws {
        let s = try WorkerConfiguration.parse(yaml: Self.minimal)
        #expect(s.kafka.bootstrapServers == ["k1:9092", "k2:9092"])
        #expect(s.pipeline.groupID == "duo-lifecycle" && s.pipeline.lifecycleTopics == ["hr.employee.lifecycle.v1"])
        #expect(s.pipeline.resultsTopic == "duo.provisioning.results.v1" && s.pipeline.deadLetterTopic == "hr.employee.lifecycle.v1.dlq")
        #expect(s.duo.signature == .v5 && s.duo.requestsPerSecond == 10 && s.duo.maxConcurrency == 8)
        // Commands at once, beyond Duo calls at once: waiting commands share bulk requests.
        #expect(s.pipeline.maxConcurrency == 64)
        #expect(try WorkerConfiguration.parse(yaml: Self.minimal.replacingOccurrences(of: "duo:\n", with: "duo:\n  max_concurrency: 100\n")).pipeline.maxConcurrency == 100)
        #expect(s.pipeline.retry.base == .seconds(1) && s.pipeline.retry.max == .seconds(300) && s.pipeline.retry.maxAge == .seconds(86400))
        #expect(s.pipeline.termination.action == .disable && !s.pipeline.termination.removeManagedGroups)
        #expect(s.storePath == "./.duo-lifecycle/state.sqlite" && s.httpPort == 8080 && s.shutdownTimeout == .seconds(30))
        #expect(s.pipeline.termination.honorEffectiveAt && s.pipeline.commandLease == .seconds(60) && s.storeRetention == .seconds(30 * 86400))
    }

    @Test("The console: off by default; its token files name logins; it refuses to start without a way in or with a short token")
    func console() throws {
        #expect(!(try WorkerConfiguration.parse(yaml: Self.minimal)).console.enabled)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "# operators\nalice:alice-token-0123456789\nbare-token-0123456789abc\n".write(toFile: "\(dir)/ops", atomically: true, encoding: .utf8)
        try "short\n".write(toFile: "\(dir)/short", atomically: true, encoding: .utf8)
        let s = try WorkerConfiguration.parse(yaml: Self.minimal + """

            console:
              enabled: true
              token_file: \(dir)/ops
              trusted_header: X-Forwarded-Email
              trusted_operators: [bob@example.com]
              session_ttl: 1h
            """)
        #expect(s.console.enabled && s.console.operatorTokens.map(\.name) == ["alice", "operator"])
        #expect(s.console.trustedHeader == "X-Forwarded-Email" && s.console.trustedOperators == ["bob@example.com"] && s.console.sessionTTL == .seconds(3600))
        #expect(!"\(s.console.operatorTokens)".contains("alice-token"), "a credential never prints its secret")
        #expect(throws: WorkerConfiguration.Problem.self) { try WorkerConfiguration.parse(yaml: Self.minimal + "\nconsole:\n  enabled: true\n") }
        #expect(throws: WorkerConfiguration.Problem.self) {
            try WorkerConfiguration.parse(yaml: Self.minimal + "\nconsole:\n  enabled: true\n  token_file: \(dir)/short\n")
        }
    }

    @Test("Effective dates, leases and retention can be set")
    func lifecycleKeys() throws {
        let s = try WorkerConfiguration.parse(yaml: Self.minimal + """

            termination:
              honor_effective_at: false
            worker:
              command_lease: 2m
            store:
              retention: 7d
            """)
        #expect(!s.pipeline.termination.honorEffectiveAt && s.pipeline.commandLease == .seconds(120) && s.storeRetention == .seconds(7 * 86400))
    }

    @Test("Environment variables override any key; maps take JSON, lists commas")
    func overrides() throws {
        let s = try WorkerConfiguration.parse(yaml: Self.minimal, environment: [
            "DUO_LIFECYCLE_KAFKA_LIFECYCLE_TOPICS": "a,b", "DUO_LIFECYCLE_DUO_SIGNATURE": "v2-sha1",
            "DUO_LIFECYCLE_MAPPING_ROLES": #"{"ops": ["Ops", "VPN"]}"#, "DUO_LIFECYCLE_RETRY_MAX_AGE": "2h",
            "DUO_LIFECYCLE_KAFKA_PROPERTIES": #"{"security.protocol": "SASL_SSL"}"#, "DUO_LIFECYCLE_HTTP_PORT": "9090",
        ])
        #expect(s.pipeline.lifecycleTopics == ["a", "b"] && s.duo.signature == .v2SHA1)
        #expect(s.pipeline.mapping.roles == ["ops": ["Ops", "VPN"]] && s.pipeline.retry.maxAge == .seconds(7200))
        #expect(s.kafka.additionalProperties["security.protocol"] == "SASL_SSL" && s.httpPort == 9090)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var yaml: String
        var env: [String: String] = [:]
        var mentions: String
        var testDescription: String { mentions }
    }

    static let bad: [Bad] = [
        Bad(yaml: minimal + "\nstore:\n  paht: x", mentions: "store.paht"),
        Bad(yaml: minimal + "\nmetrics:\n  port: 1", mentions: "metrics"),
        Bad(yaml: "duo:\n  api_host: h\n  ikey: i\n  skey: s", mentions: "kafka.bootstrap_servers"),
        Bad(yaml: "kafka:\n  bootstrap_servers: b\nduo:\n  api_host: h\n  skey: s", mentions: "duo.ikey"),
        Bad(yaml: "kafka:\n  bootstrap_servers: b\nduo:\n  api_host: h\n  ikey: i", mentions: "duo.skey"),
        Bad(yaml: "kafka:\n  bootstrap_servers: b\nduo:\n  ikey: i\n  skey: s", mentions: "duo.api_host"),
        Bad(yaml: minimal + "\nretry:\n  base: soon", mentions: "retry.base"),
        Bad(yaml: minimal + "\ntermination:\n  action: vaporize", mentions: "termination.action"),
        Bad(yaml: minimal, env: ["DUO_LIFECYCLE_DUO_SKEY_FIEL": "x"], mentions: "DUO_LIFECYCLE_DUO_SKEY_FIEL"),
        Bad(yaml: minimal + "\nstore:\n  url: mysql://db/x", mentions: "store.url"),
        Bad(yaml: minimal + "\nstore:\n  url: postgres://db.internal/lifecycle", mentions: "store.url"),
        Bad(yaml: minimal + "\nstore:\n  url: postgres://duo@db/x?sslmode=sometimes", mentions: "sslmode"),
        Bad(yaml: minimal + "\nstore:\n  url: postgres://duo@db/x\n  password_file: /nonexistent/pw", mentions: "store.password_file"),
        Bad(yaml: minimal + "\nstore:\n  url: postgres://duo@db/x\n  pool_size: 1", mentions: "store.pool_size"),
        Bad(yaml: minimal + "\nstore:\n  url: sqlite:///tmp/x.sqlite\n  path: /tmp/y.sqlite", mentions: "store.url"),
        Bad(yaml: minimal + "\nworker:\n  id: \"\"", mentions: "worker.id"),
    ]

    @Test("A shared PostgreSQL store: URL, password file, pool, timeouts, worker id and static membership; the password never shows")
    func postgresStore() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UUID().uuidString)").path
        try "from-the-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        let s = try WorkerConfiguration.parse(yaml: Self.minimal + """

            store:
              url: postgres://duo_lifecycle@db.internal:6432/lifecycle?sslmode=verify-full
              password_file: \(file)
              tls_ca_file: /etc/ssl/ca.pem
              pool_size: 20
              statement_timeout: 5s
            worker:
              id: replica-7
            """, environment: ["DUO_LIFECYCLE_KAFKA_STATIC_MEMBERSHIP": "true"])
        let pg = try #require(s.postgres)
        #expect(pg.host == "db.internal" && pg.port == 6432 && pg.database == "lifecycle" && pg.username == "duo_lifecycle")
        #expect(pg.password == "from-the-file" && pg.tls == .verifyFull && pg.caFile == "/etc/ssl/ca.pem")
        #expect(pg.poolSize == 20 && pg.statementTimeout == .seconds(5))
        #expect(s.pipeline.workerID == "replica-7" && s.pipeline.staticMembership)
        #expect(!"\(s)".contains("from-the-file") && !pg.redactedDescription.contains("from-the-file"))
        let sqlite = try WorkerConfiguration.parse(yaml: Self.minimal + "\nstore:\n  url: sqlite:///var/lib/x/state.sqlite")
        #expect(sqlite.postgres == nil && sqlite.storePath == "/var/lib/x/state.sqlite")
    }

    @Test("Unknown keys and missing values are errors that name them", arguments: bad)
    func errors(_ b: Bad) {
        do {
            _ = try WorkerConfiguration.parse(yaml: b.yaml, environment: b.env)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains(b.mentions), "\(error)")
        }
    }

    @Test("The secret key never shows when settings are printed")
    func secretHidden() throws {
        let s = try WorkerConfiguration.parse(yaml: Self.minimal)
        #expect(!"\(s)".contains("not-a-real-secret"))
        #expect(!String(reflecting: s).contains("not-a-real-secret"))
    }
}
