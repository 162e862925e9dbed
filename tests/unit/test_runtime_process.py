"""``RunnerProcess.responds``: a busy runner from a dead one, against a scripted stand-in for the runner.

The stand-in speaks the runner's protocol: ``ready`` at start, then for a health ping it answers at
once, answers late while other events keep flowing, or says nothing at all, as it was told.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.runtime.process import RunnerConfig, RunnerProcess

STAND_IN = r"""
import json, sys, time
mode = sys.argv[1]
def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
send({"event": "ready", "n_ctx": 512})
for line in sys.stdin:
    command = json.loads(line)
    if command.get("op") != "health" or mode == "silent":
        continue
    if mode == "late":  # busy: the answer waits behind a stream of other events
        for _ in range(15):
            send({"id": "elsewhere", "event": "token", "text": "x"})
            time.sleep(0.1)
    send({"id": command["id"], "event": "health", "active": 1, "waiting": 0, "rss_bytes": 1})
"""


def with_stand_in(mode: str, test: Callable[[RunnerProcess], Awaitable[None]], monkeypatch: Any) -> None:
    spawn = asyncio.create_subprocess_exec

    async def spawn_stand_in(program: str, *_runner_args: str, **options: Any) -> asyncio.subprocess.Process:
        return await spawn(sys.executable, "-c", STAND_IN, mode, **options)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn_stand_in)

    async def run() -> None:
        process = RunnerProcess(RunnerConfig(model_path=Path("unused.gguf"), num_ctx=512))
        await process.start(timeout=30)
        try:
            await test(process)
        finally:
            await process.close(grace=1)

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["prompt", "late"])
def test_a_runner_that_answers_or_keeps_talking_responds(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def test(process: RunnerProcess) -> None:
        assert await process.responds(0.5)
        assert process.alive

    with_stand_in(mode, test, monkeypatch)


def test_a_silent_runner_does_not_respond(monkeypatch: pytest.MonkeyPatch) -> None:
    async def test(process: RunnerProcess) -> None:
        started = time.monotonic()
        assert not await process.responds(0.5)
        assert time.monotonic() - started < 5

    with_stand_in("silent", test, monkeypatch)


def test_a_dead_runner_does_not_respond(monkeypatch: pytest.MonkeyPatch) -> None:
    async def test(process: RunnerProcess) -> None:
        process.kill()
        assert not await process.responds(5)

    with_stand_in("prompt", test, monkeypatch)
