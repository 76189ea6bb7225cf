#!/usr/bin/env python3
"""Writes chat_expected.json: what Python's jinja2 renders for the chat templates in chat_templates/
(and for small construct snippets), set up the way transformers' apply_chat_template sets it up:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
a `raise_exception` global, a `strftime_now` global, and `tojson` as json.dumps(ensure_ascii=False)
without key sorting; the context gets messages, add_generation_prompt, tools=None, documents=None
and the special tokens.

Usage (from the repository root):  python3 Tests/TokenizerTests/Fixtures/make_chat_fixtures.py
Needs jinja2 (3.1.x). If the `gguf` package and models/SmolLM2-135M-Instruct.Q4_1.gguf are present,
chat_templates/smollm2.jinja is (re)extracted from the model's tokenizer.chat_template first.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TEMPLATES = os.path.join(HERE, "chat_templates")
OUT = os.path.join(HERE, "chat_expected.json")


def extract_smollm2():
    model = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        import gguf  # noqa: F401
    except ImportError:
        return
    if not os.path.exists(model):
        return
    reader = gguf.GGUFReader(model)
    field = reader.fields["tokenizer.chat_template"]
    text = bytes(field.parts[field.data[0]]).decode("utf-8")
    with open(os.path.join(TEMPLATES, "smollm2.jinja"), "w", encoding="utf-8") as f:
        f.write(text)


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker without the tracking: {% generation %}body{% endgeneration %} renders body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render", [])
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, GenerationTag]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, context):
    try:
        return {"expected": env.from_string(source).render(**context)}
    except TemplateError as e:
        return {"error": str(e)}
    except (jinja2.UndefinedError, TypeError, ZeroDivisionError) as e:
        return {"runtime_error": f"{type(e).__name__}: {e}"}


# bos/eos tokens each model's tokenizer passes to its template.
TOKENS = {
    "smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "llama2-chat": {"bos_token": "<s>", "eos_token": "</s>"},
    "llama3-instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3.2-instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral-instruct-v0.2": {"bos_token": "<s>", "eos_token": "</s>"},
    "mistral-nemo-instruct-2407": {"bos_token": "<s>", "eos_token": "</s>"},
    "qwen2-instruct": {"eos_token": "<|im_end|>"},
    "qwen2.5-instruct": {"eos_token": "<|im_end|>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>"},
}

# Extra context a template needs to render deterministically (instead of today's date).
EXTRA = {"llama3.2-instruct": {"date_string": "26 Jul 2024"}}


def msg(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = {
    "user": [msg("user", "What is the tallest mountain in the world?")],
    "system_user": [msg("system", "You are a pirate."), msg("user", "Hello there!")],
    "multi_turn": [
        msg("system", "You are a helpful assistant."),
        msg("user", "Hi"),
        msg("assistant", "Hello! How can I help?"),
        msg("user", "Tell me a joke."),
    ],
    "no_system_padded": [
        msg("user", "What's 2+2?"),
        msg("assistant", "  4  "),
        msg("user", "And 3+3?\nExplain.  "),
    ],
    "unicode": [msg("user", "Ünïcödé ✓ 日本語 🙂 \"quotes\" and 'apostrophes' \\ backslash {{ not_a_tag }}")],
    "bad_alternation": [msg("user", "one"), msg("user", "two")],
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]

TOOL_CONVERSATION = [
    msg("user", "What's the weather in Paris?"),
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call12345",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temperature\": 21.5}"},
    msg("assistant", "It is 21.5 °C in Paris."),
    msg("user", "Thanks!"),
]

TOOL_TEMPLATES = ["mistral-nemo-instruct-2407", "qwen2.5-instruct", "llama3.2-instruct"]

# Small templates exercising one construct each; jinja2's output is the expected value.
SNIPPETS = [
    ("trim_blocks", "{% if true %}\nA\n{% endif %}\nB", {}),
    ("lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\ny", {}),
    ("lstrip_not_for_variables", "  {{ 'v' }}\n  {% if true %}w{% endif %}", {}),
    ("lstrip_after_text_on_line", "a  {% if true %}b{% endif %}", {}),
    ("minus_modifiers", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \nc", {}),
    ("variable_minus", "a \n {{- 'b' -}} \n c", {}),
    ("plus_modifiers", "  {%+ if true +%}\nx{% endif %}", {}),
    ("comments", "a\n  {# note #}\nb {#- trimmed -#}   c", {}),
    ("trailing_newline", "x\n", {}),
    ("raw_block", "{% raw %}{{ not rendered }}{% endraw %}!", {}),
    ("for_loop_vars", "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("for_else", "{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    ("for_filter_condition", "{% for x in xs if x % 2 == 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "y": 2}}),
    ("for_scope", "{% set x = 1 %}{% for i in [5, 6] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("nested_loop", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }} {% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("namespace", "{% set ns = namespace(n=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}", {}),
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("set_block", "{% set greeting | upper %}hello {{ name }}{% endset %}[{{ greeting }}]", {"name": "bob"}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("macro", "{% macro tag(name, value='x') %}<{{ name }}={{ value }}>{% endmacro %}{{ tag('a') }}{{ tag('b', value=2) }}", {}),
    ("with_block", "{% with a = 3 %}{{ a }}{% endwith %}[{{ a }}]", {}),
    ("filter_block", "{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("literals", "{{ 42 }} {{ 4.5 }} {{ 1e-5 }} {{ 'a' 'b' }} {{ \"q\" }} {{ [1, 'x', none, true] }} {{ {'k': 'v', 'n': 1} }} {{ (1, 2)|list }}", {}),
    ("string_escapes", "{{ 'a\\tb\\\\c\\'d\\u00e9\\x41' }}|{{ \"line\\nnext\" }}", {}),
    ("arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ -(3) }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ 'a' ~ (1 + 2) }} {{ 'x' ~ 2 * 3 }} {{ not true or true }} {{ not (true or true) }} {{ -2 ** 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ undefined_thing }}", {}),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ [0] * 3 }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'b' > 'a' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("logic_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or [] }}|{{ not 0 }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 'x' in missing }}", {}),
    ("ternary", "{{ 'yes' if x else 'no' }} {{ 'yes' if not x else 'no' }} [{{ 'only' if false }}]", {"x": 1}),
    ("attribute_and_subscript", "{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }} [{{ m.nothing }}] [{{ xs[10] }}]", {"m": {"role": "user", "content": "hi"}, "xs": [1, 2, 3]}),
    ("slices", "{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ xs[::2] }} {{ s[1:3] }} {{ s[::-1] }} {{ xs[5:] }}", {"xs": [1, 2, 3, 4], "s": "héllo"}),
    ("undefined_behaviour", "[{{ missing }}] {{ missing is defined }} {{ missing is undefined }} {{ 'yes' if missing else 'no' }} {% for x in missing %}x{% endfor %}{{ missing|length }}", {}),
    ("none_rendering", "{{ none }} {{ x }} {{ x is none }} {{ x is not none }}", {"x": None}),
    ("tests", "{{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is iterable }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ true is boolean }} {{ x is sameas none }} {{ 'ab' is lower }} {{ 2 is eq 2 }} {{ 1 is in [1] }}", {"x": None}),
    ("filters_text", "{{ '  pad  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hi'|upper }}|{{ 'Hi'|lower }}|{{ 'hELLO wORLD'|capitalize }}|{{ \"they're bill-o(x)\"|title }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}", {}),
    ("filters_length", "{{ [1, 2]|length }} {{ 'héllo'|length }} {{ {'a': 1}|length }} {{ 'abc'|count }} {{ 'one two  three'|wordcount }}", {}),
    ("filters_default", "{{ missing|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ 'v'|d('d') }}", {}),
    ("filters_first_last_join", "{{ xs|first }} {{ xs|last }} {{ xs|join(', ') }} {{ 'abc'|first }} {{ users|join('/', attribute='name') }} [{{ []|first }}]", {"xs": ["a", "b", "c"], "users": [{"name": "x"}, {"name": "y"}]}),
    ("filters_convert", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 42|string ~ '!' }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 2.1|round(method='ceil') }}", {}),
    ("filters_items_list", "{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %} {{ 'ab'|list }} {{ d|dictsort|map('first')|list }} {{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ [1, 2, 1, 3]|unique|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }}", {"d": {"b": 1, "a": 2}}),
    ("filters_select", "{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ ms|rejectattr('role', 'eq', 'user')|list|length }} {{ [0, 1, 2, 3]|select('odd')|list }} {{ [0, 1, 2]|reject|list }} {{ ms|selectattr('flag')|list|length }} {{ ['a', 'B']|map('upper')|list }}", {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1", "flag": True}, {"role": "user", "content": "u2"}]}),
    ("filters_aggregate", "{{ [1, 2, 3]|sum }} {{ xs|sum(attribute='n') }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ xs|map(attribute='n')|list }} {{ xs|map(attribute='missing', default=0)|list }}", {"xs": [{"n": 1}, {"n": 5}]}),
    ("filter_tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é\"\\n'|tojson }}|{{ [1.5, none, true, []]|tojson }}|{{ {}|tojson(indent=4) }}", {"d": {"z": [1, {"y": "x"}], "a": None}}),
    ("filter_indent", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(4, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}", {}),
    ("filter_escape_safe", "{{ '<a href=\"x\">&</a>'|e }} {{ '<b>'|safe }}", {}),
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'ayxx'.rstrip('x') }}|{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('lo', 'x')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'hi'.upper() }}|{{ 'HI'.lower() }}|{{ \"they're 3rd\".title() }}|{{ 'aXbX'.replace('X', '-') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.count('b') }}|{{ 'x\\ny'.splitlines() }}|{{ 'a/b/c'.rsplit('/', 1) }}", {}),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"a": 1, "b": [2]}}),
    ("range", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }}", {}),
    ("dict_global", "{{ dict(a=1, b='x') }}", {}),
    ("generation_tag", "{% for m in ms %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"ms": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ("raise_exception", "{% if x > 1 %}{{ raise_exception('x is too big: ' ~ x) }}{% endif %}ok", {"x": 5}),
    ("message_content_strip", "{% for m in ms %}{{ m['content'].strip() ~ '|' }}{% endfor %}", {"ms": [{"content": " a "}, {"content": "\tb\n"}]}),
    ("numbers_print", "{{ 10 / 4 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.125 }} {{ 1/3 }} {{ 2.0 }} {{ -0.0 }} {{ 1e-4 }} {{ 0.00012 }} {{ 3e300 * 1 }}", {}),
    ("unicode_case", "{{ 'ΣΑΣ ΟΔΟΣ.'|lower }} {{ 'ǆemal'.capitalize() }} {{ 'straße'|upper }} {{ 'a,b,,c\td_1'|wordcount }} {{ 'xyz'.index('z') }} {{ 'ǆ x'.title() }}", {}),
    ("error_undefined_attribute", "{{ missing.attr }}", {}),
    ("error_undefined_arithmetic", "{{ missing + 1 }}", {}),
    ("error_type_mismatch", "{{ 'a' + 1 }}", {}),
    ("error_division_by_zero", "{{ 1 // 0 }}", {}),
    ("multiline_template", "{%- for m in ms %}\n    {%- if m.role == 'user' %}\n        {{- 'U: ' + m.content }}\n    {%- else %}\n        {{- 'A: ' + m.content }}\n    {%- endif %}\n    {{- '\\n' }}\n{%- endfor %}\n", {"ms": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]}),
]


def main():
    extract_smollm2()
    env = make_env()
    names = sorted(n[: -len(".jinja")] for n in os.listdir(TEMPLATES) if n.endswith(".jinja"))
    missing = set(TOKENS) - set(names)
    if missing:
        sys.exit(f"missing templates: {sorted(missing)}")
    cases = []
    conversations = dict(CONVERSATIONS, tools=TOOL_CONVERSATION)
    for name in names:
        with open(os.path.join(TEMPLATES, name + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        runs = [(conv, add, None) for conv in CONVERSATIONS for add in (True, False)]
        if name in TOOL_TEMPLATES:
            runs += [("tools", add, TOOLS) for add in (True, False)]
        for conv_name, add, tools in runs:
            # The fixture stores the context without "messages"; the test adds conversations[conversation].
            context = {"add_generation_prompt": add, "tools": tools, "documents": None}
            context.update(TOKENS[name])
            context.update(EXTRA.get(name, {}))
            case = {"template": name, "conversation": conv_name, "context": context}
            case.update(render(env, source, dict(context, messages=conversations[conv_name])))
            cases.append(case)
    snippets = []
    for name, source, context in SNIPPETS:
        snippet = {"name": name, "template": source, "context": context}
        snippet.update(render(env, source, context))
        snippets.append(snippet)
    document = {
        "generator": f"make_chat_fixtures.py with jinja2 {jinja2.__version__}",
        "conversations": conversations,
        "cases": cases,
        "snippets": snippets,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(cases)} template cases and {len(snippets)} snippets to {OUT}")


if __name__ == "__main__":
    main()
