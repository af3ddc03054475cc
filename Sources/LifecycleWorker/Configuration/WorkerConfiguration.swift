import DuoAdmin
import Foundation
import Kafka
import Lifecycle
import LifecycleIngress
import LifecycleStore
import Yams

/// The `run` command's configuration, from a YAML file with environment overrides.
///
/// Every key can be overridden by `DUO_LIFECYCLE_<SECTION>_<KEY>` (for example
/// `DUO_LIFECYCLE_DUO_SKEY_FILE=/run/secrets/duo_skey`). Lists take comma-separated values and
/// maps take JSON. An unknown key is an error that names it; a missing required value is an
/// error that says which.
public struct WorkerConfiguration: Sendable {
    public var kafka: KafkaClientConfiguration
    public var pipeline: PipelineConfiguration
    public var duo: DuoAdminConfiguration
    /// The SQLite file, when the store is SQLite (`store.path`, or `store.url: sqlite:///path`).
    public var storePath: String
    /// The shared PostgreSQL store, when `store.url` is `postgres://…`; nil for SQLite.
    public var postgres: PostgresStoreConfiguration?
    /// How long inbox rows and finished commands are kept. Default: 30 days.
    public var storeRetention: Duration
    public var httpHost: String
    public var httpPort: Int
    public var shutdownTimeout: Duration
    public var logLevel: String
    public var logFormat: String
    /// The webhook ingress `run` serves besides the worker, when the file has an `ingress:` section.
    public var ingress: IngressConfiguration?
    /// Audits of Duo against the employees (`reconcile` and `reconcile.every`).
    public var reconcile: ReconcileConfiguration
    /// The operations console under `/console/` on the operations port (off by default).
    public var console = ConsoleConfiguration()
    /// Whether the writes of commands running at once share `POST /admin/v1/bulk` requests
    /// (`duo.bulk`, default on; never a termination's).
    public var duoBulk = true

    /// `worker.max_concurrency` when the file leaves it out: 64 commands at once, or
    /// `duo.max_concurrency` if that is higher.
    public static func defaultMaxConcurrency(duo: Int) -> Int { max(PipelineConfiguration.defaultMaxConcurrency, duo) }

    /// A configuration problem, naming the key.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Every section and key the file may contain.
    public static let schema: [String: Set<String>] = [
        "kafka": ["bootstrap_servers", "group_id", "lifecycle_topics", "results_topic", "dead_letter_topic", "properties", "client_id", "static_membership"],
        "duo": ["api_host", "api_url", "ikey", "skey", "skey_file", "signature", "requests_per_second", "max_concurrency", "timeout", "bulk"],
        "mapping": ["roles", "unmapped_roles", "create_missing_groups", "username_from"],
        "termination": ["action", "delete_after", "remove_managed_groups", "honor_effective_at"],
        "store": ["path", "url", "password_file", "tls_ca_file", "pool_size", "statement_timeout", "retention"],
        "retry": ["base", "max", "max_age", "max_attempts"],
        "http": ["port", "host"],
        "worker": ["id", "max_concurrency", "shutdown_timeout", "outbox_retention", "command_lease"],
        "log": ["level", "format"],
        "guard": ["max_disables", "max_percent", "window"],
        "reconcile": ["every", "fix", "enrollment_grace", "dormant_after", "disable_orphans", "allowlist_usernames", "allowlist_groups",
                      "findings_topic", "report_topic"],
        "ingress": ["port", "host", "tls_cert_file", "tls_key_file", "max_body", "topic", "delivery_timeout", "sources"],
        "console": ["enabled", "token_file", "readonly_token_file", "trusted_header", "trusted_operators", "audit_topic", "session_ttl"],
    ]

    /// Loads a YAML file, applying environment overrides.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> WorkerConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Problem("Cannot read the configuration file \(path)") }
        return try parse(yaml: text, environment: environment)
    }

    public static func parse(yaml text: String, environment: [String: String] = [:]) throws -> WorkerConfiguration {
        try WorkerConfiguration(tree: try tree(yaml: text, environment: environment))
    }

    /// The file as a checked tree: known sections and keys only, environment overrides applied.
    static func tree(yaml text: String, environment: [String: String]) throws -> [String: Any] {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw Problem(syntaxError(error, in: text)) }
        guard loaded == nil || loaded is [String: Any] else { throw Problem("The configuration must be a mapping of sections") }
        var tree = (loaded as? [String: Any]) ?? [:]

        for (section, value) in tree {
            guard let keys = schema[section] else { throw Problem("Unknown section '\(section)'. Known sections: \(schema.keys.sorted().joined(separator: ", "))") }
            guard let map = value as? [String: Any] else {
                if value is NSNull { tree[section] = [String: Any](); continue }
                throw Problem("Section '\(section)' must be a mapping")
            }
            for key in map.keys where !keys.contains(key) {
                throw Problem("Unknown key '\(section).\(key)'. Known keys of \(section): \(keys.sorted().joined(separator: ", "))")
            }
        }
        // Environment overrides: DUO_LIFECYCLE_<SECTION>_<KEY>.
        for (name, value) in environment where name.hasPrefix("DUO_LIFECYCLE_") {
            let rest = name.dropFirst("DUO_LIFECYCLE_".count).lowercased()
            guard let section = schema.keys.sorted(by: { $0.count > $1.count }).first(where: { rest.hasPrefix($0 + "_") }) else {
                throw Problem("Unknown environment override \(name): no such section")
            }
            let key = String(rest.dropFirst(section.count + 1))
            guard schema[section]?.contains(key) == true else { throw Problem("Unknown environment override \(name): no key '\(section).\(key)'") }
            var map = (tree[section] as? [String: Any]) ?? [:]
            map[key] = try overrideValue(value, section: section, key: key)
            tree[section] = map
        }
        return tree
    }

    private static func overrideValue(_ raw: String, section: String, key: String) throws -> Any {
        switch (section, key) {
        case ("kafka", "lifecycle_topics"): return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        case ("kafka", "properties"), ("mapping", "roles"):
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) else {
                throw Problem("DUO_LIFECYCLE_\(section.uppercased())_\(key.uppercased()) must be a JSON object")
            }
            return parsed
        default: return raw
        }
    }

    private init(tree: [String: Any]) throws {
        let r = Reader(tree: tree)
        // Kafka
        kafka = try Self.kafkaClient(r)
        var w = PipelineConfiguration()
        w.groupID = try r.string("kafka", "group_id") ?? w.groupID
        w.lifecycleTopics = try r.stringList("kafka", "lifecycle_topics") ?? w.lifecycleTopics
        guard !w.lifecycleTopics.isEmpty else { throw Problem("kafka.lifecycle_topics must list at least one topic") }
        w.resultsTopic = try r.string("kafka", "results_topic") ?? w.resultsTopic
        w.deadLetterTopic = try r.string("kafka", "dead_letter_topic") ?? w.deadLetterTopic
        w.resultSource = "urn:duo-lifecycle:\(w.groupID)"

        // Duo
        let credentials = DuoCredentials(apiURL: try r.string("duo", "api_url"), apiHost: try r.string("duo", "api_host"),
                                         ikey: try r.string("duo", "ikey"), skey: try r.string("duo", "skey"), skeyFile: try r.string("duo", "skey_file"))
        do {
            duo = try credentials.configuration { field in
                switch field {
                case .apiURL: "duo.api_url"
                case .apiHost: "duo.api_host"
                case .ikey: "duo.ikey"
                case .skey: "duo.skey"
                case .skeyFile: "duo.skey_file"
                }
            }
        } catch {
            throw Problem(error.description)
        }
        if let s = try r.string("duo", "signature") {
            guard let scheme = DuoSignatureScheme(rawValue: s) else { throw Problem("duo.signature must be v5, v2 or v2-sha1, got '\(s)'") }
            duo.signature = scheme
        }
        duo.requestsPerSecond = try r.double("duo", "requests_per_second", in: 0.01...1_000_000) ?? 10
        duo.maxConcurrency = try r.int("duo", "max_concurrency", in: 1...1024) ?? 8
        duo.requestTimeout = try r.duration("duo", "timeout") ?? .seconds(30)
        // The dispatcher schedules retries itself, so a retry never holds a concurrency slot.
        duo.retry = .disabled
        let duoBulk = try r.bool("duo", "bulk") ?? true
        // Commands at once, not Duo calls (those stay at duo.max_concurrency): a command waiting
        // for Duo holds no connection, and waiting ones share bulk requests. 64 kept leavers'
        // lockouts within their bounds while raising events/s 1.4x unthrottled and 6x at 50 ms
        // Duo latency (BENCHMARKS.md, issue 17's fifth pass).
        w.maxConcurrency = try r.int("worker", "max_concurrency", in: 1...1024) ?? WorkerConfiguration.defaultMaxConcurrency(duo: duo.maxConcurrency)

        // Mapping
        var roles: [String: [String]] = [:]
        if let raw = try r.value("mapping", "roles") {
            guard let map = raw as? [String: Any] else { throw Problem("mapping.roles must map each role to a list of Duo group names") }
            for (role, groups) in map {
                if let one = groups as? String { roles[role] = [one]; continue }
                guard let list = groups as? [String] else { throw Problem("mapping.roles.\(role) must be a list of Duo group names") }
                roles[role] = list
            }
        }
        w.mapping = MappingPolicy(roles: roles)
        if let s = try r.string("mapping", "unmapped_roles") {
            guard let v = MappingPolicy.UnmappedRoles(rawValue: s) else { throw Problem("mapping.unmapped_roles must be ignore or reject, got '\(s)'") }
            w.mapping.unmappedRoles = v
        }
        if let s = try r.string("mapping", "username_from") {
            guard let v = MappingPolicy.UsernameSource(rawValue: s) else {
                throw Problem("mapping.username_from must be email_local_part, email or employee_id, got '\(s)'")
            }
            w.mapping.usernameSource = v
        }
        w.mapping.createMissingGroups = try r.bool("mapping", "create_missing_groups") ?? true

        // Termination
        if let s = try r.string("termination", "action") {
            guard let v = TerminationPolicy.Action(rawValue: s) else { throw Problem("termination.action must be disable, delete or trash, got '\(s)'") }
            w.termination.action = v
        }
        w.termination.deleteAfter = try r.duration("termination", "delete_after") ?? w.termination.deleteAfter
        w.termination.removeManagedGroups = try r.bool("termination", "remove_managed_groups") ?? false
        w.termination.honorEffectiveAt = try r.bool("termination", "honor_effective_at") ?? true

        // Retry
        w.retry = CommandRetryPolicy(base: try r.duration("retry", "base") ?? .seconds(1), max: try r.duration("retry", "max") ?? .seconds(300),
                                     maxAge: try r.duration("retry", "max_age") ?? .seconds(86_400), maxAttempts: try r.int("retry", "max_attempts", in: 1...1_000_000))
        w.outboxRetention = try r.duration("worker", "outbox_retention") ?? w.outboxRetention
        w.commandLease = try r.duration("worker", "command_lease") ?? w.commandLease
        guard w.commandLease >= .seconds(3) else { throw Problem("worker.command_lease must be at least 3s") }
        if let id = try r.string("worker", "id") {
            guard !id.isEmpty, id.count <= 200 else { throw Problem("worker.id must be 1 to 200 characters") }
            w.workerID = id
        }
        w.staticMembership = try r.bool("kafka", "static_membership") ?? false
        let maxDisables = try r.int("guard", "max_disables", in: 1...10_000_000)
        let maxPercent = try r.double("guard", "max_percent", in: 0.01...100)
        if maxDisables != nil || maxPercent != nil {
            w.massDeprovisionGuard = MassDeprovisionGuard(maxDisables: maxDisables, maxPercent: maxPercent, window: try r.duration("guard", "window") ?? .seconds(600))
            guard w.massDeprovisionGuard!.window >= .seconds(1) else { throw Problem("guard.window must be at least 1s") }
        } else if try r.duration("guard", "window") != nil {
            throw Problem("guard.window needs guard.max_disables or guard.max_percent")
        }
        pipeline = w

        storePath = try r.string("store", "path") ?? "./.duo-lifecycle/state.sqlite"
        postgres = nil
        if let url = try r.string("store", "url") {
            if url.hasPrefix("sqlite://") {
                guard try r.string("store", "path") == nil else { throw Problem("store.url and store.path both name the store: keep one") }
                let path = String(url.dropFirst("sqlite://".count))
                guard !path.isEmpty else { throw Problem("store.url sqlite:// needs a path: sqlite:///var/lib/duo-lifecycle/state.sqlite") }
                storePath = path
            } else {
                var pg: PostgresStoreConfiguration
                do { pg = try PostgresStoreConfiguration(url: url) } catch {
                    throw Problem("store.url: \(error.description) (expected postgres://user@host:5432/database?sslmode=require or sqlite:///path)")
                }
                if let file = try r.string("store", "password_file") {
                    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                        throw Problem("store.password_file: cannot read \(file)")
                    }
                    pg.password = text.trimmingCharacters(in: .newlines)
                }
                pg.caFile = try r.string("store", "tls_ca_file") ?? pg.caFile
                pg.poolSize = try r.int("store", "pool_size", in: 2...200) ?? pg.poolSize
                pg.statementTimeout = try r.duration("store", "statement_timeout") ?? pg.statementTimeout
                guard pg.statementTimeout >= .milliseconds(100) else { throw Problem("store.statement_timeout must be at least 100ms") }
                postgres = pg
            }
        }
        storeRetention = try r.duration("store", "retention") ?? .seconds(30 * 86400)
        guard storeRetention >= .seconds(3600) else { throw Problem("store.retention must be at least 1h (deduplication needs the inbox)") }
        httpPort = try r.int("http", "port", in: 0...65535) ?? 8080
        httpHost = try r.string("http", "host") ?? "0.0.0.0"
        shutdownTimeout = try r.duration("worker", "shutdown_timeout") ?? .seconds(30)
        logLevel = try r.string("log", "level") ?? "info"
        logFormat = try r.string("log", "format") ?? "json"
        guard ["json", "text"].contains(logFormat) else { throw Problem("log.format must be json or text") }
        ingress = try Self.ingress(r, kafka: kafka, lifecycleTopics: w.lifecycleTopics)
        var rc = ReconcileConfiguration()
        rc.every = try r.duration("reconcile", "every")
        if let every = rc.every, every < .seconds(60) { throw Problem("reconcile.every must be at least 1m (or absent: off)") }
        rc.fix = try r.bool("reconcile", "fix") ?? false
        rc.enrollmentGrace = try r.duration("reconcile", "enrollment_grace") ?? rc.enrollmentGrace
        rc.dormantAfter = try r.duration("reconcile", "dormant_after") ?? rc.dormantAfter
        rc.disableOrphans = try r.bool("reconcile", "disable_orphans") ?? false
        rc.allowlistUsernames = try r.stringList("reconcile", "allowlist_usernames") ?? []
        rc.allowlistGroups = try r.stringList("reconcile", "allowlist_groups") ?? []
        rc.findingsTopic = try r.string("reconcile", "findings_topic") ?? rc.findingsTopic
        rc.reportTopic = try r.string("reconcile", "report_topic") ?? rc.reportTopic
        reconcile = rc
        console = try Self.console(r)
        self.duoBulk = duoBulk
    }

    static func console(_ r: Reader) throws -> ConsoleConfiguration {
        var c = ConsoleConfiguration()
        c.enabled = try r.bool("console", "enabled") ?? false
        func credentials(_ key: String, role: String) throws -> [ConsoleCredential] {
            guard let file = try r.string("console", key) else { return [] }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw Problem("console.\(key): cannot read \(file)") }
            return try text.split(whereSeparator: \.isNewline).enumerated().compactMap { (n, raw) -> ConsoleCredential? in
                let line = raw.trimmingCharacters(in: .whitespaces)
                guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
                // "name:token", or a bare token recorded under the role's name.
                let parts = line.split(separator: ":", maxSplits: 1).map(String.init)
                let (name, secret) = parts.count == 2 ? (parts[0], parts[1]) : (role, parts[0])
                guard secret.count >= 16 else {
                    throw Problem("console.\(key): the token on line \(n + 1) of \(file) is shorter than 16 characters")
                }
                return ConsoleCredential(name: name, secret: secret)
            }
        }
        c.operatorTokens = try credentials("token_file", role: "operator")
        c.readonlyTokens = try credentials("readonly_token_file", role: "readonly")
        c.trustedHeader = try r.string("console", "trusted_header")
        c.trustedOperators = Set(try r.stringList("console", "trusted_operators") ?? [])
        c.auditTopic = try r.string("console", "audit_topic") ?? c.auditTopic
        c.sessionTTL = try r.duration("console", "session_ttl") ?? c.sessionTTL
        if c.enabled && c.operatorTokens.isEmpty && c.readonlyTokens.isEmpty && c.trustedHeader == nil {
            throw Problem("console.enabled needs a way to log in: console.token_file, console.readonly_token_file or console.trusted_header")
        }
        return c
    }

    /// Typed access to the parsed tree, with errors that name the key.
    struct Reader {
        let tree: [String: Any]

        func value(_ section: String, _ key: String) throws -> Any? {
            let v = (tree[section] as? [String: Any])?[key]
            return v is NSNull ? nil : v
        }

        func string(_ section: String, _ key: String) throws -> String? {
            guard let v = try value(section, key) else { return nil }
            if let s = v as? String { return s }
            if let n = v as? Int { return String(n) }
            throw Problem("\(section).\(key) must be a string")
        }

        func int(_ section: String, _ key: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let v = try value(section, key) else { return nil }
            let n = (v as? Int) ?? (v as? String).flatMap { Int($0) }
            guard let n, range.contains(n) else {
                throw Problem("\(section).\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(v)'")
            }
            return n
        }

        func double(_ section: String, _ key: String, in range: ClosedRange<Double>) throws -> Double? {
            guard let v = try value(section, key) else { return nil }
            let n = (v as? Double) ?? (v as? Int).map(Double.init) ?? (v as? String).flatMap { Double($0) }
            guard let n, n.isFinite, range.contains(n) else {
                throw Problem("\(section).\(key) must be a number from \(range.lowerBound) to \(range.upperBound), got '\(v)'")
            }
            return n
        }

        func bool(_ section: String, _ key: String) throws -> Bool? {
            guard let v = try value(section, key) else { return nil }
            if let b = v as? Bool { return b }
            if let s = v as? String, ["true", "false"].contains(s.lowercased()) { return s.lowercased() == "true" }
            throw Problem("\(section).\(key) must be true or false")
        }

        func stringList(_ section: String, _ key: String) throws -> [String]? {
            guard let v = try value(section, key) else { return nil }
            if let s = v as? String { return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            guard let list = v as? [String] else { throw Problem("\(section).\(key) must be a list of strings") }
            return list
        }

        func stringMap(_ section: String, _ key: String) throws -> [String: String] {
            guard let v = try value(section, key) else { return [:] }
            guard let map = v as? [String: Any] else { throw Problem("\(section).\(key) must be a mapping") }
            return map.mapValues { "\($0)" }
        }

        func duration(_ section: String, _ key: String) throws -> Duration? {
            guard let v = try value(section, key) else { return nil }
            let text = (v as? String) ?? (v as? Int).map { "\($0)s" } ?? ""
            guard let d = WorkerConfiguration.parseDuration(text) else {
                throw Problem("\(section).\(key) must be a duration such as 500ms, 30s, 5m, 24h or 30d, got '\(v)'")
            }
            return d
        }
    }

    /// The longest duration any setting takes: ten years.
    static let longestDuration: Double = 3650 * 86400

    /// `500ms`, `30s`, `5m`, `24h`, `30d`: a finite, non-negative amount of at most ten years.
    public static func parseDuration(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count)), n.isFinite, n >= 0, n * scale <= longestDuration else { return nil }
            return .milliseconds(Int64(n * scale * 1000))
        }
        return nil
    }

    /// Where a YAML syntax error is and what it is, naming the key on that line but never showing
    /// a value: the parser's own message quotes the offending lines, and one may hold the secret.
    static func syntaxError(_ error: any Error, in text: String) -> String {
        var problem = "it cannot be parsed"
        var line: Int?
        var column: Int?
        if let yaml = error as? YamlError {
            switch yaml {
            case let .scanner(context, p, mark, _), let .parser(context, p, mark, _), let .composer(context, p, mark, _):
                // The context (for example "while scanning a quoted scalar") marks where the bad value starts.
                problem = [context?.text, p].compactMap { $0 }.joined(separator: ": ")
                line = context?.mark.line ?? mark.line
                column = context?.mark.column ?? mark.column
            case let .duplicatedKeysInMapping(duplicates, context):
                problem = "duplicated keys \(duplicates.joined(separator: ", "))"
                line = context.mark.line
                column = context.mark.column
            default:
                break
            }
        }
        var message = "The configuration is not valid YAML"
        if let line, let column {
            message += " at line \(line), column \(column)"
            if let key = keyPath(atLine: line, in: text) { message += " (\(key))" }
        }
        return message + ": \(problem). Values are not shown, as they may be secret."
    }

    /// `section.key` for the key written on a line of a configuration file.
    static func keyPath(atLine line: Int, in text: String) -> String? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard line >= 1, line <= lines.count else { return nil }
        func key(_ l: Substring) -> String? {
            guard let colon = l.firstIndex(of: ":") else { return nil }
            let k = l[..<colon].trimmingCharacters(in: .whitespaces)
            return k.isEmpty || k.hasPrefix("#") ? nil : k
        }
        let here = lines[line - 1]
        guard let name = key(here) else { return nil }
        guard here.first == " " || here.first == "\t" else { return name }
        let section = lines[..<(line - 1)].last { !$0.isEmpty && $0.first != " " && $0.first != "\t" && $0.first != "#" }.flatMap(key)
        return section.map { "\($0).\(name)" } ?? name
    }
}

/// The `reconcile:` section.
public struct ReconcileConfiguration: Sendable {
    /// How often `run` audits by itself; nil (the default) never.
    public var every: Duration?
    /// Whether the scheduled audit also fixes what it finds (as `reconcile --fix`). Default: false.
    public var fix = false
    /// An active user not enrolled this long after creation is reported. Default: 7 days.
    public var enrollmentGrace: Duration = .seconds(7 * 86400)
    /// An enrolled user without a login this long is reported dormant. Default: 90 days.
    public var dormantAfter: Duration = .seconds(90 * 86400)
    /// Whether fixing disables orphaned accounts. Default: false (reported for review).
    public var disableOrphans = false
    /// Usernames (glob patterns) and groups of accounts that may exist without an employee.
    public var allowlistUsernames: [String] = []
    public var allowlistGroups: [String] = []
    /// Where findings (one event each) and the run's report go.
    public var findingsTopic = "duo.directory.findings.v1"
    public var reportTopic = "duo.directory.reconciled.v1"

    public init() {}
}

/// The `console:` section: the operations console's logins.
public struct ConsoleConfiguration: Sendable {
    public var enabled = false
    /// Operators may replay dead letters and approve or reject held deprovisions.
    public var operatorTokens: [ConsoleCredential] = []
    /// Read-only users see everything and change nothing.
    public var readonlyTokens: [ConsoleCredential] = []
    /// Behind an authenticating (OIDC) proxy: the request header that carries the user's name.
    /// Only for a port that nothing but the proxy can reach.
    public var trustedHeader: String?
    /// Users named by the trusted header who are operators; every other one is read-only.
    public var trustedOperators: Set<String> = []
    /// Where every console action is published as an audit event.
    public var auditTopic = "duo.lifecycle.audit.v1"
    /// How long a console login lasts.
    public var sessionTTL: Duration = .seconds(8 * 3600)

    public init() {}
}

/// A console login: the name actions are recorded under, and its secret token.
public struct ConsoleCredential: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var secret: String

    public init(name: String, secret: String) {
        self.name = name
        self.secret = secret
    }

    /// Never the secret.
    public var description: String { "\(name):<redacted>" }
}
