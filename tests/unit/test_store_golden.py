"""The store's JSON files match, byte for byte, what Ollama's Go code writes.

The expected bytes in ``tests/golden/store`` were produced by ``tests/golden/store_golden.go``
(Go's encoding/json with Ollama's struct definitions); regenerate them with
``go run tests/golden/store_golden.go tests/golden/store``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pollama.api.native import Message
from pollama.model.modelfile import parse_modelfile
from pollama.store import Layer, Manifest, ModelConfig
from pollama.store.layers import CONFIG_MEDIA_TYPE, messages_blob, params_blob

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "store"
D1, D2, D3 = ("sha256:" + digit * 64 for digit in "123")


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def test_manifest() -> None:
    manifest = Manifest.build(
        Layer(CONFIG_MEDIA_TYPE, D3, 485),
        [
            Layer("application/vnd.ollama.image.model", D1, 98362432, source="base:latest"),
            Layer("application/vnd.ollama.image.template", D2, 77),
            Layer("application/vnd.ollama.image.json", D2, 1, name="config <&> .json"),
        ],
    )
    assert manifest.raw == golden("manifest.json")
    assert Manifest.parse(golden("manifest.json")) == manifest


@pytest.mark.parametrize(
    ("name", "config"),
    [
        (
            "config-minimal.json",
            ModelConfig(
                model_format="gguf",
                model_family="llama",
                model_families=["llama"],
                model_type="134.52M",
                file_type="Q4_1",
            ),
        ),
        (
            "config-full.json",
            ModelConfig(
                model_format="gguf",
                model_family="qwen2",
                model_families=["qwen2", "clip"],
                model_type="630.17M",
                file_type="Q4_K_M",
                renderer="qwen3-coder",
                parser="qwen3-coder",
                requires="0.14.0",
                capabilities=["tools", "vision"],
                context_length=32768,
                embedding_length=896,
                base_name="Qwen2.5",
                draft={"model_format": "gguf", "architecture": "qwen2"},
            ),
        ),
    ],
)
def test_config(name: str, config: ModelConfig) -> None:
    assert config.encode() == golden(name)
    assert ModelConfig.parse(golden(name)) == config


def test_params_from_a_modelfile() -> None:
    modelfile = parse_modelfile(
        "FROM x\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER top_p 0.95\n"
        "PARAMETER min_p 1e-05\n"
        "PARAMETER num_ctx 4096\n"
        "PARAMETER seed -1\n"
        "PARAMETER use_mmap false\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER stop a & b\n"
    )
    assert params_blob(modelfile.fields().parameters) == golden("params.json")


def test_messages() -> None:
    messages = [
        Message(role="system", content="Be brief <always>."),
        Message(role="USER", content='Hi\n\tthere \u2028 "quoted"'),
        Message(role="assistant", content="", thinking="hmm"),
    ]
    assert messages_blob([message.dump() for message in messages]) == golden("messages.json")
