import TesseraJinja
import TesseraTokenizer
import XCTest

/// Filters, tests (`is ...`), Python string / dict methods, and JSON in and out.
/// Expected values follow Jinja2 3.1 with transformers' `tojson` (checked against jinja2).
final class JinjaFilterTests: XCTestCase {
    func testTextFilters() throws {
        XCTAssertEqual(try renderTemplate("{{ '  pad \n'|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hi'|upper }}|{{ 'Hi'|lower }}|{{ 'hELLO wORLD'|capitalize }}"),
                       "pad|hi|HI|hi|Hello world")
        XCTAssertEqual(try renderTemplate("{{ \"they're bill-o(x)\"|title }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 42|string ~ '!' }}"),
                       "They're Bill-O(X)|a+b+c|bba|42!")
        XCTAssertEqual(try renderTemplate("{{ '<a href=\"x\">&</a>'|e }} {{ '<b>'|safe }} {{ 'one two  three'|wordcount }}"),
                       "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt; <b> 3")
        XCTAssertEqual(try renderTemplate("{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(4, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}"),
                       "a\n  b\n\n  c|    a\n    b|a\n  \n  b")
    }

    func testLengthDefaultFirstLastJoin() throws {
        XCTAssertEqual(try renderTemplate("{{ [1, 2]|length }} {{ 'héllo'|length }} {{ {'a': 1}|length }} {{ 'abc'|count }} {{ missing|length }}"),
                       "2 5 1 3 0")
        XCTAssertEqual(try renderTemplate("{{ missing|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ 'v'|d('d') }}"),
                       "d None d v")
        let context: [String: JinjaValue] = ["xs": ["a", "b", "c"], "users": [["name": "x"], ["name": "y"]]]
        XCTAssertEqual(try renderTemplate("{{ xs|first }} {{ xs|last }} {{ xs|join(', ') }} {{ 'abc'|first }} {{ users|join('/', attribute='name') }} [{{ []|first }}] {{ [1, none]|join }}", context),
                       "a c a, b, c a x/y [] 1None")
    }

    func testConversionFilters() throws {
        XCTAssertEqual(try renderTemplate("{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ ' -5 '|int }} {{ '0x1A'|int(0, 16) }}"),
                       "42 4 0 7 3 -5 26")
        XCTAssertEqual(try renderTemplate("{{ '2.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 2.1|round(method='ceil') }} {{ 2.9|round(0, 'floor') }}"),
                       "2.5 0.0 3.0 3 2.57 2.0 3.0 2.0")
    }

    func testSequenceFilters() throws {
        let context: [String: JinjaValue] = ["d": ["b": 1, "a": 2]]
        XCTAssertEqual(try renderTemplate("{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %} {{ 'ab'|list }} {{ d|dictsort|map('first')|list }} {{ d|dictsort(by='value', reverse=true)|map('last')|list }}", context),
                       "b1a2 ['a', 'b'] ['a', 'b'] [2, 1]")
        XCTAssertEqual(try renderTemplate("{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A']|sort(case_sensitive=true) }} {{ [1, 2, 1, 3]|unique|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }}"),
                       "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] ['A', 'b'] [1, 2, 3] [3, 2, 1] cba")
        XCTAssertEqual(try renderTemplate("{{ xs|sort(attribute='n')|map(attribute='n')|list }} {{ [1, 2, 3]|sum }} {{ xs|sum(attribute='n') }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }}",
                                          ["xs": [["n": 5], ["n": 1]]]),
                       "[1, 5] 6 6 1 3")
        assertTemplateError("chat template: error at line 1: '<' not supported between instances of 'str' and 'int'") {
            try renderTemplate("{{ [1, 'a']|sort }}")
        }
    }

    func testSelectRejectMap() throws {
        let ms: JinjaValue = [["role": "user", "content": "u1"], ["role": "assistant", "content": "a1", "flag": true],
                              ["role": "user", "content": "u2"]]
        XCTAssertEqual(try renderTemplate("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ ms|rejectattr('role', 'eq', 'user')|list|length }} {{ ms|selectattr('flag')|list|length }}",
                                          ["ms": ms]),
                       "['u1', 'u2'] 1 1")
        XCTAssertEqual(try renderTemplate("{{ [0, 1, 2, 3]|select('odd')|list }} {{ [0, 1, 2]|reject|list }} {{ ['a', 'B']|map('upper')|list }} {{ [' a ']|map('trim')|list }} {{ ms|map(attribute='flag', default=0)|list }}",
                                          ["ms": ms]),
                       "[1, 3] [0] ['A', 'B'] ['a'] [0, True, 0]")
        XCTAssertEqual(try renderTemplate("{{ ms|selectattr('role', 'in', ['assistant'])|map(attribute='content')|first }}", ["ms": ms]), "a1")
    }

    func testTests() throws {
        XCTAssertEqual(try renderTemplate("{{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }}"),
                       "True True True True True True True False")
        XCTAssertEqual(try renderTemplate("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ true is boolean }} {{ x is sameas none }} {{ 'ab' is lower }} {{ 2 is eq 2 }} {{ 1 is in [1] }}",
                                          ["x": nil]),
                       "True True True False True True True True True")
        XCTAssertEqual(try renderTemplate("{{ x is none }} {{ x is not none }} {{ true is true }} {{ 0 is false }} {{ range is callable }} {{ 'a' is not string }}",
                                          ["x": nil]),
                       "True False True False True False")
    }

    func testStringMethods() throws {
        XCTAssertEqual(try renderTemplate("{{ '  x  '.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'ayxx'.rstrip('x') }}|{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('lo', 'x')) }}|{{ 'Hello'.startswith('lo') }}"),
                       "x|ay|ay|True|True|False")
        XCTAssertEqual(try renderTemplate("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a/b/c'.rsplit('/', 1) }}|{{ 'x\ny'.splitlines() }}"),
                       "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a/b', 'c']|['x', 'y']")
        XCTAssertEqual(try renderTemplate("{{ 'hi'.upper() }}|{{ 'HI'.lower() }}|{{ \"they're 3rd\".title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aXbX'.replace('X', '-') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.count('b') }}"),
                       "HI|hi|They'Re 3Rd|Hello|a-b-|a-b|2|2")
        // The reasoning-model idiom: content after the last </think>, leading newlines removed.
        XCTAssertEqual(try renderTemplate("{{ c.split('</think>')[-1].lstrip('\\n') }}", ["c": "<think>x</think>\n\nanswer"]), "answer")
    }

    func testDictMethods() throws {
        let context: [String: JinjaValue] = ["d": ["a": 1, "b": [2]]]
        XCTAssertEqual(try renderTemplate("{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", context),
                       "1 None dflt ['a', 'b'] [1, [2]] a=1;b=[2];")
        assertTemplateError("chat template: unsupported method 'list.append' at line 1") { try renderTemplate("{{ [].append(1) }}") }
    }

    func testToJSONMatchesTransformers() throws {
        let d: JinjaValue = ["z": [1, ["y": "x"]], "a": nil]
        XCTAssertEqual(try renderTemplate("{{ d|tojson }}", ["d": d]), #"{"z": [1, {"y": "x"}], "a": null}"#)
        XCTAssertEqual(try renderTemplate("{{ d|tojson(indent=2) }}", ["d": d]),
                       "{\n  \"z\": [\n    1,\n    {\n      \"y\": \"x\"\n    }\n  ],\n  \"a\": null\n}")
        XCTAssertEqual(try renderTemplate(#"{{ 'é"\n<'|tojson }}|{{ [1.5, none, true, []]|tojson }}|{{ {}|tojson(indent=4) }}|{{ d|tojson(sort_keys=true) }}"#, ["d": d]),
                       #""é\"\n<"|[1.5, null, true, []]|{}|{"a": null, "z": [1, {"y": "x"}]}"#)
        assertTemplateError("chat template: error at line 1: Object of type Undefined is not JSON serializable") {
            try renderTemplate("{{ missing|tojson }}")
        }
    }

    func testJSONInputKeepsOrderAndTypes() throws {
        let value = try JinjaValue(json: #"{"b": [1, 2.5, "x\u00e9\ud83d\ude00", true, null], "a": {"n": -3}}"#)
        XCTAssertEqual(try renderTemplate("{{ v|tojson }} {{ v.b[1] is float }} {{ v.a.n is integer }}", ["v": value]),
                       #"{"b": [1, 2.5, "xé😀", true, null], "a": {"n": -3}} True True"#)
        XCTAssertThrowsError(try JinjaValue(json: #"{"a": }"#)) { error in
            XCTAssertEqual((error as? JinjaJSONError)?.description, "JSON at byte 6: invalid number ''")
        }
        XCTAssertThrowsError(try JinjaValue(json: String(repeating: "[", count: 600)))
    }
}
