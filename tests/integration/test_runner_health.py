"""Health pings against a real runner (SmolLM2): answered in the middle of a long decode step, failed
by a runner that is stopped.

The long step is a prefill of some 700 tokens in one batch, on one thread: a second or more on a small CPU.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from pollama.runner.messages import CompletionRequest, Sampling
from pollama.runtime.process import RunnerConfig, RunnerProcess

PROMPT = "The old fisherman mended his nets by the harbour while the gulls circled overhead. " * 40


def runner_config(model: Path) -> RunnerConfig:
    return RunnerConfig(model_path=model, num_ctx=4096, num_batch=4096, num_thread=1, num_gpu=0)


@pytest.mark.timeout(120)
def test_health_is_answered_during_a_long_decode_step(smollm2_path: Path) -> None:
    async def run() -> None:
        process = RunnerProcess(runner_config(smollm2_path))
        await process.start(timeout=60)
        try:
            stream = process.completion(CompletionRequest(PROMPT, Sampling(num_predict=1, temperature=0)))
            first_token = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.1)  # the prompt is tokenized by now, and its one-batch prefill under way
            assert await process.responds(30)
            # Before, the ping waited for the step to end, and was answered after the prompt's first token.
            assert not first_token.done()
            await first_token
            await stream.aclose()
        finally:
            await process.close()

    asyncio.run(run())


@pytest.mark.timeout(120)
def test_a_stopped_runner_fails_its_ping(smollm2_path: Path) -> None:
    async def run() -> None:
        process = RunnerProcess(runner_config(smollm2_path))
        await process.start(timeout=60)
        assert process.pid is not None
        try:
            assert await process.responds(5)
            os.kill(process.pid, signal.SIGSTOP)
            started = time.monotonic()
            assert not await process.responds(1)
            assert time.monotonic() - started < 5
        finally:
            os.kill(process.pid, signal.SIGCONT)
            await process.close()

    asyncio.run(run())
