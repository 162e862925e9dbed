"""pollama.store.layers: manifest and config JSON exactly as Ollama writes and reads them.

Go references: manifest/manifest.go (Manifest, WriteManifest uses json.NewEncoder(f).Encode(m)),
manifest/layer.go (Layer: mediaType, digest, size, from,omitempty, name,omitempty),
types/model/config.go (ConfigV2).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from pollama.store.layers import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    CorruptManifest,
    Layer,
    Manifest,
    MediaType,
    ModelConfig,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
DC = "sha256:" + "c" * 64


def test_media_type_constants() -> None:
    assert MANIFEST_MEDIA_TYPE == "application/vnd.docker.distribution.manifest.v2+json"
    assert CONFIG_MEDIA_TYPE == "application/vnd.docker.container.image.v1+json"
    assert MediaType.MODEL == "application/vnd.ollama.image.model"
    assert MediaType.PROJECTOR == "application/vnd.ollama.image.projector"
    assert MediaType.ADAPTER == "application/vnd.ollama.image.adapter"
    assert MediaType.TEMPLATE == "application/vnd.ollama.image.template"
    assert MediaType.PROMPT == "application/vnd.ollama.image.prompt"
    assert MediaType.SYSTEM == "application/vnd.ollama.image.system"
    assert MediaType.PARAMS == "application/vnd.ollama.image.params"
    assert MediaType.MESSAGES == "application/vnd.ollama.image.messages"
    assert MediaType.LICENSE == "application/vnd.ollama.image.license"
    assert MediaType.TENSOR == "application/vnd.ollama.image.tensor"
    assert MediaType.JSON == "application/vnd.ollama.image.json"
    assert MediaType.DRAFT == "application/vnd.ollama.image.draft"
    assert MediaType.EMBED == "application/vnd.ollama.image.embed"


# --- Manifest.build == Go json.Encoder.Encode(Manifest{...}) -------------------------------------------------


def test_build_matches_go_encoder_byte_for_byte() -> None:
    config = Layer(CONFIG_MEDIA_TYPE, DC, 485)
    layers = [
        Layer(MediaType.MODEL, D1, 1_000_000_000),
        Layer(MediaType.TEMPLATE, D2, 1429),
        Layer(MediaType.PARAMS, D3, 30),
    ]
    manifest = Manifest.build(config, layers)
    expected = (
        '{"schemaVersion":2,'
        '"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{DC}","size":485}},'
        '"layers":['
        f'{{"mediaType":"application/vnd.ollama.image.model","digest":"{D1}","size":1000000000}},'
        f'{{"mediaType":"application/vnd.ollama.image.template","digest":"{D2}","size":1429}},'
        f'{{"mediaType":"application/vnd.ollama.image.params","digest":"{D3}","size":30}}'
        "]}\n"
    ).encode()
    assert manifest.raw == expected
    assert manifest.digest == hashlib.sha256(expected).hexdigest()
    assert manifest.config == config
    assert manifest.layers == tuple(layers)
    assert manifest.schema_version == 2
    assert manifest.media_type == MANIFEST_MEDIA_TYPE


def test_build_from_and_name_only_when_non_empty() -> None:
    config = Layer(CONFIG_MEDIA_TYPE, DC, 10)
    layers = [
        Layer(MediaType.MODEL, D1, 5, source="registry.ollama.ai/library/llama3:latest"),
        Layer(MediaType.TENSOR, D2, 6, name="model.embed_tokens.weight"),
        Layer(MediaType.JSON, D3, 7, source="x/y:z", name="config.json"),
        Layer(MediaType.SYSTEM, D1, 8, source="", name=""),
    ]
    raw = Manifest.build(config, layers).raw.decode()
    assert raw.endswith("\n") and raw.count("\n") == 1
    assert (
        f'{{"mediaType":"application/vnd.ollama.image.model","digest":"{D1}","size":5,'
        '"from":"registry.ollama.ai/library/llama3:latest"}' in raw
    )
    assert (
        f'{{"mediaType":"application/vnd.ollama.image.tensor","digest":"{D2}","size":6,"name":"model.embed_tokens.weight"}}'
        in raw
    )
    # Go struct order: from before name
    assert (
        f'{{"mediaType":"application/vnd.ollama.image.json","digest":"{D3}","size":7,"from":"x/y:z","name":"config.json"}}'
        in raw
    )
    assert f'{{"mediaType":"application/vnd.ollama.image.system","digest":"{D1}","size":8}}' in raw


def test_build_key_order() -> None:
    raw = Manifest.build(Layer(CONFIG_MEDIA_TYPE, DC, 1), [Layer(MediaType.MODEL, D1, 2, "src", "nm")]).raw
    data = json.loads(raw)
    assert list(data) == ["schemaVersion", "mediaType", "config", "layers"]
    assert list(data["config"]) == ["mediaType", "digest", "size"]
    assert list(data["layers"][0]) == ["mediaType", "digest", "size", "from", "name"]


def test_build_is_compact() -> None:
    raw = Manifest.build(Layer(CONFIG_MEDIA_TYPE, DC, 1), [Layer(MediaType.MODEL, D1, 2)]).raw
    assert b" " not in raw
    assert b": " not in raw and b", " not in raw
    assert raw.endswith(b"}\n")


def test_build_escapes_html_like_go() -> None:
    # Go's json.Encoder escapes <, > and & (SetEscapeHTML defaults to true), and U+2028/U+2029;
    # other non-ASCII is written as UTF-8.
    layer = Layer(MediaType.LICENSE, D1, 3, source="a<b>&c", name="é\u2028\u2029")
    raw = Manifest.build(Layer(CONFIG_MEDIA_TYPE, DC, 1), [layer]).raw
    assert b'"from":"a\\u003cb\\u003e\\u0026c"' in raw
    assert '"name":"é\\u2028\\u2029"'.encode() in raw
    assert b"<" not in raw and b">" not in raw and b"&" not in raw
    assert json.loads(raw)["layers"][0]["from"] == "a<b>&c"


def test_build_with_no_layers() -> None:
    raw = Manifest.build(Layer(CONFIG_MEDIA_TYPE, DC, 1), []).raw
    assert json.loads(raw)["layers"] == []


def test_build_roundtrips_through_parse() -> None:
    config = Layer(CONFIG_MEDIA_TYPE, DC, 12)
    layers = [Layer(MediaType.MODEL, D1, 100, "base:latest"), Layer(MediaType.TENSOR, D2, 7, name="w")]
    built = Manifest.build(config, layers)
    parsed = Manifest.parse(built.raw)
    assert parsed == built


# --- Manifest.parse ------------------------------------------------------------------------------------------


def test_parse_pretty_printed_reordered() -> None:
    raw = (
        "{\n"
        '  "layers": [\n'
        "    {\n"
        f'      "size": 42,\n      "digest": "{D1}",\n      "mediaType": "application/vnd.ollama.image.model"\n'
        "    },\n"
        f'    {{"name": "tok", "size": 3, "mediaType": "application/vnd.ollama.image.tensor",'
        f' "digest": "{D2}", "from": "a/b:c"}}\n'
        "  ],\n"
        f'  "config": {{"digest": "{DC}", "size": 9, "mediaType": "application/vnd.docker.container.image.v1+json"}},\n'
        '  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",\n'
        '  "schemaVersion": 2\n'
        "}\n\n"
    ).encode()
    manifest = Manifest.parse(raw)
    assert manifest.schema_version == 2
    assert manifest.media_type == MANIFEST_MEDIA_TYPE
    assert manifest.config == Layer(CONFIG_MEDIA_TYPE, DC, 9)
    assert manifest.layers == (
        Layer(MediaType.MODEL, D1, 42),
        Layer(MediaType.TENSOR, D2, 3, source="a/b:c", name="tok"),
    )
    # the model digest is the sha256 of the bytes as stored, not of a re-encoding
    assert manifest.raw == raw
    assert manifest.digest == hashlib.sha256(raw).hexdigest()
    assert manifest.digest != Manifest.build(manifest.config, list(manifest.layers)).digest


def test_parse_digest_is_hex_without_prefix() -> None:
    raw = Manifest.build(Layer(CONFIG_MEDIA_TYPE, DC, 1), []).raw
    digest = Manifest.parse(raw).digest
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert digest == hashlib.sha256(raw).hexdigest()


def test_parse_ignores_unknown_keys() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": DC, "size": 1, "urls": ["x"]},
            "layers": [{"mediaType": MediaType.MODEL, "digest": D1, "size": 2, "annotations": {"a": "b"}}],
            "annotations": {"org.opencontainers.image.created": "now"},
        }
    ).encode()
    manifest = Manifest.parse(raw)
    assert manifest.layers == (Layer(MediaType.MODEL, D1, 2),)
    assert manifest.config == Layer(CONFIG_MEDIA_TYPE, DC, 1)


def test_parse_missing_fields_default_to_zero_values() -> None:
    # Go decodes absent fields as zero values.
    manifest = Manifest.parse(b'{"layers":[{"digest":"' + D1.encode() + b'"}]}')
    assert manifest.schema_version == 0
    assert manifest.media_type == ""
    assert manifest.config == Layer("", "", 0)
    assert manifest.layers == (Layer("", D1, 0),)


def test_parse_null_config_and_layers() -> None:
    manifest = Manifest.parse(b'{"schemaVersion":2,"config":null,"layers":null}')
    assert manifest.layers == ()
    assert manifest.config.digest == ""


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"not json",
        b'{"schemaVersion":2,',  # truncated
        b"[]",
        b'"a string"',
        b"42",
        b'{"layers":{}}',  # Go: cannot unmarshal object into []Layer
        b'{"layers":"x"}',
        b'{"layers":[1]}',
        b'{"layers":["x"]}',
        b'{"config":[]}',  # Go: cannot unmarshal array into Layer
        b'{"schemaVersion":"two"}',  # Go: cannot unmarshal string into int
        b'{"schemaVersion":[2]}',
        b'{"schemaVersion":{}}',
        b'{"layers":[{"size":"12"}]}',
        b'{"layers":[{"size":1.5}]}',
        b"\xff\xfe\x00",
    ],
)
def test_parse_corrupt(raw: bytes) -> None:
    with pytest.raises(CorruptManifest):
        Manifest.parse(raw)


def test_corrupt_manifest_is_value_error() -> None:
    assert issubclass(CorruptManifest, ValueError)


# --- Manifest helpers (Go: Manifest.Size sums layers and config) -----------------------------------------------


def test_size_includes_config() -> None:
    manifest = Manifest.build(
        Layer(CONFIG_MEDIA_TYPE, DC, 100), [Layer(MediaType.MODEL, D1, 1000), Layer(MediaType.PARAMS, D2, 10)]
    )
    assert manifest.size == 1110


def test_all_layers_and_layers_of() -> None:
    config = Layer(CONFIG_MEDIA_TYPE, DC, 1)
    model = Layer(MediaType.MODEL, D1, 2)
    lic1 = Layer(MediaType.LICENSE, D2, 3)
    lic2 = Layer(MediaType.LICENSE, D3, 4)
    manifest = Manifest.build(config, [model, lic1, lic2])
    assert manifest.all_layers() == (model, lic1, lic2, config)
    assert manifest.layers_of(MediaType.LICENSE) == [lic1, lic2]
    assert manifest.layers_of(MediaType.ADAPTER) == []
    # a config without a digest is not a blob
    no_config = Manifest.parse(b'{"layers":[{"mediaType":"m","digest":"' + D1.encode() + b'","size":1}]}')
    assert no_config.all_layers() == (Layer("m", D1, 1),)


# --- ModelConfig (Go ConfigV2) -----------------------------------------------------------------------------------

GO_CONFIG_ORDER = [
    "model_format",
    "model_family",
    "model_families",
    "model_type",
    "file_type",
    "renderer",
    "parser",
    "requires",
    "remote_host",
    "remote_model",
    "capabilities",
    "context_length",
    "embedding_length",
    "base_name",
    "draft",
    "architecture",
    "os",
]


def test_config_default_encoding_matches_go_zero_value() -> None:
    # json.Encoder on ConfigV2{Architecture:"amd64", OS:"linux"}: nil slice -> null, omitempty fields dropped.
    assert ModelConfig().encode() == (
        b'{"model_format":"","model_family":"","model_families":null,"model_type":"","file_type":"",'
        b'"architecture":"amd64","os":"linux"}\n'
    )


def test_config_typical_gguf_model() -> None:
    config = ModelConfig(
        model_format="gguf",
        model_family="llama",
        model_families=["llama"],
        model_type="134.52M",
        file_type="Q4_K_M",
    )
    assert config.encode() == (
        b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],'
        b'"model_type":"134.52M","file_type":"Q4_K_M","architecture":"amd64","os":"linux"}\n'
    )


def test_config_all_fields_in_go_order() -> None:
    config = ModelConfig(
        model_format="gguf",
        model_family="qwen3",
        model_families=["qwen3", "clip"],
        model_type="8.2B",
        file_type="Q4_K_M",
        renderer="qwen3-coder",
        parser="qwen3-coder",
        requires="0.12.0",
        remote_host="https://ollama.com:443",
        remote_model="qwen3-coder:480b",
        capabilities=["completion", "tools"],
        context_length=262144,
        embedding_length=6144,
        base_name="qwen3",
        draft={"model_format": "gguf", "architecture": "qwen3", "tensor_prefix": "draft.", "config": "c.json"},
        architecture="arm64",
        os="darwin",
    )
    out = config.to_json()
    assert list(out) == GO_CONFIG_ORDER
    assert config.encode() == (
        b'{"model_format":"gguf","model_family":"qwen3","model_families":["qwen3","clip"],"model_type":"8.2B",'
        b'"file_type":"Q4_K_M","renderer":"qwen3-coder","parser":"qwen3-coder","requires":"0.12.0",'
        b'"remote_host":"https://ollama.com:443","remote_model":"qwen3-coder:480b",'
        b'"capabilities":["completion","tools"],"context_length":262144,"embedding_length":6144,'
        b'"base_name":"qwen3","draft":{"model_format":"gguf","architecture":"qwen3","tensor_prefix":"draft.",'
        b'"config":"c.json"},"architecture":"arm64","os":"darwin"}\n'
    )


def test_config_omitempty_rules() -> None:
    # Non-omitempty fields stay even when empty; empty omitempty ones are dropped.
    out = ModelConfig(model_families=[], capabilities=[], context_length=0, draft=None).to_json()
    assert out == {
        "model_format": "",
        "model_family": "",
        "model_families": [],  # empty non-nil slice: Go writes []
        "model_type": "",
        "file_type": "",
        "architecture": "amd64",
        "os": "linux",
    }
    assert (
        ModelConfig(model_families=[]).encode().startswith(b'{"model_format":"","model_family":"","model_families":[],')
    )


def test_config_html_escaped() -> None:
    raw = ModelConfig(model_family="a<b>&").encode()
    assert b'"model_family":"a\\u003cb\\u003e\\u0026"' in raw


GO_WRITTEN_CONFIGS = [
    b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"8.0B",'
    b'"file_type":"Q4_K_M","architecture":"amd64","os":"linux"}\n',
    b'{"model_format":"","model_family":"","model_families":null,"model_type":"","file_type":"",'
    b'"remote_host":"https://ollama.com:443","remote_model":"gpt-oss:120b","capabilities":["completion",'
    b'"tools","thinking"],"context_length":131072,"embedding_length":2880,"architecture":"amd64","os":"linux"}\n',
    b'{"model_format":"gguf","model_family":"gemma3","model_families":["gemma3"],"model_type":"268.10M",'
    b'"file_type":"Q8_0","renderer":"gemma3","parser":"gemma3","requires":"0.6.0",'
    b'"draft":{"model_format":"gguf","architecture":"gemma3"},"architecture":"amd64","os":"linux"}\n',
]


@pytest.mark.parametrize("raw", GO_WRITTEN_CONFIGS)
def test_config_roundtrip_of_go_written_bytes(raw: bytes) -> None:
    assert ModelConfig.parse(raw).encode() == raw


def test_config_parse_ignores_unknown_keys_such_as_rootfs() -> None:
    # Older Ollama configs carry "rootfs" (and others); ConfigV2 no longer has it.
    raw = json.dumps(
        {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "1.2B",
            "file_type": "Q8_0",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
            "created": "2024-01-01T00:00:00Z",
            "something_new": 1,
        }
    ).encode()
    config = ModelConfig.parse(raw)
    assert config.model_format == "gguf"
    assert config.model_families == ["llama"]
    assert config.file_type == "Q8_0"
    encoded = config.encode()
    assert b"rootfs" not in encoded and b"created" not in encoded and b"something_new" not in encoded
    assert encoded == (
        b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"1.2B",'
        b'"file_type":"Q8_0","architecture":"amd64","os":"linux"}\n'
    )


def test_config_parse_null_values_are_zero() -> None:
    config = ModelConfig.parse(b'{"model_families":null,"capabilities":null,"renderer":null,"os":null}')
    assert config.model_families is None
    assert config.capabilities == []
    assert config.renderer == ""


def test_config_parse_missing_fields_take_defaults() -> None:
    config = ModelConfig.parse(b"{}")
    assert config == ModelConfig()


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"1", b'"x"', b"{"])
def test_config_parse_corrupt(raw: bytes) -> None:
    with pytest.raises(CorruptManifest):
        ModelConfig.parse(raw)
