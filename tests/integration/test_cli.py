"""The ``pollama`` CLI against a real server: create, list, show, cp, rm, and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, free_port

MODELFILE = '''# a Modelfile with one of everything
FROM ./weights/smol.gguf
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM """You are a concise assistant.
Answer in one sentence."""
PARAMETER temperature 0.2
PARAMETER num_ctx 2048
PARAMETER stop <|im_end|>
PARAMETER stop "<|im_start|>"
MESSAGE user Hi there
MESSAGE assistant Hello! How can I help?
LICENSE """Apache License 2.0
second line
third line"""
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    directory = tmp_path_factory.mktemp("project")
    (directory / "weights").mkdir()
    (directory / "weights" / "smol.gguf").symlink_to(smollm2_path)
    (directory / "Modelfile").write_text(MODELFILE)
    return directory


@pytest.fixture(scope="module")
def created(server: ServerProcess, project: Path) -> ServerProcess:
    result = server.cli("create", "smol", "-f", str(project / "Modelfile"))
    assert result.returncode == 0, result.stderr
    return server


def test_create_reports_progress(created: ServerProcess, project: Path) -> None:
    result = created.cli("create", "smol-again", "-f", str(project / "Modelfile"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "gathering model components"
    assert "parsing GGUF" in lines
    assert any(line.startswith("using existing layer sha256:") for line in lines)
    assert lines[-2:] == ["writing manifest", "success"]
    assert result.stdout == ""


def test_create_without_file_flag_uses_the_modelfile_in_the_current_directory(
    created: ServerProcess, project: Path
) -> None:
    result = created.cli("create", "from-cwd", cwd=project)
    assert result.returncode == 0, result.stderr
    shown = httpx.post(created.url + "/api/show", json={"model": "from-cwd"}).json()
    assert shown["system"] == "You are a concise assistant.\nAnswer in one sentence."


def test_create_from_a_directory_of_gguf(created: ServerProcess, make_gguf, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    make_gguf("weights/tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./weights\n")
    result = created.cli("create", "from-dir", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    assert httpx.post(created.url + "/api/show", json={"model": "from-dir"}).json()["details"]["family"] == "llama"


def test_create_from_an_existing_model_name(created: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM smol\nPARAMETER temperature 0.9\n")
    result = created.cli("create", "derived", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    shown = httpx.post(created.url + "/api/show", json={"model": "derived"}).json()
    assert "temperature                    0.9" in shown["parameters"].splitlines()
    assert shown["details"]["parent_model"] == "smol:latest"


@pytest.mark.parametrize(
    ("modelfile", "error"),
    [
        (
            "FROM x\nBOGUS y\n",
            'Error: (line 2): command must be one of "from", "license", "template", "system", '
            '"adapter", "draft", "renderer", "parser", "parameter", "message", or "requires"',
        ),
        ("SYSTEM hi\n", "Error: no FROM line"),
        ("FROM x\nPARAMETER top_k many\n", "Error: invalid int value [many]"),
        ("FROM x\nPARAMETER warp 9\n", "Error: unknown parameter 'warp'"),
        ("FROM x\nMESSAGE tool hi\n", 'Error: (line 2): message role must be one of "system", "user", or "assistant"'),
        ('FROM x\nSYSTEM """never closed\n', "Error: unexpected EOF"),
        ("FROM x\nADAPTER ./missing.gguf\n", "Error: stat "),
        ("FROM ./nowhere.gguf\n", "Error: stat /"),
        ("FROM no-such-model\n", "Error: model 'no-such-model' not found"),
    ],
)
def test_create_errors(created: ServerProcess, tmp_path: Path, modelfile: str, error: str) -> None:
    (tmp_path / "Modelfile").write_text(modelfile)
    result = created.cli("create", "broken", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(error)


def test_create_with_missing_modelfile_or_bad_name(created: ServerProcess, tmp_path: Path) -> None:
    result = created.cli("create", "x", "-f", str(tmp_path / "nope"))
    assert (result.returncode, result.stderr.strip()) == (1, "Error: specified Modelfile wasn't found")
    result = created.cli("create", "bad/../name")
    assert (result.returncode, result.stderr.strip()) == (1, "Error: invalid model name: bad/../name")


def test_list_table(created: ServerProcess) -> None:
    result = created.cli("list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert re.fullmatch(r"NAME {4,}ID {14}SIZE {5}MODIFIED +", header)
    row = next(r for r in rows if r.startswith("smol:latest "))
    name, digest, size, modified = re.split(r" {4,}", row.rstrip())
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert size == "98 MB"
    assert re.fullmatch(r"(Less than a second|\d+ seconds|About a minute|\d+ minutes) ago", modified)
    assert row.endswith("    ")  # tablewriter pads every cell, the last one too
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert [line.split()[0] for line in created.cli("ls").stdout.splitlines()] == names


def test_list_filters_by_case_insensitive_prefix(created: ServerProcess) -> None:
    rows = created.cli("list", "SMOL-").stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["smol-again:latest"]


def test_show_info_view(created: ServerProcess) -> None:
    result = created.cli("show", "smol")
    assert result.returncode == 0, result.stderr
    expected = [
        "  Model",
        "    architecture        llama      ",
        "    parameters          134.52M    ",
        "    context length      8192       ",
        "    embedding length    576        ",
        "    quantization        Q4_1       ",
        "",
        "  Capabilities",
        "    completion    ",
        "",
        "  Parameters",
        "    num_ctx        2048              ",
        '    stop           "<|im_end|>"      ',
        '    stop           "<|im_start|>"    ',
        "    temperature    0.2               ",
        "",
        "  System",
        "    You are a concise assistant.    ",
        "    Answer in one sentence.         ",
        "",
        "  License",
        "    Apache License 2.0    ",
        "    second line           ",
        "    ...                   ",
        "",
    ]
    assert result.stdout.split("\n")[:-1] == expected


def test_show_verbose_adds_metadata_and_tensors(created: ServerProcess) -> None:
    out = created.cli("show", "smol", "--verbose").stdout
    assert "  Metadata\n" in out and "  Tensors\n" in out
    assert re.search(r"\n    tokenizer\.ggml\.tokens +\[<\|endoftext\|> \.\.\.\+49151 more\] +\n", out)
    assert re.search(r"\n    token_embd\.weight +Q8_0 +\[576 49152\] +\n", out)


def test_show_single_fields(created: ServerProcess) -> None:
    assert created.cli("show", "smol", "--system").stdout == "You are a concise assistant.\nAnswer in one sentence."
    assert created.cli("show", "smol", "--template").stdout.endswith("<|im_start|>assistant\n")
    assert created.cli("show", "smol", "--license").stdout == "Apache License 2.0\nsecond line\nthird line\n"
    assert created.cli("show", "smol", "--parameters").stdout.splitlines()[0] == "num_ctx                        2048"
    modelfile = created.cli("show", "smol", "--modelfile").stdout
    assert modelfile.startswith('# Modelfile generated by "pollama show"\n')
    assert "\nFROM /" in modelfile and "\nMESSAGE user Hi there\n" in modelfile


def test_show_rejects_two_field_flags(created: ServerProcess) -> None:
    result = created.cli("show", "smol", "--system", "--license")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified"
    )


def test_show_modelfile_round_trips(created: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(created.cli("show", "smol", "--modelfile").stdout)
    result = created.cli("create", "roundtrip", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    original = httpx.post(created.url + "/api/show", json={"model": "smol"}).json()
    copy = httpx.post(created.url + "/api/show", json={"model": "roundtrip"}).json()
    for key in ("template", "system", "license", "parameters", "messages", "model_info", "details"):
        if key == "details":
            original[key]["parent_model"] = copy[key]["parent_model"] = ""
        assert copy[key] == original[key], key


def test_copy_and_remove(created: ServerProcess) -> None:
    result = created.cli("cp", "smol", "other/smol:v1")
    assert (result.returncode, result.stdout) == (0, "copied 'smol' to 'other/smol:v1'\n")
    assert "other/smol:v1" in created.cli("list").stdout
    result = created.cli("rm", "other/smol:v1")
    assert (result.returncode, result.stdout) == (0, "deleted 'other/smol:v1'\n")
    assert "other/smol:v1" not in created.cli("list").stdout


def test_symlinks_out_of_a_model_directory_are_refused(created: ServerProcess, project: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {project / 'weights'}\n")
    result = created.cli("create", "escapes", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: insecure path: ../")


def test_remove_unknown_model(created: ServerProcess) -> None:
    result = created.cli("rm", "nope")
    assert (result.returncode, result.stderr.strip()) == (1, "Error: model 'nope' not found")


def test_version_flag(created: ServerProcess) -> None:
    result = created.cli("-v")
    assert result.stdout == "pollama version is 0.1.0 (Ollama API 0.33.0)\n"
    assert created.cli("--version").stdout == result.stdout


def test_no_server_gives_ollamas_connect_error(tmp_path: Path) -> None:
    absent = ServerProcess(tmp_path, port=free_port())
    for args in (["list"], ["show", "x"], ["cp", "a", "b"], ["rm", "x"], ["create", "x"]):
        result = absent.cli(*args)
        assert result.returncode == 1
        assert result.stderr.strip() == "Error: could not connect to ollama server, run 'pollama serve' to start it"
    version = absent.cli("-v")
    assert version.stdout.splitlines() == [
        "Warning: could not connect to a running Ollama instance",
        "Warning: client version is 0.1.0",
    ]


def test_serve_reports_a_busy_port(created: ServerProcess, tmp_path: Path) -> None:
    clash = ServerProcess(tmp_path, port=created.port)
    result = clash.cli("serve")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"Error: listen tcp 127.0.0.1:{created.port}: bind: address already in use")


def test_help_lists_environment_variables(created: ServerProcess) -> None:
    assert "OLLAMA_HOST" in created.cli("list", "--help").stdout
    serve_help = created.cli("serve", "--help").stdout
    assert "Environment Variables:" in serve_help and "OLLAMA_MODELS" in serve_help
