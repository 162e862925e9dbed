"""On a CPU with Intel AMX, every test model loads and answers without crashing first.

llama.cpp's AMX buffer type segfaults at the first multi-token batch there (llama.cpp#20824); the runner
never uses it. Here that is checked on the real path: a server, real sampled answers, and no crash
recovered from on the way (the fallback would hide one). Elsewhere these tests are skipped and say why;
``test_runner_fallback`` checks the recovery on any machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.test_models import ensure_model


def amx_skip_reason() -> str | None:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no /proc/cpuinfo to read the CPU features from"
    if "amx_int8" not in flags:
        return "this CPU has no Intel AMX (amx_int8): the AMX crash cannot happen here"
    # In a fresh process: a model loaded in this one has taken AMX out of the list already.
    probe = (
        "import llama_cpp; from pollama.runner import ggml; llama_cpp.llama_backend_init(); "
        "print(ggml.extra_buffer_types())"
    )
    offered = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    if "AMX" not in offered:
        return f"llama.cpp was built without its AMX buffer type (it offers {offered.strip()})"
    return None


REASON = amx_skip_reason()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def amx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("amx"), extra_env={"OLLAMA_DEBUG": "1"}).start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "model",
    ["smollm2", pytest.param("qwen2.5-coder", marks=pytest.mark.slow), pytest.param("gemma3", marks=pytest.mark.slow)],
)
def test_a_model_answers_without_amx_and_without_a_crash(amx_server: ServerProcess, model: str) -> None:
    client = ollama.Client(host=amx_server.url)
    assert client.create(model, files={"model.gguf": upload(client, ensure_model(model))}).status == "success"
    prompt = "Why is the sky blue? Answer in one sentence."
    answer = client.generate(model, prompt, options={"num_predict": 16, "repeat_penalty": 1.1})
    assert answer.done and answer.response and answer.eval_count
    chat = client.chat(model, [{"role": "user", "content": prompt}], options={"num_predict": 8})
    assert chat.message.content

    log = amx_server.log_path.read_text()
    assert "AMX_INT8 = 1" in log  # the runner's system info: this really is an AMX machine
    assert "AMX model buffer" not in log
    assert "crashed" not in log
    assert not (amx_server.root / "home" / ".ollama" / "runner-fallbacks.json").exists()


def test_an_embedding_model_answers(amx_server: ServerProcess) -> None:
    client = ollama.Client(host=amx_server.url)
    digest = upload(client, ensure_model("minilm"))
    assert client.create("minilm", files={"model.gguf": digest}).status == "success"
    vectors = client.embed("minilm", ["The sky is blue.", "Grass is green."]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert "crashed" not in amx_server.log_path.read_text()
