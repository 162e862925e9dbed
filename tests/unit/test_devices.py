"""Hardware discovery: /proc/meminfo, nvidia-smi, amdgpu sysfs, ``*_VISIBLE_DEVICES`` and the VRAM context tiers."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pollama.config import Settings
from pollama.runtime.devices import (
    BuildSupport,
    GpuDevice,
    Hardware,
    SystemMemory,
    amd_gpus,
    apple_gpus,
    default_context_length,
    nvidia_gpus,
    parse_meminfo,
    parse_nvidia_smi,
    visible_devices,
)

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def gpu(
    index: int, id: str = "", *, library: str = "cuda", total: int = 24 * GIB, free: int | None = None
) -> GpuDevice:
    return GpuDevice(
        index=index,
        id=id or f"GPU-{index}",
        library=library,
        name=f"Card {index}",
        total_memory=total,
        free_memory=total if free is None else free,
    )


# --- parse_meminfo --------------------------------------------------------------------------------

MEMINFO = """\
MemTotal:       24683520 kB
MemFree:        21826560 kB
MemAvailable:   24204288 kB
Buffers:          104448 kB
Cached:          2449408 kB
SwapTotal:       2097148 kB
SwapFree:        2000000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_meminfo_values_are_kib() -> None:
    assert parse_meminfo(MEMINFO) == SystemMemory(
        total=24683520 * KIB, available=24204288 * KIB, free_swap=2000000 * KIB
    )


def test_meminfo_without_memavailable_falls_back_to_free_plus_cached() -> None:
    old_kernel = "\n".join(line for line in MEMINFO.splitlines() if not line.startswith("MemAvailable"))
    memory = parse_meminfo(old_kernel)
    assert memory.available == (21826560 + 2449408) * KIB
    assert memory.total == 24683520 * KIB


def test_meminfo_of_nothing_is_zero() -> None:
    assert parse_meminfo("") == SystemMemory(total=0, available=0, free_swap=0)


# --- parse_nvidia_smi -----------------------------------------------------------------------------

SMI = """\
0, GPU-0a1b2c3d-0000-1111-2222-333344445555, NVIDIA GeForce RTX 4090, 24564, 23980
1, GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff, NVIDIA A100-SXM4-80GB, 81920, 81000
2, MIG-1234, NVIDIA A100 MIG 1g.10gb, [N/A], [N/A]
"""


def test_nvidia_smi_rows() -> None:
    devices = parse_nvidia_smi(SMI)
    assert [(d.index, d.id, d.name, d.library) for d in devices] == [
        (0, "GPU-0a1b2c3d-0000-1111-2222-333344445555", "NVIDIA GeForce RTX 4090", "cuda"),
        (1, "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff", "NVIDIA A100-SXM4-80GB", "cuda"),
    ]
    assert (devices[0].total_memory, devices[0].free_memory) == (24564 * MIB, 23980 * MIB)
    assert (devices[1].total_memory, devices[1].free_memory) == (81920 * MIB, 81000 * MIB)
    assert not any(d.integrated for d in devices)


def test_nvidia_smi_skips_rows_without_memory_figures() -> None:
    assert [d.index for d in parse_nvidia_smi(SMI)] == [0, 1]  # the MIG row reports [N/A]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "No devices were found",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "index, uuid, name, memory.total [MiB], memory.free [MiB]",  # a header, were noheader forgotten
        "0, GPU-x, Card, 100",  # too few fields
        "x, GPU-x, Card, 100, 50",  # no index
    ],
)
def test_nvidia_smi_ignores_junk(junk: str) -> None:
    assert parse_nvidia_smi(junk) == []
    assert [d.index for d in parse_nvidia_smi(junk + "\n" + SMI)] == [0, 1]


# --- visible_devices ------------------------------------------------------------------------------

DEVICES = [gpu(0, "GPU-abc123"), gpu(1, "GPU-abd456"), gpu(2, "GPU-ffe789")]


def test_unset_means_every_device() -> None:
    assert visible_devices(DEVICES, None) == DEVICES


def test_order_is_the_variables_and_indices_are_renumbered() -> None:
    chosen = visible_devices(DEVICES, "1,0")
    assert [d.id for d in chosen] == ["GPU-abd456", "GPU-abc123"]
    assert [d.index for d in chosen] == [0, 1]


def test_spaces_around_entries_are_allowed() -> None:
    assert [d.id for d in visible_devices(DEVICES, " 2 , 0 ")] == ["GPU-ffe789", "GPU-abc123"]


def test_uuid_prefix() -> None:
    chosen = visible_devices(DEVICES, "GPU-ff")
    assert [(d.index, d.id) for d in chosen] == [(0, "GPU-ffe789")]


def test_full_uuid_mixed_with_an_index() -> None:
    assert [d.id for d in visible_devices(DEVICES, "GPU-abd456,0")] == ["GPU-abd456", "GPU-abc123"]


def test_ambiguous_prefix_names_no_device(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pollama.runtime.devices"):
        assert visible_devices(DEVICES, "GPU-ab") == []
    assert "GPU-ab" in caplog.text


@pytest.mark.parametrize("spec", ["-1", "", "7", "GPU-zzz", "0,7", "0,-1"])
def test_no_device_when_an_entry_names_none(spec: str) -> None:
    assert visible_devices(DEVICES, spec) == []


@pytest.mark.parametrize("spec", ["0,0", "0,GPU-abc", "GPU-abc123,0,GPU-abc1"])
def test_duplicates_count_once(spec: str) -> None:
    assert [(d.index, d.id) for d in visible_devices(DEVICES, spec)] == [(0, "GPU-abc123")]


# --- nvidia_gpus ----------------------------------------------------------------------------------


def test_nvidia_gpus_runs_nvidia_smi_and_applies_cuda_visible_devices() -> None:
    commands: list[list[str]] = []

    def run(command: list[str]) -> str:
        commands.append(command)
        return SMI

    devices = nvidia_gpus(Settings(cuda_visible_devices="1"), run=run)
    assert [(d.index, d.name) for d in devices] == [(0, "NVIDIA A100-SXM4-80GB")]
    assert commands == [
        ["nvidia-smi", "--query-gpu=index,uuid,name,memory.total,memory.free", "--format=csv,noheader,nounits"]
    ]
    assert len(nvidia_gpus(Settings(), run=run)) == 2


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory: 'nvidia-smi'"),
        PermissionError(13, "Permission denied"),
        subprocess.CalledProcessError(9, ["nvidia-smi"], output="", stderr="driver not loaded"),
        subprocess.TimeoutExpired(["nvidia-smi"], 10),
    ],
    ids=["missing", "not-executable", "failed", "hung"],
)
def test_nvidia_gpus_without_a_working_nvidia_smi(error: Exception) -> None:
    def run(command: list[str]) -> str:
        raise error

    assert nvidia_gpus(Settings(), run=run) == []


# --- amd_gpus -------------------------------------------------------------------------------------


def amd_card(
    drm: Path,
    card: str,
    slot: str,
    *,
    vendor: str = "0x1002",
    total: int | None = 16 * GIB,
    used: int | None = 1 * GIB,
    name: str | None = "AMD Radeon RX 7900 XTX",
) -> None:
    """A ``/sys/class/drm/cardN`` whose ``device`` links to its PCI directory, as sysfs has it."""
    pci = drm.parent / "pci" / slot
    pci.mkdir(parents=True)
    (pci / "vendor").write_text(vendor + "\n")
    if total is not None:
        (pci / "mem_info_vram_total").write_text(f"{total}\n")
    if used is not None:
        (pci / "mem_info_vram_used").write_text(f"{used}\n")
    if name is not None:
        (pci / "product_name").write_text(name + "\n")
    (drm / card).mkdir(parents=True)
    (drm / card / "device").symlink_to(pci, target_is_directory=True)


@pytest.fixture
def drm(tmp_path: Path) -> Path:
    path = tmp_path / "drm"
    path.mkdir()
    return path


def test_amd_card_from_sysfs(drm: Path) -> None:
    amd_card(drm, "card0", "0000:03:00.0")
    assert amd_gpus(Settings(), drm=drm) == [
        GpuDevice(
            index=0,
            id="0000:03:00.0",
            library="rocm",
            name="AMD Radeon RX 7900 XTX",
            total_memory=16 * GIB,
            free_memory=15 * GIB,
            integrated=False,
        )
    ]


def test_amd_skips_other_vendors_connectors_and_cards_without_vram(drm: Path) -> None:
    amd_card(drm, "card0", "0000:01:00.0", vendor="0x10de", name="NVIDIA")  # numbered first, but not AMD
    amd_card(drm, "card1", "0000:03:00.0")
    amd_card(drm, "card2", "0000:04:00.0", total=None)  # no amdgpu memory files: nothing to plan with
    connector = drm / "card1-DP-1" / "device"  # a display connector of card1, even with AMD-looking files
    connector.mkdir(parents=True)
    (connector / "vendor").write_text("0x1002\n")
    (connector / "mem_info_vram_total").write_text(f"{GIB}\n")
    devices = amd_gpus(Settings(), drm=drm)
    assert [(d.index, d.id) for d in devices] == [(0, "0000:03:00.0")]


def test_amd_cards_in_numeric_order_with_defaults(drm: Path) -> None:
    amd_card(drm, "card10", "0000:0a:00.0", name=None)
    amd_card(drm, "card2", "0000:02:00.0", total=512 * MIB, used=None)  # an APU's small carve-out
    devices = amd_gpus(Settings(), drm=drm)
    assert [(d.index, d.id) for d in devices] == [(0, "0000:02:00.0"), (1, "0000:0a:00.0")]
    assert devices[0].integrated and devices[0].free_memory == 512 * MIB
    assert not devices[1].integrated and devices[1].name == "AMD GPU"


def test_amd_used_above_total_is_no_free_memory(drm: Path) -> None:
    amd_card(drm, "card0", "0000:03:00.0", total=GIB * 8, used=GIB * 9)
    assert amd_gpus(Settings(), drm=drm)[0].free_memory == 0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (Settings(hip_visible_devices="1"), ["0000:04:00.0"]),
        (Settings(hip_visible_devices="-1"), []),
        (Settings(rocr_visible_devices="1,0"), ["0000:04:00.0", "0000:03:00.0"]),
        (Settings(hip_visible_devices="0", rocr_visible_devices="1"), ["0000:03:00.0"]),  # HIP wins
    ],
    ids=["hip", "hip-none", "rocr", "hip-over-rocr"],
)
def test_amd_visible_devices(drm: Path, settings: Settings, expected: list[str]) -> None:
    amd_card(drm, "card0", "0000:03:00.0")
    amd_card(drm, "card1", "0000:04:00.0", name="AMD Instinct MI210")
    devices = amd_gpus(settings, drm=drm)
    assert [d.id for d in devices] == expected
    assert [d.index for d in devices] == list(range(len(expected)))


def test_no_drm_directory_means_no_amd_gpus(tmp_path: Path) -> None:
    assert amd_gpus(Settings(), drm=tmp_path / "absent") == []


# --- apple_gpus -----------------------------------------------------------------------------------


def sysctl(memsize: int, arm64: str = "1") -> Callable[[list[str]], str]:
    answers = {"hw.memsize": f"{memsize}\n", "hw.optional.arm64": f"{arm64}\n"}
    return lambda command: answers[command[-1]]


@pytest.mark.parametrize(
    ("memsize", "usable"), [(16 * GIB, 16 * GIB * 2 // 3), (36 * GIB, 24 * GIB), (64 * GIB, 48 * GIB)]
)
def test_apple_gpu_gets_its_working_set(memsize: int, usable: int) -> None:
    (device,) = apple_gpus(Settings(), run=sysctl(memsize), platform="darwin")
    assert (device.library, device.total_memory, device.free_memory) == ("metal", usable, usable)


def test_no_apple_gpu_on_intel_macs_or_elsewhere() -> None:
    assert apple_gpus(Settings(), run=sysctl(16 * GIB, arm64="0"), platform="darwin") == []
    assert apple_gpus(Settings(), run=sysctl(16 * GIB), platform="linux") == []


# --- default_context_length -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "overhead", "expected"),
    [
        ([], 0, 4096),
        ([8 * GIB], 0, 4096),
        ([24 * GIB], 0, 32768),
        ([23 * GIB], 0, 32768),
        ([23 * GIB], 1, 4096),  # any overhead takes it below the tier
        ([24 * GIB], 2 * GIB, 4096),
        ([24 * GIB, 24 * GIB], 0, 262144),
        ([24 * GIB, 24 * GIB], GIB, 32768),  # overhead counts per GPU: 46 GiB
        ([80 * GIB], 0, 262144),
        ([12 * GIB, 12 * GIB], 0, 32768),
        ([GIB], 2 * GIB, 4096),  # overhead above a GPU's memory is not negative memory
    ],
)
def test_default_context_length_tiers(totals: list[int], overhead: int, expected: int) -> None:
    gpus = [gpu(index, total=total) for index, total in enumerate(totals)]
    assert default_context_length(gpus, overhead) == expected


def test_default_context_length_goes_by_total_not_free_memory() -> None:
    assert default_context_length([gpu(0, total=24 * GIB, free=GIB)], 0) == 32768


# --- Hardware -------------------------------------------------------------------------------------

FOUND = [gpu(0, "GPU-a"), gpu(1, "GPU-b")]
CUDA_BUILD = BuildSupport(gpu_offload=True, backends=("CUDA", "CPU"))
CPU_BUILD = BuildSupport(gpu_offload=False, backends=("CPU",))


class Probe:
    """Counts the calls to a discovery or build probe."""

    def __init__(self, result: object):
        self.result = result
        self.calls = 0

    def __call__(self, *args: object) -> object:
        self.calls += 1
        return self.result


def test_gpus_found_and_usable() -> None:
    hardware = Hardware(Settings(), find_gpus=Probe(FOUND), build=Probe(CUDA_BUILD))
    assert hardware.gpus() == FOUND


def test_cpu_library_means_no_gpus_without_looking() -> None:
    find, build = Probe(FOUND), Probe(CUDA_BUILD)
    hardware = Hardware(Settings(llm_library="cpu"), find_gpus=find, build=build)
    assert hardware.gpus() == []
    assert (find.calls, build.calls) == (0, 0)
    assert Hardware(Settings(llm_library="CPU"), find_gpus=find, build=build).gpus() == []


def test_no_gpus_found_means_no_build_probe() -> None:
    build = Probe(CUDA_BUILD)
    assert Hardware(Settings(), find_gpus=Probe([]), build=build).gpus() == []
    assert build.calls == 0


def test_gpus_unusable_by_a_cpu_build(caplog: pytest.LogCaptureFixture) -> None:
    build = Probe(CPU_BUILD)
    hardware = Hardware(Settings(), find_gpus=Probe(FOUND), build=build)
    with caplog.at_level(logging.WARNING, logger="pollama.runtime.devices"):
        assert hardware.gpus() == []
        assert hardware.gpus() == []
        assert hardware.gpus() == []
    assert build.calls == 1
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert (
        "Card 0 (cuda)" in warnings[0].getMessage() and "cannot use it (its backends: CPU)" in warnings[0].getMessage()
    )


def test_build_is_probed_once_while_gpus_change() -> None:
    find, build = Probe(FOUND), Probe(CUDA_BUILD)
    hardware = Hardware(Settings(), find_gpus=find, build=build)
    assert hardware.gpus() == FOUND
    find.result = FOUND[:1]  # free memory and visibility are read afresh every time
    assert hardware.gpus() == FOUND[:1]
    assert (find.calls, build.calls) == (2, 1)


def test_system_memory_from_a_meminfo_file(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    assert Hardware(Settings(), meminfo=meminfo).system_memory().available == 24204288 * KIB
    assert Hardware(Settings(), meminfo=tmp_path / "absent").system_memory() == SystemMemory(0, 0)


@pytest.mark.parametrize("library", ["", "cpu", "CPU"])
def test_no_library_error_without_a_gpu_library(library: str) -> None:
    build = Probe(CPU_BUILD)
    assert Hardware(Settings(llm_library=library), build=build).library_error() is None
    assert build.calls == 0


def test_no_library_error_when_the_build_has_it() -> None:
    hardware = Hardware(Settings(llm_library="cuda"), build=Probe(CUDA_BUILD))
    assert hardware.library_error() is None


def test_library_error_on_a_cpu_only_build() -> None:
    error = Hardware(Settings(llm_library="cuda"), build=Probe(CPU_BUILD)).library_error()
    assert error is not None
    assert "OLLAMA_LLM_LIBRARY=cuda" in error
    assert "no cuda backend" in error
    assert "CPU only" in error


def test_library_error_names_the_backends_the_build_has() -> None:
    error = Hardware(Settings(llm_library="rocm"), build=Probe(CUDA_BUILD)).library_error()
    assert error is not None
    assert "no rocm backend" in error
    assert "built with: CUDA)" in error


def test_library_error_when_the_backend_is_named_but_cannot_offload() -> None:
    broken = BuildSupport(gpu_offload=False, backends=("CUDA", "CPU"))
    assert Hardware(Settings(llm_library="cuda"), build=Probe(broken)).library_error() is not None


def test_build_is_probed_once_for_library_checks_too() -> None:
    build = Probe(CUDA_BUILD)
    hardware = Hardware(Settings(llm_library="cuda"), find_gpus=Probe(FOUND), build=build)
    assert hardware.gpus() == FOUND
    for _ in range(3):  # one per model load
        assert hardware.library_error() is None
    assert build.calls == 1


def test_gpus_of_a_library_the_build_lacks_are_left_out() -> None:
    found = [gpu(0, "GPU-a", total=8 * GIB), gpu(0, "0000:03:00.0", library="rocm", total=48 * GIB)]
    hardware = Hardware(Settings(), find_gpus=Probe(found), build=Probe(CUDA_BUILD))
    assert [d.library for d in hardware.gpus()] == ["cuda"]


def test_build_support_drives() -> None:
    assert CUDA_BUILD.drives("cuda") and CUDA_BUILD.drives("cpu")
    assert not CUDA_BUILD.drives("rocm") and not CUDA_BUILD.drives("metal")
    assert BuildSupport(gpu_offload=True, backends=("MTL", "BLAS", "CPU")).drives("metal")
    assert BuildSupport(gpu_offload=True, backends=("ROCm", "CPU")).drives("rocm")
    vulkan = BuildSupport(gpu_offload=True, backends=("Vulkan", "CPU"))
    assert vulkan.drives("cuda") and vulkan.drives("rocm")
    assert not CPU_BUILD.drives("cuda")
    assert CPU_BUILD.gpu_backends() == "" and CUDA_BUILD.gpu_backends() == "CUDA"


def test_llm_library_narrows_gpus_to_its_kind() -> None:
    found = [gpu(0, "GPU-a"), gpu(0, "0000:03:00.0", library="rocm")]
    vulkan = BuildSupport(gpu_offload=True, backends=("Vulkan", "CPU"))
    hardware = Hardware(Settings(llm_library="rocm"), find_gpus=Probe(found), build=Probe(vulkan))
    assert [d.library for d in hardware.gpus()] == ["rocm"]
