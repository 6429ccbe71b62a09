"""Golden outputs for Sloth's Jinja engine and chat templates.

Renders (1) small templates that exercise each Jinja construct, (2) Unsloth's named templates and
(3) real chat templates from tokenizer configs over a corpus of conversations, with transformers'
own chat template renderer (jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, HF's
tojson / raise_exception / strftime_now, message normalization), and writes the expected text or
the expected error to Tests/Fixtures/templates/.

Usage (versions pinned in requirements-templates.txt):
    python3 scripts/golden/templates/make.py [--real DIR ...]

`--real DIR` adds every tokenizer_config.json / chat_template.jinja found under DIR (written to
.cache/templates/golden-real.json, not committed, unless the file is in Tests/Fixtures already).
strftime_now sees a fixed time, 2024-07-26 10:30:00 (the Swift tests pass the same time in UTC).
"""
import argparse
import datetime as _dt
import glob
import hashlib
import json
import os
import sys

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "templates")

assert jinja2.__version__ == "3.1.6", jinja2.__version__
assert transformers.__version__ == "5.24.0", transformers.__version__


class FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 7, 26, 10, 30, 0)


ctu.datetime = FixedDatetime

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def render(template, messages, tools=None, documents=None, add_generation_prompt=False, spans=False, **extra):
    """Renders like tokenizer.apply_chat_template(tokenize=False); returns a result dict."""
    try:
        msgs = ctu._normalize_chat_messages(json.loads(json.dumps(messages)))
        kwargs = dict(SPECIAL)
        kwargs.update(extra)
        rendered, indices = ctu.render_jinja_template(
            conversations=[msgs], tools=tools, documents=documents, chat_template=template,
            add_generation_prompt=add_generation_prompt, return_assistant_tokens_mask=spans, **kwargs)
        out = {"text": rendered[0]}
        if spans:
            out["spans"] = [list(s) for s in indices[0]]
        return out
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": "syntax", "message": str(e)}
    except jinja2.exceptions.UndefinedError as e:
        return {"error": "undefined", "message": str(e)}
    except jinja2.exceptions.SecurityError as e:
        return {"error": "security", "message": str(e)}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception raises a bare TemplateError with the template's message.
        return {"error": "raised", "message": str(e)}
    except Exception as e:  # TypeError, OverflowError, RecursionError...
        return {"error": type(e).__name__, "message": str(e)}


# ----------------------------------------------------------------------------- conversations

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the sloth cross the road? It didn't, yet."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thank you"},
    ],
    "empty_content": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
    "unicode": [
        {"role": "system", "content": "Réponds en français. 日本語もOK. 🦥"},
        {"role": "user", "content": "  Ça va? \"quotes\" and 'apostrophes' \\ back\\slash\n\nnew\tlines  "},
        {"role": "assistant", "content": "Très bien ! e\u0301 (combining) — مرحبا — 👨‍👩‍👧 family\n"},
        {"role": "user", "content": "{{ not a template }} {% raw %} <|im_end|>"},
    ],
    "whitespace": [{"role": "user", "content": "\n  padded  \n"}, {"role": "assistant", "content": " lead and trail "}],
    "tool_calls": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris, and 2+3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
            {"type": "function", "id": "call_2", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 22.5, \"sky\": \"clear\"}"},
        {"role": "tool", "tool_call_id": "call_2", "name": "add", "content": "5"},
        {"role": "assistant", "content": "It is 22.5°C and clear in Paris; 2+3 = 5."},
    ],
    "tool_calls_none_content": [
        {"role": "user", "content": "Add 1 and 2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "id": "c0", "function": {"name": "add", "arguments": {"a": 1, "b": 2.0}}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "3.0"},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 17 prime?"},
        {"role": "assistant", "content": "Yes.", "reasoning_content": "17 has no divisors other than 1 and 17."},
        {"role": "user", "content": "And 21?"},
    ],
    "bad_role": [{"role": "user", "content": "hi"}, {"role": "narrator", "content": "Meanwhile..."}],
    "not_alternating": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "assistant_first": [{"role": "assistant", "content": "I speak first."}, {"role": "user", "content": "ok"}],
    "system_only": [{"role": "system", "content": "Just a system prompt."}],
}
# Which conversations also get the tool schemas.
WITH_TOOLS = {"tool_calls", "tool_calls_none_content"}


def render_corpus(template):
    cases = []
    spans = "generation" in template and ctu.re.search(r"\{\%-?\s*generation\s*-?\%\}", template) is not None
    for cid, conv in CONVERSATIONS.items():
        for agp in (False, True):
            tools = TOOLS if cid in WITH_TOOLS else None
            r = render(template, conv, tools=tools, add_generation_prompt=agp, spans=spans)
            r.update({"conversation": cid, "add_generation_prompt": agp, "tools": tools is not None})
            cases.append(r)
    return cases


# ----------------------------------------------------------------------------- constructs

def constructs():
    """(name, template, variables) triples; each exercises one engine feature."""
    c = []

    def add(name, template, **variables):
        c.append((name, template, variables))

    # whitespace control and HF's trim_blocks / lstrip_blocks
    add("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter\n")
    add("ws_lstrip_blocks", "  {% if true %}\n    x\n  {% endif %}\n  {{ 'y' }}\n  {# c #}\nz")
    add("ws_dash", "a  \n {%- if true -%}  \n b \n {%- endif -%} \n c {{- ' d ' -}} e")
    add("ws_plus", "a\n  {%+ if true %}b{% endif %}\n  {%- if true +%}\nc{% endif %}")
    add("ws_comment", "x\n  {#- comment -#}\n y {# two\nlines #}\nz")
    add("ws_trailing_newline", "line\n")
    add("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc")
    add("ws_var_no_trim", "{{ 'a' }}\n{{ 'b' }}\n")
    add("raw_block", "{% raw %}{{ not rendered }} {% if %}{% endraw %}\nafter")
    add("raw_dash", "x {%- raw -%}  kept  {%- endraw -%}  y")
    # literals and str()
    add("lit_numbers", "{{ 1 }} {{ -3 }} {{ 1.0 }} {{ 2.50 }} {{ 1e3 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 1e-5 }} {{ 1_000 }} {{ 0.1 + 0.2 }}")
    add("lit_python_str", "{{ true }} {{ True }} {{ none }} {{ [1, 'a', none, false, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ ('t', 1) }}")
    add("lit_str_repr", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n tab\\t', '\\x00', 'é🦥'] }}")
    add("lit_escapes", "{{ 'a\\nb' }}|{{ \"q\\\"q\" }}|{{ '\\u00e9\\U0001F9A5\\x41' }}|{{ '\\d\\w' }}|{{ 'con' 'cat' }}")
    add("lit_data_values", "{{ x }} {{ y }} {{ z }} {{ d }}", x=3.0, y=[1.5, 2], z=None, d={"b": 1, "a": [True, None]})
    # arithmetic
    add("math_int_float", "{{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 3 * 1.5 }} {{ true + 1 }}")
    add("math_strings_lists", "{{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] * 3 }} {{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ 1 ~ 'x' ~ none ~ 2.0 }}")
    add("math_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }} {{ 'a' ~ (1 + 2) }} {{ 1 ~ 2 * 3 }} {{ 'x' ~ 1 | string }}")
    add("math_concat_binds_tighter_than_plus", "{{ 'a' ~ 1 + 2 }}")
    add("math_div_zero", "{{ 1 / 0 }}")
    add("math_type_error", "{{ 'a' + 1 }}")
    # comparisons, logic, inline if
    add("cmp_chain", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ none == none }}")
    add("cmp_in", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ not 1 in [1] }}")
    add("logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'n' }} {{ none or [] }} {{ not none }} {{ 'yes' if 1 else 'no' }} [{{ 'x' if false }}]")
    add("inline_if_nested", "{{ 'a' if x > 1 else 'b' if x > 0 else 'c' }}", x=1)
    # attribute / item access, slicing
    add("access", "{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ s[0] }} {{ s[-1] }} {{ l[10] }}|",
        m={"role": "user", "content": "hi"}, l=[10, 20, 30], s="héllo")
    add("access_method_shadow", "{{ m['items'] }} {{ m.get('items') }} {{ m.get('nope', 'dflt') }} {{ m.get('nope') }}", m={"items": "stored"})
    add("slicing", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[1:3] }} {{ l[-2:] }} {{ s[::-1] }} {{ s[1:4] }} {{ l[5:] }} {{ l[3:0:-1] }}",
        l=[0, 1, 2, 3, 4], s="añb🦥c")
    add("undefined_attr_error", "{{ missing.attr }}")
    add("undefined_item_of_empty", "[{{ l[0] }}]{{ l[0].content }}", l=[])
    add("undefined_ops", "[{{ u }}][{{ u | default('d') }}][{{ u is defined }}][{{ u ~ 'x' }}][{{ u | length }}][{% for x in u %}{{ x }}{% endfor %}][{{ not u }}][{{ u == u }}]")
    add("undefined_add_error", "{{ u + 1 }}")
    add("none_attr", "[{{ n.attr }}][{{ n.attr is defined }}]", n=None)
    # tests
    add("tests_types", "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} "
        "{{ 's' is string }} {{ [] is sequence }} {{ {} is mapping }} {{ 's' is iterable }} {{ none is none }} {{ true is boolean }} "
        "{{ true is true }} {{ 0 is false }} {{ u is undefined }} {{ 'x' is not none }} {{ {} is iterable }} {{ 1 is iterable }}")
    add("tests_args", "{{ 6 is divisibleby 3 }} {{ 7 is divisibleby(3) }} {{ 'a' is equalto 'a' }} {{ 3 is odd }} {{ 4 is even }} "
        "{{ 'ab' is lower }} {{ 'AB' is upper }} {{ 2 is in [1, 2] }} {{ false is sameas false }} {{ 3 is gt 2 }} {{ 3 is lt 2 }} {{ 1 is eq 1 }}")
    # loops
    add("loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
        "{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('o', 'e') }} {% endfor %}")
    add("loop_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}no{% endfor %}")
    add("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ '' if loop.last else ',' }}{% endfor %}")
    add("loop_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}",
        d={"z": 1, "a": 2, "m": 3})
    add("loop_dict_string", "{% for k in d %}{{ k }}{% endfor %}|{% for ch in 'añ🦥' %}[{{ ch }}]{% endfor %}", d={"b": 1, "a": 2})
    add("loop_scope", "{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}|"
        "{% for i in range(3) %}{% if i == 0 %}{% set y = 5 %}{% endif %}{{ y }}{% endfor %}")
    add("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}")
    add("loop_nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}")
    add("loop_changed", "{% for x in [1, 1, 2, 2, 3] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}")
    add("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }} {{ range(0) | list }}")
    # set, namespace, with
    add("set_forms", "{% set a = 1 %}{% set b, c = [2, 3] %}{% set t = 4, 5 %}{{ a }}{{ b }}{{ c }}{{ t }}"
        "{% set blk %}  block {{ a }}  {% endset %}[{{ blk }}]{% set f | upper | trim %} filtered {% endset %}[{{ f }}]")
    add("namespace", "{% set ns = namespace(found=false, n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
        "{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }} {{ ns.missing is defined }}")
    add("namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}")
    add("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]")
    add("dict_global", "{{ dict(a=1, b='x') }} {{ dict(a=1) | tojson }}")
    # macros and call blocks
    add("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}")
    add("macro_recursive", "{% macro walk(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v.items() %}{{ k }}:{{ walk(x) }};{% endfor %}{{ '}' }}"
        "{% elif v is sequence and v is not string %}[{% for x in v %}{{ walk(x) }},{% endfor %}]{% else %}{{ v }}{% endif %}{% endmacro %}{{ walk(d) }}",
        d={"a": [1, {"b": "c"}], "d": None})
    add("macro_call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ 1 + 1 }}{% endcall %}")
    add("macro_call_args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}<{{ x }}>{% endcall %}")
    add("macro_varargs", "{% macro f(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, 3, k='v') }}")
    add("filter_block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}|{% filter trim | replace('a', 'o') %}  banana  {% endfilter %}")
    # filters
    add("filters_string", "{{ '  hi  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hello world-foo bar(baz)' | title }}|{{ \"they're bill's\" | title }}"
        "|{{ 'hELLO wORLD' | capitalize }}|{{ 'MiXeD' | lower }}|{{ 'straße' | upper }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}")
    add("filters_length", "{{ 'añ🦥' | length }} {{ 'e\u0301' | length }} {{ '👨‍👩‍👧' | length }} {{ [1, 2] | length }} {{ {'a': 1} | count }}")
    add("filters_list", "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | list }} {{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} "
        "{{ ['b', 'A', 'a'] | sort }} {{ [1, 2, 2, 1] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ [1, 2, 3] | reverse | list }} "
        "{{ [1, 2, 3] | sum }} {{ [1, 5, 3] | max }} {{ [4, 2, 8] | min }} {{ [1, 2] | join(', ') }} {{ [] | first }}")
    add("filters_map_select", "{{ msgs | map(attribute='role') | list }} {{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('/') }} "
        "{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 0, 2] | select | list }} "
        "{{ [1, 2, 3] | reject('even') | list }} {{ ['a', 'b'] | map('upper') | list }} {{ msgs | selectattr('tool_calls', 'defined') | list | length }} "
        "{{ msgs | selectattr('content') | list | length }} {{ msgs | map(attribute='nope', default='-') | join }}",
        msgs=[{"role": "user", "content": "u1"}, {"role": "assistant", "content": "", "tool_calls": []}, {"role": "user", "content": "u2"}])
    add("filters_dict", "{{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(by='value', reverse=true) }} {{ d.keys() | list }} {{ d.values() | list }}",
        d={"b": 2, "a": 3, "C": 1})
    add("filters_numbers", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 3 | float }} "
        "{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ -3 | abs }} {{ 5 | string }} {{ 1.0 | string }}")
    add("filters_default", "{{ u | default('d') }} {{ u | d('short') }} {{ '' | default('e') }} {{ '' | default('e', true) }} {{ none | default('n') }} {{ 0 | default(5, boolean=true) }}")
    add("filters_indent", "[{{ 'a\nb\n\nc' | indent }}][{{ 'a\nb' | indent(2, true) }}][{{ 'a\n\nb' | indent(2, blank=true) }}][{{ 'x\ny' | indent('> ') }}]")
    add("filters_format", "{{ '%s-%d' | format('a', 3) }} {{ '%05.2f|%-4s|%x' | format(3.14159, 'ab', 255) }} {{ '%s' % 'one' }} {{ '%s and %s' % ('a', 'b') }} {{ '%r' % 'q' }} {{ '100%%' % () }}")
    add("filters_misc", "{{ 'a<b>&\"' | escape }} {{ 'x' | safe }} {{ 'abc' | center(9) }}| {{ 'one two  three' | wordcount }} {{ [1, 2, 3, 4, 5] | batch(2) | list }}")
    # tojson as HF defines it
    add("tojson_forms", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(indent=4, separators=(',', ':')) }}|{{ d | tojson(sort_keys=true) }}"
        "|{{ d | tojson(ensure_ascii=true) }}|{{ [] | tojson(indent=2) }}|{{ {} | tojson }}|{{ 'x\"\\\\\n\t\u0001' | tojson }}|{{ 1.0 | tojson }}|{{ none | tojson }}",
        d={"z": 1, "a": [1.5, True, None, "é🦥"], "n": {"k": "v"}, "e": {}, "l": []})
    add("tojson_undefined_error", "{{ u | tojson }}")
    # string methods
    add("methods_string", "{{ ' a b  c '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
        "{{ '<<x>>'.strip('<>') }} {{ '  x'.lstrip() }}|{{ 'x  '.rstrip() }}| {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} "
        "{{ 'hello world'.title() }} {{ \"they're\".title() }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'a-b'.replace('-', '') }} "
        "{{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abcabc'.count('bc') }} {{ '-'.join(['x', 'y']) }} {{ '{} and {name}'.format(1, name='n') }} "
        "{{ 'l1\nl2\r\nl3'.splitlines() }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'x'.zfill(3) }}")
    add("methods_list_mutation_error", "{% set l = [1] %}{{ l.append(2) }}")
    # raise_exception and strftime_now
    add("raise_exception", "before{{ raise_exception('Custom failure: roles must alternate') }}after")
    add("strftime_now", "{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %a %b %j %p %I') }}")
    # generation spans
    add("generation_spans", "{% for m in messages %}{{ m.role }}: {% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}",
        messages=[{"role": "user", "content": "hé"}, {"role": "assistant", "content": "🦥 ok"}, {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    # more edge cases
    add("edge_tags_in_strings", "{% set x = '%}' %}{{ x }}{{ '}}' }}{{ '{{' }}{{ \"{% raw %}\" }}")
    add("edge_floats", "{{ 1 / 3 }} {{ 2.0 ** 0.5 }} {{ 1e300 * 1e10 }} {{ -0.0 }} {{ 123456789012345678.0 }} {{ 0.000123 }} {{ 1.5e-7 }} {{ 9007199254740993 }} "
        "{{ 1e22 }} {{ 5e-324 }} {{ [0.1, 1e16, -2.5e-8] }} {{ {'f': 1e100} | tojson }}")
    add("edge_tuple_repr", "{{ (1,) }} {{ () }} {{ (1, 'a') | list }} {{ [1, 2,] }} {{ {'a': 1,} }}")
    add("edge_scoping", "{% macro m() %}{{ x }}{% endmacro %}{% set x = 5 %}[{{ m() }}]{% set y = 1 %}{% macro n() %}{% set y = 2 %}{{ y }}{% endmacro %}"
        "{{ n() }}{{ y }}{% if true %}{% set z = 3 %}{% endif %}{{ z }}")
    add("edge_nested_break", "{% for i in range(3) %}{% for j in range(3) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}")
    add("edge_caller_defined", "{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m() }}{% call m() %}x{% endcall %}")
    add("edge_filtered_loop_length", "{% for m in msgs if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}{{ m.role }} {% endfor %}",
        msgs=[{"role": "system"}, {"role": "user"}, {"role": "assistant"}])
    add("edge_namespace_dict", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}")
    add("edge_default_append", "{% set acc = acc | default([]) + [1] %}{% set acc = acc + [2] %}{{ acc }}")
    add("edge_multiline_tag", "{% set x = {\n  'a': 1,\n  'b': [1,\n 2]\n} %}{{ x }}\n{{\n  x.b\n}}")
    add("edge_ws_var_dash_start", "  {{- 'x' -}}  \n  {%- if true %}  y{% endif %}")
    add("edge_lstrip_mid_line", "a {% if true %}b{% endif %} c\n    {% if true %}\nd{% endif %}")
    add("edge_is_defined_nested", "{{ m.tool_calls is defined }} {{ m.content is defined }} {{ m['x'] is not defined }} {{ m.content.strip() }}",
        m={"content": "  hi  "})
    add("edge_string_compare", "{{ 'é' > 'z' }} {{ 'B' < 'a' }} {{ 'ab' < 'abc' }} {{ [1, 'a'] == [1, 'a'] }} {{ {'a': 1} == {'a': 1} }}")
    add("edge_unicode_strip", "[{{ '\u3000x\u00a0' | trim }}][{{ '\u200bx' | trim }}][{{ 'a\u2028b'.splitlines() }}]")
    add("edge_compare_type_error", "{{ 1 < 'a' }}")
    add("edge_in_none_error", "{{ 'a' in none }}")
    add("edge_floor_div_zero", "{{ 3 // 0 }}")
    add("edge_messages_empty_index", "{% if messages[0]['role'] == 'system' %}x{% endif %}")
    add("edge_format_precision", "{{ '%.2f' | format(3.14159) }} {{ '%5s|%-5s|' | format('a', 'b') }} {{ '%03d' % 7 }} {{ '%+d' % 5 }} {{ '%e' % 12345.678 }}")
    add("edge_join_attribute", "{{ msgs | join(', ', attribute='role') }} {{ [1, 2] | map('string') | join }} {{ msgs | map(attribute='role') | unique | list }}",
        msgs=[{"role": "user"}, {"role": "assistant"}, {"role": "user"}])
    add("edge_startswith_end", "{{ 'hello'.startswith('ell', 1) }} {{ 'hello'.endswith('ell', 0, 4) }} {{ 'hello'.split('l') }} {{ 'a b'.split(none) }}")
    add("edge_items_loop_tuple", "{% for pair in {'a': 1}.items() %}{{ pair }}{{ pair[0] }}{% endfor %} {% for k, v in {'x': [1]} | dictsort %}{{ k }}{{ v }}{% endfor %}")
    add("edge_bool_arith", "{{ true + true }} {{ false * 3 }} {{ true / 2 }} {{ 1 == true }} {{ 'True' == true }}")
    add("edge_selectattr_nested", "{{ msgs | selectattr('function.name', 'equalto', 'add') | list | length }} {{ msgs | map(attribute='function.name') | list }}",
        msgs=[{"function": {"name": "add"}}, {"function": {"name": "sub"}}])
    add("edge_slice_none", "{{ 'abcdef'[none:2] }} {{ [1, 2, 3][-100:100] }} {{ 'abc'[10:] }} {{ [1, 2, 3][::-2] }}")
    add("edge_int_filter_strings", "{{ ' 12 ' | int }} {{ '0x1A' | int(0, 16) }} {{ '1e3' | int }} {{ '-7' | int }} {{ '3.99' | float | int }}")
    add("edge_raise_in_macro", "{% macro check(m) %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Bad role: ' + m.role) }}{% endif %}{% endmacro %}"
        "{% for m in msgs %}{{ check(m) }}{% endfor %}", msgs=[{"role": "user"}, {"role": "tool"}])
    add("edge_generation_nested_loop", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{% for c in m.content %}{{ c }}{% endfor %}{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}{% endfor %}",
        messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "añ🦥"}])
    # sandbox bounds (Python's errors differ in wording; the Swift engine must stop with a limit error)
    add("limit_range", "{{ range(100001) | length }}")
    add("limit_recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
    # syntax errors
    add("syntax_unclosed_if", "{% if true %}x")
    add("syntax_unknown_tag", "{% frobnicate %}")
    add("syntax_bad_expr", "{{ 1 + }}")
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", nargs="*", default=[], help="folders with tokenizer_config.json / chat_template.jinja files")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    # 1. constructs
    cases = []
    for name, template, variables in constructs():
        messages = variables.pop("messages", [])
        r = render(template, messages, spans="generation" in template, **variables)
        r.update({"name": name, "template": template, "variables": variables, "messages": messages})
        cases.append(r)
    write("constructs.json", {"generator": "scripts/golden/templates/make.py", "jinja2": jinja2.__version__,
                              "transformers": transformers.__version__, "special_tokens": SPECIAL, "cases": cases})

    # 2. conversations + named templates
    write("conversations.json", {"tools": TOOLS, "conversations": CONVERSATIONS})
    named = json.load(open(os.path.join(OUT, "named.json"), encoding="utf-8"))["templates"]
    out = []
    for t in named:
        template = t["template"]
        if t["default_system_message"] is not None:
            # Unsloth's _change_system_message with the default message (escaped as a Jinja literal).
            msg = t["default_system_message"]
            esc = msg.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\r", "\\r")
            template = template.replace("{system_message}", esc)
        out.append({"name": t["name"], "cases": render_corpus(template)})
    write("named-golden.json", {"generator": "scripts/golden/templates/make.py", "special_tokens": SPECIAL,
                                "fixed_now": "2024-07-26T10:30:00", "templates": out})

    # 3. real templates: the goldens are committed (rendered text only), the templates are not:
    # the tests read them from .cache/templates (scripts/setup.d/templates.sh) and check the sha256.
    real = collect_real(args.real)
    if real:
        items = [{"name": n, "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest(), "cases": delta_encode(render_corpus(t))}
                 for n, t in real]
        for pkg in sorted({i["name"].split("/")[0] for i in items}):
            write(f"real-golden-{pkg}.json", {
                "generator": "scripts/golden/templates/make.py --real .cache/templates",
                "packages": "trl==1.16.0 axolotl==0.19.0 (scripts/setup.d/templates.sh)",
                "encoding": "a case's text is either 'text', or 'base' (index of an earlier case) + 'keep' (code points of its text) + 'append'",
                "special_tokens": SPECIAL, "fixed_now": "2024-07-26T10:30:00",
                "templates": [i for i in items if i["name"].split("/")[0] == pkg]})


def delta_encode(cases):
    """Stores each text as a prefix of an earlier case's text plus a tail, to keep fixtures small."""
    texts = []
    for c in cases:
        t = c.get("text")
        texts.append(t)
        if t is None:
            continue
        best, keep = None, 0
        for j, prev in enumerate(texts[:-1]):
            if prev is None:
                continue
            n = os.path.commonprefix([prev, t])
            if len(n) > keep:
                best, keep = j, len(n)
        if best is not None and keep > 64:
            del c["text"]
            c.update({"base": best, "keep": keep, "append": t[keep:]})
    return cases


def collect_real(folders):
    found = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "**", "tokenizer_config.json"), recursive=True)):
            cfg = json.load(open(path, encoding="utf-8"))
            ct = cfg.get("chat_template")
            rel = os.path.relpath(path, folder)
            if isinstance(ct, str):
                found.append((rel, ct))
            elif isinstance(ct, list):
                for entry in ct:
                    found.append((f"{rel}#{entry['name']}", entry["template"]))
        for path in sorted(glob.glob(os.path.join(folder, "**", "*.jinja"), recursive=True)):
            found.append((os.path.relpath(path, folder), open(path, encoding="utf-8", newline="").read()))
    return found


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
