"""A store written the way real Ollama writes it must list, show and prune correctly."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import ollama
import pytest

from tests.ggufs import write_gguf
from tests.servers import ServerProcess

LLAMA3_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


class OllamaStore:
    """Writes blobs and manifests byte for byte as Ollama's Go code does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes, *, legacy_name: bool = False) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        name = digest if legacy_name else digest.replace(":", "-")
        (self.root / "blobs" / name).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    def layer(self, media: str, data: bytes, **extra: str) -> dict:
        return {"mediaType": f"application/vnd.ollama.image.{media}", **self.blob(data), **extra}

    def manifest(self, parts: tuple[str, str, str, str], raw: bytes) -> Path:
        path = self.root.joinpath("manifests", *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return path


def go_encode(value: object) -> bytes:
    """Go's json.Encoder: compact, HTML-escaped, newline-terminated."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n").encode()


@pytest.fixture
def ollama_store(tmp_path: Path) -> tuple[ServerProcess, dict[str, bytes]]:
    server = ServerProcess(tmp_path / "server")
    store = OllamaStore(server.models)
    weights = write_gguf(tmp_path / "w.gguf", kv={"llama.attention.head_count": 4}).read_bytes()
    raw: dict[str, bytes] = {}

    # Created locally by `ollama create` from a GGUF: json.Encoder output, "from" on the weights layer.
    config = go_encode(
        {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "3.2B",
            "file_type": "Q4_K_M",
            "architecture": "amd64",
            "os": "linux",
        }
    )
    layers = [
        store.layer("model", weights, **{"from": "/home/me/llama.gguf"}),
        store.layer("template", LLAMA3_TEMPLATE.encode()),
        store.layer("license", b"LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLine two\nLine three"),
        store.layer("params", b'{"stop":["\\u003c|start_header_id|\\u003e","\\u003c|eot_id|\\u003e"]}\n'),
        store.layer("system", b"You are a helpful assistant."),
        store.layer("messages", b'[{"role":"user","content":"hello"},{"role":"assistant","content":"hi!"}]\n'),
    ]
    raw["local"] = go_encode(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **store.blob(config)},
            "layers": layers,
        }
    )
    store.manifest(("registry.ollama.ai", "library", "llama3.2", "latest"), raw["local"])

    # Pulled from a registry: stored verbatim, here pretty-printed with keys in another order,
    # a config with rootfs, a legacy "prompt" template layer and a legacy `sha256:` blob file name.
    pulled_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "8B",
            "file_type": "Q8_0",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    template = store.layer("prompt", b"{{ .System }} USER: {{ .Prompt }} ASSISTANT:")
    legacy = store.blob(b"legacy-named system prompt", legacy_name=True)
    raw["pulled"] = json.dumps(
        {
            "layers": [
                {
                    "digest": layers[0]["digest"],
                    "mediaType": "application/vnd.ollama.image.model",
                    "size": layers[0]["size"],
                },
                template,
                {"mediaType": "application/vnd.ollama.image.system", **legacy},
            ],
            "config": {
                "size": len(pulled_config),
                "digest": store.blob(pulled_config)["digest"],
                "mediaType": "application/vnd.docker.container.image.v1+json",
            },
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "schemaVersion": 2,
        },
        indent=3,
    ).encode()
    store.manifest(("myhost:5000", "mynamespace", "lips", "code"), raw["pulled"])
    older = time.time() - 86400
    os.utime(server.models / "manifests" / "myhost:5000" / "mynamespace" / "lips" / "code", (older, older))
    yield server, raw
    server.stop()


def test_lists_models_written_by_ollama(ollama_store: tuple[ServerProcess, dict[str, bytes]]) -> None:
    server, raw = ollama_store
    server.start()
    models = ollama.Client(host=server.url).list().models
    assert [m.model for m in models] == ["llama3.2:latest", "myhost:5000/mynamespace/lips:code"]
    local, pulled = models
    assert local.digest == hashlib.sha256(raw["local"]).hexdigest()
    assert pulled.digest == hashlib.sha256(raw["pulled"]).hexdigest()
    manifest = json.loads(raw["local"])
    assert local.size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert local.details.parameter_size == "3.2B"
    assert local.details.quantization_level == "Q4_K_M"
    assert pulled.details.quantization_level == "Q8_0"
    assert local.details.parent_model == "/home/me/llama.gguf"


def test_shows_models_written_by_ollama(ollama_store: tuple[ServerProcess, dict[str, bytes]]) -> None:
    server, _raw = ollama_store
    server.start()
    shown = httpx.post(server.url + "/api/show", json={"model": "llama3.2"}).json()
    assert shown["template"] == LLAMA3_TEMPLATE
    assert shown["system"] == "You are a helpful assistant."
    assert shown["license"] == "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLine two\nLine three"
    assert shown["parameters"].splitlines() == [
        'stop                           "<|start_header_id|>"',
        'stop                           "<|eot_id|>"',
    ]
    assert shown["messages"] == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi!"}]
    assert shown["model_info"]["llama.attention.head_count"] == 4
    assert shown["capabilities"] == ["completion"]

    pulled = httpx.post(server.url + "/api/show", json={"model": "myhost:5000/mynamespace/lips:code"}).json()
    assert pulled["template"] == "{{ .System }} USER: {{ .Prompt }} ASSISTANT:"
    assert pulled["system"] == "legacy-named system prompt"  # the `sha256:` blob was renamed at startup
    assert not any(":" in path.name for path in (server.models / "blobs").iterdir())


def test_show_modelfile_recreates_an_ollama_model(
    ollama_store: tuple[ServerProcess, dict[str, bytes]], tmp_path: Path
) -> None:
    server, _raw = ollama_store
    server.start()
    modelfile = httpx.post(server.url + "/api/show", json={"model": "llama3.2"}).json()["modelfile"]
    (tmp_path / "Modelfile").write_text(modelfile)
    result = server.cli("create", "again", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    original = httpx.post(server.url + "/api/show", json={"model": "llama3.2"}).json()
    again = httpx.post(server.url + "/api/show", json={"model": "again"}).json()
    for key in ("template", "system", "license", "parameters", "messages", "model_info", "capabilities"):
        assert again[key] == original[key], key


def test_startup_prunes_only_old_unreferenced_blobs(ollama_store: tuple[ServerProcess, dict[str, bytes]]) -> None:
    server, _raw = ollama_store
    blobs = server.models / "blobs"
    hours_ago = time.time() - 7200
    stale = blobs / ("sha256-" + "a" * 64)
    fresh = blobs / ("sha256-" + "b" * 64)
    partial = blobs / ("sha256-" + "c" * 64 + "-partial")
    for path in (stale, fresh, partial):
        path.write_bytes(b"unreferenced")
    for path in (stale, partial):
        os.utime(path, (hours_ago, hours_ago))
    referenced = set(blobs.iterdir()) - {stale, fresh, partial}

    server.start()
    remaining = set(blobs.iterdir())
    assert fresh in remaining  # younger than an hour: may belong to a create in progress
    assert stale not in remaining and partial not in remaining
    assert {p.name.replace(":", "-") for p in referenced} <= {p.name for p in remaining}


def test_noprune_keeps_everything(ollama_store: tuple[ServerProcess, dict[str, bytes]]) -> None:
    server, _raw = ollama_store
    stale = server.models / "blobs" / ("sha256-" + "a" * 64)
    stale.write_bytes(b"unreferenced")
    os.utime(stale, (time.time() - 7200,) * 2)
    server.extra_env["OLLAMA_NOPRUNE"] = "1"
    server.start()
    assert stale.exists()


def test_corrupt_manifest_stops_pruning_but_not_listing(ollama_store: tuple[ServerProcess, dict[str, bytes]]) -> None:
    server, _raw = ollama_store
    stale = server.models / "blobs" / ("sha256-" + "a" * 64)
    stale.write_bytes(b"unreferenced")
    os.utime(stale, (time.time() - 7200,) * 2)
    broken = server.models / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    server.start()
    assert stale.exists()
    names = [m.model for m in ollama.Client(host=server.url).list().models]
    assert names == ["llama3.2:latest", "myhost:5000/mynamespace/lips:code"]
