import Foundation
import Testing
@testable import TollgateProviders

@Suite("Strict JSON validation")
struct JSONValidationTests {
    @Test("RFC 8259 documents pass", arguments: [
        #"{}"#,
        #" {"a" : [1, -0.5e-3, 0, 1E+2, true, false, null, "x\"\\\/\b\f\n\r\t\u00E9"], "b": {"c": []}} "#,
        "[]", #""s""#, "0", "-1.25", "null",
        #"{"\u00e9t\u00e9":"😀"}"#,
        String(repeating: "[", count: 512) + String(repeating: "]", count: 512),
    ])
    func valid(_ text: String) {
        #expect(throws: Never.self) { try JSONScanner.validate(Data(text.utf8)).get() }
    }

    @Test("everything else fails", arguments: [
        "", "   ", #"{"a":1,}"#, "[1,]", "[1 2]", #"{"a" 1}"#, "{a:1}", "{'a':1}", "01", "1.", ".5", "+1", "-",
        "1e", "tru", "NaN", #""a\u12""#, #""\x""#, "\"tab\there\"", "1 2", "{}}", "[", #""open"#,
        "// comment\n{}", String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
    ])
    func invalid(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.validate(Data(text.utf8)).get() }
    }

    @Test("the error names the offending byte")
    func offset() {
        #expect(throws: JSONSyntaxError(offset: 14, reason: "unexpected character '}'")) {
            try JSONScanner.validate(Data(#"{"model": "m",}"#.utf8)).get()
        }
        #expect(throws: JSONSyntaxError(offset: 3, reason: "unexpected end of document")) {
            try JSONScanner.validate(Data(#"[1,"#.utf8)).get()
        }
    }
}
