"""The scheduler's rules, in process: a fake runner factory and a fake machine stand in for llama.cpp
runner subprocesses and the hardware (as Ollama's sched_test.go does with newServerFn and getGpuFn).

What is checked: fitting into RAM and VRAM (a refusal, or an eviction to make room), which runner is
evicted, OLLAMA_MAX_LOADED_MODELS, OLLAMA_MAX_QUEUE, num_parallel slots, keep-alive, reloads and reuse,
the fallback ladder after a crash while loading, and unloading. tests/integration/test_scheduler.py
proves the same with real runners end to end.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.config import Settings
from pollama.errors import Busy, Failed
from pollama.gocompat.durations import FOREVER, MINUTE, SECOND
from pollama.gocompat.human import human_bytes2
from pollama.runtime import scheduler as scheduler_module
from pollama.runtime.devices import GIB, MIB, BuildSupport, GpuDevice, SystemMemory
from pollama.runtime.fallback import LADDER, FallbackMemory
from pollama.runtime.memory import GPU_MINIMUM_MEMORY, runner_estimate
from pollama.runtime.process import RunnerConfig, RunnerCrashed, RunnerError
from pollama.runtime.scheduler import BUSY, LoadedRunner, Scheduler
from pollama.store.models import StoredModel

pytestmark = pytest.mark.timeout(10)

MS = SECOND // 1000


# --- fakes ----------------------------------------------------------------------------------------


class FakeRunner:
    """Records what the scheduler does with it; ``farm`` decides how its start goes."""

    def __init__(self, config: RunnerConfig, farm: Farm):
        self.config = config
        self.farm = farm
        self.started = False
        self.closed = False
        self.killed = False
        self.hung = False  # an idle runner that no longer answers a ping
        self.crash: str | None = None  # crashed on its first decode: take_crash() hands this out once
        self.pid: int | None = None

    @property
    def alive(self) -> bool:
        return self.started and not self.closed and not self.killed

    @property
    def context_length(self) -> int:
        return self.config.num_ctx

    @property
    def memory(self) -> tuple[int, int] | None:
        return self.farm.memory

    def take_crash(self) -> str | None:
        crash, self.crash = self.crash, None
        return crash

    async def start(self, timeout: float | None) -> None:
        self.farm.starts.append(self.config)
        if self.farm.load_delay:
            await asyncio.sleep(self.farm.load_delay)
        if self.farm.crashes > 0:
            self.farm.crashes -= 1
            raise RunnerCrashed("llama runner process has terminated", "signal: sigsegv", "ggml_abort")
        if self.farm.error:
            raise RunnerError(self.farm.error)
        self.started = True
        self.pid = 1000 + len(self.farm.starts)

    async def responds(self, timeout: float) -> bool:
        return self.alive and not self.hung

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.farm.closes.append(self.config)

    def kill(self) -> None:
        self.killed = True


class Farm:
    """The runner factory: makes FakeRunners and remembers them."""

    def __init__(self) -> None:
        self.runners: list[FakeRunner] = []
        self.starts: list[RunnerConfig] = []
        self.closes: list[RunnerConfig] = []
        self.crashes = 0  # the next starts that crash
        self.error = ""  # every start fails with this (after the crashes)
        self.load_delay = 0.0
        self.memory: tuple[int, int] | None = None

    def __call__(self, config: RunnerConfig) -> FakeRunner:
        runner = FakeRunner(config, self)
        self.runners.append(runner)
        return runner

    def closed(self, model: StoredModel) -> int:
        return sum(1 for config in self.closes if config.model_path == model.model_path)


@dataclasses.dataclass
class Machine:
    """The hardware the scheduler plans with: numbers a test sets. Like the OS, it counts the system
    memory that loaded runners hold as unavailable, unless ``lagging`` (the OS has not caught up yet)."""

    total: int = 64 * GIB
    available: int = 64 * GIB
    devices: list[GpuDevice] = dataclasses.field(default_factory=list)
    error: str | None = None
    build: BuildSupport = BuildSupport(gpu_offload=True, backends=("CPU", "CUDA"))
    lagging: bool = False
    scheduler: Scheduler[FakeRunner] | None = None
    asked: int = 0

    def gpus(self) -> list[GpuDevice]:
        self.asked += 1
        return list(self.devices)

    def system_memory(self) -> SystemMemory:
        held = 0
        if self.scheduler is not None and not self.lagging:
            held = sum(loaded.size - loaded.size_vram for loaded in self.scheduler.runners.values())
        return SystemMemory(total=self.total, available=max(0, self.available - held))

    def library_error(self) -> str | None:
        return self.error


# --- building blocks ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_vram_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake GPU's free memory does not move: do not wait for it to come back after an eviction."""
    monkeypatch.setattr(scheduler_module, "VRAM_RECOVERY_TIMEOUT", 0.0)


def weights(model: StoredModel) -> Path:
    assert model.model_path is not None
    return model.model_path


def config_for(model: StoredModel, **changes: Any) -> RunnerConfig:
    return dataclasses.replace(RunnerConfig(model_path=weights(model), num_ctx=2048), **changes)


def need(model: StoredModel, **changes: Any) -> int:
    gguf = model.gguf()
    assert gguf is not None
    return runner_estimate(gguf, config_for(model, **changes)).total


def make_scheduler(
    tmp_path: Path, machine: Machine | None = None, farm: Farm | None = None, **env: str
) -> tuple[Scheduler[FakeRunner], Farm, Machine]:
    settings = Settings.from_env({"HOME": str(tmp_path), **env})
    machine = machine or Machine()
    farm = farm or Farm()
    fallbacks = FallbackMemory(tmp_path / "fallbacks.json", "test machine")
    scheduler = Scheduler(settings, machine, fallbacks, runner_factory=farm)
    machine.scheduler = scheduler
    scheduler.start()
    return scheduler, farm, machine


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Held:
    """A request that holds a runner until told to finish."""

    def __init__(
        self, scheduler: Scheduler[FakeRunner], model: StoredModel, config: RunnerConfig, keep_alive: int | None
    ):
        self.got: asyncio.Future[LoadedRunner[FakeRunner]] = asyncio.get_running_loop().create_future()
        self.finish = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._hold(scheduler, model, config, keep_alive))

    async def _hold(
        self, scheduler: Scheduler[FakeRunner], model: StoredModel, config: RunnerConfig, keep_alive: int | None
    ) -> None:
        try:
            async with scheduler.runner(model, config, keep_alive) as loaded:
                self.got.set_result(loaded)
                await self.finish.wait()
        except BaseException as error:
            if not self.got.done():
                self.got.set_exception(error)
            raise

    async def done(self) -> None:
        self.finish.set()
        await self.task


def hold(scheduler: Scheduler[FakeRunner], model: StoredModel, keep_alive: int | None = None, **changes: Any) -> Held:
    return Held(scheduler, model, config_for(model, **changes), keep_alive)


async def use(
    scheduler: Scheduler[FakeRunner], model: StoredModel, keep_alive: int | None = None, **changes: Any
) -> LoadedRunner[FakeRunner]:
    """One request that finishes at once."""
    async with scheduler.runner(model, config_for(model, **changes), keep_alive) as loaded:
        assert loaded.refcount >= 1 and loaded.process.alive
        return loaded


def loaded_paths(scheduler: Scheduler[FakeRunner]) -> list[Path]:
    return [loaded.requested.model_path for loaded in scheduler.loaded()]


# --- loading and reuse ----------------------------------------------------------------------------


def test_defaults_need_no_injection(tmp_path: Path) -> None:
    from pollama.runtime.devices import Hardware
    from pollama.runtime.process import RunnerProcess

    scheduler = Scheduler(Settings.from_env({"HOME": str(tmp_path)}))
    assert isinstance(scheduler.hardware, Hardware)
    assert scheduler.new_runner is RunnerProcess


def test_a_compatible_request_reuses_the_runner(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        first = await use(scheduler, model)
        second = await use(scheduler, model, num_gpu=-1, main_gpu=-1)
        assert first is second
        assert len(farm.starts) == 1 and farm.closes == []
        assert loaded_paths(scheduler) == [model.model_path]
        assert first.refcount == 0 and first.idle.is_set()
        assert first.model is model and first.size == need(model)  # /api/ps: the estimate until the runner says

    run(scenario)


def test_a_runner_reports_its_own_memory(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        farm.memory = (123, 45)
        loaded = await use(scheduler, models())
        assert (loaded.size, loaded.size_vram) == (123, 45)

    run(scenario)


@pytest.mark.parametrize("change", [{"num_ctx": 4096}, {"num_parallel": 2}, {"num_gpu": 0}, {"use_mmap": False}])
def test_a_changed_load_time_option_reloads(
    tmp_path: Path, models: Callable[[], StoredModel], change: dict[str, Any]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        first = await use(scheduler, model)
        second = await use(scheduler, model, **change)
        assert second is not first
        assert first.process.closed and second.process.alive
        assert len(farm.starts) == 2 and farm.closed(model) == 1
        assert second.requested == config_for(model, **change)
        assert [loaded.process for loaded in scheduler.loaded()] == [second.process]

    run(scenario)


def test_a_reload_waits_for_the_requests_on_the_old_runner(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        busy = hold(scheduler, model)
        old = await busy.got
        wanting = asyncio.ensure_future(use(scheduler, model, num_ctx=4096))
        await settle()
        assert not wanting.done() and old.retiring and not old.process.closed
        assert scheduler.loaded() == []  # a retiring runner is shown no more
        await busy.done()
        new = await wanting
        assert old.process.closed and new.process.alive and new.requested.num_ctx == 4096

    run(scenario)


def test_a_runner_that_stopped_answering_is_replaced(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        first = await use(scheduler, model)
        first.process.hung = True
        second = await use(scheduler, model)
        assert second is not first
        assert first.process.killed and first.process.closed
        assert len(farm.starts) == 2

    run(scenario)


def test_launch_carries_the_placement(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        gpu = GpuDevice(0, "GPU-0", "cuda", "Fake GPU", 8 * GIB, 8 * GIB)
        scheduler, farm, _ = make_scheduler(tmp_path, Machine(devices=[gpu]))
        model = models()
        loaded = await use(scheduler, model)
        launch = farm.starts[0]
        assert launch.num_gpu == loaded.placement.layers > 0  # all layers and the output head
        assert loaded.placement.vram == loaded.placement.total
        cpu = await use(scheduler, models(), num_gpu=0)
        assert farm.starts[1].num_gpu == 0 and cpu.placement.vram == 0

    run(scenario)


# --- fitting and eviction -------------------------------------------------------------------------


def test_a_model_too_big_for_the_machine_is_refused(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        model = models()
        available = need(model) - 1
        scheduler, farm, _ = make_scheduler(tmp_path, Machine(total=GIB, available=available))
        with pytest.raises(Failed) as refused:
            await use(scheduler, model)
        assert refused.value.message == (
            f"model requires more system memory ({human_bytes2(need(model))}) "
            f"than is available ({human_bytes2(available)})"
        )
        assert farm.starts == [] and scheduler.runners == {} and scheduler.waiting == 0

    run(scenario)


def test_a_library_the_build_cannot_drive_is_refused(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, Machine(error="OLLAMA_LLM_LIBRARY=rocm but ..."))
        with pytest.raises(Failed, match="OLLAMA_LLM_LIBRARY=rocm"):
            await use(scheduler, models())
        assert farm.starts == []

    run(scenario)


def test_a_model_that_does_not_fit_beside_another_evicts_it(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        room = need(a) + need(b) // 2  # one at a time
        scheduler, farm, _ = make_scheduler(tmp_path, Machine(total=GIB, available=room))
        first = await use(scheduler, a)
        second = await use(scheduler, b)
        assert first.process.closed and second.process.alive
        assert loaded_paths(scheduler) == [b.model_path]

    run(scenario)


def test_models_that_fit_together_stay_together(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        scheduler, farm, _ = make_scheduler(tmp_path, Machine(total=GIB, available=need(a) + need(b)))
        await use(scheduler, a)
        await use(scheduler, b)
        assert farm.closes == [] and sorted(loaded_paths(scheduler)) == sorted([weights(a), weights(b)])

    run(scenario)


def test_memory_held_by_loaded_runners_counts_against_the_total(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        # The OS still says everything is available (it has not caught up); the total minus what runs has not.
        machine = Machine(total=need(a) + need(b) // 2, available=GIB, lagging=True)
        scheduler, farm, _ = make_scheduler(tmp_path, machine)
        first = await use(scheduler, a)
        await use(scheduler, b)
        assert first.process.closed and loaded_paths(scheduler) == [b.model_path]

    run(scenario)


def test_on_a_gpu_a_model_must_fit_wholly_beside_others(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        gpu = GpuDevice(0, "GPU-0", "cuda", "Fake GPU", 8 * GIB, 8 * GIB)
        scheduler, farm, machine = make_scheduler(tmp_path, Machine(devices=[gpu]))
        first = await use(scheduler, a)
        # The GPU now has room for the first model only: the second would be split, so the first goes.
        room = first.placement.vram + GPU_MINIMUM_MEMORY + MIB
        machine.devices = [dataclasses.replace(gpu, total_memory=room)]
        second = await use(scheduler, b)
        assert first.process.closed and second.process.alive
        assert second.placement.vram == second.placement.total

    run(scenario)


def test_idle_runners_are_evicted_before_busy_ones(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b, c = models(), models(), models()
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_LOADED_MODELS="2")
        busy = hold(scheduler, a, keep_alive=1 * MS)  # the shortest keep-alive, but in use
        held = await busy.got
        idle = await use(scheduler, b, keep_alive=10 * MINUTE)
        await use(scheduler, c)
        assert idle.process.closed and not held.process.closed
        assert sorted(loaded_paths(scheduler)) == sorted([weights(a), weights(c)])
        await busy.done()

    run(scenario)


def test_the_shortest_keep_alive_is_evicted_first(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b, c, d = models(), models(), models(), models()
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_LOADED_MODELS="3")
        forever = await use(scheduler, a, keep_alive=FOREVER)
        long = await use(scheduler, b, keep_alive=30 * MINUTE)
        short = await use(scheduler, c, keep_alive=1 * MINUTE)
        await use(scheduler, d, keep_alive=FOREVER)
        assert short.process.closed
        await use(scheduler, models())
        assert long.process.closed and not forever.process.closed

    run(scenario)


def test_max_loaded_models_is_a_limit(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_LOADED_MODELS="1")
        assert scheduler.max_runners == 1
        a, b = models(), models()
        first = await use(scheduler, a)
        await use(scheduler, b)
        assert first.process.closed and loaded_paths(scheduler) == [b.model_path]

    run(scenario)


def test_the_automatic_limit_is_three_per_gpu(tmp_path: Path) -> None:
    gpus = [GpuDevice(i, f"GPU-{i}", "cuda", "Fake GPU", 8 * GIB, 8 * GIB) for i in range(2)]
    assert make_scheduler(tmp_path)[0].max_runners == 3
    assert make_scheduler(tmp_path, Machine(devices=gpus))[0].max_runners == 6


def test_at_the_limit_a_new_model_waits_for_a_busy_one(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_LOADED_MODELS="1")
        busy = hold(scheduler, a)
        held = await busy.got
        wanting = asyncio.ensure_future(use(scheduler, b))
        await settle()
        assert not wanting.done() and len(farm.starts) == 1 and not held.process.closed
        await busy.done()
        loaded = await wanting
        assert held.process.closed and loaded.requested.model_path == b.model_path

    run(scenario)


def test_out_of_memory_while_loading_unloads_everything_and_retries_once(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        a, b = models(), models()
        scheduler, farm, _ = make_scheduler(tmp_path)
        first = await use(scheduler, a)
        farm.error = "cudaMalloc failed: out of memory"
        with pytest.raises(Failed, match="out of memory"):
            await use(scheduler, b)
        assert first.process.closed and scheduler.runners == {}
        assert [config.model_path for config in farm.starts] == [a.model_path, b.model_path, b.model_path]

    run(scenario)


# --- queueing and slots ---------------------------------------------------------------------------


def test_requests_beyond_num_parallel_wait_for_a_slot(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        first, second = hold(scheduler, model, num_parallel=2), hold(scheduler, model, num_parallel=2)
        loaded = await first.got
        assert await second.got is loaded and loaded.slots.in_use == 2
        third = hold(scheduler, model, num_parallel=2)
        await settle()
        assert not third.got.done() and scheduler.waiting == 1 and loaded.slots.waiting == 1
        await first.done()
        assert await third.got is loaded and scheduler.waiting == 0
        await second.done()
        await third.done()
        assert loaded.refcount == 0 and loaded.slots.in_use == 0 and len(farm.starts) == 1

    run(scenario)


def test_a_full_queue_is_busy(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_QUEUE="1")
        model = models()
        running = hold(scheduler, model)
        await running.got
        waiting = hold(scheduler, model)
        await settle()
        assert scheduler.waiting == 1
        with pytest.raises(Busy) as refused:
            await use(scheduler, model)
        assert refused.value.message == BUSY == "server busy, please try again.  maximum pending requests exceeded"
        await running.done()
        await waiting.got
        await waiting.done()
        assert scheduler.waiting == 0
        await use(scheduler, model)  # room again

    run(scenario)


def test_requests_waiting_for_a_load_count_towards_the_queue(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_MAX_QUEUE="1")
        farm.load_delay = 0.05
        a, b, c = models(), models(), models()
        loading = asyncio.ensure_future(use(scheduler, a))  # holds the load lock: not waiting
        await settle()
        behind = asyncio.ensure_future(use(scheduler, b))
        await settle()
        assert scheduler.waiting == 1
        with pytest.raises(Busy, match="maximum pending requests exceeded"):
            await use(scheduler, c)
        await asyncio.gather(loading, behind)
        assert scheduler.waiting == 0 and len(farm.starts) == 2

    run(scenario)


def test_a_waiting_request_whose_client_leaves_leaves_the_queue(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        running = hold(scheduler, model)
        loaded = await running.got
        waiting = hold(scheduler, model)
        await settle()
        assert scheduler.waiting == 1
        waiting.task.cancel()
        await settle()
        assert scheduler.waiting == 0 and loaded.slots.waiting == 0 and loaded.refcount == 1
        await running.done()
        assert loaded.refcount == 0

    run(scenario)


def test_a_client_that_leaves_mid_load_leaves_the_runner_for_the_next(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        farm.load_delay = 0.05
        model = models()
        leaving = asyncio.ensure_future(use(scheduler, model))
        await settle()
        leaving.cancel()
        await asyncio.sleep(0.1)
        assert [loaded.process for loaded in scheduler.loaded()] == farm.runners
        assert farm.runners[0].alive and not scheduler._load_lock.locked()
        farm.load_delay = 0
        await use(scheduler, model)
        assert len(farm.starts) == 1

    run(scenario)


# --- keep-alive and unloading ---------------------------------------------------------------------


def test_a_runner_unloads_when_its_keep_alive_runs_out(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        loaded = await use(scheduler, models(), keep_alive=50 * MS)
        assert loaded.expires_at is not None and loaded.process.alive
        await asyncio.sleep(0.02)
        assert loaded.process.alive and scheduler.loaded() == [loaded]
        await asyncio.sleep(0.08)
        assert loaded.process.closed and scheduler.runners == {}

    run(scenario)


def test_the_keep_alive_timer_starts_when_the_last_request_ends(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        busy = hold(scheduler, models(), keep_alive=30 * MS)
        loaded = await busy.got
        await asyncio.sleep(0.06)
        assert loaded.process.alive and loaded.timer is None
        await busy.done()
        assert loaded.timer is not None
        await asyncio.sleep(0.06)
        assert loaded.process.closed

    run(scenario)


def test_keep_alive_zero_unloads_after_the_request(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        loaded = await use(scheduler, models(), keep_alive=0)
        await settle()
        assert loaded.process.closed and scheduler.runners == {}

    run(scenario)


def test_the_default_keep_alive_comes_from_the_settings(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, OLLAMA_KEEP_ALIVE="50ms")
        loaded = await use(scheduler, models())
        assert loaded.keep_alive == 50 * MS
        await asyncio.sleep(0.1)
        assert loaded.process.closed

    run(scenario)


def test_keep_alive_forever_never_expires(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        loaded = await use(scheduler, models(), keep_alive=FOREVER)
        assert loaded.expires_at is None and loaded.timer is None
        await asyncio.sleep(0.05)
        assert loaded.process.alive

    run(scenario)


def test_a_later_request_sets_the_keep_alive(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        loaded = await use(scheduler, model, keep_alive=30 * MS)
        await use(scheduler, model, keep_alive=FOREVER)
        await asyncio.sleep(0.06)
        assert loaded.process.alive and loaded.keep_alive == FOREVER
        await use(scheduler, model, keep_alive=0)
        await settle()
        assert loaded.process.closed

    run(scenario)


def test_unload_stops_an_idle_runner_now(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        loaded = await use(scheduler, model, keep_alive=FOREVER)
        await scheduler.unload(str(weights(model)))
        assert loaded.process.closed and scheduler.runners == {}
        await scheduler.unload(str(weights(model)))  # nothing loaded: nothing to do
        await scheduler.unload(None)

    run(scenario)


def test_unload_stops_a_busy_runner_when_its_requests_end(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        busy = hold(scheduler, model, keep_alive=FOREVER)
        loaded = await busy.got
        await scheduler.unload(str(weights(model)))
        assert loaded.process.alive and loaded.keep_alive == 0
        await busy.done()
        await settle()
        assert loaded.process.closed and scheduler.runners == {}

    run(scenario)


def test_shutdown_closes_every_runner(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        for _ in range(3):
            await use(scheduler, models(), keep_alive=FOREVER)
        await scheduler.shutdown()
        assert len(farm.closes) == 3 and all(runner.closed for runner in farm.runners)
        assert scheduler.runners == {}

    run(scenario)


# --- crashes and the fallback ladder --------------------------------------------------------------


def test_a_crash_while_loading_walks_down_the_fallback_ladder(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        farm.crashes = 2
        loaded = await use(scheduler, model, keep_alive=0)
        assert len(farm.starts) == 3 and loaded.fallback_steps == 2
        assert [(c.extra_buffers, c.use_mmap, c.flash_attention) for c in farm.starts] == [
            (True, True, None),
            (False, True, None),
            (False, False, None),
        ]
        assert loaded.requested == config_for(model)  # compared with later requests as asked, not as launched
        assert scheduler.fallbacks.steps(config_for(model).model_path) == 2
        await settle()
        await use(scheduler, model)  # remembered: the next load starts where the last one got to
        assert len(farm.starts) == 4 and not farm.starts[3].extra_buffers and not farm.starts[3].use_mmap

    run(scenario)


def test_a_crash_in_every_configuration_fails(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        farm.crashes = 100
        with pytest.raises(Failed) as failed:
            await use(scheduler, model)
        assert failed.value.message.startswith("llama runner process has terminated: signal: sigsegv while loading")
        assert "the runner's last output: ggml_abort" in failed.value.message
        assert len(farm.starts) == len(LADDER) + 1 and scheduler.runners == {}
        with pytest.raises(Failed):
            await use(scheduler, model)
        assert len(farm.starts) == len(LADDER) + 2  # the next try starts at the safest configuration

    run(scenario)


def test_a_load_error_is_not_retried(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        farm.error = "unknown model architecture: 'mamba9'"
        with pytest.raises(Failed) as failed:
            await use(scheduler, models())
        assert failed.value.message == "unknown model architecture: 'mamba9'"
        assert len(farm.starts) == 1 and scheduler.runners == {} and not scheduler._load_lock.locked()

    run(scenario)


def test_a_crash_on_the_first_decode_makes_the_next_load_safer(
    tmp_path: Path, models: Callable[[], StoredModel]
) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path)
        model = models()
        busy = hold(scheduler, model)
        loaded = await busy.got
        loaded.process.crash = "signal: sigabrt"
        loaded.process.killed = True  # it died
        await busy.done()
        await settle()
        assert loaded.fallback_steps == 1 and scheduler.fallbacks.steps(config_for(model).model_path) == 1
        assert scheduler.runners == {}
        again = await use(scheduler, model)
        assert again.fallback_steps == 1 and not farm.starts[-1].extra_buffers

    run(scenario)
