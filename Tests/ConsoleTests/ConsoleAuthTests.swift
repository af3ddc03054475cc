import Foundation
@testable import LifecycleConsole
import LifecycleWorker
import Testing

@Suite("Console logins and CSRF")
struct ConsoleAuthTests {
    static func configuration() -> ConsoleConfiguration {
        var c = ConsoleConfiguration()
        c.enabled = true
        c.operatorTokens = [ConsoleCredential(name: "ops", secret: "operator-token-0123456789")]
        c.readonlyTokens = [ConsoleCredential(name: "helpdesk", secret: "readonly-token-0123456789")]
        c.trustedHeader = "X-Forwarded-User"
        c.trustedOperators = ["alice@example.com"]
        return c
    }

    @Test("Bearer and basic auth map tokens to their roles; anything else is nobody")
    func tokens() throws {
        let auth = ConsoleAuth(configuration: Self.configuration())
        #expect(auth.authenticate(cookie: nil, authorization: "Bearer operator-token-0123456789", proxyUser: nil)?.role == .operator)
        #expect(auth.authenticate(cookie: nil, authorization: "Bearer readonly-token-0123456789", proxyUser: nil)?.role == .readonly)
        #expect(auth.authenticate(cookie: nil, authorization: "Bearer operator-token-012345678", proxyUser: nil) == nil, "one character short")
        let basic = "Basic " + Data("carol:operator-token-0123456789".utf8).base64EncodedString()
        let carol = try #require(auth.authenticate(cookie: nil, authorization: basic, proxyUser: nil))
        #expect(carol.name == "carol" && carol.role == .operator, "the basic-auth user is who the action is recorded under")
        #expect(auth.authenticate(cookie: nil, authorization: "Basic " + Data("carol:wrong".utf8).base64EncodedString(), proxyUser: nil) == nil)
        // A request with a wrong Authorization is refused even if a proxy header is present.
        #expect(auth.authenticate(cookie: nil, authorization: "Bearer nope", proxyUser: "alice@example.com") == nil)
    }

    @Test("The trusted proxy header: listed users operate, others read")
    func proxy() {
        let auth = ConsoleAuth(configuration: Self.configuration())
        #expect(auth.authenticate(cookie: nil, authorization: nil, proxyUser: "alice@example.com")?.role == .operator)
        #expect(auth.authenticate(cookie: nil, authorization: nil, proxyUser: "bob@example.com")?.role == .readonly)
        var off = Self.configuration()
        off.trustedHeader = nil
        #expect(ConsoleAuth(configuration: off).authenticate(cookie: nil, authorization: nil, proxyUser: "alice@example.com") == nil,
                "without console.trusted_header the header means nothing")
    }

    @Test("A session cookie is signed: tampered, expired or signed with other secrets, it is nobody")
    func sessions() throws {
        let auth = ConsoleAuth(configuration: Self.configuration())
        let p = try #require(auth.principal(token: "readonly-token-0123456789", user: "dee"))
        let cookie = auth.sessionCookie(for: p)
        #expect(auth.session(cookie)?.name == "dee")
        #expect(auth.session(cookie)?.role == .readonly)
        // Claim the operator role by editing the payload: the signature no longer matches.
        let parts = cookie.split(separator: ".").map(String.init)
        let payload = try #require(ConsoleAuth.fromBase64URL(parts[0]))
        let forged = String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "\"readonly\"", with: "\"operator\"")
        #expect(auth.session(ConsoleAuth.base64URL(Data(forged.utf8)) + "." + parts[1]) == nil)
        #expect(auth.session(cookie, now: Date().addingTimeInterval(9 * 3600)) == nil, "expired after session_ttl")
        var other = Self.configuration()
        other.readonlyTokens = [ConsoleCredential(name: "helpdesk", secret: "another-readonly-token-99")]
        #expect(ConsoleAuth(configuration: other).session(cookie) == nil, "rotating the tokens ends the sessions")
        #expect(ConsoleAuth(configuration: Self.configuration()).session(cookie)?.name == "dee", "replicas with the same tokens share sessions")
    }

    @Test("CSRF tokens are bound to the login: another session's token is refused, as is none")
    func csrf() throws {
        let auth = ConsoleAuth(configuration: Self.configuration())
        let login = try #require(auth.principal(token: "operator-token-0123456789"))
        let a = try #require(auth.session(auth.sessionCookie(for: login)))
        let b = try #require(auth.session(auth.sessionCookie(for: login)))
        #expect(auth.validCSRF(auth.csrfToken(for: a), for: a))
        #expect(!auth.validCSRF(auth.csrfToken(for: b), for: a))
        #expect(!auth.validCSRF(nil, for: a) && !auth.validCSRF("", for: a))
    }

    @Test("Pages escape what they show")
    func escaping() {
        let name = "<script>alert('x')</script>"
        let page: HTML = "<p>\(name)</p>"
        #expect(page.description == "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>")
    }

    @Test("The login's next page stays inside the console")
    func nextPage() {
        #expect(ConsoleServer.safeNext("/console/holds") == "/console/holds")
        #expect(ConsoleServer.safeNext("https://evil.example/") == nil)
        #expect(ConsoleServer.safeNext("/console//evil.example") == nil)
    }
}
