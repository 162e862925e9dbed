"""``pollama run`` against a real server: one-shot answers, stdin, ``--verbose``, ``--format``, embedding
models, the bundled model's auto-start and import, and the interactive chat (driven through a pty by pexpect).

Answers are greedy (a model created with ``temperature 0``) and short (``num_predict``), so that they can be
compared with ``/api/generate`` and stay fast on a small CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pexpect
import pytest

from tests.integration.test_scheduler import install
from tests.servers import REPO, ServerProcess, free_port
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(180)

GREEDY = "greedy"  # smollm2 with temperature 0 and a short answer
JSONY = "jsony"  # the same, with room for a whole JSON object
EMBED = "emb"
STOP = ["<|im_start|>", "<|im_end|>"]
CONNECT_ERROR = "Error: could not connect to ollama server, run 'pollama serve' to start it"
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)$")
STATS = (
    "total duration:",
    "load duration:",
    "prompt eval count:",
    "prompt eval duration:",
    "prompt eval rate:",
    "eval count:",
    "eval duration:",
    "eval rate:",
)
PEXPECT_TIMEOUT = 60
POLLAMA = str(REPO / ".venv" / "bin" / "pollama")


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("run")).start()
    try:
        install(server, "smol", smollm2_path)
        api = ollama.Client(host=server.url)
        for name, num_predict in ((GREEDY, 20), (JSONY, 60)):
            parameters = {"temperature": 0, "num_predict": num_predict, "stop": STOP}
            assert api.create(name, from_="smol", parameters=parameters).status == "success"
        yield server
    finally:
        server.stop()


def generate(server: ServerProcess, prompt: str, model: str = GREEDY, **fields: Any) -> dict[str, Any]:
    body = {"model": model, "prompt": prompt, "stream": False, **fields}
    response = httpx.post(server.url + "/api/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def run(server: ServerProcess, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    """``pollama run <args>`` with stdin a pipe (empty unless ``input`` is given), never the test's own."""
    return server.cli("run", *args, input=input)


def loaded(server: ServerProcess) -> list[str]:
    return [model["name"] for model in httpx.get(server.url + "/api/ps", timeout=30).json()["models"]]


def tags(server: ServerProcess) -> dict[str, str]:
    models = httpx.get(server.url + "/api/tags", timeout=30).json()["models"]
    return {model["name"]: model["digest"] for model in models}


# --- one-shot answers -----------------------------------------------------------------------------


def test_prompt_argument_prints_the_answer_and_a_blank_line(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "Why is the sky blue?")
    assert result.returncode == 0, result.stderr
    expected = generate(srv, "Why is the sky blue?")["response"]
    assert expected.strip()
    assert result.stdout == expected + "\n\n"


def test_several_words_are_joined_into_one_prompt(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "Name", "a", "colour.")
    assert result.returncode == 0, result.stderr
    assert result.stdout == generate(srv, "Name a colour.")["response"] + "\n\n"


@pytest.mark.parametrize(
    ("stdin", "words", "prompt"),
    [
        ("What is two plus two?", (), "What is two plus two?"),
        ("Translate to French:", ("good", "morning"), "Translate to French: good morning"),
    ],
)
def test_stdin_is_the_prompt_or_its_beginning(
    srv: ServerProcess, stdin: str, words: tuple[str, ...], prompt: str
) -> None:
    result = run(srv, GREEDY, *words, input=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == generate(srv, prompt)["response"] + "\n\n"


def test_stdin_keeps_its_trailing_newline(srv: ServerProcess) -> None:
    """``echo text | pollama run m more``: Ollama joins stdin and the arguments as they are, newline included."""
    result = run(srv, GREEDY, "more", "words", input="Say hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == generate(srv, "Say hello\n more words")["response"] + "\n\n"


def test_verbose_prints_ollamas_statistics_on_stderr(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "--verbose", "Tell me a joke.")
    assert result.returncode == 0, result.stderr
    assert result.stdout == generate(srv, "Tell me a joke.")["response"] + "\n\n"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    labels = [line[:22].strip() for line in lines]
    # load duration is only printed when the model was loaded for this request (it is loaded already)
    assert [label for label in STATS if label in labels] == labels, result.stderr
    assert {"total duration:", "prompt eval count:", "eval count:", "eval duration:", "eval rate:"} <= set(labels)
    stats: dict[str, str] = {}
    for line in lines:
        label, value = line[:22], line[22:]
        assert label.endswith(" ") or label.endswith(":"), line
        assert not value.startswith(" "), line
        stats[label.strip()] = value
    for label, value in stats.items():
        if "duration" in label:
            assert GO_DURATION.match(value), (label, value)
        elif "count" in label:
            assert re.fullmatch(r"[1-9]\d* token\(s\)", value), value
        else:
            assert re.fullmatch(r"\d+\.\d\d tokens/s", value), value
    assert 0 < int(stats["eval count:"].split()[0]) <= 20  # the model's num_predict


def test_verbose_eval_count_matches_the_api(srv: ServerProcess) -> None:
    """(Prompt eval counts are not compared: the runner's prompt cache makes the second one smaller.)"""
    result = run(srv, GREEDY, "--verbose", "List two fruits.")
    assert result.returncode == 0, result.stderr
    stats = {line[:22].strip(): line[22:] for line in result.stderr.splitlines() if line.strip()}
    final = generate(srv, "List two fruits.")
    assert stats["eval count:"] == f"{final['eval_count']} token(s)"


def test_format_json_prints_json(srv: ServerProcess) -> None:
    result = run(srv, JSONY, "--format", "json", 'Give a JSON object with key "colour" set to a colour.')
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n\n")
    json.loads(result.stdout)


def test_other_formats_are_refused(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "--format", "xml", "hello")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and "xml" in result.stderr


def test_unknown_model_is_pulled_first(srv: ServerProcess) -> None:
    # Offline the registry can't be reached; online registry.ollama.ai says "file does not exist".
    # Pulling a model that exists, then answering, is tests/integration/test_registry.py's.
    result = run(srv, "nosuch", "hello")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-1].startswith("Error: pull model manifest: ")
    assert result.stdout == ""


def test_embedding_model_prints_the_vector(srv: ServerProcess) -> None:
    install(srv, EMBED, ensure_model("minilm"))
    result = run(srv, EMBED, "hello")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    vector = json.loads(lines[0])
    assert len(vector) == 384 and all(isinstance(x, float) for x in vector)
    expected = httpx.post(srv.url + "/api/embed", json={"model": EMBED, "input": "hello"}, timeout=60).json()
    assert vector == pytest.approx(expected["embeddings"][0], abs=1e-6)

    missing = run(srv, EMBED)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        'Error: embedding models require input text. Usage: pollama run <name> "your text here"'
    )


# --- no server --------------------------------------------------------------------------------------


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def processes_of(server: ServerProcess) -> list[tuple[int, str]]:
    """Processes (but this one) whose environment names this server's host and store: what it started."""
    host, models = server.env["OLLAMA_HOST"], server.env["OLLAMA_MODELS"]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = _environ(int(entry.name))
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if env.get("OLLAMA_HOST") == host and env.get("OLLAMA_MODELS") == models and cmdline:
            found.append((int(entry.name), cmdline))
    return found


def stop_processes_of(server: ServerProcess) -> None:
    """SIGTERM the background ``pollama serve`` (it stops its runners), then SIGKILL whatever is left."""
    for kill_signal, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        found = processes_of(server)
        servers = [pid for pid, cmdline in found if "pollama serve" in cmdline]
        for pid in servers or [pid for pid, _ in found]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, kill_signal)
        deadline = time.monotonic() + wait
        while processes_of(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not processes_of(server):
            return


def test_readme_first_command_starts_a_server_imports_the_bundled_model_and_answers(tmp_path: Path) -> None:
    """The smoke test: what the README's first command does, on a fresh home, with sampled answers.

    A crash at the first token (AMX did that) fails here; the answers have a token budget because a
    sampled SmolLM2 answer has no bound of its own.
    """
    absent = ServerProcess(tmp_path / "auto", port=free_port())  # never started: run must start one
    home = Path(absent.env["HOME"])
    home.mkdir(parents=True)
    try:
        # No prompt and an empty stdin: the server is started and the model imported and loaded, but no
        # answer is sampled (the bundled model sets no num_predict, so a sampled answer is unbounded).
        result = run(absent, "smollm2")
        assert result.returncode == 0, result.stderr
        assert "importing bundled model smollm2:135m" in result.stderr
        assert (home / ".ollama" / "logs" / "server.log").is_file()
        assert any("pollama serve" in cmdline for _, cmdline in processes_of(absent))

        listed = absent.cli("list")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        assert set(rows) == {"smollm2:135m", "smollm2:latest"}
        assert rows["smollm2:135m"] == rows["smollm2:latest"]

        # The bundled model itself answers the README's question, sampled as the README's command samples.
        answer = ollama.Client(host=absent.url).generate("smollm2", "Why is the sky blue?", options={"num_predict": 32})
        assert answer.done and answer.response.strip() and 0 < (answer.eval_count or 0) <= 32

        # The server is up and the model there: no import, and run answers (with a token budget).
        create = {"model": "smollm2-short", "from": "smollm2:latest", "parameters": {"num_predict": 20}}
        httpx.post(absent.url + "/api/create", json={**create, "stream": False}, timeout=60).raise_for_status()
        again = run(absent, "smollm2-short", "Why is the sky blue?")
        assert again.returncode == 0, again.stderr
        assert again.stdout.endswith("\n\n") and again.stdout.strip()
        assert "importing" not in again.stderr
        assert "importing" not in run(absent, "smollm2:135m").stderr
    finally:
        stop_processes_of(absent)
    assert processes_of(absent) == []


def test_other_commands_do_not_start_a_server(tmp_path: Path) -> None:
    absent = ServerProcess(tmp_path / "none", port=free_port())
    for args in (["list"], ["ps"], ["show", "smollm2"], ["stop", "smollm2"]):
        result = absent.cli(*args, input="")
        assert result.returncode == 1, args
        assert result.stderr.strip() == CONNECT_ERROR, args
    assert processes_of(absent) == []


# --- the interactive chat -----------------------------------------------------------------------------


def spawn(server: ServerProcess, model: str = GREEDY, **env: str) -> pexpect.spawn:
    child = pexpect.spawn(
        POLLAMA,
        ["run", model],
        env={**server.env, "TERM": "dumb", **env},
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=PEXPECT_TIMEOUT,
        cwd=str(REPO),
    )
    child.expect_exact(">>> ")
    return child


def command(child: pexpect.spawn, line: str, reply: str) -> None:
    child.sendline(line)
    child.expect_exact(reply)
    child.expect_exact(">>> ")


def answer(child: pexpect.spawn, line: str) -> str:
    """Send a message; the text printed before the next prompt."""
    child.sendline(line)
    child.expect_exact(">>> ")
    return child.before or ""


def settle() -> None:
    """Let prompt_toolkit put the terminal in raw mode after drawing the prompt: a Ctrl+D or Ctrl+C typed before
    that is handled by the tty's line discipline instead (an empty read, or a SIGINT outside the prompt)."""
    time.sleep(0.5)


def finish(child: pexpect.spawn) -> None:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


@pytest.fixture
def chat(srv: ServerProcess) -> Iterator[pexpect.spawn]:
    child = spawn(srv)
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_repl_commands(srv: ServerProcess, chat: pexpect.spawn) -> None:
    command(chat, "/?", "Available Commands:")
    command(chat, "/foo", "Unknown command '/foo'. Type /? for help")
    command(chat, "/set parameter temperature 0", "Set parameter 'temperature' to '0'")
    command(chat, "/set parameter bogus 1", "Couldn't set parameter: \"unknown parameter 'bogus'\"")
    chat.sendline("/show parameters")
    chat.expect_exact("User defined parameters:")
    chat.expect(r"temperature\s+0")
    chat.expect_exact(">>> ")
    command(chat, "/set system You are a pirate.", "Set system message.")
    command(chat, "/clear", "Cleared session context")
    command(chat, "/save mysaved", "Created new model 'mysaved'")
    assert "mysaved:latest" in tags(srv)
    shown = httpx.post(srv.url + "/api/show", json={"model": "mysaved"}, timeout=30).json()
    assert re.search(r"^temperature\s+0$", shown["parameters"], re.MULTILINE), shown["parameters"]
    assert shown.get("system") == "You are a pirate."
    chat.sendline("/bye")
    finish(chat)


def test_repl_multi_line_message_and_answers(chat: pexpect.spawn) -> None:
    chat.sendline('"""Say')
    chat.expect_exact("... ")
    first = answer(chat, 'hi"""')
    assert first.startswith('hi"""') and first.removeprefix('hi"""').strip(), first
    second = answer(chat, "What is the capital of France?")
    assert second.removeprefix("What is the capital of France?").strip(), second
    settle()
    chat.sendeof()
    finish(chat)


def test_repl_ctrl_c_stops_an_answer_not_the_session(srv: ServerProcess, chat: pexpect.spawn) -> None:
    command(chat, "/set parameter num_predict 2000", "Set parameter 'num_predict' to '2000'")
    chat.sendline("Count from 1 to 500, one number per line.")
    chat.expect_exact("one number per line.")  # the echo
    chat.expect(r"\d")  # the answer is being written
    started = time.monotonic()
    chat.sendintr()
    chat.expect_exact(">>> ")
    assert time.monotonic() - started < 30
    command(chat, "/set parameter num_predict 10", "Set parameter 'num_predict' to '10'")
    assert answer(chat, "Say hello.").strip()
    settle()
    chat.sendintr()  # on an empty line
    chat.expect_exact("Use Ctrl + d or /bye to exit.")
    chat.expect_exact(">>> ")
    assert chat.isalive()
    chat.sendline("/bye")
    finish(chat)


def test_repl_history_file(srv: ServerProcess) -> None:
    history = Path(srv.env["HOME"]) / ".ollama" / "history"
    history.unlink(missing_ok=True)
    child = spawn(srv, OLLAMA_NOHISTORY="1")
    command(child, "/set parameter seed 42", "Set parameter 'seed' to '42'")
    child.sendline("/bye")
    finish(child)
    assert not history.exists() or "seed" not in history.read_text()  # (Ollama creates it empty)

    child = spawn(srv)
    command(child, "/set parameter seed 42", "Set parameter 'seed' to '42'")
    child.sendline("/bye")
    finish(child)
    assert "/set parameter seed 42" in history.read_text()


def test_repl_set_nohistory_stops_recording(srv: ServerProcess) -> None:
    history = Path(srv.env["HOME"]) / ".ollama" / "history"
    history.unlink(missing_ok=True)
    child = spawn(srv)
    command(child, "/set nohistory", "Set 'nohistory' mode.")
    command(child, "/set parameter seed 7", "Set parameter 'seed' to '7'")
    child.sendline("/bye")
    finish(child)
    assert "seed 7" not in (history.read_text() if history.exists() else "")


def test_repl_wraps_words_at_the_terminal_width(chat: pexpect.spawn) -> None:
    command(chat, "/set parameter num_predict 120", "Set parameter 'num_predict' to '120'")
    text = answer(chat, "Write a long paragraph about the ocean.")
    lines = text.replace("\r", "").splitlines()[1:]  # after the echo
    assert sum(len(line) for line in lines) > 120, text
    assert max(len(line) for line in lines) <= 115, lines  # 120 columns less 5
    chat.sendline("/bye")
    finish(chat)


def test_keepalive_zero_unloads_after_the_answer(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "--keepalive", "0", "Say hi.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    deadline = time.monotonic() + 30
    while GREEDY + ":latest" in loaded(srv) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert GREEDY + ":latest" not in loaded(srv)


def test_think_on_a_model_without_thinking(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "--think=true", "Say hi.")
    assert result.returncode == 1
    assert "does not support thinking" in result.stderr, result.stderr


def test_bare_think_flag_does_not_take_the_prompt(srv: ServerProcess) -> None:
    result = run(srv, GREEDY, "--think", "Say hi.")
    assert result.returncode == 1
    assert "does not support thinking" in result.stderr, result.stderr
