// DuoLifecycleBench owns the duo-lifecycle-bench benchmarks: Kafka against kcat, and the whole
// pipeline (throughput, lockout, ingest, rate limit) with the worker as a separate process.
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
        """,
        subcommands: [WorkerMode.self]
    )

    @Option(help: "The scenario to run: \(BenchScenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: BenchScenario?

    @Flag(help: "Print one JSON object per line: {\"scenario\", \"metric\", \"value\", \"unit\"}.")
    var json = false

    @Option(help: "Log level for the pieces under test (logs go to standard error).")
    var logLevel: Logger.Level = .error

    func run() async throws {
        var logger = Logger(label: "duo-lifecycle.bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        let report = BenchReport(json: json)
        for s in scenario.map({ [$0] }) ?? BenchScenario.allCases {
            try await s.run(report: report, logger: logger)
        }
        report.finish()
    }
}

enum BenchScenario: String, CaseIterable, ExpressibleByArgument {
    case throughput, lockout, ingest, ratelimit, kafka

    func run(report: BenchReport, logger: Logger) async throws {
        switch self {
        case .throughput: try await PipelineBenchmarks(logger: logger).throughput(report: report)
        case .lockout: try await PipelineBenchmarks(logger: logger).lockout(report: report)
        case .ingest: try await PipelineBenchmarks(logger: logger).ingest(report: report)
        case .ratelimit: try await PipelineBenchmarks(logger: logger).ratelimit(report: report)
        case .kafka: try await KafkaBenchmark(logger: logger).run(report: report)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Collects figures and prints them as a table or as JSON lines.
final class BenchReport: Sendable {
    struct Row { var scenario: String; var metric: String; var value: Double; var unit: String }
    private let json: Bool
    private let rowState = Mutex<[Row]>([])
    private var rows: [Row] { rowState.withLock { $0 } }

    init(json: Bool) { self.json = json }

    func record(_ scenario: String, _ metric: String, _ value: Double, _ unit: String) {
        let row = Row(scenario: scenario, metric: metric, value: value, unit: unit)
        rowState.withLock { $0.append(row) }
        if json {
            // Strings and finite numbers only, so serialising cannot fail; a NaN is printed as null.
            let object: [String: Any] = ["scenario": scenario, "metric": metric, "value": value.isFinite ? value : NSNull(), "unit": unit]
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
