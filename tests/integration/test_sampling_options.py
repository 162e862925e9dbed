"""Every sampling option Ollama accepts goes through a real runner's sampler chain, with edge values.

One runner serves all of them (sampling options never reload a model); after each answer the runner is
the same process, so an option that killed it (as any penalty did with llama-cpp-python 0.3.36 and a
four-argument ``llama_sampler_init_penalties``) fails here, not in a user's request. Options the engine
cannot honour are 400s that leave the runner alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.integration.test_inference import MODEL, create_smol, server_children
from tests.servers import ServerProcess

PROMPT = "Write a list of three fruits, one per line."
BUDGET = 12

SAMPLING = [
    {"repeat_penalty": 1.1},
    {"repeat_penalty": 1.5, "repeat_last_n": -1},  # -1: the whole context
    {"repeat_penalty": 1.3, "repeat_last_n": 0},  # 0: off
    {"repeat_penalty": 1.2, "repeat_last_n": -7},
    {"repeat_penalty": 0.5},
    {"repeat_penalty": 0.0},
    {"presence_penalty": 0.6},
    {"frequency_penalty": 1.2},
    {"presence_penalty": -2.0, "frequency_penalty": -2.0},
    {"repeat_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": 0.5, "repeat_last_n": 128},
    {"mirostat": 1},
    {"mirostat": 2},
    {"mirostat": 2, "mirostat_tau": 1.0, "mirostat_eta": 0.9},
    {"mirostat": 1, "mirostat_tau": 0.0, "mirostat_eta": 0.0},
    {"mirostat": 2, "temperature": 0},
    {"mirostat": 0, "mirostat_tau": 3.0},
    {"typical_p": 0.5},
    {"typical_p": 0.0},
    {"typical_p": 1.5},
    {"min_p": 0.2},
    {"min_p": 1.0},
    {"top_p": 0.0},
    {"top_p": 1.5},
    {"top_k": 0},
    {"top_k": -3},
    {"top_k": 1_000_000},
    {"temperature": 2.5},
    {"temperature": -1.0},
    {"temperature": 0.0, "repeat_penalty": 1.3},
    {"seed": 2**40 + 3},
    {"seed": -9},
    {"num_keep": -1},
    {"num_keep": 100_000},
    # Accepted and ignored, as Ollama does: llama.cpp penalizes newlines like any token; numa is a no-op.
    {"penalize_newline": True},
    {"penalize_newline": False, "repeat_penalty": 1.2},
    {"numa": True},
    {"tfs_z": 1.0},  # tail-free sampling off: what the engine does anyway
    {
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.8,
        "min_p": 0.05,
        "typical_p": 0.9,
        "repeat_last_n": 32,
        "repeat_penalty": 1.15,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "seed": 42,
        "stop": ["\n\n\n"],
    },
]


@pytest.fixture(scope="module")
def smol(server: ServerProcess, smollm2_path: Path) -> str:
    create_smol(server, smollm2_path)
    ollama.Client(host=server.url).generate(MODEL)  # loaded once, for every case
    return MODEL


@pytest.fixture
def runner(server: ServerProcess, smol: str) -> int:
    (pid,) = server_children(server)
    return pid


def same_runner(server: ServerProcess, pid: int) -> None:
    assert server_children(server) == [pid], "the runner died or was replaced"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("options", SAMPLING, ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()))
def test_generate_with(server: ServerProcess, client: ollama.Client, runner: int, options: dict[str, Any]) -> None:
    answer = client.generate(MODEL, PROMPT, options={**options, "num_predict": BUDGET})
    assert answer.done and answer.eval_count is not None and 0 < answer.eval_count <= BUDGET
    same_runner(server, runner)


@pytest.mark.timeout(120)
def test_seeded_mirostat_reproduces(server: ServerProcess, client: ollama.Client, runner: int) -> None:
    options = {"mirostat": 2, "seed": 11, "temperature": 1.0, "num_predict": 24}
    first = client.generate(MODEL, PROMPT, options=options).response
    assert first and client.generate(MODEL, PROMPT, options=options).response == first
    same_runner(server, runner)


@pytest.mark.timeout(120)
def test_penalties_change_a_greedy_answer(server: ServerProcess, client: ollama.Client, runner: int) -> None:
    greedy = {"temperature": 0, "num_predict": 40}
    plain = client.generate(MODEL, "1, 2, 3, 1, 2, 3, 1, 2, 3,", raw=True, options=greedy).response
    penalised = client.generate(
        MODEL, "1, 2, 3, 1, 2, 3, 1, 2, 3,", raw=True, options={**greedy, "repeat_penalty": 2.0}
    ).response
    assert plain != penalised
    same_runner(server, runner)


@pytest.mark.timeout(120)
def test_openai_penalties(server: ServerProcess, runner: int) -> None:
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        frequency_penalty=1.5,
        presence_penalty=-0.5,
        max_tokens=BUDGET,
    )
    assert completion.choices[0].message.content
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        frequency_penalty=0.7,
        presence_penalty=0.7,
        max_tokens=BUDGET,
        stream=True,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    same_runner(server, runner)


@pytest.mark.timeout(120)
def test_modelfile_penalties(server: ServerProcess, client: ollama.Client, runner: int) -> None:
    parameters = {"repeat_penalty": 1.1, "repeat_last_n": 32, "mirostat": 2, "num_predict": BUDGET}
    assert client.create("smol-penalised", from_=MODEL, parameters=parameters).status == "success"
    shown = client.show("smol-penalised").parameters or ""
    assert "repeat_penalty" in shown and "mirostat" in shown
    assert client.generate("smol-penalised", PROMPT).done
    same_runner(server, runner)  # one weights file, one runner: no reload for sampling options


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tfs_z": 0.9}, 'option "tfs_z" is not supported: tail-free sampling was removed from llama.cpp'),
        ({"mirostat": 3}, 'option "mirostat" must be 0 (off), 1 or 2, not 3'),
    ],
)
def test_an_option_the_engine_cannot_honour_is_a_400(
    server: ServerProcess, runner: int, options: dict[str, Any], message: str
) -> None:
    for path, body in (
        ("/api/generate", {"prompt": PROMPT}),
        ("/api/chat", {"messages": [{"role": "user", "content": PROMPT}]}),
    ):
        response = httpx.post(server.url + path, json={"model": MODEL, **body, "options": options}, timeout=60)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(message)
    same_runner(server, runner)
