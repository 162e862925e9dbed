"""What the machine offers runners: CPU cores (and, once a GPU build is present, its devices)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["physical_cores"]


@functools.cache
def physical_cores(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    """Physical cores, the default thread count: llama.cpp gains nothing from hyper-threads."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    physical_id = core_id = ""
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif not key and core_id:
            cores.add((physical_id, core_id))
            physical_id = core_id = ""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(len(cores) or usable, usable))
