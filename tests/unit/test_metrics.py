"""The metrics' pure parts in process: route labels and the request log line (an app without models), the
scheduler's events and gauges (tests/unit/test_scheduler_rules.py's fake runners), first tokens and token
counts (a fake runner's events). tests/integration/test_metrics.py scrapes a real server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pollama.config import Settings
from pollama.metrics import NO_METRICS, Metrics
from pollama.runner.messages import CompletionRequest, DoneEvent, TokenEvent
from pollama.runtime.devices import GIB
from pollama.runtime.process import RunnerProcess
from pollama.runtime.scheduler import Scheduler
from pollama.server.app import create_app
from pollama.server.metrics import OTHER, PrometheusMetrics, method_label, route_of
from pollama.service.running import complete
from pollama.store.models import StoredModel
from tests.unit.test_scheduler_rules import (
    FakeRunner,
    Farm,
    Machine,
    hold,
    make_scheduler,
    run,
    settle,
    use,
)

pytestmark = pytest.mark.timeout(30)

SECRET = "correct-horse-battery-staple"  # a prompt, a query string, a header: never in a log line


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


# --- requests: route labels and the log line ------------------------------------------------------


@pytest.fixture
def app_client(tmp_path: Path) -> Callable[..., TestClient]:
    def make(*, log_requests: bool = False) -> TestClient:
        app = create_app(Settings(models=tmp_path / "models", home=tmp_path / "home", log_requests=log_requests))
        return TestClient(app, base_url="http://localhost")

    return make


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests(samples: dict, method: str, route: str, status: int) -> float:
    labels = tuple(sorted({"method": method, "route": route, "status": str(status)}.items()))
    return samples.get(("pollama_http_requests_total", labels), 0.0)


def test_requests_are_counted_by_route_template_never_by_path(app_client: Callable[..., TestClient]) -> None:
    client = app_client()
    digest = "sha256:" + "0" * 64
    assert client.get("/api/version").status_code == 200
    assert client.head(f"/api/blobs/{digest}").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.delete("/api/version").status_code == 405
    assert client.post("/api/chat", json={}).status_code == 400
    assert client.request("BREW", "/api/version").status_code == 405
    samples = scrape(client)
    assert requests(samples, "GET", "/api/version", 200) == 1
    assert requests(samples, "HEAD", "/api/blobs/{digest}", 404) == 1
    assert requests(samples, "GET", OTHER, 404) == 1
    assert requests(samples, "DELETE", "/api/version", 405) == 1
    assert requests(samples, "POST", "/api/chat", 400) == 1
    assert requests(samples, OTHER, "/api/version", 405) == 1
    assert not any(digest in str(labels) or "/no/such" in str(labels) for _name, labels in samples)
    duration = ("pollama_http_request_duration_seconds_count", (("route", "/api/version"),))
    assert samples[duration] == 3
    assert scrape(client)[
        ("pollama_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))
    ]


def test_each_app_counts_for_itself(app_client: Callable[..., TestClient]) -> None:
    first, second = app_client(), app_client()
    first.get("/api/version")
    assert requests(scrape(first), "GET", "/api/version", 200) == 1
    assert requests(scrape(second), "GET", "/api/version", 200) == 0


def test_route_and_method_labels() -> None:
    class Route:
        path = "/api/blobs/{digest}"

    assert route_of({"type": "http", "route": Route()}) == "/api/blobs/{digest}"
    assert route_of({"type": "http"}) is None
    assert [method_label(m) for m in ("GET", "POST", "OPTIONS", "BREW", "get")] == [
        "GET",
        "POST",
        "OPTIONS",
        OTHER,
        OTHER,
    ]


def test_the_request_log_line_is_opt_in_and_holds_no_secret(
    app_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pollama.server.metrics")
    quiet = app_client()
    quiet.get("/api/version")
    assert not [r for r in caplog.records if r.name == "pollama.server.metrics"]

    client = app_client(log_requests=True)
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": SECRET}]}
    assert client.post("/api/chat", json=body, headers={"Authorization": f"Bearer {SECRET}"}).status_code == 404
    assert client.get(f"/api/tags?key={SECRET}").status_code == 200
    assert client.get(f"/nowhere/{'x' * 300}").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "pollama.server.metrics"]
    assert len(lines) == 3, lines
    chat, tags, nowhere = lines
    assert chat.startswith("request method=POST route=/api/chat status=404 duration=")
    assert chat.endswith(" client=testclient model=no-such-model")
    assert tags.startswith("request method=GET route=/api/tags status=200 ") and "model=" not in tags
    assert nowhere.startswith("request method=GET path=/nowhere/xxx") and "..." in nowhere and len(nowhere) < 250
    assert not any(SECRET in line for line in lines)


# --- the scheduler's events and gauges --------------------------------------------------------------


def watched(tmp_path: Path, farm: Farm | None = None) -> tuple[PrometheusMetrics, Scheduler[FakeRunner], Farm]:
    scheduler, farm, _machine = make_scheduler(tmp_path, Machine(), farm)
    metrics = PrometheusMetrics()
    scheduler.metrics = metrics
    metrics.watch(scheduler)
    return metrics, scheduler, farm


def test_loads_unloads_and_the_loaded_models_gauge(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    farm = Farm()
    farm.memory = (3 * GIB, 1 * GIB)
    metrics, scheduler, _farm = watched(tmp_path, farm)
    model = models()
    name = model.short_name

    async def test() -> None:
        assert value(metrics, "pollama_loaded_models") == 0
        await use(scheduler, model)
        assert value(metrics, "pollama_model_loads_total", model=name) == 1
        assert value(metrics, "pollama_loaded_models") == 1
        assert value(metrics, "pollama_loaded_model_memory_bytes", model=name, processor="gpu") == 1 * GIB
        assert value(metrics, "pollama_loaded_model_memory_bytes", model=name, processor="cpu") == 2 * GIB
        await use(scheduler, model)
        assert value(metrics, "pollama_model_loads_total", model=name) == 1  # the same runner again
        await scheduler.unload(str(model.model_path))
        assert value(metrics, "pollama_model_unloads_total", model=name) == 1
        assert value(metrics, "pollama_loaded_models") == 0
        assert (
            metrics.registry.get_sample_value("pollama_loaded_model_memory_bytes", {"model": name, "processor": "gpu"})
            is None
        )
        assert value(metrics, "pollama_runner_crashes_total", model=name) == 0

    run(test)


def test_the_queue_depth_counts_requests_waiting_for_a_slot(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    metrics, scheduler, _farm = watched(tmp_path)
    model = models()

    async def test() -> None:
        first = hold(scheduler, model)
        await first.got
        second = hold(scheduler, model)
        third = hold(scheduler, model)
        await settle()
        assert value(metrics, "pollama_queue_depth") == 2
        await first.done()
        await second.got
        assert value(metrics, "pollama_queue_depth") == 1
        await second.done()
        await third.done()
        assert value(metrics, "pollama_queue_depth") == 0

    run(test)


def test_crashes_while_loading_and_runners_that_died_count(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    farm = Farm()
    farm.crashes = 2
    metrics, scheduler, farm = watched(tmp_path, farm)
    model = models()
    name = model.short_name

    async def test() -> None:
        await use(scheduler, model)
        assert value(metrics, "pollama_runner_crashes_total", model=name) == 2  # two attempts crashed
        assert value(metrics, "pollama_model_loads_total", model=name) == 1  # the third loaded
        farm.runners[-1].killed = True  # it died while idle
        await use(scheduler, model)
        assert value(metrics, "pollama_runner_crashes_total", model=name) == 3
        assert value(metrics, "pollama_model_unloads_total", model=name) == 1
        assert value(metrics, "pollama_model_loads_total", model=name) == 2
        await scheduler.shutdown()
        assert value(metrics, "pollama_runner_crashes_total", model=name) == 3  # stopping is no crash
        assert value(metrics, "pollama_model_unloads_total", model=name) == 2

    run(test)


# --- first tokens and token counts ------------------------------------------------------------------


class Recorder(Metrics):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def first_token(self, model: str, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("first_token", model))

    def tokens(self, model: str, *, prompt: int, generated: int) -> None:
        self.events.append(("tokens", model, str(prompt), str(generated)))


class EventRunner:
    def __init__(self, *events: TokenEvent | DoneEvent) -> None:
        self.events = events

    async def completion(self, _request: CompletionRequest) -> AsyncGenerator[TokenEvent | DoneEvent]:
        for event in self.events:
            yield event


def done(eval_count: int) -> DoneEvent:
    return DoneEvent("", "stop", prompt_eval_count=7, prompt_cached_count=0, prompt_eval_duration=1,
                     eval_count=eval_count, eval_duration=1)  # fmt: skip


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (
            (TokenEvent("a"), TokenEvent("b"), done(2)),
            [("first_token", "m:latest"), ("tokens", "m:latest", "7", "2")],
        ),
        ((done(1),), [("first_token", "m:latest"), ("tokens", "m:latest", "7", "1")]),  # the one token came last
        ((done(0),), [("tokens", "m:latest", "7", "0")]),  # no token at all: no first token
    ],
)
def test_complete_reports_the_first_token_and_the_final_counts(
    events: tuple[TokenEvent | DoneEvent, ...], expected: list[tuple[str, ...]]
) -> None:
    recorder = Recorder()

    async def test() -> None:
        runner = cast(RunnerProcess, EventRunner(*events))
        request = cast(CompletionRequest, None)  # the fake runner does not read it
        chunks = complete(runner, request, started_ns=0, load_ns=0, model="m:latest", metrics=recorder)
        assert [chunk async for chunk in chunks][-1].done

    asyncio.run(test())
    assert recorder.events == expected


def test_nobody_listens_by_default() -> None:
    NO_METRICS.first_token("m", 1.0)
    NO_METRICS.tokens("m", prompt=1, generated=2)
    NO_METRICS.model_loaded("m")
    NO_METRICS.model_unloaded("m")
    NO_METRICS.runner_crashed("m")
