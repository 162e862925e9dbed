"""Spawning a runner subprocess and talking to it.

One reader task owns the runner's stdout and routes each event to the request it belongs to;
many requests stream concurrently over the one pipe. When the runner dies, every request still
waiting on it ends with an error and ``alive`` turns false, so the scheduler starts a fresh one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pollama.errors import Failed, InvalidRequest, PollamaError
from pollama.runner import messages as m
from pollama.runner import protocol

__all__ = ["RunnerConfig", "RunnerCrashed", "RunnerError", "RunnerProcess"]

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer", m.EmbedResult, m.TokensResult, m.CountResult, m.ContentResult, m.HealthReport)

_STDERR_LINES = 40
_CRASH_DETAIL_LINES = 3
# Signals a process gets from its own faults (not from the OOM killer or a user's kill).
_CRASH_SIGNALS: dict[int, str] = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGABRT: "aborted",
    signal.SIGFPE: "floating-point exception",
}


def _runner_environment() -> dict[str, str]:
    # CUDA numbers devices fastest-first unless told otherwise; nvidia-smi, which planned the placement,
    # numbers them by PCI bus. The runner inherits everything else (CUDA_VISIBLE_DEVICES included).
    return {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


class RunnerError(Failed):
    """The runner could not be started, or failed a request for a reason of its own."""


class RunnerCrashed(RunnerError):
    """The runner died of a crash signal while loading or before any decode of its had finished.

    Nothing a request did can be blamed yet: the configuration crashes on this machine, and a safer
    one may not (``runtime.fallback``).
    """

    def __init__(self, message: str, cause: str, output: str):
        super().__init__(message)
        self.cause = cause  # "signal: sigsegv (segmentation fault)"
        self.output = output  # the runner's last lines, " | "-joined


@dataclass(frozen=True)
class RunnerConfig:
    """Everything fixed when a runner starts; a request needing other values needs another runner."""

    model_path: Path
    num_ctx: int
    num_parallel: int = 1
    num_batch: int = 512
    num_thread: int = 1
    num_gpu: int = -1  # layers to offload; -1: as many as fit (what a request asks; a launch has a count)
    main_gpu: int = -1  # -1: the scheduler's choice
    tensor_split: tuple[float, ...] = ()
    use_mmap: bool = True
    flash_attention: bool | None = None
    kv_cache_type: str = "f16"
    embedding: bool = False
    extra_buffers: bool = True  # repacked CPU weight layouts (a fallback turns them off)
    projector_path: Path | None = None  # a vision projector loaded beside the model
    adapter_paths: tuple[Path, ...] = ()  # LoRA adapters applied at load (another list: another runner)
    rpc_servers: tuple[str, ...] = ()  # ggml-rpc-server endpoints the layers are split over (docs/rpc.md)
    draft_tokens: int = 0  # draft tokens a step, at most (speculative decoding; 0: off)
    draft_model_path: Path | None = None  # the model's DRAFT layer, which makes them; None: n-gram drafts

    def arguments(self) -> list[str]:
        flash = {None: "auto", True: "on", False: "off"}[self.flash_attention]
        args = [
            "--model", str(self.model_path),
            "--ctx-size", str(self.num_ctx),
            "--parallel", str(self.num_parallel),
            "--batch-size", str(self.num_batch),
            "--threads", str(self.num_thread),
            "--gpu-layers", str(self.num_gpu),
            "--main-gpu", str(max(0, self.main_gpu)),
            "--flash-attn", flash,
            "--kv-cache-type", self.kv_cache_type,
        ]  # fmt: skip
        if self.tensor_split:
            args += ["--tensor-split", ",".join(f"{part:g}" for part in self.tensor_split)]
        if not self.use_mmap:
            args.append("--no-mmap")
        if self.embedding:
            args.append("--embedding")
        if not self.extra_buffers:
            args.append("--no-extra-buffers")
        if self.projector_path is not None:
            args += ["--projector", str(self.projector_path)]
        for adapter in self.adapter_paths:
            args += ["--adapter", str(adapter)]
        if self.rpc_servers:
            args += ["--rpc", ",".join(self.rpc_servers)]
        if self.draft_tokens:
            args += ["--draft-tokens", str(self.draft_tokens)]
        if self.draft_model_path is not None:
            args += ["--draft-model", str(self.draft_model_path)]
        return args


class RunnerProcess:
    def __init__(self, config: RunnerConfig):
        self.config = config
        self.info: m.Ready | None = None  # what the runner said when its model was loaded
        self._process: asyncio.subprocess.Process | None = None
        self._requests: dict[str, asyncio.Queue[m.Event]] = {}
        self._ids = itertools.count(1)
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._ready: asyncio.Future[m.Ready] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: str | None = None
        self._load_error: m.LoadFailed | None = None
        self._decoded = False  # some decode finished: a crash from now on is no start-up fault
        self._crash: str | None = None  # the cause, when it died as RunnerCrashed describes
        self._closing: asyncio.Future[None] | None = None
        self._lines_read = 0  # every line from the runner, fragments included: it shows a busy runner alive

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._failure is None

    @property
    def context_length(self) -> int:
        return self.info.n_ctx if self.info is not None else self.config.num_ctx

    @property
    def memory(self) -> tuple[int, int] | None:
        """``(total, on GPUs)`` bytes as llama.cpp reported them at load; None if it did not."""
        if self.info is None or not self.info.total_bytes:
            return None
        return self.info.total_bytes, self.info.vram_bytes

    def take_crash(self) -> str | None:
        """The cause, once, if it died as ``RunnerCrashed`` describes (a start-up crash); later calls get None."""
        crash, self._crash = self._crash, None
        return crash

    async def start(self, timeout: float | None) -> None:
        """Spawn the runner and wait until its model is loaded; RunnerError if it cannot be."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pollama.runner", *self.config.arguments(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=protocol.LINE_LIMIT, start_new_session=True, env=_runner_environment(),
        )  # fmt: skip
        self._ready = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.create_task(self._read_events()), asyncio.create_task(self._read_stderr())]
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            await self.close()
            raise RunnerError("timed out waiting for llama runner to start") from None
        except (RunnerError, InvalidRequest):  # InvalidRequest: the model's adapter does not fit it
            await self.close()
            raise

    async def completion(self, request: m.CompletionRequest) -> AsyncGenerator[m.TokenEvent | m.DoneEvent]:
        """Stream a completion's token events, ending with its done event.

        Leaving the iteration early (a client gone, a task cancelled) cancels the request in the
        runner, which frees its slot before the next decode step.
        """
        request_id, events = self._open()
        finished = False
        try:
            self._send(request_id, request)
            while True:
                event = await events.get()
                if isinstance(event, m.ErrorEvent):
                    finished = True
                    raise _error_of(event)
                if not isinstance(event, m.TokenEvent | m.DoneEvent):
                    finished = True
                    raise RunnerError(f"llama runner answered a completion with a {event.KIND} event")
                finished = isinstance(event, m.DoneEvent)
                yield event
                if finished:
                    return
        finally:
            self._requests.pop(request_id, None)
            if not finished and self.alive:
                self._send(request_id, m.CancelRequest())

    async def embed(self, content: str, *, truncate: bool = True) -> m.EmbedResult:
        return await self._call(m.EmbedRequest(content, truncate), m.EmbedResult)

    async def tokenize(self, content: str, *, add_special: bool = False) -> list[int]:
        return (await self._call(m.TokenizeRequest(content, add_special), m.TokensResult)).tokens

    async def count_tokens(self, content: str, limit: int) -> int:
        """How many tokens ``content`` has, counting no further than ``limit``: cheap for a text of any length."""
        return (await self._call(m.CountRequest(content, limit), m.CountResult)).count

    async def detokenize(self, tokens: list[int]) -> str:
        return (await self._call(m.DetokenizeRequest(tuple(tokens)), m.ContentResult)).content

    async def responds(self, timeout: float) -> bool:
        """Whether the runner lives: it answers a health ping within ``timeout`` seconds, or at least talks.

        The runner answers pings from its command reader, apart from its decode loop, so a long decode
        step does not hold the answer up; on a loaded machine it can still come late, behind a large
        message. A runner heard from meanwhile is busy, not dead: only one whose process ended, or that
        sent nothing at all for ``timeout`` seconds, fails.
        """
        heard = self._lines_read
        try:
            await asyncio.wait_for(self._call(m.HealthRequest(), m.HealthReport), timeout)
        except TimeoutError:
            return self.alive and self._lines_read > heard
        except RunnerError:
            return False
        return True

    async def close(self, grace: float = 5.0) -> None:
        """Ask the runner to exit, kill it if it does not, and fail whatever still waits on it.

        Safe to call from several places at once: they all wait for the one shutdown.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shut_down(grace))
        await asyncio.shield(self._closing)

    async def _shut_down(self, grace: float) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            try:
                self._send("", m.ShutdownRequest())
                if process.stdin is not None:
                    process.stdin.close()
                await asyncio.wait_for(process.wait(), grace)
            except (TimeoutError, ConnectionError, RuntimeError, RunnerError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        self._fail_all("llama runner was stopped")

    def kill(self) -> None:
        self._failure = self._failure or "llama runner was killed"
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)

    # --- plumbing ---------------------------------------------------------------------------------

    def _open(self) -> tuple[str, asyncio.Queue[m.Event]]:
        if not self.alive:
            raise RunnerError(self._failure or "llama runner is not running")
        request_id = str(next(self._ids))
        queue: asyncio.Queue[m.Event] = asyncio.Queue()
        self._requests[request_id] = queue
        return request_id, queue

    async def _call(self, request: m.Request, answer: type[_Answer]) -> _Answer:
        request_id, events = self._open()
        try:
            self._send(request_id, request)
            event = await events.get()
        finally:
            self._requests.pop(request_id, None)
        if isinstance(event, m.ErrorEvent):
            raise _error_of(event)
        if not isinstance(event, answer):
            raise RunnerError(f"llama runner answered a {request.KIND} request with a {event.KIND} event")
        return event

    def _send(self, request_id: str, request: m.Request) -> None:
        assert self._process is not None and self._process.stdin is not None
        if self._process.stdin.is_closing():
            raise RunnerError(self._failure or "llama runner is not running")
        message = request.to_wire() if isinstance(request, m.ShutdownRequest) else m.with_id(request_id, request)
        self._process.stdin.writelines(protocol.encode(message))

    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        decoder = protocol.Decoder()
        try:
            while line := await self._process.stdout.readline():
                self._lines_read += 1
                if (message := decoder.feed(line)) is not None:
                    self._dispatch(*m.decode_event(message))
        except (ValueError, asyncio.LimitOverrunError) as error:
            log.error("runner %s sent an unreadable message: %s", self.pid, error)
            self.kill()
        returncode = await self._process.wait()
        with contextlib.suppress(TimeoutError):  # the reason should name the cause the runner printed
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), 1.0)
        if (load_error := self._load_error) is not None:
            if 400 <= load_error.status < 500:  # the runner's own words are the whole story
                self._fail_all(load_error.error, load_error.status)
            else:
                self._fail_all(self._with_detail(f"llama runner process has terminated: {load_error.error}"))
        if _crashed(returncode) and not self._decoded:
            self._crash = _describe_status(returncode)
        self._fail_all(self._exit_reason(returncode))

    def _dispatch(self, request_id: str | None, event: m.Event) -> None:
        if isinstance(event, m.Ready):
            if self._ready and not self._ready.done():
                self._ready.set_result(event)
        elif isinstance(event, m.LoadFailed):
            self._load_error = event
        elif request_id is not None and (queue := self._requests.get(request_id)) is not None:
            self._decoded = self._decoded or isinstance(event, m.TokenEvent | m.DoneEvent | m.EmbedResult)
            queue.put_nowait(event)

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while True:
            try:
                line = await self._process.stderr.readline()
            except ValueError:  # a line past the protocol's limit: dropped, and reading goes on
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            log.debug("runner %s: %s", self.pid, text)

    def _fail_all(self, reason: str, status: int = 500) -> None:
        if self._failure is None:
            self._failure = reason
        failure = m.ErrorEvent(reason, status)
        if self._crash is not None:
            failure = m.ErrorEvent(reason, 500, crash=self._crash, output=self._last_output())
        if self._ready and not self._ready.done():
            self._ready.set_exception(_error_of(failure))
        for queue in self._requests.values():
            queue.put_nowait(failure)

    def _exit_reason(self, returncode: int) -> str:
        message = f"llama runner process has terminated: {_describe_status(returncode)}"
        if _crashed(returncode):
            # A crash leaves no error line to quote; what the runner printed last says where it was.
            output = self._last_output()
            return f"{message}; the runner's last output: {output}" if output else message
        return self._with_detail(message)

    def _last_output(self) -> str:
        return " | ".join([text.strip() for text in self._stderr if text.strip()][-_CRASH_DETAIL_LINES:])

    def _with_detail(self, message: str) -> str:
        detail = self._last_error_line()
        return f"{message}: {detail}" if detail and detail not in message else message

    def _last_error_line(self) -> str:
        """The most telling line llama.cpp printed before failing."""
        for text in reversed(self._stderr):
            if "error loading model: " in text:
                return text.split("error loading model: ", 1)[1]
        for text in reversed(self._stderr):
            if "error" in text.lower() or "failed" in text.lower():
                return text.split(": ", 1)[-1] if text.startswith(("llama_", "gguf_")) else text
        return ""


def _crashed(returncode: int) -> bool:
    return returncode < 0 and -returncode in _CRASH_SIGNALS


def _describe_status(returncode: int) -> str:
    if returncode >= 0:
        return f"exit status {returncode}"
    number = -returncode
    try:
        name = f"signal: {signal.Signals(number).name.lower()}"
    except ValueError:
        name = f"signal: {number}"
    meaning = _CRASH_SIGNALS.get(number)
    return f"{name} ({meaning})" if meaning else name


def _error_of(event: m.ErrorEvent) -> PollamaError:
    if event.crash is not None:
        return RunnerCrashed(event.error, event.crash, event.output)
    if 400 <= event.status < 500:  # the request's input (an unknown token id, a prompt too long)
        return InvalidRequest(event.error)
    return RunnerError(event.error)
