import Foundation
import Lifecycle
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// Where a shared PostgreSQL store is and how to reach it.
public struct PostgresStoreConfiguration: Sendable {
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS if the server offers it.
        case prefer
        /// TLS, without checking the server's certificate.
        case require
        /// TLS, checking the certificate against `caFile` (or the system's roots) and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var caFile: String?
    /// The most connections one worker opens.
    public var poolSize: Int
    /// The server cancels a statement that runs longer.
    public var statementTimeout: Duration

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String, tls: TLSMode = .disable,
                caFile: String? = nil, poolSize: Int = 10, statementTimeout: Duration = .seconds(10)) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
        self.poolSize = poolSize
        self.statementTimeout = statementTimeout
    }

    /// Reads `postgres://user[:password]@host[:port]/database[?sslmode=…]` (also `postgresql://`).
    /// `sslmode` takes libpq's names: disable, prefer, require, verify-full (verify-ca counts as verify-full).
    public init(url: String) throws(StoreURLError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
              scheme == "postgres" || scheme == "postgresql" else {
            throw StoreURLError("not a postgres:// URL")
        }
        guard let host = components.host, !host.isEmpty else { throw StoreURLError("the URL names no host") }
        guard let user = components.user, !user.isEmpty else { throw StoreURLError("the URL names no user (postgres://USER@host/db)") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw StoreURLError("the URL names no database (postgres://user@host/DATABASE)") }
        var tls = TLSMode.disable
        if let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value {
            switch mode {
            case "disable", "allow": tls = .disable
            case "prefer": tls = .prefer
            case "require": tls = .require
            case "verify-ca", "verify-full": tls = .verifyFull
            default: throw StoreURLError("sslmode \(mode) is not one of disable, prefer, require, verify-full")
            }
        }
        self.init(host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
                  password: components.password.map { $0.removingPercentEncoding ?? $0 }, database: database, tls: tls)
        caFile = components.queryItems?.first(where: { $0.name == "sslrootcert" })?.value
    }

    /// The configuration as a URL (password included, percent-encoded), for another process.
    public var url: String {
        var c = URLComponents()
        c.scheme = "postgres"
        c.user = username
        c.password = password
        c.host = host
        c.port = port
        c.path = "/" + database
        c.queryItems = [URLQueryItem(name: "sslmode", value: tls.rawValue)] + (caFile.map { [URLQueryItem(name: "sslrootcert", value: $0)] } ?? [])
        return c.string ?? redactedDescription
    }

    /// The URL without its password, for logs.
    public var redactedDescription: String {
        "postgres://\(username)\(password == nil ? "" : ":[redacted]")@\(host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }
}

extension PostgresStoreConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Printed, logged or dumped, the configuration never shows its password.
    public var description: String { redactedDescription }
    public var debugDescription: String { redactedDescription }
    public var customMirror: Mirror { Mirror(self, children: ["url": redactedDescription]) }
}

/// A store URL that cannot be used.
public struct StoreURLError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The shared store in PostgreSQL, for any number of replicas.
///
/// Replicas compete for commands the way Postgres job queues do (River, Oban, GoodJob): a claim
/// takes ready rows `FOR UPDATE SKIP LOCKED`, most urgent first, and locks each employee with a
/// transaction-scoped advisory lock, so at most one command per employee runs anywhere (a unique
/// partial index makes that a constraint). Each claim bumps the command's fencing token; only the
/// holder of the current token may record an outcome, and a worker checks its lease before every
/// Duo write. Employees' state, identity links and the inbox are shared, so whichever replica
/// ingests an employee's next event sees the whole history.
public final class PostgresLifecycleStore: LifecycleStore {
    public let configuration: PostgresStoreConfiguration
    let logger: Logger
    private let clientConfiguration: PostgresClient.Configuration
    /// The connection pool, replaced when an operation gets no answer in time (see ``bounded(_:)``).
    private let pool: Mutex<(client: PostgresClient, runTask: Task<Void, Never>, generation: Int)?>
    private let localLock = AsyncWriteLock()
    /// How long one store operation may take before it fails and the pool is replaced: well
    /// beyond any statement's timeout, so only an operation stuck on a dead connection reaches it.
    let operationDeadline: Duration

    var client: PostgresClient {
        get throws {
            guard let client = pool.withLock({ $0?.client }) else { throw StoreUnavailable("The store is closed") }
            return client
        }
    }


    /// Connects and migrates the schema (under an advisory lock, so replicas starting together
    /// migrate once). Waits up to `connectTimeout` for the server.
    public init(configuration: PostgresStoreConfiguration, logger: Logger, connectTimeout: Duration = .seconds(30)) async throws {
        self.configuration = configuration
        self.logger = logger
        let tls: PostgresClient.Configuration.TLS
        switch configuration.tls {
        case .disable: tls = .disable
        case .prefer, .require:
            var t = TLSConfiguration.makeClientConfiguration()
            t.certificateVerification = .none
            tls = configuration.tls == .prefer ? .prefer(t) : .require(t)
        case .verifyFull:
            var t = TLSConfiguration.makeClientConfiguration()
            if let ca = configuration.caFile { t.trustRoots = .file(ca) }
            t.certificateVerification = .fullVerification
            tls = .require(t)
        }
        var config = PostgresClient.Configuration(host: configuration.host, port: configuration.port, username: configuration.username,
                                                  password: configuration.password, database: configuration.database, tls: tls)
        config.options.maximumConnections = max(2, configuration.poolSize)
        config.options.minimumConnections = 1
        config.options.additionalStartupParameters = [
            ("statement_timeout", "\(Int64(configuration.statementTimeout / .milliseconds(1)))"),
            // A replica paused or cut off in the middle of a transaction must not hold the locks
            // others need (an employee, a link, a command) for longer than this: the server ends
            // its session. No transaction here waits on anything but the database between statements.
            ("idle_in_transaction_session_timeout", "\(Int64(Self.idleInTransactionTimeout / .milliseconds(1)))"),
            ("application_name", "duo-lifecycle"),
        ]
        clientConfiguration = config
        operationDeadline = max(.seconds(30), configuration.statementTimeout * 3)
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        pool = Mutex((client, Task { await client.run() }, 0))
        let deadline = ContinuousClock.now + connectTimeout
        while true {
            do {
                try await migrate()
                break
            } catch {
                if ContinuousClock.now >= deadline {
                    await close()
                    throw StoreUnavailable("Could not reach PostgreSQL at \(configuration.redactedDescription): \(String(reflecting: error))")
                }
                logger.notice("PostgreSQL not reachable yet; retrying", metadata: ["store": "\(configuration.redactedDescription)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Closes the pool, waiting up to 5 s for its connections to close (an operation abandoned on
    /// a dead connection would otherwise hold the shutdown).
    public func close() async {
        let task = pool.withLock { p -> Task<Void, Never>? in defer { p = nil }; return p?.runTask }
        task?.cancel()
        guard let task else { return }
        let deadline = ContinuousClock.now + .seconds(5)
        final class Finished: Sendable { let value = Mutex(false) }
        let finished = Finished()
        Task { await task.value; finished.value.withLock { $0 = true } }
        while !finished.value.withLock({ $0 }) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    }

    deinit { pool.withLock { $0?.runTask.cancel() } }

    /// Runs `operation` on the current pool, failing with ``StoreUnavailable`` if it takes longer
    /// than ``operationDeadline``. PostgresNIO can leave a query waiting forever on a connection
    /// the server closed under it (a database restart in the middle of a query); the caller then
    /// gets its error, the stuck operation is abandoned with its pool, and a new pool serves the
    /// next operations, so the worker carries on by itself.
    func bounded<T: Sendable>(_ operation: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        guard let (client, generation) = pool.withLock({ p in p.map { ($0.client, $0.generation) } }) else {
            throw StoreUnavailable("The store is closed")
        }
        let once = OnceFlag()
        let deadline = operationDeadline
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let timer = Task {
                guard (try? await Task.sleep(for: deadline)) != nil, once.claim() else { return }
                self.replacePool(generation: generation)
                continuation.resume(throwing: StoreUnavailable("No answer from PostgreSQL within \(deadline); reconnecting with a new pool"))
            }
            Task {
                do {
                    let value = try await Self.readableErrors { try await operation(client) }
                    if once.claim() { timer.cancel(); continuation.resume(returning: value) }
                } catch {
                    if once.claim() { timer.cancel(); continuation.resume(throwing: error) }
                }
            }
        }
    }

    private func replacePool(generation: Int) {
        let replaced = pool.withLock { p -> Bool in
            guard let current = p, current.generation == generation else { return false }
            current.runTask.cancel()
            let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
            p = (client, Task { await client.run() }, generation + 1)
            return true
        }
        if replaced { logger.error("A store operation got no answer in time; its connections are abandoned and a new pool is used") }
    }

    // MARK: Schema

    /// The migrations, in order; each runs once, in its own transaction.
    public static let migrations: [(version: Int, name: String, sql: [String])] = [
        (1, "tables", [
            """
            CREATE TABLE inbox (
                source TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
                "offset" BIGINT NOT NULL, received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (source, event_id))
            """,
            "CREATE INDEX inbox_received ON inbox (received_at)",
            "CREATE TABLE employees (employee_id TEXT PRIMARY KEY, state BYTEA NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
            """
            CREATE TABLE commands (
                id BIGSERIAL PRIMARY KEY, employee_id TEXT NOT NULL, state TEXT NOT NULL, priority BIGINT NOT NULL,
                command BYTEA NOT NULL, follow_up BOOLEAN NOT NULL DEFAULT false,
                src_topic TEXT NOT NULL, src_partition INTEGER NOT NULL, src_offset BIGINT NOT NULL, src_timestamp BIGINT,
                src_key BYTEA, src_value BYTEA, src_headers BYTEA NOT NULL, received_at DOUBLE PRECISION NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL, first_failure_at DOUBLE PRECISION,
                last_error TEXT, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                lease_until DOUBLE PRECISION, lease_token BIGINT, lease_owner TEXT, done_operations TEXT)
            """,
            "CREATE INDEX commands_ready ON commands (priority, next_attempt_at, id) WHERE state IN ('pending', 'retry')",
            "CREATE INDEX commands_employee ON commands (employee_id, state)",
            // At most one command per employee runs, whichever replica claimed it.
            "CREATE UNIQUE INDEX commands_one_running ON commands (employee_id) WHERE state = 'running'",
            "CREATE INDEX commands_running_lease ON commands (lease_until) WHERE state = 'running'",
            "CREATE INDEX commands_finished ON commands (updated_at) WHERE state IN ('done', 'dead', 'superseded')",
            """
            CREATE TABLE outbox (
                id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, topic TEXT NOT NULL, key BYTEA, value BYTEA, headers BYTEA NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, sent_at DOUBLE PRECISION, parked_at DOUBLE PRECISION, park_reason TEXT,
                original_value BYTEA, claimed_until DOUBLE PRECISION)
            """,
            "CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL",
            "CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL",
            """
            CREATE TABLE duo_links (
                duo_user_id TEXT PRIMARY KEY, employee_id TEXT NOT NULL, username TEXT NOT NULL, linked_at DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX duo_links_employee ON duo_links (employee_id, linked_at)",
            "CREATE INDEX duo_links_username ON duo_links (lower(username))",
        ]),
        // Named locks are leases, not session advisory locks: a paused or partitioned holder's
        // lock expires, so it cannot stall every other replica (a termination included).
        (2, "named locks", [
            """
            CREATE TABLE named_locks (
                name TEXT PRIMARY KEY, token BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)
            """,
        ]),
        (3, "mass-deprovision guard", [
            "CREATE TABLE guard_disables (command_id BIGINT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX guard_disables_at ON guard_disables (at)",
        ]),
        (4, "operator audit trail", [
            """
            CREATE TABLE audit_log (
                id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
                action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL)
            """,
        ]),
    ]

    /// How long a named lock stays held without renewal; its holder renews it every third of that.
    public static let namedLockLease: Duration = .seconds(10)

    /// How long a session may sit in an open transaction doing nothing before the server ends it.
    public static let idleInTransactionTimeout: Duration = .seconds(5)

    /// An arbitrary constant: the advisory lock that serialises migrations across replicas.
    static let migrationLock: Int64 = 0x64756F6C6966

    /// The schema versions applied, in order.
    public func appliedMigrations() async throws -> [Int] {
        try await client.withConnection { conn in
            var versions: [Int] = []
            for try await v in try await conn.checkedQuery("SELECT version FROM duo_lifecycle_migrations ORDER BY version", logger: logger).decode(Int.self) {
                versions.append(v)
            }
            return versions
        }
    }

    private func migrate() async throws {
        try await client.withConnection { conn in
            _ = try await conn.checkedQuery("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger).collect()
            do {
                _ = try await conn.checkedQuery("""
                    CREATE TABLE IF NOT EXISTS duo_lifecycle_migrations (
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """, logger: logger).collect()
                var applied = Set<Int>()
                for try await v in try await conn.checkedQuery("SELECT version FROM duo_lifecycle_migrations", logger: logger).decode(Int.self) {
                    applied.insert(v)
                }
                for migration in Self.migrations where !applied.contains(migration.version) {
                    _ = try await conn.checkedQuery("BEGIN", logger: logger).collect()
                    do {
                        for statement in migration.sql { _ = try await conn.checkedQuery(PostgresQuery(unsafeSQL: statement), logger: logger).collect() }
                        _ = try await conn.checkedQuery("INSERT INTO duo_lifecycle_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                                                 logger: logger).collect()
                        _ = try await conn.checkedQuery("COMMIT", logger: logger).collect()
                    } catch {
                        await Self.rollback(conn, after: error, logger: logger)
                        throw error
                    }
                    logger.info("Store migrated", metadata: ["version": "\(migration.version)", "migration": "\(migration.name)"])
                }
            } catch {
                _ = try? await conn.checkedQuery("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                throw error
            }
            _ = try await conn.checkedQuery("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
        }
    }

    // MARK: Transactions

    /// 500, as the Kafka layer's default. An ingest transaction holds two advisory locks per event
    /// (its own and its employee's) until it commits, and every replica's count against the
    /// server's shared lock table (`max_locks_per_transaction` × connections; see the README).
    public var ingestBatchSize: Int { 500 }

    /// Whether an ingest transaction reads and writes its batch at once (``Transaction/prefetch(_:)``,
    /// ``Transaction/insertIngested(_:)``), as it always does but in a test that holds this to the
    /// outcome of going event by event.
    let batchesAtOnce = Atomic<Bool>(true)

    public func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T {
        let logger = logger, batched = batchesAtOnce.load(ordering: .relaxed)
        return try await inTransaction { conn in try await body(Transaction(conn: conn, logger: logger, batched: batched)) }
    }

    private func inTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = logger
        return try await bounded { client in try await client.withConnection { conn in
            _ = try await conn.checkedQuery("BEGIN", logger: logger).collect()
            do {
                let result = try await body(conn)
                _ = try await conn.checkedQuery("COMMIT", logger: logger).collect()
                return result
            } catch {
                await Self.rollback(conn, after: error, logger: logger)
                throw error
            }
        } }
    }

    /// Ends a failed transaction. On a connection the server or the network closed, a ROLLBACK
    /// would wait for an answer that never comes: that connection is closed instead (the server
    /// has rolled the transaction back), and the pool replaces it.
    static func rollback(_ conn: PostgresConnection, after error: any Error, logger: Logger) async {
        let connectionLost: Bool
        if let psql = error as? PSQLError {
            connectionLost = psql.serverInfo == nil
                || psql.serverInfo?[.sqlState].map { $0.hasPrefix("08") || $0.hasPrefix("57P") } == true
        } else {
            connectionLost = false
        }
        if connectionLost || conn.isClosed {
            try? await conn.close()
        } else {
            _ = try? await conn.checkedQuery("ROLLBACK", logger: logger).collect()
        }
    }

    /// Runs one statement (or a few) on a pooled connection, outside an explicit transaction.
    private func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await bounded { client in try await client.withConnection { conn in try await body(conn) } }
    }

    /// PostgresNIO's errors describe themselves generically (to keep query data out of logs):
    /// this says what failed — the kind, and the server's SQLSTATE and message — without the query.
    static func readableErrors<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as PSQLError {
            var parts = ["PostgreSQL \(error.code)"]
            if let state = error.serverInfo?[.sqlState] { parts.append("SQLSTATE \(state)") }
            if let message = error.serverInfo?[.message] { parts.append(message) }
            if let underlying = error.underlying { parts.append("\(underlying)") }
            throw StoreUnavailable(parts.joined(separator: ": "))
        }
    }

    /// One task of this process at a time goes for a named lock; it tries the advisory lock and,
    /// while another replica holds it, gives its connection back and tries again shortly. A task
    /// never waits for a lock while holding a pooled connection, so the body (which may use the
    /// store itself) cannot find the pool exhausted by waiters.
    /// Runs `body` while holding the lock `name` against every replica sharing the database.
    ///
    /// The lock is a lease in `named_locks`, renewed while `body` runs. A holder that stops
    /// renewing (paused, cut off, killed) loses it after ``namedLockLease``, so it never stalls
    /// the others; the fenced Duo writes inside `body` check their own command lease too.
    public func withExclusiveLock<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        try await localLock.withLock {
            let token = try await acquireNamedLock(name)
            let lease = Self.namedLockLease
            let renewal = Task { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: lease / 3)
                    if Task.isCancelled { return }
                    let until = Date().addingTimeInterval(lease / .seconds(1)).timeIntervalSince1970
                    do {
                        let renewed = try await run { conn in
                            try await conn.checkedQuery("""
                                UPDATE named_locks SET expires_at = \(until) WHERE name = \(name) AND token = \(token) RETURNING token
                                """, logger: self.logger).collect().count
                        }
                        if renewed == 0 { logger.warning("Named lock lost before its work finished", metadata: ["lock": "\(name)"]); return }
                    } catch {
                        logger.warning("Could not renew a named lock", metadata: ["lock": "\(name)", "error": "\(error)"])
                    }
                }
            }
            defer { renewal.cancel() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            // Released by expiring it; the token only ever grows, so a stale holder's release
            // can never end a later holder's lock.
            _ = try? await run { conn in
                try await conn.checkedQuery("UPDATE named_locks SET expires_at = 0 WHERE name = \(name) AND token = \(token)",
                                     logger: self.logger).collect()
            }
            return try result.get()
        }
    }

    /// Takes the named lock once it is free or its holder's lease has run out; its fencing token.
    private func acquireNamedLock(_ name: String) async throws -> Int64 {
        while true {
            let now = Date()
            let until = now.addingTimeInterval(Self.namedLockLease / .seconds(1)).timeIntervalSince1970
            let token: Int64? = try await run { conn in
                try await conn.checkedQuery("""
                    INSERT INTO named_locks (name, token, expires_at) VALUES (\(name), 1, \(until))
                    ON CONFLICT (name) DO UPDATE SET token = named_locks.token + 1, expires_at = EXCLUDED.expires_at
                    WHERE named_locks.expires_at < \(now.timeIntervalSince1970)
                    RETURNING token
                    """, logger: self.logger).collect().first?.decode(Int64.self)
            }
            if let token { return token }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    public func recoverRunning(owner: String) async throws -> Int {
        try await run { conn in
            try await conn.checkedQuery("""
                UPDATE commands SET state = 'pending', lease_owner = NULL, updated_at = \(Date().timeIntervalSince1970)
                WHERE state = 'running' AND lease_owner = \(owner) RETURNING id
                """, logger: self.logger).collect().count
        }
    }

    public func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner: String) async throws -> [StoredCommand] {
        let t = now.timeIntervalSince1970
        return try await inTransaction { conn in
            // Ready rows, most urgent first, skipping rows another replica is claiming right now.
            // Two queries, each walking an index in claim order and stopping: as one query with an
            // OR, PostgreSQL read and sorted every waiting command for each claim (380 ms behind
            // 15,000, spilling the sort to disk).
            let expired = try await conn.checkedQuery(Self.claimQuery(Self.claimQueries.expired, priority: priority, now: t, limit: limit * 4),
                                                      logger: self.logger).collect()
            let waiting = try await conn.checkedQuery(Self.claimQuery(Self.claimQueries.waiting, priority: priority, now: t, limit: limit * 4),
                                                      logger: self.logger).collect()
            let candidates = try (expired + waiting).map(Self.command).sorted {
                ($0.command.priority.rawValue, $0.nextAttemptAt, $0.id) < ($1.command.priority.rawValue, $1.nextAttemptAt, $1.id)
            }
            var seen = Set<String>()
            var claimed: [StoredCommand] = []
            for command in candidates where claimed.count < limit {
                let employee = command.command.employeeID
                guard seen.insert(employee).inserted else { continue }
                // Another replica claiming this employee's commands right now holds the lock: skip
                // it. Holding it, look again with a fresh snapshot: a claim committed since the
                // query above shows up now.
                let locked = try await conn.checkedQuery("SELECT pg_try_advisory_xact_lock(hashtextextended(\(employee), 7))", logger: self.logger)
                    .collect().first?.decode(Bool.self) ?? false
                guard locked else { continue }
                let others = try await conn.checkedQuery("""
                    SELECT id FROM commands WHERE employee_id = \(employee) AND state = 'running' AND id <> \(command.id)
                    """, logger: self.logger).collect()
                guard others.isEmpty else { continue }
                // An expired claim goes before its employee's newer commands; a waiting command
                // goes only if no older one of its employee is running.
                let token = (command.leaseToken ?? 0) + 1
                _ = try await conn.checkedQuery("""
                    UPDATE commands SET state = 'running', lease_until = \(t + lease / .seconds(1)), lease_token = \(token),
                      lease_owner = \(owner), updated_at = \(t) WHERE id = \(command.id)
                    """, logger: self.logger).collect()
                var running = command
                running.state = .running
                running.leaseToken = token
                claimed.append(running)
            }
            return claimed
        }
    }

    public func renewLeases(_ leases: [CommandLease], until: Date, now: Date) async throws -> Set<Int64> {
        guard !leases.isEmpty else { return [] }
        let renewed = try await run { conn in
            var ids = Set<Int64>()
            let rows = try await conn.checkedQuery("""
                UPDATE commands c SET lease_until = \(until.timeIntervalSince1970)
                FROM unnest(\(leases.map(\.commandID)), \(leases.map(\.token))) AS l(id, token)
                WHERE c.id = l.id AND c.lease_token = l.token AND c.state = 'running' AND c.lease_until >= \(now.timeIntervalSince1970)
                RETURNING c.id
                """, logger: self.logger)
            for try await id in rows.decode(Int64.self) { ids.insert(id) }
            return ids
        }
        return Set(leases.map(\.commandID)).subtracting(renewed)
    }

    public func holdsLease(_ lease: CommandLease, now: Date, margin: Duration) async throws -> Bool {
        try await run { conn in
            try await !conn.checkedQuery("""
                SELECT 1 FROM commands WHERE id = \(lease.commandID) AND state = 'running' AND lease_token = \(lease.token)
                  AND lease_until >= \(now.timeIntervalSince1970 + margin / .seconds(1))
                """, logger: self.logger).collect().isEmpty
        }
    }

    /// The claim's two queries ($1 the lowest priority taken, $2 now, $3 how many rows), each
    /// walking an index in claim order and stopping, whatever the backlog (a test holds their
    /// plans to that): running commands whose lease has expired, and waiting commands whose time
    /// has come and whose employee has none running.
    public static let claimQueries = (
        expired: """
            SELECT * FROM commands c
            WHERE c.priority <= $1 AND c.state = 'running' AND COALESCE(c.lease_until, 0) < $2
            ORDER BY c.priority, c.next_attempt_at, c.id
            LIMIT $3
            FOR UPDATE SKIP LOCKED
            """,
        waiting: """
            SELECT * FROM commands c
            WHERE c.priority <= $1 AND c.state IN ('pending', 'retry') AND c.next_attempt_at <= $2
              AND NOT EXISTS (SELECT 1 FROM commands r WHERE r.employee_id = c.employee_id AND r.state = 'running')
            ORDER BY c.priority, c.next_attempt_at, c.id
            LIMIT $3
            FOR UPDATE SKIP LOCKED
            """
    )

    static func claimQuery(_ sql: String, priority: CommandPriority, now: Double, limit: Int) -> PostgresQuery {
        var binds = PostgresBindings()
        binds.append(Int64(priority.rawValue))
        binds.append(now)
        binds.append(Int64(limit))
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    /// PostgreSQL's plan for one of the claim's queries (or the next-due one), one line per node,
    /// after refreshing the table's statistics (as autovacuum would) so the plan is the one a
    /// running store gets.
    public func claimPlan(_ sql: String) async throws -> [String] {
        let query = sql == Self.nextDueSQL ? PostgresQuery(unsafeSQL: "EXPLAIN " + sql)
            : Self.claimQuery("EXPLAIN " + sql, priority: .normal, now: Date().timeIntervalSince1970, limit: 32)
        return try await run { conn in
            _ = try await conn.checkedQuery("ANALYZE commands", logger: self.logger).collect()
            return try await conn.checkedQuery(query, logger: self.logger).collect().map { try $0.decode(String.self) }
        }
    }

    public static let nextDueSQL = "SELECT MIN(m) FROM (" + CommandPriority.allCases.map {
        "SELECT MIN(next_attempt_at) AS m FROM commands WHERE state IN ('pending', 'retry') AND priority = \($0.rawValue)"
    }.joined(separator: " UNION ALL ") + ") AS due"

    public func nextReadyAt() async throws -> Date? {
        try await run { conn in
            // Every row stream is read to its end (collect): a stream left part-read would leave its
            // connection mid-query when it goes back to the pool.
            // One index lookup per priority (MIN over all waiting commands scanned them all).
            try await conn.checkedQuery(PostgresQuery(unsafeSQL: Self.nextDueSQL), logger: self.logger)
                .collect().first?.decode(Double?.self).map(Date.init(timeIntervalSince1970:))
        }
    }

    public func unsentOutbox(limit: Int, now: Date, claimFor: Duration) async throws -> [OutboxMessage] {
        let t = now.timeIntervalSince1970
        return try await run { conn in
            let rows = try await conn.checkedQuery("""
                UPDATE outbox SET claimed_until = \(t + claimFor / .seconds(1))
                WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL AND COALESCE(claimed_until, 0) < \(t)
                             ORDER BY id LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
                RETURNING id, kind, topic, key, value, headers, original_value, created_at
                """, logger: self.logger).collect()
            return try rows.map { row in
                let r = row.makeRandomAccess()
                return OutboxMessage(id: try r["id"].decode(Int64.self), message: NewOutboxMessage(
                    kind: OutboxKind(rawValue: try r["kind"].decode(String.self)) ?? .result, topic: try r["topic"].decode(String.self),
                    key: try r["key"].decode(Data?.self).map { Array($0) }, value: try r["value"].decode(Data?.self).map { Array($0) },
                    headers: try HeaderCoding.decode(try r["headers"].decode(Data.self)),
                    originalValue: try r["original_value"].decode(Data?.self).map { Array($0) }),
                    createdAt: Date(timeIntervalSince1970: try r["created_at"].decode(Double.self)))
            }.sorted { $0.id < $1.id }
        }
    }

    public func markSent(_ ids: [Int64], at: Date) async throws {
        guard !ids.isEmpty else { return }
        try await run { conn in
            _ = try await conn.checkedQuery("UPDATE outbox SET sent_at = \(at.timeIntervalSince1970) WHERE id = ANY(\(ids))", logger: self.logger).collect()
        }
    }

    public func park(_ id: Int64, reason: String, at: Date) async throws {
        try await run { conn in
            _ = try await conn.checkedQuery("UPDATE outbox SET parked_at = \(at.timeIntervalSince1970), park_reason = \(reason) WHERE id = \(id)",
                                     logger: self.logger).collect()
        }
    }

    public func purgeSent(before cutoff: Date) async throws -> Int {
        try await run { conn in
            try await conn.checkedQuery("""
                DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < \(cutoff.timeIntervalSince1970) AND original_value IS NULL RETURNING id
                """, logger: self.logger).collect().count
        }
    }

    public func purgeFinished(before cutoff: Date) async throws -> Int {
        let t = cutoff.timeIntervalSince1970
        return try await run { conn in
            var purged = try await conn.checkedQuery("DELETE FROM inbox WHERE received_at < \(t) RETURNING 1", logger: self.logger).collect().count
            _ = try await conn.checkedQuery("DELETE FROM guard_disables WHERE at < \(t)", logger: self.logger).collect()
            purged += try await conn.checkedQuery("""
                DELETE FROM commands WHERE state IN ('done', 'dead', 'superseded', 'rejected') AND updated_at < \(t) RETURNING id
                """, logger: self.logger).collect().count
            purged += try await conn.checkedQuery("""
                DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < \(t) AND original_value IS NOT NULL RETURNING id
                """, logger: self.logger).collect().count
            return purged
        }
    }

    public func statistics(now: Date) async throws -> StoreStatistics {
        try await run { conn in
            var byState: [CommandState: Int] = [.pending: 0, .retry: 0, .running: 0]
            for try await (state, n) in try await conn.checkedQuery("""
                SELECT state, COUNT(*) FROM commands WHERE state IN ('pending', 'retry', 'running') GROUP BY state
                """, logger: self.logger).decode((String, Int64).self) {
                if let s = CommandState(rawValue: state) { byState[s] = Int(n) }
            }
            var backlog = 0
            var oldest: Double?
            for try await (n, min) in try await conn.checkedQuery("""
                SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL
                """, logger: self.logger).decode((Int64, Double?).self) {
                backlog = Int(n)
                oldest = min
            }
            return StoreStatistics(commandsByState: byState, outboxBacklog: backlog,
                                   outboxOldestAge: oldest.map { max(0, now.timeIntervalSince1970 - $0) } ?? 0)
        }
    }

    public func deadLetterOriginal(topic: String, partition: Int32, offset: Int64) async throws -> [UInt8]? {
        try await run { conn in
            let rows = try await conn.checkedQuery("""
                SELECT headers, original_value FROM outbox WHERE kind = 'dead_letter' AND original_value IS NOT NULL
                """, logger: self.logger)
            for row in try await rows.collect() {
                let (headerData, original) = try row.decode((Data, Data).self)
                let headers = try HeaderCoding.decode(headerData)
                if let origin = DeadLetterOrigin(headers: headers), origin.topic == topic, origin.partition == partition, origin.offset == offset {
                    return Array(original)
                }
            }
            return nil
        }
    }

    public func allCommands() async throws -> [StoredCommand] {
        try await run { conn in try await conn.checkedQuery("SELECT * FROM commands ORDER BY id", logger: self.logger).collect().map(Self.command) }
    }

    public func allEmployeeStates() async throws -> [EmployeeState] {
        try await run { conn in
            try await conn.checkedQuery("SELECT state FROM employees ORDER BY employee_id", logger: self.logger).collect().map {
                try StateCoding.decodeState(try $0.makeRandomAccess()["state"].decode(Data.self))
            }
        }
    }

    public func auditLog(limit: Int) async throws -> [AuditEntry] {
        try await run { conn in
            try await conn.checkedQuery("SELECT at, actor, role, action, target, detail FROM audit_log ORDER BY id DESC LIMIT \(limit)", logger: self.logger)
                .collect().map {
                    let (at, actor, role, action, target, detail) = try $0.decode((Double, String, String, String, String, String).self)
                    return AuditEntry(at: Date(timeIntervalSince1970: at), actor: actor, role: role, action: action, target: target, detail: detail)
                }
        }
    }

    public func allDuoLinks() async throws -> [DuoLink] {
        try await run { conn in
            try await conn.checkedQuery("SELECT duo_user_id, employee_id, username FROM duo_links ORDER BY linked_at", logger: self.logger).collect().map {
                let r = $0.makeRandomAccess()
                return DuoLink(duoUserID: try r["duo_user_id"].decode(String.self), employeeID: try r["employee_id"].decode(String.self),
                               username: try r["username"].decode(String.self))
            }
        }
    }

    /// Creates an empty database beside the one `server` names (for tests and benchmarks) and
    /// returns the configuration that names it.
    public static func createDatabase(_ name: String, on server: PostgresStoreConfiguration, logger: Logger) async throws -> PostgresStoreConfiguration {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !name.isEmpty else {
            throw StoreURLError("a database name of letters, digits and underscores, got \(name)")
        }
        let client = PostgresClient(configuration: .init(host: server.host, port: server.port, username: server.username,
                                                         password: server.password, database: server.database, tls: .disable),
                                    backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        var configuration = server
        configuration.database = name
        return configuration
    }

    /// Counts the rows of one of the store's tables (`inbox`, `commands`, `outbox`…), for tools.
    public func count(_ table: String) async throws -> Int {
        guard ["inbox", "employees", "commands", "outbox", "duo_links"].contains(table) else { throw StoreURLError("no table \(table)") }
        return try await run { conn in
            Int(try await conn.checkedQuery(PostgresQuery(unsafeSQL: "SELECT COUNT(*) FROM \(table)"), logger: self.logger).collect().first?.decode(Int64.self) ?? 0)
        }
    }

    static func command(_ row: PostgresRow) throws -> StoredCommand {
        let r = row.makeRandomAccess()
        return StoredCommand(
            id: try r["id"].decode(Int64.self),
            command: try StateCoding.decodeCommand(try r["command"].decode(Data.self)),
            source: SourceRecord(topic: try r["src_topic"].decode(String.self), partition: try r["src_partition"].decode(Int32.self),
                                 offset: try r["src_offset"].decode(Int64.self), timestampMs: try r["src_timestamp"].decode(Int64?.self),
                                 key: try r["src_key"].decode(Data?.self).map { Array($0) }, value: try r["src_value"].decode(Data?.self).map { Array($0) },
                                 headers: try HeaderCoding.decode(try r["src_headers"].decode(Data.self)),
                                 receivedAt: Date(timeIntervalSince1970: try r["received_at"].decode(Double.self))),
            state: CommandState(rawValue: try r["state"].decode(String.self)) ?? .pending, attempts: Int(try r["attempts"].decode(Int64.self)),
            nextAttemptAt: Date(timeIntervalSince1970: try r["next_attempt_at"].decode(Double.self)),
            firstFailureAt: try r["first_failure_at"].decode(Double?.self).map(Date.init(timeIntervalSince1970:)),
            lastError: try r["last_error"].decode(String?.self), isFollowUp: try r["follow_up"].decode(Bool.self),
            createdAt: Date(timeIntervalSince1970: try r["created_at"].decode(Double.self)),
            doneOperations: (try r["done_operations"].decode(String?.self) ?? "").split(separator: ",").compactMap { DuoOperationKind(rawValue: String($0)) },
            leaseToken: try r["lease_token"].decode(Int64?.self))
    }

    /// One transaction on one pooled connection.
    struct Transaction: LifecycleStoreTransaction {
        let conn: PostgresConnection
        let logger: Logger
        /// See ``PostgresLifecycleStore/batchesAtOnce``.
        var batched = true

        private func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
            try await conn.checkedQuery(query, logger: logger).collect()
        }

        func inboxContains(source: String, id: String) async throws -> Bool {
            // Two replicas may ingest one record at once while its partition moves: the event is
            // locked until the transaction ends, so the second waits and then sees the first's row.
            _ = try await rows("SELECT pg_advisory_xact_lock(hashtextextended(\(source) || ' ' || \(id), 17))")
            return try await !rows("SELECT 1 FROM inbox WHERE source = \(source) AND event_id = \(id)").isEmpty
        }

        func recordInbox(source: String, id: String, topic: String, partition: Int32, offset: Int64, receivedAt: Date) async throws {
            _ = try await rows("""
                INSERT INTO inbox (source, event_id, topic, partition, "offset", received_at)
                VALUES (\(source), \(id), \(topic), \(partition), \(offset), \(receivedAt.timeIntervalSince1970))
                ON CONFLICT (source, event_id) DO UPDATE SET topic = excluded.topic, partition = excluded.partition,
                  "offset" = excluded."offset", received_at = excluded.received_at
                """)
        }

        func employeeState(_ employeeID: String) async throws -> EmployeeState? {
            // The employee stays locked until the transaction ends: two replicas (during a
            // rebalance, or an ingest beside a dispatch) never interleave one employee's changes.
            _ = try await rows("SELECT pg_advisory_xact_lock(hashtextextended(\(employeeID), 11))")
            guard let row = try await rows("SELECT state FROM employees WHERE employee_id = \(employeeID)").first else { return nil }
            return try StateCoding.decodeState(try row.makeRandomAccess()["state"].decode(Data.self))
        }

        func saveEmployeeState(_ state: EmployeeState) async throws {
            let encoded = StateCoding.encode(state)
            _ = try await rows("""
                INSERT INTO employees (employee_id, state, updated_at) VALUES (\(state.employeeID), \(encoded), \(Date().timeIntervalSince1970))
                ON CONFLICT (employee_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
                """)
        }

        func waitingCommand(employeeID: String) async throws -> StoredCommand? {
            try await rows("""
                SELECT * FROM commands WHERE employee_id = \(employeeID) AND state IN ('pending', 'retry') ORDER BY id DESC LIMIT 1
                """).first.map(PostgresLifecycleStore.command)
        }

        func waitingCommands(employeeID: String) async throws -> [StoredCommand] {
            try await rows("SELECT * FROM commands WHERE employee_id = \(employeeID) AND state IN ('pending', 'retry') ORDER BY id")
                .map(PostgresLifecycleStore.command)
        }

        func newestCommand(employeeID: String) async throws -> StoredCommand? {
            try await rows("SELECT * FROM commands WHERE employee_id = \(employeeID) ORDER BY id DESC LIMIT 1").first.map(PostgresLifecycleStore.command)
        }

        func insertCommand(_ c: NewCommand) async throws -> Int64 {
            let now = Date().timeIntervalSince1970
            let src = c.source
            let encoded = StateCoding.encode(c.command)
            let inserted = try await rows("""
                INSERT INTO commands (employee_id, state, priority, command, follow_up, next_attempt_at, created_at, updated_at,
                  src_topic, src_partition, src_offset, src_timestamp, src_key, src_value, src_headers, received_at)
                VALUES (\(c.command.employeeID), \(c.state.rawValue), \(Int64(c.command.priority.rawValue)), \(encoded), \(c.isFollowUp),
                  \(c.notBefore.timeIntervalSince1970), \(now), \(now), \(src.topic), \(src.partition), \(src.offset), \(src.timestampMs),
                  \(src.key.map { Data($0) }), \(src.value.map { Data($0) }), \(HeaderCoding.encode(src.headers)), \(src.receivedAt.timeIntervalSince1970))
                RETURNING id
                """)
            guard let row = inserted.first else { throw StoreUnavailable("INSERT INTO commands returned no id") }
            return try row.decode(Int64.self)
        }

        func updateCommand(id: Int64, state: CommandState, attempts: Int, nextAttemptAt: Date?, firstFailureAt: Date?, lastError: String?, now: Date) async throws {
            _ = try await rows("""
                UPDATE commands SET state = \(state.rawValue), attempts = \(Int64(attempts)),
                  next_attempt_at = COALESCE(\(nextAttemptAt?.timeIntervalSince1970), next_attempt_at),
                  first_failure_at = \(firstFailureAt?.timeIntervalSince1970), last_error = \(lastError), updated_at = \(now.timeIntervalSince1970)
                WHERE id = \(id)
                """)
        }

        func assertHolds(_ lease: CommandLease) async throws {
            // FOR UPDATE: no other claim can take the command until this transaction ends.
            let held = try await rows("""
                SELECT 1 FROM commands WHERE id = \(lease.commandID) AND state = 'running' AND lease_token = \(lease.token) FOR UPDATE
                """)
            if held.isEmpty { throw LeaseLost(lease) }
        }

        func addDoneOperations(commandID: Int64, _ operations: [DuoOperationKind]) async throws {
            guard !operations.isEmpty else { return }
            let added = operations.map(\.rawValue).joined(separator: ",")
            _ = try await rows("""
                UPDATE commands SET done_operations = CASE WHEN done_operations IS NULL OR done_operations = '' THEN \(added)
                  ELSE done_operations || ',' || \(added) END
                WHERE id = \(commandID)
                """)
        }

        func claimDuoUser(_ duoUserID: String, username: String, employeeID: String) async throws -> String? {
            // Insert or keep; the row locked by the upsert says who owns the user.
            let owner = try await rows("""
                INSERT INTO duo_links (duo_user_id, employee_id, username, linked_at)
                VALUES (\(duoUserID), \(employeeID), \(username), \(Date().timeIntervalSince1970))
                ON CONFLICT (duo_user_id) DO UPDATE SET username = CASE WHEN duo_links.employee_id = excluded.employee_id
                  THEN excluded.username ELSE duo_links.username END
                RETURNING employee_id
                """).first.map { try $0.decode(String.self) }
            return owner.flatMap { $0 == employeeID ? nil : $0 }
        }

        func reserveDisable(commandID: Int64, now: Date, window: Duration, limit: @Sendable (Int) -> Int) async throws -> Bool {
            // One reservation at a time across replicas, so the count cannot be overrun by a race.
            _ = try await rows("SELECT pg_advisory_xact_lock(\(Int64(0x6775617264)))")
            if try await !rows("SELECT 1 FROM guard_disables WHERE command_id = \(commandID)").isEmpty { return true }
            let since = now.timeIntervalSince1970 - window / .seconds(1)
            let recent = try await rows("SELECT count(*) FROM guard_disables WHERE at > \(since)").first?.decode(Int.self) ?? 0
            let managed = try await rows("SELECT count(*) FROM duo_links").first?.decode(Int.self) ?? 0
            guard recent < limit(managed) else { return false }
            _ = try await rows("INSERT INTO guard_disables (command_id, at) VALUES (\(commandID), \(now.timeIntervalSince1970))")
            return true
        }

        func recordAudit(_ e: AuditEntry) async throws {
            _ = try await rows("""
                INSERT INTO audit_log (at, actor, role, action, target, detail)
                VALUES (\(e.at.timeIntervalSince1970), \(e.actor), \(e.role), \(e.action), \(e.target), \(e.detail))
                """)
        }

        func approveDisable(commandID: Int64, now: Date) async throws {
            _ = try await rows("INSERT INTO guard_disables (command_id, at) VALUES (\(commandID), \(now.timeIntervalSince1970)) ON CONFLICT (command_id) DO NOTHING")
        }

        func linkedDuoUserIDs(employeeID: String) async throws -> [String] {
            try await rows("SELECT duo_user_id FROM duo_links WHERE employee_id = \(employeeID) ORDER BY linked_at DESC")
                .map { try $0.decode(String.self) }
        }

        func employeeLinked(toUsername username: String) async throws -> String? {
            try await rows("SELECT employee_id FROM duo_links WHERE lower(username) = lower(\(username)) LIMIT 1").first.map { try $0.decode(String.self) }
        }

        /// The batch's inbox entries, states, waiting commands and username links in five
        /// statements, where reading them event by event took seven round trips an event (ingest
        /// ran at about 400 events/s). The locks that ``inboxContains(source:id:)`` and
        /// ``employeeState(_:)`` take are taken first, for every event and employee of the batch,
        /// each set in the order of its keys, so two replicas' batches never wait on each other
        /// in a circle.
        func prefetch(_ request: IngestPrefetch.Request) async throws -> IngestPrefetch? {
            guard batched else { return nil }
            var found = IngestPrefetch()
            if !request.inbox.isEmpty {
                let sources = request.inbox.map(\.source), ids = request.inbox.map(\.id)
                _ = try await rows("""
                    SELECT pg_advisory_xact_lock(k) FROM (
                      SELECT DISTINCT hashtextextended(s || ' ' || i, 17) AS k FROM unnest(\(sources)::text[], \(ids)::text[]) AS u(s, i) ORDER BY k) AS keys
                    """)
                for row in try await rows("""
                    SELECT source, event_id FROM inbox WHERE (source, event_id) IN (SELECT s, i FROM unnest(\(sources)::text[], \(ids)::text[]) AS u(s, i))
                    """) {
                    let (source, id) = try row.decode((String, String).self)
                    found.inbox.insert(IngestPrefetch.InboxKey(source: source, id: id))
                }
            }
            let employees = Array(Set(request.employeeIDs))
            if !employees.isEmpty {
                _ = try await rows("""
                    SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(e, 11) AS k FROM unnest(\(employees)::text[]) AS e ORDER BY k) AS keys
                    """)
                for row in try await rows("SELECT employee_id, state FROM employees WHERE employee_id = ANY(\(employees)::text[])") {
                    let (employeeID, state) = try row.decode((String, Data).self)
                    found.states[employeeID] = try StateCoding.decodeState(state)
                }
                for row in try await rows("SELECT * FROM commands WHERE employee_id = ANY(\(employees)::text[]) AND state IN ('pending', 'retry') ORDER BY id") {
                    let command = try PostgresLifecycleStore.command(row)
                    found.waiting[command.command.employeeID, default: []].append(command)
                }
            }
            let usernames = Array(Set(request.usernames.filter(IngestPrefetch.answersUsername).map(IngestPrefetch.linkKey)))
            if !usernames.isEmpty {
                // As ``employeeLinked(toUsername:)`` compares them: `lower` on both sides.
                for row in try await rows("""
                    SELECT lower(username), employee_id FROM duo_links WHERE lower(username) = ANY(\(usernames)::text[]) ORDER BY linked_at, duo_user_id
                    """) {
                    let (key, employeeID) = try row.decode((String, String).self)
                    if found.links[key] == nil { found.links[key] = employeeID }
                }
            }
            return found
        }

        /// A batch's inbox entries, states and commands in a few multi-row statements.
        func insertIngested(_ ingested: IngestRows) async throws {
            if ingested.isEmpty { return }
            guard batched else { return try await insertIngestedRowByRow(ingested) }
            let now = Date().timeIntervalSince1970
            // PostgreSQL refuses to upsert one key twice in a statement: a later row of a key
            // (an employee's later state, an event replayed twice) replaces the earlier one here.
            let inbox = Self.lastOfEach(ingested.inbox) { IngestPrefetch.InboxKey(source: $0.source, id: $0.id) }
            let states = Self.lastOfEach(ingested.states, key: \.employeeID)
            try await insert("INSERT INTO inbox (source, event_id, topic, partition, \"offset\", received_at) VALUES", columns: 6, count: inbox.count, suffix: """
                 ON CONFLICT (source, event_id) DO UPDATE SET topic = excluded.topic, partition = excluded.partition,
                  "offset" = excluded."offset", received_at = excluded.received_at
                """) { r, b in
                let e = inbox[r]
                try b.append(e.source); try b.append(e.id); try b.append(e.topic); try b.append(e.partition); try b.append(e.offset)
                try b.append(e.receivedAt.timeIntervalSince1970)
            }
            try await insert("INSERT INTO employees (employee_id, state, updated_at) VALUES", columns: 3, count: states.count, suffix: """
                 ON CONFLICT (employee_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
                """) { r, b in
                try b.append(states[r].employeeID); try b.append(StateCoding.encode(states[r])); try b.append(now)
            }
            // Rows of one statement take their ids in order, so the commands keep theirs.
            let commands = ingested.commands
            try await insert("""
                INSERT INTO commands (employee_id, state, priority, command, follow_up, next_attempt_at, created_at, updated_at,
                  src_topic, src_partition, src_offset, src_timestamp, src_key, src_value, src_headers, received_at) VALUES
                """, columns: 16, count: commands.count) { r, b in
                let c = commands[r], src = c.source
                try b.append(c.command.employeeID); try b.append(c.state.rawValue); try b.append(Int64(c.command.priority.rawValue))
                try b.append(StateCoding.encode(c.command)); try b.append(c.isFollowUp); try b.append(c.notBefore.timeIntervalSince1970)
                try b.append(now); try b.append(now); try b.append(src.topic); try b.append(src.partition); try b.append(src.offset)
                try b.append(src.timestampMs); try b.append(src.key.map { Data($0) }); try b.append(src.value.map { Data($0) })
                try b.append(HeaderCoding.encode(src.headers)); try b.append(src.receivedAt.timeIntervalSince1970)
            }
        }

        /// One `INSERT … VALUES (…), (…)` of up to 1,000 rows at a time; `bind` appends row `r`'s
        /// `columns` values.
        private func insert(_ head: String, columns: Int, count: Int, suffix: String = "",
                            bind: (_ r: Int, _ bindings: inout PostgresBindings) throws -> Void) async throws {
            var start = 0
            while start < count {
                let n = min(count - start, 1000)
                var bindings = PostgresBindings(capacity: n * columns)
                var sql = head
                for r in 0..<n {
                    sql += r == 0 ? " (" : ", ("
                    for c in 0..<columns { sql += (c == 0 ? "$" : ", $") + String(r * columns + c + 1) }
                    sql += ")"
                    try bind(start + r, &bindings)
                }
                _ = try await rows(PostgresQuery(unsafeSQL: sql + suffix, binds: bindings))
                start += n
            }
        }

        /// The last of the items of each key, where the key first appears.
        static func lastOfEach<T, K: Hashable>(_ items: [T], key: (T) -> K) -> [T] {
            var position: [K: Int] = [:]
            var out: [T] = []
            for item in items {
                let k = key(item)
                if let i = position[k] { out[i] = item } else { position[k] = out.count; out.append(item) }
            }
            return out
        }

        func enqueue(_ m: NewOutboxMessage) async throws {
            _ = try await rows("""
                INSERT INTO outbox (kind, topic, key, value, headers, created_at, original_value)
                VALUES (\(m.kind.rawValue), \(m.topic), \(m.key.map { Data($0) }), \(m.value.map { Data($0) }), \(HeaderCoding.encode(m.headers)),
                  \(Date().timeIntervalSince1970), \(m.originalValue.map { Data($0) }))
                """)
        }
    }
}

extension PostgresConnection {
    /// Sends `query`, failing at once if the server has already closed this connection.
    ///
    /// PostgresNIO 1.33 leaves a query sent on a connection the server closed while it sat idle
    /// waiting forever: for example a transaction the server ended after
    /// ``PostgresLifecycleStore/idleInTransactionTimeout`` because its process was starved of CPU
    /// between two statements. Every query of the store goes through here, so such a transaction
    /// fails with a clear error the caller retries, instead of waiting for the operation deadline.
    func checkedQuery(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        guard !isClosed else {
            throw StoreUnavailable("The PostgreSQL server closed this connection (a transaction left idle longer than \(PostgresLifecycleStore.idleInTransactionTimeout) ends so, or the server restarted); the transaction was rolled back")
        }
        return try await self.query(query, logger: logger, file: file, line: line)
    }
}

/// Set once, by whichever of several racers gets there first.
private final class OnceFlag: Sendable {
    private let done = Mutex(false)
    func claim() -> Bool { done.withLock { d in if d { return false }; d = true; return true } }
}

/// The store cannot be reached or answered something it should not have.
public struct StoreUnavailable: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
