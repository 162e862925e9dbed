"""Safer runner configurations for a model whose runner crashes on this machine, and remembering them.

A runner that dies of a crash signal while loading or before its first decode is done is a fault of
the engine on this machine (llama.cpp's AMX kernels on Sapphire Rapids, a driver, a bad mapping),
not of the request. The scheduler then loads it again one step further down ``LADDER``, each step
keeping the ones before, and remembers the step that worked for that weights file on this machine,
so the next load starts there instead of crashing first. A remembered step is forgotten when the
machine (CPU, its features) or the engine (llama-cpp-python's version) is not the one it was found on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pollama.runtime.process import RunnerConfig

__all__ = ["LADDER", "Fallback", "FallbackMemory", "describe_steps", "machine_fingerprint", "with_fallbacks"]

log = logging.getLogger(__name__)

_FORMAT = 1


@dataclass(frozen=True)
class Fallback:
    name: str
    change: str  # what it turns off, as the log line says it
    apply: Callable[[RunnerConfig], RunnerConfig]


LADDER: tuple[Fallback, ...] = (
    Fallback(
        "no-extra-buffers",
        "llama.cpp's repacked CPU weight buffers off",
        lambda config: dataclasses.replace(config, extra_buffers=False),
    ),
    Fallback("no-mmap", "weights read into memory instead of mapped", lambda c: dataclasses.replace(c, use_mmap=False)),
    Fallback("no-flash-attention", "flash attention off", lambda c: dataclasses.replace(c, flash_attention=False)),
)


def with_fallbacks(config: RunnerConfig, steps: int) -> RunnerConfig:
    """``config`` with the first ``steps`` fallbacks of the ladder applied."""
    for fallback in LADDER[:steps]:
        config = fallback.apply(config)
    return config


def describe_steps(steps: int) -> str:
    return ", ".join(fallback.change for fallback in LADDER[:steps]) or "the default configuration"


def machine_fingerprint(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """What a crash depends on: the CPU model and features, and the engine's version."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    first = text.split("\n\n", 1)[0]
    keys = ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    facts = [line for line in first.splitlines() if line.split(":", 1)[0].strip() in keys]
    try:
        engine = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        engine = "unknown"
    facts.append(f"llama-cpp-python {engine}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


class FallbackMemory:
    """Which fallback step each weights file needs here, kept in one JSON file across restarts."""

    def __init__(self, path: Path, machine: str):
        self.path = path
        self.machine = machine
        self._known: dict[str, int] = {}  # what this process learned, should the file not be writable

    def steps(self, weights: Path) -> int:
        entry = self._entries().get(weights.name)
        steps = entry.get("steps") if isinstance(entry, dict) and entry.get("machine") == self.machine else 0
        found = steps if isinstance(steps, int) and 0 <= steps <= len(LADDER) else 0
        return max(found, self._known.get(weights.name, 0))

    def remember(self, weights: Path, steps: int, cause: str) -> None:
        self._known[weights.name] = steps
        entries = self._entries()
        entries[weights.name] = {
            "machine": self.machine,
            "steps": steps,
            "fallbacks": [fallback.name for fallback in LADDER[:steps]],
            "cause": cause,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._write({"format": _FORMAT, "models": entries})

    def _entries(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        models = data.get("models") if isinstance(data, dict) and data.get("format") == _FORMAT else None
        return models if isinstance(models, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        except OSError as error:
            log.warning("could not remember the runner fallback in %s: %s", self.path, error)
            return
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(data, file, indent=2)
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("could not remember the runner fallback in %s: %s", self.path, error)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
