"""Speculative decoding through a real server: POLLAMA_DRAFT_TOKENS reaches the runner, answers are unchanged.

SmolLM2's Q4_1 weights have no repacked layout, so a position's logits are the same in any batch and the
greedy answer with drafts must be the one without, token for token (README: where that does not hold).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(180)

PROMPT = "Copy this list exactly: apple, banana, cherry, date, fig, grape, kiwi, lemon. " * 3


@pytest.fixture(scope="module")
def drafting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {"POLLAMA_DRAFT_TOKENS": "8", "OLLAMA_DEBUG": "1"}  # debug: the runner's own lines are logged
    server = ServerProcess(tmp_path_factory.mktemp("drafts"), settings).start()
    install(server, "smol", ensure_model("smollm2"))
    yield server
    server.stop()


def answer(url: str, **options: object) -> dict[str, object]:
    body = {"model": "smol", "prompt": PROMPT, "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": 64, **options}}  # fmt: skip
    reply = httpx.post(url + "/api/generate", json=body, timeout=120)
    reply.raise_for_status()
    return dict(reply.json())


def test_greedy_answers_with_drafts_are_the_answers_without(server: ServerProcess, drafting: ServerProcess) -> None:
    install(server, "smol", ensure_model("smollm2"))
    plain, drafted = answer(server.url), answer(drafting.url)
    assert drafted["response"] == plain["response"]
    assert drafted["eval_count"] == plain["eval_count"]
    assert "speculative decoding, up to 8 n-gram drafts a step" in drafting.log_path.read_text(errors="replace")


def test_seeded_sampling_is_unchanged_by_drafts(server: ServerProcess, drafting: ServerProcess) -> None:
    install(server, "smol", ensure_model("smollm2"))
    sampled = {"temperature": 0.8, "seed": 11}
    assert answer(drafting.url, **sampled)["response"] == answer(server.url, **sampled)["response"]
