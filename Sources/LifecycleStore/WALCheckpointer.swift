import Foundation
import GRDB
import GRDBSQLite

/// Copies the write-ahead log back into the database file on a connection and thread of its own.
///
/// SQLite's automatic checkpoint runs inside the commit that grows the log past 1,000 pages, on
/// the writer: it copies every page the log holds into the database file and syncs that file,
/// and every other write waits meanwhile. Ingesting a backlog, that was a sixth of the writer's
/// time. Here the writer's commit only signals (through SQLite's WAL hook, which replaces the
/// automatic checkpoint), and a passive checkpoint runs beside the next writes: it never blocks
/// them, and the writer starts the log over once everything in it has been copied.
///
/// Durability is unchanged: a commit is synced in the log before it returns, and the log is
/// started over only after the checkpoint has synced the database file (`synchronous = FULL` on
/// this connection too).
final class WALCheckpointer: @unchecked Sendable {
    /// Pages in the log after a commit from which a checkpoint is asked for (SQLite's default
    /// automatic checkpoint threshold).
    static let threshold: Int32 = 1000
    /// Pages in the log from which the writer's commit copies what is left itself. Under a steady
    /// stream of commits the passive checkpoint never quite catches up, so the log would never be
    /// started over and would grow without end; this bounds it (about 32 MB of 4 KB pages).
    static let limit: Int32 = 8000

    private let connection: DatabaseQueue
    // @unchecked: `requested`, `stopped`, `finished` and `checkpointing` are read and written
    // only with `condition` held.
    private let condition = NSCondition()
    private var requested = false
    private var stopped = false
    private var finished = false
    /// Whether the thread is copying the log (the writer's own copy waits for it).
    private var checkpointing = false

    init(path: String) throws {
        var config = Configuration()
        config.label = "wal-checkpointer"
        connection = try DatabaseQueue(path: path, configuration: config)
        try connection.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -256")
        }
        let thread = Thread { [self] in run() }
        thread.name = "sqlite-checkpoint"
        thread.start()
    }

    /// Installs the hook on the writer connection: from then on its commits ask this checkpointer
    /// instead of checkpointing themselves. `context` must outlive the connection's hook.
    static func install(on db: Database, context: WALCheckpointer) {
        let pointer = Unmanaged.passUnretained(context).toOpaque()
        sqlite3_wal_hook(db.sqliteConnection, { context, connection, _, pages in
            if pages >= WALCheckpointer.limit {
                // Most of the log is already copied: this copies the rest, after which the next
                // write starts the log over. If the thread is copying (busy), this waits for it and
                // copies what is left: going on instead let the log grow by every commit made
                // until a thread starved of CPU finished (to 42–58 MB under load), so the bound
                // held only on an idle machine. Busy for another reason (another process's
                // checkpoint): the next commit tries again.
                let checkpointer = context.map { Unmanaged<WALCheckpointer>.fromOpaque($0).takeUnretainedValue() }
                while sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_BUSY,
                      checkpointer?.waitWhileCheckpointing() == true {}
            } else if pages >= WALCheckpointer.threshold, let context {
                Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue().request()
            }
            return SQLITE_OK
        }, pointer)
    }

    /// Removes the hook, and with it the writer's only reference to this checkpointer.
    static func uninstall(from db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, nil, nil)
    }

    func request() {
        condition.lock()
        requested = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the thread's checkpoint in progress, if any, has ended, and drops a request
    /// not yet taken up (the caller copies the log itself). Answers whether there was one.
    func waitWhileCheckpointing() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        requested = false
        guard checkpointing else { return false }
        while checkpointing { condition.wait() }
        return true
    }

    /// Ends the thread after any checkpoint in progress, and returns once its connection is
    /// closed: the store's own connections, closing after it, are then the last, and the last
    /// one copies the log into the database file and deletes it.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while !requested && !stopped { condition.wait() }
            if stopped {
                try? connection.close()
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            requested = false
            checkpointing = true
            condition.unlock()
            // Passive: copies what no reader still needs, waits for nobody. A busy answer (another
            // process's checkpoint) leaves the pages for the next request.
            connection.writeWithoutTransaction { db in
                _ = sqlite3_wal_checkpoint_v2(db.sqliteConnection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            }
            condition.lock()
            checkpointing = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
