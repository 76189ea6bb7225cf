import Foundation
import TesseraJinja
import TesseraTokenizer
import XCTest

/// Expressions: literals, operators and their precedence, attribute / subscript / slice access, Undefined.
/// Expected values follow Python / Jinja2 semantics (checked against jinja2 3.1).
final class JinjaExpressionTests: XCTestCase {
    func testLiteralsPrintLikePython() throws {
        XCTAssertEqual(try renderTemplate("{{ 42 }} {{ 4.5 }} {{ 'a' 'b' }} {{ \"q\" }} {{ true }} {{ False }} {{ none }}"),
                       "42 4.5 ab q True False None")
        XCTAssertEqual(try renderTemplate("{{ [1, 'x', none, true, 1.0] }} {{ {'k': 'v', 'n': [1]} }} {{ (1, 2)|list }} {{ [] }}"),
                       "[1, 'x', None, True, 1.0] {'k': 'v', 'n': [1]} [1, 2] []")
        XCTAssertEqual(try renderTemplate("{{ [\"it's\", 'a\"b', 'x\\ny'] }}"), "[\"it's\", 'a\"b', 'x\\ny']")
        XCTAssertEqual(try renderTemplate("{{ 1_000 }} {{ 1e3 }} {{ 2.5e-3 }}"), "1000 1000.0 0.0025")
    }

    func testFloatFormattingMatchesPythonRepr() throws {
        XCTAssertEqual(try renderTemplate("{{ 10 / 4 }} {{ 1e16 }} {{ 1e15 }} {{ 1/3 }} {{ 2.0 }} {{ -0.0 }} {{ 1e-4 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}"),
                       "2.5 1e+16 1000000000000000.0 0.3333333333333333 2.0 -0.0 0.0001 1e-05 0.30000000000000004")
        XCTAssertEqual(try renderTemplate("{{ 123456789.125 }} {{ 3e300 }} {{ 1.5e-7 }}"), "123456789.125 3e+300 1.5e-07")
    }

    func testStringEscapes() throws {
        XCTAssertEqual(try renderTemplate("{{ 'a\\tb\\\\c\\'d\\u00e9\\x41' }}|{{ \"line\\nnext\" }}"), "a\tb\\c'déA|line\nnext")
        XCTAssertEqual(try renderTemplate("{{ 'unknown \\d escape' }}"), "unknown \\d escape")
        XCTAssertEqual(try renderTemplate("{{ 'real\nnewline' }}"), "real\nnewline")
    }

    func testArithmetic() throws {
        XCTAssertEqual(try renderTemplate("{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}"),
                       "10 -3 21 3.5 3 -4 1 2 1024")
        XCTAssertEqual(try renderTemplate("{{ 1.5 + 1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }} {{ true + 1 }} {{ -(3) }} {{ +4 }}"),
                       "2.5 3.0 0.5 0.5 2 -3 4")
        XCTAssertEqual(try renderTemplate("{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] + [2] }} {{ [0] * 3 }}"),
                       "abcd ababab xx [1, 2] [0, 0, 0]")
        assertTemplateError("chat template: error at line 1: division by zero") { try renderTemplate("{{ 1 // 0 }}") }
        assertTemplateError("chat template: error at line 1: unsupported operand type(s) for +: 'str' and 'int'") {
            try renderTemplate("{{ 'a' + 1 }}")
        }
        assertTemplateError("chat template: error at line 1: integer overflow") { try renderTemplate("{{ 2 ** 64 }}") }
    }

    func testPrecedence() throws {
        XCTAssertEqual(try renderTemplate("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}"), "7 9 64 4")
        XCTAssertEqual(try renderTemplate("{{ 'a' ~ (1 + 2) }} {{ 'x' ~ 2 * 3 }} {{ not true or true }} {{ not (true or true) }}"),
                       "a3 x6 True False")
        // Filters bind tighter than binary operators.
        XCTAssertEqual(try renderTemplate("{{ 'a' + ' b '|trim + 'c' }} {{ -3|abs }}"), "abc 3")
        XCTAssertEqual(try renderTemplate("{{ 'x' if 1 > 2 else 'y' ~ 'z' }}"), "yz")
    }

    func testConcatenationStringifiesEverything() throws {
        XCTAssertEqual(try renderTemplate("{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] }}"), "a1NoneTrue[1]")
    }

    func testComparisons() throws {
        XCTAssertEqual(try renderTemplate("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'b' > 'a' }} {{ 'B' < 'a' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ true == 1 }}"),
                       "True False True True True True True")
        XCTAssertEqual(try renderTemplate("{{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ {'a': 1} == {'a': 1} }} {{ none == none }}"),
                       "True True False True True")
        XCTAssertEqual(try renderTemplate("{{ missing == missing }} {{ missing == none }} {{ 'a' == 1 }}"), "True False False")
        assertTemplateError("chat template: error at line 1: '<' not supported between instances of 'str' and 'int'") {
            try renderTemplate("{{ 'a' < 1 }}")
        }
    }

    func testLogicReturnsOperands() throws {
        XCTAssertEqual(try renderTemplate("{{ 0 or 'x' }} {{ 'a' and 'b' }} [{{ '' and 'b' }}] {{ none or [] }} {{ not 0 }} {{ not [1] }}"),
                       "x b [] [] True False")
        // The right operand is not evaluated when the left decides.
        XCTAssertEqual(try renderTemplate("{{ false and missing.attr }} {{ true or missing.attr }}"), "False True")
    }

    func testMembership() throws {
        XCTAssertEqual(try renderTemplate("{{ 'b' in 'abc' }} {{ '' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 'x' in missing }}"),
                       "True True True True True False")
        XCTAssertEqual(try renderTemplate("{{ not 'a' in 'abc' }} {{ 'tool_calls' in m }}", ["m": ["role": "user"]]), "False False")
        assertTemplateError("chat template: error at line 1: 'in <string>' requires string as left operand, not int") {
            try renderTemplate("{{ 1 in 'abc' }}")
        }
    }

    func testConditionalExpression() throws {
        XCTAssertEqual(try renderTemplate("{{ 'yes' if x else 'no' }} {{ 'yes' if not x else 'no' }} [{{ 'only' if false }}]", ["x": 1]),
                       "yes no []")
        XCTAssertEqual(try renderTemplate("{{ 'a' if false else 'b' if false else 'c' }}"), "c")
    }

    func testAttributeAndSubscript() throws {
        let context: [String: JinjaValue] = ["m": ["role": "user", "content": "hi"], "xs": [1, 2, 3]]
        XCTAssertEqual(try renderTemplate("{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }} [{{ m.nothing }}] [{{ xs[10] }}]", context),
                       "user hi 1 3 2 [] []")
        XCTAssertEqual(try renderTemplate("{{ messages[0]['content'] }} {{ 'héllo'[1] }} {{ m['role'][0] }}",
                                          ["messages": [["content": "c"]], "m": ["role": "user"]]), "c é u")
        XCTAssertEqual(try renderTemplate("[{{ none.x }}] [{{ 'abc'.zzz }}] {{ m.content.content is defined }}", context),
                       "[] [] False")
    }

    func testSlices() throws {
        let context: [String: JinjaValue] = ["xs": [1, 2, 3, 4], "s": "héllo"]
        XCTAssertEqual(try renderTemplate("{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ xs[::2] }} {{ xs[5:] }} {{ xs[:-1] }}", context),
                       "[2, 3, 4] [1, 2] [4, 3, 2, 1] [3, 4] [1, 3] [] [1, 2, 3]")
        XCTAssertEqual(try renderTemplate("{{ s[1:3] }} {{ s[::-1] }} {{ s[-3:-1] }} {{ xs[3:0:-1] }} {{ xs[-10:10] }}", context),
                       "él olléh ll [4, 3, 2] [1, 2, 3, 4]")
        assertTemplateError("chat template: error at line 1: slice step cannot be zero") { try renderTemplate("{{ 'ab'[::0] }}") }
    }

    func testUndefinedBehavesLikeJinjaDefaultUndefined() throws {
        XCTAssertEqual(try renderTemplate("[{{ missing }}] {{ missing is defined }} {{ missing is undefined }} {{ 'yes' if missing else 'no' }}{% for x in missing %}x{% endfor %} {{ missing|length }}"),
                       "[] False True no 0")
        XCTAssertEqual(try renderTemplate("{% if not tools is defined %}{% set tools = none %}{% endif %}{{ tools }}"), "None")
        assertTemplateError("chat template: error at line 1: 'missing' is undefined") { try renderTemplate("{{ missing.attr }}") }
        assertTemplateError("chat template: error at line 1: 'missing' is undefined") { try renderTemplate("{{ missing + 1 }}") }
        assertTemplateError("chat template: error at line 1: 'dict object' has no attribute 'x'") {
            try renderTemplate("{{ d.x.y }}", ["d": [:]])
        }
        assertTemplateError("chat template: error at line 1: 'nope' is undefined") { try renderTemplate("{{ nope() }}") }
    }

    func testGlobalFunctions() throws {
        XCTAssertEqual(try renderTemplate("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}"),
                       "[0, 1, 2] [1, 3, 5] [5, 3, 1] []")
        XCTAssertEqual(try renderTemplate("{{ dict(a=1, b='x') }} {{ namespace(a=1).a }}"), "{'a': 1, 'b': 'x'} 1")
        assertTemplateError("chat template: error at line 1: range too big: 1000000 items (at most 100000)") {
            try renderTemplate("{{ range(1000000)|length }}")
        }
        // strftime_now gives today's date in the requested layout.
        let date = try renderTemplate("{{ strftime_now('%d %b %Y') }}")
        XCTAssertNotNil(date.range(of: #"^\d\d [A-Z][a-z]{2} \d{4}$"#, options: .regularExpression), date)
    }
}
