"""Dockerfile and Dockerfile.cuda, read without Docker (docs/service.md: the images are not built in CI).

No image is built here: the test machines have no Docker daemon and no access to Docker Hub. What can be
checked without one is: every file COPY takes exists and is not left out by .dockerignore, the image runs
``pollama serve`` on 0.0.0.0:11434 with the store in the /root/.ollama volume, the CUDA image compiles
llama-cpp-python with CUDA on a CUDA devel base, and the HEALTHCHECK command works: run here against a
real server (and fails with none).
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO, ServerProcess, free_port

DOCKERFILES = [REPO / "Dockerfile", REPO / "Dockerfile.cuda"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return result


def stages(path: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
    return found


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def final(path: Path) -> dict[str, list[str]]:
    stage: dict[str, list[str]] = {}
    for keyword, arguments in stages(path)[-1]:
        stage.setdefault(keyword, []).append(arguments)
    return stage


def healthcheck_code(path: Path) -> str:
    (check,) = final(path)["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"], command
    return command[2]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_copy_sources_exist_and_are_not_ignored(path: Path) -> None:
    ignored = dockerignore()
    copies = [arguments for keyword, arguments in instructions(path) if keyword in ("COPY", "ADD")]
    local = [shlex.split(arguments) for arguments in copies if not arguments.startswith("--from")]
    assert local, "nothing is copied from the build context"
    for words in local:
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"
    # What pip needs to build the package: its metadata, the readme it names, the code.
    sources = {source for words in local for source in words[:-1]}
    assert {"pyproject.toml", "README.md", "pollama"} <= sources


def test_dockerignore_leaves_out_local_state() -> None:
    ignored = set(dockerignore())
    assert {".git", ".venv", "**/__pycache__", "tests"} <= ignored


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_image_serves_like_ollamas(path: Path) -> None:
    stage = final(path)
    assert stage["ENTRYPOINT"] == ['["pollama"]'] and stage["CMD"] == ['["serve"]']
    assert "OLLAMA_HOST=0.0.0.0" in stage["ENV"]
    assert stage["EXPOSE"] == ["11434"] and stage["VOLUME"] == ["/root/.ollama"]
    # The venv built in the first stage, on the PATH of the last.
    assert "--from=build /opt/pollama/venv /opt/pollama/venv" in stage["COPY"]
    assert any(env.startswith("PATH=/opt/pollama/venv/bin:") for env in stage["ENV"])
    (build, *_) = stages(path)
    assert build[0][1].endswith(" AS build")
    run = " ".join(arguments for keyword, arguments in build if keyword == "RUN")
    assert "build-essential" in run and "cmake" in run
    assert '/opt/pollama/venv/bin/pip install --no-cache-dir "/src[${EXTRAS}]"' in run


def test_cpu_image_base() -> None:
    arguments = dict(
        arguments.split("=", 1) for keyword, arguments in instructions(REPO / "Dockerfile") if keyword == "ARG"
    )
    assert arguments["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert "-DGGML_NATIVE=off" in arguments["CMAKE_ARGS"]


def test_cuda_image_builds_llama_cpp_with_cuda() -> None:
    path = REPO / "Dockerfile.cuda"
    build, runtime = stages(path)
    assert build[0][1].startswith("nvidia/cuda:") and "-devel-" in build[0][1]
    assert runtime[0][1].startswith("nvidia/cuda:") and "-runtime-" in runtime[0][1]
    run = " ".join(arguments for keyword, arguments in build if keyword == "RUN")
    assert 'CMAKE_ARGS="-DGGML_CUDA=on ' in run


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_healthcheck_answers_against_a_server(path: Path, tmp_path: Path) -> None:
    code = healthcheck_code(path)
    compile(code, "HEALTHCHECK", "exec")
    server = ServerProcess(tmp_path / "server").start()
    try:
        # As in the container: OLLAMA_HOST=0.0.0.0, here with the test server's port.
        env = server.env | {"OLLAMA_HOST": f"0.0.0.0:{server.port}"}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    finally:
        server.stop()
    env = server.env | {"OLLAMA_HOST": f"0.0.0.0:{free_port()}"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
