"""pollama.templates.jinja: GGUF chat templates rendered as transformers' ``apply_chat_template`` renders them.

The expected prompts were produced by transformers 5.23.0
(``transformers.utils.chat_template_utils.render_jinja_template``, after ``apply_chat_template``'s dropping of
``None``-valued message keys) with jinja2 3.1.6, and pasted here literally.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from pollama.store.gguf import read_gguf
from pollama.templates.jinja import ChatTemplateError, render_chat_template
from tools.test_models import ensure_model

USER = [{"role": "user", "content": "Hello!"}]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — «quoted» <b>&</b>",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}},
            "required": ["city"],
        },
    },
}

TOOL_CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Zürich?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}],
    },
    {"role": "tool", "content": '{"temp_c": 21, "sky": "sunny"}', "tool_call_id": "call_1", "name": "get_weather"},
]

QWEN_TOOLS_PREAMBLE = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "get_weather", '
    '"description": "Get the current weather in a city — «quoted» <b>&</b>", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string", '
    '"description": "City name, e.g. Zürich"}}, "required": ["city"]}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)
QWEN_TOOL_TURNS = (
    "<|im_start|>user\nWeather in Zürich?<|im_end|>\n"
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n'
    "</tool_call><|im_end|>\n"
    '<|im_start|>user\n<tool_response>\n{"temp_c": 21, "sky": "sunny"}\n</tool_response><|im_end|>\n'
    "<|im_start|>assistant\n"
)
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def smollm2_template() -> str:
    return read_gguf(ensure_model("smollm2")).chat_template


@pytest.fixture(scope="module")
def qwen_template() -> str:
    return read_gguf(ensure_model("qwen2.5-coder")).chat_template


def render(source: str, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> str:
    return render_chat_template(source, USER if messages is None else messages, **kwargs)


# --- real templates ---------------------------------------------------------------------------------------------


def test_smollm2_injects_its_default_system_prompt(smollm2_template: str) -> None:
    assert render(smollm2_template) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_with_system_and_several_turns(smollm2_template: str) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Bye"},
    ]
    assert render(smollm2_template, messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\nHi.<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_without_generation_prompt(smollm2_template: str) -> None:
    assert render(smollm2_template, add_generation_prompt=False) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
    )


@pytest.mark.slow  # the Qwen GGUF is a 491 MB download on a fresh machine
def test_qwen_tools_with_a_prior_call_and_its_result(qwen_template: str) -> None:
    expected = "<|im_start|>system\nYou are terse." + QWEN_TOOLS_PREAMBLE + QWEN_TOOL_TURNS
    assert render(qwen_template, TOOL_CHAT, tools=[WEATHER_TOOL]) == expected


@pytest.mark.slow  # the Qwen GGUF is a 491 MB download on a fresh machine
def test_qwen_tools_without_system_message_use_the_default_system_prompt(qwen_template: str) -> None:
    expected = "<|im_start|>system\n" + QWEN_DEFAULT_SYSTEM + QWEN_TOOLS_PREAMBLE + QWEN_TOOL_TURNS
    assert render(qwen_template, TOOL_CHAT[1:], tools=[WEATHER_TOOL]) == expected


@pytest.mark.parametrize("tools", [None, []], ids=["none", "empty"])
@pytest.mark.slow  # the Qwen GGUF is a 491 MB download on a fresh machine
def test_qwen_without_tools(qwen_template: str, tools: list[dict[str, Any]] | None) -> None:
    assert render(qwen_template, [{"role": "user", "content": "hi"}], tools=tools) == (
        f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


# --- environment ------------------------------------------------------------------------------------------------


def test_tojson_keeps_non_ascii_and_html_characters() -> None:
    source = "{{ messages[0].content|tojson }}"
    assert render(source, [{"role": "user", "content": "Zürich <b>&'é"}]) == '"Zürich <b>&\'é"'


def test_tojson_accepts_transformers_options() -> None:
    source = "{{ {'b': 1, 'a': [1, 2]}|tojson(indent=2, sort_keys=True) }}|{{ [1, 2]|tojson(separators=(',', ':')) }}"
    assert render(source) == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}|[1,2]'


def test_strftime_now() -> None:
    before = datetime.now().strftime("%Y-%m-%d")
    rendered = render("{{ strftime_now('%Y-%m-%d') }}")
    assert rendered in {before, datetime.now().strftime("%Y-%m-%d")}


def test_loop_controls() -> None:
    source = (
        "{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}"
        "{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    )
    assert render(source) == "02"


def test_generation_tag_renders_its_body() -> None:
    source = "{% for m in messages %}[{% generation %}{{ m.content }}{% endgeneration %}]{% endfor %}"
    assert render(source, [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "[a][b]"


def test_trim_and_lstrip_blocks() -> None:
    assert render("  {% if true %}\n  x\n  {% endif %}\n") == "  x\n"


def test_add_generation_prompt_is_passed() -> None:
    source = "{{ add_generation_prompt }}"
    assert render(source) == "True"
    assert render(source, add_generation_prompt=False) == "False"


def test_undefined_variables_render_empty() -> None:
    assert render("{{ foo }}|{{ foo is defined }}|{{ messages[0].missing }}") == "|False|"


def test_tools_and_documents_are_always_defined() -> None:
    # transformers passes tools=None and documents=None, so `is defined` holds even without them.
    source = "{{ tools is defined }}|{{ tools is none }}|{{ documents is defined }}|{{ documents is none }}"
    assert render(source) == "True|True|True|True"
    assert render("{{ tools|length }}", tools=[WEATHER_TOOL]) == "1"


def test_special_tokens_and_variables() -> None:
    source = "{{ bos_token }}|{{ eos_token }}|{{ enable_thinking }}|{{ documents[0].title }}"
    variables = {"enable_thinking": False, "documents": [{"title": "é", "text": "x"}]}
    assert render(source, bos_token="<s>", eos_token="</s>", variables=variables) == "<s>|</s>|False|é"


def test_variables_override_special_tokens_but_not_the_arguments() -> None:
    source = "{{ bos_token }}|{{ messages|length }}|{{ add_generation_prompt }}|{{ tools is none }}"
    variables = {"bos_token": "<B>", "messages": [], "add_generation_prompt": False, "tools": [1]}
    assert render(source, bos_token="<s>", variables=variables) == "<B>|1|True|True"


def test_none_valued_message_keys_are_dropped_and_reasoning_aliased() -> None:
    messages = [
        {"role": "user", "content": "héllo <b>", "thinking": "t"},
        {"role": "assistant", "content": None, "reasoning": "r", "tool_calls": None},
    ]
    assert render("{{ messages|tojson }}", messages) == (
        '[{"thinking": "t", "role": "user", "content": "héllo <b>", "reasoning_content": "t"}, '
        '{"thinking": "r", "role": "assistant", "reasoning": "r", "reasoning_content": "r"}]'
    )
    assert messages[1] == {"role": "assistant", "content": None, "reasoning": "r", "tool_calls": None}


def test_rich_objects_reach_the_template_as_placeholders() -> None:
    class Image:
        pass

    class Role(str):
        def shout(self) -> str:
            return self.upper()

    messages = [{"role": Role("user"), "content": "hi", "images": [Image()]}]
    rendered = render(
        "{{ messages[0].images[0] }}|{{ messages[0].role }}|{{ messages[0].role.shout is defined }}", messages
    )
    assert rendered == "<Image>|user|False"


def test_namespace_and_dict_globals() -> None:
    source = "{% set ns = namespace(a=1) %}{% set ns.a = 2 %}{{ ns.a }}|{{ dict(a=1)|tojson }}"
    assert render(source) == '2|{"a": 1}'


def test_compiled_templates_are_reused() -> None:
    source = "{{ messages[0].content }} cached"
    assert render(source) == render(source) == "Hello! cached"


# --- errors -----------------------------------------------------------------------------------------------------


def test_raise_exception_surfaces_its_message() -> None:
    source = (
        "{% if messages[0].role != 'system' %}{{ raise_exception('Conversation roles must alternate!') }}{% endif %}"
    )
    with pytest.raises(ChatTemplateError) as caught:
        render(source)
    assert str(caught.value) == "Conversation roles must alternate!"


def test_syntax_error_names_its_line() -> None:
    with pytest.raises(ChatTemplateError) as caught:
        render("ok\n{% for message in messages %}{{ message.content }}")
    message = str(caught.value)
    assert message.startswith("template error: line 2: ")
    assert "endfor" in message
    assert "\n" not in message


def test_undefined_attribute_of_undefined_names_its_line() -> None:
    with pytest.raises(ChatTemplateError, match=r"^template error: line 3: 'foo' is undefined$"):
        render("a\n\n{{ foo.bar }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ raise_exception.__globals__ }}{{ raise_exception.__globals__.os }}",
        "{{ messages.append(1) }}",
        "{{ messages[0].update(role='system') }}",
        "{% set ns = namespace(_x=1) %}",
        "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
        "{{ range(1000000)|length }}",
    ],
)
def test_sandbox_blocks_unsafe_access(source: str) -> None:
    with pytest.raises(ChatTemplateError, match=r"^template error: "):
        render(source)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ 'a' + 1 }}", "TypeError: can only concatenate str"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 'abc'.index('z') }}", "ValueError: substring not found"),
        ("{{ undefined_thing|tojson }}", "TypeError: Object of type Undefined is not JSON serializable"),
        ("{{ messages[0].content.foo.bar }}", "has no attribute 'foo'"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
        ("{% endfor %}", "Encountered unknown tag 'endfor'"),
        ("{{ ", "unexpected 'end of template'"),
    ],
)
def test_every_failure_is_a_chat_template_error(source: str, fragment: str) -> None:
    with pytest.raises(ChatTemplateError) as caught:
        render(source)
    message = str(caught.value)
    assert message.startswith("template error: ")
    assert fragment in message
    assert "\n" not in message


def test_messages_must_be_objects() -> None:
    with pytest.raises(ChatTemplateError, match="messages must be a list of objects"):
        render_chat_template("{{ messages }}", ["hello"])  # type: ignore[list-item]
