"""Pull and push against a real OCI registry (CNCF distribution, Debian's ``docker-registry``).

One server pushes a model, a second server with an empty store pulls it and chats with it. Stock
distribution answers a blob GET with 200 and no ``Location`` (ollama#7244): pulling from it at all is
the "beyond Ollama" part.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.integration.test_scheduler import install
from tests.registries import DockerRegistry
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    return ensure_model("smollm2")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("source")).start()
    install(server, "smol", smollm2_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pushed(source: ServerProcess, registry: DockerRegistry) -> str:
    """``smol`` pushed to the registry as ``<registry>/test/smol:v1``."""
    name = f"{registry.host}/test/smol:v1"
    ollama.Client(host=source.url).copy("smol", name)
    events = stream(source, "/api/push", {"model": name, "insecure": True})
    assert events[-1] == {"status": "success"}
    return name


def stream(server: ServerProcess, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    with httpx.Client(base_url=server.url, timeout=240) as http, http.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line]


def statuses(events: list[dict[str, object]]) -> list[object]:
    """The status lines, with each layer's progress lines folded into one ``pulling <hex>`` entry."""
    folded: list[object] = []
    for event in events:
        if event.get("status") not in folded[-1:]:
            folded.append(event.get("status"))
    return folded


def manifest_path(server: ServerProcess, name: str) -> Path:
    host_path, _, tag = name.rpartition(":")
    return server.models / "manifests" / host_path / tag


def store_files(server: ServerProcess) -> list[str]:
    blobs = server.models / "blobs"
    return sorted(path.name for path in blobs.iterdir()) if blobs.exists() else []


def test_push_then_pull_into_a_fresh_store_and_chat(
    source: ServerProcess, registry: DockerRegistry, pushed: str, tmp_path: Path
) -> None:
    local = json.loads(manifest_path(source, pushed).read_bytes())
    layers = [local["config"], *local["layers"]]
    # The registry holds the manifest byte for byte: the same model digest on both sides.
    with registry.client() as http:
        served = http.get(
            "/v2/test/smol/manifests/v1", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        )
    assert served.content == manifest_path(source, pushed).read_bytes()

    puller = ServerProcess(tmp_path / "puller").start()
    try:
        events = stream(puller, "/api/pull", {"model": pushed, "insecure": True})
        hexes = [f"pulling {layer['digest'][7:19]}" for layer in local["layers"] + [local["config"]]]
        assert statuses(events) == [
            "pulling manifest",
            *hexes,
            "verifying sha256 digest",
            "writing manifest",
            "success",
        ]
        for layer in layers:
            lines = [event for event in events if event.get("digest") == layer["digest"]]
            assert lines[-1] == {
                "status": f"pulling {layer['digest'][7:19]}",
                "digest": layer["digest"],
                "total": layer["size"],
                "completed": layer["size"],
            }
            assert all("completed" not in line or line["completed"] > 0 for line in lines)
        assert manifest_path(puller, pushed).read_bytes() == manifest_path(source, pushed).read_bytes()
        assert not [name for name in store_files(puller) if "partial" in name]

        client = ollama.Client(host=puller.url)
        listed = {model.model: model.digest for model in client.list().models}
        source_digest = {m.model: m.digest for m in ollama.Client(host=source.url).list().models}[pushed]
        assert listed == {pushed: source_digest}
        answer = client.chat(pushed, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 8})
        assert answer.message.content.strip()
        assert answer.eval_count and answer.eval_count > 0
    finally:
        puller.stop()


def test_push_reports_layers_already_on_the_registry_as_complete(source: ServerProcess, pushed: str) -> None:
    events = stream(source, "/api/push", {"model": pushed, "insecure": True})
    local = json.loads(manifest_path(source, pushed).read_bytes())
    assert statuses(events)[0] == "retrieving manifest"
    assert statuses(events)[-2:] == ["pushing manifest", "success"]
    for layer in [*local["layers"], local["config"]]:
        lines = [event for event in events if event.get("digest") == layer["digest"]]
        assert lines == [
            {
                "status": f"pushing {layer['digest'][7:19]}",
                "digest": layer["digest"],
                "total": layer["size"],
                "completed": layer["size"],
            }
        ]


def test_a_second_pull_reuses_blobs_on_disk(registry: DockerRegistry, pushed: str, tmp_path: Path) -> None:
    puller = ServerProcess(tmp_path / "puller").start()
    try:
        stream(puller, "/api/pull", {"model": pushed, "insecure": True})
        inodes = {path.name: path.stat().st_ino for path in (puller.models / "blobs").iterdir()}
        events = stream(puller, "/api/pull", {"model": pushed, "insecure": True})
        progress = [event for event in events if "digest" in event]
        assert all(event["completed"] == event["total"] for event in progress)
        assert len(progress) == len(inodes)  # one cache-hit line per blob
        assert {path.name: path.stat().st_ino for path in (puller.models / "blobs").iterdir()} == inodes
    finally:
        puller.stop()


def test_unknown_tag_fails_with_ollamas_message(registry: DockerRegistry, pushed: str, server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as raised:
        client.pull(f"{registry.host}/test/smol:missing", insecure=True)
    assert raised.value.error == "pull model manifest: file does not exist"
    events = stream(server, "/api/pull", {"model": f"{registry.host}/test/nothing:here", "insecure": True})
    assert events == [{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
    assert not manifest_path(server, f"{registry.host}/test/nothing:here").exists()


def test_http_names_need_insecure(registry: DockerRegistry, server: ServerProcess) -> None:
    response = httpx.post(
        server.url + "/api/pull", json={"model": f"http://{registry.host}/test/smol:v1", "stream": False}, timeout=30
    )
    assert response.status_code == 500
    assert response.json() == {"error": "insecure protocol http"}
    bad = httpx.post(server.url + "/api/pull", json={"model": "a/b/c/d/e"}, timeout=30)
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid model name"})
    missing = httpx.post(server.url + "/api/push", json={}, timeout=30)
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("model", "status", "error"),
    [
        ("a/b/c/d/e", 400, "invalid model name"),
        ("bad..//x", 400, "invalid model name"),
        ("localhost:5000/test/absent:v1", 404, 'model "localhost:5000/test/absent:v1" not found'),
        ("absent", 404, 'model "absent" not found'),
    ],
)
def test_push_refuses_a_bad_name_or_a_missing_model_before_any_progress(
    server: ServerProcess, stream: bool, model: str, status: int, error: str
) -> None:
    body = {"model": model, "insecure": True, "stream": stream}
    response = httpx.post(server.url + "/api/push", json=body, timeout=30)
    assert (response.status_code, response.json()) == (status, {"error": error})
    log = server.log_path.read_text()
    assert "Traceback" not in log


def test_non_streamed_pull_answers_with_the_last_status(pushed: str, tmp_path: Path) -> None:
    puller = ServerProcess(tmp_path / "puller").start()
    try:
        response = httpx.post(
            puller.url + "/api/pull", json={"model": pushed, "insecure": True, "stream": False}, timeout=240
        )
        assert (response.status_code, response.json()) == (200, {"status": "success"})
    finally:
        puller.stop()


def test_a_corrupted_blob_is_rejected_and_nothing_is_written(
    source: ServerProcess, registry: DockerRegistry, tmp_path: Path
) -> None:
    client = ollama.Client(host=source.url)
    name = f"{registry.host}/test/corrupt:v1"
    client.create(name, from_="smol", system="You answer in one word, always.")
    assert stream(source, "/api/push", {"model": name, "insecure": True})[-1] == {"status": "success"}
    local = json.loads(manifest_path(source, name).read_bytes())
    system = next(layer for layer in local["layers"] if layer["mediaType"].endswith(".system"))
    registry.corrupt_blob(system["digest"], count=4)

    puller = ServerProcess(tmp_path / "puller").start()
    try:
        events = stream(puller, "/api/pull", {"model": name, "insecure": True})
        error = events[-1]["error"]
        assert isinstance(error, str)
        assert error.startswith(f"digest mismatch, file must be downloaded again: want {system['digest']}, got sha256:")
        assert system["digest"].replace(":", "-") not in store_files(puller)
        assert not [name for name in store_files(puller) if "partial" in name]
        assert not manifest_path(puller, name).exists()
    finally:
        puller.stop()


def test_replacing_a_model_removes_layers_nothing_uses(
    source: ServerProcess, registry: DockerRegistry, pushed: str, tmp_path: Path
) -> None:
    client = ollama.Client(host=source.url)
    name = f"{registry.host}/test/moving:latest"
    client.create(name, from_="smol", system="First system prompt.")
    stream(source, "/api/push", {"model": name, "insecure": True})
    first = {layer["digest"] for layer in json.loads(manifest_path(source, name).read_bytes())["layers"]}

    for noprune in (False, True):
        client.create(name, from_="smol", system="First system prompt.")
        stream(source, "/api/push", {"model": name, "insecure": True})
        env = {"OLLAMA_NOPRUNE": "1"} if noprune else {}
        puller = ServerProcess(tmp_path / f"puller-{noprune}", extra_env=env).start()
        try:
            stream(puller, "/api/pull", {"model": name, "insecure": True})
            client.create(name, from_="smol", system=f"Second system prompt {noprune}.")
            stream(source, "/api/push", {"model": name, "insecure": True})
            second = {layer["digest"] for layer in json.loads(manifest_path(source, name).read_bytes())["layers"]}
            dropped = first - second
            assert dropped
            events = stream(puller, "/api/pull", {"model": name, "insecure": True})
            files = store_files(puller)
            if noprune:
                assert "removing unused layers" not in statuses(events)
                assert all(digest.replace(":", "-") in files for digest in dropped)
            else:
                assert statuses(events)[-3:] == ["writing manifest", "removing unused layers", "success"]
                assert not any(digest.replace(":", "-") in files for digest in dropped)
            assert all(digest.replace(":", "-") in files for digest in second)
        finally:
            puller.stop()


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("private"), users={"alice": "s3cret"}) as running:
        yield running


def docker_config(home: Path, host: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_private_registry_with_docker_credentials(
    source: ServerProcess, private_registry: DockerRegistry, smollm2_path: Path, tmp_path: Path
) -> None:
    name = f"{private_registry.host}/team/smol:latest"
    ollama.Client(host=source.url).copy("smol", name)
    denied = stream(source, "/api/push", {"model": name, "insecure": True})
    assert "error" in denied[-1]
    assert str(denied[-1]["error"]).startswith("401")

    # Credentials in $DOCKER_CONFIG for the pusher, in ~/.docker/config.json for the puller.
    config_home = tmp_path / "config-home"
    docker_config(config_home, private_registry.host, "alice", "s3cret")
    pusher = ServerProcess(tmp_path / "pusher", extra_env={"DOCKER_CONFIG": str(config_home / ".docker")}).start()
    try:
        install(pusher, name, smollm2_path)
        assert stream(pusher, "/api/push", {"model": name, "insecure": True})[-1] == {"status": "success"}
    finally:
        pusher.stop()

    puller = ServerProcess(tmp_path / "puller")
    docker_config(puller.root / "home", private_registry.host, "alice", "s3cret")
    puller.start()
    try:
        assert stream(puller, "/api/pull", {"model": name, "insecure": True})[-1] == {"status": "success"}
        assert manifest_path(puller, name).exists()
    finally:
        puller.stop()

    wrong = ServerProcess(tmp_path / "wrong")
    docker_config(wrong.root / "home", private_registry.host, "alice", "wrong")
    wrong.start()
    try:
        events = stream(wrong, "/api/pull", {"model": name, "insecure": True})
        assert str(events[-1]["error"]).startswith("pull model manifest: 401")
    finally:
        wrong.stop()


def cli(server: ServerProcess, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pollama", *args], env=server.env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_pull_push_and_run_pulling_a_missing_model(
    source: ServerProcess, registry: DockerRegistry, pushed: str, tmp_path: Path
) -> None:
    puller = ServerProcess(tmp_path / "puller").start()
    try:
        done = cli(puller, "pull", "--insecure", pushed)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert lines[0] == "pulling manifest"
        assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
        bars = [line for line in lines if line.startswith("pulling ") and "%" in line]
        assert len(bars) == 2
        assert all(re.fullmatch(r"pulling [0-9a-f]{12}: 100% ▕█+▏ +\d+(\.\d)? [KMG]?B", line) for line in bars), bars

        missing = cli(puller, "pull", "--insecure", f"{registry.host}/test/smol:absent")
        assert missing.returncode == 1
        assert missing.stderr.splitlines()[-1] == "Error: pull model manifest: file does not exist"

        # A short answer budget: a sampled SmolLM2 answer has no natural bound.
        name = f"{registry.host}/cli/smol:latest"
        ollama.Client(host=puller.url).create(name, from_=pushed, parameters={"num_predict": 12})
        pushed_cli = cli(puller, "push", "--insecure", name)
        assert pushed_cli.returncode == 0, pushed_cli.stderr
        assert pushed_cli.stdout == f"\nYou can find your model at:\n\n\t{name}\n"
        assert pushed_cli.stderr.splitlines()[0] == "retrieving manifest"
        assert pushed_cli.stderr.splitlines()[-2:] == ["pushing manifest", "success"]

        runner = ServerProcess(tmp_path / "runner").start()
        try:
            answer = cli(runner, "run", "--insecure", name, "Say hi", timeout=240)
            assert answer.returncode == 0, answer.stderr
            assert "pulling manifest" in answer.stderr and "success" in answer.stderr
            assert answer.stdout.strip()
            assert manifest_path(runner, name).exists()
        finally:
            runner.stop()
    finally:
        puller.stop()


def test_private_registry_through_a_docker_credential_helper(
    private_registry: DockerRegistry, smollm2_path: Path, tmp_path: Path
) -> None:
    name = f"{private_registry.host}/helped/smol:latest"
    pusher = ServerProcess(tmp_path / "pusher")
    docker_config(pusher.root / "home", private_registry.host, "alice", "s3cret")
    pusher.start()
    try:
        install(pusher, name, smollm2_path)
        assert stream(pusher, "/api/push", {"model": name, "insecure": True})[-1] == {"status": "success"}
    finally:
        pusher.stop()

    # As `docker login` with a credential store leaves it: no secret in config.json, a helper on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-pollama-test"
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\":\\"alice\\",\\"Secret\\":\\"s3cret\\"}"\n')
    helper.chmod(0o755)
    puller = ServerProcess(tmp_path / "puller", extra_env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    (puller.root / "home" / ".docker").mkdir(parents=True)
    config = {"auths": {private_registry.host: {}}, "credHelpers": {private_registry.host: "pollama-test"}}
    (puller.root / "home" / ".docker" / "config.json").write_text(json.dumps(config))
    puller.start()
    try:
        assert stream(puller, "/api/pull", {"model": name, "insecure": True})[-1] == {"status": "success"}
    finally:
        puller.stop()
