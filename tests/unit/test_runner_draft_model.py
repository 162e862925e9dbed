"""Speculative decoding with a draft model, in process: SmolLM2 in F16 drafted by its Q4_1 original.

The pair shares a vocabulary and mostly agrees, as a family's small and large models do, but not always:
some drafts are refused, and the answers must still be those of the F16 model alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from pollama.runner.draft_model import DraftModel, DraftRequest, vocabulary_mismatch
from pollama.runner.model import LoadedModel, LoadOptions, load
from tests.unit.test_runner_engine import FRUITS, STORY, Harness, greedy, no_eog
from tools.test_models import ensure_f16, ensure_model


def _load(path: Path) -> LoadedModel:
    return load(LoadOptions(path=path, num_ctx=512, num_parallel=2, num_batch=64, num_thread=1, num_gpu=0))


@pytest.fixture(scope="module")
def target() -> Iterator[LoadedModel]:
    loaded = _load(ensure_f16("smollm2"))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def draft(smollm2_path: Path) -> Iterator[DraftModel]:
    loaded = _load(smollm2_path)
    drafter = DraftModel(loaded, loaded.n_vocab)
    yield drafter
    drafter.close()


@pytest.fixture
def make(target: LoadedModel, draft: DraftModel) -> Iterator[Any]:
    harnesses: list[Harness] = []

    def create(draft_tokens: int = 0) -> Harness:
        harness = Harness(target, 2, draft_tokens, draft if draft_tokens else None)
        for slot in harness.engine.slots:
            slot.cached = []  # every run evaluates its whole prompt: the same work on both sides
        harnesses.append(harness)
        return harness

    yield create
    for harness in harnesses:
        harness.engine.close()


def test_a_draft_model_changes_nothing_but_the_number_of_steps(
    make: Any, target: LoadedModel, draft: DraftModel
) -> None:
    options = greedy(48, logit_bias=no_eog(target))
    plain = make()
    plain.run("plain", STORY, **options)
    drafted = make(draft_tokens=4)
    drafted.run("drafted", STORY, **options)
    assert drafted.recorder.text("drafted") == plain.recorder.text("plain")
    assert drafted.recorder.done("drafted")["eval_count"] == 48
    assert drafted.steps < plain.steps * 0.6  # most drafts were taken: several tokens a step
    for model, seq in ((target, drafted.engine.slots[0].seq_id), (draft.model, drafted.engine.slots[0].seq_id)):
        cached = drafted.engine.slots[0].cached if model is target else draft._cached[seq]
        assert llama_cpp.llama_memory_seq_pos_max(model.memory, seq) == len(cached) - 1


def test_concurrent_and_sampled_answers_are_unchanged_by_a_draft_model(make: Any) -> None:
    sampled = {"temperature": 0.8, "seed": 7, "num_predict": 32}
    answers = []
    for draft_tokens in (0, 3):
        harness = make(draft_tokens=draft_tokens)
        harness.submit("a", FRUITS, **greedy(24))
        harness.submit("b", STORY, **sampled)
        harness.drain()
        # The same slot, another prompt: the draft model's sequence follows the slot's cache.
        harness.run("c", "Tell me about the moon.", **greedy(16))
        answers.append([harness.recorder.text(job) for job in "abc"])
    assert answers[0] == answers[1]


def test_drafts_are_the_draft_models_own_greedy_answer(make: Any, draft: DraftModel) -> None:
    alone = Harness(draft.model, 2)
    try:
        alone.engine.slots[1].cached = []
        job = alone.submit("alone", FRUITS, **greedy(8, logit_bias=no_eog(draft.model)))
        alone.drain()
        expected = job.generated
    finally:
        alone.engine.close()
    prompt = draft.model.tokenize(FRUITS)
    assert draft.propose([DraftRequest(1, prompt, 8)]) == [expected]
    # Two drafts accepted, then another token: the sequence drops what followed and drafts from there.
    turned = prompt + expected[:2] + [draft.model.tokenize(" zebra", add_special=False)[0]]
    (again,) = draft.propose([DraftRequest(1, turned, 3)])
    assert draft._cached[1][: len(turned)] == turned
    assert len(again) == 3 and again != expected[3:6]
    assert draft.propose([DraftRequest(1, prompt, 0)]) == [[]]


def test_a_draft_model_must_share_the_vocabulary(target: LoadedModel, draft: DraftModel) -> None:
    assert vocabulary_mismatch(target, draft.model) is None
    gemma = _load(ensure_model("gemma3"))
    try:
        reason = vocabulary_mismatch(target, gemma)
    finally:
        gemma.close()
    assert reason is not None and "token" in reason
