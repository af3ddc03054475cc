import ArgumentParser
import AsyncHTTPClient
import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Kafka
import Lifecycle
import LifecycleConsole
import LifecycleIngress
import LifecycleTools
import LifecycleWorker
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run the whole thing on embedded defaults: Kafka, a Duo emulator, SQLite and the worker, with a sample HR scenario.",
        discussion: """
        Starts librdkafka's mock cluster, the Duo emulator and the worker (store under \
        ./.duo-lifecycle/), publishes hires, role changes, a termination, a rehire, a stale event, a \
        duplicate and a malformed event, shows each result as it arrives, and ends with a summary of \
        every employee's Duo state, the outcomes, and the dead letters. Exits 0 when every outcome \
        is the expected one.

        --keep-running leaves everything up afterwards and prints how to publish events and where \
        to read results; stop it with Ctrl-C.
        """
    )

    @Flag(help: "Leave the cluster, emulator and worker running after the scenario.") var keepRunning = false
    @Option(help: "Where the SQLite store goes.") var storeDir: String = "./.duo-lifecycle"
    @Option(help: "Worker log level (logs go to standard error).") var logLevel: Logger.Level = .error

    struct Step: Sendable {
        var id: String
        var employee: String
        var type: String
        var expected: String
        /// What to publish; nil for an event that arrives through the webhook ingress.
        var message: KafkaProducerMessage?
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "duo-lifecycle.dev")
        logger.logLevel = level
        let registry = WorkerMetrics.bootstrap()

        say("▶ Starting the embedded Kafka cluster and the Duo emulator")
        var options = EmbeddedStack.Options()
        options.partitions = 3
        options.resultsPartitions = 1
        options.controlAPI = true
        try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
        options.directory = storeDir
        let stack = try await EmbeddedStack(options: options, logger: logger)
        let lifecycleTopic = options.lifecycleTopic, resultsTopic = options.resultsTopic, dlqTopic = options.deadLetterTopic
        say("  bootstrap servers: \(stack.bootstrapServers)")
        say("▶ Duo emulator at \(stack.emulatorURL) (control API under /__emulator/)")

        var workerOptions = EmbeddedStack.WorkerOptions()
        workerOptions.requestsPerSecond = 50
        workerOptions.retryBase = "200ms"
        workerOptions.retryMax = "5s"
        workerOptions.storeFile = "dev.sqlite"
        workerOptions.logLevel = level.rawValue
        workerOptions.shutdownTimeout = "30s"
        let storePath = stack.storePath(workerOptions)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: storePath + suffix) }
        var configuration = try stack.workerConfiguration(workerOptions)
        // The webhook ingress, with a Standard Webhooks source and a BambooHR source.
        let webhooks = DevWebhooks()
        configuration.ingress = webhooks.configuration(kafka: configuration.kafka, topic: lifecycleTopic)
        // The operations console, with made-up operator and read-only tokens (printed with
        // --keep-running), and a mass-deprovision guard low enough to see a held deprovision.
        let consoleTokens = try DevConsoleTokens(directory: storeDir)
        configuration.console.enabled = true
        configuration.console.operatorTokens = [ConsoleCredential(name: "dev-operator", secret: consoleTokens.operatorToken)]
        configuration.console.readonlyTokens = [ConsoleCredential(name: "dev-readonly", secret: consoleTokens.readonlyToken)]
        configuration.pipeline.massDeprovisionGuard = MassDeprovisionGuard(maxDisables: 2, window: .seconds(3600))
        let runtime = try await WorkerRuntime(configuration: configuration, registry: registry, logger: logger)
        let console = ConsoleServer(runtime: runtime, logger: logger)
        let httpPort = Mutex(0)
        let ingressPort = Mutex(0)
        let worker = Task {
            try await runtime.run(handleSignals: false, routes: { console.register(on: $0) }, onHTTPRunning: { port in httpPort.withLock { $0 = port } },
                                  onIngressRunning: { port in ingressPort.withLock { $0 = port } })
        }
        say("▶ Worker started (store \(storePath))")

        // Results, as they arrive.
        var quiet = Logger(label: "dev.results")
        quiet.logLevel = .critical
        var resultsConfig = KafkaConsumerConfiguration(bootstrapServers: [stack.bootstrapServers], groupID: "dev-results", topics: [resultsTopic])
        resultsConfig.client.statisticsInterval = nil
        let resultsConsumer = try KafkaConsumer(configuration: resultsConfig, logger: quiet)
        let outcomes = Mutex<[String: String]>([:])
        let printer = Task {
            for await m in resultsConsumer.messages {
                guard let json = m.value.flatMap({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any],
                      let outcome = json["outcome"] as? String else { continue }
                let id = (json["source_event"] as? [String: Any])?["id"] as? String ?? "?"
                outcomes.withLock { $0[id] = outcome }
                say("  ← " + ResultsCommand.TailService.describe(m))
            }
        }

        let phases = try Self.scenario(topic: lifecycleTopic)
        for (n, phase) in phases.enumerated() {
            say("▶ Publishing step \(n + 1) of \(phases.count): \(phase.title)")
            for step in phase.steps { say("  → \(step.employee) \(step.type) id=\(step.id)") }
            try await stack.publish(phase.steps.compactMap(\.message))
            let awaited = phase.steps.filter { $0.expected != "none" }.map(\.id)
            let deadline = ContinuousClock.now + .seconds(60)
            while !outcomes.withLock({ o in awaited.allSatisfy { o[$0] != nil } }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        // The same path from an HR system's webhooks: ingress → Kafka → worker → Duo → result.
        let ingressDeadline = ContinuousClock.now + .seconds(20)
        while ingressPort.withLock({ $0 }) == 0 && ContinuousClock.now < ingressDeadline { try await Task.sleep(for: .milliseconds(50)) }
        let ingressURL = "http://127.0.0.1:\(ingressPort.withLock { $0 })"
        say("▶ Step \(phases.count + 1) of \(phases.count + 1): two signed webhooks through the ingress at \(ingressURL)")
        let webhookSteps = try await webhooks.send(to: ingressURL)
        for step in webhookSteps { say("  → \(step.employee) \(step.type) id=\(step.id)") }
        let webhookDeadline = ContinuousClock.now + .seconds(60)
        while !outcomes.withLock({ o in webhookSteps.allSatisfy { o[$0.id] != nil } }) && ContinuousClock.now < webhookDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .milliseconds(500))  // let duplicates prove they produce nothing

        let all = phases.flatMap(\.steps) + webhookSteps
        let got = outcomes.withLock { $0 }
        say("")
        say("Summary: events")
        var mismatches = 0
        var rows: [[String]] = []
        for step in all {
            let outcome = got[step.id] ?? "none"
            let ok = outcome == step.expected
            if !ok { mismatches += 1 }
            rows.append([ok ? "✔" : "✘", step.employee, step.type, step.id, outcome, step.expected])
        }
        printTable(["", "employee", "event", "id", "outcome", "expected"], rows)

        say("")
        say("Summary: Duo state")
        let employees = ["E100": "ada", "E101": "grace", "E102": "linus", "E103": "barbara", "E104": "katherine", "E105": "margaret", "E106": "edsger"]
        printTable(["employee", "duo username", "status", "groups", "outcomes"], employees.sorted { $0.key < $1.key }.map { employee, username in
            let user = stack.emulator.directory.user(username: username)
            let events = all.filter { $0.employee == employee }.map { got[$0.id] ?? "none" }.filter { $0 != "none" }
            return [employee, user?.username ?? "(none)", user?.status.rawValue ?? "-",
                    user?.groups.map(\.name).sorted().joined(separator: ", ") ?? "-", events.joined(separator: " → ")]
        })

        say("")
        say("Summary: dead letters")
        let letters = try await TopicReader(kafka: stack.kafka, logger: quiet).readAll(topic: dlqTopic)
        printTable(["key", "event id", "reason", "message"], letters.map {
            [$0.key.map { String(decoding: $0, as: UTF8.self) } ?? "-", $0.headers[string: "ce_id"] ?? "-",
             $0.headers[string: "dlq-reason"] ?? "-", String(($0.headers[string: "kafka_dlt-exception-message"] ?? "").prefix(90))]
        })
        say("")

        if keepRunning {
            let port = httpPort.withLock { $0 }
            say("""
                Everything keeps running. Try, in another terminal:
                  duo-lifecycle publish --bootstrap \(stack.bootstrapServers) --type hired --employee-id E200 --email new.hire@example.com --roles engineering
                  duo-lifecycle results tail --bootstrap \(stack.bootstrapServers) --from-beginning
                  duo-lifecycle dlq list --bootstrap \(stack.bootstrapServers)
                  curl -s \(stack.emulatorURL)/__emulator/state      # the emulated Duo directory
                  curl -s http://127.0.0.1:\(port)/metrics     # worker metrics (/healthz, /readyz too)
                Webhook ingress at \(ingressURL)/webhooks/hris (Standard Webhooks, secret \(webhooks.hrisSecretFile))
                  and \(ingressURL)/webhooks/bamboohr (BambooHR, key \(webhooks.bambooKeyFile)); see the README for curl examples.
                Duo emulator credentials: ikey \(options.integrationKey), skey in \(stack.secretKeyFile)
                Operations console at http://127.0.0.1:\(port)/console/
                  operator token: \(consoleTokens.operatorToken)
                  read-only token: \(consoleTokens.readonlyToken)
                  (also in \(consoleTokens.operatorFile) and \(consoleTokens.readonlyFile); the mass-deprovision guard holds
                  disables beyond 2 an hour, so a third termination shows up under Held deprovisions)
                Press Ctrl-C to stop.
                """)
            try? await ServiceGroup(services: [WaitForSignal()], gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet).run()
        }

        await runtime.triggerShutdown()
        try await worker.value
        await resultsConsumer.close()
        printer.cancel()
        await stack.shutdown()
        try? FileManager.default.removeItem(atPath: stack.secretKeyFile)
        if mismatches > 0 {
            say("✘ \(mismatches) event(s) did not end as expected")
            throw ExitCode.failure
        }
        say("✔ Every sample event ended as expected.")
    }

    struct Phase { var title: String; var steps: [Step] }

    static func scenario(topic: String) throws -> [Phase] {
        func step(_ type: String, _ employee: String, _ id: String, _ expected: String, _ data: [String: Any]) throws -> Step {
            var d = data
            d["employee_id"] = employee
            return Step(id: id, employee: employee, type: type, expected: expected,
                        message: try LifecycleEventMessage.make(topic: topic, type: "hr.employee.\(type)", data: d, id: id, source: "urn:dev:hr"))
        }
        let hireAda = try step("hired", "E100", "dev-1", "applied", ["email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "roles": ["engineering"], "sequence": 1])
        let malformed = Step(id: "dev-bad", employee: "E666", type: "malformed", expected: "dead_lettered", message: KafkaProducerMessage(
            topic: topic, key: Array("E666".utf8), value: Array(#"{"employee_id": "E666", "roles": "#.utf8),
            headers: [KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: "dev-bad"),
                      KafkaHeader(key: "ce_source", string: "urn:dev:hr"), KafkaHeader(key: "ce_type", string: "hr.employee.hired"),
                      KafkaHeader(key: "ce_time", string: RFC3339.format(Date())), KafkaHeader(key: "content-type", string: "application/json")]))
        return [
            Phase(title: "four hires", steps: [
                hireAda,
                try step("hired", "E101", "dev-2", "applied", ["email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "roles": ["sales"], "sequence": 1]),
                try step("hired", "E102", "dev-3", "applied", ["email": "linus@example.com", "first_name": "Linus", "last_name": "Torvalds", "roles": ["support", "engineering"], "sequence": 1]),
                try step("hired", "E103", "dev-4", "applied", ["email": "barbara@example.com", "first_name": "Barbara", "last_name": "Liskov", "roles": ["sales"], "sequence": 1]),
            ]),
            Phase(title: "a role change, a profile update and two terminations", steps: [
                try step("role_changed", "E101", "dev-5", "applied", ["roles": ["engineering", "sales"], "sequence": 2]),
                try step("updated", "E100", "dev-6", "applied", ["display_name": "Ada King", "sequence": 2]),
                try step("terminated", "E102", "dev-7", "applied", ["sequence": 2]),
                try step("terminated", "E103", "dev-8", "applied", ["sequence": 2]),
            ]),
            Phase(title: "a rehire, a stale event, a duplicate and a malformed event", steps: [
                try step("rehired", "E103", "dev-9", "applied", ["email": "barbara@example.com", "roles": ["support"], "sequence": 3]),
                try step("role_changed", "E100", "dev-10", "stale", ["roles": ["sales"], "sequence": 1]),
                Step(id: hireAda.id + " (duplicate)", employee: "E100", type: "hired (again)", expected: "none", message: hireAda.message),
                malformed,
            ]),
        ]
    }
}

struct WaitForSignal: Service {
    func run() async throws { try? await gracefulShutdown() }
}

func say(_ line: String) {
    Console.out((line + "\n"))
}

/// The webhooks `dev` sends: a Standard Webhook from an HRIS and a BambooHR webhook with two
/// employees, each signed as the sender would, with secrets made up for this run.
struct DevWebhooks {
    let hrisSecret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    let bambooKey = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    var hrisSecretFile: String { FileManager.default.temporaryDirectory.appendingPathComponent("duo-lifecycle-dev-hris.secret").path }
    var bambooKeyFile: String { FileManager.default.temporaryDirectory.appendingPathComponent("duo-lifecycle-dev-bamboohr.key").path }

    func configuration(kafka: KafkaClientConfiguration, topic: String) -> IngressConfiguration {
        var c = IngressConfiguration()
        c.host = "127.0.0.1"
        c.port = 0
        c.topic = topic
        c.kafka = kafka
        var hris = WebhookSource(name: "hris", format: .standardWebhooks)
        hris.secrets = [WebhookSignatures.standardWebhookKey(hrisSecret)!]
        var bamboo = WebhookSource(name: "bamboohr", format: .bambooHR)
        bamboo.secrets = [Array(bambooKey.utf8)]
        var mapping = PayloadMapping(employeeID: "/id")
        mapping.eventField = "/fields/status"
        mapping.eventValues = ["Active": "hired", "Inactive": "terminated"]
        mapping.fields = ["email": "/fields/workEmail", "first_name": "/fields/firstName", "last_name": "/fields/lastName"]
        mapping.roles = ["/fields/department"]
        mapping.roleValues = ["Engineering": "engineering", "Sales": "sales", "Support": "support"]
        bamboo.mapping = mapping
        c.sources = [hris, bamboo]
        // Made-up secrets for this run, readable by this user only.
        for (secret, file) in [(hrisSecret, hrisSecretFile), (bambooKey, bambooKeyFile)] {
            try? FileManager.default.removeItem(atPath: file)
            FileManager.default.createFile(atPath: file, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        }
        return c
    }

    /// Posts both webhooks; the events they became, as the 202 answers name them.
    func send(to url: String) async throws -> [DevCommand.Step] {
        let now = Int64(Date().timeIntervalSince1970)
        let hrisBody = Array(try JSONSerialization.data(withJSONObject: [
            "type": "hr.employee.hired", "timestamp": RFC3339.format(Date()),
            "data": ["employee_id": "E104", "email": "katherine@example.com", "first_name": "Katherine", "last_name": "Johnson", "roles": ["engineering"], "sequence": 1],
        ] as [String: Any], options: [.sortedKeys]))
        let webhookID = "msg_dev_\(UUID().uuidString.prefix(8).lowercased())"
        let hrisIDs = try await post(url + "/webhooks/hris", body: hrisBody, headers: [
            ("content-type", "application/json"), ("webhook-id", webhookID), ("webhook-timestamp", "\(now)"),
            ("webhook-signature", WebhookSignatures.standardWebhookSignature(id: webhookID, timestamp: now, body: hrisBody, key: WebhookSignatures.standardWebhookKey(hrisSecret)!)),
        ])
        let bambooBody = Array(try JSONSerialization.data(withJSONObject: ["employees": [
            ["id": "E105", "fields": ["status": "Active", "workEmail": "margaret@example.com", "firstName": "Margaret", "lastName": "Hamilton", "department": "Engineering"]],
            ["id": "E106", "fields": ["status": "Active", "workEmail": "edsger@example.com", "firstName": "Edsger", "lastName": "Dijkstra", "department": "Sales"]],
        ]], options: [.sortedKeys]))
        let bambooIDs = try await post(url + "/webhooks/bamboohr", body: bambooBody, headers: [
            ("content-type", "application/json"), ("X-BambooHR-Timestamp", "\(now)"),
            ("X-BambooHR-Signature", WebhookSignatures.bambooHRSignature(body: bambooBody, timestamp: "\(now)", key: Array(bambooKey.utf8))),
        ])
        return hrisIDs.map { DevCommand.Step(id: $0, employee: "E104", type: "hired (Standard Webhook)", expected: "applied", message: nil) }
            + bambooIDs.map { id in
                DevCommand.Step(id: id, employee: String(id.split(separator: "/").last ?? ""), type: "hired (BambooHR)", expected: "applied", message: nil)
            }
    }

    private func post(_ url: String, body: [UInt8], headers: [(String, String)]) async throws -> [String] {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status.code == 202,
              let ids = ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["events"] as? [String] else {
            throw DevFailure("The ingress answered \(response.status.code) to \(url): \(text)")
        }
        say("  ← 202 from \(url): \(ids.count) event(s) durable in Kafka")
        return ids
    }
}

struct DevFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Console tokens made up for `dev`, written readable by this user only.
struct DevConsoleTokens {
    let operatorToken: String
    let readonlyToken: String
    let operatorFile: String
    let readonlyFile: String

    init(directory: String) throws {
        func token() -> String {
            var bytes = [UInt8](repeating: 0, count: 24)
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
            return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        }
        operatorToken = token()
        readonlyToken = token()
        operatorFile = "\(directory)/console-operator.token"
        readonlyFile = "\(directory)/console-readonly.token"
        for (file, value) in [(operatorFile, operatorToken), (readonlyFile, readonlyToken)] {
            try? FileManager.default.removeItem(atPath: file)
            guard FileManager.default.createFile(atPath: file, contents: Data((value + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("Cannot write \(file)")
            }
        }
    }
}
