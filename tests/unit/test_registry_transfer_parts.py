"""pollama.registry.transfer, the pure parts: part sizes, part plans, Ollama's part-state JSON, resume state.

Go reference: server/download.go (blobDownloadPart, Prepare: size = clamp(total/numDownloadParts, min, max)).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pollama.registry.transfer import MB, Part, TransferTuning, _load_parts, plan_parts

GB = 1000 * MB


def test_megabytes_are_decimal() -> None:
    assert MB == 1_000_000


@pytest.mark.parametrize(
    ("total", "size"),
    [
        (0, 100 * MB),
        (1, 100 * MB),
        (50 * MB, 100 * MB),
        (16 * 100 * MB, 100 * MB),
        (16 * 100 * MB + 16, 100 * MB + 1),
        (4 * GB, 250 * MB),
        (16 * GB, 1000 * MB),
        (16 * GB + 16, 1000 * MB),
        (100 * GB, 1000 * MB),
        (4_661_211_808, 4_661_211_808 // 16),  # a 4.7 GB model: 291 MB parts
    ],
)
def test_part_size_is_total_over_16_clamped(total: int, size: int) -> None:
    assert TransferTuning().part_size(total) == size


def test_part_size_uses_the_tuning() -> None:
    tuning = TransferTuning(min_part_size=10, max_part_size=100, max_parts=4)
    assert tuning.part_size(8) == 10
    assert tuning.part_size(200) == 50
    assert tuning.part_size(1000) == 100


@pytest.mark.parametrize(("total", "part_size"), [(1, 10), (10, 10), (11, 10), (99, 10), (100, 10), (7, 3), (5, 100)])
def test_plan_covers_the_blob_exactly(total: int, part_size: int) -> None:
    parts = plan_parts(total, part_size)
    assert [part.n for part in parts] == list(range(len(parts)))
    assert parts[0].offset == 0
    for before, after in zip(parts, parts[1:], strict=False):
        assert after.offset == before.offset + before.size
    assert parts[-1].offset + parts[-1].size == total
    assert sum(part.size for part in parts) == total
    assert all(part.size == part_size for part in parts[:-1])
    assert 0 < parts[-1].size <= part_size
    assert all(part.completed == 0 for part in parts)
    assert len(parts) == -(-total // part_size)


def test_plan_last_part_is_shorter() -> None:
    assert plan_parts(25, 10) == [Part(0, 0, 10), Part(1, 10, 10), Part(2, 20, 5)]


def test_plan_of_an_empty_blob_has_no_parts() -> None:
    assert plan_parts(0, 100 * MB) == []


def test_plan_for_a_real_size() -> None:
    total = 4_661_211_808
    parts = plan_parts(total, TransferTuning().part_size(total))
    assert len(parts) == 16
    assert sum(part.size for part in parts) == total


def test_part_start_and_stop() -> None:
    part = Part(3, 300, 100, 40)
    assert (part.start, part.stop) == (340, 400)


def test_part_json_uses_ollama_field_names() -> None:
    part = Part(2, 200, 100, 37)
    assert part.to_json() == {"N": 2, "Offset": 200, "Size": 100, "Completed": 37}
    assert json.loads(json.dumps(part.to_json())) == part.to_json()
    assert Part.from_json(part.to_json()) == part


def test_part_json_reads_ollama_state_with_extra_fields() -> None:
    # Ollama's blobDownloadPart also writes its lastUpdated time; it is not needed to resume.
    data = {"N": 0, "Offset": 0, "Size": 104857600, "Completed": 1024, "lastUpdated": "2024-01-01T00:00:00Z"}
    assert Part.from_json(data) == Part(0, 0, 104857600, 1024)


def test_completed_may_equal_size() -> None:
    assert Part.from_json({"N": 1, "Offset": 10, "Size": 10, "Completed": 10}).completed == 10


@pytest.mark.parametrize(
    "data",
    [
        {"N": -1, "Offset": 0, "Size": 10, "Completed": 0},
        {"N": 0, "Offset": -5, "Size": 10, "Completed": 0},
        {"N": 0, "Offset": 0, "Size": -10, "Completed": 0},
        {"N": 0, "Offset": 0, "Size": 10, "Completed": -1},
        {"N": 0, "Offset": 0, "Size": 10.0, "Completed": 0},
        {"N": "0", "Offset": 0, "Size": 10, "Completed": 0},
        {"N": 0, "Offset": None, "Size": 10, "Completed": 0},
        {"N": 0, "Offset": 0, "Size": 10, "Completed": "0"},
        {"N": 0, "Offset": 0, "Size": [10], "Completed": 0},
        {},
    ],
)
def test_part_json_rejects_invalid_numbers(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid numbers"):
        Part.from_json(data)


@pytest.mark.parametrize(
    "data",
    [
        {"N": 0, "Offset": 0, "Size": True, "Completed": False},
        {"N": False, "Offset": 0, "Size": 10, "Completed": 0},
    ],
)
def test_part_json_rejects_booleans(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid numbers"):
        Part.from_json(data)


def test_part_json_rejects_more_completed_than_size() -> None:
    with pytest.raises(ValueError, match="more is done"):
        Part.from_json({"N": 0, "Offset": 0, "Size": 10, "Completed": 11})


@pytest.mark.parametrize("data", [[0, 0, 10, 0], "part", None, 3])
def test_part_json_rejects_non_objects(data: Any) -> None:
    with pytest.raises(ValueError, match="not an object"):
        Part.from_json(data)


# --- _load_parts: resume state -----------------------------------------------------------------------------------


def save_state(partial: Path, parts: list[Part], *, data: bool = True) -> None:
    if data:
        partial.write_bytes(b"")
    for part in parts:
        partial.with_name(f"{partial.name}-{part.n}").write_text(json.dumps(part.to_json()))


@pytest.fixture
def partial(tmp_path: Path) -> Path:
    return tmp_path / ("sha256-" + "ab" * 32 + "-partial")


def test_contiguous_parts_load_in_offset_order(partial: Path) -> None:
    parts = [Part(0, 0, 10, 10), Part(1, 10, 10, 3), Part(2, 20, 5, 0)]
    save_state(partial, parts)
    assert _load_parts(partial) == parts


def test_parts_are_ordered_by_offset_not_file_name(partial: Path) -> None:
    # "-partial-10" sorts before "-partial-2" by name.
    parts = plan_parts(115, 10)
    assert len(parts) == 12
    save_state(partial, parts)
    assert _load_parts(partial) == parts


def test_a_gap_means_no_resume(partial: Path) -> None:
    save_state(partial, [Part(0, 0, 10), Part(2, 20, 5)])
    assert _load_parts(partial) is None


def test_a_missing_first_part_means_no_resume(partial: Path) -> None:
    save_state(partial, [Part(1, 10, 10), Part(2, 20, 5)])
    assert _load_parts(partial) is None


def test_overlapping_parts_mean_no_resume(partial: Path) -> None:
    save_state(partial, [Part(0, 0, 10), Part(1, 5, 10)])
    assert _load_parts(partial) is None


@pytest.mark.parametrize("content", ["{not json", "", '{"N": 1, "Offset": 10, "Size": 10, "Completed": 99}', "[]"])
def test_an_unreadable_part_file_means_no_resume(partial: Path, content: str) -> None:
    save_state(partial, [Part(0, 0, 10)])
    partial.with_name(partial.name + "-1").write_text(content)
    assert _load_parts(partial) is None


def test_a_missing_data_file_means_no_resume(partial: Path) -> None:
    save_state(partial, [Part(0, 0, 10), Part(1, 10, 10)], data=False)
    assert not partial.exists()
    assert _load_parts(partial) is None


def test_no_part_files_means_no_resume(partial: Path) -> None:
    partial.write_bytes(b"")
    assert _load_parts(partial) is None


def test_nothing_at_all_means_no_resume(partial: Path) -> None:
    assert _load_parts(partial) is None


def test_other_blobs_state_is_not_read(partial: Path, tmp_path: Path) -> None:
    save_state(partial, [Part(0, 0, 10, 4)])
    other = tmp_path / ("sha256-" + "cd" * 32 + "-partial")
    save_state(other, [Part(5, 50, 10)])
    assert _load_parts(partial) == [Part(0, 0, 10, 4)]
