import Metrics
import Prometheus

/// The worker's metrics: the Prometheus registry behind swift-metrics, and its exposition with a
/// `# HELP` line for every family (swift-metrics has no place for help text, so it comes from
/// ``help``, and the `/metrics` test checks that every family the worker exports has one).
public enum WorkerMetrics {
    /// Makes the registry and routes swift-metrics to it. Call once per process.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // A lockout is measured from publish to disabled: seconds, with room for a Duo outage.
        factory.durationHistogramBuckets["duo_lifecycle_lockout_seconds"] = [
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// The Prometheus text exposition, with `# HELP` lines.
    public static func exposition(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        withHelp(registry.emitToBuffer())
    }

    /// Inserts `# HELP name text` before each `# TYPE name …` line whose family ``help`` knows.
    static func withHelp(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + help.count * 80)
        let prefix = Array("# TYPE ".utf8)
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: prefix) {
                let name = line.dropFirst(prefix.count).prefix { $0 != UInt8(ascii: " ") }
                if let text = help[String(decoding: name, as: UTF8.self)] {
                    out += Array("# HELP ".utf8) + name + [UInt8(ascii: " ")] + Array(text.utf8) + [UInt8(ascii: "\n")]
                }
            }
            out += line
            out.append(UInt8(ascii: "\n"))
        }
        if text.last == UInt8(ascii: "\n") || text.isEmpty { out.removeLast() }
        return out
    }

    /// Help text of every metric family the worker, the ingress and the Kafka clients export.
    public static let help: [String: String] = [
        "duo_lifecycle_events_in_total": "Lifecycle records consumed from Kafka.",
        "duo_lifecycle_dead_letters_total": "Records dead-lettered, by stage (ingest: invalid event; dispatch: could not be applied).",
        "duo_lifecycle_commands_total": "Commands finished, by outcome.",
        "duo_lifecycle_commands_queued": "Commands in the store by state (pending, running, retry, held).",
        "duo_lifecycle_command_duration_seconds": "Time to apply one command to Duo, all its calls included.",
        "duo_lifecycle_lockout_seconds": "Time from a termination's publication (its Kafka record timestamp) to its Duo user being disabled.",
        "duo_lifecycle_retries_total": "Command attempts that failed and were scheduled again.",
        "duo_lifecycle_fenced_total": "Command outcomes refused because another replica had taken the command over.",
        "duo_lifecycle_leases_lost_total": "Command leases lost before the command finished.",
        "duo_lifecycle_guard_held_total": "Disables held by the mass-deprovision guard for an operator's approval.",
        "duo_lifecycle_outbox_published_total": "Outbox messages (results and dead letters) published to Kafka.",
        "duo_lifecycle_outbox_parked_total": "Outbox messages Kafka refused for good, by kind; kept in the store.",
        "duo_lifecycle_outbox_backlog": "Outbox messages waiting to be published.",
        "duo_lifecycle_outbox_oldest_age_seconds": "Age of the oldest outbox message waiting to be published.",
        "duo_lifecycle_circuit_breaker_open": "1 while the Duo circuit breaker is open (Duo calls paused), else 0.",
        "duo_lifecycle_duo_access_refused": "1 while Duo refuses the worker's credentials or permissions, by cause.",
        "duo_lifecycle_duo_calls_total": "Duo Admin API calls, by method and HTTP status (error: no response).",
        "duo_lifecycle_duo_call_duration_seconds": "Duo Admin API call latency, by method.",
        "duo_lifecycle_duo_bulk_requests_total": "Bulk requests (POST /admin/v1/bulk) made: writes of several commands in one Duo call.",
        "duo_lifecycle_duo_bulk_writes_total": "Writes sent in bulk requests; divided by duo_lifecycle_duo_bulk_requests_total, the writes per request.",
        "duo_lifecycle_reconcile_findings": "Findings of the last reconcile, by kind.",
        "duo_lifecycle_webhooks_total": "Webhook requests answered by the ingress, by source and HTTP status.",
        "duo_lifecycle_webhook_events_total": "Lifecycle events made durable in Kafka from webhooks, by source.",
        "duo_lifecycle_webhook_duration_seconds": "Webhook request latency (until the events are durable in Kafka), by source.",
        "kafka_consumer_lag": "Records behind the end of each assigned partition (high watermark minus committed offset), from librdkafka.",
        "kafka_client_queued_messages": "Messages in librdkafka's queues, by client.",
        "kafka_client_tx_messages_total": "Messages librdkafka sent to brokers, by client.",
        "kafka_client_rx_messages_total": "Messages librdkafka received from brokers, by client.",
    ]
}
