"""The ladder of safer runner configurations and the file that remembers where each model stands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pollama.runtime.fallback import LADDER, FallbackMemory, describe_steps, machine_fingerprint, with_fallbacks
from pollama.runtime.process import RunnerConfig

WEIGHTS = Path("/store/blobs/sha256-" + "ab" * 32)
OTHER = Path("/store/blobs/sha256-" + "cd" * 32)
CONFIG = RunnerConfig(model_path=WEIGHTS, num_ctx=4096, flash_attention=None)


def test_each_step_keeps_the_ones_before() -> None:
    assert with_fallbacks(CONFIG, 0) == CONFIG
    first = with_fallbacks(CONFIG, 1)
    assert (first.extra_buffers, first.use_mmap, first.flash_attention) == (False, True, None)
    second = with_fallbacks(CONFIG, 2)
    assert (second.extra_buffers, second.use_mmap, second.flash_attention) == (False, False, None)
    last = with_fallbacks(CONFIG, len(LADDER))
    assert (last.extra_buffers, last.use_mmap, last.flash_attention) == (False, False, False)
    assert last.num_ctx == CONFIG.num_ctx and last.model_path == WEIGHTS


def test_the_runner_is_told_each_step() -> None:
    arguments = with_fallbacks(CONFIG, len(LADDER)).arguments()
    assert "--no-extra-buffers" in arguments and "--no-mmap" in arguments
    assert arguments[arguments.index("--flash-attn") + 1] == "off"
    assert "--no-extra-buffers" not in CONFIG.arguments()


def test_describe_steps() -> None:
    assert describe_steps(0) == "the default configuration"
    assert (
        describe_steps(2) == "llama.cpp's repacked CPU weight buffers off, weights read into memory instead of mapped"
    )


def test_remembered_steps_survive_a_new_memory(tmp_path: Path) -> None:
    path = tmp_path / "home" / "runner-fallbacks.json"
    FallbackMemory(path, "machine-a").remember(WEIGHTS, 2, "crashed while loading: signal: sigsegv")
    again = FallbackMemory(path, "machine-a")
    assert again.steps(WEIGHTS) == 2
    assert again.steps(OTHER) == 0
    entry = json.loads(path.read_text())["models"][WEIGHTS.name]
    assert entry["fallbacks"] == ["no-extra-buffers", "no-mmap"]
    assert entry["cause"] == "crashed while loading: signal: sigsegv"


def test_another_machine_or_engine_starts_from_the_default(tmp_path: Path) -> None:
    path = tmp_path / "runner-fallbacks.json"
    FallbackMemory(path, "machine-a").remember(WEIGHTS, 1, "crashed")
    assert FallbackMemory(path, "machine-b").steps(WEIGHTS) == 0


def test_models_are_remembered_apart(tmp_path: Path) -> None:
    path = tmp_path / "runner-fallbacks.json"
    memory = FallbackMemory(path, "m")
    memory.remember(WEIGHTS, 1, "crashed")
    memory.remember(OTHER, 3, "crashed")
    fresh = FallbackMemory(path, "m")
    assert (fresh.steps(WEIGHTS), fresh.steps(OTHER)) == (1, 3)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": 99, "models": {}}',
        '{"format": 1, "models": []}',
        json.dumps({"format": 1, "models": {WEIGHTS.name: {"machine": "m", "steps": 99}}}),
        json.dumps({"format": 1, "models": {WEIGHTS.name: {"machine": "m", "steps": "2"}}}),
        json.dumps({"format": 1, "models": {WEIGHTS.name: "2"}}),
    ],
)
def test_a_damaged_file_means_no_fallback(tmp_path: Path, content: str) -> None:
    path = tmp_path / "runner-fallbacks.json"
    path.write_text(content)
    memory = FallbackMemory(path, "m")
    assert memory.steps(WEIGHTS) == 0
    memory.remember(WEIGHTS, 1, "crashed")  # and it is written afresh
    assert FallbackMemory(path, "m").steps(WEIGHTS) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_unwritable_home_is_remembered_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    try:
        memory = FallbackMemory(home / "runner-fallbacks.json", "m")
        memory.remember(WEIGHTS, 1, "crashed")
        assert memory.steps(WEIGHTS) == 1
        assert "could not remember the runner fallback" in caplog.text
    finally:
        home.chmod(0o700)


def test_a_file_in_the_way_is_remembered_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "home").write_text("a file where the folder should be")
    memory = FallbackMemory(tmp_path / "home" / "runner-fallbacks.json", "m")
    memory.remember(WEIGHTS, 2, "crashed")
    assert memory.steps(WEIGHTS) == 2
    assert "could not remember the runner fallback" in caplog.text


def test_the_fingerprint_follows_the_cpu(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: avx2 amx_int8\n\n")
    with_amx = machine_fingerprint(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: avx2\n\n")
    assert machine_fingerprint(cpuinfo) != with_amx
    # the second CPU's lines and the ones that change by the second (MHz) do not count
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu MHz\t: 2100.1\nmodel name\t: Xeon\nflags\t\t: avx2 amx_int8\n\n"
        "processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: avx2\n\n"
    )
    assert machine_fingerprint(cpuinfo) == with_amx
    assert machine_fingerprint(tmp_path / "missing") == machine_fingerprint(tmp_path / "also missing")
