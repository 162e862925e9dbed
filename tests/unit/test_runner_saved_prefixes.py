"""SavedPrefixes: slot caches kept in host memory, least recently used out first, within a byte budget."""

from __future__ import annotations

from pollama.runner.saved_prefixes import SavedPrefixes


def test_the_longest_shared_prefix_is_found() -> None:
    saved = SavedPrefixes(capacity=100)
    saved.add([1, 2, 3, 4], b"a" * 10)
    saved.add([1, 2, 9], b"b" * 10)
    found = saved.best([1, 2, 3, 4, 5])
    assert found is not None and found[0].tokens == (1, 2, 3, 4) and found[1] == 4
    assert saved.best([7, 1]) is None


def test_a_cache_that_extends_a_saved_one_replaces_it() -> None:
    saved = SavedPrefixes(capacity=100)
    saved.add([1, 2], b"a" * 10)
    assert saved.holds([1, 2]) and saved.holds([1])
    saved.add([1, 2, 3], b"b" * 20)
    assert len(saved) == 1 and saved.size == 20
    assert saved.holds([1, 2, 3]) and not saved.holds([1, 2, 3, 4])


def test_the_least_recently_used_goes_first_when_the_budget_is_exceeded() -> None:
    saved = SavedPrefixes(capacity=30)
    saved.add([1], b"a" * 10)
    saved.add([2], b"b" * 10)
    saved.add([3], b"c" * 10)
    saved.best([1, 5])  # used: now the newest
    saved.add([4], b"d" * 10)
    assert (saved.holds([1]), saved.holds([2]), saved.holds([3]), saved.holds([4])) == (True, False, True, True)
    assert saved.size == 30


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    saved = SavedPrefixes(capacity=5)
    saved.add([1], b"a" * 6)
    assert len(saved) == 0 and saved.size == 0
