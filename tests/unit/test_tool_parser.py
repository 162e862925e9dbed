"""Tool calls out of streamed model text (``pollama.parsers.tools``), and the tag a template says opens them.

Every output shape is checked three ways: fed whole, split in two at every position, and one character
at a time; the joined content and the list of calls must be the same each time (a stream may cut the text
anywhere). Cases follow spec I.2 and acceptance-scenarios §14 (Ollama's tools_test / template_test).
"""

from __future__ import annotations

import pytest

from pollama.parsers.tools import ParsedCall, ToolCallParser, tool_call_tag

TOOLS = ["get_weather", "add", "say_hello", "say_hello_world"]
WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
ADD = '{"name": "add", "arguments": {"a": 1, "b": 2}}'
PARIS = ParsedCall("get_weather", {"city": "Paris"})
ONE_PLUS_TWO = ParsedCall("add", {"a": 1, "b": 2})

Result = tuple[str, list[ParsedCall]]


def parse(tag: str, pieces: list[str], tools: list[str] = TOOLS) -> Result:
    parser = ToolCallParser(tag, tools)
    content: list[str] = []
    calls: list[ParsedCall] = []
    for piece in pieces:
        text, found = parser.add(piece)
        content.append(text)
        calls += found
    text, found = parser.finish()
    return "".join(content) + text, calls + found


def assert_parses(tag: str, text: str, expected: Result, tools: list[str] = TOOLS) -> None:
    assert parse(tag, [text], tools) == expected
    for cut in range(len(text) + 1):
        assert parse(tag, [text[:cut], text[cut:]], tools) == expected, f"split at {cut}: {text[:cut]!r}"
    assert parse(tag, list(text), tools) == expected, "fed one character at a time"


CASES: dict[str, tuple[str, str, Result]] = {
    # The template's tag around JSON, with text around it: the text is content, the call is not.
    "tagged with text around": (
        "<tool_call>",
        f"Let me check.<tool_call>\n{WEATHER}\n</tool_call>",
        ("Let me check.", [PARIS]),
    ),
    "tagged alone": ("<tool_call>", f"<tool_call>\n{WEATHER}\n</tool_call>", ("", [PARIS])),
    "tagged, closing tag never written": ("<tool_call>", f"<tool_call>\n{WEATHER}", ("", [PARIS])),
    "tagged, then an answer": ("<tool_call>", f"<tool_call>{WEATHER}</tool_call>\n\nDone.", ("Done.", [PARIS])),
    "bare object": ("{", WEATHER, ("", [PARIS])),
    "bare object after whitespace": ("{", f"  \n{WEATHER}", ("", [PARIS])),
    "bare object, tag expected": ("<tool_call>", WEATHER, ("", [PARIS])),
    "parameters": ("{", '{"name": "add", "parameters": {"a": 1, "b": 2}}', ("", [ONE_PLUS_TWO])),
    "arguments before name": ("{", '{"arguments": {"a": 1, "b": 2}, "name": "add"}', ("", [ONE_PLUS_TWO])),
    "arguments as a JSON string": (
        "{",
        '{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}',
        ("", [ONE_PLUS_TWO]),
    ),
    "no arguments": ("{", '{"name": "add"}', ("", [ParsedCall("add", {})])),
    "empty arguments string": ("{", '{"name": "add", "arguments": ""}', ("", [ParsedCall("add", {})])),
    "braces inside strings": (
        "{",
        '{"name": "add", "arguments": {"a": "}{\\"["}}',
        ("", [ParsedCall("add", {"a": '}{"['})]),
    ),
    "unicode arguments": (
        "{",
        '{"name": "add", "arguments": {"a": "héllo ☃"}}',
        ("", [ParsedCall("add", {"a": "héllo ☃"})]),
    ),
    "fenced json block": ("{", f"```json\n{ADD}\n```", ("", [ONE_PLUS_TWO])),
    "fenced block without language": ("{", f"```\n{ADD}\n```", ("", [ONE_PLUS_TWO])),
    "tagged calls in a row": (
        "<tool_call>",
        f"<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>\n{ADD}\n</tool_call>",
        ("", [PARIS, ONE_PLUS_TWO]),
    ),
    "tagged calls with text between": (
        "<tool_call>",
        f"x <tool_call>{WEATHER}</tool_call> y <tool_call>{ADD}</tool_call> z",
        ("x y z", [PARIS, ONE_PLUS_TWO]),
    ),
    "bare objects in a row": ("{", f"{WEATHER}\n{ADD}", ("", [PARIS, ONE_PLUS_TWO])),
    "a JSON list of calls": ("{", f"[{WEATHER}, {ADD}]", ("", [PARIS, ONE_PLUS_TWO])),
    "OpenAI shape": ("{", '{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}', ("", [ONE_PLUS_TWO])),
    "OpenAI shape with a string": (
        "{",
        '{"type": "function", "function": {"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}}',
        ("", [ONE_PLUS_TWO]),
    ),
    "tool name as the key": ("{", '{"add": {"a": 1, "b": 2}}', ("", [ONE_PLUS_TWO])),
    "longer name sharing a prefix": (
        "{",
        '{"name": "say_hello_world", "arguments": {}}',
        ("", [ParsedCall("say_hello_world", {})]),
    ),
    "call, then text": ("{", f"{WEATHER} and that is all", ("and that is all", [PARIS])),
    "[TOOL_CALLS] tag": ("[TOOL_CALLS]", f"[TOOL_CALLS] [{WEATHER}, {ADD}]", ("", [PARIS, ONE_PLUS_TWO])),
    "[TOOL_CALLS] tag after text": ("[TOOL_CALLS]", f"Sure. [TOOL_CALLS][{ADD}]", ("Sure. ", [ONE_PLUS_TWO])),
    # What stays content.
    "tool not offered, bare": ("{", '{"name": "multiply", "arguments": {"a": 2}}', None),
    "tool not offered, tagged": (
        "<tool_call>",
        '<tool_call>{"name": "multiply", "arguments": {"a": 2}}</tool_call>',
        None,
    ),
    "one of the listed calls not offered": ("{", f'[{ADD}, {{"name": "multiply", "arguments": {{}}}}]', None),
    "invalid JSON after the tag": (
        "<tool_call>",
        '<tool_call>{"name": "add", "arguments": {"a": 1}</tool_call> ok',
        None,
    ),
    "no JSON after the tag": ("<tool_call>", "<tool_call>not json</tool_call>", None),
    "unfinished call": ("<tool_call>", '<tool_call>{"name": "add", "arguments": {"a": 1}', None),
    "arguments not an object": ("{", '{"name": "add", "arguments": [1, 2]}', None),
    "arguments string not JSON": ("{", '{"name": "add", "arguments": "a=1"}', None),
    "braces that are no call": ("{", "The set {1, 2} has {two} elements.", None),
    "a JSON object that is no call": ("{", '{"two": 2} is a dict', None),
    "no call, then a call": ("{", f'{{"two": 2}}{ADD}', None),
    "JSON list that is no call": ("{", "[1, 2, 3]", None),
    "code block of another language": ("{", '```python\nprint({"name": "add"})\n```', None),
    "fenced JSON that is no call": ("{", '```json\n{"not": "a call"}\n```', None),
    "bare call after text": ("{", f"Here you go: {ADD}", None),
    "fenced call after text": ("{", f"Sure:\n```json\n{ADD}\n```", None),
    "text with a partial tag": ("<tool_call>", "a < b and <tool or <tool_cal", None),
    "plain text": ("<tool_call>", "Hello, world!", None),
    "nothing": ("<tool_call>", "", None),
}


@pytest.mark.parametrize(("tag", "text", "expected"), CASES.values(), ids=CASES.keys())
def test_output_shapes(tag: str, text: str, expected: Result | None) -> None:
    assert_parses(tag, text, expected if expected is not None else (text, []))


def test_the_bare_tag_matches_only_at_the_start() -> None:
    # Spec I.2: for the tag "{", parsing is attempted only when it is the first non-whitespace output.
    assert_parses("{", f"ok {WEATHER}", (f"ok {WEATHER}", []))
    assert_parses("[", f"[{WEATHER}]", ("", [PARIS]))


def test_calls_come_out_as_soon_as_they_are_complete() -> None:
    parser = ToolCallParser("<tool_call>", TOOLS)
    text = f"Checking.<tool_call>\n{WEATHER}\n</tool_call>"
    end_of_json = text.index("}}") + 2
    seen: list[tuple[int, str, list[ParsedCall]]] = []
    for position, char in enumerate(text, start=1):
        content, calls = parser.add(char)
        if content or calls:
            seen.append((position, content, calls))
    assert parser.finish() == ("", [])
    # The content is not held back beyond what could be the tag, and the call comes with its last brace.
    assert "".join(content for _, content, _ in seen) == "Checking."
    assert seen[-1] == (end_of_json, "", [PARIS])
    assert all(position <= len("Checking.") for position, _, calls in seen[:-1])


def test_a_partial_tag_is_held_back_until_it_is_known() -> None:
    parser = ToolCallParser("<tool_call>", TOOLS)
    assert parser.add("Hello <tool") == ("Hello ", [])
    assert parser.add("s are fun") == ("<tools are fun", [])
    assert parser.finish() == ("", [])


def test_whitespace_alone_waits_at_the_start() -> None:
    parser = ToolCallParser("{", TOOLS)
    assert parser.add("\n  ") == ("", [])
    assert parser.add("Hi") == ("\n  Hi", [])
    assert parser.finish() == ("", [])


def test_a_fresh_parser_per_request() -> None:
    parser = ToolCallParser("{", ["add"])
    assert parser.add(ADD) == ("", [ONE_PLUS_TWO])
    assert parser.finish() == ("", [])
    # Names are compared exactly: a tool list without "add" turns the same text into content.
    assert parse("{", [ADD], ["get_weather"]) == (ADD, [])


# --- known bugs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("<tool_call>", f"<tool_call>\n{WEATHER}\n</tool_call>\n"),
        ("{", f"{WEATHER}\n\n"),
        ("{", f"```json\n{ADD}\n```\n"),
    ],
)
def test_trailing_whitespace_after_a_call_does_not_depend_on_the_split(tag: str, text: str) -> None:
    assert_parses(tag, text, parse(tag, [text]))


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("<tool_call>", "<tool_call>\nnot json</tool_call>"),
        ("<tool_call>", '<tool_call>\n{"name": "multiply", "arguments": {}}\n</tool_call>'),
        ("<tool_call>", "a <tool_call> b"),
        ("{", '  {"two": 2}'),
        ("{", '\n{"name": "multiply", "arguments": {}}'),
        ("{", '```JSON \n{"two": 2}\n```'),
        ("{", '```json\n  {"two": 2}\n```'),
    ],
)
def test_text_that_is_no_call_stays_content_verbatim(tag: str, text: str) -> None:
    assert parse(tag, [text]) == (text, [])


# --- the tag that opens a call ------------------------------------------------------------------------------

QWEN_STYLE = (
    '{{- if .ToolCalls }}<tool_call>\n{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
    '"arguments": {{ .Function.Arguments }}}\n{{ end }}</tool_call>{{ end }}'
)
MISTRAL_STYLE = (
    '{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
    '"arguments": {{ .Function.Arguments }}}{{ end }}]{{ end }}'
)
# Ollama's own qwen2.5 template (tools/testdata/qwen2.5.gotmpl), assistant part: the calls are in an `else if`.
OLLAMA_QWEN25 = (
    "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    '{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ if .Content }}{{ .Content }}\n'
    "{{- else if .ToolCalls }}<tool_call>\n"
    '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}\n'
    "{{ end }}</tool_call>\n{{- end }}{{ if not $last }}<|im_end|>\n{{ end }}\n{{- end }}\n{{- end }}"
)
# Ollama's mistral template, assistant part.
OLLAMA_MISTRAL = (
    '{{- range $index, $_ := .Messages }}{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST]'
    '{{- else if eq .Role "assistant" }}{{- if .Content }} {{ .Content }}'
    "{{- else if .ToolCalls }}[TOOL_CALLS] [\n"
    '{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}\n'
    "{{- end }}]{{- end }}</s>{{- end }}{{- end }}"
)


@pytest.mark.parametrize(
    ("go_template", "chat_template", "tag"),
    [
        (QWEN_STYLE, "", "<tool_call>"),
        ("{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}", "", "{"),
        ("{{ range .Messages }}{{ .Content }}{{ end }}", "{% if tools %}<tool_call>{% endif %}", "{"),
        # Ollama's rule (spec I.2, tools/template_test "uppercase tool call with incomplete bracket"): the text is
        # cut at "{" only, so Mistral's tag keeps its " [".
        (MISTRAL_STYLE, "", "[TOOL_CALLS] ["),
        ("{{ if .ToolCalls }}{{ range .ToolCalls }}{{ . }}{{ end }}{{ end }}", "", "{"),
        ('{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}{{ end }}', "", "{"),
        ("{{if .ToolCalls}}\n [ {{range .ToolCalls}}{{ . }}{{end}}]{{end}}", "", "["),
        ("{{if .ToolCalls}}```json\n{{end}}", "", "```json"),
        ("{{if .ToolCalls}}functools[{{end}}", "", "functools["),
        (None, "{% for m in messages %}{% if m.tool_calls %}<tool_call>{% endif %}{% endfor %}", "<tool_call>"),
        ("", "{%- if tools %}[TOOL_CALLS]{% endif %}", "[TOOL_CALLS]"),
        (None, "{{ '<|python_tag|>' }}", "<|python_tag|>"),
        (None, "{% for m in messages %}{{ m.content }}{% endfor %}", "{"),
        (None, "", "{"),
    ],
)
def test_tool_call_tag(go_template: str | None, chat_template: str, tag: str) -> None:
    assert tool_call_tag(go_template, chat_template) == tag


def test_tool_call_tag_inside_the_range() -> None:
    template = "{{if .ToolCalls}}{{range .ToolCalls}}<tool_call>{{.}}</tool_call>{{end}}{{end}}"
    assert tool_call_tag(template) == "<tool_call>"


@pytest.mark.parametrize(("template", "tag"), [(OLLAMA_QWEN25, "<tool_call>"), (OLLAMA_MISTRAL, "[TOOL_CALLS] [")])
def test_tool_call_tag_of_an_else_if(template: str, tag: str) -> None:
    assert tool_call_tag(template) == tag


@pytest.mark.parametrize(
    ("text", "calls"),
    [(f"[TOOL_CALLS] [{ADD}]", [ONE_PLUS_TWO]), (f"[TOOL_CALLS] [{WEATHER}, {ADD}]", [PARIS, ONE_PLUS_TWO])],
)
def test_mistral_calls_with_the_tag_from_its_template(text: str, calls: list[ParsedCall]) -> None:
    assert parse(tool_call_tag(MISTRAL_STYLE), [text]) == ("", calls)
