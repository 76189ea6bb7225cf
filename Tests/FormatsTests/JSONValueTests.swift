import Foundation
import TesseraFormats
import XCTest

final class JSONValueTests: XCTestCase {
    func parse(_ s: String) throws -> JSONValue { try JSONValue.parse(Data(s.utf8), path: "t.json") }

    func testValues() throws {
        let v = try parse(#" {"a": [1, -2, 3.5, 1e3, 9223372036854775807, 9223372036854775808, -0], "b": {"c": null, "d": true},"#
            + #" "e": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude80", "f": false, "g": "", "h": [], "i": {}} "#)
        XCTAssertEqual(v["a"], .array([.int(1), .int(-2), .double(3.5), .double(1000), .int(Int64.max),
                                      .double(9223372036854775808), .int(0)]))
        XCTAssertEqual(v["a"]?.array?[3].int, 1000)
        XCTAssertNil(v["a"]?.array?[2].int)
        XCTAssertEqual(v["a"]?.array?[0].double, 1)
        XCTAssertEqual(v["b"]?["c"], .null)
        XCTAssertEqual(v["b"]?["d"]?.bool, true)
        XCTAssertEqual(v["e"]?.string, "x\"\\/\u{8}\u{c}\n\r\té🚀")
        XCTAssertEqual(v["f"], .bool(false))
        XCTAssertEqual(v["g"]?.string, "")
        XCTAssertEqual(v["h"]?.array, [])
        XCTAssertEqual(v["i"]?.object, [:])
        XCTAssertNil(v["zz"])
        XCTAssertNil(v["a"]?["x"])
        // Decodable agrees with the parser.
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"x": [1, 2.5, "s", null, true]}"#.utf8))
        XCTAssertEqual(decoded, try parse(#"{"x": [1, 2.5, "s", null, true]}"#))
    }

    func testErrors() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"\\ud800\"", "tru", "[1] 2", "\"a\nb\"",
                    "{\"a\":1,}", "nul", "\"\u{1}\""] {
            assertFormatError(["t.json", "invalid JSON"]) { try parse(bad) }
        }
        assertFormatError(["nesting deeper"]) { try parse(String(repeating: "[", count: 100_000)) }
        assertFormatError(["invalid UTF-8"]) { try JSONValue.parse(Data([0x22, 0xFF, 0x22]), path: "t.json") }
    }
}
