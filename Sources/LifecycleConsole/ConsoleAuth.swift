import Crypto
import Foundation
import LifecycleWorker

/// Who is using the console, and what they may do.
struct Principal: Sendable, Hashable {
    enum Role: String, Sendable { case `operator`, readonly }
    var name: String
    var role: Role
    /// What the CSRF token is bound to: the login session, or for a header login (bearer, basic,
    /// proxy) the user and role.
    var sessionID: String
    var fromSession: Bool

    var canOperate: Bool { role == .operator }
}

/// Logins (bearer token, basic auth, a signed session cookie from the login form, or an
/// authenticating proxy's header) and CSRF tokens. Secrets are compared in constant time and
/// never rendered or logged.
struct ConsoleAuth: Sendable {
    static let cookieName = "duo_console"
    let configuration: ConsoleConfiguration
    /// Signs session cookies and CSRF tokens. Derived from the tokens, so that every replica with
    /// the same secrets accepts the same sessions; a random one when there are no tokens (proxy
    /// logins only, where a session is the proxy's business).
    let key: SymmetricKey

    init(configuration: ConsoleConfiguration) {
        self.configuration = configuration
        let secrets = (configuration.operatorTokens + configuration.readonlyTokens).map { "\($0.name)\u{0}\($0.secret)" }.sorted()
        if secrets.isEmpty {
            key = SymmetricKey(size: .bits256)
        } else {
            key = SymmetricKey(data: SHA256.hash(data: Data(("duo-lifecycle console session key v1\n" + secrets.joined(separator: "\n")).utf8)))
        }
    }

    /// Equal strings, in time that does not depend on where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        // Compare fixed-size digests: the time depends on neither the contents nor the lengths.
        let x = Array(SHA256.hash(data: Data(a.utf8))), y = Array(SHA256.hash(data: Data(b.utf8)))
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// The login a token belongs to. Every credential is compared, whichever matches.
    func principal(token: String, user: String? = nil) -> Principal? {
        var found: Principal?
        for (credentials, role) in [(configuration.operatorTokens, Principal.Role.operator), (configuration.readonlyTokens, .readonly)] {
            for c in credentials {
                let matches = Self.constantTimeEqual(c.secret, token)
                if matches, found == nil {
                    let name = user.flatMap { $0.isEmpty ? nil : $0 } ?? c.name
                    found = Principal(name: name, role: role, sessionID: "token:\(name):\(role.rawValue)", fromSession: false)
                }
            }
        }
        return found
    }

    /// Who sent a request: session cookie, then `Authorization` (Bearer or Basic), then the
    /// trusted proxy header.
    func authenticate(cookie: String?, authorization: String?, proxyUser: String?) -> Principal? {
        if let cookie, let p = session(cookie) { return p }
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return principal(token: parts[1].trimmingCharacters(in: .whitespaces)) }
            if parts.count == 2, parts[0].lowercased() == "basic", let decoded = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
               let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":") {
                return principal(token: String(pair[pair.index(after: colon)...]), user: String(pair[..<colon]))
            }
            return nil
        }
        if configuration.trustedHeader != nil, let user = proxyUser?.trimmingCharacters(in: .whitespaces), !user.isEmpty {
            let role: Principal.Role = configuration.trustedOperators.contains(user) ? .operator : .readonly
            return Principal(name: user, role: role, sessionID: "proxy:\(user):\(role.rawValue)", fromSession: false)
        }
        return nil
    }

    // MARK: Sessions

    private struct SessionPayload: Codable {
        var n: String
        var r: String
        var e: Double
        var s: String
    }

    /// A signed session cookie value for a principal, valid for the configured time.
    func sessionCookie(for principal: Principal, now: Date = Date()) -> String {
        let sid = Array(SHA256.hash(data: Data(UUID().uuidString.utf8))).prefix(12).map { String(format: "%02x", $0) }.joined()
        let payload = SessionPayload(n: principal.name, r: principal.role.rawValue, e: now.timeIntervalSince1970 + configuration.sessionTTL.seconds, s: sid)
        let body = Self.base64URL((try? JSONEncoder().encode(payload)) ?? Data())
        return body + "." + Self.base64URL(Data(HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: key)))
    }

    func session(_ value: String, now: Date = Date()) -> Principal? {
        let parts = value.split(separator: ".").map(String.init)
        guard parts.count == 2, let mac = Self.fromBase64URL(parts[1]),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(parts[0].utf8), using: key),
              let json = Self.fromBase64URL(parts[0]), let p = try? JSONDecoder().decode(SessionPayload.self, from: json),
              p.e > now.timeIntervalSince1970, let role = Principal.Role(rawValue: p.r)
        else { return nil }
        // A login whose token was removed from the files ends with the next restart: a session
        // only lasts while its role still has a way in.
        let stillAllowed = role == .operator ? !configuration.operatorTokens.isEmpty : !configuration.readonlyTokens.isEmpty
        guard stillAllowed else { return nil }
        return Principal(name: p.n, role: role, sessionID: "session:\(p.s)", fromSession: true)
    }

    // MARK: CSRF

    func csrfToken(for principal: Principal) -> String {
        Self.base64URL(Data(HMAC<SHA256>.authenticationCode(for: Data("csrf\n\(principal.sessionID)".utf8), using: key)))
    }

    func validCSRF(_ token: String?, for principal: Principal) -> Bool {
        guard let token, !token.isEmpty else { return false }
        return Self.constantTimeEqual(token, csrfToken(for: principal))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func fromBase64URL(_ s: String) -> Data? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
