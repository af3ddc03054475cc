import ArgumentParser
import AsyncHTTPClient
import Foundation

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exit 0 if a health endpoint answers 200, else 1: a container health check that needs no shell or curl.",
        discussion: """
        The image's HEALTHCHECK runs it in exec form:
          HEALTHCHECK CMD ["duo-lifecycle", "health", "--url", "http://127.0.0.1:8080/healthz"]
        Use /readyz to ask "can it do work" instead of "is it alive".
        """
    )

    @Option(help: "The URL to GET.") var url: String = "http://127.0.0.1:8080/healthz"
    @Option(help: "How long to wait for the answer, in seconds.") var timeout: Int = 3

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw ValidationError("--url must be an http:// or https:// URL") }
        guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be 1 to 300 seconds") }
    }

    func run() async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(Int64(timeout)))
            let body = String(buffer: try await response.body.collect(upTo: 64 * 1024))
            print("\(response.status.code) \(body.trimmingCharacters(in: .whitespacesAndNewlines).prefix(200))")
            if response.status.code != 200 { throw ExitCode.failure }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Console.err("unhealthy: \(url): \(error)\n")
            throw ExitCode.failure
        }
    }
}
