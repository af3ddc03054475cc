import Foundation

/// Where Duo is and the credentials to reach it, as a user writes them (command-line options,
/// environment variables or a configuration file): the one place that turns them into a
/// ``DuoAdminConfiguration`` and explains what is missing.
public struct DuoCredentials: Sendable {
    /// The fields, for messages; each front end spells them its own way (`--api-url`, `duo.api_url`).
    public enum Field: Sendable { case apiURL, apiHost, ikey, skey, skeyFile }

    /// A missing or unusable credential. The message never contains the secret itself.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public var apiURL: String?
    public var apiHost: String?
    public var ikey: String?
    public var skey: String?
    public var skeyFile: String?

    public init(apiURL: String? = nil, apiHost: String? = nil, ikey: String? = nil, skey: String? = nil, skeyFile: String? = nil) {
        self.apiURL = apiURL
        self.apiHost = apiHost
        self.ikey = ikey
        self.skey = skey
        self.skeyFile = skeyFile
    }

    /// The client configuration, or a problem that names the field as `name` spells it.
    /// `api_url` wins over `api_host`; `skey_file` wins over `skey`.
    public func configuration(naming name: (Field) -> String) throws(Problem) -> DuoAdminConfiguration {
        let endpoint: DuoAdminConfiguration.Endpoint
        if let apiURL {
            guard URL(string: apiURL)?.host != nil else {
                throw Problem(description: "\(name(.apiURL)) must be a URL such as http://127.0.0.1:8081, got '\(apiURL)'")
            }
            endpoint = .url(apiURL)
        } else if let apiHost, !apiHost.isEmpty {
            endpoint = .host(apiHost)
        } else {
            throw Problem(description: "Say where Duo is: \(name(.apiHost)) (a real Duo host) or \(name(.apiURL)) (any URL, such as the emulator's)")
        }
        guard let ikey, !ikey.isEmpty else { throw Problem(description: "Missing the integration key: \(name(.ikey))") }
        let secret: String
        if let skeyFile {
            guard let text = try? String(contentsOfFile: skeyFile, encoding: .utf8) else {
                throw Problem(description: "Cannot read \(name(.skeyFile)) \(skeyFile)")
            }
            secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let skey {
            secret = skey
        } else {
            throw Problem(description: "Missing the secret key: \(name(.skeyFile)) or \(name(.skey))")
        }
        guard !secret.isEmpty else { throw Problem(description: "The secret key is empty (\(name(skeyFile != nil ? .skeyFile : .skey)))") }
        return DuoAdminConfiguration(endpoint: endpoint, integrationKey: ikey, secretKey: DuoSecretKey(secret))
    }
}
