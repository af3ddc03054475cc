import CRdKafka
import Foundation
import Logging

/// Receives what librdkafka reports through its callbacks. Every callback runs on the owning
/// client's poll thread (logs too, because `log.queue=true`), and is turned into Swift values
/// before anything else sees it.
// @unchecked: its stored properties are immutable and Sendable; subclasses keep their mutable
// state behind a Mutex. Only non-final (for those subclasses) stops the compiler from proving it.
class RDKafkaClientContext: @unchecked Sendable {
    let logger: Logger
    let statistics: RDKafkaStatistics

    init(logger: Logger, statistics: RDKafkaStatistics) {
        self.logger = logger
        self.statistics = statistics
    }

    /// librdkafka reported a client-level error that is not tied to one message.
    func clientError(_ error: KafkaError) {
        if error.isFatal {
            logger.critical("Kafka client failed", metadata: ["kafka.error": "\(error)"])
        } else if error.code == .allBrokersDown {
            logger.warning("Kafka: all brokers are down", metadata: ["kafka.error": "\(error)"])
        } else {
            logger.debug("Kafka client error", metadata: ["kafka.error": "\(error)"])
        }
    }

    static func from(_ rk: OpaquePointer?) -> RDKafkaClientContext? {
        guard let rk, let raw = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<RDKafkaClientContext>.fromOpaque(raw).takeUnretainedValue()
    }
}

/// Owns exactly one `rd_kafka_t` handle and destroys it in `deinit`.
///
/// The context that librdkafka holds as its opaque pointer is held strongly here, so it
/// outlives the handle.
// @unchecked: it holds a C handle (an OpaquePointer), which librdkafka documents as safe to use
// from any thread; its other properties are immutable.
final class RDKafkaClient: @unchecked Sendable {
    enum Kind { case producer, consumer }

    private let handle: OpaquePointer
    let context: RDKafkaClientContext
    let kind: Kind

    private init(handle: OpaquePointer, context: RDKafkaClientContext, kind: Kind) {
        self.handle = handle
        self.context = context
        self.kind = kind
    }

    /// Creates the handle. On failure the configuration is freed and a `KafkaError` names the problem.
    static func make(kind: Kind, properties: [String: String], context: RDKafkaClientContext,
                     configure: (OpaquePointer) -> Void = { _ in }) throws -> RDKafkaClient {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError.configuration("rd_kafka_conf_new failed") }
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let detail = String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError.configuration("Invalid Kafka property '\(key)': \(detail)")
            }
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdkafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, rdkafkaErrorCallback)
        if properties["statistics.interval.ms"].map({ $0 != "0" }) ?? false {
            rd_kafka_conf_set_stats_cb(conf, rdkafkaStatisticsCallback)
        }
        configure(conf)
        let type = kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            // rd_kafka_new only takes ownership of the configuration when it succeeds.
            rd_kafka_conf_destroy(conf)
            let detail = String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError.configuration("Could not create Kafka client: \(detail)")
        }
        // Route logs to the main queue, which this client's poll thread serves.
        rd_kafka_set_log_queue(rk, nil)
        return RDKafkaClient(handle: rk, context: context, kind: kind)
    }

    func withHandle<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        try body(handle)
    }

    deinit {
        rd_kafka_destroy(handle)
    }

    /// The client's fatal error, if it has raised one.
    func fatalError() -> KafkaError? {
        var buf = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &buf, buf.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return KafkaError(code: .init(rawValue: err.rawValue), message: text, isFatal: true)
    }
}

// MARK: - Callbacks (non-capturing C functions; they copy what they need and return)

private func rdkafkaLogCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ buf: UnsafePointer<CChar>?) {
    guard let context = RDKafkaClientContext.from(rk) else { return }
    let message = buf.map { String(cString: $0) } ?? ""
    let fac = facility.map { String(cString: $0) } ?? ""
    // librdkafka uses syslog levels.
    let swiftLevel: Logger.Level
    switch level {
    case ...2: swiftLevel = .critical
    case 3: swiftLevel = .error
    case 4: swiftLevel = .warning
    case 5: swiftLevel = .notice
    case 6: swiftLevel = .info
    default: swiftLevel = .debug
    }
    context.logger.log(level: swiftLevel, "\(message)", metadata: ["rdkafka.facility": "\(fac)"])
}

private func rdkafkaErrorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let context = RDKafkaClientContext.from(rk) else { return }
    let code = rd_kafka_resp_err_t(rawValue: err)
    var error = KafkaError(code, context: reason.map { String(cString: $0) })
    if code == RD_KAFKA_RESP_ERR__FATAL, let rk {
        var buf = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(rk, &buf, buf.count)
        let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        error = KafkaError(code: .init(rawValue: underlying.rawValue), message: text, isFatal: true)
    }
    context.clientError(error)
}

private func rdkafkaStatisticsCallback(_ rk: OpaquePointer?, _ json: UnsafeMutablePointer<CChar>?, _ len: Int, _ opaque: UnsafeMutableRawPointer?) -> Int32 {
    guard let context = RDKafkaClientContext.from(rk), let json else { return 0 }
    let data = Data(bytes: json, count: len)
    context.statistics.record(json: data)
    return 0  // librdkafka frees the JSON.
}

/// Serves an event that is not a delivery report (a producer that takes its delivery reports as
/// events gets its logs, errors and statistics as events too) the way the callbacks would.
func serveClientEvent(_ rk: OpaquePointer, _ event: OpaquePointer) {
    switch rd_kafka_event_type(event) {
    case RD_KAFKA_EVENT_LOG:
        var facility: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        var level: Int32 = 7
        if rd_kafka_event_log(event, &facility, &text, &level) == 0 { rdkafkaLogCallback(rk, level, facility, text) }
    case RD_KAFKA_EVENT_ERROR:
        rdkafkaErrorCallback(rk, rd_kafka_event_error(event).rawValue, rd_kafka_event_error_string(event), nil)
    case RD_KAFKA_EVENT_STATS:
        if let json = rd_kafka_event_stats(event) {
            let context = RDKafkaClientContext.from(rk)
            context?.statistics.record(json: Data(bytes: json, count: strlen(json)))
        }
    default:
        break
    }
}

/// Copies a C array of headers into Swift values.
func rdkafkaHeaders(of message: UnsafePointer<rd_kafka_message_t>) -> [KafkaHeader] {
    var hdrs: OpaquePointer?
    guard rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
    var result: [KafkaHeader] = []
    result.reserveCapacity(rd_kafka_header_cnt(hdrs))
    var idx = 0
    var name: UnsafePointer<CChar>?
    var value: UnsafeRawPointer?
    var size = 0
    while rd_kafka_header_get_all(hdrs, idx, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
        let key = name.map { String(cString: $0) } ?? ""
        let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
        result.append(KafkaHeader(key: key, value: bytes))
        idx += 1
    }
    return result
}

/// Runs a blocking librdkafka call on a thread outside Swift's cooperative pool.
func runBlocking<T: Sendable>(_ label: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = label
        thread.start()
    }
}
