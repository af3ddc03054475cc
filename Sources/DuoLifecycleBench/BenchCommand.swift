// DuoLifecycleBench owns the duo-lifecycle-bench benchmarks: Kafka against kcat, and the whole
// pipeline (throughput, lockout, ingest, rate limit) with the worker as a separate process, and the
// webhook ingress on loopback.
import ArgumentParser
import Foundation
import Logging
import Synchronization

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duo-lifecycle-bench",
        abstract: "Measure duo-lifecycle's performance on this machine and print the figures.",
        discussion: """
        Run it in a release build:
          swift run -c release duo-lifecycle-bench [--scenario NAME] [--json]

        Scenarios: \(BenchScenario.allCases.map(\.rawValue).joined(separator: ", ")). Without \
        --scenario every one runs. The figures are reports, not pass/fail checks.

        The pipeline scenarios run on SQLite unless --store postgres names a server (--postgres-url, \
        or BENCH_POSTGRES_URL); each run then gets a new database on it, and --replicas N runs N \
        worker processes sharing it. scripts/with-postgres starts a throwaway server:
          scripts/with-postgres sh -c '.build-release/release/duo-lifecycle-bench --scenario throughput \
            --store postgres --postgres-url "$TEST_POSTGRES_URL" --replicas 3'

        To compare against the worker's defaults: BENCH_DUO_BULK=false turns bulk requests off, \
        BENCH_WORKER_MAX_CONCURRENCY=N sets worker.max_concurrency, BENCH_WORKER_LOG_LEVEL the \
        worker's log level.
        
        """,
        subcommands: [WorkerMode.self]
    )

    @Option(help: "The scenario to run: \(BenchScenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: BenchScenario?

    @Flag(help: "Print one JSON object per line: {\"scenario\", \"metric\", \"value\", \"unit\"}.")
    var json = false

    @Option(help: "Log level for the pieces under test (logs go to standard error).")
    var logLevel: Logger.Level = .error

    @Option(help: "The worker's store: sqlite or postgres.")
    var store: BenchStoreKind = .sqlite

    @Option(help: "With --store postgres: a PostgreSQL server URL on which each run creates its own database (default: BENCH_POSTGRES_URL).")
    var postgresURL: String?

    @Option(help: "Worker processes sharing the store (more than one needs --store postgres).")
    var replicas: Int = 1

    func validate() throws {
        guard replicas >= 1 && replicas <= 16 else { throw ValidationError("--replicas must be 1 to 16") }
        if replicas > 1 && store == .sqlite { throw ValidationError("--replicas \(replicas) needs --store postgres: a SQLite store serves one worker") }
        if store == .postgres && (postgresURL ?? ProcessInfo.processInfo.environment["BENCH_POSTGRES_URL"]) == nil {
            throw ValidationError("--store postgres needs --postgres-url or BENCH_POSTGRES_URL (scripts/with-postgres starts a throwaway server)")
        }
    }

    func run() async throws {
        var logger = Logger(label: "duo-lifecycle.bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        let target = BenchStore(kind: store, serverURL: postgresURL ?? ProcessInfo.processInfo.environment["BENCH_POSTGRES_URL"], replicas: replicas)
        let report = BenchReport(json: json, context: ["store": store.rawValue, "replicas": "\(replicas)"])
        for s in scenario.map({ [$0] }) ?? BenchScenario.allCases {
            try await s.run(report: report, store: target, logger: logger)
        }
        report.finish()
    }
}

enum BenchScenario: String, CaseIterable, ExpressibleByArgument {
    case throughput, lockout, lockoutSteady = "lockout-steady", latency, backfill, ingest, ratelimit, kafka, webhooks, reconcile

    func run(report: BenchReport, store: BenchStore, logger: Logger) async throws {
        let pipeline = PipelineBenchmarks(logger: logger, store: store)
        switch self {
        case .throughput: try await pipeline.throughput(report: report)
        case .lockout: try await pipeline.lockout(report: report)
        case .lockoutSteady: try await pipeline.lockoutSteady(report: report)
        case .latency: try await pipeline.latency(report: report)
        case .backfill: try await pipeline.backfill(report: report)
        case .ingest: try await pipeline.ingest(report: report)
        case .ratelimit: try await pipeline.ratelimit(report: report)
        case .kafka: try await KafkaBenchmark(logger: logger).run(report: report)
        case .webhooks: try await IngressBenchmark(logger: logger).run(report: report)
        case .reconcile: try await ReconcileBenchmark(logger: logger).run(report: report)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum BenchStoreKind: String, CaseIterable, ExpressibleByArgument, Sendable { case sqlite, postgres }

/// Where the scenario's workers keep their state.
struct BenchStore: Sendable {
    var kind: BenchStoreKind
    var serverURL: String?
    var replicas: Int
}

/// Collects figures and prints them as a table or as JSON lines.
final class BenchReport: Sendable {
    struct Row { var scenario: String; var metric: String; var value: Double; var unit: String }
    private let json: Bool
    /// Added to every JSON line: the store and the number of replicas the figures came from.
    private let context: [String: String]
    private let rowState = Mutex<[Row]>([])
    private var rows: [Row] { rowState.withLock { $0 } }

    init(json: Bool, context: [String: String] = [:]) {
        self.json = json
        self.context = context
    }

    func record(_ scenario: String, _ metric: String, _ value: Double, _ unit: String) {
        let row = Row(scenario: scenario, metric: metric, value: value, unit: unit)
        rowState.withLock { $0.append(row) }
        if json {
            // Strings and finite numbers only, so serialising cannot fail; a NaN is printed as null.
            var object: [String: Any] = ["scenario": scenario, "metric": metric, "value": value.isFinite ? value : NSNull(), "unit": unit]
            for (k, v) in context { object[k] = v }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
        } else {
            FileHandle.standardError.write(Data("  \(scenario) \(metric) = \(Self.format(value)) \(unit)\n".utf8))
        }
    }

    func finish() {
        guard !json else { return }
        let header = ["scenario", "metric", "value", "unit"]
        let cells = rows.map { [$0.scenario, $0.metric, Self.format($0.value), $0.unit] }
        let widths = header.indices.map { i in max(header[i].count, cells.map { $0[i].count }.max() ?? 0) }
        func line(_ c: [String]) -> String { "| " + c.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: " | ") + " |" }
        print(line(header))
        print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
        for c in cells { print(line(c)) }
    }

    static func format(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e12 ? String(Int64(v)) : String(format: "%.3f", v)
    }
}
