import TesseraJinja
import TesseraTokenizer
import XCTest

/// Renders `source` with `context` (the helper all Jinja unit tests use).
func renderTemplate(_ source: String, _ context: [String: JinjaValue] = [:]) throws -> String {
    try ChatTemplate(source).render(context: context)
}

/// Asserts that `body` throws a ChatTemplateError whose description equals `description`.
func assertTemplateError(_ description: String, file: StaticString = #filePath, line: UInt = #line,
                         _ body: () throws -> Any) {
    do {
        let result = try body()
        XCTFail("expected error \"\(description)\", got \(result)", file: file, line: line)
    } catch let error as ChatTemplateError {
        XCTAssertEqual(error.description, description, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// Lexing, whitespace control (trim_blocks, lstrip_blocks, -/+), statements and their errors.
/// Expected strings were worked out by hand from Jinja2's documented rules and agree with jinja2 3.1.
final class JinjaSyntaxTests: XCTestCase {
    func testTextAndOutput() throws {
        XCTAssertEqual(try renderTemplate("plain text"), "plain text")
        XCTAssertEqual(try renderTemplate(""), "")
        XCTAssertEqual(try renderTemplate("a{{ x }}b", ["x": "X"]), "aXb")
        XCTAssertEqual(try renderTemplate("{{x}}{{ y }}", ["x": 1, "y": 2.5]), "12.5")
        XCTAssertEqual(try renderTemplate("{ not a tag } {{ '{{' }}"), "{ not a tag } {{")
    }

    func testOneTrailingNewlineIsDropped() throws {
        XCTAssertEqual(try renderTemplate("a\n"), "a")
        XCTAssertEqual(try renderTemplate("a\n\n"), "a\n")
        XCTAssertEqual(try renderTemplate("a\r\nb\r\n"), "a\nb")
    }

    func testTrimBlocksDropsTheNewlineAfterABlockTag() throws {
        XCTAssertEqual(try renderTemplate("{% if true %}\nA\n{% endif %}\nB"), "A\nB")
        // Not after a variable tag.
        XCTAssertEqual(try renderTemplate("{{ 'v' }}\nB"), "v\nB")
        // Only one newline.
        XCTAssertEqual(try renderTemplate("{% if true %}\n\nA{% endif %}"), "\nA")
    }

    func testLstripBlocksRemovesIndentationBeforeBlockTags() throws {
        XCTAssertEqual(try renderTemplate("  {% if true %}\n  x\n  {% endif %}\ny"), "  x\ny")
        XCTAssertEqual(try renderTemplate("\t {# c #}\nz"), "z")
        // Text before the tag on the same line keeps its spaces; variable tags are never stripped.
        XCTAssertEqual(try renderTemplate("a  {% if true %}b{% endif %}"), "a  b")
        XCTAssertEqual(try renderTemplate("  {{ 'v' }}"), "  v")
    }

    func testMinusAndPlusModifiers() throws {
        XCTAssertEqual(try renderTemplate("a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \nc"), "abc")
        XCTAssertEqual(try renderTemplate("a \n {{- 'b' -}} \n c"), "abc")
        XCTAssertEqual(try renderTemplate("  {%+ if true +%}\nx{% endif %}"), "  \nx")
        XCTAssertEqual(try renderTemplate("{{ 5 -}}   {{- 3 }}"), "53")
        XCTAssertEqual(try renderTemplate("{{ 5 - 3 }}"), "2")
    }

    func testCommentsAndRaw() throws {
        XCTAssertEqual(try renderTemplate("a\n  {# note #}\nb {#- trimmed -#}   c"), "a\nbc")
        XCTAssertEqual(try renderTemplate("{# {% if %} {{ broken #}ok"), "ok")
        XCTAssertEqual(try renderTemplate("{% raw %}{{ not rendered }}{% endraw %}!"), "{{ not rendered }}!")
        XCTAssertEqual(try renderTemplate("{%- raw -%} x {%- endraw %}"), "x")
    }

    func testIfElifElse() throws {
        let source = "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}"
        XCTAssertEqual(try renderTemplate(source), "one two many ")
        XCTAssertEqual(try renderTemplate("{% if x %}y{% endif %}", ["x": ""]), "")
    }

    func testForLoopVariables() throws {
        let source = "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %}"
        XCTAssertEqual(try renderTemplate(source, ["xs": ["a", "b", "c"]]),
                       "10TrueFalse33|21FalseFalse32|32FalseTrue31|")
        XCTAssertEqual(try renderTemplate("{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}",
                                          ["xs": [1, 2]]), "-2;1-;")
    }

    func testForElseFilterAndUnpacking() throws {
        XCTAssertEqual(try renderTemplate("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", ["xs": []]), "empty")
        XCTAssertEqual(try renderTemplate("{% for x in missing %}{{ x }}{% else %}none{% endfor %}"), "none")
        XCTAssertEqual(try renderTemplate("{% for x in xs if x % 2 == 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}",
                                          ["xs": [1, 2, 3, 4, 5]]), "1:1/3 3:2/3 5:3/3 ")
        XCTAssertEqual(try renderTemplate("{% for x in xs if x > 5 %}{{ x }}{% else %}none{% endfor %}", ["xs": [1]]), "none")
        XCTAssertEqual(try renderTemplate("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                                          ["d": ["b": 1, "a": 2]]), "b=1;a=2;")
        XCTAssertEqual(try renderTemplate("{% for c in 'héj' %}[{{ c }}]{% endfor %}"), "[h][é][j]")
        XCTAssertEqual(try renderTemplate("{% for m in ms|reverse %}{{ m }}{% endfor %}", ["ms": [1, 2, 3]]), "321")
    }

    func testLoopScopeAndNesting() throws {
        // A `set` inside a loop body is local to that iteration.
        XCTAssertEqual(try renderTemplate("{% set x = 1 %}{% for i in [5, 6] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}"),
                       "15161")
        XCTAssertEqual(try renderTemplate("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }} {% endfor %}"),
                       "1x2y1 1x2y2 ")
        // `if` shares the enclosing scope.
        XCTAssertEqual(try renderTemplate("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5")
    }

    func testBreakAndContinue() throws {
        XCTAssertEqual(try renderTemplate("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
                       "0134")
        assertTemplateError("chat template: syntax error at line 1: 'break' outside of a for loop") {
            try ChatTemplate("{% break %}")
        }
    }

    func testNamespaceAndSetForms() throws {
        let source = "{% set ns = namespace(n=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}"
            + "{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}"
        XCTAssertEqual(try renderTemplate(source), "6 True")
        XCTAssertEqual(try renderTemplate("{% set ns = namespace() %}{% set ns.x = 'v' %}{{ ns.x }}"), "v")
        XCTAssertEqual(try renderTemplate("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12")
        XCTAssertEqual(try renderTemplate("{% set greeting | upper %}hello {{ name }}{% endset %}[{{ greeting }}]",
                                          ["name": "bob"]), "[HELLO BOB]")
        XCTAssertEqual(try renderTemplate("{% set s %}a{{ 1 }}{% endset %}{{ s ~ s }}"), "a1a1")
        assertTemplateError("chat template: error at line 2: cannot assign attribute 'x' on 'd': not a namespace") {
            try renderTemplate("{% set d = {} %}\n{% set d.x = 1 %}")
        }
    }

    func testMacroWithFilterBlockAndGeneration() throws {
        XCTAssertEqual(try renderTemplate("{% macro tag(name, value='x') %}<{{ name }}={{ value }}>{% endmacro %}{{ tag('a') }}{{ tag('b', value=2) }}"),
                       "<a=x><b=2>")
        XCTAssertEqual(try renderTemplate("{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}"), "G")
        XCTAssertEqual(try renderTemplate("{% with a = 3 %}{{ a }}{% endwith %}[{{ a }}]"), "3[]")
        XCTAssertEqual(try renderTemplate("{% filter upper %}shout {{ 'it' }}{% endfilter %}"), "SHOUT IT")
        XCTAssertEqual(try renderTemplate("{% generation %}{{ 'kept' }}{% endgeneration %}"), "kept")
    }

    func testRaiseExceptionCarriesTheMessage() throws {
        let chat = try ChatTemplate("line one\n{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}")
        XCTAssertThrowsError(try chat.render(messages: [ChatMessage(role: "system", content: "s")],
                                             addGenerationPrompt: false, bosToken: nil, eosToken: nil)) { error in
            XCTAssertEqual(error as? ChatTemplateError, .raised(line: 2, message: "System role not supported"))
        }
        XCTAssertEqual(try chat.render(messages: [ChatMessage(role: "user", content: "u")], addGenerationPrompt: false,
                                       bosToken: nil, eosToken: nil), "line one\n")
    }

    func testUnsupportedConstructsAreNamedWithTheirLine() {
        assertTemplateError("chat template: unsupported tag 'call' at line 3") {
            try ChatTemplate("a\nb\n{% call foo() %}x{% endcall %}")
        }
        assertTemplateError("chat template: unsupported tag 'include' at line 1") { try ChatTemplate("{% include 'x' %}") }
        assertTemplateError("chat template: unsupported tag 'extends' at line 2") { try ChatTemplate("\n{% extends 'x' %}") }
        assertTemplateError("chat template: unsupported filter 'urlencode' at line 2") { try ChatTemplate("\n{{ x | urlencode }}") }
        assertTemplateError("chat template: unsupported test 'prime' at line 1") { try ChatTemplate("{{ x is prime }}") }
        assertTemplateError("chat template: unsupported recursive for loop at line 1") {
            try ChatTemplate("{% for x in xs recursive %}{% endfor %}")
        }
        assertTemplateError("chat template: unsupported '**' argument unpacking at line 1") { try ChatTemplate("{{ f(**kw) }}") }
        assertTemplateError("chat template: unsupported method 'str.format' at line 2") {
            try renderTemplate("\n{{ '{}'.format(1) }}")
        }
        assertTemplateError("chat template: unsupported '%' string formatting at line 1") { try renderTemplate("{{ '%s' % 1 }}") }
    }

    func testSyntaxErrorsNameTheProblemAndLine() {
        assertTemplateError("chat template: syntax error at line 1: 'if' is never closed (expected 'elif' or 'else' or 'endif')") {
            try ChatTemplate("{% if x %}\nno end")
        }
        assertTemplateError("chat template: syntax error at line 2: unexpected 'endfor'") { try ChatTemplate("x\n{% endfor %}") }
        assertTemplateError("chat template: syntax error at line 1: unterminated string") { try ChatTemplate("{{ 'abc }}") }
        assertTemplateError("chat template: syntax error at line 2: unterminated tag '{{'") { try ChatTemplate("\n{{ x ") }
        assertTemplateError("chat template: syntax error at line 1: unterminated comment '{#'") { try ChatTemplate("{# x") }
        assertTemplateError("chat template: syntax error at line 1: expected '%}', got 'y'") { try ChatTemplate("{% if x y %}{% endif %}") }
        assertTemplateError("chat template: syntax error at line 1: unexpected ')'") { try ChatTemplate("{{ x) }}") }
        assertTemplateError("chat template: syntax error at line 1: unexpected '}}'") { try ChatTemplate("{{ }}") }
        assertTemplateError("chat template: syntax error at line 3: unexpected character '@'") { try ChatTemplate("\n\n{{ @ }}") }
    }

    func testLineNumbersCountTemplateLines() {
        let source = "{% for m in messages %}\n{{ m.content }}\n{% endfor %}\n{# c\nc #}\n{{ 1 + missing }}"
        assertTemplateError("chat template: error at line 6: 'missing' is undefined") {
            try renderTemplate(source, ["messages": []])
        }
    }
}
