import DuoAdmin
import Foundation

/// Verifies a request's signature the way Duo does: v5 and v2, HMAC-SHA1 or HMAC-SHA512, the date
/// from `X-Duo-Date` or `Date`, parameters re-canonicalised from what was received, the host with
/// or without its port, a constant-time comparison, and a clock-skew window.
struct DuoSignatureVerifier: Sendable {
    var integrations: [String: DuoSecretKey]
    var apiHostname: String?
    var clockSkew: Duration

    struct Request {
        var method: String
        var path: String
        var query: [DuoParameter]
        var form: [DuoParameter]
        var body: [UInt8]
        var headers: [(name: String, value: String)]
        var host: String?
    }

    /// Returns the integration key on success; throws Duo's 401xx error otherwise.
    func verify(_ r: Request, now: Date = Date()) throws(DuoEmulatorError) -> String {
        guard let authorization = r.headers.first(where: { $0.name.lowercased() == "authorization" })?.value else { throw .missingCredentials }
        guard authorization.hasPrefix("Basic "),
              let decoded = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let credentials = String(data: decoded, encoding: .utf8),
              let colon = credentials.firstIndex(of: ":")
        else { throw .missingCredentials }
        let ikey = String(credentials[..<colon])
        let signature = String(credentials[credentials.index(after: colon)...]).lowercased()
        guard let skey = integrations[ikey] else { throw .invalidIntegrationKey }

        let dateHeader = r.headers.first { $0.name.lowercased() == "x-duo-date" }?.value ?? r.headers.first { $0.name.lowercased() == "date" }?.value
        guard let date = dateHeader, !date.isEmpty else { throw .missingTimestamp }
        guard let parsed = DuoSigning.parseRFC2822Date(date) else { throw .missingTimestamp }
        if abs(parsed.timeIntervalSince(now)) > (clockSkew / .seconds(1)) {
            var error = DuoEmulatorError.invalidSignature
            error.detail = "request date is outside the allowed clock skew"
            throw error
        }

        let digest: DuoDigest
        switch signature.count {
        case 40: digest = .sha1
        case 128: digest = .sha512
        default: throw .invalidSignature
        }
        var hosts: [String] = []
        if let apiHostname { hosts.append(apiHostname.lowercased()) }
        if let host = r.host?.lowercased() {
            hosts.append(host)
            if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { hosts.append(String(host[..<colon])) }
        }
        let xDuo = r.headers.filter { $0.name.lowercased().hasPrefix("x-duo-") }
        var candidates: [String] = []
        for host in Set(hosts) {
            if digest == .sha512 {
                candidates.append(DuoSigning.canonicalRequest(version: 5, date: date, method: r.method, host: host, path: r.path,
                                                              parameters: r.query, body: r.body, xDuoHeaders: xDuo))
            }
            candidates.append(DuoSigning.canonicalRequest(version: 2, date: date, method: r.method, host: host, path: r.path,
                                                          parameters: r.query + r.form))
        }
        // Check every candidate, so the time taken does not depend on which one matched.
        var matched = false
        for canonical in candidates {
            let expected = DuoSigning.signature(canonical: canonical, secretKey: skey, digest: digest)
            if DuoSigning.constantTimeEquals(expected, signature) { matched = true }
        }
        guard matched else { throw .invalidSignature }
        return ikey
    }
}
