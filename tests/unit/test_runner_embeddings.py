"""An embedding model's inputs packed into shared batches, in process, with the real all-MiniLM GGUF.

Each input is a sequence of its own in the batch; what must hold is that packing changes nothing but the
number of batches: every vector equals the one its input gets alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pollama.runner.engine import Engine, Job, embedding_groups
from pollama.runner.model import EMBEDDING_SEQUENCES, LoadedModel, LoadOptions, load
from tests.unit.test_runner_engine import Recorder
from tools.test_models import ensure_model

WORDS = ["river", "mountain", "engineer", "quietly", "answers", "the", "question", "about", "memory", "light"]


@pytest.fixture(scope="module")
def minilm() -> Iterator[LoadedModel]:
    path: Path = ensure_model("minilm")
    loaded = load(
        LoadOptions(path=path, num_ctx=512, num_parallel=1, num_batch=512, num_thread=1, num_gpu=0, embedding=True)
    )
    yield loaded
    loaded.close()


@pytest.fixture
def engine(minilm: LoadedModel) -> Iterator[tuple[Engine, Recorder]]:
    recorder = Recorder()
    engine = Engine(minilm, minilm.n_seq_max, recorder)
    yield engine, recorder
    engine.close()


def sentence(index: int, words: int) -> str:
    return " ".join(WORDS[(index + offset) % len(WORDS)] for offset in range(words))


def same_vector(a: list[float], b: np.ndarray) -> bool:
    """Equal up to float rounding: the matrix kernels llama.cpp picks depend on the batch's size."""
    got = np.asarray(a)
    cosine = float(got @ b / (np.linalg.norm(got) * np.linalg.norm(b)))
    return cosine > 0.99999 and bool(np.allclose(got, b, atol=2e-3))


def alone(minilm: LoadedModel, tokens: list[int]) -> np.ndarray:
    recorder = Recorder()
    engine = Engine(minilm, 1, recorder)
    try:
        engine.submit(Job("alone", tokens, embed=True))
        while engine.busy:
            engine.step()
    finally:
        engine.close()
    return np.asarray(recorder.done("alone")["embedding"])


@pytest.mark.parametrize(
    ("lengths", "budget", "groups"),
    [
        ([], 512, []),
        ([10, 10, 10], 25, [[0, 1], [2]]),
        ([10, 15, 5], 25, [[0, 1], [2]]),
        ([25, 1, 24], 25, [[0], [1, 2]]),
        ([30, 3], 25, [[0], [1]]),  # an input over the budget goes alone (the engine refuses it first)
    ],
)
def test_groups_fill_the_budget_in_order(lengths: list[int], budget: int, groups: list[list[int]]) -> None:
    assert embedding_groups(lengths, budget) == groups


def test_an_embedding_model_has_a_sequence_per_packed_input(minilm: LoadedModel) -> None:
    assert minilm.n_seq_max == EMBEDDING_SEQUENCES
    assert minilm.n_ctx_seq == 512  # the sequences share the context instead of dividing it


def test_many_inputs_are_embedded_in_one_step_as_they_would_be_alone(
    minilm: LoadedModel, engine: tuple[Engine, Recorder]
) -> None:
    runner, recorder = engine
    inputs = [minilm.tokenize(sentence(index, 4 + index % 9)) for index in range(EMBEDDING_SEQUENCES + 5)]
    for index, tokens in enumerate(inputs):
        runner.submit(Job(str(index), tokens, embed=True))
    runner.step()
    first_step = {event["id"] for event in recorder.events if event["event"] == "embedding"}
    assert first_step == {str(index) for index in range(EMBEDDING_SEQUENCES)}  # every slot's input, one step
    runner.step()
    assert not runner.busy
    for index in (0, 7, EMBEDDING_SEQUENCES - 1, EMBEDDING_SEQUENCES + 4):
        event = recorder.done(str(index))
        assert event["prompt_eval_count"] == len(inputs[index])
        assert same_vector(event["embedding"], alone(minilm, inputs[index]))
    assert not any(slot.busy or slot.cached for slot in runner.slots)


def test_inputs_that_fill_the_batch_go_in_several(minilm: LoadedModel, engine: tuple[Engine, Recorder]) -> None:
    runner, recorder = engine
    inputs = [minilm.tokenize(sentence(index, 200)) for index in range(5)]  # about 200 tokens each
    assert 3 * len(inputs[0]) > minilm.n_batch
    for index, tokens in enumerate(inputs):
        runner.submit(Job(str(index), tokens, embed=True))
    runner.step()
    assert not runner.busy
    for index, tokens in enumerate(inputs):
        assert same_vector(recorder.done(str(index))["embedding"], alone(minilm, tokens))


def test_an_input_over_the_batch_fails_alone(minilm: LoadedModel, engine: tuple[Engine, Recorder]) -> None:
    runner, recorder = engine
    runner.submit(Job("long", minilm.tokenize(sentence(0, 600)), embed=True))
    runner.submit(Job("short", minilm.tokenize("the river"), embed=True))
    runner.step()
    assert recorder.done("long") == {
        "id": "long",
        "event": "error",
        "status": 400,
        "error": "the input length exceeds the context length",
    }
    assert recorder.done("short")["event"] == "embedding"
    assert not runner.busy
