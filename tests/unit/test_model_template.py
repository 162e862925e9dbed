"""Ollama's template semantics (template/template.go) over our Go template interpreter."""

from __future__ import annotations

import datetime as dt

import pytest

from pollama.templates.gotemplate import Template, TemplateSyntaxError
from pollama.templates.gotemplate.functions import ollama_functions
from pollama.templates.model_template import ModelTemplate, TemplateValues, collate

LEGACY = (
    "{{ if .System }}System: {{ .System }} {{ end }}{{ if .Prompt }}User: {{ .Prompt }} {{ end }}"
    "Assistant: {{ .Response }} "
)
# Without a mention of .Messages a template takes the legacy path, which has no .Tools.
MESSAGES = "{{ range .Messages }}{{ end }}"
FIM = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}"
CHATML = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather <now> & later",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                "city": {"type": "string", "description": "City"},
                "when": {"type": ["string", "null"]},
            },
        },
    },
}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def render(template: str, **values: object) -> str:
    return ModelTemplate(template).execute(TemplateValues(**values))  # type: ignore[arg-type]


def test_vars_are_lowercased_sorted_and_include_defined_templates() -> None:
    template = ModelTemplate('{{ define "x" }}{{ .Tools }}{{ end }}{{ range .Messages }}{{ .Role }}{{ end }}')
    assert template.vars == ["messages", "role", "tools"]


def test_a_template_call_without_data_is_refused_as_ollama_does() -> None:
    with pytest.raises(TemplateSyntaxError, match="undefined template specified"):
        ModelTemplate('{{ define "x" }}hi{{ end }}{{ template "x" }}')


def test_legacy_template_gets_a_response_appended() -> None:
    assert render("{{ .Prompt }}", messages=[user("hi")]) == "hi"
    assert ModelTemplate("{{ .Prompt }}").vars == ["prompt"]
    # The appended {{ .Response }} continues an earlier answer in the legacy multi-turn form.
    messages = [user("a"), {"role": "assistant", "content": "b"}, user("c")]
    assert render("{{ .Prompt }}", messages=messages) == "abc"


def test_prompt_system_and_template_override_examples() -> None:
    assert render(LEGACY, messages=[user("Hello!")]) == "User: Hello! Assistant: "
    system = [{"role": "system", "content": "You are a helpful assistant."}, user("Hello!")]
    assert render(LEGACY, messages=system) == "System: You are a helpful assistant. User: Hello! Assistant: "
    magic = [{"role": "system", "content": "You can perform magic tricks."}, user("Help me write tests.")]
    assert render("{{ .System }} ### USER {{ .Prompt }} ", messages=magic) == (
        "You can perform magic tricks. ### USER Help me write tests. "
    )


def test_legacy_multi_turn_cuts_the_last_turn_after_response() -> None:
    messages = [
        {"role": "system", "content": "S"},
        user("one"),
        {"role": "assistant", "content": "1"},
        user("two"),
    ]
    assert render(LEGACY, messages=messages) == ("System: S User: one Assistant: 1 User: two Assistant: ")


def test_fill_in_the_middle() -> None:
    assert render(FIM, prompt="def add(", suffix="    return c") == "<PRE> def add( <SUF>    return c <MID>"
    assert render(FIM, messages=[user("def add(")]) == "def add("


def test_messages_template_and_collation() -> None:
    assert render("{{range .Messages}}{{.Role}}: {{.Content}}\n{{end}}", messages=[user("Hello!")]) == "user: Hello!\n"
    messages = [{"role": "system", "content": "S"}, user("a"), user("b"), {"role": "tool", "content": "1"}]
    messages.append({"role": "tool", "content": "2"})
    assert render(CHATML, messages=messages) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na\n\nb<|im_end|>\n"
        "<|im_start|>tool\n1<|im_end|>\n<|im_start|>tool\n2<|im_end|>\n<|im_start|>assistant\n"
    )


def test_collate_joins_every_system_message() -> None:
    system, _ = collate([{"role": "system", "content": "a"}, user("x"), {"role": "system", "content": "b"}])
    assert system == "a\n\nb"


def test_the_legacy_path_has_no_tools() -> None:
    assert render("{{ .Tools }}", messages=[user("hi")], tools=[WEATHER]) == "<no value>"


def test_tools_print_as_json_not_go_structs() -> None:
    template = "{{ .Tools }}|{{ range .Tools }}{{ .Function }}{{ end }}" + MESSAGES
    out = render(template, messages=[user("hi")], tools=[WEATHER])
    tools_json, function_json = out.split("|")
    # Go's encoder: struct field order, sorted property names, <>& escaped, unknown schema keys dropped.
    assert function_json == (
        '{"name":"get_weather","description":"Weather \\u003cnow\\u003e \\u0026 later","parameters":'
        '{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City"},'
        '"unit":{"type":"string","enum":["c","f"]},"when":{"type":["string","null"]}}}}'
    )
    assert tools_json == '[{"type":"function","function":' + function_json + "}]"


def test_properties_range_sorted_and_types_print_like_property_type() -> None:
    template = (
        "{{ range .Tools }}{{ range $name, $p := .Function.Parameters.Properties }}{{ $name }}:{{ $p.Type }};"
        "{{ end }}{{ end }}" + MESSAGES
    )
    assert render(template, messages=[user("hi")], tools=[WEATHER]) == "city:string;unit:string;when:[string null];"


def test_tool_call_arguments_print_and_encode_as_sorted_json() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"z": 1.5, "city": "Paris", "n": 3}}}
    messages = [user("hi"), {"role": "assistant", "content": "", "tool_calls": [call]}]
    template = (
        "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }} {{ .Function.Arguments }} "
        "{{ json .Function.Arguments }}{{ end }}{{ end }}"
    )
    assert render(template, messages=messages) == (
        'get_weather {"city":"Paris","n":3,"z":1.5} {"city":"Paris","n":3,"z":1.5}'
    )


def test_think_values_reach_the_template() -> None:
    template = (
        "{{ if .IsThinkSet }}set:{{ .Think }}:{{ .ThinkLevel }}{{ else }}unset{{ end }}{{ range .Messages }}{{ end }}"
    )
    assert render(template, messages=[user("x")]) == "unset"
    assert render(template, messages=[user("x")], think=True, think_level="high", is_think_set=True) == "set:true:high"


def test_to_typescript_type_of_tool_properties() -> None:
    template = (
        "{{ range .Tools }}{{ range $name, $p := .Function.Parameters.Properties }}"
        "{{ $name }}: {{ toTypeScriptType $p }}; {{ end }}{{ end }}{{ toTypeScriptType 1 }}" + MESSAGES
    )
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": ["string", "null"]},
                    "c": {"anyOf": [{"type": "array"}, {"type": "object"}]},
                    "d": {"description": "untyped"},
                },
            },
        },
    }
    assert render(template, messages=[user("hi")], tools=[tool]) == (
        "a: number; b: string | null; c: any[] | Record<string, any>; d: any; any"
    )


def test_date_functions() -> None:
    functions = ollama_functions(today=lambda: dt.date(2026, 3, 1))
    template = Template('{{ currentDate }} {{ yesterdayDate }} {{ currentDate "%Y" }}', functions=functions)
    assert template.execute({}) == "2026-03-01 2026-02-28 2026-03-01"
