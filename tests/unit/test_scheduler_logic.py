"""Scheduler pieces that need no runner: the FIFO slot semaphore, reload decisions (spec G.6), and how
``ollama ps`` shows where a model runs (spec C.3)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pollama.cli.main import processor_label
from pollama.gocompat.human import human_bytes2
from pollama.runtime.process import RunnerConfig
from pollama.runtime.scheduler import Slots, _compatible

# --- Slots ----------------------------------------------------------------------------------------


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


def waiter(slots: Slots, name: str, order: list[str]) -> asyncio.Task[None]:
    async def take() -> None:
        await slots.acquire()
        order.append(name)

    return asyncio.get_running_loop().create_task(take(), name=name)


def test_capacity_is_respected() -> None:
    async def scenario() -> None:
        slots = Slots(2)
        assert slots.available and slots.waiting == 0
        await slots.acquire()
        await slots.acquire()
        assert slots.in_use == 2 and not slots.available
        order: list[str] = []
        third = waiter(slots, "third", order)
        await settle()
        assert order == [] and slots.waiting == 1
        slots.release()
        await third
        assert order == ["third"] and slots.in_use == 2 and slots.waiting == 0
        slots.release()
        slots.release()
        assert slots.in_use == 0 and slots.available

    run(scenario)


def test_waiters_are_served_in_arrival_order() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        order: list[str] = []
        tasks = []
        for name in "abcde":
            tasks.append(waiter(slots, name, order))
            await settle()
        assert slots.waiting == 5
        for served in range(1, 6):
            slots.release()
            await settle()
            assert order == list("abcde"[:served])
            assert slots.in_use == 1
        await asyncio.gather(*tasks)
        slots.release()
        assert slots.in_use == 0 and slots.available

    run(scenario)


def test_a_newcomer_does_not_jump_the_queue() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        order: list[str] = []
        first = waiter(slots, "first", order)
        await settle()
        slots.release()  # the permit is handed to "first", which has not run yet
        assert not slots.available
        late = waiter(slots, "late", order)
        await settle()
        assert order == ["first"] and slots.waiting == 1
        slots.release()
        await asyncio.gather(first, late)
        assert order == ["first", "late"]

    run(scenario)


def test_a_cancelled_waiter_leaves_the_line() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        order: list[str] = []
        a, b = waiter(slots, "a", order), waiter(slots, "b", order)
        await settle()
        a.cancel()
        await settle()
        assert a.cancelled() and slots.waiting == 1
        slots.release()
        await b
        assert order == ["b"] and slots.in_use == 1
        slots.release()
        assert slots.in_use == 0 and slots.available

    run(scenario)


def test_a_waiter_cancelled_before_it_leaves_the_line_is_skipped() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        order: list[str] = []
        a, b = waiter(slots, "a", order), waiter(slots, "b", order)
        await settle()
        a.cancel()
        slots.release()  # before "a" has run its clean-up: its future is cancelled, still queued
        await b
        assert a.cancelled()
        assert order == ["b"] and slots.in_use == 1 and slots.waiting == 0
        slots.release()
        assert slots.in_use == 0 and slots.available

    run(scenario)


def test_a_permit_granted_to_a_waiter_as_it_is_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        order: list[str] = []
        a, b = waiter(slots, "a", order), waiter(slots, "b", order)
        await settle()
        slots.release()  # granted to "a" ...
        a.cancel()  # ... which is cancelled before it resumes
        await b
        assert a.cancelled()
        assert order == ["b"] and slots.in_use == 1
        slots.release()
        assert slots.in_use == 0 and slots.available

    run(scenario)


def test_a_permit_granted_as_the_last_waiter_is_cancelled_is_returned() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        a = waiter(slots, "a", [])
        await settle()
        slots.release()
        a.cancel()
        await settle()
        assert a.cancelled()
        assert slots.in_use == 0 and slots.available

    run(scenario)


# --- _compatible ----------------------------------------------------------------------------------

BASE = RunnerConfig(model_path=Path("/models/blobs/sha256-abc"), num_ctx=4096, num_thread=4)


def test_identical_configs_are_compatible() -> None:
    assert _compatible(BASE, dataclasses.replace(BASE))


@pytest.mark.parametrize("running_num_gpu", [-1, 0, 17, 999])
def test_automatic_num_gpu_takes_whatever_runs(running_num_gpu: int) -> None:
    running = dataclasses.replace(BASE, num_gpu=running_num_gpu)
    assert _compatible(running, dataclasses.replace(BASE, num_gpu=-1))


@pytest.mark.parametrize(("running", "wanted"), [(20, 10), (-1, 10), (10, 0), (0, 10)])
def test_explicit_num_gpu_must_match(running: int, wanted: int) -> None:
    assert not _compatible(dataclasses.replace(BASE, num_gpu=running), dataclasses.replace(BASE, num_gpu=wanted))
    assert _compatible(dataclasses.replace(BASE, num_gpu=wanted), dataclasses.replace(BASE, num_gpu=wanted))


@pytest.mark.parametrize("running_main_gpu", [-1, 0, 2])
def test_automatic_main_gpu_takes_whatever_runs(running_main_gpu: int) -> None:
    assert _compatible(dataclasses.replace(BASE, main_gpu=running_main_gpu), dataclasses.replace(BASE, main_gpu=-1))


def test_explicit_main_gpu_must_match() -> None:
    assert not _compatible(dataclasses.replace(BASE, main_gpu=0), dataclasses.replace(BASE, main_gpu=1))
    assert not _compatible(BASE, dataclasses.replace(BASE, main_gpu=1))  # the running one was automatic
    assert _compatible(dataclasses.replace(BASE, main_gpu=1), dataclasses.replace(BASE, main_gpu=1))


@pytest.mark.parametrize(
    "change",
    [
        {"num_ctx": 8192},
        {"num_batch": 256},
        {"num_thread": 8},
        {"use_mmap": False},
        {"num_parallel": 2},
        {"flash_attention": True},
        {"kv_cache_type": "q8_0"},
        {"embedding": True},
        {"model_path": Path("/models/blobs/sha256-def")},
    ],
    ids=lambda change: next(iter(change)),
)
def test_load_time_differences_need_another_runner(change: dict) -> None:
    wanted = dataclasses.replace(BASE, **change)
    assert not _compatible(BASE, wanted)
    assert not _compatible(wanted, BASE)


def test_automatic_gpu_choices_do_not_hide_other_differences() -> None:
    running = dataclasses.replace(BASE, num_gpu=20, main_gpu=1)
    assert _compatible(running, dataclasses.replace(BASE, num_gpu=-1, main_gpu=-1))
    assert not _compatible(running, dataclasses.replace(BASE, num_gpu=-1, main_gpu=-1, num_ctx=2048))


# --- processor_label ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "size_vram", "label"),
    [
        (1000, 0, "100% CPU"),
        (0, 0, "100% CPU"),
        (1000, 1000, "100% GPU"),
        (1000, 1001, "Unknown"),
        (0, 5, "Unknown"),
        (100, 52, "48%/52% CPU/GPU"),
        (100, 48, "52%/48% CPU/GPU"),
        (3, 1, "67%/33% CPU/GPU"),
        (1000, 999, "0%/100% CPU/GPU"),  # rounds to a whole GPU but is not one
        (1000, 1, "100%/0% CPU/GPU"),
    ],
)
def test_processor_label(size: int, size_vram: int, label: str) -> None:
    assert processor_label(size, size_vram) == label


@pytest.mark.parametrize(
    ("size", "size_vram", "label"),
    [
        (200, 101, "50%/50% CPU/GPU"),  # CPU 49.5 %
        (200, 99, "51%/49% CPU/GPU"),  # CPU 50.5 %
        (8, 3, "63%/37% CPU/GPU"),  # CPU 62.5 %: Python's round() would say 62
        (8, 5, "38%/62% CPU/GPU"),  # CPU 37.5 %
        (200, 195, "3%/97% CPU/GPU"),  # CPU 2.5 %
    ],
)
def test_processor_label_rounds_halves_away_from_zero(size: int, size_vram: int, label: str) -> None:
    assert processor_label(size, size_vram) == label


# --- human_bytes2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        ((1 << 20) - 1, "1024.0 KiB"),  # one decimal, like Go's %.1f
        (int(92.10 * (1 << 20)), "92.1 MiB"),
        (1 << 30, "1.0 GiB"),
        (3 << 29, "1.5 GiB"),
        (1 << 40, "1024.0 GiB"),
    ],
)
def test_human_bytes2(size: int, text: str) -> None:
    assert human_bytes2(size) == text
