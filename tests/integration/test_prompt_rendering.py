"""How prompts are rendered, seen through ``_debug_render_only`` on a real server (Ollama's routes tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from tests.servers import ServerProcess

pytestmark = pytest.mark.timeout(60)

LEGACY = "{{ if .System }}System: {{ .System }} {{ end }}{{ if .Prompt }}User: {{ .Prompt }} {{ end }}"
FIM = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}"
ROLES = "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}"
TOOLS = "{{ if .Tools }}TOOLS {{ .Tools }}\n{{ end }}" + ROLES


@pytest.fixture(scope="module")
def models(server: ServerProcess, smollm2_path: Any) -> Iterator[dict[str, str]]:
    api = ollama.Client(host=server.url)
    digest = api.create_blob(smollm2_path)
    files = {"model.gguf": digest}
    api.create("legacy", files=files, template=LEGACY)
    api.create("legacy-system", files=files, template=LEGACY, system="You are a helpful assistant.")
    api.create("fim", files=files, template=FIM)
    api.create("roles", files=files, template=ROLES, system="Be brief.")
    api.create("tools", files=files, template=TOOLS)
    api.create("native", files=files)
    yield {}


def rendered(http: httpx.Client, path: str, body: dict[str, Any]) -> str:
    reply = http.post(path, json={**body, "_debug_render_only": True})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["done"] is False
    return data["_debug_info"]["rendered_template"]


def test_generate_renders_the_model_template(http: httpx.Client, models: dict[str, str]) -> None:
    assert rendered(http, "/api/generate", {"model": "legacy", "prompt": "Hello!"}) == "User: Hello! "
    assert rendered(http, "/api/generate", {"model": "legacy-system", "prompt": "Hello!"}) == (
        "System: You are a helpful assistant. User: Hello! "
    )
    assert rendered(http, "/api/generate", {"model": "legacy-system", "prompt": "Hello!", "system": "Other."}) == (
        "System: Other. User: Hello! "
    )


def test_request_template_overrides_the_model_template(http: httpx.Client, models: dict[str, str]) -> None:
    body = {
        "model": "legacy",
        "prompt": "Help me write tests.",
        "system": "You can perform magic tricks.",
        "template": "{{ .System }} ### USER {{ .Prompt }} ",
    }
    assert rendered(http, "/api/generate", body) == "You can perform magic tricks. ### USER Help me write tests. "


def test_suffix_uses_fill_in_the_middle(http: httpx.Client, models: dict[str, str]) -> None:
    body = {"model": "fim", "prompt": "def add(", "suffix": "    return c"}
    assert rendered(http, "/api/generate", body) == "<PRE> def add( <SUF>    return c <MID>"
    assert rendered(http, "/api/generate", {"model": "fim", "prompt": "def add("}) == "def add("


def test_suffix_needs_a_template_that_uses_it(http: httpx.Client, models: dict[str, str]) -> None:
    reply = http.post("/api/generate", json={"model": "legacy", "prompt": "a", "suffix": "b"})
    assert reply.status_code == 400
    assert reply.json() == {"error": "registry.ollama.ai/library/legacy:latest does not support insert"}


def test_chat_injects_the_model_system_unless_the_request_has_one(http: httpx.Client, models: dict[str, str]) -> None:
    hello = [{"role": "user", "content": "Hello!"}]
    assert rendered(http, "/api/chat", {"model": "roles", "messages": hello}) == "system: Be brief.\nuser: Hello!\n"
    own = [{"role": "system", "content": "Mine."}, *hello]
    assert rendered(http, "/api/chat", {"model": "roles", "messages": own}) == "system: Mine.\nuser: Hello!\n"
    middle = [*hello, {"role": "system", "content": "Later."}, {"role": "user", "content": "Again"}]
    assert rendered(http, "/api/chat", {"model": "roles", "messages": middle}) == (
        "system: Be brief.\nuser: Hello!\nsystem: Later.\nuser: Again\n"
    )


def test_chat_tools_reach_the_template_as_json(http: httpx.Client, models: dict[str, str]) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    body = {"model": "tools", "messages": [{"role": "user", "content": "Paris?"}], "tools": [tool]}
    assert rendered(http, "/api/chat", body) == (
        'TOOLS [{"type":"function","function":{"name":"get_weather","description":"Get the weather",'
        '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string"}}}}}]\n'
        "user: Paris?\n"
    )


def test_a_model_without_go_template_uses_its_gguf_chat_template(http: httpx.Client, models: dict[str, str]) -> None:
    text = rendered(http, "/api/chat", {"model": "native", "messages": [{"role": "user", "content": "Hi"}]})
    assert text.startswith("<|im_start|>system\n") and text.endswith(
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_go_template_models_generate_for_real(client: ollama.Client, models: dict[str, str]) -> None:
    reply = client.generate("roles", "Say hi", options={"num_predict": 4, "temperature": 0})
    assert reply.done and reply.eval_count == 4


def test_a_bad_request_template_is_a_400(http: httpx.Client, models: dict[str, str]) -> None:
    reply = http.post("/api/generate", json={"model": "legacy", "prompt": "x", "template": "{{ .Prompt "})
    assert reply.status_code == 400  # Ollama answers 500, but the request is what is wrong
    assert reply.json()["error"].startswith("template: :1: ")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Prompt ", "template error: template: :1: unclosed action"),
        ("{{ if .X }}", "template error: template: :1: unexpected EOF"),
        ("{{ nope .X }}", 'template error: template: :1: function "nope" not defined'),
    ],
)
def test_create_refuses_a_template_that_does_not_parse(
    http: httpx.Client, smollm2_path: Any, template: str, message: str
) -> None:
    digest = ollama.Client(host=str(http.base_url)).create_blob(smollm2_path)
    reply = http.post("/api/create", json={"model": "broken", "files": {"m.gguf": digest}, "template": template})
    assert reply.status_code == 400
    assert reply.json() == {"error": message}
    assert http.post("/api/show", json={"model": "broken"}).status_code == 404


# A Go template that records thinking in history (so its tags are inferred) and opens <think> for the answer:
# whatever SmolLM2 writes is then thinking until it closes the tag.
THINKING = (
    "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)


@pytest.fixture(scope="module")
def thinker(server: ServerProcess, smollm2_path: Any) -> str:
    api = ollama.Client(host=server.url)
    api.create("thinker", files={"m.gguf": api.create_blob(smollm2_path)}, template=THINKING)
    return "thinker"


def test_inferred_thinking_tags_make_a_thinking_model(client: ollama.Client, thinker: str) -> None:
    assert "thinking" in (client.show(thinker).capabilities or [])


def test_thinking_is_on_by_default_and_returned_apart(client: ollama.Client, thinker: str) -> None:
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    reply = client.chat(thinker, messages=messages, options={"num_predict": 12, "temperature": 0})
    assert reply.message.thinking and not reply.message.content
    streamed = list(client.chat(thinker, messages=messages, stream=True, options={"num_predict": 12, "temperature": 0}))
    assert "".join(part.message.thinking or "" for part in streamed) == reply.message.thinking
    generated = client.generate(thinker, "Why is the sky blue?", options={"num_predict": 12, "temperature": 0})
    assert generated.thinking and not generated.response


def test_think_false_leaves_the_answer_as_content(client: ollama.Client, thinker: str) -> None:
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    reply = client.chat(thinker, messages=messages, think=False, options={"num_predict": 12, "temperature": 0})
    assert reply.message.content and not reply.message.thinking


def test_history_is_truncated_to_fit_and_says_so(http: httpx.Client, models: dict[str, str]) -> None:
    long = "word " * 200
    messages = [
        {"role": "system", "content": "Stay."},
        {"role": "user", "content": long},
        {"role": "assistant", "content": long},
        {"role": "user", "content": "last question"},
    ]
    options = {"num_ctx": 64, "num_predict": 2, "temperature": 0}
    cut = http.post("/api/chat", json={"model": "roles", "messages": messages, "stream": False, "options": options})
    assert cut.status_code == 200, cut.text
    assert cut.json()["truncated"] is True
    # Only the system message and the last question remained.
    assert cut.json()["prompt_eval_count"] < 64
    whole = http.post(
        "/api/chat",
        json={"model": "roles", "messages": messages[-1:], "stream": False, "options": options},
    )
    assert "truncated" not in whole.json()


def test_truncate_false_keeps_everything(http: httpx.Client, models: dict[str, str]) -> None:
    messages = [{"role": "user", "content": "word " * 200}, {"role": "user", "content": "last"}]
    body = {"model": "roles", "messages": messages, "stream": False, "truncate": False, "shift": False}
    reply = http.post("/api/chat", json={**body, "options": {"num_ctx": 64, "num_predict": 2}})
    assert reply.status_code == 400
    assert "the prompt is longer than the context length" in reply.json()["error"]


def test_images_become_tags(http: httpx.Client, models: dict[str, str]) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    messages = [
        {"role": "user", "content": "what is this?", "images": [pixel]},
        {"role": "user", "content": "and [img] here", "images": [pixel]},
    ]
    assert rendered(http, "/api/chat", {"model": "roles", "messages": messages}) == (
        "system: Be brief.\nuser: [img-0]what is this?\n\nand [img-1] here\n"
    )


def test_a_modelfile_think_parameter_sets_the_default(
    server: ServerProcess, client: ollama.Client, smollm2_path: Any, tmp_path: Any
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f'FROM {smollm2_path}\nTEMPLATE """{THINKING}"""\nPARAMETER think false\n')
    result = server.cli("create", "quiet-thinker", "-f", str(modelfile))
    assert result.returncode == 0, result.stderr
    assert client.show("quiet-thinker").parameters.split() == ["think", "false"]
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    options = {"num_predict": 8, "temperature": 0}
    default = client.chat("quiet-thinker", messages=messages, options=options)
    assert default.message.content and not default.message.thinking
    asked = client.chat("quiet-thinker", messages=messages, think=True, options=options)
    assert asked.message.thinking and not asked.message.content


def test_modelfile_template_system_and_messages(
    server: ServerProcess, client: ollama.Client, http: httpx.Client, smollm2_path: Any, tmp_path: Any
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f"FROM {smollm2_path}\n"
        f'TEMPLATE """{ROLES}"""\n'
        "SYSTEM You answer in one word.\n"
        "MESSAGE user Is the sky blue?\n"
        "MESSAGE assistant Yes.\n"
    )
    assert server.cli("create", "historian", "-f", str(modelfile)).returncode == 0
    question = [{"role": "user", "content": "Is grass green?"}]
    assert rendered(http, "/api/chat", {"model": "historian", "messages": question}) == (
        "system: You answer in one word.\nuser: Is the sky blue?\nassistant: Yes.\nuser: Is grass green?\n"
    )
    assert rendered(http, "/api/generate", {"model": "historian", "prompt": "Is grass green?"}) == (
        "system: You answer in one word.\nuser: Is the sky blue?\nassistant: Yes.\nuser: Is grass green?\n"
    )
    # A deprecated context continuation leaves the model's history out.
    assert rendered(http, "/api/generate", {"model": "historian", "prompt": "And snow?", "context": [1, 2]}) == (
        "system: You answer in one word.\nuser: And snow?\n"
    )
    reply = client.chat("historian", messages=question, options={"num_predict": 4, "temperature": 0})
    assert reply.done and reply.eval_count and reply.prompt_eval_count > 20
