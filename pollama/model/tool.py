"""Running a create step (conversion, quantization) as ``python -m MODULE``, its output lines as progress.

Such steps run in a process apart: a crash in llama.cpp's quantizer or an out-of-memory in a conversion
costs the request, never the server, and a client that leaves kills the process. A step reports progress as
lines its ``progress`` pattern matches (``done`` and ``total`` groups), and a problem with the user's
input as ``error: WHY`` with exit status 2, which becomes a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator

from pollama.errors import Failed, InvalidRequest

__all__ = ["INVALID_INPUT", "run_step"]

INVALID_INPUT = 2
_ERROR_LINE = re.compile(rb"^error: (.+)$")
_KEPT_LINES = 20


async def run_step(
    module: str, args: list[str], progress: re.Pattern[bytes], what: str
) -> AsyncIterator[tuple[int, int]]:
    """Run ``python -m module *args``, yielding (done, total) as it reports them."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    last: list[bytes] = []
    try:
        async for line in process.stdout:
            if match := progress.match(line):
                yield int(match["done"]), int(match["total"])
            last = [*last[-_KEPT_LINES + 1 :], line.strip()]
        status = await process.wait()
    finally:
        if process.returncode is None:  # cancelled: the client left
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    if status == INVALID_INPUT and last and (match := _ERROR_LINE.match(last[-1])):
        raise InvalidRequest(match[1].decode(errors="replace"))
    if status != 0:
        detail = " | ".join(line.decode(errors="replace") for line in last[-3:])
        raise Failed(f"{what} failed ({detail})")
