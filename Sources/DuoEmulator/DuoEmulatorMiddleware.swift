import DuoAdmin
import Foundation
import Hummingbird
import NIOCore

/// Duo's answers: the `{"stat": "OK", "response": …}` and `{"stat": "FAIL", "code": …}` envelopes.
enum DuoEnvelope {
    private static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    static func ok(_ data: Data, metadata: DuoPageMetadata? = nil) -> Response {
        var out = Data(#"{"stat":"OK","response":"#.utf8)
        out += data
        if let metadata {
            var m: [String: Any] = ["total_objects": metadata.totalObjects ?? 0]
            m["next_offset"] = metadata.nextOffset ?? NSNull()
            m["prev_offset"] = metadata.prevOffset ?? NSNull()
            out += Data(#","metadata":"#.utf8)
            out += (try? JSONSerialization.data(withJSONObject: m, options: [.sortedKeys])) ?? Data("{}".utf8)
        }
        out += Data("}".utf8)
        return Response(status: .ok, headers: jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: out)))
    }

    static func failure(_ error: DuoEmulatorError) -> Response {
        var object: [String: Any] = ["stat": "FAIL", "code": error.code, "message": error.message]
        if let detail = error.detail { object["message_detail"] = detail }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: .init(code: error.httpStatus), headers: jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A plain JSON document (the control API).
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }

    /// Runs `body`, answering Duo's errors and unknown routes with Duo's failure envelope.
    static func catching(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as DuoEmulatorError {
            return failure(error)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            return failure(.notFound)
        }
    }
}

/// Outermost: whatever a route throws as a Duo error, or a path no route matches, is answered
/// with Duo's failure envelope.
struct DuoEnvelopeMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: EmulatorRequestContext,
                next: (Request, EmulatorRequestContext) async throws -> Response) async throws -> Response {
        try await DuoEnvelope.catching { try await next(request, context) }
    }
}

/// Counts the Admin API's answers by `METHOD /route/{template}` and status, faults included.
struct RequestCountingMiddleware: RouterMiddleware {
    let emulator: DuoEmulator

    func handle(_ request: Request, context: EmulatorRequestContext,
                next: (Request, EmulatorRequestContext) async throws -> Response) async throws -> Response {
        let response = try await DuoEnvelope.catching { try await next(request, context) }
        emulator.count("\(request.method.rawValue) \(context.endpointPath ?? request.uri.path)", status: response.status)
        return response
    }
}

/// Faults come before anything else, like a throttling proxy or a failing backend in front of
/// Duo: latency, connection resets, injected statuses, and the rate limit.
struct FaultInjectionMiddleware: RouterMiddleware {
    let emulator: DuoEmulator

    func handle(_ request: Request, context: EmulatorRequestContext,
                next: (Request, EmulatorRequestContext) async throws -> Response) async throws -> Response {
        let plan = emulator.nextFaultPlan(route: "\(request.method.rawValue) \(context.endpointPath ?? request.uri.path)")
        if let latency = plan.latency, latency > .zero { try await Task.sleep(for: latency) }
        if plan.reset {
            try await context.channel.close()
            throw HTTPError(.internalServerError)
        }
        if let status = plan.status {
            switch status {
            case 400: throw DuoEmulatorError.invalidParameter("injected", "fault injected by the emulator")
            case 401: throw DuoEmulatorError.invalidSignature
            case 403: throw DuoEmulatorError.forbidden
            case 429: throw DuoEmulatorError.tooManyRequests
            case 503: throw DuoEmulatorError.unavailable
            default: throw DuoEmulatorError.internalError
            }
        }
        if let limit = plan.rateLimit, !emulator.admitWithinRateLimit(limit) { throw DuoEmulatorError.tooManyRequests }
        return try await next(request, context)
    }
}

/// Reads the parameters as received (the query string, plus a form or JSON body), verifies the
/// request's signature as Duo does, and hands the caller and the parameters to the route.
struct SignatureVerificationMiddleware: RouterMiddleware {
    let verifier: DuoSignatureVerifier

    func handle(_ request: Request, context: EmulatorRequestContext,
                next: (Request, EmulatorRequestContext) async throws -> Response) async throws -> Response {
        var request = request
        let body = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
        let target = request.uri.string
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "")
        guard let query = DuoSigning.parseQuery(parts.dropFirst().first ?? "") else { throw DuoEmulatorError.invalidParameter("query") }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        var form: [DuoParameter] = []
        var json: [DuoParameter] = []
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            guard let parsed = DuoSigning.parseQuery(Substring(String(decoding: body, as: UTF8.self))) else {
                throw DuoEmulatorError.invalidParameter("body")
            }
            form = parsed
        } else if contentType.hasPrefix("application/json") {
            json = try DuoRequestParameters.fromJSON(Data(body))
        }
        let ikey = try verifier.verify(.init(method: request.method.rawValue, path: path, query: query, form: form, body: body,
                                             headers: request.headers.map { (name: $0.name.rawName, value: $0.value) }, host: request.head.authority))
        var context = context
        context.caller = DuoDirectory.Caller(method: request.method.rawValue, path: path, integrationKey: ikey)
        context.duoParameters = DuoRequestParameters(query + form + json)
        return try await next(request, context)
    }
}
