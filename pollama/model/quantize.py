"""Quantizing a model's weights on create, with llama.cpp's own quantizer run as a subprocess.

Ollama quantizes from F16, BF16 and F32 weights to ``q4_K_M`` (alias ``q4_K``), ``q4_K_S`` and ``q8_0``;
the other llama.cpp types that are worth a user's while are accepted too. The quantizer runs in
``python -m pollama.runner.quantize`` (see pollama.model.tool); its per-tensor log lines are the progress.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

from pollama.errors import InvalidRequest
from pollama.model.tool import run_step

__all__ = ["SOURCE_TYPES", "TYPES", "quantize", "quantize_type"]

# Target name -> llama.cpp's llama_ftype.
TYPES = {
    "Q4_K_M": 15,
    "Q4_K_S": 14,
    "Q8_0": 7,
    "Q5_K_M": 17,
    "Q5_K_S": 16,
    "Q6_K": 18,
    "Q3_K_M": 12,
    "Q2_K": 10,
    "Q4_0": 2,
    "Q5_0": 8,
    "F16": 1,
    "BF16": 32,
    "F32": 0,
}
_ALIASES = {"Q4_K": "Q4_K_M"}
SOURCE_TYPES = ("F32", "F16", "BF16")
_TENSOR_LINE = re.compile(rb"^\[\s*(?P<done>\d+)/\s*(?P<total>\d+)\]")


def quantize_type(name: str) -> str:
    """The canonical name of a requested type (case-insensitive); InvalidRequest as Ollama words it."""
    wanted = _ALIASES.get(name.upper(), name.upper())
    if wanted not in TYPES:
        supported = ", ".join(sorted(TYPES))
        raise InvalidRequest(f"unsupported quantization type {name} - supported types are {supported}")
    return wanted


async def quantize(source: Path, target: Path, wanted: str, threads: int) -> AsyncIterator[tuple[int, int]]:
    """Write ``source`` quantized to ``wanted`` at ``target``, yielding (tensors done, tensors) as it goes."""
    args = [str(source), str(target), str(TYPES[wanted]), str(threads)]
    async for done, total in run_step("pollama.runner.quantize", args, _TENSOR_LINE, "quantization"):
        yield done, total
