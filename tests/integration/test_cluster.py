"""``pollama cluster`` for real: a local multi-node Ray cluster, replicas of pollama, models from a registry.

One Ray head and three worker nodes run as separate processes on this machine; each worker node offers
one ``pollama_replica`` resource, so each replica lands on a node of its own, with a store of its own
(``--models-dir .../{node}``). Two models are pushed to a real registry (Debian's docker-registry) and
reach each node only by the pulls of first use. The official clients talk to the cluster's endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

ray = pytest.importorskip("ray", reason="the cluster needs Ray: pip install 'pollama[cluster]'")

from ray import serve  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from pollama.cluster.app import deploy, teardown  # noqa: E402
from pollama.cluster.options import ClusterOptions  # noqa: E402
from tests.integration.test_scheduler import install  # noqa: E402
from tests.registries import DockerRegistry  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402
from tools.test_models import ensure_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)

WORKER_NODES = 3
APP = "pollama-test"
KEY = "cluster-test-internal-key"  # the replicas' servers' key, so that the tests can look inside


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, registry: DockerRegistry) -> dict[str, str]:
    """SmolLM2 and Gemma 3 pushed to the registry; the server that pushed them is gone afterwards."""
    source = ServerProcess(tmp_path_factory.mktemp("source")).start()
    names = {"smol": f"{registry.host}/test/smol:v1", "gemma": f"{registry.host}/test/gemma:v1"}
    try:
        client = ollama.Client(host=source.url)
        for key, model in (("smol", "smollm2"), ("gemma", "gemma3")):
            install(source, key, ensure_model(model))
            client.copy(key, names[key])
            assert client.push(names[key], insecure=True).status == "success"
    finally:
        source.stop()
    return names


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    small = {"object_store_memory": 80 << 20, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **small})
    for _ in range(WORKER_NODES):
        cluster.add_node(num_cpus=1, resources={"pollama_replica": 1}, object_store_memory=80 << 20)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> ClusterOptions:
    root = tmp_path_factory.mktemp("cluster")
    (root / "home").mkdir()
    return ClusterOptions(
        address="", host="127.0.0.1", port=free_port(), app_name=APP,
        min_replicas=2, max_replicas=WORKER_NODES, target_ongoing_requests=2, upscale_delay_s=1,
        downscale_delay_s=3600, models_per_replica=1, replica_cpus=0, replica_resources={"pollama_replica": 1},
        models_dir=str(root / "stores" / "{node}"), insecure=True,
        server_env={"HOME": str(root / "home"), "OLLAMA_NUM_PARALLEL": "4"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def endpoint(ray_cluster: Cluster, models: dict[str, str], options: ClusterOptions) -> Iterator[str]:
    url = deploy(options, internal_key=KEY)
    yield url
    teardown(options)


def chat_text(client: ollama.Client, model: str, prompt: str) -> str:
    answer = client.chat(model=model, messages=[{"role": "user", "content": prompt}], options={"num_predict": 8})
    return answer.message.content or ""


def test_every_api_answers_through_the_cluster(endpoint: str, models: dict[str, str]) -> None:
    client = ollama.Client(host=endpoint)
    smol = models["smol"]
    assert httpx.get(endpoint + "/").text == "Ollama is running"
    assert client.generate(model=smol, prompt="Hi", options={"num_predict": 4, "temperature": 0}).done
    parts = list(client.chat(model=smol, messages=[{"role": "user", "content": "Count to ten."}], stream=True,
                             options={"num_predict": 12}))  # fmt: skip
    assert len(parts) > 3 and parts[-1].done and not any(part.done for part in parts[:-1])
    assert client.show(smol).modelfile
    oai = openai.OpenAI(base_url=endpoint + "/v1", api_key="unused")
    completion = oai.chat.completions.create(model=smol, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert completion.choices[0].message.content is not None
    chunks = list(oai.chat.completions.create(model=smol, messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=6, stream=True))  # fmt: skip
    assert len(chunks) > 2
    claude = anthropic.Anthropic(base_url=endpoint, api_key="unused")
    message = claude.messages.create(model=smol, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert message.content and message.content[0].type == "text"
    names = {entry.model for entry in client.list().models}
    assert smol in names
    assert any(entry.id == smol for entry in oai.models.list().data)
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model=f"{smol.rpartition(':')[0]}:missing", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.status_code == 404
    refused = httpx.post(endpoint + "/api/push", json={"model": smol})
    assert refused.status_code == 501 and "registry" in refused.json()["error"]


def test_requests_stick_to_the_replica_that_holds_their_model(
    endpoint: str, models: dict[str, str], options: ClusterOptions
) -> None:
    client = ollama.Client(host=endpoint)
    for _round in range(4):
        for key in ("smol", "gemma"):
            assert chat_text(client, models[key], "Say hello.") is not None
    where = loaded_where(endpoint)
    smol, gemma = where[models["smol"]], where[models["gemma"]]
    # One replica each, and not the same one: a replica keeps one model here (models_per_replica=1),
    # so a request landing on the other model's replica would have evicted it.
    assert len(smol) == 1 and len(gemma) == 1 and smol != gemma, where
    servers = {server["replica"]: server for server in replica_servers()}
    for key, holder in (("smol", smol[0]), ("gemma", gemma[0])):
        loads = {replica: metric(server["url"], "pollama_model_loads_total", model=models[key])
                 for replica, server in servers.items()}  # fmt: skip
        assert loads[holder] == 1 and sum(loads.values()) == 1, (key, loads)
    # Each model reached only the stores of the nodes that served it, by a pull of first use.
    stores = Path(options.models_dir.removesuffix("{node}"))
    for key, holder in (("smol", smol[0]), ("gemma", gemma[0])):
        host_path, _, tag = models[key].rpartition(":")
        holding = {node.name for node in stores.iterdir() if (node / "manifests" / host_path / tag).exists()}
        assert servers[holder]["node"] in holding, (key, holding)
    tags = {entry.model for entry in client.list().models}
    assert {models["smol"], models["gemma"]} <= tags


def test_ps_on_the_command_line_names_each_models_node(endpoint: str, models: dict[str, str]) -> None:
    env = {**os.environ, "OLLAMA_HOST": endpoint}
    shown = subprocess.run([sys.executable, "-m", "pollama", "ps"], env=env, capture_output=True, text=True, check=True)
    header, *rows = shown.stdout.splitlines()
    assert header.split()[-1] == "NODE"
    nodes = {server["node"][:8] for server in replica_servers()}
    smol_rows = [row for row in rows if row.startswith(models["smol"])]
    assert smol_rows and all(row.split()[-1] in nodes for row in smol_rows)


COUNTING = "Count from 1 to 1000, one number per line: 1, 2, 3, and so on. Do not stop early."


def test_a_client_that_leaves_cancels_the_request_on_its_replica(endpoint: str, models: dict[str, str]) -> None:
    smol = models["smol"]
    holder = loaded_where(endpoint)[smol][0]
    url = next(server["url"] for server in replica_servers() if server["replica"] == holder)
    finished_before = metric(url, "pollama_http_requests_total", method="POST", route="/api/generate", status="200")
    body = {"model": smol, "prompt": COUNTING, "options": {"num_predict": 4000, "temperature": 0}}
    with httpx.stream("POST", endpoint + "/api/generate", json=body, timeout=60) as response:
        lines = []
        for line in response.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 5:
                break
    assert not any(line.get("done") for line in lines)  # the answer was far from its end
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        finished = metric(url, "pollama_http_requests_total", method="POST", route="/api/generate", status="200")
        if finished > finished_before:
            break
        time.sleep(0.2)
    # Thousands of tokens at a few dozen a second: only a cancelled answer ends this soon.
    assert finished == finished_before + 1


def stream_lines(endpoint: str, body: dict[str, Any], into: list[dict[str, Any]]) -> None:
    try:
        with httpx.stream("POST", endpoint + "/api/generate", json=body, timeout=300) as response:
            into.append({"status": response.status_code})
            for line in response.iter_lines():
                into.append(json.loads(line))
    except httpx.HTTPError as err:  # would mean a request lost without an answer
        into.append({"transport_error": str(err)})


def test_replicas_scale_up_under_a_burst(endpoint: str, models: dict[str, str], options: ClusterOptions) -> None:
    assert running_replicas() == options.min_replicas
    body = {"model": models["smol"], "prompt": COUNTING, "options": {"num_predict": 300, "temperature": 0}}
    answers: list[list[dict[str, Any]]] = [[] for _ in range(8)]
    threads = [threading.Thread(target=stream_lines, args=(endpoint, body, lines)) for lines in answers]
    for thread in threads:
        thread.start()
    most = running_replicas()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and most < options.max_replicas:
        time.sleep(0.5)
        most = max(most, running_replicas())
    for thread in threads:
        thread.join(timeout=300)
    assert most == options.max_replicas
    for lines in answers:
        assert lines[0] == {"status": 200} and lines[-1].get("done") is True, lines[-2:]


def test_a_killed_replica_ends_its_streams_with_an_error_and_others_serve(
    endpoint: str, models: dict[str, str]
) -> None:
    smol = models["smol"]
    holder = loaded_where(endpoint)[smol][0]
    body = {"model": smol, "prompt": COUNTING, "options": {"num_predict": 2000, "temperature": 0}}
    answers: list[list[dict[str, Any]]] = [[] for _ in range(3)]
    threads = [threading.Thread(target=stream_lines, args=(endpoint, body, lines)) for lines in answers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(lines) > 3 for lines in answers):
        time.sleep(0.1)
    actor = next(
        name for name in ray.util.list_named_actors(all_namespaces=True)
        if name["name"].endswith(f"#{holder}")
    )  # fmt: skip
    ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
    # Sent while the replica is dying: answered by another one, none lost.
    after = [chat_text(ollama.Client(host=endpoint), smol, "Say hello.") for _ in range(3)]
    for thread in threads:
        thread.join(timeout=120)
    for lines in answers:
        assert lines[0] == {"status": 200}
        assert "replica" in lines[-1].get("error", ""), lines[-2:]
        assert not any("transport_error" in line or line.get("done") for line in lines)
    assert all(text is not None for text in after)
    assert holder not in loaded_where(endpoint)[smol]


# --- looking inside the replicas ---------------------------------------------------------------------


def replica_servers() -> list[dict[str, str]]:
    """Every registered replica: its id, node and the URL of its own ``pollama serve``."""
    from pollama.cluster.directory import directory

    return [{**entry.where, "url": entry.url} for entry in ray.get(directory(APP).entries.remote())]


def metric(url: str, name: str, **labels: str) -> float:
    """A value from one replica server's /metrics (0 when the series does not exist yet)."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return 0.0


def loaded_where(endpoint: str) -> dict[str, list[str]]:
    """model -> the replicas that have it loaded, from the cluster's own /api/ps."""
    where: dict[str, list[str]] = {}
    for entry in httpx.get(endpoint + "/api/ps", timeout=30).json()["models"]:
        where.setdefault(entry["model"], []).append(entry["replica"])
    return where


def running_replicas() -> int:
    status = serve.status().applications[APP].deployments["Replica"]
    return int(status.replica_states.get("RUNNING", 0))


def test_a_cluster_with_api_keys_refuses_requests_without_one(
    endpoint: str, models: dict[str, str], options: ClusterOptions
) -> None:
    # Last: redeploys the application with keys (its replicas restart).
    deploy(dataclasses.replace(options, api_keys=("cluster-key",)), internal_key=KEY)
    assert httpx.get(endpoint + "/").status_code == 200  # the health check stays open, as on one server
    assert httpx.get(endpoint + "/api/tags").status_code == 401
    with pytest.raises(ollama.ResponseError) as refused:
        chat_text(ollama.Client(host=endpoint), models["smol"], "Hi")
    assert refused.value.status_code == 401
    keyed = ollama.Client(host=endpoint, headers={"Authorization": "Bearer cluster-key"})
    assert chat_text(keyed, models["smol"], "Hi") is not None
    assert models["smol"] in {entry.model for entry in keyed.list().models}
    claude = anthropic.Anthropic(base_url=endpoint, api_key="cluster-key")  # sent as x-api-key
    assert claude.messages.create(model=models["smol"], max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
