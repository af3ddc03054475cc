import DuoAdmin
import Foundation
import Hummingbird
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleTools
import LifecycleWorker
import Logging

/// The operations console: server-rendered pages under `/console/` on the worker's operations
/// port. Reading works without JavaScript; every change is a POST with a CSRF token, needs the
/// operator role, and is recorded in the store's audit trail and published as an audit event.
public struct ConsoleServer: Sendable {
    let runtime: WorkerRuntime
    let configuration: ConsoleConfiguration
    let auth: ConsoleAuth
    let logger: Logger

    public init(runtime: WorkerRuntime, logger: Logger) {
        self.runtime = runtime
        self.configuration = runtime.configuration.console
        self.auth = ConsoleAuth(configuration: runtime.configuration.console)
        var l = logger
        l[metadataKey: "component"] = "console"
        self.logger = l
    }

    var deadLetterTopic: String { runtime.configuration.pipeline.deadLetterTopic }

    /// Adds the console's routes (nothing unless `console.enabled`).
    public func register(on router: Router<BasicRequestContext>) {
        guard configuration.enabled else { return }
        router.get("/console/assets/console.css") { _, _ in Self.asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        router.get("/console/assets/console.js") { _, _ in Self.asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/console/login") { request, _ in self.loginPage(next: request.uri.queryParameters.get("next"), error: nil, status: .ok) }
        router.post("/console/login") { request, _ in try await self.login(request) }
        router.post("/console/logout") { request, _ in
            try await self.action(request) { _, _ in
                var response = Response.redirect(to: "/console/login", type: .normal)
                response.setCookie(Cookie(name: ConsoleAuth.cookieName, value: "", maxAge: 0, path: "/console", secure: false, httpOnly: true, sameSite: .strict))
                return response
            }
        }
        router.get("/console/") { request, _ in await self.page(request) { p in try await self.overview(p) } }
        router.get("/console/dead-letters") { request, _ in await self.page(request) { p in try await self.deadLetters(p, request) } }
        router.get("/console/dead-letters/:partition/:offset") { request, context in
            await self.page(request) { p in try await self.deadLetter(p, partition: context.parameters.get("partition"), offset: context.parameters.get("offset")) }
        }
        router.post("/console/dead-letters/replay") { request, _ in
            try await self.action(request, operator: true) { p, form in try await self.replay(p, form) }
        }
        router.get("/console/holds") { request, _ in await self.page(request) { p in try await self.holds(p) } }
        router.post("/console/holds/:decision") { request, context in
            let decision = context.parameters.get("decision") ?? ""
            return try await self.action(request, operator: true) { p, form in try await self.decide(p, form, decision: decision) }
        }
        router.get("/console/employees") { request, _ in await self.page(request) { p in try await self.employees(p, query: request.uri.queryParameters.get("q")) } }
        router.get("/console/employees/:id") { request, context in
            await self.page(request) { p in try await self.employee(p, id: context.parameters.get("id") ?? "") }
        }
        router.get("/console/findings") { request, _ in await self.page(request) { p in self.findings(p, kind: request.uri.queryParameters.get("kind")) } }
        router.post("/console/findings/run") { request, _ in try await self.action(request, operator: true) { p, _ in try await self.runAudit(p) } }
        router.get("/console/audit") { request, _ in await self.page(request) { p in try await self.auditTrail(p) } }
    }

    // MARK: Authentication and responses

    func principal(_ request: Request) -> Principal? {
        auth.authenticate(cookie: request.cookies[ConsoleAuth.cookieName]?.value, authorization: request.headers[.authorization],
                          proxyUser: configuration.trustedHeader.flatMap { FieldName($0) }.flatMap { request.headers[$0] })
    }

    /// A page for a signed-in user; 401 with the login form otherwise.
    func page(_ request: Request, _ body: (Principal) async throws -> Page) async -> Response {
        guard let p = principal(request) else {
            return loginPage(next: request.uri.path, error: nil, status: .unauthorized)
        }
        do {
            let page = try await body(p)
            return Self.html(page.status, layout(page, p))
        } catch {
            logger.error("Console page failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return Self.html(.internalServerError, layout(Page(title: "Something went wrong", body: """
                <p class="error" role="alert">The page could not be built: \(String(describing: error))</p>
                """), p))
        }
    }

    /// A state-changing POST: signed in (401), a valid CSRF token (403), and for `operator`
    /// the operator role (403).
    func action(_ request: Request, operator needsOperator: Bool = false,
                _ body: (Principal, FormData) async throws -> Response) async throws -> Response {
        guard let p = principal(request) else { return loginPage(next: nil, error: nil, status: .unauthorized) }
        let form = FormData(String(buffer: try await request.body.collect(upTo: 4 << 20)))
        guard auth.validCSRF(form.first("csrf"), for: p) else {
            logger.warning("Console POST refused: missing or wrong CSRF token", metadata: ["path": "\(request.uri.path)", "user": "\(p.name)"])
            return Self.html(.forbidden, layout(Page(title: "Refused", body: """
                <p class="error" role="alert">This form is out of date or did not come from the console (its CSRF token is missing or wrong). Nothing was changed.
                Go back, reload the page and try again.</p>
                """, status: .forbidden), p))
        }
        guard !needsOperator || p.canOperate else {
            return Self.html(.forbidden, layout(Page(title: "Not allowed", body: """
                <p class="error" role="alert">Your login (\(p.name)) is read-only: replaying dead letters and deciding held deprovisions need an operator login. Nothing was changed.</p>
                """, status: .forbidden), p))
        }
        do {
            return try await body(p, form)
        } catch {
            logger.error("Console action failed", metadata: ["path": "\(request.uri.path)", "user": "\(p.name)", "error": "\(error)"])
            return Self.html(.internalServerError, layout(Page(title: "The action failed", body: """
                <p class="error" role="alert">\(String(describing: error))</p>
                """), p))
        }
    }

    func login(_ request: Request) async throws -> Response {
        let form = FormData(String(buffer: try await request.body.collect(upTo: 64 << 10)))
        let next = Self.safeNext(form.first("next"))
        guard let token = form.first("token"), let p = auth.principal(token: token, user: form.first("name")) else {
            logger.info("Console login refused")
            return loginPage(next: next, error: "That token is not a console login.", status: .unauthorized)
        }
        logger.info("Console login", metadata: ["user": "\(p.name)", "role": "\(p.role.rawValue)"])
        var response = Response.redirect(to: next ?? "/console/", type: .normal)
        let https = request.headers[FieldName("X-Forwarded-Proto")!] == "https"
        response.setCookie(Cookie(name: ConsoleAuth.cookieName, value: auth.sessionCookie(for: p), maxAge: Int(configuration.sessionTTL.seconds),
                                  path: "/console", secure: https, httpOnly: true, sameSite: .strict))
        return response
    }

    static func safeNext(_ next: String?) -> String? {
        guard let next, next.hasPrefix("/console/"), !next.contains("//"), !next.contains("\\") else { return nil }
        return next
    }

    func loginPage(next: String?, error: String?, status: HTTPResponse.Status) -> Response {
        var response = Self.html(status, Self.document(title: "Sign in", body: """
            <main id="main" class="login">
              <h1>duo-lifecycle console</h1>
              \(error.map { HTML("<p class=\"error\" role=\"alert\">\($0)</p>") } ?? "")
              <form method="post" action="/console/login">
                <input type="hidden" name="next" value="\(Self.safeNext(next) ?? "/console/")">
                <p><label for="token">Console token</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required autofocus></p>
                <p><label for="name">Your name (recorded with what you do; optional)</label>
                <input id="name" name="name" type="text" autocomplete="username"></p>
                <p><button type="submit">Sign in</button></p>
              </form>
              <p class="hint">Scripts may send <code>Authorization: Bearer TOKEN</code> or basic auth (any user name, the token as password) instead.</p>
            </main>
            """))
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"duo-lifecycle console\"" }
        return response
    }

    struct Page {
        var title: String
        var body: HTML
        var status: HTTPResponse.Status = .ok
        var section: String = ""
    }

    func layout(_ page: Page, _ p: Principal) -> HTML {
        let links: [(String, String, String)] = [("/console/", "Overview", "overview"), ("/console/dead-letters", "Dead letters", "dead-letters"),
                                                 ("/console/holds", "Held deprovisions", "holds"), ("/console/employees", "Employees", "employees"),
                                                 ("/console/findings", "Findings", "findings"), ("/console/audit", "Audit trail", "audit")]
        let nav = links.map { (href, label, key) -> HTML in
            key == page.section ? "<li><a href=\"\(href)\" aria-current=\"page\">\(label)</a></li>" : "<li><a href=\"\(href)\">\(label)</a></li>"
        }
        return Self.document(title: page.title, body: """
            <a class="skip" href="#main">Skip to content</a>
            <header>
              <p class="brand">duo-lifecycle</p>
              <nav aria-label="Console sections"><ul>\(nav)</ul></nav>
              <div class="who">
                <span>Signed in as <strong>\(p.name)</strong> (\(p.role == .operator ? "operator" : "read-only"))</span>
                \(p.fromSession ? HTML("""
                <form method="post" action="/console/logout" class="inline">\(csrfField(p))<button type="submit" class="link">Sign out</button></form>
                """) : "")
              </div>
            </header>
            <main id="main">
              <h1>\(page.title)</h1>
              \(page.body)
            </main>
            """)
    }

    static func document(title: String, body: HTML) -> HTML {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · duo-lifecycle console</title>
        <link rel="stylesheet" href="/console/assets/console.css">
        <script src="/console/assets/console.js" defer></script>
        </head>
        <body>
        \(body)
        </body>
        </html>
        """
    }

    func csrfField(_ p: Principal) -> HTML { "<input type=\"hidden\" name=\"csrf\" value=\"\(auth.csrfToken(for: p))\">" }

    static func html(_ status: HTTPResponse.Status, _ html: HTML) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.text)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static var securityHeaders: HTTPFields {
        var h = HTTPFields()
        h[.contentSecurityPolicy] = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        h[FieldName("X-Content-Type-Options")!] = "nosniff"
        h[FieldName("Referrer-Policy")!] = "no-referrer"
        h[FieldName("X-Frame-Options")!] = "DENY"
        h[.cacheControl] = "no-store"
        return h
    }

    // MARK: Audit

    /// Records an action in the store's audit trail and, through the outbox, on the audit topic.
    func audit(_ p: Principal, action: String, target: String, detail: String) async throws {
        let entry = AuditEntry(at: Date(), actor: p.name, role: p.role.rawValue, action: action, target: target, detail: detail)
        let event = ConsoleAuditEvent.message(entry, topic: configuration.auditTopic, workerID: runtime.configuration.pipeline.workerID)
        try await runtime.store.write { tx in
            try await tx.recordAudit(entry)
            try await tx.enqueue(event)
        }
        logger.notice("Console action", metadata: ["user": "\(p.name)", "role": "\(p.role.rawValue)", "action": "\(action)", "target": "\(target)",
                                                   "detail": "\(detail)"])
    }
}

/// An `application/x-www-form-urlencoded` body, repeated names kept.
struct FormData {
    var pairs: [(String, String)] = []

    init(_ body: String) {
        for part in body.split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            guard let name = kv.first, !name.isEmpty else { continue }
            pairs.append((name, kv.count > 1 ? kv[1] : ""))
        }
    }

    func first(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }
    func all(_ name: String) -> [String] { pairs.filter { $0.0 == name }.map(\.1) }
}

/// The audit event: a binary-mode CloudEvent `duo.console.action` on `console.audit_topic`.
enum ConsoleAuditEvent {
    static func message(_ e: AuditEntry, topic: String, workerID: String) -> NewOutboxMessage {
        let data: [String: Any] = ["at": RFC3339.format(e.at), "actor": e.actor, "role": e.role, "action": e.action, "target": e.target, "detail": e.detail]
        let value = (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        let headers = [
            MessageHeader("ce_specversion", "1.0"), MessageHeader("ce_id", UUID().uuidString.lowercased()),
            MessageHeader("ce_source", "urn:duo-lifecycle:console:\(workerID)"), MessageHeader("ce_type", "duo.console.action"),
            MessageHeader("ce_time", RFC3339.format(e.at)), MessageHeader("ce_subject", e.action), MessageHeader("content-type", "application/json"),
        ]
        return NewOutboxMessage(kind: .audit, topic: topic, key: Array(e.actor.utf8), value: Array(value), headers: headers)
    }
}

/// A header name (the HTTP types are Hummingbird's, re-exported only in part).
typealias FieldName = HTTPFields.Element.Name
