"""What the machine offers runners: CPU cores, system memory and GPUs.

GPUs are found the way their drivers expose them without loading a compute library: NVIDIA through
``nvidia-smi``, AMD through the amdgpu sysfs files, Apple silicon from its memory size. The
``*_VISIBLE_DEVICES`` variables narrow the list as the runtimes do, and ``-1`` or an id that names
no device means "use the CPU". Whether the installed llama-cpp-python can offload at all is asked
of it once, in a subprocess, so the server never loads llama.cpp itself.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pollama.config import Settings

__all__ = [
    "BuildSupport",
    "GpuDevice",
    "Hardware",
    "SystemMemory",
    "amd_gpus",
    "apple_gpus",
    "default_context_length",
    "nvidia_gpus",
    "parse_meminfo",
    "parse_nvidia_smi",
    "physical_cores",
    "visible_devices",
]

log = logging.getLogger(__name__)

GIB = 1 << 30
MIB = 1 << 20
NVIDIA_QUERY = "index,uuid,name,memory.total,memory.free"
_AMD_VENDOR = "0x1002"
_INTEGRATED_VRAM_LIMIT = 1 * GIB  # APUs carve out a small framebuffer and share system memory


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as llama.cpp will number it (``index`` after visibility filtering)."""

    index: int
    id: str  # stable: NVIDIA's UUID, or the PCI slot for AMD
    library: str  # "cuda" or "rocm"
    name: str
    total_memory: int
    free_memory: int
    integrated: bool = False


@dataclass(frozen=True)
class SystemMemory:
    total: int
    available: int
    free_swap: int = 0


@dataclass(frozen=True)
class BuildSupport:
    """What the installed llama-cpp-python was compiled with: ggml's backend names (``CPU``, ``CUDA``...)."""

    gpu_offload: bool
    backends: tuple[str, ...] = ("CPU",)
    engine: str = ""  # llama-cpp-python's version
    system_info: str = ""  # llama.cpp's CPU features line ("CPU : SSE3 = 1 | AVX = 1 | ...")

    def drives(self, library: str) -> bool:
        """Whether this build can run on a GPU of ``library`` (Vulkan drives them all)."""
        names = {name.lower() for name in self.backends}
        if library == "cpu":
            return True
        if not self.gpu_offload:
            return False
        return "vulkan" in names or bool(names & _BACKEND_NAMES.get(library, {library}))

    def gpu_backends(self) -> str:
        return ", ".join(name for name in self.backends if name.lower() not in ("cpu", "blas", "rpc"))


_BACKEND_NAMES = {"cuda": {"cuda"}, "rocm": {"rocm", "hip"}, "metal": {"metal", "mtl"}, "vulkan": {"vulkan"}}


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


def parse_meminfo(text: str) -> SystemMemory:
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key.strip()] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0) + values.get("Cached", 0))
    return SystemMemory(total=total, available=available, free_swap=values.get("SwapFree", 0))


def parse_nvidia_smi(text: str) -> list[GpuDevice]:
    """Rows of ``nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.free --format=csv,noheader,nounits``."""
    devices = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        index, uuid, name, total, free = fields
        try:
            devices.append(
                GpuDevice(
                    index=int(index),
                    id=uuid,
                    library="cuda",
                    name=name,
                    total_memory=int(float(total)) * MIB,
                    free_memory=int(float(free)) * MIB,
                )
            )
        except ValueError:
            continue  # "[N/A]" memory on some devices: nothing to plan with
    return devices


def visible_devices(devices: Sequence[GpuDevice], spec: str | None) -> list[GpuDevice]:
    """Apply a ``CUDA_VISIBLE_DEVICES``-style list (indices or id prefixes), renumbering from 0.

    Unset means every device; empty, ``-1`` or an entry naming no device means none at all, so a
    typo never silently lands a model on the wrong GPU.
    """
    if spec is None:
        return list(devices)
    chosen: list[GpuDevice] = []
    for entry in (part.strip() for part in spec.split(",")):
        match = _find_device(devices, entry)
        if match is None:
            if entry:
                log.warning("visible devices entry %r names no GPU; using the CPU", entry)
            return []
        if match not in chosen:
            chosen.append(match)
    return [replace(device, index=number) for number, device in enumerate(chosen)]


def _find_device(devices: Sequence[GpuDevice], entry: str) -> GpuDevice | None:
    if entry.isdigit():
        return next((device for device in devices if device.index == int(entry)), None)
    if not entry or entry.startswith("-"):
        return None
    matches = [device for device in devices if device.id.startswith(entry)]
    return matches[0] if len(matches) == 1 else None


Runner = Callable[[list[str]], str]


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout


def nvidia_gpus(settings: Settings, run: Runner = _run) -> list[GpuDevice]:
    try:
        output = run(["nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"])
    except (OSError, subprocess.SubprocessError):
        return []
    return visible_devices(parse_nvidia_smi(output), settings.cuda_visible_devices)


def amd_gpus(settings: Settings, drm: Path = Path("/sys/class/drm")) -> list[GpuDevice]:
    devices: list[GpuDevice] = []
    for card in sorted(drm.glob("card[0-9]*"), key=lambda path: int("0" + path.name[4:].split("-")[0])):
        device = card / "device"
        if "-" in card.name or _read(device / "vendor") != _AMD_VENDOR:
            continue
        total, used = _read_int(device / "mem_info_vram_total"), _read_int(device / "mem_info_vram_used")
        if total is None:
            continue
        devices.append(
            GpuDevice(
                index=len(devices),
                id=device.resolve().name,
                library="rocm",
                name=_read(device / "product_name") or "AMD GPU",
                total_memory=total,
                free_memory=max(0, total - (used or 0)),
                integrated=total < _INTEGRATED_VRAM_LIMIT,
            )
        )
    spec = settings.hip_visible_devices if settings.hip_visible_devices is not None else settings.rocr_visible_devices
    return visible_devices(devices, spec)


def apple_gpus(settings: Settings, run: Runner = _run, platform: str = sys.platform) -> list[GpuDevice]:
    """Apple silicon's GPU shares system memory; macOS lets it wire about two thirds of it (three
    quarters above 36 GiB), the figure Metal reports as its recommended working set."""
    if platform != "darwin":
        return []
    try:
        memory = int(run(["sysctl", "-n", "hw.memsize"]).strip())
        arm = run(["sysctl", "-n", "hw.optional.arm64"]).strip() == "1"
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    if not arm:
        return []
    usable = memory * 3 // 4 if memory > 36 * GIB else memory * 2 // 3
    return [GpuDevice(index=0, id="metal", library="metal", name="Apple GPU", total_memory=usable, free_memory=usable)]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _read_int(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text.isdigit() else None


_PROBE = """
import json, llama_cpp
from pollama.runner import ggml
print(json.dumps({
    "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
    "backends": ggml.backend_names(),
    "engine": llama_cpp.__version__,
    "system_info": ggml.system_info(),
}))
"""


def probe_build() -> BuildSupport:
    """Ask llama-cpp-python, in a subprocess, whether it can offload and which ggml backends it has."""
    try:
        output = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        facts = json.loads(output.strip().splitlines()[-1])
        return BuildSupport(
            gpu_offload=bool(facts["gpu_offload"]),
            backends=tuple(facts["backends"]) or ("CPU",),
            engine=str(facts["engine"]),
            system_info=str(facts["system_info"]),
        )
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError):
        log.warning("could not ask llama-cpp-python about GPU support; assuming CPU only")
        return BuildSupport(gpu_offload=False)


def default_context_length(gpus: Sequence[GpuDevice], overhead: int) -> int:
    """Ollama's tiers: 4k below 23 GiB of VRAM (and on the CPU), 32k below 47 GiB, 256k above."""
    total = sum(max(0, gpu.total_memory - overhead) for gpu in gpus)
    if total >= 47 * GIB:
        return 262144
    if total >= 23 * GIB:
        return 32768
    return 4096


class Hardware:
    """The devices the scheduler plans with; refreshed before each load (free memory changes)."""

    def __init__(
        self,
        settings: Settings,
        *,
        meminfo: Path = Path("/proc/meminfo"),
        find_gpus: Callable[[Settings], list[GpuDevice]] | None = None,
        build: Callable[[], BuildSupport] = probe_build,
    ):
        self.settings = settings
        self._meminfo = meminfo
        self._find_gpus = find_gpus or (lambda s: nvidia_gpus(s) + amd_gpus(s) + apple_gpus(s))
        self._probe = build
        self._support: BuildSupport | None = None
        self._warned = False

    @property
    def build(self) -> BuildSupport:
        if self._support is None:
            self._support = self._probe()
        return self._support

    def system_memory(self) -> SystemMemory:
        try:
            return parse_meminfo(self._meminfo.read_text())
        except OSError:
            return SystemMemory(total=0, available=0)

    def gpus(self) -> list[GpuDevice]:
        """GPUs that runners can use: none when forced to the CPU, only those the build can drive."""
        if self.settings.llm_library.lower() == "cpu":
            return []
        found = self._find_gpus(self.settings)
        if not found:
            return []
        usable = [gpu for gpu in found if self.build.drives(gpu.library)]
        wanted = self.settings.llm_library.lower()
        if wanted and wanted != "vulkan":
            usable = [gpu for gpu in usable if gpu.library == wanted]
        if len(usable) < len(found) and not self._warned:
            self._warned = True
            names = ", ".join(f"{gpu.name} ({gpu.library})" for gpu in found if gpu not in usable)
            log.warning(
                "found %s, but the installed llama-cpp-python cannot use it (its backends: %s), so models run "
                "elsewhere; see the README for a CUDA/ROCm/Metal build",
                names,
                ", ".join(self.build.backends),
            )
        return usable

    def library_error(self) -> str | None:
        """Why ``OLLAMA_LLM_LIBRARY`` can't be honoured by this build, if it can't."""
        wanted = self.settings.llm_library.lower()
        if wanted in ("", "cpu") or self.build.drives(wanted):
            return None
        return (
            f"OLLAMA_LLM_LIBRARY={self.settings.llm_library} but the installed llama-cpp-python has no {wanted} "
            f"backend (it was built with: {self.build.gpu_backends() or 'CPU only'}); reinstall it with that "
            "backend as the README describes, or unset OLLAMA_LLM_LIBRARY"
        )
