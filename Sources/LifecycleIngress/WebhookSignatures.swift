import Crypto
import Foundation

/// Signature schemes of the webhook formats. Every comparison is constant-time: a MAC is checked
/// with `HMAC.isValidAuthenticationCode`, a token through the digests of both sides.
public enum WebhookSignatures {
    // MARK: Standard Webhooks

    /// The bytes of a `whsec_<base64>` secret; nil when it is not one.
    public static func standardWebhookKey(_ secret: String) -> [UInt8]? {
        let trimmed = secret.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("whsec_"), let data = Data(base64Encoded: String(trimmed.dropFirst(6))), !data.isEmpty else { return nil }
        return Array(data)
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, as a Standard Webhooks sender writes it.
    public static func standardWebhookSignature(id: String, timestamp: Int64, body: [UInt8], key: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(id).\(timestamp).".utf8) + body, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// Whether any `v1,` signature in the space-separated header is valid under any key.
    public static func verifyStandardWebhook(id: String, timestamp: Int64, body: [UInt8], signatureHeader: String, keys: [[UInt8]]) -> Bool {
        let signed = Array("\(id).\(timestamp).".utf8) + body
        for candidate in signatureHeader.split(separator: " ") {
            let parts = candidate.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let mac = Data(base64Encoded: String(parts[1])), mac.count == 32 else { continue }
            for key in keys where HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: SymmetricKey(data: key)) {
                return true
            }
        }
        return false
    }

    // MARK: BambooHR

    /// The hex HMAC-SHA256 of the raw body followed by the timestamp, BambooHR's `X-BambooHR-Signature`.
    public static func bambooHRSignature(body: [UInt8], timestamp: String, key: [UInt8]) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: body + Array(timestamp.utf8), using: SymmetricKey(data: key)))
    }

    public static func verifyBambooHR(body: [UInt8], timestamp: String, signature: String, keys: [[UInt8]]) -> Bool {
        guard let mac = unhex(signature.trimmingCharacters(in: .whitespaces)), mac.count == 32 else { return false }
        let signed = body + Array(timestamp.utf8)
        return keys.contains { HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: SymmetricKey(data: $0)) }
    }

    // MARK: CloudEvents sources

    /// `sha256=<hex HMAC-SHA256 of the body>`.
    public static func bodySignature(body: [UInt8], key: [UInt8]) -> String {
        "sha256=" + hex(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: key)))
    }

    public static func verifyBodySignature(body: [UInt8], header: String, keys: [[UInt8]]) -> Bool {
        let value = header.trimmingCharacters(in: .whitespaces)
        guard value.lowercased().hasPrefix("sha256="), let mac = unhex(String(value.dropFirst(7))), mac.count == 32 else { return false }
        return keys.contains { HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: $0)) }
    }

    /// Whether `presented` equals one of `tokens`, in time that does not depend on where they differ.
    public static func tokenMatches(_ presented: String, _ tokens: [String]) -> Bool {
        let p = SHA256.hash(data: Array(presented.utf8))
        var matched = false
        for token in tokens {
            let t = SHA256.hash(data: Array(token.utf8))
            var difference: UInt8 = 0
            for (a, b) in zip(p, t) { difference |= a ^ b }
            matched = matched || difference == 0
        }
        return matched
    }

    // MARK: Hex

    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// RFC 6901 JSON Pointers over `JSONSerialization` values.
public enum JSONPointer {
    /// The value at `pointer` in `document`; nil when a step is missing. `""` is the document.
    static func resolve(_ pointer: String, in document: Any) -> Any? {
        guard !pointer.isEmpty else { return document }
        guard pointer.hasPrefix("/") else { return nil }
        var current: Any = document
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            if let object = current as? [String: Any] {
                guard let next = object[token] else { return nil }
                current = next
            } else if let array = current as? [Any] {
                guard let index = Int(token), index >= 0, index < array.count, String(index) == token else { return nil }
                current = array[index]
            } else {
                return nil
            }
        }
        return current is NSNull ? nil : current
    }

    /// Whether `text` is a syntactically valid pointer (`""` or `/…`, with `~` only as `~0` or `~1`).
    public static func isValid(_ text: String) -> Bool {
        guard text.isEmpty || text.hasPrefix("/") else { return false }
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if c == "~" { guard let n = chars.popFirst(), n == "0" || n == "1" else { return false } }
        }
        return true
    }
}
