"""Whether a vision projector (a ``clip`` GGUF) belongs to a language model: the widths must agree.

llama.cpp refuses a projector whose embeddings are not as wide as the model's input embeddings
(``mtmd_init_from_file`` fails); checked here from the metadata, create and the first image request
answer it as a 400 that names both widths, instead of a runner that fails to load.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pollama.store.gguf import GGUFFile
from pollama.store.models import read_gguf_header

__all__ = ["projector_mismatch", "stored_projector_mismatch"]


def projector_mismatch(model: GGUFFile, projector: GGUFFile) -> str | None:
    """What is wrong with pairing the two, or None when they fit (or the metadata does not say)."""
    if projector.architecture != "clip":
        return f"the projector's architecture is {projector.architecture!r}, not 'clip'"
    width = projector.get("vision.projection_dim")
    model_width = model.get("embedding_length")
    if isinstance(width, int) and isinstance(model_width, int) and width != model_width:
        return (
            f"the projector does not fit the model: it makes image embeddings {width} wide, "
            f"the model's embeddings are {model_width} wide"
        )
    return None


@functools.lru_cache(maxsize=64)
def stored_projector_mismatch(model_path: Path, projector_path: Path) -> str | None:
    """``projector_mismatch`` of two blobs (their paths name their contents, so the answer keeps)."""
    model, projector = read_gguf_header(model_path), read_gguf_header(projector_path)
    if model is None or projector is None:
        return "the model or its projector is not a readable GGUF file"
    return projector_mismatch(model, projector)
