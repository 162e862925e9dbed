"""Pull and push speed against a real registry, with baselines measured in the same run.

    python -m bench.registry

A local CNCF distribution server (Debian's ``docker-registry``) holds Qwen2.5-Coder-0.5B (491 MB,
five 100 MB parts) and SmolLM2 (98 MB, one part). For each:

(a) push: ``/api/push`` to an empty repository (parts in order, as a stock registry needs);
(b) pull: ``/api/pull`` into an empty store (best of three) (ranged parts in parallel, sha256 verified, manifest
    written) against the baseline of one plain streamed GET of the same blob, hashed as it arrives
    and written to disk (what a naive client does, with no resume, no parallelism);
(c) resume: a pull interrupted at about half-way (the server is killed), then completed by a new
    server: the bytes the second pull fetched against the blob's size.

Loopback has no latency or per-connection limit, so parallel parts buy nothing here; against a
real CDN they do. The figure that matters is that the protocol work (parts, part state, verify,
atomic rename) costs little over the raw transfer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.integration.test_scheduler import install
from tests.registries import DockerRegistry, ForwardProxy
from tests.servers import ServerProcess
from tools.test_models import ensure_model

MB = 1e6
REPEATS = 3  # best of: the disk of a shared machine is noisy


def _stream(server: ServerProcess, path: str, body: dict[str, object]) -> list:
    events = []
    with httpx.stream("POST", server.url + path, json=body, timeout=600) as response:
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
    return events


def _stream_until_killed(server: ServerProcess, path: str, body: dict[str, object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        _stream(server, path, body)


def _baseline_get(registry: DockerRegistry, repo: str, digest: str, target: Path) -> float:
    start = time.perf_counter()
    sha = hashlib.sha256()
    url = f"{registry.url}/v2/{repo}/blobs/{digest}"
    with httpx.stream("GET", url, timeout=600) as response, target.open("wb") as handle:
        for chunk in response.iter_bytes(1 << 20):
            sha.update(chunk)
            handle.write(chunk)
    assert "sha256:" + sha.hexdigest() == digest
    return time.perf_counter() - start


def _model_blob(server: ServerProcess, name: str) -> tuple[str, int]:
    host_path, _, tag = name.rpartition(":")
    manifest = json.loads((server.models / "manifests" / host_path / tag).read_bytes())
    layer = next(layer for layer in manifest["layers"] if layer["mediaType"].endswith(".model"))
    return layer["digest"], layer["size"]


def main() -> None:
    models = {"smollm2": ensure_model("smollm2"), "qwen2.5-coder": ensure_model("qwen2.5-coder")}
    with tempfile.TemporaryDirectory() as scratch, DockerRegistry(Path(scratch) / "registry") as registry:
        root = Path(scratch)
        source = ServerProcess(root / "source").start()
        try:
            print(f"{'model':<15}{'size':>9}{'push':>9}{'pull':>9}{'baseline GET':>14}{'pull/baseline':>15}")
            for label, path in models.items():
                name = f"{registry.host}/bench/{label}:latest"
                install(source, name, path)
                digest, size = _model_blob(source, name)

                start = time.perf_counter()
                assert _stream(source, "/api/push", {"model": name, "insecure": True})[-1] == {"status": "success"}
                push = time.perf_counter() - start

                pulls, baselines = [], []
                for attempt in range(REPEATS):
                    puller = ServerProcess(root / f"pull-{label}-{attempt}").start()
                    try:
                        start = time.perf_counter()
                        events = _stream(puller, "/api/pull", {"model": name, "insecure": True})
                        pulls.append(time.perf_counter() - start)
                        assert events[-1] == {"status": "success"}
                    finally:
                        puller.stop()
                    target = root / f"baseline-{label}"
                    baselines.append(_baseline_get(registry, f"bench/{label}", digest, target))
                    target.unlink()
                pull, baseline = min(pulls), min(baselines)
                ratio = pull / baseline
                print(f"{label:<15}{size / MB:>7.0f}MB{push:>8.2f}s{pull:>8.2f}s{baseline:>13.2f}s{ratio:>14.2f}x")
            _resume(registry, source, root, f"{registry.host}/bench/qwen2.5-coder:latest")
        finally:
            source.stop()


def _resume(registry: DockerRegistry, source: ServerProcess, root: Path, name: str) -> None:
    digest, size = _model_blob(source, name)
    with ForwardProxy(hosts={"registry.bench": "127.0.0.1"}, rate=150 * MB) as proxy:
        proxied = name.replace("127.0.0.1", "registry.bench")
        env = {"HTTP_PROXY": proxy.url}
        first = ServerProcess(root / "resume", extra_env=env).start()
        halfway = threading.Event()

        def watch() -> None:
            while proxy.bytes_by_path.get(f"/v2/bench/qwen2.5-coder/blobs/{digest}", 0) < size / 2:
                time.sleep(0.05)
            halfway.set()

        threading.Thread(target=watch, daemon=True).start()
        body = {"model": proxied, "insecure": True}
        threading.Thread(target=_stream_until_killed, args=(first, "/api/pull", body), daemon=True).start()
        halfway.wait(300)
        first.process.kill()  # type: ignore[union-attr]
        first.process.wait()  # type: ignore[union-attr]
        fetched_before = proxy.bytes_by_path[f"/v2/bench/qwen2.5-coder/blobs/{digest}"]
        proxy.rate = None
        second = ServerProcess(root / "resume", extra_env=env).start()
        try:
            start = time.perf_counter()
            assert _stream(second, "/api/pull", {"model": proxied, "insecure": True})[-1] == {"status": "success"}
            elapsed = time.perf_counter() - start
        finally:
            second.stop()
        fetched_after = proxy.bytes_by_path[f"/v2/bench/qwen2.5-coder/blobs/{digest}"] - fetched_before
        total = (fetched_before + fetched_after) / size
        print(
            f"resume: killed after {fetched_before / MB:.0f} MB of {size / MB:.0f} MB; the new server fetched "
            f"{fetched_after / MB:.0f} MB more ({total:.3f}x the blob in all) in {elapsed:.2f}s"
        )


if __name__ == "__main__":
    main()
