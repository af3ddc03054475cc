import Foundation
import JSONText
import GRDB
import Lifecycle
import Synchronization

/// Headers as compact length-prefixed binary: a count, then for each header its name and its
/// value (length −1 for a null value). Far cheaper than JSON on the ingest path.
enum HeaderCoding {
    static func encode(_ headers: [MessageHeader]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(headers.reduce(4) { $0 + 8 + $1.name.utf8.count + ($1.value?.count ?? 0) })
        func u32(_ v: Int32) {
            let u = UInt32(bitPattern: v)
            out.append(UInt8(truncatingIfNeeded: u)); out.append(UInt8(truncatingIfNeeded: u >> 8))
            out.append(UInt8(truncatingIfNeeded: u >> 16)); out.append(UInt8(truncatingIfNeeded: u >> 24))
        }
        u32(Int32(headers.count))
        for h in headers {
            u32(Int32(h.name.utf8.count))
            out.append(contentsOf: h.name.utf8)
            if let v = h.value { u32(Int32(v.count)); out.append(contentsOf: v) } else { u32(-1) }
        }
        return Data(out)
    }

    struct Corrupt: Error {}

    static func decode(_ data: Data) throws -> [MessageHeader] {
        let bytes = Array(data)
        var i = 0
        func u32() throws -> Int32 {
            guard i + 4 <= bytes.count else { throw Corrupt() }
            defer { i += 4 }
            return Int32(littleEndian: bytes[i..<i + 4].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) })
        }
        func take(_ n: Int) throws -> [UInt8] {
            guard n >= 0, i + n <= bytes.count else { throw Corrupt() }
            defer { i += n }
            return Array(bytes[i..<i + n])
        }
        var headers: [MessageHeader] = []
        for _ in 0..<max(0, try u32()) {
            let name = String(decoding: try take(Int(try u32())), as: UTF8.self)
            let length = try u32()
            headers.append(MessageHeader(name: name, value: length < 0 ? nil : try take(Int(length))))
        }
        return headers
    }
}

/// The SQLite store, through GRDB, in WAL mode.
///
/// One process writes at a time: every write takes ``writeLock`` for its whole transaction, and
/// the statements of a transaction run on GRDB's writer connection one by one (GRDB's closures
/// are synchronous; the transaction's body is not). Readers use WAL snapshots beside it.
public final class SQLiteLifecycleStore: LifecycleStore {
    private let pool: DatabasePool
    private let writeLock = AsyncWriteLock()
    /// One lock per name: a long holder of one (a scheduled reconcile) never blocks another (a
    /// hire creating its Duo group). Names are few (`reconcile`, `duo-group:<name>`), so they stay.
    private let namedLocks = Mutex<[String: AsyncWriteLock]>([:])
    private let checkpointer: WALCheckpointer
    public let path: String

    /// Opens (creating if needed) the database at `path` and migrates its schema.
    public init(path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = Configuration()
        config.busyMode = .timeout(10)
        // A transaction spans several writer accesses (see the type's note); the write lock, not
        // GRDB, guarantees that it is closed before another begins.
        config.allowsUnsafeTransactions = true
        self.path = path
        self.pool = try DatabasePool(path: path, configuration: config)
        // Every commit reaches the disk before Kafka's offset is stored: a power loss cannot roll
        // back an event whose offset is committed. (GRDB's WAL set-up chooses NORMAL; the writer
        // connection is the one that commits.)
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        // The writer reads the pages it changes (employees, commands, the inbox's index): with
        // SQLite's default 2 MB cache it read them again from the file for every command, a
        // sixth of the worker's time at full throughput. 16 MB is used only as the file grows
        // (ingest of 100,000 events stays under 150 MB of memory).
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA cache_size = -16384") }
        try Self.migrator.migrate(pool)
        // The log is copied into the database file beside the writer, not in its commits.
        checkpointer = try WALCheckpointer(path: path)
        pool.writeWithoutTransaction { [checkpointer] in WALCheckpointer.install(on: $0, context: checkpointer) }
    }

    deinit {
        // Reentrant: the last reference may go inside one of the writer's own closures.
        pool.unsafeReentrantWrite { WALCheckpointer.uninstall(from: $0) }
        checkpointer.stop()
    }

    /// 2,000. The transaction is local, and a larger one shares the index pages it changes among
    /// more events: a backlog ingests 13% faster in batches of 2,000 than of 500.
    public var ingestBatchSize: Int { 2000 }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE inbox (
                    source TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
                    "offset" INTEGER NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (source, event_id));
                CREATE TABLE employees (employee_id TEXT PRIMARY KEY NOT NULL, state BLOB NOT NULL, updated_at REAL NOT NULL);
                CREATE TABLE commands (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    employee_id TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
                    command BLOB NOT NULL, follow_up INTEGER NOT NULL DEFAULT 0,
                    src_topic TEXT NOT NULL, src_partition INTEGER NOT NULL, src_offset INTEGER NOT NULL, src_timestamp INTEGER,
                    src_key BLOB, src_value BLOB, src_headers BLOB NOT NULL, received_at REAL NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, first_failure_at REAL, last_error TEXT,
                    created_at REAL NOT NULL, updated_at REAL NOT NULL);
                CREATE INDEX commands_ready ON commands (state, priority, next_attempt_at, id) WHERE state IN ('pending', 'retry');
                CREATE INDEX commands_employee ON commands (employee_id, state);
                CREATE INDEX commands_running ON commands (state) WHERE state = 'running';
                CREATE TABLE outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL,
                    key BLOB, value BLOB, headers BLOB NOT NULL, created_at REAL NOT NULL, sent_at REAL);
                CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
                CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
                """)
        }
        m.registerMigration("v2: leases") { db in
            // A running command holds its claim until lease_until; an expired lease frees it.
            try db.execute(sql: """
                ALTER TABLE commands ADD COLUMN lease_until REAL;
                UPDATE commands SET lease_until = 0 WHERE state = 'running';
                """)
        }
        m.registerMigration("v3: parked outbox rows, full dead-letter values") { db in
            try db.execute(sql: """
                ALTER TABLE outbox ADD COLUMN parked_at REAL;
                ALTER TABLE outbox ADD COLUMN park_reason TEXT;
                ALTER TABLE outbox ADD COLUMN original_value BLOB;
                DROP INDEX outbox_unsent;
                CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;
                """)
        }
        m.registerMigration("v4: identity links, operations of failed attempts") { db in
            try db.execute(sql: """
                CREATE TABLE duo_links (
                    duo_user_id TEXT PRIMARY KEY NOT NULL, employee_id TEXT NOT NULL, username TEXT NOT NULL, linked_at REAL NOT NULL);
                CREATE INDEX duo_links_employee ON duo_links (employee_id, linked_at);
                CREATE INDEX duo_links_username ON duo_links (username COLLATE NOCASE);
                ALTER TABLE commands ADD COLUMN done_operations TEXT;
                """)
        }
        m.registerMigration("v5: retention") { db in
            try db.execute(sql: """
                CREATE INDEX inbox_received ON inbox (received_at);
                CREATE INDEX commands_finished ON commands (updated_at) WHERE state IN ('done', 'dead', 'superseded');
                """)
        }
        m.registerMigration("v6: fencing tokens") { db in
            // Each claim of a command gets a new token; only its holder may record an outcome.
            try db.execute(sql: """
                ALTER TABLE commands ADD COLUMN lease_token INTEGER;
                ALTER TABLE commands ADD COLUMN lease_owner TEXT;
                """)
        }
        m.registerMigration("v7: mass-deprovision guard") { db in
            try db.execute(sql: """
                CREATE TABLE guard_disables (command_id INTEGER PRIMARY KEY NOT NULL, at REAL NOT NULL);
                CREATE INDEX guard_disables_at ON guard_disables (at);
                """)
        }
        m.registerMigration("v8: operator audit trail") { db in
            try db.execute(sql: """
                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
                    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
                """)
        }
        m.registerMigration("v9: waiting commands indexed in claim order") { db in
            // Claims walk waiting commands in (priority, next_attempt_at, id) order and stop after
            // a few: with `state` leading, SQLite read and sorted every waiting command for each
            // claim (18 ms behind 15,000). `state` last keeps the statistics' count covered.
            try db.execute(sql: """
                DROP INDEX IF EXISTS commands_ready;
                CREATE INDEX commands_waiting ON commands (priority, next_attempt_at, id, state) WHERE state IN ('pending', 'retry');
                """)
        }
        return m
    }

    /// The `synchronous` setting of the connection that writes: `FULL` syncs every commit to disk.
    public func synchronousSetting() async throws -> String {
        let value = try await locked { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } ?? -1
        return [0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"][value] ?? "\(value)"
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T {
        try await writeLock.withLock {
            let transaction = Transaction(pool: pool)
            try transaction.execute("BEGIN IMMEDIATE")
            do {
                let result = try await body(transaction)
                try await transaction.commit()
                return result
            } catch {
                try? transaction.rollbackIfOpen()
                throw error
            }
        }
    }

    /// A read on a WAL snapshot. (A synchronous function, so GRDB's blocking `read` is the one
    /// called: the async one would hop to another queue for a few microseconds of work.)
    private func reading<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// One short write transaction, under the write lock, off Swift's cooperative pool: its
    /// commit waits for the disk (`synchronous = FULL`).
    private func locked<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writeLock.withLock { [pool] in try await Self.offCooperativePool { try pool.write(body) } }
    }

    /// Runs `work`, which blocks its thread (a commit's sync to disk), on a Dispatch thread, so it
    /// never holds one of the cooperative pool's threads: that pool has one thread per core, and
    /// on a disk slow to sync, a commit would stall every task of its thread (a leaver's among
    /// them). On the development machine's fast disk this changed no benchmark figure. Not
    /// cancellable: a commit that has begun finishes.
    static func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    public func withExclusiveLock<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        // One process per SQLite file: a lock in this process is a lock for every worker.
        let lock = namedLocks.withLock { locks in
            if let lock = locks[name] { return lock }
            let lock = AsyncWriteLock()
            locks[name] = lock
            return lock
        }
        return try await lock.withLock { try await body() }
    }

    public func recoverRunning(owner: String) async throws -> Int {
        // One process owns a SQLite file, so whatever is running was left by an earlier run.
        try await locked { db in
            try db.execute(sql: "UPDATE commands SET state = 'pending', lease_owner = NULL, updated_at = ? WHERE state = 'running'",
                           arguments: [Date().timeIntervalSince1970])
            return db.changesCount
        }
    }

    public func renewLeases(_ leases: [CommandLease], until: Date, now: Date) async throws -> Set<Int64> {
        guard !leases.isEmpty else { return [] }
        return try await locked { db in
            var lost = Set<Int64>()
            for lease in leases {
                try db.cachedStatement(sql: """
                    UPDATE commands SET lease_until = ? WHERE id = ? AND state = 'running' AND lease_token = ? AND lease_until >= ?
                    """).execute(arguments: [until.timeIntervalSince1970, lease.commandID, lease.token, now.timeIntervalSince1970])
                if db.changesCount == 0 { lost.insert(lease.commandID) }
            }
            return lost
        }
    }

    public func holdsLease(_ lease: CommandLease, now: Date, margin: Duration) async throws -> Bool {
        try reading { db in
            try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM commands WHERE id = ? AND state = 'running' AND lease_token = ? AND lease_until >= ?"),
                              arguments: [lease.commandID, lease.token, now.timeIntervalSince1970 + margin / .seconds(1)]) ?? false
        }
    }

    /// The queries claims and the dispatcher's timer run, each walking an index in the order it
    /// wants and stopping early, whatever the backlog (a test holds their plans to that).
    public static let claimQueries = (
        // Waiting commands whose time has come, highest priority first, then oldest, none whose
        // employee has a command running.
        waiting: """
            SELECT c.id, c.employee_id, c.priority, c.next_attempt_at, c.lease_token FROM commands c
            WHERE c.priority <= ? AND c.state IN ('pending', 'retry') AND c.next_attempt_at <= ?
              AND NOT EXISTS (SELECT 1 FROM commands r WHERE r.employee_id = c.employee_id AND r.state = 'running')
            ORDER BY c.priority, c.next_attempt_at, c.id
            LIMIT ?
            """,
        // Running commands whose lease has expired (their worker stopped), unless an older one of
        // their employee is running too.
        expired: """
            SELECT c.id, c.employee_id, c.priority, c.next_attempt_at, c.lease_token FROM commands c
            WHERE c.priority <= ? AND c.state = 'running' AND COALESCE(c.lease_until, 0) < ?
              AND NOT EXISTS (SELECT 1 FROM commands r WHERE r.employee_id = c.employee_id AND r.state = 'running' AND r.id < c.id)
            ORDER BY c.priority, c.next_attempt_at, c.id
            LIMIT ?
            """,
        // The next time a waiting command of one priority comes due.
        nextDue: "SELECT MIN(next_attempt_at) FROM commands WHERE state IN ('pending', 'retry') AND priority = ?"
    )

    public func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner: String) async throws -> [StoredCommand] {
        try await locked { db in
            // Highest priority first, then oldest. A waiting command is ready when its time has come
            // and no older command of its employee is running (an expired one included: it goes
            // first, so an employee's commands keep their order); a running command is ready again
            // once its lease has expired. At most one command per employee is claimed, so one
            // employee's commands never run at once.
            let t = now.timeIntervalSince1970
            let arguments: StatementArguments = [priority.rawValue, t, limit * 4]
            // Candidates by their few ordering columns; only the claimed ones are read whole (a
            // command's JSON is decoded for the 8 claimed, not the 64 looked at).
            struct Candidate { var id: Int64; var employeeID: String; var priority: Int; var nextAttemptAt: Double; var leaseToken: Int64? }
            let candidates = try (Row.fetchAll(db.cachedStatement(sql: Self.claimQueries.expired), arguments: arguments)
                + Row.fetchAll(db.cachedStatement(sql: Self.claimQueries.waiting), arguments: arguments))
                .map { Candidate(id: $0["id"], employeeID: $0["employee_id"], priority: $0["priority"], nextAttemptAt: $0["next_attempt_at"], leaseToken: $0["lease_token"]) }
                .sorted { ($0.priority, $0.nextAttemptAt, $0.id) < ($1.priority, $1.nextAttemptAt, $1.id) }
            var seen = Set<String>()
            var claimed: [StoredCommand] = []
            for candidate in candidates where claimed.count < limit {
                guard seen.insert(candidate.employeeID).inserted else { continue }
                let token = (candidate.leaseToken ?? 0) + 1
                try db.cachedStatement(sql: "UPDATE commands SET state = 'running', lease_until = ?, lease_token = ?, lease_owner = ?, updated_at = ? WHERE id = ?")
                    .execute(arguments: [t + lease / .seconds(1), token, owner, t, candidate.id])
                guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM commands WHERE id = ?"), arguments: [candidate.id]) else { continue }
                claimed.append(try Self.command(row))
            }
            return claimed
        }
    }

    public func nextReadyAt() async throws -> Date? {
        try reading { db in
            try CommandPriority.allCases.compactMap { try Double.fetchOne(db.cachedStatement(sql: Self.claimQueries.nextDue), arguments: [$0.rawValue]) }
                .min().map(Date.init(timeIntervalSince1970:))
        }
    }

    public func unsentOutbox(limit: Int, now: Date, claimFor: Duration) async throws -> [OutboxMessage] {
        // One relay per SQLite file: nothing to claim.
        try reading { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT ?"), arguments: [limit]).map { row in
                OutboxMessage(id: row["id"], message: NewOutboxMessage(
                    kind: OutboxKind(rawValue: row["kind"]) ?? .result, topic: row["topic"],
                    key: (row["key"] as Data?).map { Array($0) }, value: (row["value"] as Data?).map { Array($0) },
                    headers: try HeaderCoding.decode(row["headers"] as Data), originalValue: (row["original_value"] as Data?).map { Array($0) }),
                    createdAt: Date(timeIntervalSince1970: row["created_at"]))
            }
        }
    }

    public func markSent(_ ids: [Int64], at: Date) async throws {
        guard !ids.isEmpty else { return }
        // The ids as one JSON array, so one cached statement serves any count.
        let list = "[" + ids.map(String.init).joined(separator: ",") + "]"
        try await locked { db in
            try db.cachedStatement(sql: "UPDATE outbox SET sent_at = ? WHERE id IN (SELECT value FROM json_each(?))")
                .execute(arguments: [at.timeIntervalSince1970, list])
        }
    }

    public func park(_ id: Int64, reason: String, at: Date) async throws {
        try await locked { db in
            try db.execute(sql: "UPDATE outbox SET parked_at = ?, park_reason = ? WHERE id = ?", arguments: [at.timeIntervalSince1970, reason, id])
        }
    }

    public func purgeSent(before cutoff: Date) async throws -> Int {
        try await locked { db in
            // A dead letter sent truncated keeps its whole original value for the store's retention.
            try db.execute(sql: "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND original_value IS NULL",
                           arguments: [cutoff.timeIntervalSince1970])
            return db.changesCount
        }
    }

    /// The queries behind ``statistics(now:)``: each reads only live rows, through an index.
    public static let statisticsQueries = [
        "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'retry'), 0) FROM commands WHERE state IN ('pending', 'retry')",
        "SELECT COUNT(*) FROM commands WHERE state = 'running'",
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL",
    ]

    public func statistics(now: Date) async throws -> StoreStatistics {
        try reading { db in
            var byState: [CommandState: Int] = [.pending: 0, .retry: 0]
            if let row = try Row.fetchOne(db, sql: Self.statisticsQueries[0]) {
                byState[.pending] = row[0]
                byState[.retry] = row[1]
            }
            byState[.running] = try Int.fetchOne(db, sql: Self.statisticsQueries[1]) ?? 0
            let outbox = try Row.fetchOne(db, sql: Self.statisticsQueries[2])
            let oldest = outbox?[1] as Double?
            return StoreStatistics(commandsByState: byState, outboxBacklog: outbox?[0] ?? 0,
                                   outboxOldestAge: oldest.map { max(0, now.timeIntervalSince1970 - $0) } ?? 0)
        }
    }

    /// SQLite's plan for a query, one line per step (`SEARCH …`, `SCAN …`), to check what it reads.
    public func queryPlan(_ sql: String) throws -> [String] {
        // Parameters are left unbound (NULL): the plan does not depend on their values.
        let parameters = sql.filter { $0 == "?" }.count
        return try reading { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(Array(repeating: DatabaseValue.null, count: parameters)))
                .map { $0["detail"] as String }
        }
    }

    public func purgeFinished(before cutoff: Date) async throws -> Int {
        let t = cutoff.timeIntervalSince1970
        return try await locked { db in
            try db.execute(sql: "DELETE FROM inbox WHERE received_at < ?", arguments: [t])
            var purged = db.changesCount
            try db.execute(sql: "DELETE FROM commands WHERE state IN ('done', 'dead', 'superseded', 'rejected') AND updated_at < ?", arguments: [t])
            purged += db.changesCount
            try db.execute(sql: "DELETE FROM guard_disables WHERE at < ?", arguments: [t])
            try db.execute(sql: "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND original_value IS NOT NULL", arguments: [t])
            return purged + db.changesCount
        }
    }

    /// The whole original value of a dead letter that was published truncated, found by where
    /// the original record was (`kafka_dlt-original-topic`, `-partition`, `-offset`).
    public func deadLetterOriginal(topic: String, partition: Int32, offset: Int64) async throws -> [UInt8]? {
        try reading { db in
            let rows = try Row.fetchAll(db, sql: "SELECT headers, original_value FROM outbox WHERE kind = 'dead_letter' AND original_value IS NOT NULL")
            for row in rows {
                let headers = try HeaderCoding.decode(row["headers"] as Data)
                if let origin = DeadLetterOrigin(headers: headers), origin.topic == topic, origin.partition == partition, origin.offset == offset {
                    return (row["original_value"] as Data?).map { Array($0) }
                }
            }
            return nil
        }
    }

    /// Every command, for tests and tools.
    public func allCommands() async throws -> [StoredCommand] {
        try reading { db in try Row.fetchAll(db, sql: "SELECT * FROM commands ORDER BY id").map(Self.command) }
    }

    /// On a WAL snapshot, beside the writer: a command starting does not queue behind others' writes.
    public func commandContext(employeeID: String) async throws -> CommandContext {
        try reading { db in
            CommandContext(state: try Transaction.employeeState(employeeID, db), waiting: try Transaction.waitingCommands(employeeID, db),
                           linkedDuoUserIDs: try Transaction.linkedDuoUserIDs(employeeID, db))
        }
    }

    public func allEmployeeStates() async throws -> [EmployeeState] {
        try reading { db in
            try Data.fetchAll(db, sql: "SELECT state FROM employees ORDER BY employee_id").map { try StateCoding.decodeState($0) }
        }
    }

    public func allDuoLinks() async throws -> [DuoLink] {
        try reading { db in
            try Row.fetchAll(db, sql: "SELECT duo_user_id, employee_id, username FROM duo_links ORDER BY linked_at").map {
                DuoLink(duoUserID: $0["duo_user_id"], employeeID: $0["employee_id"], username: $0["username"])
            }
        }
    }

    public func auditLog(limit: Int) async throws -> [AuditEntry] {
        try reading { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                AuditEntry(at: Date(timeIntervalSince1970: $0["at"]), actor: $0["actor"], role: $0["role"], action: $0["action"],
                           target: $0["target"], detail: $0["detail"])
            }
        }
    }

    static func command(_ row: Row) throws -> StoredCommand {
        StoredCommand(
            id: row["id"], command: try StateCoding.decodeCommand(row["command"] as Data),
            source: SourceRecord(topic: row["src_topic"], partition: row["src_partition"], offset: row["src_offset"], timestampMs: row["src_timestamp"],
                                 key: (row["src_key"] as Data?).map { Array($0) }, value: (row["src_value"] as Data?).map { Array($0) },
                                 headers: try HeaderCoding.decode(row["src_headers"] as Data),
                                 receivedAt: Date(timeIntervalSince1970: row["received_at"])),
            state: CommandState(rawValue: row["state"]) ?? .pending, attempts: row["attempts"],
            nextAttemptAt: Date(timeIntervalSince1970: row["next_attempt_at"]),
            firstFailureAt: (row["first_failure_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            lastError: row["last_error"], isFollowUp: (row["follow_up"] as Int) != 0,
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            doneOperations: ((row["done_operations"] as String?) ?? "").split(separator: ",").compactMap { DuoOperationKind(rawValue: String($0)) },
            leaseToken: row["lease_token"])
    }

    /// One write transaction: its statements run on the writer connection, inside the
    /// transaction that ``write(_:)`` began, under the write lock.
    struct Transaction: LifecycleStoreTransaction {
        let pool: DatabasePool

        private func access<T>(_ body: (Database) throws -> T) throws -> T {
            try pool.writeWithoutTransaction(body)
        }

        func execute(_ sql: String) throws {
            try access { try $0.execute(sql: sql) }
        }

        /// Commits, off the cooperative pool: the commit writes the log and syncs it to disk.
        func commit() async throws {
            try await SQLiteLifecycleStore.offCooperativePool { [pool] in try pool.writeWithoutTransaction { try $0.execute(sql: "COMMIT") } }
        }

        func rollbackIfOpen() throws {
            try access { db in if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") } }
        }

        func inboxContains(source: String, id: String) async throws -> Bool {
            try access { db in
                try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM inbox WHERE source = ? AND event_id = ?"), arguments: [source, id]) ?? false
            }
        }

        func recordInbox(source: String, id: String, topic: String, partition: Int32, offset: Int64, receivedAt: Date) async throws {
            let row = IngestRows.Inbox(source: source, id: id, topic: topic, partition: partition, offset: offset, receivedAt: receivedAt)
            try access { db in try Self.inboxTable.insert(db, rows: 1) { _, s, i in Self.bindInbox(row, s, i) } }
        }

        func employeeState(_ employeeID: String) async throws -> EmployeeState? {
            try access { db in try Self.employeeState(employeeID, db) }
        }

        static func employeeState(_ employeeID: String, _ db: Database) throws -> EmployeeState? {
            try (Data.fetchOne(db.cachedStatement(sql: "SELECT state FROM employees WHERE employee_id = ?"), arguments: [employeeID]))
                .map { try StateCoding.decodeState($0) }
        }

        func saveEmployeeState(_ state: EmployeeState) async throws {
            let now = Date().timeIntervalSince1970
            let json = StateCoding.encode(state)
            try access { db in try Self.employeesTable.insert(db, rows: 1) { _, s, i in Self.bindState(state, json, now, s, i) } }
        }

        func waitingCommand(employeeID: String) async throws -> StoredCommand? {
            try access { db in
                try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM commands WHERE employee_id = ? AND state IN ('pending', 'retry') ORDER BY id DESC LIMIT 1"),
                                 arguments: [employeeID]).map(SQLiteLifecycleStore.command)
            }
        }

        func waitingCommands(employeeID: String) async throws -> [StoredCommand] {
            try access { db in try Self.waitingCommands(employeeID, db) }
        }

        static func waitingCommands(_ employeeID: String, _ db: Database) throws -> [StoredCommand] {
            try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM commands WHERE employee_id = ? AND state IN ('pending', 'retry') ORDER BY id"),
                             arguments: [employeeID]).map(SQLiteLifecycleStore.command)
        }

        func newestCommand(employeeID: String) async throws -> StoredCommand? {
            try access { db in
                try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM commands WHERE employee_id = ? ORDER BY id DESC LIMIT 1"),
                                 arguments: [employeeID]).map(SQLiteLifecycleStore.command)
            }
        }

        func insertCommand(_ c: NewCommand) async throws -> Int64 {
            let now = Date().timeIntervalSince1970
            let encoded = Self.EncodedCommand(c)
            return try access { db in
                try Self.commandsTable.insert(db, rows: 1) { _, s, i in Self.bindCommand(c, encoded, now, s, i) }
                return db.lastInsertedRowID
            }
        }

        func updateCommand(id: Int64, state: CommandState, attempts: Int, nextAttemptAt: Date?, firstFailureAt: Date?, lastError: String?, now: Date) async throws {
            try access { db in
                try db.cachedStatement(sql: """
                    UPDATE commands SET state = ?, attempts = ?, next_attempt_at = COALESCE(?, next_attempt_at), first_failure_at = ?,
                      last_error = ?, updated_at = ? WHERE id = ?
                    """).execute(arguments: [state.rawValue, attempts, nextAttemptAt?.timeIntervalSince1970, firstFailureAt?.timeIntervalSince1970,
                                     lastError, now.timeIntervalSince1970, id])
            }
        }

        func assertHolds(_ lease: CommandLease) async throws {
            let held = try access { db in
                try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM commands WHERE id = ? AND state = 'running' AND lease_token = ?"),
                                  arguments: [lease.commandID, lease.token]) ?? false
            }
            if !held { throw LeaseLost(lease) }
        }

        func addDoneOperations(commandID: Int64, _ operations: [DuoOperationKind]) async throws {
            guard !operations.isEmpty else { return }
            let added = operations.map(\.rawValue).joined(separator: ",")
            try access { db in
                try db.cachedStatement(sql: """
                    UPDATE commands SET done_operations = CASE WHEN done_operations IS NULL OR done_operations = '' THEN ? ELSE done_operations || ',' || ? END
                    WHERE id = ?
                    """).execute(arguments: [added, added, commandID])
            }
        }

        func claimDuoUser(_ duoUserID: String, username: String, employeeID: String) async throws -> String? {
            try access { db in
                if let owner = try String.fetchOne(db.cachedStatement(sql: "SELECT employee_id FROM duo_links WHERE duo_user_id = ?"), arguments: [duoUserID]),
                   owner != employeeID {
                    return owner
                }
                try db.cachedStatement(sql: """
                    INSERT INTO duo_links (duo_user_id, employee_id, username, linked_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (duo_user_id) DO UPDATE SET username = excluded.username
                    """).execute(arguments: [duoUserID, employeeID, username, Date().timeIntervalSince1970])
                return nil
            }
        }

        func reserveDisable(commandID: Int64, now: Date, window: Duration, limit: @Sendable (Int) -> Int) async throws -> Bool {
            try access { db in
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM guard_disables WHERE command_id = ?", arguments: [commandID]) != nil { return true }
                let since = now.timeIntervalSince1970 - window / .seconds(1)
                let recent = try Int.fetchOne(db, sql: "SELECT count(*) FROM guard_disables WHERE at > ?", arguments: [since]) ?? 0
                let managed = try Int.fetchOne(db, sql: "SELECT count(*) FROM duo_links") ?? 0
                guard recent < limit(managed) else { return false }
                try db.execute(sql: "INSERT INTO guard_disables (command_id, at) VALUES (?, ?)", arguments: [commandID, now.timeIntervalSince1970])
                return true
            }
        }

        func recordAudit(_ e: AuditEntry) async throws {
            try access { db in
                try db.execute(sql: "INSERT INTO audit_log (at, actor, role, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [e.at.timeIntervalSince1970, e.actor, e.role, e.action, e.target, e.detail])
            }
        }

        func approveDisable(commandID: Int64, now: Date) async throws {
            try access { db in
                try db.execute(sql: "INSERT INTO guard_disables (command_id, at) VALUES (?, ?) ON CONFLICT (command_id) DO NOTHING",
                               arguments: [commandID, now.timeIntervalSince1970])
            }
        }

        func linkedDuoUserIDs(employeeID: String) async throws -> [String] {
            try access { db in try Self.linkedDuoUserIDs(employeeID, db) }
        }

        static func linkedDuoUserIDs(_ employeeID: String, _ db: Database) throws -> [String] {
            try String.fetchAll(db.cachedStatement(sql: "SELECT duo_user_id FROM duo_links WHERE employee_id = ? ORDER BY linked_at DESC"),
                                arguments: [employeeID])
        }

        func prefetch(_ request: IngestPrefetch.Request) async throws -> IngestPrefetch? {
            // Each list goes in as one JSON array (`json_each`), so each query is one cached
            // statement whatever the batch's size; preparing statements of hundreds of
            // placeholders for every batch was a twentieth of the ingest writer's time.
            try access { db in
                var found = IngestPrefetch()
                for (source, keys) in Dictionary(grouping: request.inbox, by: \.source) {
                    for id in try String.fetchAll(db.cachedStatement(sql: "SELECT event_id FROM inbox WHERE source = ? AND event_id IN (SELECT value FROM json_each(?))"),
                                                  arguments: [source, Self.jsonList(Set(keys.map(\.id)))]) {
                        found.inbox.insert(IngestPrefetch.InboxKey(source: source, id: id))
                    }
                }
                let employees = Self.jsonList(Set(request.employeeIDs))
                for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT employee_id, state FROM employees WHERE employee_id IN (SELECT value FROM json_each(?))"),
                                            arguments: [employees]) {
                    found.states[row["employee_id"]] = try StateCoding.decodeState(row["state"] as Data)
                }
                for row in try Row.fetchAll(db.cachedStatement(sql: """
                    SELECT * FROM commands WHERE employee_id IN (SELECT value FROM json_each(?)) AND state IN ('pending', 'retry') ORDER BY id
                    """), arguments: [employees]) {
                    let command = try SQLiteLifecycleStore.command(row)
                    found.waiting[command.command.employeeID, default: []].append(command)
                }
                let usernames = Set(request.usernames.filter(IngestPrefetch.answersUsername).map(IngestPrefetch.linkKey))
                if !usernames.isEmpty {
                    for row in try Row.fetchAll(db.cachedStatement(sql: """
                        SELECT username, employee_id FROM duo_links WHERE username COLLATE NOCASE IN (SELECT value FROM json_each(?)) ORDER BY rowid
                        """), arguments: [Self.jsonList(usernames)]) {
                        let key = IngestPrefetch.linkKey(row["username"])
                        if found.links[key] == nil { found.links[key] = row["employee_id"] }
                    }
                }
                return found
            }
        }

        /// Strings as a JSON array, for `json_each`.
        static func jsonList(_ values: some Sequence<String>) -> String {
            var json = JSONText()
            json.beginArray()
            for v in values { json.string(v) }
            json.endArray()
            return String(decoding: json.bytes, as: UTF8.self)
        }

        func insertIngested(_ rows: IngestRows) async throws {
            if rows.isEmpty { return }
            let now = Date().timeIntervalSince1970
            // Rows of one statement are written in order: a later state of an employee replaces an
            // earlier one, and the commands' ids keep their order.
            let states = rows.states.map(StateCoding.encode)
            let commands = rows.commands.map(Self.EncodedCommand.init)
            try access { db in
                try Self.inboxTable.insert(db, rows: rows.inbox.count) { r, s, i in Self.bindInbox(rows.inbox[r], s, i) }
                try Self.employeesTable.insert(db, rows: rows.states.count) { r, s, i in Self.bindState(rows.states[r], states[r], now, s, i) }
                try Self.commandsTable.insert(db, rows: rows.commands.count) { r, s, i in Self.bindCommand(rows.commands[r], commands[r], now, s, i) }
            }
        }

        /// An `INSERT` of rows of one table, and what it does with a row already there.
        struct RowInsert: Sendable {
            let columns: Int
            /// The statement for 1 to 8 rows (index 0 to 7) and for 64 (index 8), written once:
            /// building and hashing a statement of a thousand placeholders for every insert was
            /// a tenth of the ingest writer's time.
            let statements: [String]

            init(table: String, columns: Int, onConflict: String = "") {
                self.columns = columns
                let tuple = "(" + Array(repeating: "?", count: columns).joined(separator: ",") + ")"
                statements = (Array(1...8) + [64]).map { n in
                    "INSERT INTO \(table) VALUES " + Array(repeating: tuple, count: n).joined(separator: ",") + onConflict
                }
            }

            /// Inserts `rows` rows, up to 64 per statement; `bind` binds row `r`'s values to the
            /// statement from parameter `i` on, and answers SQLite's code (0 when every bind took).
            ///
            /// Values are bound as they are, straight from the rows: GRDB's `StatementArguments`
            /// (unspecialised generic code that copies every value twice and checks the count),
            /// and arrays of `DatabaseValue` before it, were a fifth of the ingest writer's time.
            func insert(_ db: Database, rows: Int, _ bind: (_ r: Int, _ statement: SQLiteStatement, _ i: CInt) -> CInt) throws {
                var start = 0
                while start < rows {
                    let n = rows - start >= 64 ? 64 : min(rows - start, 8)
                    let statement = try db.cachedStatement(sql: statements[n == 64 ? 8 : n - 1])
                    // Clearing the statement's arguments resets it and its bindings.
                    statement.setUncheckedArguments(StatementArguments())
                    for r in 0..<n {
                        let code = bind(start + r, statement.sqliteStatement, CInt(r * columns + 1))
                        guard code == 0 else {
                            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "Could not bind the values of row \(start + r + 1)", sql: statement.sql)
                        }
                    }
                    try statement.execute()
                    start += n
                }
            }
        }

        static let inboxTable = RowInsert(table: #"inbox (source, event_id, topic, partition, "offset", received_at)"#, columns: 6, onConflict: """
             ON CONFLICT (source, event_id) DO UPDATE SET topic = excluded.topic, partition = excluded.partition,
              "offset" = excluded."offset", received_at = excluded.received_at
            """)
        static let employeesTable = RowInsert(table: "employees (employee_id, state, updated_at)", columns: 3, onConflict: """
             ON CONFLICT (employee_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
            """)
        static let commandsTable = RowInsert(table: """
            commands (employee_id, state, priority, command, follow_up, next_attempt_at, created_at, updated_at,
              src_topic, src_partition, src_offset, src_timestamp, src_key, src_value, src_headers, received_at)
            """, columns: 16)

        // Each binds one row's values from parameter `i` on; any failed bind makes the code non-zero.

        static func bindInbox(_ e: IngestRows.Inbox, _ s: SQLiteStatement, _ i: CInt) -> CInt {
            e.source.bind(to: s, at: i) | e.id.bind(to: s, at: i + 1) | e.topic.bind(to: s, at: i + 2) | Int64(e.partition).bind(to: s, at: i + 3)
                | e.offset.bind(to: s, at: i + 4) | e.receivedAt.timeIntervalSince1970.bind(to: s, at: i + 5)
        }

        static func bindState(_ state: EmployeeState, _ json: Data, _ now: Double, _ s: SQLiteStatement, _ i: CInt) -> CInt {
            state.employeeID.bind(to: s, at: i) | json.bind(to: s, at: i + 1) | now.bind(to: s, at: i + 2)
        }

        /// A command's values that take work to make, made before the statement is.
        struct EncodedCommand {
            let command: Data
            let key: Data?
            let value: Data?
            let headers: Data
            init(_ c: NewCommand) {
                command = StateCoding.encode(c.command)
                key = c.source.key.map { Data($0) }
                value = c.source.value.map { Data($0) }
                headers = HeaderCoding.encode(c.source.headers)
            }
        }

        static func bindCommand(_ c: NewCommand, _ e: EncodedCommand, _ now: Double, _ s: SQLiteStatement, _ i: CInt) -> CInt {
            let src = c.source
            let head = c.command.employeeID.bind(to: s, at: i) | c.state.rawValue.bind(to: s, at: i + 1) | c.command.priority.rawValue.bind(to: s, at: i + 2)
                | e.command.bind(to: s, at: i + 3) | (c.isFollowUp ? 1 : 0).bind(to: s, at: i + 4) | c.notBefore.timeIntervalSince1970.bind(to: s, at: i + 5)
                | now.bind(to: s, at: i + 6) | now.bind(to: s, at: i + 7)
            return head | src.topic.bind(to: s, at: i + 8) | Int64(src.partition).bind(to: s, at: i + 9) | src.offset.bind(to: s, at: i + 10)
                | src.timestampMs.bind(to: s, at: i + 11) | e.key.bind(to: s, at: i + 12) | e.value.bind(to: s, at: i + 13)
                | e.headers.bind(to: s, at: i + 14) | src.receivedAt.timeIntervalSince1970.bind(to: s, at: i + 15)
        }

        func employeeLinked(toUsername username: String) async throws -> String? {
            try access { db in
                try String.fetchOne(db.cachedStatement(sql: "SELECT employee_id FROM duo_links WHERE username = ? COLLATE NOCASE LIMIT 1"),
                                    arguments: [username])
            }
        }

        func enqueue(_ m: NewOutboxMessage) async throws {
            try access { db in
                try db.cachedStatement(sql: "INSERT INTO outbox (kind, topic, key, value, headers, created_at, original_value) VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .execute(arguments: [m.kind.rawValue, m.topic, m.key.map { Data($0) }, m.value.map { Data($0) },
                                           HeaderCoding.encode(m.headers), Date().timeIntervalSince1970, m.originalValue.map { Data($0) }])
            }
        }
    }
}
