import DuoAdmin
import Foundation
import Hummingbird
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleTools
import LifecycleWorker
import Logging

extension ConsoleServer {
    // MARK: Overview

    func overview(_ p: Principal) async throws -> Page {
        let stats = try await runtime.store.statistics(now: Date())
        let lag = runtime.pipeline.consumer.consumer.consumerLag.sorted { $0.key < $1.key }
        let breaker = runtime.pipeline.dispatcher.breaker.state
        let lockout = LockoutWindow.shared.summary()
        let waitingLetters = try? await deadLetterCount()
        let held = stats.commandsByState[.held] ?? 0
        let lagRows: [HTML] = lag.map { "<tr><th scope=\"row\">\($0.key.topic) [\($0.key.partition)]</th><td class=\"num\">\($0.value)</td></tr>" }
        let states: [CommandState] = [.pending, .running, .retry, .held]
        let stateRows: [HTML] = states.map { s in
            let n = stats.commandsByState[s] ?? 0
            let label: HTML = s == .held ? "<a href=\"/console/holds\">held</a>" : "\(s.rawValue)"
            return "<tr><th scope=\"row\">\(label)</th><td class=\"num\">\(n)</td></tr>"
        }
        func seconds(_ s: Double) -> String { s < 10 ? String(format: "%.2f s", s) : String(format: "%.0f s", s) }
        let body: HTML = """
            <div class="cards">
              <section class="card" aria-labelledby="lockout-h">
                <h2 id="lockout-h">Leaver lockout, last hour</h2>
                \(lockout.map { l -> HTML in """
                  <p class="big">p50 \(seconds(l.p50)) · p99 \(seconds(l.p99))</p><p>\(l.count) lockout(s), from publication to Duo user disabled.</p>
                  """ } ?? "<p>No lockout in the last hour.</p>")
              </section>
              <section class="card" aria-labelledby="dlq-h">
                <h2 id="dlq-h">Dead letters</h2>
                <p class="big"><a href="/console/dead-letters">\(waitingLetters.map { "\($0) on \(deadLetterTopic)" } ?? "unavailable (Kafka does not answer)")</a></p>
              </section>
              <section class="card" aria-labelledby="holds-h">
                <h2 id="holds-h">Held deprovisions</h2>
                <p class="big"><a href="/console/holds">\(held) waiting for an operator</a></p>
              </section>
              <section class="card" aria-labelledby="breaker-h">
                <h2 id="breaker-h">Duo circuit breaker</h2>
                <p class="big \(breaker == .open ? "bad" : "good")">\(breaker == .open ? "OPEN: Duo calls paused" : "closed")</p>
              </section>
              <section class="card" aria-labelledby="outbox-h">
                <h2 id="outbox-h">Outbox</h2>
                <p class="big">\(stats.outboxBacklog) waiting</p><p>Oldest: \(seconds(stats.outboxOldestAge)).</p>
              </section>
            </div>
            <div class="cards">
              <section aria-labelledby="commands-h">
                <h2 id="commands-h">Commands by state</h2>
                <table><thead><tr><th scope="col">State</th><th scope="col" class="num">Commands</th></tr></thead><tbody>\(stateRows)</tbody></table>
              </section>
              <section aria-labelledby="lag-h">
                <h2 id="lag-h">Consumer lag per partition</h2>
                \(lagRows.isEmpty ? "<p>No lag reported yet (librdkafka's statistics come every few seconds, for the partitions this replica has).</p>" : HTML("""
                <table><thead><tr><th scope="col">Partition</th><th scope="col" class="num">Records behind</th></tr></thead><tbody>\(lagRows)</tbody></table>
                """))
              </section>
            </div>
            """
        return Page(title: "Overview", body: body, section: "overview")
    }

    /// Records on the dead-letter topic (from its watermarks: no read of the records).
    func deadLetterCount() async throws -> Int64 {
        let admin = try KafkaAdminClient(configuration: runtime.configuration.kafka, logger: quietLogger)
        defer { Task { await admin.shutdown() } }
        guard let meta = try await admin.metadata(topic: deadLetterTopic, timeout: .seconds(3)).topic(deadLetterTopic), meta.error == nil else { return 0 }
        var total: Int64 = 0
        for p in meta.partitions {
            let (low, high) = try await admin.watermarks(topic: deadLetterTopic, partition: p.id, timeout: .seconds(3))
            total += max(0, high - low)
        }
        return total
    }

    var quietLogger: Logger {
        var l = logger
        l.logLevel = .error
        return l
    }

    // MARK: Dead letters

    func readDeadLetters() async throws -> [KafkaConsumerMessage] {
        do {
            return try await TopicReader(kafka: runtime.configuration.kafka, logger: quietLogger).readAll(topic: deadLetterTopic, timeout: .seconds(30))
        } catch let error as KafkaError where error.code == .unknownTopicOrPartition {
            return []
        }
    }

    struct Letter {
        let message: KafkaConsumerMessage
        var id: String { "\(message.partition)/\(message.offset)" }
        var origin: DeadLetterOrigin? { message.deadLetterOrigin }
        var eventID: String? { message.cloudEventID }
        var employee: String? { message.key.map { String(decoding: $0, as: UTF8.self) } }
        var reason: String { message.headers[string: "dlq-reason"] ?? message.headers[string: DeadLetterOrigin.Name.exceptionFQCN] ?? "-" }
        var error: String { message.headers[string: DeadLetterOrigin.Name.exceptionMessage] ?? "" }
        var originalTime: Date? {
            (origin?.timestampMs ?? message.timestampMilliseconds).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
    }

    func deadLetters(_ p: Principal, _ request: Request) async throws -> Page {
        let q = request.uri.queryParameters
        let reason = q.get("reason").flatMap { $0.isEmpty ? nil : $0 }
        let employee = q.get("employee").flatMap { $0.isEmpty ? nil : $0.trimmingCharacters(in: .whitespaces) }
        let sinceText = q.get("since").flatMap { $0.isEmpty ? nil : $0 }
        let since = sinceText.flatMap { RFC3339.parse($0) ?? RFC3339.parse($0 + "T00:00:00Z") }
        let all = try await readDeadLetters().map(Letter.init)
        let letters = all.filter { l in
            (reason == nil || l.reason == reason) && (employee == nil || l.employee == employee)
                && (since == nil || (l.originalTime ?? .distantPast) >= since!)
        }
        let reasons = Set(all.map(\.reason)).union(DeadLetterReason.allCases.map(\.rawValue)).sorted()
        let options: [HTML] = (["" ] + reasons).map { r in
            "<option value=\"\(r)\"\(r == (reason ?? "") ? HTML(" selected") : "")>\(r.isEmpty ? "any" : r)</option>"
        }
        let rows: [HTML] = letters.reversed().map { l in
            """
            <tr>
              \(p.canOperate ? HTML("<td><input type=\"checkbox\" name=\"letters\" value=\"\(l.id)\" id=\"sel-\(l.message.partition)-\(l.message.offset)\" form=\"replay-form\" aria-label=\"Select \(l.eventID ?? l.id)\"></td>") : "")
              <td>\(l.originalTime.map(RFC3339.format) ?? "-")</td>
              <td>\(l.employee.map { e -> HTML in "<a href=\"/console/employees/\(HTML.query(e))\">\(e)</a>" } ?? "-")</td>
              <td><a href="/console/dead-letters/\(l.id)">\(l.eventID ?? l.id)</a></td>
              <td>\(l.message.headers[string: "ce_type"] ?? "-")</td>
              <td>\(l.reason)</td>
              <td>\(String(l.error.prefix(140)))</td>
            </tr>
            """
        }
        let body: HTML = """
            <form method="get" action="/console/dead-letters" class="filters">
              <p><label for="reason">Reason</label> <select id="reason" name="reason">\(options)</select></p>
              <p><label for="employee">Employee id</label> <input id="employee" name="employee" value="\(employee ?? "")"></p>
              <p><label for="since">Original record at or after (RFC 3339 or a date)</label> <input id="since" name="since" value="\(sinceText ?? "")" placeholder="2026-11-01"></p>
              <p><button type="submit">Filter</button> <a href="/console/dead-letters">Clear</a></p>
            </form>
            <p>\(letters.count) of \(all.count) dead letter(s) on <code>\(deadLetterTopic)</code>, newest first.</p>
            \(letters.isEmpty ? "" : HTML("""
            \(p.canOperate ? HTML("""
            <form method="post" action="/console/dead-letters/replay" id="replay-form">\(csrfField(p))
              <p><button type="submit">Preview replay of the selected</button> <button type="button" class="link" data-select-all="letters">Select all shown</button></p>
            </form>
            """) : "")
            <table class="wide">
              <thead><tr>\(p.canOperate ? HTML("<th scope=\"col\"><span class=\"visually-hidden\">Select</span></th>") : "")<th scope="col">Original time</th><th scope="col">Employee</th><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Reason</th><th scope="col">Error</th></tr></thead>
              <tbody>\(rows)</tbody>
            </table>
            """))
            """
        return Page(title: "Dead letters", body: body, section: "dead-letters")
    }

    static let secretLike = ["authorization", "secret", "token", "signature", "password", "skey", "cookie", "api-key", "apikey"]

    /// A header value fit to show: secret-looking headers are never rendered.
    static func shown(_ h: KafkaHeader, origin: DeadLetterOrigin?) -> String {
        let name = h.key.lowercased()
        if secretLike.contains(where: { name.contains($0) }) { return "[redacted]" }
        if let origin {
            switch h.key {
            case DeadLetterOrigin.Name.partition: return "\(origin.partition) (4-byte big-endian)"
            case DeadLetterOrigin.Name.offset: return "\(origin.offset) (8-byte big-endian)"
            case DeadLetterOrigin.Name.timestamp: return "\(origin.timestampMs ?? -1) (8-byte big-endian)"
            default: break
            }
        }
        return h.stringValue ?? h.value.map { "base64:" + Data($0).base64EncodedString() } ?? "(null)"
    }

    func findLetter(partition: String?, offset: String?) async throws -> Letter? {
        guard let partition = partition.flatMap(Int32.init), let offset = offset.flatMap(Int64.init) else { return nil }
        return try await readDeadLetters().first { $0.partition == partition && $0.offset == offset }.map(Letter.init)
    }

    /// The value to replay: the whole one from the store when the dead letter was cut.
    func wholeValue(_ l: Letter) async throws -> [UInt8]? {
        guard l.message.headers[string: "dlq-value-truncated"] != nil, let o = l.origin else { return l.message.value }
        return try await runtime.store.deadLetterOriginal(topic: o.topic, partition: o.partition, offset: o.offset) ?? l.message.value
    }

    func deadLetter(_ p: Principal, partition: String?, offset: String?) async throws -> Page {
        guard let l = try await findLetter(partition: partition, offset: offset) else {
            return Page(title: "No such dead letter", body: "<p class=\"error\" role=\"alert\">There is no dead letter at \(partition ?? "?")/\(offset ?? "?") on \(deadLetterTopic).</p>",
                        status: .notFound, section: "dead-letters")
        }
        let value = try await wholeValue(l)
        let text = value.flatMap { String(validating: $0, as: UTF8.self) }
        let headerRows: [HTML] = l.message.headers.map { h in
            "<tr><th scope=\"row\"><code>\(h.key)</code></th><td><code>\(Self.shown(h, origin: l.origin))</code></td></tr>"
        }
        let body: HTML = """
            <dl class="facts">
              <dt>Event</dt><dd>\(l.eventID ?? "-") (\(l.message.headers[string: "ce_type"] ?? "no type"))</dd>
              <dt>Employee</dt><dd>\(l.employee.map { e -> HTML in "<a href=\"/console/employees/\(HTML.query(e))\">\(e)</a>" } ?? "-")</dd>
              <dt>Reason</dt><dd>\(l.reason)\(l.message.headers[string: "dlq-error-code"].map { " (\($0))" } ?? "")</dd>
              <dt>Error</dt><dd class="error-text">\(l.error)</dd>
              <dt>Original record</dt><dd>\(l.origin.map { "\($0.topic) [\($0.partition)] offset \($0.offset)" } ?? "unknown")\(l.originalTime.map { ", \(RFC3339.format($0))" } ?? "")</dd>
              <dt>Dead letter</dt><dd>\(deadLetterTopic) [\(l.message.partition)] offset \(l.message.offset)</dd>
            </dl>
            <h2>Original event</h2>
            <pre class="value">\(text ?? value.map { "base64:" + Data($0).base64EncodedString() } ?? "(no value)")</pre>
            <h2>Headers</h2>
            <table><thead><tr><th scope="col">Header</th><th scope="col">Value</th></tr></thead><tbody>\(headerRows)</tbody></table>
            \(p.canOperate ? HTML("""
            <h2>Replay</h2>
            <form method="post" action="/console/dead-letters/replay">\(csrfField(p))
              <input type="hidden" name="letters" value="\(l.id)">
              <p><label for="value">Event to republish (correct it here if the fault is in the event; it is checked against the contract before anything is published)</label>
              <textarea id="value" name="value" rows="10" spellcheck="false">\(text ?? "")</textarea></p>
              <p><button type="submit">Preview replay</button></p>
            </form>
            """) : "")
            """
        return Page(title: "Dead letter \(l.eventID ?? l.id)", body: body, section: "dead-letters")
    }

    func replay(_ p: Principal, _ form: FormData) async throws -> Response {
        let ids = form.all("letters")
        guard !ids.isEmpty else {
            return Self.html(.badRequest, layout(Page(title: "Nothing selected", body: "<p class=\"error\" role=\"alert\">Select at least one dead letter to replay.</p> <p><a href=\"/console/dead-letters\">Back to the dead letters</a></p>",
                                                      status: .badRequest, section: "dead-letters"), p))
        }
        let all = try await readDeadLetters()
        var letters: [Letter] = []
        for id in ids {
            let parts = id.split(separator: "/")
            guard parts.count == 2, let partition = Int32(parts[0]), let offset = Int64(parts[1]),
                  let m = all.first(where: { $0.partition == partition && $0.offset == offset }) else {
                return Self.html(.notFound, layout(Page(title: "No such dead letter", body: "<p class=\"error\" role=\"alert\">There is no dead letter \(id) on \(deadLetterTopic).</p>",
                                                        status: .notFound, section: "dead-letters"), p))
            }
            letters.append(Letter(message: m))
        }
        // An operator's correction applies to one dead letter only.
        let edited = letters.count == 1 ? form.first("value").map { $0.replacingOccurrences(of: "\r\n", with: "\n") } : nil
        var messages: [(letter: Letter, message: KafkaProducerMessage, problem: String?, changed: Bool)] = []
        for l in letters {
            let whole = try await wholeValue(l)
            let original = whole.flatMap { String(validating: $0, as: UTF8.self) }
            let changed = edited != nil && edited != original
            let value = changed ? edited.map { Array($0.utf8) } : whole
            let message = try DeadLetterReplay.message(for: l.message, value: value, by: p.name, edited: changed)
            messages.append((l, message, DeadLetterReplay.validationProblem(of: l.message, value: value), changed))
        }
        let rows: [HTML] = messages.map { m in
            """
            <tr><td>\(m.letter.eventID ?? m.letter.id)</td><td>\(m.letter.employee ?? "-")</td><td><code>\(m.message.topic)</code></td>
            <td>\(m.changed ? "corrected" : "as it was")</td>
            <td>\(m.problem.map { p -> HTML in "<span class=\"bad\">will be dead-lettered again: \(p)</span>" } ?? "<span class=\"good\">valid</span>")</td></tr>
            """
        }
        let table: HTML = """
            <table class="wide"><thead><tr><th scope="col">Event</th><th scope="col">Employee</th><th scope="col">To</th><th scope="col">Value</th><th scope="col">Contract check</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
        guard form.first("confirm") == "yes" else {
            let hidden: [HTML] = letters.map { "<input type=\"hidden\" name=\"letters\" value=\"\($0.id)\">" }
            let body: HTML = """
                <p>Dry run: nothing has been published. Replaying republishes each event to its original topic with a <code>dlq-replayed-at</code> header;
                the worker processes it again, and replaying something already applied changes nothing in Duo.</p>
                \(table)
                <form method="post" action="/console/dead-letters/replay">\(csrfField(p))\(hidden)
                  \(edited.map { v -> HTML in "<textarea name=\"value\" hidden aria-hidden=\"true\">\(v)</textarea>" } ?? "")
                  <input type="hidden" name="confirm" value="yes">
                  <p><button type="submit" class="primary">Replay \(messages.count) dead letter(s)</button> <a href="/console/dead-letters">Cancel</a></p>
                </form>
                """
            return Self.html(.ok, layout(Page(title: "Preview: replay \(messages.count) dead letter(s)", body: body, section: "dead-letters"), p))
        }
        let reports = await runtime.pipeline.producer.send(batch: messages.map(\.message))
        let failed = reports.enumerated().compactMap { i, r -> String? in
            if case .failure(let e) = r { return "\(messages[i].letter.eventID ?? messages[i].letter.id): \(e)" } else { return nil }
        }
        let done = messages.count - failed.count
        let targets = messages.map { $0.letter.eventID ?? $0.letter.id }.joined(separator: ",")
        try await audit(p, action: "dlq.replay", target: targets,
                        detail: "replayed \(done) of \(messages.count)\(messages.contains { $0.changed } ? " (corrected value)" : "")\(failed.isEmpty ? "" : "; failed: \(failed.joined(separator: "; "))")")
        let body: HTML = """
            <p role="status" class="\(failed.isEmpty ? "good" : "bad")">Replayed \(done) dead letter(s).\(failed.isEmpty ? "" : " \(failed.count) could not be published: \(failed.joined(separator: "; "))")</p>
            \(table)
            <p>Follow the results on the results topic, or on each employee's page. <a href="/console/dead-letters">Back to the dead letters</a></p>
            """
        return Self.html(failed.isEmpty ? .ok : .badGateway, layout(Page(title: "Replayed", body: body, section: "dead-letters"), p))
    }

    // MARK: Held deprovisions

    var held: HeldCommands { HeldCommands(store: runtime.store, configuration: runtime.configuration.pipeline) }

    func holds(_ p: Principal) async throws -> Page {
        let list = try await held.list()
        let rows: [HTML] = list.map { c in
            """
            <tr>
              \(p.canOperate ? HTML("<td><input type=\"checkbox\" name=\"ids\" value=\"\(c.id)\" form=\"holds-form\" aria-label=\"Select command \(c.id)\"></td>") : "")
              <td class="num">\(c.id)</td><td><a href="/console/employees/\(HTML.query(c.command.employeeID))">\(c.command.employeeID)</a></td>
              <td>\(c.command.desired.username ?? "-")</td><td>\(c.command.eventType.rawValue)</td><td>\(c.command.eventID)</td>
              <td>\(RFC3339.format(c.createdAt))</td>
            </tr>
            """
        }
        // "Approve all N" decides the N on this page, not whatever is held when the form arrives.
        let shown: HTML = "<input type=\"hidden\" name=\"all\" value=\"\(list.count)\">\(list.map { c -> HTML in "<input type=\"hidden\" name=\"ids\" value=\"\(c.id)\">" })"
        let guardText: HTML = runtime.configuration.pipeline.massDeprovisionGuard.map { g in
            "<p>The mass-deprovision guard holds a disable once more than \(g.maxDisables.map(String.init) ?? "-") disables\(g.maxPercent.map { " or \($0)% of linked users" } ?? "") happen within \(String(describing: g.window)).</p>"
        } ?? "<p>The mass-deprovision guard is off (no <code>guard:</code> section).</p>"
        let body: HTML = """
            \(guardText)
            <p>\(list.count) held deprovision(s). Approving lets a disable run (one whose employee has a newer change is superseded instead); rejecting drops it for good.</p>
            \(list.isEmpty || !p.canOperate ? "" : HTML("""
            <form method="post" id="holds-form">\(csrfField(p))
              <p>
                <button type="submit" formaction="/console/holds/approve">Approve selected</button>
                <button type="submit" formaction="/console/holds/reject" class="danger">Reject selected</button>
                <button type="button" class="link" data-select-all="ids">Select all</button>
              </p>
            </form>
            <form method="post" action="/console/holds/approve" class="inline">\(csrfField(p))\(shown)
              <button type="submit">Approve all \(list.count)</button></form>
            <form method="post" action="/console/holds/reject" class="inline">\(csrfField(p))\(shown)
              <button type="submit" class="danger">Reject all \(list.count)</button></form>
            """))
            \(list.isEmpty ? "" : HTML("""
            <table class="wide"><thead><tr>\(p.canOperate ? HTML("<th scope=\"col\"><span class=\"visually-hidden\">Select</span></th>") : "")<th scope="col" class="num">Command</th><th scope="col">Employee</th><th scope="col">Username</th><th scope="col">Event type</th><th scope="col">Event</th><th scope="col">Held since</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """))
            """
        return Page(title: "Held deprovisions", body: body, section: "holds")
    }

    func decide(_ p: Principal, _ form: FormData, decision: String) async throws -> Response {
        guard decision == "approve" || decision == "reject" else {
            return Self.html(.notFound, layout(Page(title: "Not found", body: "<p class=\"error\" role=\"alert\">Unknown decision.</p>", status: .notFound), p))
        }
        let list = try await held.list()
        // The list page's "all" forms carry the ids they showed; a bare `all` (no ids) means every held one.
        let all = form.first("all") != nil
        let posted = form.all("ids").compactMap(Int64.init)
        let ids = all && posted.isEmpty ? list.map(\.id) : posted
        let chosen = list.filter { ids.contains($0.id) }
        let heldSince = all ? list.count - chosen.count : 0
        guard !chosen.isEmpty else {
            return Self.html(.badRequest, layout(Page(title: "Nothing to decide", body: """
                <p class="error" role="alert">No held deprovision is selected (or those selected were decided meanwhile).</p><p><a href="/console/holds">Back to the held deprovisions</a></p>
                """, status: .badRequest, section: "holds"), p))
        }
        let verb = decision == "approve" ? "Approve" : "Reject"
        // The confirmation names the count; it must still be the count when confirmed.
        guard form.first("confirm") == "yes", form.first("count") == String(chosen.count) else {
            let hidden: [HTML] = chosen.map { "<input type=\"hidden\" name=\"ids\" value=\"\($0.id)\">" }
            let names: [HTML] = chosen.map { "<li>\($0.command.employeeID) (\($0.command.desired.username ?? "no username")), command \($0.id)</li>" }
            let body: HTML = """
                <p>\(verb) \(chosen.count) held deprovision(s)? \(decision == "approve" ? "Their Duo users are disabled within seconds." : "They are never applied; their events' results say rejected.")</p>
                \(form.first("confirm") == "yes" ? HTML("<p class=\"error\" role=\"alert\">The held deprovisions changed since the confirmation was shown: check the list again.</p>") : "")
                \(heldSince > 0 ? HTML("<p class=\"error\" role=\"alert\">\(heldSince) more deprovision(s) were held after the list was shown. They are not part of this decision: <a href=\"/console/holds\">check the list again</a> to decide them.</p>") : "")
                <ul>\(names)</ul>
                <form method="post" action="/console/holds/\(decision)">\(csrfField(p))\(hidden)
                  <input type="hidden" name="confirm" value="yes"><input type="hidden" name="count" value="\(chosen.count)">
                  <p><button type="submit" class="\(decision == "approve" ? "primary" : "danger")">\(verb) \(chosen.count) held deprovision(s)</button> <a href="/console/holds">Cancel</a></p>
                </form>
                """
            return Self.html(.ok, layout(Page(title: "Confirm: \(verb.lowercased()) \(chosen.count)", body: body, section: "holds"), p))
        }
        let result = decision == "approve" ? try await held.approve(ids: chosen.map(\.id)) : try await held.reject(ids: chosen.map(\.id))
        let summary = decision == "approve"
            ? "approved \(result.approved.count), superseded \(result.superseded.count)"
            : "rejected \(result.rejected.count)"
        try await audit(p, action: "holds.\(decision)", target: chosen.map { "\($0.id):\($0.command.employeeID)" }.joined(separator: ","), detail: summary)
        let body: HTML = """
            <p role="status" class="good">Done: \(summary).\(result.notHeld.isEmpty ? "" : " \(result.notHeld.count) were no longer held.")</p>
            <p><a href="/console/holds">Back to the held deprovisions</a></p>
            """
        return Self.html(.ok, layout(Page(title: "\(verb)d", body: body, section: "holds"), p))
    }

    // MARK: Employees

    func employees(_ p: Principal, query: String?) async throws -> Page {
        let q = query?.trimmingCharacters(in: .whitespaces) ?? ""
        var matches: [EmployeeState] = []
        if !q.isEmpty {
            let needle = q.lowercased()
            let links = try await runtime.store.allDuoLinks()
            let linked = Set(links.filter { $0.username.lowercased() == needle }.map(\.employeeID))
            matches = try await runtime.store.allEmployeeStates().filter { s in
                s.employeeID.lowercased() == needle || linked.contains(s.employeeID)
                    || s.desired.username?.lowercased() == needle || s.desired.email?.lowercased() == needle
                    || (s.knownUsernames ?? []).contains { $0.lowercased() == needle }
                    || (needle.count >= 3 && (s.employeeID.lowercased().contains(needle) || (s.desired.email?.lowercased().contains(needle) ?? false)
                                               || (s.desired.username?.lowercased().contains(needle) ?? false)))
            }
        }
        let rows: [HTML] = matches.prefix(200).map { s in
            """
            <tr><td><a href="/console/employees/\(HTML.query(s.employeeID))">\(s.employeeID)</a></td><td>\(s.desired.username ?? "-")</td>
            <td>\(s.desired.email ?? "-")</td><td>\(s.desired.terminated ? "terminated" : "active")</td></tr>
            """
        }
        let body: HTML = """
            <form method="get" action="/console/employees" role="search">
              <p><label for="q">Employee id, username or email</label> <input id="q" name="q" type="search" value="\(q)" autofocus> <button type="submit">Search</button></p>
            </form>
            \(q.isEmpty ? "" : HTML("""
            <p>\(matches.count) match(es) for “\(q)”.</p>
            \(matches.isEmpty ? "" : HTML("""
            <table class="wide"><thead><tr><th scope="col">Employee</th><th scope="col">Username</th><th scope="col">Email</th><th scope="col">HR state</th></tr></thead><tbody>\(rows)</tbody></table>
            """))
            """))
            """
        return Page(title: "Employees", body: body, section: "employees")
    }

    func employee(_ p: Principal, id: String) async throws -> Page {
        let state = try await runtime.store.write { tx in try await tx.employeeState(id) }
        let links = try await runtime.store.allDuoLinks().filter { $0.employeeID == id }
        let commands = try await runtime.store.allCommands().filter { $0.command.employeeID == id }.sorted { $0.id > $1.id }
        guard state != nil || !commands.isEmpty else {
            return Page(title: "No employee \(id)", body: "<p class=\"error\" role=\"alert\">The store knows no employee \(id).</p><p><a href=\"/console/employees\">Search</a></p>",
                        status: .notFound, section: "employees")
        }
        var users: [DuoUser] = []
        var duoProblem: String?
        for userID in ([state?.duoUserID].compactMap { $0 } + links.map(\.duoUserID)) where !users.contains(where: { $0.userID == userID }) {
            do { users.append(try await runtime.client.getUser(id: userID)) } catch { duoProblem = "\(error)" }
        }
        if users.isEmpty, let name = state?.desired.username {
            do { if let u = try await runtime.client.findUser(username: name) { users.append(u) } } catch { duoProblem = "\(error)" }
        }
        let hr: HTML = state.map { s in
            let d = s.desired
            return """
                <dl class="facts">
                  <dt>HR state</dt><dd>\(d.terminated ? "terminated" : "active")\(s.terminationEffectiveAt.map { " (leaving \(RFC3339.format($0)))" } ?? "")</dd>
                  <dt>Username</dt><dd>\(d.username ?? "-")</dd>
                  <dt>Email</dt><dd>\(d.email ?? "-")</dd>
                  <dt>Name</dt><dd>\(d.realname ?? "-")</dd>
                  <dt>Groups wanted</dt><dd>\(d.groups.map { $0.sorted().joined(separator: ", ") } ?? "-")</dd>
                </dl>
                """
        } ?? "<p>No HR state yet.</p>"
        let duo: [HTML] = users.map { u in
            let login = u.lastLogin.map { RFC3339.format(Date(timeIntervalSince1970: TimeInterval($0))) } ?? "never"
            return """
                <dl class="facts">
                  <dt>Duo user</dt><dd>\(u.username) (<code>\(u.userID)</code>)</dd>
                  <dt>Status</dt><dd class="\(u.status == .active ? "" : "bad")">\(u.status.rawValue)</dd>
                  <dt>Enrollment</dt><dd>\((u.isEnrolled ?? false) ? "enrolled" : "not enrolled"), \(u.phones.count) phone(s)</dd>
                  <dt>Last login</dt><dd>\(login)</dd>
                  <dt>Groups</dt><dd>\(u.groups.map(\.name).sorted().joined(separator: ", "))</dd>
                </dl>
                """
        }
        let timeline: [HTML] = commands.prefix(50).map { c in
            """
            <tr><td>\(RFC3339.format(c.createdAt))</td><td>\(c.command.eventType.rawValue)</td><td>\(c.command.eventID)</td>
            <td>\(c.state.rawValue)</td><td class="num">\(c.attempts)</td><td>\(c.lastError ?? "")</td></tr>
            """
        }
        let body: HTML = """
            <section aria-labelledby="hr-h"><h2 id="hr-h">HR</h2>\(hr)</section>
            <section aria-labelledby="duo-h"><h2 id="duo-h">Duo</h2>
              \(duo.isEmpty ? HTML("<p>No Duo user\(duoProblem.map { " (Duo did not answer: \($0))" } ?? "").</p>") : duo.joined())
            </section>
            <section aria-labelledby="timeline-h"><h2 id="timeline-h">Event timeline</h2>
              <table class="wide"><thead><tr><th scope="col">Received</th><th scope="col">Event type</th><th scope="col">Event</th><th scope="col">Outcome</th><th scope="col" class="num">Attempts</th><th scope="col">Last error</th></tr></thead>
              <tbody>\(timeline)</tbody></table>
            </section>
            """
        return Page(title: "Employee \(id)", body: body, section: "employees")
    }

    // MARK: Findings

    func findings(_ p: Principal, kind: String?) -> Page {
        let latest = runtime.latestReconcile
        guard let report = latest.value else {
            let body: HTML = """
                <p>No reconcile has run in this process yet\(latest.isRunning ? HTML(" (one is running now: reload in a moment)") : "").
                Schedule one with <code>reconcile.every</code>, or run a dry-run audit now.</p>
                \(p.canOperate && !latest.isRunning ? HTML("<form method=\"post\" action=\"/console/findings/run\">\(csrfField(p))<p><button type=\"submit\">Run a dry-run audit now</button></p></form>") : "")
                """
            return Page(title: "Findings", body: body, section: "findings")
        }
        let kinds = AuditFinding.Kind.allCases.map(\.rawValue)
        let summary: [HTML] = kinds.map { k in
            let n = report.summary[k] ?? 0
            return "<tr><th scope=\"row\">\(n > 0 ? HTML("<a href=\"/console/findings?kind=\(k)\">\(k)</a>") : HTML("\(k)"))</th><td class=\"num\">\(n)</td></tr>"
        }
        let shown = report.findings.filter { kind == nil || kind == "" || $0.kind.rawValue == kind }
        let rows: [HTML] = shown.prefix(500).map { f in
            """
            <tr><td>\(f.kind.rawValue)</td><td>\(f.severity.rawValue)</td>
            <td>\(f.employeeID.map { e -> HTML in "<a href=\"/console/employees/\(HTML.query(e))\">\(e)</a>" } ?? "-")</td>
            <td>\(f.username ?? "-")</td><td>\(f.detail)</td><td>\(f.fix.rawValue)</td></tr>
            """
        }
        let body: HTML = """
            <p>Run \(report.runID): \(report.usersRead) Duo user(s) against \(report.employees) employee(s), finished \(RFC3339.format(report.finishedAt)).</p>
            \(p.canOperate && !latest.isRunning ? HTML("<form method=\"post\" action=\"/console/findings/run\">\(csrfField(p))<p><button type=\"submit\">Run a dry-run audit now</button></p></form>") : "")
            <table><thead><tr><th scope="col">Kind</th><th scope="col" class="num">Findings</th></tr></thead><tbody>\(summary)</tbody></table>
            <h2>\(kind.flatMap { $0.isEmpty ? nil : $0 } ?? "All findings") (\(shown.count))</h2>
            \(shown.isEmpty ? "" : HTML("""
            <table class="wide"><thead><tr><th scope="col">Kind</th><th scope="col">Severity</th><th scope="col">Employee</th><th scope="col">Username</th><th scope="col">Detail</th><th scope="col">Fix</th></tr></thead><tbody>\(rows)</tbody></table>
            """))
            """
        return Page(title: "Findings", body: body, section: "findings")
    }

    func runAudit(_ p: Principal) async throws -> Response {
        let latest = runtime.latestReconcile
        if latest.begin() {
            // A run that cannot be recorded does not start, and must not stay marked as running:
            // that would hide the button until the process restarts.
            do { try await audit(p, action: "reconcile.dry_run", target: "duo", detail: "started from the console") } catch { latest.end(); throw error }
            let reconciler = DirectoryReconciler(configuration: runtime.configuration, store: runtime.store, client: runtime.client, logger: logger)
            let logger = self.logger
            Task {
                defer { latest.end() }
                do { latest.set(try await reconciler.audit(roster: nil)) } catch { logger.error("Console audit failed", metadata: ["error": "\(error)"]) }
            }
        }
        return Response.redirect(to: "/console/findings", type: .normal)
    }

    // MARK: Audit trail

    func auditTrail(_ p: Principal) async throws -> Page {
        let entries = try await runtime.store.auditLog(limit: 200)
        let rows: [HTML] = entries.map { e in
            "<tr><td>\(RFC3339.format(e.at))</td><td>\(e.actor)</td><td>\(e.role)</td><td>\(e.action)</td><td>\(e.target)</td><td>\(e.detail)</td></tr>"
        }
        let body: HTML = """
            <p>Every console action, newest first (the last 200). Each is also published to <code>\(configuration.auditTopic)</code>.</p>
            \(entries.isEmpty ? "<p>No action yet.</p>" : HTML("""
            <table class="wide"><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Role</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th></tr></thead><tbody>\(rows)</tbody></table>
            """))
            """
        return Page(title: "Audit trail", body: body, section: "audit")
    }
}
