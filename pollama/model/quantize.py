"""Quantizing a model's weights on create, with llama.cpp's own quantizer run as a subprocess.

Ollama quantizes from F16, BF16 and F32 weights to ``q4_K_M`` (alias ``q4_K``), ``q4_K_S`` and ``q8_0``;
the other llama.cpp types that are worth a user's while are accepted too. The quantizer runs in
``python -m pollama.runner.quantize`` so that a crash in it costs the request, not the server; its
per-tensor log lines are the progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from pollama.errors import Failed, InvalidRequest

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
_TENSOR_LINE = re.compile(rb"^\[\s*(\d+)/\s*(\d+)\]")
_KEPT_LINES = 20


def quantize_type(name: str) -> str:
    """The canonical name of a requested type (case-insensitive); InvalidRequest as Ollama words it."""
    wanted = _ALIASES.get(name.upper(), name.upper())
    if wanted not in TYPES:
        supported = ", ".join(sorted(TYPES))
        raise InvalidRequest(f"unsupported quantization type {name} - supported types are {supported}")
    return wanted


async def quantize(source: Path, target: Path, wanted: str, threads: int) -> AsyncIterator[tuple[int, int]]:
    """Write ``source`` quantized to ``wanted`` at ``target``, yielding (tensors done, tensors) as it goes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pollama.runner.quantize", str(source), str(target), str(TYPES[wanted]), str(threads),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    last: list[bytes] = []
    try:
        async for line in process.stderr:
            if match := _TENSOR_LINE.match(line):
                yield int(match.group(1)), int(match.group(2))
            last = [*last[-_KEPT_LINES + 1 :], line.strip()]
        status = await process.wait()
    finally:
        if process.returncode is None:  # cancelled: the client left
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    if status != 0:
        detail = " | ".join(line.decode(errors="replace") for line in last[-3:])
        raise Failed(f"quantization failed ({detail})")
