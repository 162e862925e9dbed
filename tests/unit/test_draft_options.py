"""A model with a DRAFT layer, without a model loaded: draft_num_predict, the runner's arguments, the reload
rule and the memory estimate. tests/unit/test_runner_draft_model.py and tests/integration/test_speculative.py
draft for real."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.config import MAX_DRAFT_TOKENS, Settings
from pollama.errors import InvalidRequest
from pollama.runner.__main__ import parse_args
from pollama.runtime.memory import runner_estimate
from pollama.runtime.options import DEFAULT_DRAFT_NUM_PREDICT, resolve
from pollama.runtime.process import RunnerConfig
from pollama.runtime.scheduler import _compatible
from pollama.store.gguf import read_gguf
from pollama.store.models import StoredModel
from tests.unit.stored_models import bare_model


@pytest.fixture
def model(make_gguf: Callable[..., Path]) -> Callable[..., StoredModel]:
    def make(*, draft: bool = True, **parameters: Any) -> StoredModel:
        draft_path = make_gguf("draft.gguf") if draft else None
        return bare_model("drafted", make_gguf("model.gguf"), draft_path=draft_path, parameters=parameters)

    return make


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"HOME": str(tmp_path), **env})


def test_a_draft_model_drafts_four_a_step_by_default_as_in_ollama(
    tmp_path: Path, model: Callable[..., StoredModel]
) -> None:
    stored = model()
    config = resolve(settings(tmp_path), stored, None).config
    assert (
        (config.draft_tokens, config.draft_model_path)
        == (DEFAULT_DRAFT_NUM_PREDICT, stored.draft_path)
        == (4, stored.draft_path)
    )
    arguments = parse_args(config.arguments())
    assert (arguments.draft_tokens, arguments.draft_model) == (4, stored.draft_path)


def test_draft_num_predict_from_the_modelfile_or_the_request(tmp_path: Path, model: Callable[..., StoredModel]) -> None:
    stored = model(draft_num_predict=6)
    assert resolve(settings(tmp_path), stored, None).config.draft_tokens == 6
    off = resolve(settings(tmp_path), stored, {"draft_num_predict": 0}).config
    assert (off.draft_tokens, off.draft_model_path) == (0, None)
    assert "--draft-model" not in off.arguments()
    with pytest.raises(InvalidRequest) as refused:
        resolve(settings(tmp_path), stored, {"draft_num_predict": MAX_DRAFT_TOKENS + 1})
    assert refused.value.message == f'option "draft_num_predict" must be at most {MAX_DRAFT_TOKENS}'


def test_without_a_draft_model_draft_num_predict_is_ignored_as_in_ollama(
    tmp_path: Path, model: Callable[..., StoredModel]
) -> None:
    stored = model(draft=False)
    assert resolve(settings(tmp_path), stored, {"draft_num_predict": 8}).config.draft_tokens == 0
    ngrams = resolve(settings(tmp_path, POLLAMA_DRAFT_TOKENS="5"), stored, {"draft_num_predict": 8}).config
    assert (ngrams.draft_tokens, ngrams.draft_model_path) == (5, None)  # the server's n-gram drafts


def test_another_draft_count_is_another_runner(tmp_path: Path) -> None:
    drafted = RunnerConfig(tmp_path / "model", 512, draft_tokens=4, draft_model_path=tmp_path / "draft")
    assert not _compatible(drafted, dataclasses.replace(drafted, draft_tokens=2))
    assert not _compatible(drafted, dataclasses.replace(drafted, draft_tokens=0, draft_model_path=None))
    assert _compatible(drafted, dataclasses.replace(drafted))


def test_the_draft_models_memory_is_counted(smollm2_path: Path) -> None:
    header = read_gguf(smollm2_path)
    alone = runner_estimate(header, RunnerConfig(smollm2_path, 2048, num_parallel=2))
    drafted = runner_estimate(header, RunnerConfig(smollm2_path, 2048, num_parallel=2, draft_model_path=smollm2_path))
    # The same file as its own draft: weights, cache (a sequence per slot) and buffers twice over.
    assert drafted.total == 2 * alone.total
