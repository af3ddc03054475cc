import Foundation
import JSONText
import Testing

/// The hand-written JSON reader reads what `JSONSerialization` reads, to the same values, and
/// refuses what it refuses.
@Suite("JSON reader")
struct JSONValueTests {
    /// The parsed value as `JSONSerialization` gives it, to compare the two.
    static func foundation(_ v: JSONValue) -> NSObject {
        switch v {
        case .null: return NSNull()
        case .bool(let b): return NSNumber(value: b)
        case .number(let text): return Int64(text).map { NSNumber(value: $0) } ?? NSNumber(value: Double(text)!)
        case .string(let s): return s as NSString
        case .array(let items): return items.map(foundation) as NSArray
        case .object(let members): return Dictionary(members.map { ($0.key, foundation($0.value)) }, uniquingKeysWith: { a, _ in a }) as NSDictionary
        }
    }

    static let valid = [
        #"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-0.5e-3,"g":1E+2,"h":0,"i":-12}"#,
        #"  [ ]  "#, #"{}"#, #""plain""#, "7", "-0", "1.25",
        #""esc \" \\ \/ \b \f \n \r \t \u00e9 \u0001 \ud83d\ude00 end""#,
        "\"raw UTF-8: J\u{F6}s\u{E9} \u{1F600} \u{4E2D}\"",
        #"{"big":9007199254740993,"neg":-9223372036854775808,"frac":1790000000123.5}"#,
        " {\n\t\"spaced\" : [ 1 , 2 ] \r\n} ",
        #"[[[[[]]]]]"#,
    ]

    @Test("Documents JSONSerialization reads are read to the same values, strings, escapes and numbers alike")
    func readsWhatFoundationReads() throws {
        for text in Self.valid {
            let mine = try JSONValue.parse(Array(text.utf8))
            let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as! NSObject
            #expect(Self.foundation(mine) == theirs, "\(text)")
        }
        #expect(try JSONValue.parse(Array(#"{"big":9007199254740993}"#.utf8))["big"]?.int64Value == 9_007_199_254_740_993)
        #expect(try JSONValue.parse(Array(#""\ud83d\ude00""#.utf8)) == .string("\u{1F600}"))
    }

    @Test("What is not JSON is refused with where it stopped", arguments: [
        "", " ", "{", "}", "[1,]", "[1 2]", #"{"a":1,}"#, #"{"a" 1}"#, #"{a:1}"#, "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
        "\"open", "\"bad \\x escape\"", "\"ctl \u{01}\"", #""\ud83d""#, #""\ude00""#, #""\ud83d\u0041""#, #""\u12g4""#, "[1] 2", "NaN",
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(throws: JSONValue.SyntaxError.self, "\(text)") { try JSONValue.parse(Array(text.utf8)) }
        // Foundation lets a trailing comma pass; RFC 8259 does not.
        if !["[1,]", #"{"a":1,}"#].contains(text) {
            #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) == nil, "Foundation reads \(text)")
        }
    }

    @Test("Invalid UTF-8 in a string and nesting past the bound are refused")
    func refusesInvalidUTF8AndDeepNesting() throws {
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: JSONValue.maxDepth + 1) + String(repeating: "]", count: JSONValue.maxDepth + 1)
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let deepest = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        _ = try JSONValue.parse(Array(deepest.utf8))
    }

    @Test("The deepest nesting allowed, objects and arrays, reads on a thread of Swift's concurrency pool (where events are decoded) without exhausting its stack")
    func deepestNestingOnThePool() async throws {
        let depth = JSONValue.maxDepth / 2
        let deepest = String(repeating: #"{"a":["#, count: depth) + String(repeating: "]}", count: depth)
        let value = try await Task.detached { try JSONValue.parse(Array(deepest.utf8)) }.value
        var v = value, levels = 0
        while let inner = v["a"]?.arrayValue?.first ?? v["a"] { v = inner; levels += 1 }
        #expect(levels == depth)
    }

    @Test("Asked to, a trailing comma passes where JSONSerialization lets it pass, and nowhere else")
    func trailingCommasWhenAsked() throws {
        for text in ["[1,]", #"{"a":1,}"#, #"{"a":[1, 2 , ] , }"#, "[ [ ], ]"] {
            let mine = try JSONValue.parse(Array(text.utf8), trailingCommas: true)
            let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! NSObject
            #expect(Self.foundation(mine) == theirs, "\(text)")
            #expect(throws: JSONValue.SyntaxError.self, "\(text)") { try JSONValue.parse(Array(text.utf8)) }
        }
        for text in ["[,]", "[1,,]", #"{,}"#, #"{"a":1,,}"#, "[1,"] {
            #expect(throws: JSONValue.SyntaxError.self, "\(text)") { try JSONValue.parse(Array(text.utf8), trailingCommas: true) }
        }
    }

    @Test("A value read and written again is the same document, members in order, numbers as written")
    func writesBackTheSameDocument() throws {
        let text = #"{"z":1.50,"a":[1e3,-0,"x\"y",null,true],"m":{"k":"\u00e9"}}"#
        var json = JSONText()
        json.value(try JSONValue.parse(Array(text.utf8)))
        #expect(String(decoding: json.bytes, as: UTF8.self) == "{\"z\":1.50,\"a\":[1e3,-0,\"x\\\"y\",null,true],\"m\":{\"k\":\"\u{E9}\"}}")
    }
}
