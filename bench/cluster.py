"""The cluster against one server and against two servers behind plain round-robin, in the same run.

    python -m bench.cluster                      # 1, 4 and 8 clients, 2 rounds
    python -m bench.cluster --clients 1,2,4,8 --rounds 3 --tokens 64

Three ways to serve SmolLM2, all up at once, all with OLLAMA_NUM_PARALLEL=4 per server:

* ``single``: one ``pollama serve``, its runner using every core;
* ``round-robin``: two more ``pollama serve`` behind nginx's plain round-robin (what teams put in front of
  several Ollama servers), skipped without an ``nginx`` binary;
* ``cluster``: ``pollama cluster`` on a local Ray cluster of a head and two worker nodes, two replicas,
  each taking as many requests at once as its server has slots (``--max-requests 4``), so that a
  burst spills over to the second replica.

(a) Load: N clients each stream R answers of T tokens one after the other (a prompt that runs to
    ``num_predict``); aggregate tokens/s (every answer's eval_count over the wall time) and the mean
    time to first token. Rounds are interleaved (the order of the systems rotates); the figure is the
    median, the spread (min-max) after it; ratios are against ``single`` from the same run.
(b) Per-request cost: the median latency of 30 sequential ``/api/show`` (no inference: the routing path
    alone) and of 30 one-token generations with a cached prompt, for each system.

On one machine every system shares the same cores, so neither round-robin nor the cluster can add
throughput here: what this run shows is their overhead. The two-server systems get half the cores per
server (``num_thread``), as two machines would each have their own: two runners that each spin a thread
per core on the same cores slow each other down by an order of magnitude (llama.cpp's threads busy-wait
at every barrier), which would measure the oversubscription rather than the routing. They pay when the
servers are on machines of their own (see the README's cluster section).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pollama.runtime.devices import physical_cores
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess, free_port
from tools.test_models import ensure_model

MODEL = "smol"
PARALLEL = "4"
PROMPT = "Count from 1 to 1000, one number per line: 1, 2, 3, and so on. Do not stop early. Start at {start}."


@dataclass(frozen=True)
class System:
    url: str
    threads: int  # num_thread of each of its servers' runners


@dataclass
class Load:
    tokens_per_second: float
    first_token: float  # mean seconds


def stream_one(system: System, start: int, tokens: int) -> tuple[float, int]:
    """(seconds to the first token, tokens generated) of one streamed answer."""
    options = {"num_predict": tokens, "temperature": 0, "num_thread": system.threads}
    body = {"model": MODEL, "prompt": PROMPT.format(start=start), "options": options}
    began = time.perf_counter()
    first = 0.0
    with httpx.stream("POST", system.url + "/api/generate", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not first and '"response":""' not in line:
                first = time.perf_counter() - began
            if '"done":true' in line:
                return first, int(json.loads(line)["eval_count"])
    raise RuntimeError(f"the answer from {system.url} ended without done")


def load(system: System, clients: int, answers: int, tokens: int) -> Load:
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for answer in range(answers):
            result = stream_one(system, index * 100 + answer, tokens)
            with lock:
                results.append(result)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return Load(sum(count for _first, count in results) / wall, statistics.mean(first for first, _ in results))


def latency(call: Callable[[], object], times: int = 30) -> float:
    seconds = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def per_request(system: System) -> tuple[float, float]:
    with httpx.Client(base_url=system.url, timeout=60) as http:
        show = latency(lambda: http.post("/api/show", json={"model": MODEL}).raise_for_status())
        options = {"num_predict": 1, "temperature": 0, "num_thread": system.threads}
        body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": options}
        one = latency(lambda: http.post("/api/generate", json=body).raise_for_status())
    return show, one


# --- the systems ---------------------------------------------------------------------------------------


@contextmanager
def servers(root: Path, count: int) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for index in range(count):
            server = ServerProcess(root / f"server{index}", extra_env={"OLLAMA_NUM_PARALLEL": PARALLEL}).start()
            started.append(server)
            install(server, MODEL, ensure_model("smollm2"))
        yield started
    finally:
        for server in started:
            server.stop()


@contextmanager
def round_robin(root: Path, upstreams: list[ServerProcess]) -> Iterator[str | None]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None:
        print("round-robin: no nginx binary (Debian: apt-get install nginx-light); skipped")
        yield None
        return
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    members = "".join(f"server 127.0.0.1:{server.port};" for server in upstreams)
    config = root / "nginx.conf"
    config.write_text(
        ("user root;" if os.geteuid() == 0 else "")
        + f"worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;"
        + "events { worker_connections 256; } http {"
        + f"access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;"
        + " ".join(f"{m}_temp_path {root}/{m};" for m in ("fastcgi", "uwsgi", "scgi"))
        + f"upstream pollama {{ {members} keepalive 16; }}"
        + f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://pollama; proxy_http_version 1.1;"
        + " proxy_set_header Host localhost;"
        + ' proxy_set_header Connection ""; proxy_buffering off; proxy_read_timeout 600s; } } }'
    )
    process = subprocess.Popen([nginx, "-e", str(root / "error.log"), "-c", str(config), "-g", "daemon off;"])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait()


@contextmanager
def ray_cluster(root: Path, store: Path) -> Iterator[str]:
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from pollama.cluster.app import deploy, teardown
    from pollama.cluster.options import ClusterOptions

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 << 20},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, resources={"pollama_replica": 1}, object_store_memory=80 << 20)
    ray.init(address=cluster.address, log_to_driver=False)
    (root / "home").mkdir(parents=True, exist_ok=True)
    options = ClusterOptions(
        address="", host="127.0.0.1", port=free_port(), app_name="bench", min_replicas=2, max_replicas=2,
        max_ongoing_requests=int(PARALLEL), models_per_replica=1, replica_cpus=0,
        replica_resources={"pollama_replica": 1}, models_dir=str(store),
        server_env={"HOME": str(root / "home"), "OLLAMA_NUM_PARALLEL": PARALLEL},
    )  # fmt: skip
    try:
        yield deploy(options)
    finally:
        teardown(options)
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--answers", type=int, default=2, help="answers per client")
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    counts = [int(part) for part in args.clients.split(",")]
    cores = physical_cores()
    half = max(1, cores // 2)
    print(f"machine: {cores} cores; SmolLM2 Q4_1; OLLAMA_NUM_PARALLEL={PARALLEL} per server")
    print(f"threads per runner: single {cores}, round-robin and cluster {half} (two servers)")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        with (
            servers(root, 3) as (alone, first, second),
            round_robin(root / "nginx", [first, second]) as rr_url,
            ray_cluster(root / "cluster", alone.models) as cluster_url,
        ):
            systems = {"single": System(alone.url, cores), "cluster": System(cluster_url, half)}
            if rr_url:
                systems["round-robin"] = System(rr_url, half)
            for system in systems.values():  # warm: every model loaded where it will be used
                load(system, 8, 1, 4)
            report_load(systems, counts, args)
            report_per_request(systems)


def report_load(systems: dict[str, System], counts: list[int], args: argparse.Namespace) -> None:
    names = list(systems)
    figures: dict[tuple[str, int], list[Load]] = {}
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for clients in counts:
            for name in order:
                figures.setdefault((name, clients), []).append(load(systems[name], clients, args.answers, args.tokens))
    print(f"\n(a) load: N clients x {args.answers} answers x {args.tokens} tokens, median of {args.rounds} rounds")
    print(f"{'clients':>7} {'system':<12} {'tok/s':>16} {'vs single':>9} {'TTFT s':>16} {'vs single':>9}")
    for clients in counts:
        base = figures[("single", clients)]
        for name in names:
            runs = figures[(name, clients)]
            rate = statistics.median(run.tokens_per_second for run in runs)
            ttft = statistics.median(run.first_token for run in runs)
            rate_spread = f"({min(r.tokens_per_second for r in runs):.1f}-{max(r.tokens_per_second for r in runs):.1f})"
            ttft_spread = f"({min(r.first_token for r in runs):.2f}-{max(r.first_token for r in runs):.2f})"
            base_rate = statistics.median(run.tokens_per_second for run in base)
            base_ttft = statistics.median(run.first_token for run in base)
            print(
                f"{clients:>7} {name:<12} {rate:6.1f} {rate_spread:>9} {rate / base_rate:8.2f}x"
                f" {ttft:6.2f} {ttft_spread:>9} {ttft / base_ttft:8.2f}x"
            )


def report_per_request(systems: dict[str, System]) -> None:
    print("\n(b) per-request cost: median of 30 sequential requests")
    print(f"{'system':<12} {'/api/show ms':>12} {'+ms':>7} {'1-token generate ms':>20} {'+ms':>7}")
    measured = {name: per_request(system) for name, system in systems.items()}
    base_show, base_one = measured["single"]
    for name, (show, one) in measured.items():
        print(
            f"{name:<12} {show * 1000:12.1f} {(show - base_show) * 1000:+7.1f}"
            f" {one * 1000:20.1f} {(one - base_one) * 1000:+7.1f}"
        )


if __name__ == "__main__":
    main()
