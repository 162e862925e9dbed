"""NgramDrafter: draft tokens looked up in the sequence's own history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pollama.config import Settings
from pollama.runner.__main__ import parse_args
from pollama.runner.drafts import NgramDrafter
from pollama.runtime.options import resolve
from pollama.runtime.process import RunnerConfig
from pollama.store.models import StoredModel


def test_what_followed_the_last_trigram_before_is_proposed() -> None:
    drafter = NgramDrafter(3)
    drafter.extend([1, 2, 3, 4, 5, 6, 9, 1, 2, 3])
    assert drafter.propose(2) == [4, 5]
    assert drafter.propose(10) == [4, 5, 6, 9, 1, 2, 3]  # up to the end of what is known


def test_the_latest_occurrence_wins_and_growing_keeps_the_index_current() -> None:
    drafter = NgramDrafter(2)
    drafter.extend([7, 8, 1, 7, 8, 2, 7])
    assert drafter.propose(1) == []  # the bigram (2, 7) never occurred before
    drafter.extend([8])
    assert drafter.propose(2) == [2, 7]  # (7, 8) was last followed by 2, not 1


def test_nothing_is_proposed_without_a_match_or_room() -> None:
    drafter = NgramDrafter(3)
    drafter.extend([1, 2])
    assert drafter.propose(4) == []
    drafter.extend([3, 4, 1, 2, 3])
    assert drafter.propose(0) == []


@given(st.lists(st.integers(0, 3), max_size=60), st.integers(1, 5))
def test_a_proposal_continues_an_earlier_occurrence_of_the_tail(tokens: list[int], limit: int) -> None:
    drafter = NgramDrafter(3)
    drafter.extend(tokens)
    proposal = drafter.propose(limit)
    if proposal:
        tail = tokens[-3:]
        starts = [i for i in range(len(tokens) - 3) if tokens[i : i + 3] == tail]
        assert starts and proposal == tokens[starts[-1] + 3 : starts[-1] + 3 + limit]


def test_the_setting_reaches_the_runner(models: Callable[[], StoredModel]) -> None:
    settings = Settings.from_env({"HOME": "/home/tester", "POLLAMA_DRAFT_TOKENS": "6"})
    config = resolve(settings, models(), None).config
    assert config.draft_tokens == 6
    arguments = config.arguments()
    assert arguments[arguments.index("--draft-tokens") + 1] == "6"
    assert parse_args(arguments).draft_tokens == 6
    plain = RunnerConfig(model_path=Path("/m.gguf"), num_ctx=2048).arguments()
    assert "--draft-tokens" not in plain and parse_args(plain).draft_tokens == 0
