"""Speculative decoding through a real server, with n-gram drafts (POLLAMA_DRAFT_TOKENS) and with a Modelfile's
DRAFT model: the runner drafts, and answers are unchanged.

SmolLM2's Q4_1 weights have no repacked layout, so a position's logits are the same in any batch and the
greedy answer with drafts must be the one without, token for token (README: where that does not hold).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_scheduler import file_digest, install
from tests.servers import ServerProcess
from tools.test_models import ensure_f16, ensure_model

pytestmark = pytest.mark.timeout(180)

PROMPT = "Copy this list exactly: apple, banana, cherry, date, fig, grape, kiwi, lemon. " * 3


@pytest.fixture(scope="module")
def drafting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {"POLLAMA_DRAFT_TOKENS": "8", "OLLAMA_DEBUG": "1"}  # debug: the runner's own lines are logged
    server = ServerProcess(tmp_path_factory.mktemp("drafts"), settings).start()
    install(server, "smol", ensure_model("smollm2"))
    yield server
    server.stop()


def answer(url: str, model: str = "smol", **options: object) -> dict[str, object]:
    body = {"model": model, "prompt": PROMPT, "raw": True, "stream": False,
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


# --- a draft model: a Modelfile's DRAFT ---------------------------------------------------------------


@pytest.fixture(scope="module")
def with_draft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``smol-f16`` drafted by SmolLM2's Q4_1 (``DRAFT``), ``smol-f16-alone`` without it, ``smol-gemma`` by Gemma."""
    root = tmp_path_factory.mktemp("draft-model")
    server = ServerProcess(root / "server", {"OLLAMA_DEBUG": "1"}).start()
    target = ensure_f16("smollm2")
    for name, draft in (
        ("smol-f16", ensure_model("smollm2")),
        ("smol-gemma", ensure_model("gemma3")),
        ("smol-f16-alone", None),
    ):
        modelfile = root / f"{name}.Modelfile"
        modelfile.write_text(f"FROM {target}\n" + (f"DRAFT {draft}\n" if draft else ""))
        created = server.cli("create", name, "-f", str(modelfile))
        assert created.returncode == 0, created.stderr
    yield server
    server.stop()


def test_a_draft_model_gives_the_answers_of_the_model_alone(with_draft: ServerProcess) -> None:
    drafted = answer(with_draft.url, model="smol-f16")
    alone = answer(with_draft.url, model="smol-f16-alone")
    undrafted = answer(with_draft.url, model="smol-f16", draft_num_predict=0)  # drafts off: another runner
    assert drafted["response"] == alone["response"] == undrafted["response"]
    assert drafted["eval_count"] == alone["eval_count"]
    log = with_draft.log_path.read_text(errors="replace")
    # Ollama's default for a model with a draft: 4 a step.
    assert re.search(r"speculative decoding, up to 4 drafts a step from sha256-[0-9a-f]{64}", log)
    show = httpx.post(with_draft.url + "/api/show", json={"model": "smol-f16"}).json()
    assert "\nDRAFT " in show["modelfile"]


def test_draft_num_predict_is_bounded(with_draft: ServerProcess) -> None:
    reply = httpx.post(
        with_draft.url + "/api/generate",
        json={"model": "smol-f16", "prompt": "hi", "options": {"draft_num_predict": 33}},
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == 'option "draft_num_predict" must be at most 32'


def test_a_draft_model_with_another_vocabulary_is_refused_at_load(with_draft: ServerProcess) -> None:
    reply = httpx.post(with_draft.url + "/api/generate", json={"model": "smol-gemma", "prompt": "hi"}, timeout=120)
    assert reply.status_code == 400
    assert "cannot draft for this model" in reply.json()["error"]
    assert answer(with_draft.url, model="smol-f16-alone")["response"]  # the server carries on


def test_create_quantizes_a_draft_model(with_draft: ServerProcess, tmp_path: Path) -> None:
    target = ensure_f16("smollm2")
    draft = tmp_path / "draft.gguf"  # the same F16 weights in another file: DRAFT may not be FROM's path
    shutil.copyfile(target, draft)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {target}\nDRAFT {draft}\n")
    created = with_draft.cli("create", "smol-q4-draft", "-f", str(modelfile), "--draft-quantize", "q4_0")
    assert created.returncode == 0, created.stderr
    assert "quantizing F16 draft model to Q4_0" in created.stdout + created.stderr
    manifest = httpx.post(with_draft.url + "/api/show", json={"model": "smol-q4-draft", "verbose": True}).json()
    (draft_line,) = [line for line in manifest["modelfile"].splitlines() if line.startswith("DRAFT ")]
    assert file_digest(target).replace(":", "-") not in draft_line  # the layer is the quantized blob
    assert (
        answer(with_draft.url, model="smol-q4-draft")["response"]
        == answer(with_draft.url, model="smol-f16-alone")["response"]
    )


def test_draft_quantize_refuses_quantized_weights_and_unknown_types(with_draft: ServerProcess, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {ensure_f16('smollm2')}\nDRAFT {ensure_model('smollm2')}\n")
    refused = with_draft.cli("create", "refused", "-f", str(modelfile), "--draft-quantize", "q8_0")
    assert refused.returncode != 0
    assert "quantization is only supported for F16, BF16 and F32 models" in refused.stderr
    unknown = with_draft.cli("create", "refused", "-f", str(modelfile), "--draft-quantize", "q9_9")
    assert unknown.returncode != 0 and "unsupported quantization type" in unknown.stderr
    no_draft = httpx.post(
        with_draft.url + "/api/create", json={"model": "x", "from": "smol-f16", "draft_quantize": "q4_0"}
    )
    assert no_draft.status_code == 400 and no_draft.json()["error"] == "--draft-quantize requires a DRAFT model"
