"""Prometheus metrics and the request log line (beyond Ollama): README "Metrics and request logs".

``PrometheusMetrics`` keeps every metric of one app in a registry of its own (several apps in one
process do not clash): counters and histograms for what happens (``pollama.metrics.Metrics``'s events,
which the service and scheduler report), and a collector that reads what is (the queue, the loaded
models) from the scheduler at scrape time, so no gauge can drift from the truth. ``RequestMetrics``,
a pure ASGI middleware, counts each request by method, route template and status, times it until its
last byte is sent, and with ``POLLAMA_LOG_REQUESTS`` logs one line for it: never a body, a query
string or a header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pollama.gocompat.durations import format_go_duration
from pollama.metrics import Metrics
from pollama.runtime.scheduler import Scheduler

__all__ = ["MODEL_STATE", "OTHER", "PrometheusMetrics", "RequestMetrics", "method_label", "note_model", "route_of"]

log = logging.getLogger(__name__)

OTHER = "other"  # the route label of a request no route served, and the method label of an unusual method
MODEL_STATE = "pollama.model"  # where a route's body reader leaves the request's model name for the log line
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_LOGGED_CHARS = 120  # of a raw path or a model name in the log line
# Seconds. Answers take from milliseconds (a list) to many minutes (a long generation, a pull).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


class PrometheusMetrics(Metrics):
    """The events of ``pollama.metrics`` as Prometheus metrics, in ``registry`` (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pollama_http_requests", "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "pollama_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer (a stream's too), by route template.",
            ["route"], buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token_seconds = Histogram(
            "pollama_time_to_first_token_seconds",
            "Time from a generate or chat request's arrival (queueing and loading included) to its first token.",
            ["model"], buckets=_FIRST_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "pollama_prompt_tokens", "Prompt tokens of finished answers and embeddings (prompt_eval_count).",
            ["model"], registry=r,
        )  # fmt: skip
        self.generated_tokens = Counter(
            "pollama_generated_tokens", "Tokens generated in finished answers (eval_count).", ["model"], registry=r
        )
        self.loads = Counter("pollama_model_loads", "Runners that finished loading a model.", ["model"], registry=r)
        self.unloads = Counter(
            "pollama_model_unloads", "Runners that left memory, for any reason (a crash included).", ["model"],
            registry=r,
        )  # fmt: skip
        self.crashes = Counter(
            "pollama_runner_crashes",
            "Runners that died without being asked to: a crash while loading (each attempt), or later.",
            ["model"], registry=r,
        )  # fmt: skip

    def watch(self, scheduler: Scheduler[Any]) -> None:
        """Report ``scheduler``'s queue and loaded models at each scrape."""
        self.registry.register(SchedulerCollector(scheduler))

    # --- pollama.metrics.Metrics ------------------------------------------------------------------

    def first_token(self, model: str, seconds: float) -> None:
        self.first_token_seconds.labels(model).observe(seconds)

    def tokens(self, model: str, *, prompt: int, generated: int) -> None:
        self.prompt_tokens.labels(model).inc(prompt)
        self.generated_tokens.labels(model).inc(generated)

    def model_loaded(self, model: str) -> None:
        self.loads.labels(model).inc()

    def model_unloaded(self, model: str) -> None:
        self.unloads.labels(model).inc()

    def runner_crashed(self, model: str) -> None:
        self.crashes.labels(model).inc()

    # --- the HTTP edge ----------------------------------------------------------------------------

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method_label(method), route, str(status)).inc()
        self.request_duration.labels(route).observe(seconds)


class SchedulerCollector(Collector):
    """The gauges, read from the scheduler when scraped (on the event loop, where the scheduler lives)."""

    def __init__(self, scheduler: Scheduler[Any]) -> None:
        self.scheduler = scheduler

    def describe(self) -> Iterable[Metric]:
        return _gauges()

    def collect(self) -> Iterable[Metric]:
        queue, loaded, memory = _gauges()
        queue.add_metric([], self.scheduler.waiting)
        runners = self.scheduler.loaded()
        loaded.add_metric([], len(runners))
        models: dict[str, tuple[int, int]] = {}  # by name: two runners of one name (weights replaced) add up
        for runner in runners:
            size, vram = models.get(runner.model.short_name, (0, 0))
            models[runner.model.short_name] = (size + runner.size, vram + runner.size_vram)
        for model, (size, vram) in sorted(models.items()):
            memory.add_metric([model, "gpu"], vram)
            memory.add_metric([model, "cpu"], max(0, size - vram))
        return [queue, loaded, memory]


def _gauges() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "pollama_queue_depth", "Requests waiting for a model load or a runner slot (OLLAMA_MAX_QUEUE bounds it)."
        ),
        GaugeMetricFamily("pollama_loaded_models", "Runners in memory, as /api/ps lists them."),
        GaugeMetricFamily(
            "pollama_loaded_model_memory_bytes",
            "Memory a loaded model holds, as /api/ps reports it: on GPUs (size_vram) and in system memory (the rest).",
            labels=["model", "processor"],
        ),
    )


def method_label(method: str) -> str:
    """The method as a label: the usual ones, anything else ``other`` (a client may send any token)."""
    return method if method in _METHODS else OTHER


def route_of(scope: Scope) -> str | None:
    """The path template of the route that served ``scope`` (``/api/blobs/{digest}``), once it was routed.

    The router leaves its route in the scope, also for a method the route does not take (a 405). None:
    no route serves the path (a 404), or a middleware answered before routing (a 403, a 401).
    """
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def note_model(scope: MutableMapping[str, Any], name: object) -> None:
    """Remember the request body's model name for the request log line (a body reader calls this)."""
    if isinstance(name, str) and name:
        state = scope.get("state")
        if isinstance(state, dict):
            state[MODEL_STATE] = name


class RequestMetrics:
    """Counts and times every HTTP request; with ``log_requests`` also logs one line for each at INFO.

    It should be the outermost middleware, so that requests another middleware answers (403, 413, 401)
    count too.
    """

    def __init__(self, app: ASGIApp, *, metrics: PrometheusMetrics | None, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.metrics is None and not self.log_requests):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if not isinstance(scope.get("state"), dict):
            scope["state"] = {}  # shared with the routes (request.state) even where a middleware copies the scope
        status: int | None = None
        finished: float | None = None

        async def counting_send(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = time.perf_counter()

        failed = False
        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            failed = True
            raise
        finally:
            ended = finished if finished is not None else time.perf_counter()
            self._done(scope, status if status is not None else (500 if failed else 499), ended - started)

    def _done(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_of(scope)
        if self.metrics is not None:
            self.metrics.request_done(scope["method"], route or OTHER, status, seconds)
        if self.log_requests:
            log.info("request %s", " ".join(_log_fields(scope, route, status, seconds)))


def _log_fields(scope: Scope, route: str | None, status: int, seconds: float) -> Iterator[str]:
    """``method=POST route=/api/chat status=200 duration=1.2s client=127.0.0.1 model=smol``: no query, no body."""
    yield f"method={_clip(str(scope['method']))}"
    yield f"route={route}" if route is not None else f"path={_clip(str(scope.get('path', '')))}"
    yield f"status={status}"
    yield f"duration={format_go_duration(int(seconds * 1e9))}"
    client = scope.get("client")
    yield f"client={client[0] if client else '-'}"
    state = scope.get("state")
    model = state.get(MODEL_STATE) if isinstance(state, dict) else None
    if isinstance(model, str):
        yield f"model={_clip(model)}"


def _clip(text: str) -> str:
    text = text.replace(" ", "%20")  # one field per space-separated word
    return text if len(text) <= _LOGGED_CHARS else text[:_LOGGED_CHARS] + "..."
