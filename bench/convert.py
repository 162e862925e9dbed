"""Conversion and quantization MB/s against llama.cpp's own tools, on the same checkpoint, in the same run.

    python -m bench.convert                          # qwen2.5-coder and smollm2, 3 rounds
    python -m bench.convert qwen2.5-coder --rounds 5 --server
    python -m bench.convert --setup                  # prepare the baselines (below), then exit

The checkpoint is a test model (``tools.test_models``) written back out as a Hugging Face folder of BF16
safetensors by ``tools.export_hf``; both converters read that folder, and both quantizers read the same
F16 GGUF (pollama's conversion of it, which is checked tensor by tensor against llama.cpp's). Rounds are
interleaved (the order alternates), each figure is the median with the spread (min-max of the rounds) after
it, and the ratio is pollama's MB/s over llama.cpp's. The first round pays cold caches (torch's import above
all): the median leaves it out from 3 rounds on. A run of both models at 3 rounds takes about 5 minutes.

(a) Conversion to F16, MB/s of input safetensors bytes over wall seconds, each a fresh process:
    ``python -m pollama.convert DIR OUT --outtype f16`` against llama.cpp's
    ``convert_hf_to_gguf.py DIR --outtype f16`` (torch's start is part of its cost, as a user pays it).
    With ``--server``, also ``/api/create`` with the folder's files as blobs (uploaded beforehand, untimed).
(b) Quantization to Q8_0 and Q4_K_M, MB/s of the F16 source: ``python -m pollama.runner.quantize``
    (the subprocess the server's quantize-on-create runs) against the ``llama-quantize`` binary built
    from the llama.cpp that the pinned llama-cpp-python vendors; same source, same thread count.

The baselines live outside the repository and are prepared once (``--setup`` runs exactly this: about
8 minutes on 2 cores, most of it the build; the venv takes a minute and 1.2 GB). A baseline that is missing
is skipped with a message, and pollama's figures are printed alone::

    VER=0.3.36   # llama-cpp-python's pinned version; its sdist vendors the llama.cpp both tools come from
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/llama-anchors-$VER   # the cache of shared/tools/build-llama-anchors.sh
    mkdir -p $CACHE && cd $CACHE
    python3 -m pip download --no-deps --no-binary :all: -d . llama-cpp-python==$VER
    mkdir -p src && tar xzf llama_cpp_python-$VER.tar.gz -C src --strip-components=1
    cmake -S src/vendor/llama.cpp -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \\
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON
    nice -n 10 cmake --build build -j "$(nproc)" --target llama-quantize
    mkdir -p bin && cp build/bin/llama-quantize bin/   # its libraries stay in build/bin (rpath): keep build/
    # llama.cpp's converter, in a venv of its own (torch, transformers; the versions its requirements pin)
    python3 -m venv ~/.cache/llama-convert-venv
    ~/.cache/llama-convert-venv/bin/pip install 'torch==2.13.0+cpu' 'transformers==4.57.6' 'numpy~=2.2.6' \\
        'sentencepiece>=0.1.98,<0.3.0' 'protobuf>=4.21.0,<5.0.0' tokenizers safetensors \\
        $CACHE/src/vendor/llama.cpp/gguf-py

torch must be a CPU build: the plain ``torch`` wheel on PyPI needs the CUDA libraries (GBs of nvidia-*
packages) even to import, and with ``--no-deps`` ``import torch`` fails on libcudnn.so. On this project's
machines pip finds ``torch-2.13.0+cpu`` in its local wheel folder (/opt/wheels); elsewhere, point
``TORCH`` at a CPU wheel for ``--setup``. The converter runs offline (HF_HUB_OFFLINE=1): it reads
the tokenizer from the folder with ``transformers`` and recognises the pre-tokenizer by a hash of
its output, so the exported tokenizer.json must match the original's.

Where the baselines are looked for (overridable): ``LLAMA_QUANTIZE`` (default ``$CACHE/bin/llama-quantize``),
``LLAMA_CONVERT_PYTHON`` (default ``~/.cache/llama-convert-venv/bin/python``) and ``LLAMA_CPP_SRC``
(default ``$CACHE/src/vendor/llama.cpp``, which holds convert_hf_to_gguf.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from pollama.model.quantize import TYPES
from tools.test_models import ensure_model

MODELS = ("qwen2.5-coder", "smollm2")
ROUNDS = 3
QUANT_TARGETS = ("Q8_0", "Q4_K_M")
TORCH_CPU = "torch==2.13.0+cpu"
CONVERT_REQUIREMENTS = (
    "transformers==4.57.6",
    "numpy~=2.2.6",
    "sentencepiece>=0.1.98,<0.3.0",
    "protobuf>=4.21.0,<5.0.0",
    "tokenizers",
    "safetensors",
)
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
)
# llama.cpp's converter, offline: nothing is fetched from a hub, no telemetry.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


# --- where the baselines are ---------------------------------------------------------------------------


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def anchors_dir() -> Path:
    """The llama.cpp source and build cache shared with shared/tools/build-llama-anchors.sh."""
    return _cache_root() / f"llama-anchors-{importlib.metadata.version('llama_cpp_python')}"


def llama_quantize() -> Path:
    return Path(os.environ.get("LLAMA_QUANTIZE") or anchors_dir() / "bin" / "llama-quantize")


def convert_python() -> Path:
    return Path(os.environ.get("LLAMA_CONVERT_PYTHON") or _cache_root() / "llama-convert-venv" / "bin" / "python")


def llama_cpp_src() -> Path:
    return Path(os.environ.get("LLAMA_CPP_SRC") or anchors_dir() / "src" / "vendor" / "llama.cpp")


def missing_quantize() -> str | None:
    """Why the llama-quantize baseline cannot run, or None."""
    if not os.access(llama_quantize(), os.X_OK):
        return f"no {llama_quantize()} (python -m bench.convert --setup builds it)"
    return None


def missing_converter() -> str | None:
    """Why llama.cpp's converter cannot run, or None."""
    if not (llama_cpp_src() / "convert_hf_to_gguf.py").is_file():
        return f"no {llama_cpp_src() / 'convert_hf_to_gguf.py'} (python -m bench.convert --setup fetches it)"
    if not os.access(convert_python(), os.X_OK):
        return f"no {convert_python()} (python -m bench.convert --setup makes the venv)"
    return None


# --- setup ----------------------------------------------------------------------------------------------


def _step(command: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def setup() -> None:
    """Fetch llama.cpp's source, build llama-quantize, make the converter's venv; each step only once."""
    version = importlib.metadata.version("llama_cpp_python")
    cache = anchors_dir()
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        _step(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(cache),
             f"llama-cpp-python=={version}"]
        )  # fmt: skip
    if not (cache / "src").is_dir():
        (cache / "src").mkdir()
        _step(["tar", "xzf", str(sdist), "-C", str(cache / "src"), "--strip-components=1"])
    if missing_quantize():
        source = cache / "src" / "vendor" / "llama.cpp"
        if not (cache / "build" / "CMakeCache.txt").is_file():
            _step(["cmake", "-S", str(source), "-B", str(cache / "build"), *CMAKE_FLAGS])
        jobs = str(len(os.sched_getaffinity(0)))
        _step(["nice", "-n", "10", "cmake", "--build", str(cache / "build"), "-j", jobs, "--target", "llama-quantize"])
        (cache / "bin").mkdir(exist_ok=True)
        shutil.copy2(cache / "build" / "bin" / "llama-quantize", cache / "bin" / "llama-quantize")
    python = convert_python()
    if not os.access(python, os.X_OK):
        venv = python.parent.parent
        _step([sys.executable, "-m", "venv", str(venv)])
        torch = os.environ.get("TORCH", TORCH_CPU)
        _step([str(python), "-m", "pip", "install", torch, *CONVERT_REQUIREMENTS, str(llama_cpp_src() / "gguf-py")])
    _step([str(python), "-c", "import torch, transformers, gguf; assert not torch.cuda.is_available()"])
    print(f"llama-quantize: {llama_quantize()}\nconverter: {python} {llama_cpp_src() / 'convert_hf_to_gguf.py'}")


# --- measuring ------------------------------------------------------------------------------------------


@dataclass
class Timings:
    """Wall seconds of one tool's rounds, and the megabytes each round processed."""

    megabytes: float
    seconds: list[float]

    def line(self) -> str:
        median = statistics.median(self.seconds)
        rates = sorted(self.megabytes / s for s in self.seconds)
        return f"{self.megabytes / median:7.1f} MB/s ({rates[0]:.1f}-{rates[-1]:.1f}; {median:.2f} s)"

    def rate(self) -> float:
        return self.megabytes / statistics.median(self.seconds)


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of ``command``; its output is kept only to say why it failed."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{command[0]} ... exited {done.returncode}:\n  " + "\n  ".join(tail))
    return elapsed


def interleaved(rounds: int, megabytes: float, tools: dict[str, Callable[[], float]]) -> dict[str, Timings]:
    """Each tool once per round, the order alternating between rounds; a tool that fails is dropped, said why."""
    results = {name: Timings(megabytes, []) for name in tools}
    live = dict(tools)
    for index in range(rounds):
        for name, run in list(live.items()) if index % 2 == 0 else list(reversed(live.items())):
            try:
                results[name].seconds.append(run())
            except RuntimeError as error:
                print(f"  {name} failed, dropped: {error}")
                del live[name], results[name]
    return results


def report(label: str, results: dict[str, Timings], baseline: str) -> None:
    """Each tool's figure, then each of pollama's as a ratio to llama.cpp's (higher is faster)."""
    for name, timings in results.items():
        print(f"  {label:<22} {name:<30} {timings.line()}")
    if baseline in results:
        for name, timings in results.items():
            if name != baseline:
                ratio = timings.rate() / results[baseline].rate()
                print(f"  {label:<22} {'ratio ' + name:<30} {ratio:7.2f} x {baseline}")


def export_checkpoint(model: str, folder: Path) -> float:
    """Write the test model as a BF16 Hugging Face folder; its safetensors megabytes."""
    gguf = ensure_model(model)
    command = [sys.executable, "-m", "tools.export_hf", str(gguf), str(folder), "--dtype", "bf16"]
    started = time.perf_counter()
    _timed(command)
    weights = sum(path.stat().st_size for path in folder.glob("*.safetensors"))
    print(f"{model}: {gguf.name} exported as BF16 safetensors, {weights / 1e6:.0f} MB "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return weights / 1e6


def compare_outputs(ours: Path, theirs: Path) -> str:
    """Whether the two converters wrote the same tensors (names, types, bytes): the same work was timed."""
    from gguf import GGUFReader

    mine, base = ({t.name: t for t in GGUFReader(path).tensors} for path in (ours, theirs))
    size = sum(int(tensor.n_bytes) for tensor in mine.values()) / 1e6
    if mine.keys() != base.keys():
        return f"tensor names differ: {sorted(mine.keys() ^ base.keys())[:5]}"
    differing = [
        name
        for name, tensor in mine.items()
        if tensor.tensor_type != base[name].tensor_type
        or not np.array_equal(tensor.data.view(np.uint8), base[name].data.view(np.uint8))
    ]
    if differing:
        return f"{len(differing)} of {len(mine)} tensors differ, e.g. {differing[:3]}"
    return f"both outputs hold the same {len(mine)} tensors, byte for byte ({size:.0f} MB)"


def bench_conversion(folder: Path, megabytes: float, work: Path, rounds: int, server: bool) -> Path | None:
    """Conversion rounds; the F16 GGUF that pollama wrote (llama.cpp's if pollama's failed)."""
    ours, theirs = work / "pollama.f16.gguf", work / "llama-cpp.f16.gguf"
    tools: dict[str, Callable[[], float]] = {
        "pollama.convert": partial(
            _timed, [sys.executable, "-m", "pollama.convert", str(folder), str(ours), "--outtype", "f16"]
        ),
    }
    if why := missing_converter():
        print(f"  llama.cpp's converter skipped: {why}")
    else:
        script = str(llama_cpp_src() / "convert_hf_to_gguf.py")
        command = [str(convert_python()), script, str(folder), "--outtype", "f16", "--outfile", str(theirs)]
        tools["convert_hf_to_gguf.py"] = partial(_timed, command, env={**os.environ, **OFFLINE})
    with contextlib.ExitStack() as stack:
        if server:
            tools["/api/create"] = _server_create(folder, work, stack)
        results = interleaved(rounds, megabytes, tools)
    report("convert BF16 -> F16", results, "convert_hf_to_gguf.py")
    if ours.is_file() and theirs.is_file():
        print(f"  {compare_outputs(ours, theirs)}")
    written = [path for path in (ours, theirs) if path.is_file()]
    return written[0] if written else None


def _server_create(folder: Path, work: Path, stack: contextlib.ExitStack) -> Callable[[], float]:
    """The server path: a server (stopped by ``stack``) holding the folder's files as blobs; one create a call."""
    import ollama

    from tests.servers import ServerProcess

    process = ServerProcess(work / "server").start()
    stack.callback(process.stop)
    client = ollama.Client(host=process.url)
    files = {
        str(path.relative_to(folder)): client.create_blob(path) for path in sorted(folder.rglob("*")) if path.is_file()
    }
    count = 0

    def create() -> float:
        nonlocal count
        count += 1
        started = time.perf_counter()
        try:
            client.create(f"convert-{count}", files=files)
        except ollama.ResponseError as error:
            raise RuntimeError(f"/api/create: {error.error}") from None
        elapsed = time.perf_counter() - started
        client.delete(f"convert-{count}")
        return elapsed

    return create


def bench_quantization(source: Path, rounds: int) -> None:
    megabytes = source.stat().st_size / 1e6
    threads = str(len(os.sched_getaffinity(0)))
    target = source.with_name("quantized.gguf")
    binary = None if (why := missing_quantize()) else str(llama_quantize())
    if why:
        print(f"  llama-quantize skipped: {why}")
    print(f"  quantizing {source.name} ({megabytes:.0f} MB) with {threads} threads")
    for name in QUANT_TARGETS:
        ftype = str(TYPES[name])
        tools: dict[str, Callable[[], float]] = {
            "pollama.runner.quantize": partial(
                _timed, [sys.executable, "-m", "pollama.runner.quantize", str(source), str(target), ftype, threads]
            ),
        }
        if binary is not None:
            tools["llama-quantize"] = partial(_timed, [binary, str(source), str(target), name, threads])
        results = interleaved(rounds, megabytes, tools)
        report(f"quantize F16 -> {name}", results, "llama-quantize")
    target.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convert", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", metavar="MODEL", help=f"test models ({' '.join(MODELS)})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"measured rounds per figure ({ROUNDS})")
    parser.add_argument("--server", action="store_true", help="also time conversion through /api/create")
    parser.add_argument("--no-quantize", action="store_true", help="conversion only")
    parser.add_argument("--setup", action="store_true", help="prepare the llama.cpp baselines, then exit")
    args = parser.parse_args(argv)
    if args.setup:
        setup()
        return 0
    if unknown := set(args.models) - set(MODELS):
        parser.error(f"unknown model {', '.join(sorted(unknown))} (known: {', '.join(MODELS)})")
    for model in args.models or MODELS:
        with tempfile.TemporaryDirectory(prefix="bench-convert-") as scratch:
            work = Path(scratch)
            folder = work / "hf"
            megabytes = export_checkpoint(model, folder)
            source = bench_conversion(folder, megabytes, work, args.rounds, args.server)
            if source is not None and not args.no_quantize:
                bench_quantization(source, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
