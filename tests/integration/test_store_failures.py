"""The store when things fail, through a real server: a failed create leaves none of the blobs uploaded
for it, and a full disk leaves no temporary file and answers 507, with no traceback in the log."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.ggufs import write_gguf
from tests.integration.conftest import upload
from tests.servers import ServerProcess

pytestmark = pytest.mark.timeout(120)


def blob_names(server: ServerProcess) -> set[str]:
    return {path.name for path in (server.models / "blobs").iterdir()}


def stored(digest: str) -> str:
    return digest.replace(":", "-")


def assert_clean_log(server: ServerProcess) -> None:
    log = server.log_path.read_text()
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def existing(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The weights of a model that exists: no failed create may take them."""
    client = ollama.Client(host=server.url)
    digest = upload(client, write_gguf(tmp_path_factory.mktemp("existing") / "existing.gguf", kv={"kept": 1}))
    assert client.create("existing", files={"existing.gguf": digest}).status == "success"
    return digest


def test_a_create_refused_outright_removes_its_uploads(
    server: ServerProcess, http: httpx.Client, client: ollama.Client, existing: str, make_gguf: Callable[..., Path]
) -> None:
    weights = upload(client, make_gguf(kv={"refused": 1}))
    waiting = upload(client, make_gguf(kv={"for a later create": 1}))
    body = {"model": "refused", "files": {"m.gguf": weights}, "adapters": {"a.gguf": existing}}
    response = http.post("/api/create", json={**body, "parameters": {"warp_speed": 9}})
    assert (response.status_code, response.json()) == (400, {"error": "unknown parameter 'warp_speed'"})
    assert stored(weights) not in blob_names(server)
    assert {stored(existing), stored(waiting)} <= blob_names(server)
    assert client.show("existing").modelfile  # the model still loads
    assert_clean_log(server)


@pytest.mark.parametrize("stream", [True, False])
def test_a_create_failing_after_its_first_progress_line_removes_its_uploads(
    server: ServerProcess, http: httpx.Client, stream: bool
) -> None:
    data = f"not a model, streamed={stream}".encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
    response = http.post("/api/create", json={"model": "fake", "files": {"fake.gguf": digest}, "stream": stream})
    if stream:
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines == [{"status": "parsing GGUF"}, {"error": "supplied file was not in GGUF format"}]
    else:
        assert (response.status_code, response.json()) == (400, {"error": "supplied file was not in GGUF format"})
    assert stored(digest) not in blob_names(server)
    assert_clean_log(server)


def test_a_failed_cli_create_removes_the_file_it_uploaded(
    server: ServerProcess, existing: str, make_gguf: Callable[..., Path], tmp_path: Path
) -> None:
    weights = make_gguf("weights.gguf", kv={"cli": 1})
    digest = "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "Modelfile").write_text('FROM ./weights.gguf\nTEMPLATE "{{ .Prompt "\n')
    result = server.cli("create", "cli-broken", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: template error: template: :1: unclosed action"
    assert stored(digest) not in blob_names(server)
    assert stored(existing) in blob_names(server)

    (tmp_path / "Modelfile").write_text("FROM ./weights.gguf\n")  # fixed: the file is uploaded again
    result = server.cli("create", "cli-fixed", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    assert stored(digest) in blob_names(server)
    assert_clean_log(server)


# --- a full disk: a 1 MiB tmpfs as the store ----------------------------------------------------------------


@pytest.fixture
def full_disk_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server")
    server.models.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(server.models)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield server.start()
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(server.models)], check=False)


def temporary_files(server: ServerProcess) -> list[Path]:
    return [path for path in server.models.rglob("*") if path.name.startswith(".tmp-")]


def test_a_full_disk_fails_an_upload_with_507_and_leaves_nothing(full_disk_server: ServerProcess) -> None:
    data = b"\xab" * (2 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = httpx.post(f"{full_disk_server.url}/api/blobs/{digest}", content=data, timeout=60)
    assert (response.status_code, response.json()) == (507, {"error": "write blob: no space left on device"})
    assert blob_names(full_disk_server) == set()
    assert_clean_log(full_disk_server)


def test_a_full_disk_fails_a_create_and_leaves_nothing(
    full_disk_server: ServerProcess, make_gguf: Callable[..., Path]
) -> None:
    client = ollama.Client(host=full_disk_server.url)
    weights = upload(client, make_gguf())
    response = httpx.post(
        f"{full_disk_server.url}/api/create",
        json={"model": "too-big", "files": {"m.gguf": weights}, "system": "x" * (2 << 20), "stream": False},
        timeout=60,
    )
    assert (response.status_code, response.json()) == (507, {"error": "write blob: no space left on device"})
    assert blob_names(full_disk_server) == set()  # neither the upload nor a temporary file
    assert temporary_files(full_disk_server) == []
    assert not (full_disk_server.models / "manifests" / "registry.ollama.ai").exists()
    assert_clean_log(full_disk_server)
