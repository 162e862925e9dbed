"""Which runners live, who gets one, and when they go.

A runner is keyed by its model weights: two names for one blob share it. A request takes one of
the runner's ``num_parallel`` slots for as long as it runs; the keep-alive timer starts when the
last request finishes. A runner that died, or whose load-time options differ from what a request
needs, is replaced. Loads happen one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pollama.config import Settings
from pollama.durations import FOREVER, SECOND
from pollama.errors import APIError
from pollama.runtime.process import RunnerConfig, RunnerError, RunnerProcess

__all__ = ["LoadedRunner", "Scheduler"]

log = logging.getLogger(__name__)

DEFAULT_MAX_RUNNERS = 3  # 3 x GPUs, at least 3: Ollama's automatic OLLAMA_MAX_LOADED_MODELS
HEALTH_TIMEOUT = 10.0  # seconds; an idle runner answers at once


@dataclass(eq=False)
class LoadedRunner:
    process: RunnerProcess
    model_name: str
    slots: asyncio.Semaphore
    keep_alive: int  # nanoseconds
    refcount: int = 0
    expires_at: float | None = None  # unix time
    timer: asyncio.TimerHandle | None = None

    @property
    def config(self) -> RunnerConfig:
        return self.process.config


class Scheduler:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.runners: dict[Path, LoadedRunner] = {}
        self._load_lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-way

    @asynccontextmanager
    async def runner(
        self, model_name: str, config: RunnerConfig, keep_alive: int | None
    ) -> AsyncIterator[LoadedRunner]:
        """Hold a slot of a runner for ``config`` (loading it if needed) for the duration of a request."""
        loaded = await self._obtain(model_name, config, keep_alive)
        try:
            await loaded.slots.acquire()
        except BaseException:
            self._release(loaded)
            raise
        try:
            yield loaded
        finally:
            loaded.slots.release()
            self._release(loaded)

    async def unload(self, model_path: Path) -> None:
        """Expire a model's runner now, or as soon as its requests finish."""
        loaded = self.runners.get(model_path)
        if loaded is None:
            return
        loaded.keep_alive = 0
        loaded.expires_at = time.time()
        if loaded.refcount == 0:
            await self._stop(loaded)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._stop(loaded) for loaded in list(self.runners.values())))

    # --- internals --------------------------------------------------------------------------------

    async def _obtain(self, model_name: str, config: RunnerConfig, keep_alive: int | None) -> LoadedRunner:
        async with self._load_lock:
            loaded = self.runners.get(config.model_path)
            if loaded is not None and loaded.refcount == 0 and not await _responds(loaded):
                log.warning("runner for %s stopped responding; starting a new one", loaded.model_name)
            if loaded is not None and (not loaded.process.alive or loaded.config != config):
                if loaded.refcount and loaded.process.alive:
                    await self._wait_idle(loaded)
                await self._stop(loaded)
                loaded = None
            if loaded is None:
                await self._make_room()
                loaded = await self._load(model_name, config, keep_alive)
            elif keep_alive is not None:
                loaded.keep_alive = keep_alive
            loaded.refcount += 1
            self._cancel_timer(loaded)
            return loaded

    async def _load(self, model_name: str, config: RunnerConfig, keep_alive: int | None) -> LoadedRunner:
        process = RunnerProcess(config)
        timeout = None if self.settings.load_timeout >= FOREVER else self.settings.load_timeout / SECOND
        log.info("loading %s (ctx %d x %d)", model_name, config.num_ctx, config.num_parallel)
        try:
            await process.start(timeout)
        except RunnerError as error:
            raise APIError(500, error.message) from None
        loaded = LoadedRunner(
            process=process,
            model_name=model_name,
            slots=asyncio.Semaphore(config.num_parallel),
            keep_alive=self.settings.keep_alive if keep_alive is None else keep_alive,
        )
        self.runners[config.model_path] = loaded
        return loaded

    async def _make_room(self) -> None:
        limit = self.settings.max_loaded_models or DEFAULT_MAX_RUNNERS
        while len(self.runners) >= limit:
            victim = min(
                self.runners.values(), key=lambda r: (r.refcount > 0, _sort_duration(r), str(r.config.model_path))
            )
            await self._wait_idle(victim)
            await self._stop(victim)

    async def _wait_idle(self, loaded: LoadedRunner) -> None:
        while loaded.refcount and loaded.process.alive:
            await asyncio.sleep(0.05)

    def _release(self, loaded: LoadedRunner) -> None:
        loaded.refcount -= 1
        if loaded.refcount > 0:
            return
        if not loaded.process.alive or loaded.keep_alive <= 0:
            loaded.expires_at = time.time()
            self._stop_soon(loaded)
            return
        if loaded.keep_alive >= FOREVER:
            loaded.expires_at = None
            return
        delay = loaded.keep_alive / SECOND
        loaded.expires_at = time.time() + delay
        loaded.timer = asyncio.get_running_loop().call_later(delay, self._expire, loaded)

    def _expire(self, loaded: LoadedRunner) -> None:
        if loaded.refcount == 0:
            self._stop_soon(loaded)

    def _stop_soon(self, loaded: LoadedRunner) -> None:
        task = asyncio.get_running_loop().create_task(self._stop(loaded))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _cancel_timer(self, loaded: LoadedRunner) -> None:
        if loaded.timer is not None:
            loaded.timer.cancel()
            loaded.timer = None

    async def _stop(self, loaded: LoadedRunner) -> None:
        self._cancel_timer(loaded)
        if self.runners.get(loaded.config.model_path) is loaded:
            del self.runners[loaded.config.model_path]
        log.info("unloading %s", loaded.model_name)
        await loaded.process.close()


async def _responds(loaded: LoadedRunner) -> bool:
    """Ping an idle runner before handing it out: it may have died a moment ago, unnoticed yet."""
    try:
        await asyncio.wait_for(loaded.process.health(), HEALTH_TIMEOUT)
    except (RunnerError, TimeoutError):
        loaded.process.kill()
        return False
    return True


def _sort_duration(loaded: LoadedRunner) -> int:
    return FOREVER if loaded.keep_alive < 0 else loaded.keep_alive
