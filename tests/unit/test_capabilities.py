"""Capability detection (spec H.5, Ollama's ``Model.Capabilities`` in ``server/images.go`` and
``TestModelCapabilities`` in ``server/images_test.go``) and template identifiers (Ollama's
``Template.Vars`` / ``Identifiers`` in ``template/template.go``, ``TestParse`` in its tests)."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.model.capabilities import chat_template_capabilities, go_template_capabilities, model_capabilities
from pollama.store.gguf import GGUFFile
from pollama.templates.gotemplate import Template
from pollama.templates.model_template import template_vars


def gguf(arch: str = "llama", chat_template: str | None = None, **kv: Any) -> GGUFFile:
    values: dict[str, Any] = {"general.architecture": arch}
    if chat_template is not None:
        values["tokenizer.chat_template"] = chat_template
    values.update({key.replace("__", "."): value for key, value in kv.items()})
    return GGUFFile(version=3, kv=values)


# --- template identifiers (Template.Vars) ---------------------------------------------------------


def template_identifiers(template: str) -> set[str]:
    return set(template_vars(Template(template)))


# TestParse; Ollama's Parse also appends {{ .Response }} to templates without .Messages or .Response,
# which is where its extra "response" comes from. template_vars sees only the text given.
PARSE_CASES = {
    "PromptOnly": ("{{ .Prompt }}", {"prompt"}),
    "SystemAndPrompt": ("{{ .System }} {{ .Prompt }}", {"prompt", "system"}),
    "PromptResponseSystem": ("{{ .System }} {{ .Prompt }} {{ .Response }}", {"prompt", "response", "system"}),
    "ToolsBlock": ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", {"prompt", "system", "tools"}),
    "MessagesRange": ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", {"content", "messages", "role"}),
    "ToolResultConditional": (
        '{{ range .Messages }}{{ if eq .Role "tool" }}Tool Result: {{ .ToolName }} {{ .Content }}{{ end }}{{ end }}',
        {"content", "messages", "role", "toolname"},
    ),
    "MultilineSystemUserAssistant": (
        """{{- range .Messages }}
{{- if eq .Role "system" }}SYSTEM:
{{- else if eq .Role "user" }}USER:
{{- else if eq .Role "assistant" }}ASSISTANT:
{{- else if eq .Role "tool" }}TOOL:
{{- end }} {{ .Content }}
{{- end }}""",
        {"content", "messages", "role"},
    ),
    "ChatMLLike": (
        """{{- if .Messages }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ else -}}
{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
{{- end -}}""",
        {"content", "messages", "prompt", "response", "role", "system"},
    ),
}


@pytest.mark.parametrize(("template", "expected"), list(PARSE_CASES.values()), ids=list(PARSE_CASES))
def test_template_vars(template: str, expected: set[str]) -> None:
    assert template_identifiers(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("", set()),
        ("plain text mentioning .Tools and .Suffix", set()),
        ("{{ .TOOLS }}{{ .suffix }}", {"tools", "suffix"}),
        ("{{- .Prompt -}}", {"prompt"}),
        # field chains: every identifier of the chain
        ("{{ .ToolCalls.Function.Name }}", {"toolcalls", "function", "name"}),
        (
            "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}{{ end }}{{ end }}",
            {"messages", "toolcalls", "function", "arguments"},
        ),
        # variables: the root "$" and named variables, with their fields
        ("{{ $.Tools }}", {"$", "tools"}),
        ("{{ $m := .Messages }}{{ $m.Content }}", {"messages", "$m", "content"}),
        ("{{ $ }}", {"$"}),
        # function names and literals are not identifiers
        ("{{ json .Tools }}", {"tools"}),
        ("{{ len .Messages }}{{ .Messages | len }}", {"messages"}),
        ("{{ 1.5 }}{{ 42 }}{{ true }}{{ nil }}", set()),
        ('{{ if eq .Role "tools" }}{{ end }}', {"role"}),
        ('{{ print ".Tools" }}{{ print `.Suffix` }}', set()),
        ('{{ printf "%s.Tools" .Prompt }}', {"prompt"}),
        ("{{ if and .System (not .Tools) }}{{ end }}", {"system", "tools"}),
        ("{{ index .Messages 0 }}", {"messages"}),
        # comments are not part of the parse tree
        ("{{/* .Tools */}}{{ .Prompt }}", {"prompt"}),
        ("{{- /* uses .Suffix */ -}}", set()),
        ("{{/* multi\nline .Tools */}}", set()),
        # defined templates are walked too
        ('{{ define "x" }}{{ .Suffix }}{{ end }}{{ template "x" . }}', {"suffix"}),
        ('{{ block "b" .Messages }}{{ .Role }}{{ end }}', {"messages", "role"}),
    ],
)
def test_template_identifiers(template: str, expected: set[str]) -> None:
    assert template_identifiers(template) == expected


# --- GGUF chat template (Jinja) capabilities ------------------------------------------------------


@pytest.mark.parametrize(
    ("chat_template", "expected"),
    [
        ("", []),
        ("{{ messages }}", []),
        ("{% if tools %}{{ tools }}{% endif %}", ["tools"]),
        ("<tool_call>{{ x }}</tool_call>", ["tools"]),
        ("{{ '<think>' }}{{ content }}{{ '</think>' }}", ["thinking"]),
        ("<think> only", []),
        ("only </think>", []),
        (
            "{% if tools %}<tool_call>{{ tools }}</tool_call>{% endif %}<think>{{ messages[0]['content'] }}</think>",
            ["tools", "thinking"],
        ),
        # Qwen/DeepSeek templates that strip prior reasoning at </think>
        ("{% set content = content.split('</think>')[-1] %}", ["thinking"]),
        ('{% set content = content.split("</think>")[-1] %}', ["thinking"]),
        ("{% if reasoning_content %}{% endif %}{% set c = content.split('</think>')[-1] %}", []),
        # chatTemplateHasThinkingSupport also excludes templates containing <SPECIAL_12>
        ("<SPECIAL_12>{% set c = content.split('</think>')[-1] %}", []),
    ],
)
def test_chat_template_capabilities(chat_template: str, expected: list[str]) -> None:
    assert chat_template_capabilities(chat_template) == expected


# --- Go template capabilities ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .prompt }}", []),
        ("{{ .prompt }}{{ if .tools }}{{ .tools }}{{ end }}", ["tools"]),
        (
            "{{ .prompt }}{{ if .tools }}{{ .tools }}{{ end }}{{ if .suffix }}{{ .suffix }}{{ end }}",
            ["tools", "insert"],
        ),
        ("{{ .Suffix }}", ["insert"]),
        ("{{/* .Tools */}}{{ .Prompt }}", []),
        ('{{ "{{ .Tools }}" }}', []),
    ],
)
def test_go_template_capabilities(template: str, expected: list[str]) -> None:
    assert go_template_capabilities(template) == expected


# "doubly nested range": the nearest range is over .NotMessages, so no tags are inferred.
NESTED_RANGE_TEMPLATE = """
			{{- range $i, $_ := .Messages }}
				{{- range $j, $_ := .NotMessages }}
					{{ if .Thinking }}
						<think>{{ .Thinking }}</think>
					{{ end }}
				{{ end }}
			{{ end }}
		"""


# Inferring thinking tags from a Go template (thinking.InferTags) needs the template's parse tree,
# which comes with the Go template interpreter; until then no Go template claims "thinking".
def test_go_template_thinking_needs_a_messages_range() -> None:
    assert go_template_capabilities(NESTED_RANGE_TEMPLATE) == []
    assert go_template_capabilities("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}") == []


# --- model_capabilities (TestModelCapabilities) ---------------------------------------------------

CHAT_PROMPT = "{{ .prompt }}"
TOOLS_TEMPLATE = "{{ .prompt }}{{ if .tools }}{{ .tools }}{{ end }}"
TOOLS_INSERT_TEMPLATE = "{{ .prompt }}{{ if .tools }}{{ .tools }}{{ end }}{{ if .suffix }}{{ .suffix }}{{ end }}"
GGUF_TOOL_TEMPLATE = (
    "{% if tools %}<tool_call>{{ tools }}</tool_call>{% endif %}<think>{{ messages[0]['content'] }}</think>"
)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # model with image generation capability via config
        ({"gguf": None, "go_template": None, "config_capabilities": ["image"]}, ["image"]),
        ({"gguf": None, "go_template": None, "config_capabilities": ["image", "vision"]}, ["image", "vision"]),
        # model with completion capability
        ({"gguf": gguf(), "go_template": CHAT_PROMPT}, ["completion"]),
        # model with completion, tools, and insert capability
        ({"gguf": gguf(), "go_template": TOOLS_INSERT_TEMPLATE}, ["completion", "tools", "insert"]),
        # model with tools capability
        ({"gguf": gguf(), "go_template": TOOLS_TEMPLATE}, ["completion", "tools"]),
        # model with GGUF chat_template tools and thinking
        ({"gguf": gguf(chat_template=GGUF_TOOL_TEMPLATE), "go_template": None}, ["tools", "thinking", "completion"]),
        # model with Go TEMPLATE ignores GGUF chat_template capabilities
        ({"gguf": gguf(chat_template=GGUF_TOOL_TEMPLATE), "go_template": CHAT_PROMPT}, ["completion"]),
        # model with vision capability
        ({"gguf": gguf(llama__vision__block_count=1), "go_template": CHAT_PROMPT}, ["completion", "vision"]),
        # model with vision, tools, and insert capability
        (
            {"gguf": gguf(llama__vision__block_count=1), "go_template": TOOLS_INSERT_TEMPLATE},
            ["completion", "vision", "tools", "insert"],
        ),
        # model with embedding capability
        ({"gguf": gguf("bert", bert__pooling_type=1), "go_template": CHAT_PROMPT}, ["embedding"]),
        # audio
        ({"gguf": gguf(llama__audio__block_count=1), "go_template": None}, ["completion", "audio"]),
        # keys belong to the model's own architecture
        ({"gguf": gguf("qwen2", llama__pooling_type=1), "go_template": None}, ["completion"]),
        ({"gguf": gguf("qwen2", qwen2__pooling_type=0), "go_template": None}, ["embedding"]),
        # projector layers add vision
        ({"gguf": gguf(), "go_template": CHAT_PROMPT, "projector_count": 1}, ["completion", "vision"]),
        (
            {"gguf": gguf(llama__vision__block_count=1), "go_template": None, "projector_count": 2},
            ["completion", "vision"],
        ),
        # family gptoss / gpt-oss -> thinking
        ({"gguf": gguf("gptoss"), "go_template": CHAT_PROMPT, "family": "gptoss"}, ["completion", "thinking"]),
        ({"gguf": gguf("gptoss"), "go_template": CHAT_PROMPT, "family": "gpt-oss"}, ["completion", "thinking"]),
        ({"gguf": gguf(), "go_template": CHAT_PROMPT, "family": "llama"}, ["completion"]),
        # config capabilities come first and are not repeated
        (
            {"gguf": gguf(), "go_template": TOOLS_TEMPLATE, "config_capabilities": ["tools", "completion"]},
            ["tools", "completion"],
        ),
        # no GGUF, no template
        ({"gguf": None, "go_template": None}, []),
        ({"gguf": None, "go_template": TOOLS_TEMPLATE}, ["tools"]),
    ],
)
def test_model_capabilities(kwargs: dict[str, Any], expected: list[str]) -> None:
    assert model_capabilities(**kwargs) == expected
