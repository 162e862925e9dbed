"""Model management through a real server, driven by the official ``ollama`` Python client."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import httpx
import ollama
import pytest

from tests.integration.conftest import upload
from tests.servers import ServerProcess


def blob_names(server: ServerProcess) -> set[str]:
    return {path.name for path in (server.models / "blobs").iterdir()}


def manifest_path(server: ServerProcess, name: str, namespace: str = "library", tag: str = "latest") -> Path:
    return server.models / "manifests" / "registry.ollama.ai" / namespace / name / tag


def show(server: ServerProcess, model: str) -> dict:
    """The whole /api/show answer (the official client's model leaves out system and messages)."""
    response = httpx.post(server.url + "/api/show", json={"model": model})
    response.raise_for_status()
    return response.json()


def create(client: ollama.Client, model: str, **kwargs: object) -> list[str]:
    return [event.status for event in client.create(model, stream=True, **kwargs)]


@pytest.fixture(scope="module")
def smol_digest(server: ServerProcess, smollm2_path: Path) -> str:
    """SmolLM2's weights, used by a model so that no failed create removes them (it removes its uploads)."""
    client = ollama.Client(host=server.url)
    digest = upload(client, smollm2_path)
    assert client.create("smol-weights", files={"smol.gguf": digest}).status == "success"
    return digest


class TestBlobs:
    def test_upload_with_the_official_client_then_head(
        self, client: ollama.Client, http: httpx.Client, make_gguf
    ) -> None:
        path = make_gguf()
        digest = upload(client, path)
        assert http.head(f"/api/blobs/{digest}").status_code == 200
        assert http.head(f"/api/blobs/{digest.replace(':', '-')}").status_code == 200

    def test_created_then_already_present(self, http: httpx.Client, tmp_path: Path) -> None:
        data = b"some bytes for a blob"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
        assert http.post(f"/api/blobs/{digest}", content=data).status_code == 200

    def test_missing_blob_is_404_with_ollama_message(self, http: httpx.Client) -> None:
        digest = "sha256:" + "0" * 64
        response = http.head(f"/api/blobs/{digest}")
        assert response.status_code == 404
        response = http.request("HEAD", f"/api/blobs/{digest}")
        assert response.status_code == 404

    @pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "g" * 64, "nothing"])
    def test_malformed_digest_is_400(self, http: httpx.Client, digest: str) -> None:
        assert http.head(f"/api/blobs/{digest}").status_code == 400
        response = http.post(f"/api/blobs/{digest}", content=b"x")
        assert response.status_code == 400
        assert response.json() == {"error": "invalid digest format"}

    def test_mismatched_upload_is_400_and_leaves_nothing(self, server: ServerProcess, http: httpx.Client) -> None:
        before = blob_names(server)
        claimed = "sha256:" + hashlib.sha256(b"what I claim").hexdigest()
        actual = "sha256:" + hashlib.sha256(b"what I send").hexdigest()
        response = http.post(f"/api/blobs/{claimed}", content=b"what I send")
        assert response.status_code == 400
        assert response.json() == {"error": f'digest mismatch, expected "{claimed}", got "{actual}"'}
        assert blob_names(server) == before


class TestCreateFromFiles:
    def test_create_lists_with_details_from_the_gguf(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        statuses = create(client, "smol", files={"smol.gguf": smol_digest})
        assert statuses == ["parsing GGUF", f"using existing layer {smol_digest}", "writing manifest", "success"]

        (model,) = [m for m in client.list().models if m.model == "smol:latest"]
        raw = manifest_path(server, "smol").read_bytes()
        assert model.digest == hashlib.sha256(raw).hexdigest()
        manifest = json.loads(raw)
        assert model.size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
        assert model.details.format == "gguf"
        assert model.details.family == "llama"
        assert model.details.families == ["llama"]
        assert model.details.parameter_size == "134.52M"
        assert model.details.quantization_level == "Q4_1"
        tags = httpx.get(server.url + "/api/tags").json()
        (entry,) = [m for m in tags["models"] if m["name"] == "smol:latest"]
        assert entry["details"]["context_length"] == 8192
        assert entry["details"]["embedding_length"] == 576
        assert entry["capabilities"] == ["completion"]
        assert "expires_at" not in entry

    def test_manifest_and_config_are_ollama_shaped(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        create(client, "shape-check", files={"model.gguf": smol_digest}, system="be brief")
        raw = manifest_path(server, "shape-check").read_bytes()
        assert raw.endswith(b"}\n") and b"\n" not in raw[:-1]
        manifest = json.loads(raw)
        assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
        assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
        assert [layer["mediaType"] for layer in manifest["layers"]] == [
            "application/vnd.ollama.image.model",
            "application/vnd.ollama.image.system",
        ]
        config_blob = server.models / "blobs" / manifest["config"]["digest"].replace(":", "-")
        config = json.loads(config_blob.read_bytes())
        assert config == {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "134.52M",
            "file_type": "Q4_1",
            "architecture": "amd64",
            "os": "linux",
        }
        for layer in [manifest["config"], *manifest["layers"]]:
            blob = server.models / "blobs" / layer["digest"].replace(":", "-")
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"].split(":")[1]
            assert blob.stat().st_size == layer["size"]

    def test_create_with_every_text_layer(self, server: ServerProcess, client: ollama.Client, smol_digest: str) -> None:
        statuses = create(
            client,
            "full",
            files={"smol.gguf": smol_digest},
            template="{{ .System }} {{ .Prompt }}",
            system="You are terse.",
            license=["MIT", "Apache-2.0"],
            parameters={"temperature": 0.6, "top_k": 10, "stop": ["USER:", "ASSISTANT:"], "num_ctx": 2048},
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
        assert statuses[0] == "parsing GGUF"
        assert sum(status.startswith("creating new layer") for status in statuses) == 6
        assert statuses[-2:] == ["writing manifest", "success"]

        shown = client.show("full")
        assert shown.template == "{{ .System }} {{ .Prompt }}"
        assert shown.license == "MIT\nApache-2.0"
        assert shown.parameters.splitlines() == [
            "num_ctx                        2048",
            'stop                           "USER:"',
            'stop                           "ASSISTANT:"',
            "temperature                    0.6",
            "top_k                          10",
        ]
        full = show(server, "full")
        assert full["system"] == "You are terse."
        assert full["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        params_layer = [
            layer
            for layer in json.loads(manifest_path(server, "full").read_bytes())["layers"]
            if layer["mediaType"].endswith("params")
        ][0]
        params = (server.models / "blobs" / params_layer["digest"].replace(":", "-")).read_bytes()
        assert params == b'{"num_ctx":2048,"stop":["USER:","ASSISTANT:"],"temperature":0.6,"top_k":10}\n'

    def test_non_stream_create_returns_success(self, client: ollama.Client, smol_digest: str) -> None:
        response = client.create("nonstream", files={"smol.gguf": smol_digest}, stream=False)
        assert response.status == "success"

    def test_tiny_gguf_with_tool_template_has_tools_capability(self, client: ollama.Client, make_gguf) -> None:
        path = make_gguf(chat_template="{% if tools %}{{ tools | tojson }}{% endif %}{{ messages }}")
        digest = upload(client, path)
        create(client, "tooly", files={"m.gguf": digest})
        assert client.show("tooly").capabilities == ["tools", "completion"]

    def test_embedding_gguf_has_embedding_capability(self, client: ollama.Client, make_gguf) -> None:
        path = make_gguf(arch="bert", kv={"bert.pooling_type": 1})
        create(client, "embedder", files={"e.gguf": upload(client, path)})
        assert client.show("embedder").capabilities == ["embedding"]

    def test_go_template_with_suffix_and_tools_has_insert_and_tools(
        self, client: ollama.Client, smol_digest: str
    ) -> None:
        create(
            client,
            "fim",
            files={"s.gguf": smol_digest},
            template="{{ if .Tools }}{{ .Tools }}{{ end }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>",
        )
        assert client.show("fim").capabilities == ["completion", "tools", "insert"]


class TestAdaptersAndProjectors:
    def test_adapter_and_projector_layers(
        self, server: ServerProcess, client: ollama.Client, http: httpx.Client, smol_digest: str, make_gguf
    ) -> None:
        adapter = upload(client, make_gguf(kv={"general.type": "adapter", "adapter.type": "lora"}))
        projector = upload(
            client, make_gguf(arch="clip", kv={"general.type": "projector", "clip.vision.embedding_length": 1024})
        )
        create(
            client,
            "multi",
            files={"model.gguf": smol_digest, "mmproj.gguf": projector},
            adapters={"lora.gguf": adapter},
        )
        layers = json.loads(manifest_path(server, "multi").read_bytes())["layers"]
        kinds = {layer["digest"]: layer["mediaType"].rsplit(".", 1)[1] for layer in layers}
        assert kinds == {smol_digest: "model", projector: "projector", adapter: "adapter"}

        shown = show(server, "multi")
        assert shown["capabilities"] == ["completion", "vision"]
        assert shown["projector_info"]["general.architecture"] == "clip"
        assert shown["projector_info"]["clip.vision.embedding_length"] == 1024
        blob = server.models / "blobs"
        lines = shown["modelfile"].splitlines()
        assert lines[4:7] == [
            f"FROM {blob / smol_digest.replace(':', '-')}",
            f"ADAPTER {blob / adapter.replace(':', '-')}",
            f"FROM {blob / projector.replace(':', '-')}",
        ]

    def test_more_than_one_adapter_is_refused(
        self, http: httpx.Client, client: ollama.Client, smol_digest: str, make_gguf
    ) -> None:
        adapters = {f"a{i}.gguf": upload(client, make_gguf(kv={"general.type": "adapter", "i": i})) for i in range(2)}
        response = http.post(
            "/api/create", json={"model": "two", "files": {"s.gguf": smol_digest}, "adapters": adapters}
        )
        assert (response.status_code, response.json()) == (400, {"error": "only one adapter is currently supported"})


class TestCreateFromModel:
    def test_reuses_layers_and_merges_parameters(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        create(
            client,
            "base",
            files={"smol.gguf": smol_digest},
            system="base system",
            parameters={"temperature": 1, "top_k": 10, "stop": ["USER:", "ASSISTANT:"]},
            messages=[{"role": "user", "content": "old"}],
        )
        blobs_before = blob_names(server)
        statuses = create(
            client,
            "child",
            from_="base",
            parameters={"temperature": 0.6, "top_p": 0.7, "stop": ["<|end|>"]},
            messages=[{"role": "user", "content": "new"}],
        )
        assert statuses[-1] == "success"
        new_blobs = blob_names(server) - blobs_before
        # Only the new params and messages: the weights are shared, and the config is identical.
        assert len(new_blobs) == 2

        child = show(server, "child")
        assert child["system"] == "base system"
        assert child["parameters"].splitlines() == [
            'stop                           "<|end|>"',
            "temperature                    0.6",
            "top_k                          10",
            "top_p                          0.7",
        ]
        assert child["messages"] == [{"role": "user", "content": "new"}]
        layers = json.loads(manifest_path(server, "child").read_bytes())["layers"]
        model_layer = [layer for layer in layers if layer["mediaType"].endswith(".model")][0]
        assert model_layer["digest"] == smol_digest
        assert model_layer["from"] == "base:latest"
        assert client.show("child").details.parent_model == "base:latest"

    def test_recreating_replaces_layers_and_prunes_unused_blobs(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        create(client, "retemplate", files={"smol.gguf": smol_digest}, template="{{ .Prompt }} one")
        old = {layer["digest"] for layer in json.loads(manifest_path(server, "retemplate").read_bytes())["layers"]}
        create(client, "retemplate", files={"smol.gguf": smol_digest}, template="{{ .Prompt }} two")
        new = {layer["digest"] for layer in json.loads(manifest_path(server, "retemplate").read_bytes())["layers"]}
        (gone,) = old - new
        assert gone.replace(":", "-") not in blob_names(server)
        assert smol_digest.replace(":", "-") in blob_names(server)
        assert client.show("retemplate").template == "{{ .Prompt }} two"

    def test_unknown_base_is_404(self, client: ollama.Client) -> None:
        with pytest.raises(ollama.ResponseError) as raised:
            client.create("orphan", from_="no-such-model")
        assert raised.value.status_code == 404
        assert "not found" in raised.value.error

    def test_names_match_case_insensitively(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        create(client, "CaseModel", files={"smol.gguf": smol_digest})
        create(client, "casemodel", files={"smol.gguf": smol_digest}, system="second")
        directories = [p.name for p in (server.models / "manifests" / "registry.ollama.ai" / "library").iterdir()]
        assert [d for d in directories if d.lower() == "casemodel"] == ["CaseModel"]
        assert show(server, "CASEMODEL")["system"] == "second"


class TestCreateErrors:
    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
            ({"model": "bad/../name", "from": "x"}, 400, "invalid model name"),
            ({"model": "", "from": "x"}, 400, "invalid model name"),
            ({"model": "x", "files": {"../evil.gguf": "sha256:" + "0" * 64}}, 400, "file path must be relative"),
            ({"model": "x", "files": {"/abs.gguf": "sha256:" + "0" * 64}}, 400, "file path must be relative"),
            ({"model": "x", "files": {"m.gguf": ""}}, 400, "invalid digest format"),
            ({"model": "x", "adapters": {"a.gguf": ""}, "from": "y"}, 400, "invalid digest format"),
            ({"model": "x", "files": {"m.gguf": "sha256:nothex"}}, 400, "invalid digest format"),
            ({"model": "x", "files": {"m.gguf": "sha256:" + "0" * 64}}, 400, f'blob "sha256:{"0" * 64}" not found'),
            ({"model": "x", "from": "../../etc"}, 400, "invalid model name"),
        ],
    )
    def test_bad_requests(self, http: httpx.Client, body: dict, status: int, message: str) -> None:
        response = http.post("/api/create", json=body)
        assert response.status_code == status
        assert response.json() == {"error": message}

    def test_missing_body(self, http: httpx.Client) -> None:
        response = http.post("/api/create")
        assert (response.status_code, response.json()) == (400, {"error": "missing request body"})

    def test_malformed_json(self, http: httpx.Client) -> None:
        response = http.post("/api/create", content=b"{not json")
        assert response.status_code == 400
        assert "error" in response.json()

    def test_unknown_file_type(self, http: httpx.Client) -> None:
        data = b"not a model at all"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        http.post(f"/api/blobs/{digest}", content=data)
        response = http.post("/api/create", json={"model": "x", "files": {"notes.txt": digest}})
        assert (response.status_code, response.json()) == (400, {"error": "unknown type"})
        http.post(f"/api/blobs/{digest}", content=data)  # the failed create removed it
        response = http.post("/api/create", json={"model": "x", "files": {"fake.gguf": digest}})
        assert response.status_code == 200  # streamed: the error comes after "parsing GGUF"
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines == [{"status": "parsing GGUF"}, {"error": "supplied file was not in GGUF format"}]

    @pytest.mark.parametrize(
        ("parameters", "message"),
        [
            ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
            ({"top_k": [1]}, 'option "top_k" must be of type integer'),
            ({"stop": "<end>"}, 'option "stop" must be of type array'),
            ({"stop": ["<end>", 3]}, 'option "stop" must be of an array of strings'),
            ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
            ({"warp_speed": 9}, "unknown parameter 'warp_speed'"),
            ({"mirostat": 3}, 'option "mirostat" must be 0 (off), 1 or 2, not 3'),
            ({"tfs_z": 0.9}, "unknown parameter 'tfs_z'"),
        ],
    )
    def test_bad_parameters_fail_and_leave_nothing(
        self, server: ServerProcess, http: httpx.Client, smol_digest: str, parameters: dict, message: str
    ) -> None:
        blobs_before = blob_names(server)
        response = http.post(
            "/api/create",
            json={
                "model": "badparams",
                "files": {"s.gguf": smol_digest},
                "parameters": parameters,
                "system": "a brand new system layer",
            },
        )
        assert (response.status_code, response.json()) == (400, {"error": message})
        assert not manifest_path(server, "badparams").exists()
        assert blob_names(server) == blobs_before

    def test_quantizing_quantized_weights_is_refused_not_ignored(self, http: httpx.Client, smol_digest: str) -> None:
        response = http.post("/api/create", json={"model": "q", "files": {"s.gguf": smol_digest}, "quantize": "q4_K_M"})
        assert response.status_code == 400
        assert response.json()["error"] == "quantization is only supported for F16, BF16 and F32 models"


@pytest.fixture(scope="module")
def shown(server: ServerProcess, smol_digest: str) -> dict:
    """The /api/show answer for a model created from SmolLM2 with a system prompt, license and num_ctx."""
    client = ollama.Client(host=server.url)
    create(
        client,
        "showme",
        files={"smol.gguf": smol_digest},
        system="sys",
        license="MIT",
        parameters={"num_ctx": 4096},
    )
    return httpx.post(server.url + "/api/show", json={"model": "showme"}).json()


class TestShow:
    def test_official_client_parses_show(self, client: ollama.Client, shown: dict) -> None:
        response = client.show("showme")
        assert response.modelinfo["general.architecture"] == "llama"
        assert response.details.quantization_level == "Q4_1"
        assert response.modified_at is not None

    def test_model_info_blanks_long_arrays_unless_verbose(self, http: httpx.Client, shown: dict) -> None:
        info = shown["model_info"]
        assert "general.name" not in info and "tokenizer.chat_template" not in info
        assert info["general.parameter_count"] == 134515008
        assert info["llama.context_length"] == 8192
        assert info["tokenizer.ggml.tokens"] == []
        assert info["general.languages"] == ["en"]
        verbose = http.post("/api/show", json={"model": "showme", "verbose": True}).json()
        assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 49152
        assert verbose["model_info"]["tokenizer.ggml.tokens"][:2] == ["<|endoftext|>", "<|im_start|>"]

    def test_tensors_template_and_text_fields(self, shown: dict, smollm2_path: Path) -> None:
        assert shown["tensors"][0] == {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}
        assert len(shown["tensors"]) == 272
        assert shown["template"].startswith("{% for message in messages %}")  # the GGUF's own chat template
        assert shown["system"] == "sys"
        assert shown["license"] == "MIT"
        assert shown["parameters"] == "num_ctx                        4096"
        assert shown["capabilities"] == ["completion"]
        assert shown["details"] == {
            "parent_model": "smol.gguf",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "134.52M",
            "quantization_level": "Q4_1",
        }

    def test_modelfile(self, server: ServerProcess, shown: dict, smol_digest: str) -> None:
        blob = server.models / "blobs" / smol_digest.replace(":", "-")
        assert shown["modelfile"] == (
            '# Modelfile generated by "pollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            "# FROM showme:latest\n\n"
            f"FROM {blob}\n"
            "SYSTEM sys\n"
            "PARAMETER num_ctx 4096\n"
            "LICENSE MIT\n"
        )

    def test_system_and_options_overrides(self, http: httpx.Client, shown: dict) -> None:
        response = http.post(
            "/api/show", json={"model": "showme", "system": "other", "options": {"temperature": 0.5}}
        ).json()
        assert response["system"] == "other"
        assert "SYSTEM other\n" in response["modelfile"]
        assert "PARAMETER temperature 0.5\n" in response["modelfile"]
        assert response["parameters"] == "num_ctx                        4096"

    def test_show_by_deprecated_name_field_and_other_casing(self, http: httpx.Client, shown: dict) -> None:
        assert http.post("/api/show", json={"name": "SHOWME"}).json()["system"] == "sys"

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({}, 400, "model is required"),
            ({"model": "missing"}, 404, "model 'missing:latest' not found"),
            ({"model": "a/b/c/d"}, 400, "invalid model name"),
            ({"model": "../../etc/passwd"}, 400, "invalid model name"),
            ({"model": "x:cloud:local"}, 400, 'use either :local or :cloud, not both: "x:cloud:local"'),
        ],
    )
    def test_errors(self, http: httpx.Client, shown: dict, body: dict, status: int, message: str) -> None:
        response = http.post("/api/show", json=body)
        assert (response.status_code, response.json()) == (status, {"error": message})

    def test_copilot_sees_the_requested_name(self, http: httpx.Client, shown: dict) -> None:
        response = http.post(
            "/api/show", json={"model": "showme"}, headers={"User-Agent": "GitHubCopilotChat/0.30"}
        ).json()
        assert response["model_info"]["general.basename"] == "showme"


class TestCopyAndDelete:
    def test_copy_then_delete_keeps_shared_blobs_until_the_last_reference(
        self, server: ServerProcess, client: ollama.Client, smol_digest: str
    ) -> None:
        create(client, "original", files={"smol.gguf": smol_digest}, system="shared system")
        client.copy("original", "beefsteak")
        assert manifest_path(server, "beefsteak").read_bytes() == manifest_path(server, "original").read_bytes()
        names = [m.model for m in client.list().models]
        assert "beefsteak:latest" in names and "original:latest" in names

        layers = json.loads(manifest_path(server, "original").read_bytes())
        system_blob = [layer["digest"] for layer in layers["layers"] if layer["mediaType"].endswith("system")][0]
        client.delete("original")
        assert not manifest_path(server, "original").exists()
        assert system_blob.replace(":", "-") in blob_names(server)
        client.delete("beefsteak")
        assert system_blob.replace(":", "-") not in blob_names(server)
        assert not (server.models / "manifests" / "registry.ollama.ai" / "library" / "beefsteak").exists()

    def test_copy_to_another_namespace_and_host(self, client: ollama.Client, smol_digest: str) -> None:
        create(client, "tocopy", files={"smol.gguf": smol_digest})
        client.copy("tocopy", "myhost:5000/mynamespace/lips:code")
        names = [m.model for m in client.list().models]
        assert "myhost:5000/mynamespace/lips:code" in names
        client.delete("myhost:5000/mynamespace/lips:code")

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"source": "bad..//x", "destination": "ok"}, 400, 'source "bad..//x" is invalid'),
            ({"source": "ok", "destination": "../up"}, 400, 'destination "../up" is invalid'),
            ({"source": "absent", "destination": "copy"}, 404, 'model "absent" not found'),
        ],
    )
    def test_copy_errors(self, http: httpx.Client, body: dict, status: int, message: str) -> None:
        response = http.post("/api/copy", json=body)
        assert (response.status_code, response.json()) == (status, {"error": message})

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"model": "absent"}, 404, "model 'absent' not found"),
            ({"model": "a//b"}, 400, 'name "a//b" is invalid'),
            ({"name": "absent2"}, 404, "model 'absent2' not found"),
        ],
    )
    def test_delete_errors(self, http: httpx.Client, body: dict, status: int, message: str) -> None:
        response = http.request("DELETE", "/api/delete", json=body)
        assert (response.status_code, response.json()) == (status, {"error": message})

    def test_delete_manifest_listing_a_layer_twice(
        self, server: ServerProcess, client: ollama.Client, http: httpx.Client, make_gguf
    ) -> None:
        path = make_gguf()
        digest = upload(client, path)
        layer = {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": path.stat().st_size}
        target = manifest_path(server, "twice")
        target.parent.mkdir(parents=True)
        target.write_text(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {},
                    "layers": [layer, layer],
                }
            )
        )
        assert http.request("DELETE", "/api/delete", json={"model": "twice"}).status_code == 200
        assert not manifest_path(server, "twice").exists()
        assert digest.replace(":", "-") not in blob_names(server)


def test_interrupted_upload_leaves_nothing(server: ServerProcess) -> None:
    before = blob_names(server)
    digest = "sha256:" + "1" * 64
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\n".encode()
            + b"x" * 100_000
        )
        deadline = time.monotonic() + 10
        while not any(name.startswith(".tmp-") for name in blob_names(server)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(name.startswith(".tmp-") for name in blob_names(server))  # the upload was under way
    deadline = time.monotonic() + 10
    while blob_names(server) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert blob_names(server) == before
