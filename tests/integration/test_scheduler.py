"""The scheduler through real servers: loading, unloading, keep-alive, /api/ps and ``pollama ps``/``stop``, eviction,
reloads, parallel slots, the wait queue, disconnects, shutdown and models too large to load.

Each group of tests runs against a ``pollama serve`` process started with the environment it needs
(``OLLAMA_NUM_PARALLEL``, ``OLLAMA_MAX_QUEUE``, ``OLLAMA_MAX_LOADED_MODELS``), with SmolLM2-135M created as
``smol``; the eviction tests add the all-MiniLM-L6-v2 BERT embedding model as a second, different model.
Model files are hard-linked into each server's blob store rather than uploaded, to keep the servers cheap.
Runner processes are found as the server's children (``/proc``), so the tests see loads and unloads directly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.integration.conftest import upload
from tests.integration.test_inference import (
    COUNTING,
    GREEDY,
    MODEL,
    WHY,
    alive,
    assert_error,
    cmdline,
    post,
    runner_option,
    server_children,
    wait_for,
)
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(120)

BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}
LETTERS = "a, b, c, d, e, f, g,"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- servers ----------------------------------------------------------------------------------------


@functools.cache
def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()


def install(server: ServerProcess, name: str, path: Path, *, draft: Path | None = None, **parameters: Any) -> str:
    """Create ``name`` from a GGUF file whose blob is hard-linked into the store: no upload of 135 MB per server.

    ``draft``: a draft model GGUF (a Modelfile's DRAFT), which the official client cannot send.
    """
    api = ollama.Client(host=server.url)
    request: dict[str, Any] = {"model": name, "files": {path.name: _stored_blob(server, api, path)}, "stream": False}
    if draft is not None:
        request["draft_files"] = {draft.name: _stored_blob(server, api, draft)}
    if parameters:
        request["parameters"] = parameters
    reply = httpx.post(server.url + "/api/create", json=request, timeout=120)
    assert reply.status_code == 200 and reply.json()["status"] == "success", reply.text
    return name


def _stored_blob(server: ServerProcess, api: ollama.Client, path: Path) -> str:
    digest = file_digest(path)
    blob = server.models / "blobs" / digest.replace(":", "-")
    if not blob.exists():
        try:
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, blob)
        except OSError:  # another file system: upload it
            upload(api, path)
    return digest


@contextmanager
def serving(root: Path, smollm2_path: Path, **env: str) -> Iterator[ServerProcess]:
    """A server with ``smol`` created, stopped (SIGTERM) when the block ends."""
    server = ServerProcess(root, extra_env=env).start()
    try:
        install(server, MODEL, smollm2_path)
        yield server
    finally:
        server.stop()


def create_minilm(server: ServerProcess) -> str:
    return install(server, "minilm", ensure_model("minilm"))


def unload_all(server: ServerProcess) -> None:
    for model in ps(server):
        response = post(server, "/api/generate", {"model": model["name"], "keep_alive": 0})
        assert response.status_code == 200 and response.json()["done_reason"] == "unload", response.text
    assert wait_for(lambda: not server_children(server)), server_children(server)


@pytest.fixture(scope="module")
def serial_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("serial"), smollm2_path, OLLAMA_NUM_PARALLEL="1") as server:
        yield server


@pytest.fixture
def serial(serial_server: ServerProcess) -> Iterator[ServerProcess]:
    """The one-slot server, with nothing loaded before and after the test."""
    if serial_server.process is None:  # stopped by a test
        serial_server.start()
    unload_all(serial_server)
    yield serial_server
    unload_all(serial_server)


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    """One slot, at most two requests waiting, and a default context of 2048 tokens."""
    env = {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_QUEUE": "2", "OLLAMA_CONTEXT_LENGTH": "2048"}
    with serving(tmp_path_factory.mktemp("queued"), smollm2_path, **env) as server:
        yield server


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    """Two slots per runner, one runner at a time, 10 minutes' keep-alive; with the minilm embedding model."""
    env = {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_MAX_LOADED_MODELS": "1", "OLLAMA_KEEP_ALIVE": "10m"}
    with serving(tmp_path_factory.mktemp("wide"), smollm2_path, **env) as server:
        create_minilm(server)
        yield server


# --- helpers ----------------------------------------------------------------------------------------


def ps(server: ServerProcess) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/api/ps", timeout=10)
    assert response.status_code == 200
    return response.json()["models"]


def expires_in(entry: dict[str, Any]) -> float:
    """Seconds from now until the ps entry's ``expires_at``."""
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", entry["expires_at"].replace("Z", "+00:00")))
    return (moment - datetime.now(UTC)).total_seconds()


def expires_year(entry: dict[str, Any]) -> int:
    return int(entry["expires_at"][:4])


def generate(server: ServerProcess, model: str = MODEL, num_predict: int = 2, **fields: Any) -> dict[str, Any]:
    options = {**GREEDY, "num_predict": num_predict, **fields.pop("options", {})}
    body = {"model": model, "prompt": WHY, "stream": False, "options": options, **fields}
    response = post(server, "/api/generate", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["done"] is True
    return answer


def counting(num_predict: int, model: str = MODEL, prompt: str = COUNTING) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "raw": True, "options": {**GREEDY, "num_predict": num_predict}}


def only_runner(server: ServerProcess) -> int:
    runners = server_children(server)
    assert len(runners) == 1, runners
    return runners[0]


class Stream(threading.Thread):
    """A streaming request on its own thread: when each line came; ``hang_up`` closes the connection mid-way."""

    def __init__(self, server: ServerProcess, body: dict[str, Any], path: str = "/api/generate"):
        super().__init__(daemon=True)
        self.url = server.url + path
        self.body = body
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.first = threading.Event()
        self.hang_up = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=120) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line:
                        self.lines.append((time.monotonic(), json.loads(line)))
                        self.first.set()
                    if self.hang_up.is_set():
                        break
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.first.set()

    @property
    def final(self) -> dict[str, Any]:
        return self.lines[-1][1]

    @property
    def done(self) -> bool:
        return bool(self.lines) and self.final.get("done") is True

    @property
    def text(self) -> str:
        return "".join(line.get("response", "") for _, line in self.lines)

    def stop(self) -> None:
        """Hang up and wait for the thread."""
        self.hang_up.set()
        self.join(60)
        assert not self.is_alive()


class Call(threading.Thread):
    """A non-streaming request on its own thread: its status, body and how long it took."""

    def __init__(self, server: ServerProcess, body: dict[str, Any], path: str = "/api/generate"):
        super().__init__(daemon=True)
        self.url = server.url + path
        self.body = {**body, "stream": False}
        self.status: int | None = None
        self.json: Any = None
        self.elapsed = 0.0
        self.finished_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            response = httpx.post(self.url, json=self.body, timeout=120)
            self.status, self.json = response.status_code, response.json()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.finished_at = time.monotonic()
            self.elapsed = self.finished_at - started


# --- load, unload, /api/ps --------------------------------------------------------------------------


def test_empty_prompt_loads_and_ps_describes_the_runner(serial: ServerProcess) -> None:
    response = post(serial, "/api/generate", {"model": MODEL})
    assert response.status_code == 200
    loaded = response.json()
    assert (loaded["model"], loaded["response"], loaded["done"], loaded["done_reason"]) == (MODEL, "", True, "load")
    only_runner(serial)

    (entry,) = ps(serial)
    assert entry["name"] == entry["model"] == "smol:latest"
    assert entry["size"] > 100_000_000  # the 135M weights and a 4096-token KV cache
    assert HEX64.match(entry["digest"])
    (tag,) = httpx.get(serial.url + "/api/tags").json()["models"]
    assert entry["digest"] == tag["digest"]
    details = entry["details"]
    assert (details["parent_model"], details["format"], details["family"]) == ("", "gguf", "llama")
    assert details["families"] == ["llama"]
    assert details["parameter_size"] == tag["details"]["parameter_size"]
    assert details["quantization_level"] == "Q4_1"
    assert 280 < expires_in(entry) <= 301  # the default keep-alive, 5 minutes
    assert entry["size_vram"] == 0  # no GPU here
    assert entry["context_length"] == 4096  # the default tier without a GPU
    assert runner_option(serial, "--ctx-size") == "4096"

    # A second load request is served by the same runner.
    runner = only_runner(serial)
    assert post(serial, "/api/generate", {"model": MODEL}).json()["done_reason"] == "load"
    assert server_children(serial) == [runner]


def test_empty_chat_loads(serial: ServerProcess) -> None:
    response = post(serial, "/api/chat", {"model": MODEL, "messages": []})
    assert response.status_code == 200
    loaded = response.json()
    assert (loaded["done"], loaded["done_reason"]) == (True, "load")
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert [entry["name"] for entry in ps(serial)] == ["smol:latest"]
    only_runner(serial)


def test_keep_alive_zero_unloads(serial: ServerProcess) -> None:
    generate(serial)
    runner = only_runner(serial)
    response = post(serial, "/api/generate", {"model": MODEL, "keep_alive": 0})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["response"], body["done"], body["done_reason"]) == (MODEL, "", True, "unload")
    assert ps(serial) == []  # gone from ps as soon as the answer comes
    assert wait_for(lambda: not server_children(serial) and not alive(runner))


def test_unloading_a_model_that_is_not_loaded_does_not_load_it(serial: ServerProcess) -> None:
    for path, extra in (("/api/generate", {}), ("/api/chat", {"messages": []})):
        response = post(serial, path, {"model": MODEL, "keep_alive": 0, **extra})
        assert response.status_code == 200
        assert response.json()["done_reason"] == "unload"
        assert ps(serial) == []
        assert server_children(serial) == []
    # keep_alive 0 written as a duration string is the same.
    assert post(serial, "/api/generate", {"model": MODEL, "keep_alive": "0s"}).json()["done_reason"] == "unload"
    time.sleep(0.5)
    assert ps(serial) == [] and server_children(serial) == []


def test_keep_alive_zero_with_a_prompt_answers_then_unloads(serial: ServerProcess) -> None:
    answer = generate(serial, keep_alive=0)
    assert answer["done_reason"] in ("length", "stop") and answer["response"]
    assert wait_for(lambda: not server_children(serial))
    assert ps(serial) == []


def test_unload_while_answering_waits_for_the_answer(serial: ServerProcess) -> None:
    stream = Stream(serial, counting(2000))
    stream.start()
    assert stream.first.wait(60)
    runner = only_runner(serial)
    started = time.monotonic()
    response = post(serial, "/api/generate", {"model": MODEL, "keep_alive": 0})
    assert time.monotonic() - started < 2  # answered at once, not after the stream
    assert response.json()["done_reason"] == "unload"
    # Still listed while it answers, expiring now: the CLI says it is stopping.
    (entry,) = ps(serial)
    assert expires_in(entry) <= 0
    listing = serial.cli("ps")
    assert "Stopping..." in listing.stdout, listing.stdout
    # The answer goes on...
    received = len(stream.lines)
    assert wait_for(lambda: len(stream.lines) >= received + 20)
    assert stream.is_alive() and stream.error is None and not stream.done
    assert server_children(serial) == [runner]
    # ...and when it ends (here: its client hangs up), the runner goes.
    stream.stop()
    assert wait_for(lambda: not alive(runner) and not server_children(serial))
    assert ps(serial) == []


def test_simultaneous_first_requests_share_one_load(serial: ServerProcess) -> None:
    calls = [Call(serial, counting(6)) for _ in range(3)]
    for call in calls:
        call.start()
    for call in calls:
        call.join(60)
        assert (call.status, call.error) == (200, None), call.json
        assert call.json["response"].startswith(" 9, 10")
    only_runner(serial)
    assert len(ps(serial)) == 1


def test_keep_alive_expires_the_runner(serial: ServerProcess) -> None:
    generate(serial, keep_alive="2s")
    runner = only_runner(serial)
    (entry,) = ps(serial)
    assert -0.5 < expires_in(entry) <= 2.1
    started = time.monotonic()
    assert wait_for(lambda: not ps(serial), timeout=10)
    assert time.monotonic() - started > 0.5  # it stayed loaded for a while first
    assert wait_for(lambda: not alive(runner), timeout=10)
    assert server_children(serial) == []


def test_keep_alive_is_sticky(serial: ServerProcess) -> None:
    generate(serial, keep_alive=-1)
    runner = only_runner(serial)
    (entry,) = ps(serial)
    assert expires_year(entry) > 2200  # "forever" is Go's largest duration, ~292 years ahead
    listing = serial.cli("ps")
    assert listing.returncode == 0, listing.stderr
    assert "Forever" in listing.stdout

    # A request without keep_alive leaves forever in place.
    generate(serial)
    assert expires_year(ps(serial)[0]) > 2200

    # One with keep_alive replaces it, and stays until changed again.
    generate(serial, keep_alive="1m")
    assert 50 < expires_in(ps(serial)[0]) <= 61
    generate(serial)
    assert 50 < expires_in(ps(serial)[0]) <= 61

    # Numbers are seconds (fractions too); negative durations are forever.
    generate(serial, keep_alive=90)
    assert 80 < expires_in(ps(serial)[0]) <= 91
    generate(serial, keep_alive=120.5)
    assert 110 < expires_in(ps(serial)[0]) <= 121
    generate(serial, keep_alive="-1m")
    assert expires_year(ps(serial)[0]) > 2200
    generate(serial, keep_alive="1h30m")
    assert 5300 < expires_in(ps(serial)[0]) <= 5401
    # A load request (empty prompt) sets it too.
    post(serial, "/api/generate", {"model": MODEL, "keep_alive": "3m"})
    assert 170 < expires_in(ps(serial)[0]) <= 181
    assert server_children(serial) == [runner]  # all on the one runner


def test_invalid_keep_alive(serial: ServerProcess) -> None:
    generate(serial, keep_alive="1m")
    for keep_alive, message in (
        ("10", 'time: missing unit in duration "10"'),
        ("5 minutes", 'time: unknown unit " minutes" in duration "5 minutes"'),
        (True, "Unsupported type: 'bool'"),
        ({"minutes": 5}, "Unsupported type: 'map[string]interface {}'"),
    ):
        for path, body in (
            ("/api/generate", {"prompt": WHY, "options": {"num_predict": 1}}),
            ("/api/generate", {}),
            ("/api/chat", {"messages": []}),
            ("/api/embed", {"input": "hi"}),
        ):
            response = post(serial, path, {"model": MODEL, "keep_alive": keep_alive, **body})
            assert_error(response, 400, message)
    # The loaded runner's keep-alive is untouched.
    (entry,) = ps(serial)
    assert 45 < expires_in(entry) <= 61


def test_ps_and_stop_cli(serial: ServerProcess) -> None:
    generate(serial)
    (entry,) = ps(serial)
    listing = serial.cli("ps")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.rstrip("\n").split("\n")
    assert re.split(r" {4,}", header.strip()) == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    cells = re.split(r" {4,}", row.strip())
    assert cells[:5] == ["smol:latest", entry["digest"][:12], cells[2], "100% CPU", "4096"]
    assert re.fullmatch(r"\d+ MB", cells[2]), cells[2]
    assert re.fullmatch(r"[45] minutes from now", cells[5]), cells[5]
    # Columns line up under their titles.
    for title, cell in zip(re.split(r" {4,}", header.strip()), cells, strict=True):
        assert header.index(title) == row.index(cell), (title, cell)

    # The optional argument filters by a case-sensitive name prefix.
    assert "smol:latest" in serial.cli("ps", "smo").stdout
    filtered = serial.cli("ps", "Smol")
    assert filtered.returncode == 0
    assert filtered.stdout.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]

    runner = only_runner(serial)
    stopped = serial.cli("stop", MODEL)
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, "", "")
    assert ps(serial) == []
    assert wait_for(lambda: not alive(runner) and not server_children(serial))

    # Stopping a model that does not exist is an error.
    missing = serial.cli("stop", "nosuch")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == 'Error: couldn\'t find model "nosuch" to stop\n'


def test_official_client_reads_ps(serial: ServerProcess) -> None:
    client = ollama.Client(host=serial.url)
    assert client.ps().models == []
    client.generate(MODEL, keep_alive="10m")
    (model,) = client.ps().models
    assert model.name == model.model == "smol:latest"
    assert model.size is not None and model.size > 0
    assert model.size_vram == 0
    assert model.context_length == 4096
    assert model.details is not None and model.details.family == "llama"
    assert model.expires_at is not None
    assert 590 < (model.expires_at - datetime.now(UTC)).total_seconds() <= 601


# --- which runner serves which request --------------------------------------------------------------


def test_two_names_for_one_blob_share_a_runner(serial: ServerProcess) -> None:
    copied = post(serial, "/api/copy", {"source": MODEL, "destination": "smol2"})
    assert copied.status_code == 200
    try:
        generate(serial, MODEL)
        runner = only_runner(serial)
        assert generate(serial, "smol2")["model"] == "smol2"
        assert server_children(serial) == [runner]
        assert [entry["name"] for entry in ps(serial)] == ["smol:latest"]  # the name that loaded it

        # Unloading through the other name unloads the shared runner.
        assert post(serial, "/api/generate", {"model": "smol2", "keep_alive": 0}).json()["done_reason"] == "unload"
        assert ps(serial) == []
        assert wait_for(lambda: not server_children(serial))

        # Loaded through the copy, ps names the copy.
        generate(serial, "smol2")
        generate(serial, MODEL)
        assert [entry["name"] for entry in ps(serial)] == ["smol2:latest"]
        assert len(server_children(serial)) == 1
    finally:
        unload_all(serial)
        httpx.request("DELETE", serial.url + "/api/delete", json={"model": "smol2"})


def test_load_time_options_reload_and_sampling_options_do_not(serial: ServerProcess) -> None:
    generate(serial, options={"num_ctx": 2048})
    first = only_runner(serial)
    assert ps(serial)[0]["context_length"] == 2048
    assert runner_option(serial, "--ctx-size") == "2048"

    generate(serial, options={"num_ctx": 1024})
    assert wait_for(lambda: server_children(serial) not in ([first], []))
    second = only_runner(serial)
    assert second != first and not alive(first)
    (entry,) = ps(serial)
    assert entry["context_length"] == 1024
    assert runner_option(serial, "--ctx-size") == "1024"

    for options in ({"temperature": 0.9, "seed": 1}, {"top_k": 5, "top_p": 0.5}, {"num_predict": 3, "stop": ["x"]}):
        generate(serial, options={"num_ctx": 1024, **options})
        assert server_children(serial) == [second], options
    assert len(ps(serial)) == 1

    # A context beyond the model's trained one (8192) is cut to it.
    generate(serial, options={"num_ctx": 20000})
    assert ps(serial)[0]["context_length"] == 8192
    assert runner_option(serial, "--ctx-size") == "8192"


def test_models_side_by_side_are_listed_by_expiry(serial: ServerProcess) -> None:
    embedder = create_minilm(serial)
    generate(serial, keep_alive="10m")
    embedded = post(serial, "/api/embed", {"model": embedder, "input": "hi", "keep_alive": "1m"})
    assert embedded.status_code == 200, embedded.text
    assert len(server_children(serial)) == 2  # the automatic limit is 3 models
    entries = ps(serial)
    assert [entry["name"] for entry in entries] == ["smol:latest", "minilm:latest"]
    assert entries[1]["details"]["family"] == "bert"
    assert entries[1]["context_length"] == 512  # the default 4096, cut to what the model was trained for
    assert 50 < expires_in(entries[1]) <= 61  # /api/embed's keep_alive
    # The later expiry comes first, whichever loaded first.
    generate(serial, keep_alive="30s")
    assert [entry["name"] for entry in ps(serial)] == ["minilm:latest", "smol:latest"]


def test_at_most_max_loaded_models_runners(wide: ServerProcess) -> None:
    server = wide
    unload_all(server)
    embedder = "minilm"
    generate(server)
    smol_runner = only_runner(server)
    (entry,) = ps(server)
    assert 590 < expires_in(entry) <= 601  # OLLAMA_KEEP_ALIVE is the default keep-alive

    embedded = post(server, "/api/embed", {"model": embedder, "input": "hello"})
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["embeddings"][0]) == 384
    assert [entry["name"] for entry in ps(server)] == ["minilm:latest"]
    embed_runner = only_runner(server)
    assert embed_runner != smol_runner and not alive(smol_runner)
    assert runner_option(server, "--parallel") == "1"  # an embedding model gets one slot, whatever the setting

    generate(server)
    assert [entry["name"] for entry in ps(server)] == ["smol:latest"]
    assert only_runner(server) not in (smol_runner, embed_runner)
    assert not alive(embed_runner)

    # A busy runner is evicted only once its request has finished: the answer is not cut short.
    stream = Stream(server, counting(48))
    stream.start()
    assert stream.first.wait(60)
    embedded = Call(server, {"model": embedder, "input": "hello"}, path="/api/embed")
    embedded.start()
    stream.join(60)
    embedded.join(60)
    assert stream.error is None and embedded.error is None
    assert stream.done and stream.final["done_reason"] == "length" and stream.final["eval_count"] == 48
    assert embedded.status == 200, embedded.json
    assert embedded.finished_at >= stream.lines[-1][0]
    assert [entry["name"] for entry in ps(server)] == ["minilm:latest"]
    assert len(server_children(server)) == 1


def test_eviction_picks_the_shortest_keep_alive(tmp_path: Path, smollm2_path: Path) -> None:
    with serving(tmp_path / "s", smollm2_path, OLLAMA_MAX_LOADED_MODELS="2") as server:
        embedder = create_minilm(server)
        # A third model with weights of its own: the SmolLM2 file with a few bytes more.
        other = tmp_path / "other.gguf"
        shutil.copyfile(smollm2_path, other)
        with other.open("ab") as file:
            file.write(bytes(64))
        install(server, "other", other)

        def loaded() -> set[str]:
            return {entry["name"] for entry in ps(server)}

        generate(server, keep_alive="10m")
        assert post(server, "/api/embed", {"model": embedder, "input": "hi", "keep_alive": "1m"}).status_code == 200
        assert loaded() == {"smol:latest", "minilm:latest"}
        generate(server, "other")  # the default 5 minutes
        assert loaded() == {"smol:latest", "other:latest"}  # minilm had the shortest keep-alive
        assert len(server_children(server)) == 2
        assert post(server, "/api/embed", {"model": embedder, "input": "hi", "keep_alive": -1}).status_code == 200
        assert loaded() == {"smol:latest", "minilm:latest"}  # other (5m) went before smol (10m)
        generate(server, "other", keep_alive="20m")
        assert loaded() == {"minilm:latest", "other:latest"}  # forever is never the shortest
        assert len(server_children(server)) == 2


# --- parallel slots ---------------------------------------------------------------------------------


def overlapping_streams(server: ServerProcess, model: str = MODEL) -> tuple[Stream, Stream]:
    """Start a 48-token stream, and a second one once the first has produced its first token."""
    first = Stream(server, counting(48, model))
    second = Stream(server, counting(24, model, LETTERS))
    first.start()
    assert first.first.wait(60)
    second.start()
    first.join(60)
    second.join(60)
    for stream, limit in ((first, 48), (second, 24)):
        assert stream.error is None and stream.status == 200
        assert stream.done and stream.final["eval_count"] == limit
    assert first.text.startswith(" 9, 10, 11") and second.text.startswith(" h, i, j")
    return first, second


def test_num_parallel_two_runs_requests_together(wide: ServerProcess) -> None:
    server = wide
    unload_all(server)
    generate(server)
    assert runner_option(server, "--parallel") == "2"
    first, second = overlapping_streams(server)
    assert second.lines[0][0] < first.lines[-1][0]  # the second answer began before the first had ended
    assert len(server_children(server)) == 1
    assert ps(server)[0]["context_length"] == 4096  # per sequence


def test_num_parallel_one_serves_requests_in_turn(serial: ServerProcess) -> None:
    generate(serial)
    assert runner_option(serial, "--parallel") == "1"
    first, second = overlapping_streams(serial)
    assert second.lines[0][0] >= first.lines[-1][0]  # it waited for the only slot


def test_modelfile_num_parallel_overrides_the_environment(serial: ServerProcess) -> None:
    api = ollama.Client(host=serial.url)
    assert api.create("smolpar", from_=MODEL, parameters={"num_parallel": 2}).status == "success"
    try:
        assert "num_parallel" in api.show("smolpar").parameters
        generate(serial, "smolpar")
        assert runner_option(serial, "--parallel") == "2"
        first, second = overlapping_streams(serial, "smolpar")
        assert second.lines[0][0] < first.lines[-1][0]
    finally:
        unload_all(serial)
        api.delete("smolpar")


# --- the wait queue ---------------------------------------------------------------------------------


def test_requests_beyond_max_queue_are_refused(queued: ServerProcess) -> None:
    generate(queued)
    assert ps(queued)[0]["context_length"] == 2048  # OLLAMA_CONTEXT_LENGTH
    long = Stream(queued, counting(2000))
    long.start()
    assert long.first.wait(60)
    try:
        calls = [Call(queued, counting(5)) for _ in range(6)]
        for call in calls:
            call.start()

        def refused() -> list[Call]:
            return [call for call in calls if call.status == 503]

        assert wait_for(lambda: len(refused()) >= 4, timeout=15), [(call.status, call.json) for call in calls]
        time.sleep(0.5)  # room for a fifth refusal, were there one
        assert not long.done  # the slot was busy the whole time
        assert len(refused()) == 4
        for call in refused():
            assert call.json == BUSY
            assert call.elapsed < 3  # refused at once, not after waiting for the slot
        waiting = [call for call in calls if call not in refused()]
        assert all(call.is_alive() for call in waiting)  # two wait for the slot
    finally:
        long.stop()  # hanging up frees the slot for the two
    for call in waiting:
        call.join(60)
        assert call.error is None
        assert call.status == 200, call.json
        assert call.json["done"] is True and call.json["eval_count"] == 5
    # With the queue empty again, requests are served as usual.
    assert generate(queued)["done"] is True


def test_disconnect_mid_answer_frees_the_slot_at_once(queued: ServerProcess) -> None:
    generate(queued)
    long = Stream(queued, counting(2000))
    long.start()
    assert long.first.wait(60)
    assert wait_for(lambda: len(long.lines) >= 3)
    long.stop()
    assert not long.done

    started = time.monotonic()
    answer = generate(queued, num_predict=4)
    elapsed = time.monotonic() - started
    assert answer["eval_count"] == 4
    # 2000 tokens at the rate this runner generates would take far longer (a rate measured now: a busy
    # machine slows both alike).
    needed = 2000 * answer["eval_duration"] / answer["eval_count"] / 1e9
    assert elapsed < needed / 2, (elapsed, needed)
    assert answer["load_duration"] < 1.5e9  # load_duration includes waiting for the slot


def test_disconnect_while_waiting_leaves_the_queue(queued: ServerProcess) -> None:
    generate(queued)
    long = Stream(queued, counting(2000))
    long.start()
    assert long.first.wait(60)
    try:
        kept = Call(queued, counting(3))
        kept.start()
        time.sleep(0.3)
        # A second waiter that hangs up after a second, still waiting: it gets no answer at all.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(queued.url + "/api/generate", json=counting(3), timeout=httpx.Timeout(30, read=1.0))

        # Its place in the queue is free again: a new waiter is accepted, not refused.
        late = Call(queued, counting(3))
        deadline = time.monotonic() + 5
        while True:
            late.start()
            late.join(1.0)
            if late.is_alive() or time.monotonic() > deadline:
                break
            assert late.status == 503, late.json  # not dropped yet: try again
            late = Call(queued, counting(3))
            time.sleep(0.2)
        assert late.is_alive(), "the abandoned waiter still holds its place in the queue"
        assert not long.done  # the slot was busy all along
        # And the queue is full again with the two waiting.
        assert_error(post(queued, "/api/generate", {**counting(3), "stream": False}), 503, BUSY["error"])
    finally:
        long.stop()
    for call in (kept, late):
        call.join(60)
        assert (call.status, call.error) == (200, None), call.json
        assert call.json["eval_count"] == 3


def test_disconnect_while_the_model_loads_leaves_no_stray_runner(tmp_path: Path, smollm2_path: Path) -> None:
    with serving(tmp_path / "s", smollm2_path) as server:
        runners: list[int] = []
        try:
            with pytest.raises(httpx.ReadTimeout):  # a runner takes longer than this to load
                httpx.post(
                    server.url + "/api/generate",
                    json={"model": MODEL, "prompt": WHY},
                    timeout=httpx.Timeout(30, read=0.2),
                )
            # Whether the abandoned load is finished and kept (as in Ollama) or stopped, the next request
            # runs on the only runner there is, and unloading leaves none.
            generate(server)
            runners = server_children(server)
            assert wait_for(lambda: len(server_children(server)) == 1, timeout=3), server_children(server)
            assert len(ps(server)) == 1
            assert post(server, "/api/generate", {"model": MODEL, "keep_alive": 0}).json()["done_reason"] == "unload"
            assert wait_for(lambda: not server_children(server), timeout=3), server_children(server)
        finally:
            for pid in runners:  # a stray runner is not stopped by the server: end it here
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


# --- memory, shutdown -------------------------------------------------------------------------------


def test_model_too_large_for_memory(tmp_path: Path, smollm2_path: Path) -> None:
    # 200 sequences of 8192 tokens: about 188 MB of KV cache each, ~37 GB in all.
    with serving(tmp_path / "s", smollm2_path, OLLAMA_NUM_PARALLEL="200") as server:
        body = {"model": MODEL, "prompt": WHY, "options": {"num_ctx": 8192, "num_predict": 2}}
        for stream in (False, True):
            started = time.monotonic()
            response = post(server, "/api/generate", {**body, "stream": stream})
            assert time.monotonic() - started < 5
            assert response.status_code == 500, response.text
            message = response.json()["error"]
            assert message.startswith("model requires more system memory ("), message
            assert ") than is available (" in message, message
            assert server_children(server) == []
            assert ps(server) == []
        # The server still loads and serves a model that fits: an embedding model, which always gets one slot.
        embedder = create_minilm(server)
        embedded = post(server, "/api/embed", {"model": embedder, "input": "hello"})
        assert embedded.status_code == 200, embedded.text
        assert len(embedded.json()["embeddings"]) == 1
        assert runner_option(server, "--parallel") == "1"
        assert [entry["name"] for entry in ps(server)] == ["minilm:latest"]


def test_sigterm_stops_every_runner(serial_server: ServerProcess) -> None:
    """It stops the module's server; the ``serial`` fixture starts it again for any test after it."""
    server = serial_server
    if server.process is None:
        server.start()
    try:
        unload_all(server)
        embedder = create_minilm(server)
        generate(server)
        assert post(server, "/api/embed", {"model": embedder, "input": "hi"}).status_code == 200
        runners = server_children(server)
        assert len(runners) == 2
        assert all("pollama.runner" in " ".join(cmdline(pid)) for pid in runners)
        assert server.process is not None
        process = server.process
        started = time.monotonic()
        process.terminate()
        process.wait(timeout=15)
        assert time.monotonic() - started < 5
        assert process.returncode in (0, -signal.SIGTERM), process.returncode
        assert wait_for(lambda: not any(alive(pid) for pid in runners), timeout=10)
    finally:
        server.stop()
