"""Which runners live, who gets one, who waits, and when runners go.

A runner is keyed by its model weights: two names for one blob share it. A request holds one of
the runner's ``num_parallel`` slots while it runs; requests beyond that wait in FIFO order. A
request for a loaded, compatible runner takes it at once; anything else (a first load, a reload
after a load-time option changed, a model that needs room) goes through one load at a time.

At most ``OLLAMA_MAX_QUEUE`` requests wait at once, whether for a load or for a slot of a runner
that is already loaded (Ollama counts only the former, ollama#7758); the next one is refused with
503 at once. A waiting request whose client leaves is dropped from its queue.

Before a load the memory is checked (``runtime.memory``): when the model does not fit beside the
loaded ones, or the runner count is at its limit, a runner is evicted as in Ollama — idle before
busy, shortest keep-alive first — and the check is repeated. A model that cannot fit even alone is
an error, never a machine swapping itself to death. The keep-alive timer starts when a runner's
last request finishes.

Two seams, as Ollama's scheduler has (``newServerFn``, ``getGpuFn``): the runner factory (by default
``RunnerProcess``, a llama.cpp runner subprocess) and the hardware it plans with (by default
``devices.Hardware``, the real machine). Tests pass fakes of both and run the rules in process.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, overload

from typing_extensions import TypeVar

from pollama.config import Settings
from pollama.errors import Busy, Failed
from pollama.gocompat.durations import FOREVER, SECOND
from pollama.gocompat.human import human_bytes2
from pollama.metrics import NO_METRICS, Metrics
from pollama.runtime.devices import (
    BuildSupport,
    GpuDevice,
    Hardware,
    SystemMemory,
    default_context_length,
    physical_cores,
)
from pollama.runtime.fallback import LADDER, FallbackMemory, describe_steps, machine_fingerprint, with_fallbacks
from pollama.runtime.memory import Placement, place, place_remote, runner_estimate
from pollama.runtime.process import RunnerConfig, RunnerCrashed, RunnerError, RunnerProcess
from pollama.store.models import StoredModel

__all__ = ["BUSY", "Discovery", "LoadedRunner", "Runner", "RunnerFactory", "Scheduler", "Slots"]

log = logging.getLogger(__name__)

BUSY = "server busy, please try again.  maximum pending requests exceeded"
MODELS_PER_GPU = 3  # Ollama's automatic OLLAMA_MAX_LOADED_MODELS: 3 x GPUs, at least 3
HEALTH_TIMEOUT = 10.0  # seconds of silence after a ping that make a runner dead (it answers at once, busy or not)
FALLBACKS_FILE = "runner-fallbacks.json"  # under OLLAMA's home (~/.ollama): see runtime.fallback
VRAM_RECOVERY_TIMEOUT = 5.0  # seconds to wait for a stopped runner's VRAM to show as free
_OUT_OF_MEMORY = ("out of memory", "not enough memory", "failed to allocate", "unable to allocate")


class Runner(Protocol):
    """What the scheduler needs of a runner (``RunnerProcess`` is the real one).

    ``start`` raises ``RunnerCrashed`` when the runner dies of a crash while loading (the fallback ladder
    takes over) and ``RunnerError`` when it cannot load otherwise; ``memory`` is (total, VRAM) once
    known, else None; ``take_crash`` hands out, once, why it crashed before its first decode finished.
    """

    @property
    def pid(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    @property
    def context_length(self) -> int: ...

    @property
    def memory(self) -> tuple[int, int] | None: ...

    def take_crash(self) -> str | None: ...

    async def start(self, timeout: float | None) -> None: ...

    async def responds(self, timeout: float) -> bool: ...

    async def close(self) -> None: ...

    def kill(self) -> None: ...


class Discovery(Protocol):
    """The machine the scheduler plans with (``devices.Hardware`` is the real one): asked again before each load."""

    @property
    def build(self) -> BuildSupport: ...

    def gpus(self) -> list[GpuDevice]: ...

    def system_memory(self) -> SystemMemory: ...

    def library_error(self) -> str | None: ...


R = TypeVar("R", bound=Runner, default=RunnerProcess)
RunnerFactory = Callable[[RunnerConfig], R]  # the launch configuration -> a runner, not yet started


class Slots:
    """A FIFO semaphore: permits go to waiters in arrival order, and a cancelled waiter leaves the line."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def available(self) -> bool:
        return self.in_use < self.capacity and not self._waiters

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.available:
            self.in_use += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands its permit over: in_use stays as it is
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # granted at the moment it was cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_use -= 1


@dataclass(eq=False)
class LoadedRunner(Generic[R]):
    process: R
    model: StoredModel  # the model whose request loaded it: /api/ps shows its name
    requested: RunnerConfig  # what the loading request asked for; later requests are compared with it
    placement: Placement
    slots: Slots
    keep_alive: int  # nanoseconds; FOREVER for "never unload"
    fallback_steps: int = 0  # how far down runtime.fallback.LADDER its configuration is
    refcount: int = 0
    expires_at: float | None = None  # unix time; None while in use for the first time, or forever
    timer: asyncio.TimerHandle | None = None
    retiring: bool = False  # chosen for eviction or stopping: hand it to no one new
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def size(self) -> int:
        memory = self.process.memory
        return memory[0] if memory else self.placement.total

    @property
    def size_vram(self) -> int:
        memory = self.process.memory
        return memory[1] if memory else self.placement.vram

    def expires(self, now: float) -> float:
        """When it unloads, as /api/ps shows it: a runner in use counts from now."""
        if self.expires_at is not None:
            return self.expires_at
        return now + (FOREVER if self.keep_alive >= FOREVER else self.keep_alive) / SECOND


class _Ticket(Generic[R]):
    """One request's place in the server-wide count of waiting requests."""

    def __init__(self, scheduler: Scheduler[R]):
        self.scheduler = scheduler
        self.counted = False

    def wait(self) -> None:
        if self.counted:
            return
        if self.scheduler.waiting >= self.scheduler.settings.max_queue:
            raise Busy(BUSY)
        self.counted = True
        self.scheduler.waiting += 1

    def done(self) -> None:
        if self.counted:
            self.counted = False
            self.scheduler.waiting -= 1


class Scheduler(Generic[R]):
    """``hardware``: the machine to plan with (default: this one); ``runner_factory``: how a runner is made
    from its launch configuration (default: a ``RunnerProcess``); ``fallbacks``: where crashing
    configurations are remembered (default: ``runner-fallbacks.json`` under OLLAMA's home); ``metrics``: told
    of every load, unload and runner crash (``pollama.metrics``; by default nobody)."""

    @overload
    def __init__(
        self: Scheduler[RunnerProcess],
        settings: Settings,
        hardware: Discovery | None = None,
        fallbacks: FallbackMemory | None = None,
        *,
        runner_factory: None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None: ...

    @overload
    def __init__(
        self: Scheduler[R],
        settings: Settings,
        hardware: Discovery | None = None,
        fallbacks: FallbackMemory | None = None,
        *,
        runner_factory: RunnerFactory[R],
        metrics: Metrics = NO_METRICS,
    ) -> None: ...

    def __init__(
        self,
        settings: Settings,
        hardware: Discovery | None = None,
        fallbacks: FallbackMemory | None = None,
        *,
        runner_factory: RunnerFactory[R] | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # told of loads, unloads and crashes; the service reports tokens to it too
        self.hardware: Discovery = hardware or Hardware(settings)
        self.fallbacks = fallbacks or FallbackMemory(settings.home / FALLBACKS_FILE, machine_fingerprint())
        # Without a factory R is RunnerProcess (the first overload), which RunnerProcess makes.
        self.new_runner: RunnerFactory[R] = runner_factory or RunnerProcess  # type: ignore[assignment]
        self.runners: dict[str, LoadedRunner[R]] = {}
        self.waiting = 0  # requests waiting for a load or a slot, server-wide
        self._load_lock = asyncio.Lock()  # FIFO: one load at a time, in arrival order
        self._stopping: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-way
        self._gpu_count = 0
        self.default_num_ctx = default_context_length([], 0)

    def start(self) -> None:
        """Look at the hardware once: the GPUs decide the automatic model limit and default context."""
        gpus = self.hardware.gpus()
        self._gpu_count = len(gpus)
        self.default_num_ctx = default_context_length(gpus, self.settings.gpu_overhead)
        for gpu in gpus:
            log.info(
                "inference compute id=%s library=%s name=%s total=%s available=%s",
                gpu.id, gpu.library, gpu.name, human_bytes2(gpu.total_memory), human_bytes2(gpu.free_memory),
            )  # fmt: skip
        if not gpus:
            log.info("inference compute id=cpu library=cpu threads=%d", physical_cores())
        log.info("default context length %d", self.default_num_ctx)
        if log.isEnabledFor(logging.DEBUG):  # what a bug report needs to know of the machine and the build
            build = self.hardware.build
            log.debug(
                "system info: llama-cpp-python=%s backends=%s %s",
                build.engine, ",".join(build.backends), build.system_info,
            )  # fmt: skip

    @property
    def max_runners(self) -> int:
        if self.settings.rpc_servers:
            return 1  # every runner uses the RPC servers, and each serves one client at a time (docs/rpc.md)
        return self.settings.max_loaded_models or MODELS_PER_GPU * max(1, self._gpu_count)

    @asynccontextmanager
    async def runner(
        self, model: StoredModel, config: RunnerConfig, keep_alive: int | None
    ) -> AsyncIterator[LoadedRunner[R]]:
        """Hold a slot of a runner for ``config`` (loading it if needed) for the duration of a request."""
        ticket: _Ticket[R] = _Ticket(self)
        try:
            loaded = await self._ready(config)
            if loaded is not None:
                self._take(loaded, keep_alive)
            else:
                loaded = await self._obtain(model, config, keep_alive, ticket)
            try:
                if not loaded.slots.available:
                    ticket.wait()
                await loaded.slots.acquire()
            except BaseException:
                self._release(loaded)
                raise
        finally:
            ticket.done()
        try:
            yield loaded
        finally:
            loaded.slots.release()
            self._release(loaded)

    def loaded(self) -> list[LoadedRunner[R]]:
        return [loaded for loaded in self.runners.values() if not loaded.retiring]

    async def unload(self, model_path: str | None) -> None:
        """Expire a model's runner now, or as soon as its requests finish."""
        loaded = self.runners.get(str(model_path))
        if loaded is None:
            return
        loaded.keep_alive = 0
        loaded.expires_at = time.time()
        self._cancel_timer(loaded)
        if loaded.refcount == 0:
            await self._stop(loaded)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._stop(loaded) for loaded in list(self.runners.values())))
        await asyncio.gather(*self._stopping, return_exceptions=True)

    # --- handing runners out ----------------------------------------------------------------------

    async def _ready(self, config: RunnerConfig) -> LoadedRunner[R] | None:
        """A loaded runner the request can use as it is, without queueing for the load lock."""
        loaded = self.runners.get(str(config.model_path))
        if loaded is None or loaded.retiring or not _compatible(loaded.requested, config):
            return None
        if loaded.refcount == 0 and not await _responds(loaded):
            log.warning("runner for %s stopped responding; starting a new one", loaded.model.short_name)
            return None
        return None if loaded.retiring or not loaded.process.alive else loaded

    def _take(self, loaded: LoadedRunner[R], keep_alive: int | None) -> None:
        if keep_alive is not None:
            loaded.keep_alive = keep_alive
        loaded.refcount += 1
        loaded.idle.clear()
        self._cancel_timer(loaded)

    async def _obtain(
        self, model: StoredModel, config: RunnerConfig, keep_alive: int | None, ticket: _Ticket[R]
    ) -> LoadedRunner[R]:
        if self._load_lock.locked():
            ticket.wait()
        await self._load_lock.acquire()
        handed_over = False
        try:
            ticket.done()  # being served now, no longer waiting
            retried = False
            while True:
                loaded = self.runners.get(str(config.model_path))
                if loaded is not None:
                    if not loaded.retiring and await self._ready(config) is loaded:
                        self._take(loaded, keep_alive)
                        return loaded
                    log.info("reloading %s", model.short_name)
                    self._note_crash(loaded)
                    await self._evict(loaded)
                    continue
                if len(self.runners) >= self.max_runners:
                    log.info("%d models loaded, the limit; unloading one", len(self.runners))
                    await self._evict(self._victim())
                    continue
                gpus = await asyncio.to_thread(self.hardware.gpus) if config.num_gpu != 0 else []
                system = self.hardware.system_memory()
                placement, room = self._plan(model, config, gpus, system)
                if not room:
                    if self.runners:
                        await self._evict(self._victim())
                        continue
                    raise Failed(
                        f"model requires more system memory ({human_bytes2(placement.ram)}) "
                        f"than is available ({human_bytes2(system.available)})",
                    )
                load = asyncio.ensure_future(self._load(model, config, placement, keep_alive))
                try:
                    loaded = await asyncio.shield(load)
                except asyncio.CancelledError:
                    # The client left mid-load. As in Ollama the load goes on, still holding the lock, and
                    # the runner stays for whoever asks next (a client that timed out and retries).
                    handed_over = True
                    load.add_done_callback(self._adopt)
                    raise
                except Failed as error:
                    if self.runners and not retried and _out_of_memory(error.message):
                        log.warning("loading %s ran out of memory; unloading every model and retrying", model.name)
                        retried = True
                        for other in list(self.runners.values()):
                            await self._evict(other)
                        continue
                    raise
                self._take(loaded, keep_alive)
                return loaded
        finally:
            if not handed_over:
                self._load_lock.release()

    def _adopt(self, load: asyncio.Future[LoadedRunner[R]]) -> None:
        """A load nobody waits for any more has ended: let the next one start, and idle its runner."""
        self._load_lock.release()
        if load.cancelled():
            return
        if (error := load.exception()) is not None:
            log.info("a load whose client left failed: %s", error)
            return
        self._idle(load.result())

    def _plan(
        self, model: StoredModel, config: RunnerConfig, devices: list[GpuDevice], system: SystemMemory
    ) -> tuple[Placement, bool]:
        """Where the model would go, and whether that fits beside what is loaded."""
        if error := self.hardware.library_error():
            raise Failed(error)
        gguf = model.gguf()
        if gguf is None:
            raise Failed(f"{model.short_name}: the model weights are not a GGUF file pollama can load")
        need = runner_estimate(gguf, config)
        gpus = self._free_gpus(devices)
        if config.rpc_servers:  # split over other machines: only what stays here is planned
            gpus = []
            placement = place_remote(need, config.num_gpu)
        else:
            placement = place(
                need,
                gpus,
                num_gpu=config.num_gpu,
                main_gpu=config.main_gpu if config.main_gpu >= 0 else None,
                spread=self.settings.sched_spread,
                overhead=self.settings.gpu_overhead,
                max_vram=self.settings.max_vram,
            )
        in_use = sum(loaded.size - loaded.size_vram for loaded in self.runners.values())
        available = min(system.available, max(0, system.total - in_use)) if system.total else placement.ram
        fits = placement.ram <= available
        # Beside other models a model must go wholly onto the GPUs (as Ollama requires), or room is made.
        if self.runners and gpus and config.num_gpu < 0 and not placement.full(need.shape.block_count):
            fits = False
        log.info(
            "%s needs %s (%s on GPUs, %d layers%s); %s of system memory available",
            model.short_name,
            human_bytes2(placement.total),
            human_bytes2(placement.vram),
            placement.layers,
            " offloaded to the RPC servers and local GPUs" if config.rpc_servers else "",
            human_bytes2(available),
        )
        return placement, fits

    def _free_gpus(self, gpus: list[GpuDevice]) -> list[GpuDevice]:
        """GPUs with the memory loaded runners hold taken off, where the driver has not caught up yet."""
        used: dict[int, int] = collections.Counter()
        for loaded in self.runners.values():
            for index, size in loaded.placement.vram_by_gpu.items():
                used[index] += size
        return [
            dataclasses.replace(gpu, free_memory=max(0, min(gpu.free_memory, gpu.total_memory - used[gpu.index])))
            for gpu in gpus
        ]

    async def _load(
        self, model: StoredModel, config: RunnerConfig, placement: Placement, keep_alive: int | None
    ) -> LoadedRunner[R]:
        """Start a runner; one that crashes while loading is started again in a safer configuration."""
        remembered = steps = self.fallbacks.steps(config.model_path)
        cause = ""
        timeout = None if self.settings.load_timeout >= FOREVER else self.settings.load_timeout / SECOND
        log.info("loading %s (ctx %d x %d)", model.short_name, config.num_ctx, config.num_parallel)
        if steps:
            log.info(
                "%s starts with %s, as it crashed otherwise on this machine", model.short_name, describe_steps(steps)
            )
        while True:
            launch = dataclasses.replace(
                with_fallbacks(config, steps),
                num_gpu=placement.layers,
                main_gpu=placement.main_gpu,
                tensor_split=placement.tensor_split,
            )
            process = self.new_runner(launch)
            try:
                await process.start(timeout)
                break
            except RunnerCrashed as crash:
                self.metrics.runner_crashed(model.short_name)
                if steps == len(LADDER):
                    # Remembered too: the next request tries the safest configuration once, not all of them.
                    self.fallbacks.remember(config.model_path, steps, f"crashed in every configuration: {crash.cause}")
                    raise Failed(_gave_up(crash, steps)) from None
                steps += 1
                cause = f"crashed while loading: {crash.cause}"
                self._log_fallback(model, crash.cause, "while loading", steps)
            except RunnerError as error:
                raise Failed(error.message) from None
        if steps > remembered:
            self.fallbacks.remember(config.model_path, steps, cause)
        loaded = LoadedRunner(
            process=process,
            model=model,
            requested=config,
            placement=placement,
            slots=Slots(config.num_parallel),
            keep_alive=self.settings.keep_alive if keep_alive is None else keep_alive,
            fallback_steps=steps,
        )
        loaded.idle.set()
        self.runners[str(config.model_path)] = loaded
        self.metrics.model_loaded(model.short_name)
        return loaded

    def _log_fallback(self, model: StoredModel, cause: str, when: str, steps: int) -> None:
        log.warning(
            "the runner for %s crashed %s (%s); loading it again with %s. It loads that way on this machine "
            "from now on (remembered in %s: delete that file to try the default again)",
            model.short_name, when, cause, describe_steps(steps), self.fallbacks.path,
        )  # fmt: skip

    def _note_crash(self, loaded: LoadedRunner[R]) -> None:
        """A runner that crashed before its first decode finished: its next load goes one step safer."""
        cause = loaded.process.take_crash()  # once per runner, whoever notices first
        if cause is None or loaded.fallback_steps == len(LADDER):
            return
        loaded.fallback_steps += 1
        self._log_fallback(loaded.model, cause, "on its first decode", loaded.fallback_steps)
        self.fallbacks.remember(
            loaded.requested.model_path, loaded.fallback_steps, f"crashed on its first decode: {cause}"
        )

    def _victim(self) -> LoadedRunner[R]:
        """Ollama's choice: shortest keep-alive first (forever last), idle before busy."""
        ordered = sorted(
            self.runners.values(),
            key=lambda r: (FOREVER if r.keep_alive < 0 else r.keep_alive, str(r.requested.model_path)),
        )
        return next((loaded for loaded in ordered if loaded.refcount == 0), ordered[0])

    async def _evict(self, loaded: LoadedRunner[R]) -> None:
        """Unload ``loaded`` once its requests finish, then wait for its GPU memory to come back."""
        loaded.retiring = True
        loaded.keep_alive = 0
        loaded.expires_at = time.time()
        self._cancel_timer(loaded)
        if loaded.process.alive:
            await loaded.idle.wait()
        await self._stop(loaded)
        if loaded.placement.vram:
            await self._wait_for_vram(loaded.placement)

    async def _wait_for_vram(self, placement: Placement) -> None:
        before = {gpu.index: gpu.free_memory for gpu in await asyncio.to_thread(self.hardware.gpus)}
        deadline = time.monotonic() + VRAM_RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            now = {gpu.index: gpu.free_memory for gpu in await asyncio.to_thread(self.hardware.gpus)}
            recovered = sum(max(0, now.get(index, 0) - before.get(index, 0)) for index in placement.vram_by_gpu)
            if recovered >= placement.vram * 3 // 4:
                return
            await asyncio.sleep(0.25)

    # --- giving runners back ----------------------------------------------------------------------

    def _release(self, loaded: LoadedRunner[R]) -> None:
        loaded.refcount -= 1
        if loaded.refcount == 0:
            self._idle(loaded)

    def _idle(self, loaded: LoadedRunner[R]) -> None:
        """Its last request is done: stop it now, or when its keep-alive runs out."""
        loaded.idle.set()
        self._note_crash(loaded)
        if loaded.retiring or not loaded.process.alive or loaded.keep_alive <= 0:
            loaded.expires_at = time.time()
            self._stop_soon(loaded)
            return
        if loaded.keep_alive >= FOREVER:
            loaded.expires_at = None
            return
        delay = loaded.keep_alive / SECOND
        loaded.expires_at = time.time() + delay
        loaded.timer = asyncio.get_running_loop().call_later(delay, self._expire, loaded)

    def _expire(self, loaded: LoadedRunner[R]) -> None:
        loaded.timer = None
        if loaded.refcount == 0 and not loaded.retiring:
            self._stop_soon(loaded)

    def _stop_soon(self, loaded: LoadedRunner[R]) -> None:
        self._detach(loaded)
        task = asyncio.get_running_loop().create_task(loaded.process.close())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _cancel_timer(self, loaded: LoadedRunner[R]) -> None:
        if loaded.timer is not None:
            loaded.timer.cancel()
            loaded.timer = None

    async def _stop(self, loaded: LoadedRunner[R]) -> None:
        self._detach(loaded)
        await loaded.process.close()

    def _detach(self, loaded: LoadedRunner[R]) -> None:
        """Take a runner out of service at once; its process is closed by the caller."""
        loaded.retiring = True
        self._cancel_timer(loaded)
        key = str(loaded.requested.model_path)
        if self.runners.get(key) is loaded:
            del self.runners[key]
            log.info("unloading %s", loaded.model.short_name)
            if not loaded.process.alive:  # it died (crashed, was killed, hung): nobody had closed it yet
                self.metrics.runner_crashed(loaded.model.short_name)
            self.metrics.model_unloaded(loaded.model.short_name)


def _compatible(running: RunnerConfig, wanted: RunnerConfig) -> bool:
    """Whether a runner started for ``running`` serves a request needing ``wanted`` (Ollama's needsReload).

    ``num_gpu`` -1 asks for the automatic choice, which whatever is running already made.
    """
    if wanted.num_gpu < 0:
        wanted = dataclasses.replace(wanted, num_gpu=running.num_gpu)
    if wanted.main_gpu < 0:
        wanted = dataclasses.replace(wanted, main_gpu=running.main_gpu)
    return running == wanted


async def _responds(loaded: LoadedRunner[R]) -> bool:
    """Ping an idle runner before handing it out: it may have died or hung a moment ago, unnoticed yet."""
    if not loaded.process.alive:
        return False
    if not await loaded.process.responds(HEALTH_TIMEOUT):
        loaded.process.kill()
        return False
    return True


def _gave_up(crash: RunnerCrashed, steps: int) -> str:
    message = (
        f"llama runner process has terminated: {crash.cause} while loading, in the default configuration "
        f"and with {describe_steps(steps)} alike"
    )
    return f"{message}; the runner's last output: {crash.output}" if crash.output else message


def _out_of_memory(message: str) -> bool:
    return any(marker in message.lower() for marker in _OUT_OF_MEMORY)
