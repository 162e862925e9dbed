"""Pull and push against an in-process imitation of registry.ollama.ai (``tests.registries.FakeOllamaRegistry``).

Real ``pollama serve`` processes talk to the fake, which does what a stock registry does not: ed25519-signed
token requests, blob downloads redirected to a "storage" host, uploads redirected there by ``307``, and the
fault switches (throttling, dropped connections, corrupted blobs) that steer resumes and retries. Also here:
TLS with a private CA, an ``HTTP_PROXY`` forward proxy, and a full disk (a small tmpfs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.integration.test_registry import cli, manifest_path, statuses, store_files, stream
from tests.integration.test_scheduler import file_digest, install
from tests.registries import (
    MODEL_MEDIA_TYPE,
    FakeOllamaRegistry,
    ForwardProxy,
    ModelArtifact,
    ollama_model,
    sha256_digest,
    write_ollama_key,
)
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(180)

NOT_AUTHORIZED = "you are not authorized to push to this namespace, create the model under a namespace you own"


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    return ensure_model("smollm2")


@pytest.fixture(scope="module")
def smol(smollm2_path: Path) -> ModelArtifact:
    """SmolLM2 as registry.ollama.ai would serve it: the GGUF as the one model layer (98 MB, one part)."""
    return ollama_model([(MODEL_MEDIA_TYPE, smollm2_path.read_bytes())])


@pytest.fixture
def fake() -> Iterator[FakeOllamaRegistry]:
    with FakeOllamaRegistry() as registry:
        yield registry
        assert registry.errors == []


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers a test starts; all stopped when it ends."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def tiny_model(label: str) -> ModelArtifact:
    """A model of a few KB (random weights, a template, parameters): enough for the registry, nothing to run."""
    return ollama_model(
        [
            (MODEL_MEDIA_TYPE, os.urandom(6000)),
            ("application/vnd.ollama.image.template", f"{{{{ .Prompt }}}} {label}".encode()),
            ("application/vnd.ollama.image.params", json.dumps({"num_predict": 8, "label": label}).encode()),
        ]
    )


def keyed_server(
    servers: list[ServerProcess], root: Path, fake: FakeOllamaRegistry | None, *, start: bool = True, **env: str
) -> ServerProcess:
    """A server whose ed25519 key is written up front, and allowed by ``fake`` unless it is None."""
    public = write_ollama_key(root / "home")
    if fake is not None:
        fake.allow_key(public)
    server = ServerProcess(root, extra_env=env)
    servers.append(server)
    return server.start() if start else server


def key_blob(server: ServerProcess) -> str:
    return (server.root / "home" / ".ollama" / "id_ed25519.pub").read_text().split()[1]


def blob_path(server: ServerProcess, digest: str) -> Path:
    return server.models / "blobs" / digest.replace(":", "-")


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def pull(server: ServerProcess, name: str, *, insecure: bool = True) -> list[dict[str, Any]]:
    body: dict[str, object] = {"model": name}
    if insecure:
        body["insecure"] = True
    return stream(server, "/api/pull", body)  # type: ignore[return-value]


def storage_ranges(fake: FakeOllamaRegistry, digest: str) -> list[str]:
    """The ``Range`` headers of the storage GETs of one blob, in order."""
    return [
        entry.headers.get("Range", "")
        for entry in list(fake.log)
        if entry.server == "storage" and entry.method == "GET" and entry.path == f"/blobs/{digest}"
    ]


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def settled(counter: Any, key: str, quiet: float = 0.5, timeout: float = 10) -> int:
    """``counter[key]`` once it has stopped moving for ``quiet`` seconds (a cut transfer winds down)."""
    deadline = time.monotonic() + timeout
    value, since = counter[key], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if counter[key] != value:
            value, since = counter[key], time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return value


class PullThread(threading.Thread):
    """``/api/pull`` streamed in the background; ``events`` grows as lines arrive."""

    def __init__(self, server: ServerProcess, name: str) -> None:
        super().__init__(daemon=True)
        self.server, self.name = server, name
        self.events: list[dict[str, Any]] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.server.url, timeout=120) as http,
                http.stream("POST", "/api/pull", json={"model": self.name, "insecure": True}) as response,
            ):
                for line in response.iter_lines():
                    if line:
                        self.events.append(json.loads(line))
        except Exception as err:  # noqa: BLE001 - a killed server is one of the expected endings
            self.failure = err

    def completed(self, digest: str) -> int:
        return max(
            (int(event.get("completed") or 0) for event in self.events if event.get("digest") == digest), default=0
        )


# --- 1: push, then pull into a fresh store, then chat ------------------------------------------------


def test_push_with_an_allowed_key_then_pull_and_chat(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], smollm2_path: Path, tmp_path: Path
) -> None:
    name = f"{fake.host}/test/smol:latest"
    pusher = keyed_server(servers, tmp_path / "pusher", fake)
    install(pusher, name, smollm2_path)
    local_raw = manifest_path(pusher, name).read_bytes()
    local = json.loads(local_raw)
    blobs = [*local["layers"], local["config"]]

    events = stream(pusher, "/api/push", {"model": name, "insecure": True})
    assert events[-1] == {"status": "success"}
    assert statuses(events) == [
        "retrieving manifest",
        *[f"pushing {blob['digest'][7:19]}" for blob in blobs],
        "pushing manifest",
        "success",
    ]
    assert fake.manifest("test", "smol", "latest") == local_raw
    assert fake.blobs[file_digest(smollm2_path)] == smollm2_path.read_bytes()
    # Every blob went PATCH → 307 → storage PUT, and the final PUT carried the S3-style etag of the parts.
    uploads = {upload.digest: upload for upload in fake.uploads}
    assert set(uploads) == {blob["digest"] for blob in blobs}
    for blob in blobs:
        upload = uploads[blob["digest"]]
        assert (upload.repo, upload.size) == ("test/smol", blob["size"])
        assert upload.redirected_parts == 1
        assert upload.etag is not None and upload.etag == upload.expected_etag
    storage_puts = [path for method, path in fake.storage_requests if method == "PUT"]
    assert len(storage_puts) == len(blobs) and all(path.startswith("/upload/") for path in storage_puts)
    # The tokens came from requests signed with the pusher's key, and one of them asked for push.
    assert fake.token_requests
    assert all(request.key == key_blob(pusher) and request.verified for request in fake.token_requests)
    assert all(request.token is not None for request in fake.token_requests)
    assert any("push" in scope for request in fake.token_requests for scope in request.scopes)
    assert any("push" in actions for request in fake.token_requests for actions in request.granted.values())

    tokens_before = len(fake.token_requests)
    puller = keyed_server(servers, tmp_path / "puller", fake)
    events = pull(puller, name)
    assert statuses(events) == [
        "pulling manifest",
        *[f"pulling {blob['digest'][7:19]}" for blob in blobs],
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert manifest_path(puller, name).read_bytes() == local_raw
    assert not [file for file in store_files(puller) if "partial" in file]
    assert sha256_file(blob_path(puller, file_digest(smollm2_path))) == file_digest(smollm2_path)
    pulled_tokens = fake.token_requests[tokens_before:]
    assert pulled_tokens and all(request.key == key_blob(puller) and request.verified for request in pulled_tokens)
    # Bytes came from storage in ranged GETs, none of which carried the registry's credentials.
    storage = [entry for entry in fake.log if entry.server == "storage"]
    gets = [entry for entry in storage if entry.method == "GET"]
    assert {entry.path for entry in gets} == {f"/blobs/{blob['digest']}" for blob in blobs}
    assert all(re.fullmatch(r"bytes=\d+-\d+", entry.headers.get("Range", "")) for entry in gets)
    assert not [entry for entry in storage if "Authorization" in entry.headers]
    assert fake.storage_bytes_served[file_digest(smollm2_path)] == smollm2_path.stat().st_size
    registry_gets = [entry for entry in fake.log if entry.server == "registry" and "/blobs/sha256:" in entry.path]
    assert any(entry.method == "GET" and entry.headers.get("Range") == "bytes=0-0" for entry in registry_gets)

    answer = ollama.Client(host=puller.url).chat(
        name, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 8}
    )
    assert answer.message.content and answer.message.content.strip()


# --- 2, 3: keys the registry does not know, realms elsewhere --------------------------------------------


def test_an_unknown_key_can_neither_pull_nor_push(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], smollm2_path: Path, tmp_path: Path
) -> None:
    fake.put_model("library", "tiny", "latest", tiny_model("unknown-key"))
    server = keyed_server(servers, tmp_path / "stranger", None)

    events = pull(server, f"{fake.host}/library/tiny:latest")
    assert events[0] == {"status": "pulling manifest"}
    error = events[-1]["error"]
    assert isinstance(error, str) and error.startswith("pull model manifest: 401"), error
    assert not manifest_path(server, f"{fake.host}/library/tiny:latest").exists()
    assert fake.token_requests
    assert all(request.key == key_blob(server) and request.verified for request in fake.token_requests)
    assert all(request.token is None for request in fake.token_requests)

    name = f"{fake.host}/someone/smol:latest"
    install(server, name, smollm2_path)
    pushed = cli(server, "push", "--insecure", name)
    assert pushed.returncode == 1, pushed.stderr
    assert pushed.stderr.splitlines()[-1] == f"Error: {NOT_AUTHORIZED}"
    assert fake.manifest("someone", "smol", "latest") is None
    assert not fake.uploads
    assert not [request for request in fake.token_requests if request.token is not None]


def test_a_realm_on_another_host_gets_no_signature(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], tmp_path: Path
) -> None:
    fake.put_model("library", "tiny", "latest", tiny_model("realm"))
    fake.realm_host = fake.storage_host  # the challenge sends token requests to the storage listener
    server = keyed_server(servers, tmp_path / "server", fake)  # the key is allowed: signing would have worked

    events = pull(server, f"{fake.host}/library/tiny:latest")
    error = events[-1]["error"]
    assert isinstance(error, str) and error.startswith("pull model manifest: 401"), error
    assert fake.token_requests
    for request in fake.token_requests:
        assert request.server == "storage"
        assert (request.key, request.verified, request.token) == (None, False, None)
        assert "ts=" not in request.url and "nonce=" not in request.url
    token_log = [entry for entry in fake.log if entry.path == "/token"]
    assert token_log and all("Authorization" not in entry.headers for entry in token_log)
    assert all(entry.server == "storage" for entry in token_log)


# --- 4, 5, 6: shared, resumed and retried downloads ------------------------------------------------------


def test_concurrent_pulls_of_one_model_share_one_download(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], smol: ModelArtifact, tmp_path: Path
) -> None:
    fake.put_model("library", "smol", "latest", smol)
    gguf = smol.layers[0]
    fake.storage_rate = 40e6  # about 2.5 s for the GGUF: time for a second client to arrive
    server = keyed_server(servers, tmp_path / "server", fake)
    name = f"{fake.host}/library/smol:latest"

    first = PullThread(server, name)
    first.start()
    assert wait_until(lambda: first.completed(gguf.digest) > 0)
    second = PullThread(server, name)
    second.start()
    first.join(60)
    second.join(60)
    assert first.failure is None and second.failure is None
    assert first.events[-1] == {"status": "success"} and second.events[-1] == {"status": "success"}
    # The second client watched the same download progress: it did not start from a cache hit or from zero.
    joined = [event.get("completed", 0) for event in second.events if event.get("digest") == gguf.digest]
    assert any(0 < completed < gguf.size for completed in joined), joined
    assert fake.storage_gets[gguf.digest] == 1
    assert fake.storage_bytes_served[gguf.digest] == gguf.size
    assert sha256_file(blob_path(server, gguf.digest)) == gguf.digest


def test_a_killed_pull_resumes_where_its_part_file_says(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], smol: ModelArtifact, tmp_path: Path
) -> None:
    fake.put_model("library", "smol", "latest", smol)
    gguf = smol.layers[0]
    fake.storage_rate = 15e6
    root = tmp_path / "server"
    server = keyed_server(servers, root, fake)
    name = f"{fake.host}/library/smol:latest"

    puller = PullThread(server, name)
    puller.start()
    assert wait_until(lambda: puller.completed(gguf.digest) > 0.3 * gguf.size, timeout=60), puller.events[-3:]
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)
    puller.join(10)
    assert puller.events[-1].get("status") != "success"
    served_before = settled(fake.storage_bytes_served, gguf.digest)
    assert served_before < gguf.size

    partial = blob_path(server, gguf.digest).with_name(blob_path(server, gguf.digest).name + "-partial")
    part_file = partial.with_name(partial.name + "-0")
    assert partial.is_file() and part_file.is_file()
    state = json.loads(part_file.read_text())
    assert (state["N"], state["Offset"], state["Size"]) == (0, 0, gguf.size)
    completed = state["Completed"]
    assert 0 < completed <= served_before

    fake.storage_rate = None
    restarted = ServerProcess(root)
    servers.append(restarted)
    restarted.start()
    events = pull(restarted, name)
    assert events[-1] == {"status": "success"}, events[-3:]
    served_again = fake.storage_bytes_served[gguf.digest] - served_before
    assert served_again <= gguf.size - completed
    assert storage_ranges(fake, gguf.digest)[-1] == f"bytes={completed}-{gguf.size - 1}"
    assert sha256_file(blob_path(restarted, gguf.digest)) == gguf.digest
    assert not [file for file in store_files(restarted) if "partial" in file]
    assert manifest_path(restarted, name).read_bytes() == smol.manifest


def test_a_dropped_connection_is_retried_from_where_it_stopped(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], smol: ModelArtifact, tmp_path: Path
) -> None:
    fake.put_model("library", "smol", "latest", smol)
    gguf = smol.layers[0]
    drop = 20_000_000
    fake.drop_after_bytes, fake.drop_times = drop, 1
    server = keyed_server(servers, tmp_path / "server", fake)
    name = f"{fake.host}/library/smol:latest"

    events = pull(server, name)
    assert events[-1] == {"status": "success"}, events[-3:]
    assert fake.drops == 1
    assert fake.storage_gets[gguf.digest] == 2
    first, second = storage_ranges(fake, gguf.digest)
    assert first == f"bytes=0-{gguf.size - 1}"
    match = re.fullmatch(rf"bytes=(\d+)-{gguf.size - 1}", second)
    assert match is not None, second
    resumed_at = int(match[1])
    assert 0 < resumed_at <= drop  # what reached the disk is kept; nothing past the cut is assumed
    assert fake.storage_bytes_served[gguf.digest] == drop + gguf.size - resumed_at
    assert sha256_file(blob_path(server, gguf.digest)) == gguf.digest
    assert manifest_path(server, name).read_bytes() == smol.manifest


# --- 7, 8: TLS and proxies -------------------------------------------------------------------------


def test_tls_registry_needs_its_ca(servers: list[ServerProcess], tmp_path: Path) -> None:
    with FakeOllamaRegistry(tls=True) as fake:
        model = tiny_model("tls")
        fake.put_model("library", "tiny", "latest", model)
        name = f"{fake.host}/library/tiny:latest"
        assert fake.ca_path is not None

        untrusting = keyed_server(servers, tmp_path / "untrusting", fake)
        events = pull(untrusting, name, insecure=False)
        error = events[-1]["error"]
        assert isinstance(error, str) and error.startswith("pull model manifest:"), error
        assert "certificate verif" in error.lower(), error
        assert not manifest_path(untrusting, name).exists()
        assert not fake.token_requests  # the handshake failed: nothing was asked for, nothing signed

        trusting = keyed_server(servers, tmp_path / "trusting", fake, OLLAMA_REGISTRY_CA=str(fake.ca_path))
        events = pull(trusting, name, insecure=False)
        assert events[-1] == {"status": "success"}, events[-3:]
        assert manifest_path(trusting, name).read_bytes() == model.manifest
        assert fake.token_requests and all(request.url.startswith("https://") for request in fake.token_requests)
        assert all(request.verified for request in fake.token_requests)
        assert fake.errors == []


def test_pull_through_an_http_proxy(fake: FakeOllamaRegistry, servers: list[ServerProcess], tmp_path: Path) -> None:
    model = tiny_model("proxy")
    fake.put_model("library", "m", "latest", model)
    host = f"registry.test:{fake.port}"
    name = f"{host}/library/m:latest"
    with ForwardProxy(hosts={"registry.test": "127.0.0.1"}) as proxy:
        proxied = keyed_server(servers, tmp_path / "proxied", fake, HTTP_PROXY=proxy.url)
        events = pull(proxied, name)
        assert events[-1] == {"status": "success"}, events[-3:]
        assert manifest_path(proxied, name).read_bytes() == model.manifest
        urls = [request.url for request in proxy.requests]
        assert f"http://{host}/v2/library/m/manifests/latest" in urls
        assert any(url.startswith(f"http://{host}/token?") for url in urls)
        assert any(url.startswith(f"http://{host}/v2/library/m/blobs/sha256:") for url in urls)
        assert all(request.status is not None and request.status < 500 for request in proxy.requests)
        assert proxy.errors == []
        # The realm was on the registry's own host (as the proxy relayed it), so the token request was signed.
        assert fake.token_requests and all(
            request.host == host and request.verified and request.key == key_blob(proxied)
            for request in fake.token_requests
        )

        relayed = len(proxy.requests)
        bypassing = keyed_server(servers, tmp_path / "bypassing", fake, HTTP_PROXY=proxy.url, NO_PROXY="registry.test")
        events = pull(bypassing, name)
        error = events[-1]["error"]
        assert isinstance(error, str) and error.startswith("pull model manifest:"), error
        assert "registry.test" in error
        assert len(proxy.requests) == relayed
        assert not manifest_path(bypassing, name).exists()


# --- 9: a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB tmpfs, unmounted when the test ends."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_fails_at_once_and_leaves_nothing(
    small_disk: Path, fake: FakeOllamaRegistry, servers: list[ServerProcess], smol: ModelArtifact, tmp_path: Path
) -> None:
    # small_disk comes first, so it is unmounted after the server on it has stopped.
    fake.put_model("library", "smol", "latest", smol)
    small = tiny_model("small disk")
    fake.put_model("library", "tiny", "latest", small)
    gguf = smol.layers[0]
    models = small_disk / "models"
    server = keyed_server(servers, tmp_path / "server", fake, OLLAMA_MODELS=str(models))
    total = shutil.disk_usage(small_disk).total
    name = f"{fake.host}/library/smol:latest"

    started = time.monotonic()
    events = pull(server, name)
    elapsed = time.monotonic() - started
    partial = models / "blobs" / (gguf.digest.replace(":", "-") + "-partial")
    assert events[-1] == {"error": f"write {partial}: no space left on device"}, events[-3:]
    assert elapsed < 10
    assert fake.storage_bytes_served[gguf.digest] == 0  # the space was claimed before any byte was fetched
    blobs = models / "blobs"
    assert not [path.name for path in blobs.glob("*partial*")]
    assert not (models / "manifests" / fake.host / "library" / "smol" / "latest").exists()
    assert shutil.disk_usage(small_disk).used < 1 << 20, shutil.disk_usage(small_disk)
    assert shutil.disk_usage(small_disk).total == total

    events = pull(server, f"{fake.host}/library/tiny:latest")
    assert events[-1] == {"status": "success"}, events[-3:]
    assert (models / "manifests" / fake.host / "library" / "tiny" / "latest").read_bytes() == small.manifest
    for layer in small.blobs:
        assert (blobs / layer.digest.replace(":", "-")).read_bytes() == layer.data


# --- 10: progress lines, cache hits, corrupted blobs ------------------------------------------------


def test_progress_cache_hits_and_a_corrupted_blob(
    fake: FakeOllamaRegistry, servers: list[ServerProcess], tmp_path: Path
) -> None:
    model = tiny_model("progress")
    fake.put_model("library", "tiny", "latest", model)
    server = keyed_server(servers, tmp_path / "server", fake)
    name = f"{fake.host}/library/tiny:latest"

    events = pull(server, name)
    order = [*model.layers, model.config]
    assert statuses(events) == [
        "pulling manifest",
        *[f"pulling {layer.digest[7:19]}" for layer in order],
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    for layer in order:
        lines = [event for event in events if event.get("digest") == layer.digest]
        assert lines[-1] == {
            "status": f"pulling {layer.digest[7:19]}",
            "digest": layer.digest,
            "total": layer.size,
            "completed": layer.size,
        }
        assert all(line["total"] == layer.size for line in lines)
        assert blob_path(server, layer.digest).read_bytes() == layer.data
    assert manifest_path(server, name).read_bytes() == model.manifest
    assert sum(fake.storage_gets.values()) == len(order)

    again = pull(server, name)
    assert again == [
        {"status": "pulling manifest"},
        *[
            {
                "status": f"pulling {layer.digest[7:19]}",
                "digest": layer.digest,
                "total": layer.size,
                "completed": layer.size,
            }
            for layer in order
        ],
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    assert sum(fake.storage_gets.values()) == len(order)  # nothing fetched the second time

    bad = tiny_model("corrupt")
    fake.put_model("library", "bad", "latest", bad)
    weights = bad.layers[0]
    fake.corrupt_blob(weights.digest, offset=100, count=8)
    served = sha256_digest(fake.blobs[weights.digest])
    events = pull(server, f"{fake.host}/library/bad:latest")
    assert events[-1] == {
        "error": f"digest mismatch, file must be downloaded again: want {weights.digest}, got {served}"
    }
    assert not blob_path(server, weights.digest).exists()
    assert not [file for file in store_files(server) if "partial" in file]
    assert not manifest_path(server, f"{fake.host}/library/bad:latest").exists()
